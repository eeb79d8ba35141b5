//! The shared provider test suite: every check runs against every enabled backend, from this
//! one place (`backend_suite!` at the bottom), plus cross-backend round trips.
#![allow(clippy::unwrap_used)]

use eth_mls_crypto::{
    AeadAlg, Backend, Crypto, DhAlg, HashAlg, SUPPORTED_CIPHERSUITES, SecretBytes, SigAlg,
    SignatureKeyPair,
};
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::signatures::Signer;
use openmls_traits::types::{
    AeadType, Ciphersuite, CryptoError, HashType, HpkeAeadType, HpkeCiphertext, HpkeConfig,
    HpkeKdfType, HpkeKemType, SignatureScheme,
};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test hex")
}

const SUITE4_HPKE: HpkeConfig = HpkeConfig(
    HpkeKemType::DhKem448,
    HpkeKdfType::HkdfSha512,
    HpkeAeadType::AesGcm256,
);
const SUITE1_HPKE: HpkeConfig = HpkeConfig(
    HpkeKemType::DhKem25519,
    HpkeKdfType::HkdfSha256,
    HpkeAeadType::AesGcm128,
);

fn copy(c: &HpkeConfig) -> HpkeConfig {
    HpkeConfig(c.0, c.1, c.2)
}

// ------------------------------------------------------------------ known answers

/// RFC 8032 §7.4 (Ed448, pure, empty context): (secret, public, message, signature).
const ED448_VECTORS: [(&str, &str, &str, &str); 3] = [
    (
        "6c82a562cb808d10d632be89c8513ebf6c929f34ddfa8c9f63c9960ef6e348a3528c8a3fcc2f044e39a3fc5b94492f8f032e7549a20098f95b",
        "5fd7449b59b461fd2ce787ec616ad46a1da1342485a70e1f8a0ea75d80e96778edf124769b46c7061bd6783df1e50f6cd1fa1abeafe8256180",
        "",
        "533a37f6bbe457251f023c0d88f976ae2dfb504a843e34d2074fd823d41a591f2b233f034f628281f2fd7a22ddd47d7828c59bd0a21bfd3980ff0d2028d4b18a9df63e006c5d1c2d345b925d8dc00b4104852db99ac5c7cdda8530a113a0f4dbb61149f05a7363268c71d95808ff2e652600",
    ),
    (
        "c4eab05d357007c632f3dbb48489924d552b08fe0c353a0d4a1f00acda2c463afbea67c5e8d2877c5e3bc397a659949ef8021e954e0a12274e",
        "43ba28f430cdff456ae531545f7ecd0ac834a55d9358c0372bfa0c6c6798c0866aea01eb00742802b8438ea4cb82169c235160627b4c3a9480",
        "03",
        "26b8f91727bd62897af15e41eb43c377efb9c610d48f2335cb0bd0087810f4352541b143c4b981b7e18f62de8ccdf633fc1bf037ab7cd779805e0dbcc0aae1cbcee1afb2e027df36bc04dcecbf154336c19f0af7e0a6472905e799f1953d2a0ff3348ab21aa4adafd1d234441cf807c03a00",
    ),
    (
        "2ec5fe3c17045abdb136a5e6a913e32ab75ae68b53d2fc149b77e504132d37569b7e766ba74a19bd6162343a21c8590aa9cebca9014c636df5",
        "79756f014dcfe2079f5dd9e718be4171e2ef2486a08f25186f6bff43a9936b9bfe12402b08ae65798a3d81e22e9ec80e7690862ef3d4ed3a00",
        "15777532b0bdd0d1389f636c5f6b9ba734c90af572877e2d272dd078aa1e567cfa80e12928bb542330e8409f3174504107ecd5efac61ae7504dabe2a602ede89e5cca6257a7c77e27a702b3ae39fc769fc54f2395ae6a1178cab4738e543072fc1c177fe71e92e25bf03e4ecb72f47b64d0465aaea4c7fad372536c8ba516a6039c3c2a39f0e4d832be432dfa9a706a6e5c7e19f397964ca4258002f7c0541b590316dbc5622b6b2a6fe7a4abffd96105eca76ea7b98816af0748c10df048ce012d901015a51f189f3888145c03650aa23ce894c3bd889e030d565071c59f409a9981b51878fd6fc110624dcbcde0bf7a69ccce38fabdf86f3bef6044819de11",
        "c650ddbb0601c19ca11439e1640dd931f43c518ea5bea70d3dcde5f4191fe53f00cf966546b72bcc7d58be2b9badef28743954e3a44a23f880e8d4f1cfce2d7a61452d26da05896f0a50da66a239a8a188b6d825b3305ad77b73fbac0836ecc60987fd08527c1a8e80d5823e65cafe2a3d00",
    ),
];

/// RFC 8032 §7.1 (Ed25519), tests 1 and 2.
const ED25519_VECTORS: [(&str, &str, &str, &str); 2] = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
];

fn rfc8032<B: Backend>() {
    for (alg, vectors) in [
        (SigAlg::Ed448, &ED448_VECTORS[..]),
        (SigAlg::Ed25519, &ED25519_VECTORS[..]),
    ] {
        for (sk, pk, msg, sig) in vectors {
            let (sk, pk, msg, sig) = (h(sk), h(pk), h(msg), h(sig));
            assert_eq!(B::sig_public(alg, &sk).unwrap(), pk, "{alg:?} public key");
            assert_eq!(B::sign(alg, &sk, &msg).unwrap(), sig, "{alg:?} signature");
            B::verify(alg, &pk, &msg, &sig).unwrap();
        }
    }
}

fn rfc7748<B: Backend>() {
    // §5.2 single scalar multiplications (X448).
    for (k, u, out) in [
        (
            "3d262fddf9ec8e88495266fea19a34d28882acef045104d0d1aae121700a779c984c24f8cdd78fbff44943eba368f54b29259a4f1c600ad3",
            "06fce640fa3487bfda5f6cf2d5263f8aad88334cbd07437f020f08f9814dc031ddbdc38c19c6da2583fa5429db94ada18aa7a7fb4ef8a086",
            "ce3e4ff95a60dc6697da1db1d85e6afbdf79b50a2412d7546d5f239fe14fbaadeb445fc66a01b0779d98223961111e21766282f73dd96b6f",
        ),
        (
            "203d494428b8399352665ddca42f9de8fef600908e0d461cb021f8c538345dd77c3e4806e25f46d3315c44e0a5b4371282dd2c8d5be3095f",
            "0fbcc2f993cd56d3305b0b7d9e55d4c1a8fb5dbb52f8e9a1e9b6201b165d015894e56c4d3570bee52fe205e28a78b91cdfbde71ce8d157db",
            "884a02576239ff7a2f2f63b2db6a9ff37047ac13568e1e30fe63c4a7ad1b3ee3a5700df34321d62077e63633c575c1c954514e99da7c179d",
        ),
    ] {
        assert_eq!(
            B::dh(DhAlg::X448, &h(k), &h(u)).unwrap().expose(),
            &h(out)[..]
        );
    }
    // §5.2 iterations: k = u = 5; k, u = X448(k, u), k.
    let mut k = vec![0u8; 56];
    k[0] = 5;
    let mut u = k.clone();
    for i in 1..=1000 {
        let next = B::dh(DhAlg::X448, &k, &u).unwrap().expose().to_vec();
        u = std::mem::replace(&mut k, next);
        if i == 1 {
            assert_eq!(
                k,
                h(
                    "3f482c8a9f19b01e6c46ee9711d9dc14fd4bf67af30765c2ae2b846a4d23a8cd0db897086239492caf350b51f833868b9bc2b3bca9cf4113"
                )
            );
        }
    }
    assert_eq!(
        k,
        h(
            "aa3b4749d55b9daf1e5b00288826c467274ce3ebbdd5c17b975e09d4af6c67cf10d087202db88286e2b79fceea3ec353ef54faa26e219f38"
        )
    );

    // §6.2 (X448) and §6.1 (X25519) Diffie-Hellman.
    for (alg, a_sk, a_pk, b_sk, b_pk, shared) in [
        (
            DhAlg::X448,
            "9a8f4925d1519f5775cf46b04b5800d4ee9ee8bae8bc5565d498c28dd9c9baf574a9419744897391006382a6f127ab1d9ac2d8c0a598726b",
            "9b08f7cc31b7e3e67d22d5aea121074a273bd2b83de09c63faa73d2c22c5d9bbc836647241d953d40c5b12da88120d53177f80e532c41fa0",
            "1c306a7ac2a0e2e0990b294470cba339e6453772b075811d8fad0d1d6927c120bb5ee8972b0d3e21374c9c921b09d1b0366f10b65173992d",
            "3eb7a829b0cd20f5bcfc0b599b6feccf6da4627107bdb0d4f345b43027d8b972fc3e34fb4232a13ca706dcb57aec3dae07bdc1c67bf33609",
            "07fff4181ac6cc95ec1c16a94a0f74d12da232ce40a77552281d282bb60c0b56fd2464c335543936521c24403085d59a449a5037514a879d",
        ),
        (
            DhAlg::X25519,
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
            "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
            "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
            "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742",
        ),
    ] {
        assert_eq!(
            B::dh_public(alg, &h(a_sk)).unwrap(),
            h(a_pk),
            "{alg:?} alice public"
        );
        assert_eq!(
            B::dh_public(alg, &h(b_sk)).unwrap(),
            h(b_pk),
            "{alg:?} bob public"
        );
        assert_eq!(
            B::dh(alg, &h(a_sk), &h(b_pk)).unwrap().expose(),
            &h(shared)[..]
        );
        assert_eq!(
            B::dh(alg, &h(b_sk), &h(a_pk)).unwrap().expose(),
            &h(shared)[..]
        );
    }
}

fn hashes_and_kdf<B: Backend>() {
    assert_eq!(
        B::hash(HashAlg::Sha256, b"abc").unwrap(),
        h("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    );
    assert_eq!(
        B::hash(HashAlg::Sha512, b"abc").unwrap(),
        h(
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        )
    );
    // RFC 5869 A.1.
    let prk = B::hkdf_extract(
        HashAlg::Sha256,
        &h("000102030405060708090a0b0c"),
        &[0x0b; 22],
    )
    .unwrap();
    assert_eq!(
        prk.expose(),
        &h("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5")[..]
    );
    let okm = B::hkdf_expand(
        HashAlg::Sha256,
        prk.expose(),
        &h("f0f1f2f3f4f5f6f7f8f9"),
        42,
    )
    .unwrap();
    assert_eq!(
        okm.expose(),
        &h("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
            [..]
    );
    // Too long an output, too short a PRK: errors, not panics.
    assert_eq!(
        B::hkdf_expand(HashAlg::Sha512, &[1; 64], b"", 255 * 64 + 1).unwrap_err(),
        CryptoError::HkdfOutputLengthInvalid
    );
    assert!(B::hkdf_expand(HashAlg::Sha512, &[1; 10], b"", 16).is_err());
    // Through the OpenMLS trait.
    let crypto = Crypto::<B>::new();
    assert_eq!(
        crypto.hash(HashType::Sha2_512, b"abc").unwrap(),
        B::hash(HashAlg::Sha512, b"abc").unwrap()
    );
    assert_eq!(
        crypto.hash(HashType::Sha2_384, b"abc").unwrap_err(),
        CryptoError::UnsupportedHashAlgorithm
    );
    let mac = crypto
        .hmac(
            HashType::Sha2_256,
            b"key",
            b"The quick brown fox jumps over the lazy dog",
        )
        .unwrap();
    assert_eq!(
        mac.as_slice(),
        &h("f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8")[..]
    );
}

// ------------------------------------------------------------------ behaviour and bad input

fn signatures<B: Backend>() {
    let crypto = Crypto::<B>::new();
    for scheme in [SignatureScheme::ED448, SignatureScheme::ED25519] {
        let (sk, pk) = crypto.signature_key_gen(scheme).unwrap();
        let sig = crypto.sign(scheme, b"message", &sk).unwrap();
        crypto
            .verify_signature(scheme, b"message", &pk, &sig)
            .unwrap();
        // Tampered message, tampered signature, truncated signature, wrong key.
        assert_eq!(
            crypto
                .verify_signature(scheme, b"messagf", &pk, &sig)
                .unwrap_err(),
            CryptoError::InvalidSignature
        );
        let mut bad = sig.clone();
        bad[3] ^= 1;
        assert_eq!(
            crypto
                .verify_signature(scheme, b"message", &pk, &bad)
                .unwrap_err(),
            CryptoError::InvalidSignature
        );
        assert!(
            crypto
                .verify_signature(scheme, b"message", &pk, &sig[..sig.len() - 1])
                .is_err()
        );
        assert!(
            crypto
                .verify_signature(scheme, b"message", &pk, &[])
                .is_err()
        );
        let (_, other_pk) = crypto.signature_key_gen(scheme).unwrap();
        assert!(
            crypto
                .verify_signature(scheme, b"message", &other_pk, &sig)
                .is_err()
        );
        // Wrong key lengths.
        assert!(
            crypto
                .verify_signature(scheme, b"message", &pk[1..], &sig)
                .is_err()
        );
        assert!(crypto.sign(scheme, b"message", &sk[1..]).is_err());
        // Garbage public key bytes: an error, never a panic.
        assert!(
            crypto
                .verify_signature(scheme, b"m", &vec![0xff; pk.len()], &sig)
                .is_err()
        );

        // The key pair type signs like the trait.
        let pair = SignatureKeyPair::<B>::from_private_bytes(scheme, &SecretBytes::from_slice(&sk))
            .unwrap();
        assert_eq!(pair.public_key().as_bytes(), &pk[..]);
        assert_eq!(Signer::signature_scheme(&pair), scheme);
        let sig2 = Signer::sign(&pair, b"message").unwrap();
        pair.public_key().verify::<B>(b"message", &sig2).unwrap();
        assert!(format!("{pair:?}").contains("redacted"));
        assert!(!format!("{pair:?}").contains(&hex::encode(&sk)));
    }
    assert_eq!(
        crypto
            .signature_key_gen(SignatureScheme::ECDSA_SECP256R1_SHA256)
            .unwrap_err(),
        CryptoError::UnsupportedSignatureScheme
    );
    assert!(SignatureKeyPair::<B>::generate(SignatureScheme::ECDSA_SECP384R1_SHA384).is_err());
    assert!(
        SignatureKeyPair::<B>::from_private_bytes(
            SignatureScheme::ED448,
            &SecretBytes::from_slice(&[0; 56])
        )
        .is_err()
    );
}

fn aead<B: Backend>() {
    let crypto = Crypto::<B>::new();
    for (alg, key_len) in [(AeadType::Aes256Gcm, 32), (AeadType::Aes128Gcm, 16)] {
        let key = vec![7u8; key_len];
        let nonce = [9u8; 12];
        let ct = crypto
            .aead_encrypt(alg, &key, b"plaintext", &nonce, b"aad")
            .unwrap();
        assert_eq!(ct.len(), 9 + 16);
        assert_eq!(
            crypto.aead_decrypt(alg, &key, &ct, &nonce, b"aad").unwrap(),
            b"plaintext"
        );
        let mut bad_tag = ct.clone();
        *bad_tag.last_mut().unwrap() ^= 1;
        assert_eq!(
            crypto
                .aead_decrypt(alg, &key, &bad_tag, &nonce, b"aad")
                .unwrap_err(),
            CryptoError::AeadDecryptionError
        );
        assert!(
            crypto
                .aead_decrypt(alg, &key, &ct, &nonce, b"other aad")
                .is_err()
        );
        assert!(
            crypto
                .aead_decrypt(alg, &key, &ct[..ct.len() - 1], &nonce, b"aad")
                .is_err()
        );
        assert!(
            crypto
                .aead_decrypt(alg, &key, &ct[..10], &nonce, b"aad")
                .is_err()
        );
        assert!(crypto.aead_decrypt(alg, &key, &[], &nonce, b"aad").is_err());
        assert_eq!(
            crypto
                .aead_encrypt(alg, &key[1..], b"p", &nonce, b"")
                .unwrap_err(),
            CryptoError::InvalidLength
        );
        assert_eq!(
            crypto
                .aead_encrypt(alg, &key, b"p", &nonce[1..], b"")
                .unwrap_err(),
            CryptoError::InvalidLength
        );
        assert!(
            crypto
                .aead_decrypt(alg, &key, &ct, &nonce[1..], b"aad")
                .is_err()
        );
    }
    assert_eq!(
        crypto
            .aead_encrypt(AeadType::ChaCha20Poly1305, &[0; 32], b"p", &[0; 12], b"")
            .unwrap_err(),
        CryptoError::UnsupportedAeadAlgorithm
    );
    // AES-256-GCM, a known answer from the backend's primitive (empty plaintext and AAD,
    // zero key and nonce: the NIST GCM test case 13 tag).
    assert_eq!(
        B::aead_seal(AeadAlg::Aes256Gcm, &[0; 32], &[0; 12], b"", b"").unwrap(),
        h("530f8afbc74536b9a963b4f1c4cb738b")
    );
}

fn dh_bad_input<B: Backend>() {
    for alg in [DhAlg::X448, DhAlg::X25519] {
        let n = alg.key_len();
        let sk = vec![3u8; n];
        // Low-order point (zero) gives an all-zero secret: refused.
        assert!(
            B::dh(alg, &sk, &vec![0u8; n]).is_err(),
            "{alg:?} zero point"
        );
        assert!(
            B::dh(alg, &sk, &vec![1u8; n - 1]).is_err(),
            "{alg:?} short point"
        );
        assert!(
            B::dh(alg, &sk[1..], &B::dh_public(alg, &sk).unwrap()).is_err(),
            "{alg:?} short key"
        );
        assert!(B::dh_public(alg, &sk[1..]).is_err());
    }
}

fn hpke<B: Backend>() {
    let crypto = Crypto::<B>::new();
    for config in [SUITE4_HPKE, SUITE1_HPKE] {
        let kp = crypto
            .derive_hpke_keypair(copy(&config), b"input key material")
            .unwrap();
        let again = crypto
            .derive_hpke_keypair(copy(&config), b"input key material")
            .unwrap();
        assert_eq!(&*kp.private, &*again.private, "deterministic");
        assert_eq!(kp.public, again.public);
        let other = crypto
            .derive_hpke_keypair(copy(&config), b"other key material")
            .unwrap();
        assert_ne!(kp.public, other.public);

        let ct = crypto
            .hpke_seal(copy(&config), &kp.public, b"info", b"aad", b"hello")
            .unwrap();
        let pt = crypto
            .hpke_open(copy(&config), &ct, &kp.private, b"info", b"aad")
            .unwrap();
        assert_eq!(pt, b"hello");
        // Fresh ephemeral key each time.
        let ct2 = crypto
            .hpke_seal(copy(&config), &kp.public, b"info", b"aad", b"hello")
            .unwrap();
        assert_ne!(ct.kem_output, ct2.kem_output);

        // Wrong key, info, aad; truncated ciphertext; bad tag; tampered or short kem output.
        let err = CryptoError::HpkeDecryptionError;
        assert_eq!(
            crypto
                .hpke_open(copy(&config), &ct, &other.private, b"info", b"aad")
                .unwrap_err(),
            err
        );
        assert_eq!(
            crypto
                .hpke_open(copy(&config), &ct, &kp.private, b"infx", b"aad")
                .unwrap_err(),
            err
        );
        assert_eq!(
            crypto
                .hpke_open(copy(&config), &ct, &kp.private, b"info", b"aax")
                .unwrap_err(),
            err
        );
        let mut short = ct.clone();
        short.ciphertext = ct.ciphertext.as_slice()[..3].to_vec().into();
        assert_eq!(
            crypto
                .hpke_open(copy(&config), &short, &kp.private, b"info", b"aad")
                .unwrap_err(),
            err
        );
        let mut tag = ct.ciphertext.as_slice().to_vec();
        *tag.last_mut().unwrap() ^= 0x80;
        let bad_tag = HpkeCiphertext {
            kem_output: ct.kem_output.clone(),
            ciphertext: tag.into(),
        };
        assert_eq!(
            crypto
                .hpke_open(copy(&config), &bad_tag, &kp.private, b"info", b"aad")
                .unwrap_err(),
            err
        );
        let mut enc = ct.kem_output.as_slice().to_vec();
        enc[0] ^= 1;
        let bad_enc = HpkeCiphertext {
            kem_output: enc.clone().into(),
            ciphertext: ct.ciphertext.clone(),
        };
        assert_eq!(
            crypto
                .hpke_open(copy(&config), &bad_enc, &kp.private, b"info", b"aad")
                .unwrap_err(),
            err
        );
        let short_enc = HpkeCiphertext {
            kem_output: enc[1..].to_vec().into(),
            ciphertext: ct.ciphertext.clone(),
        };
        assert_eq!(
            crypto
                .hpke_open(copy(&config), &short_enc, &kp.private, b"info", b"aad")
                .unwrap_err(),
            err
        );
        // A public key of the wrong length is refused at seal.
        assert!(
            crypto
                .hpke_seal(copy(&config), &kp.public[1..], b"info", b"aad", b"x")
                .is_err()
        );

        // Export: sender and receiver agree; a different context differs.
        let (enc, s) = crypto
            .hpke_setup_sender_and_export(copy(&config), &kp.public, b"info", b"ctx", 48)
            .unwrap();
        let r = crypto
            .hpke_setup_receiver_and_export(copy(&config), &enc, &kp.private, b"info", b"ctx", 48)
            .unwrap();
        assert_eq!(&*s, &*r);
        assert_eq!(s.len(), 48);
        let r2 = crypto
            .hpke_setup_receiver_and_export(copy(&config), &enc, &kp.private, b"info", b"ctz", 48)
            .unwrap();
        assert_ne!(&*s, &*r2);
        assert!(
            format!("{s:?}").contains("***"),
            "exporter secret is redacted"
        );
    }
    // Unsupported configurations are refused, never half-served.
    let p256 = HpkeConfig(
        HpkeKemType::DhKemP256,
        HpkeKdfType::HkdfSha256,
        HpkeAeadType::AesGcm128,
    );
    assert!(crypto.derive_hpke_keypair(p256, b"ikm").is_err());
    let chacha = HpkeConfig(
        HpkeKemType::DhKem448,
        HpkeKdfType::HkdfSha512,
        HpkeAeadType::ChaCha20Poly1305,
    );
    assert!(crypto.hpke_seal(chacha, &[0; 56], b"", b"", b"").is_err());
    let export_only = HpkeConfig(
        HpkeKemType::DhKem448,
        HpkeKdfType::HkdfSha512,
        HpkeAeadType::Export,
    );
    let kp = crypto
        .derive_hpke_keypair(copy(&SUITE4_HPKE), b"ikm")
        .unwrap();
    assert!(
        crypto
            .hpke_seal(copy(&export_only), &kp.public, b"", b"", b"")
            .is_err()
    );
    let (enc, s) = crypto
        .hpke_setup_sender_and_export(copy(&export_only), &kp.public, b"", b"c", 32)
        .unwrap();
    let r = crypto
        .hpke_setup_receiver_and_export(export_only, &enc, &kp.private, b"", b"c", 32)
        .unwrap();
    assert_eq!(&*s, &*r);
}

/// DHKEM(X448, HKDF-SHA512) + HKDF-SHA512 + AES-256-GCM known answers, derived step by step
/// from RFC 9180 §4-5 here with the backend's primitives (independently of the crate's HPKE
/// code): DeriveKeyPair, Encap with a fixed ephemeral key, KeySchedule, Seal; the provider
/// must open the result and derive the same key pair.
fn hpke_x448_known_answer<B: Backend>() {
    fn extract<B: Backend>(suite: &[u8], salt: &[u8], label: &[u8], ikm: &[u8]) -> Vec<u8> {
        let input = [b"HPKE-v1".as_slice(), suite, label, ikm].concat();
        B::hkdf_extract(HashAlg::Sha512, salt, &input)
            .unwrap()
            .expose()
            .to_vec()
    }
    fn expand<B: Backend>(
        suite: &[u8],
        prk: &[u8],
        label: &[u8],
        info: &[u8],
        len: u16,
    ) -> Vec<u8> {
        let input = [&len.to_be_bytes()[..], b"HPKE-v1", suite, label, info].concat();
        B::hkdf_expand(HashAlg::Sha512, prk, &input, len as usize)
            .unwrap()
            .expose()
            .to_vec()
    }
    let kem_suite = b"KEM\x00\x21";
    let hpke_suite = b"HPKE\x00\x21\x00\x03\x00\x02";
    let derive = |ikm: &[u8]| {
        let prk = extract::<B>(kem_suite, b"", b"dkp_prk", ikm);
        let sk = expand::<B>(kem_suite, &prk, b"sk", b"", 56);
        let pk = B::dh_public(DhAlg::X448, &sk).unwrap();
        (sk, pk)
    };
    let (sk_r, pk_r) = derive(b"recipient ikm");
    let (sk_e, pk_e) = derive(b"ephemeral ikm");

    let crypto = Crypto::<B>::new();
    let kp = crypto
        .derive_hpke_keypair(copy(&SUITE4_HPKE), b"recipient ikm")
        .unwrap();
    assert_eq!(&*kp.private, &sk_r[..], "DeriveKeyPair private key");
    assert_eq!(kp.public, pk_r, "DeriveKeyPair public key");

    // Encap.
    let dh = B::dh(DhAlg::X448, &sk_e, &pk_r).unwrap();
    let kem_context = [pk_e.as_slice(), pk_r.as_slice()].concat();
    let eae_prk = extract::<B>(kem_suite, b"", b"eae_prk", dh.expose());
    let shared = expand::<B>(kem_suite, &eae_prk, b"shared_secret", &kem_context, 64);
    // KeySchedule (mode_base).
    let info = b"eth-mls kat";
    let psk_id_hash = extract::<B>(hpke_suite, b"", b"psk_id_hash", b"");
    let info_hash = extract::<B>(hpke_suite, b"", b"info_hash", info);
    let ctx = [&[0u8][..], &psk_id_hash, &info_hash].concat();
    let secret = extract::<B>(hpke_suite, &shared, b"secret", b"");
    let key = expand::<B>(hpke_suite, &secret, b"key", &ctx, 32);
    let nonce = expand::<B>(hpke_suite, &secret, b"base_nonce", &ctx, 12);
    let ct = B::aead_seal(AeadAlg::Aes256Gcm, &key, &nonce, b"aad", b"known answer").unwrap();

    let input = HpkeCiphertext {
        kem_output: pk_e.into(),
        ciphertext: ct.into(),
    };
    let opened = crypto
        .hpke_open(copy(&SUITE4_HPKE), &input, &sk_r, info, b"aad")
        .unwrap();
    assert_eq!(opened, b"known answer");

    // Export from the same context.
    let exp = expand::<B>(hpke_suite, &secret, b"exp", &ctx, 64);
    let exported = expand::<B>(hpke_suite, &exp, b"sec", b"exporter", 32);
    let got = crypto
        .hpke_setup_receiver_and_export(
            copy(&SUITE4_HPKE),
            input.kem_output.as_slice(),
            &sk_r,
            info,
            b"exporter",
            32,
        )
        .unwrap();
    assert_eq!(&*got, &exported[..]);
}

fn ciphersuites<B: Backend>() {
    let crypto = Crypto::<B>::new();
    assert_eq!(
        crypto.supported_ciphersuites(),
        SUPPORTED_CIPHERSUITES.to_vec()
    );
    assert_eq!(
        crypto.supported_ciphersuites()[0],
        Ciphersuite::MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448
    );
    crypto
        .supports(Ciphersuite::MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448)
        .unwrap();
    crypto
        .supports(Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
        .unwrap();
    for cs in [
        Ciphersuite::MLS_128_DHKEMP256_AES128GCM_SHA256_P256,
        Ciphersuite::MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519,
        Ciphersuite::MLS_256_DHKEMP521_AES256GCM_SHA512_P521,
        Ciphersuite::MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448,
        Ciphersuite::MLS_256_DHKEMP384_AES256GCM_SHA384_P384,
    ] {
        assert_eq!(
            crypto.supports(cs).unwrap_err(),
            CryptoError::UnsupportedCiphersuite,
            "{cs:?}"
        );
    }
}

macro_rules! backend_suite {
    ($module:ident, $backend:ty) => {
        mod $module {
            #[test]
            fn rfc8032_signatures() {
                super::rfc8032::<$backend>();
            }
            #[test]
            fn rfc7748_dh() {
                super::rfc7748::<$backend>();
            }
            #[test]
            fn hashes_and_kdf() {
                super::hashes_and_kdf::<$backend>();
            }
            #[test]
            fn signatures() {
                super::signatures::<$backend>();
            }
            #[test]
            fn aead() {
                super::aead::<$backend>();
            }
            #[test]
            fn dh_bad_input() {
                super::dh_bad_input::<$backend>();
            }
            #[test]
            fn hpke() {
                super::hpke::<$backend>();
            }
            #[test]
            fn hpke_x448_known_answer() {
                super::hpke_x448_known_answer::<$backend>();
            }
            #[test]
            fn ciphersuites() {
                super::ciphersuites::<$backend>();
            }
        }
    };
}

#[cfg(feature = "rustcrypto")]
backend_suite!(rustcrypto, eth_mls_crypto::RustCrypto);
#[cfg(feature = "openssl")]
backend_suite!(openssl, eth_mls_crypto::OpenSsl);

/// Seal on one backend, open on the other; same signatures and derivations on both.
#[cfg(all(feature = "rustcrypto", feature = "openssl"))]
mod cross_backend {
    use super::*;
    use eth_mls_crypto::{OpenSsl, RustCrypto};

    fn one_way<S: Backend, R: Backend>() {
        let (s, r) = (Crypto::<S>::new(), Crypto::<R>::new());
        for config in [SUITE4_HPKE, SUITE1_HPKE] {
            let kp = r.derive_hpke_keypair(copy(&config), b"cross").unwrap();
            let kp_s = s.derive_hpke_keypair(copy(&config), b"cross").unwrap();
            assert_eq!(kp.public, kp_s.public);
            let ct = s
                .hpke_seal(copy(&config), &kp.public, b"i", b"a", b"across backends")
                .unwrap();
            assert_eq!(
                r.hpke_open(copy(&config), &ct, &kp.private, b"i", b"a")
                    .unwrap(),
                b"across backends"
            );
            let (enc, x) = s
                .hpke_setup_sender_and_export(copy(&config), &kp.public, b"i", b"c", 32)
                .unwrap();
            let y = r
                .hpke_setup_receiver_and_export(copy(&config), &enc, &kp.private, b"i", b"c", 32)
                .unwrap();
            assert_eq!(&*x, &*y);
        }
        for scheme in [SignatureScheme::ED448, SignatureScheme::ED25519] {
            let (sk, pk) = s.signature_key_gen(scheme).unwrap();
            let sig = s.sign(scheme, b"m", &sk).unwrap();
            r.verify_signature(scheme, b"m", &pk, &sig).unwrap();
            // Ed25519/Ed448 are deterministic: both backends produce the same bytes.
            assert_eq!(r.sign(scheme, b"m", &sk).unwrap(), sig);
        }
        let key = [5u8; 32];
        let ct = s
            .aead_encrypt(AeadType::Aes256Gcm, &key, b"x", &[1; 12], b"y")
            .unwrap();
        assert_eq!(
            r.aead_decrypt(AeadType::Aes256Gcm, &key, &ct, &[1; 12], b"y")
                .unwrap(),
            b"x"
        );
        let a = s
            .hkdf_expand(HashType::Sha2_512, &[9; 64], b"info", 100)
            .unwrap();
        let b = r
            .hkdf_expand(HashType::Sha2_512, &[9; 64], b"info", 100)
            .unwrap();
        assert_eq!(a.as_slice(), b.as_slice());
    }

    #[test]
    fn rustcrypto_to_openssl() {
        one_way::<RustCrypto, OpenSsl>();
    }

    #[test]
    fn openssl_to_rustcrypto() {
        one_way::<OpenSsl, RustCrypto>();
    }
}
