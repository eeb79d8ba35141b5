//! Crypto backends compared on the same work: per backend and suite, sign/verify, DH, HPKE
//! seal/open of 256 bytes, AES-256-GCM of 1 KiB and 64 KiB, HKDF expand. The `raw-openssl`
//! group does the same operations directly with the `openssl` crate, from the same raw key
//! bytes: the reference for the ratios that `cargo xtask bench` prints.
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use eth_mls_crypto::{Backend, Crypto, OpenSsl, RustCrypto};
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::types::{
    AeadType, HashType, HpkeAeadType, HpkeConfig, HpkeKdfType, HpkeKemType, SignatureScheme,
};
use std::hint::black_box;

const MSG: &[u8] = &[0x5a; 256];

fn suite4_hpke() -> HpkeConfig {
    HpkeConfig(
        HpkeKemType::DhKem448,
        HpkeKdfType::HkdfSha512,
        HpkeAeadType::AesGcm256,
    )
}
fn suite1_hpke() -> HpkeConfig {
    HpkeConfig(
        HpkeKemType::DhKem25519,
        HpkeKdfType::HkdfSha256,
        HpkeAeadType::AesGcm128,
    )
}

fn backend<B: Backend>(c: &mut Criterion) {
    let crypto = Crypto::<B>::new();
    let mut g = c.benchmark_group(B::NAME);
    for (name, scheme) in [
        ("ed448", SignatureScheme::ED448),
        ("ed25519", SignatureScheme::ED25519),
    ] {
        let (sk, pk) = crypto.signature_key_gen(scheme).unwrap();
        let sig = crypto.sign(scheme, MSG, &sk).unwrap();
        g.bench_function(format!("{name}_sign"), |b| {
            b.iter(|| crypto.sign(scheme, black_box(MSG), &sk).unwrap())
        });
        g.bench_function(format!("{name}_verify"), |b| {
            b.iter(|| {
                crypto
                    .verify_signature(scheme, black_box(MSG), &pk, &sig)
                    .unwrap()
            })
        });
    }
    for (name, config) in [("x448", suite4_hpke()), ("x25519", suite1_hpke())] {
        let a = crypto
            .derive_hpke_keypair(HpkeConfig(config.0, config.1, config.2), b"a")
            .unwrap();
        let bk = crypto
            .derive_hpke_keypair(HpkeConfig(config.0, config.1, config.2), b"b")
            .unwrap();
        let alg = if name == "x448" {
            eth_mls_crypto::DhAlg::X448
        } else {
            eth_mls_crypto::DhAlg::X25519
        };
        g.bench_function(format!("{name}_dh"), |b| {
            b.iter(|| B::dh(alg, &a.private, black_box(&bk.public)).unwrap())
        });
        let ct = crypto
            .hpke_seal(
                HpkeConfig(config.0, config.1, config.2),
                &bk.public,
                b"info",
                b"aad",
                MSG,
            )
            .unwrap();
        g.bench_function(format!("{name}_hpke_seal_256"), |b| {
            b.iter(|| {
                crypto
                    .hpke_seal(
                        HpkeConfig(config.0, config.1, config.2),
                        &bk.public,
                        b"info",
                        b"aad",
                        black_box(MSG),
                    )
                    .unwrap()
            })
        });
        g.bench_function(format!("{name}_hpke_open_256"), |b| {
            b.iter(|| {
                crypto
                    .hpke_open(
                        HpkeConfig(config.0, config.1, config.2),
                        &ct,
                        &bk.private,
                        b"info",
                        b"aad",
                    )
                    .unwrap()
            })
        });
    }
    let key = [7u8; 32];
    let nonce = [1u8; 12];
    for size in [1024usize, 64 * 1024] {
        let data = vec![0xa5u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(
            BenchmarkId::new("aes256gcm_seal", size),
            &data,
            |b, data| {
                b.iter(|| {
                    crypto
                        .aead_encrypt(AeadType::Aes256Gcm, &key, black_box(data), &nonce, b"")
                        .unwrap()
                })
            },
        );
    }
    g.throughput(Throughput::Elements(1));
    let prk = [3u8; 64];
    g.bench_function("hkdf_sha512_expand_64", |b| {
        b.iter(|| {
            crypto
                .hkdf_expand(HashType::Sha2_512, &prk, black_box(b"info"), 64)
                .unwrap()
        })
    });
    g.finish();
}

/// The same operations straight through the `openssl` crate: the reference.
fn raw_openssl(c: &mut Criterion) {
    use openssl::derive::Deriver;
    use openssl::pkey::{Id, PKey};
    use openssl::sign::{Signer, Verifier};
    let crypto = Crypto::<OpenSsl>::new();
    let mut g = c.benchmark_group("raw-openssl");
    for (name, scheme, id) in [
        ("ed448", SignatureScheme::ED448, Id::ED448),
        ("ed25519", SignatureScheme::ED25519, Id::ED25519),
    ] {
        let (sk, pk) = crypto.signature_key_gen(scheme).unwrap();
        let sig = crypto.sign(scheme, MSG, &sk).unwrap();
        g.bench_function(format!("{name}_sign"), |b| {
            b.iter(|| {
                let key = PKey::private_key_from_raw_bytes(&sk, id).unwrap();
                Signer::new_without_digest(&key)
                    .unwrap()
                    .sign_oneshot_to_vec(black_box(MSG))
                    .unwrap()
            })
        });
        g.bench_function(format!("{name}_verify"), |b| {
            b.iter(|| {
                let key = PKey::public_key_from_raw_bytes(&pk, id).unwrap();
                assert!(
                    Verifier::new_without_digest(&key)
                        .unwrap()
                        .verify_oneshot(&sig, black_box(MSG))
                        .unwrap()
                )
            })
        });
    }
    for (name, config, id) in [
        ("x448", suite4_hpke(), Id::X448),
        ("x25519", suite1_hpke(), Id::X25519),
    ] {
        let a = crypto
            .derive_hpke_keypair(HpkeConfig(config.0, config.1, config.2), b"a")
            .unwrap();
        let bk = crypto.derive_hpke_keypair(config, b"b").unwrap();
        g.bench_function(format!("{name}_dh"), |b| {
            b.iter(|| {
                let ours = PKey::private_key_from_raw_bytes(&a.private, id).unwrap();
                let theirs = PKey::public_key_from_raw_bytes(black_box(&bk.public), id).unwrap();
                let mut d = Deriver::new(&ours).unwrap();
                d.set_peer(&theirs).unwrap();
                d.derive_to_vec().unwrap()
            })
        });
    }
    let key = [7u8; 32];
    let nonce = [1u8; 12];
    for size in [1024usize, 64 * 1024] {
        let data = vec![0xa5u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(
            BenchmarkId::new("aes256gcm_seal", size),
            &data,
            |b, data| {
                b.iter(|| {
                    let mut tag = [0u8; 16];
                    let mut out = openssl::symm::encrypt_aead(
                        openssl::symm::Cipher::aes_256_gcm(),
                        &key,
                        Some(&nonce),
                        b"",
                        black_box(data),
                        &mut tag,
                    )
                    .unwrap();
                    out.extend_from_slice(&tag);
                    out
                })
            },
        );
    }
    g.throughput(Throughput::Elements(1));
    let prk = [3u8; 64];
    g.bench_function("hkdf_sha512_expand_64", |b| {
        b.iter(|| {
            use openssl::pkey_ctx::{HkdfMode, PkeyCtx};
            let mut ctx = PkeyCtx::new_id(Id::HKDF).unwrap();
            ctx.derive_init().unwrap();
            ctx.set_hkdf_md(openssl::md::Md::sha512()).unwrap();
            ctx.set_hkdf_mode(HkdfMode::EXPAND_ONLY).unwrap();
            ctx.set_hkdf_key(&prk).unwrap();
            ctx.add_hkdf_info(black_box(b"info")).unwrap();
            let mut out = vec![0u8; 64];
            ctx.derive(Some(&mut out)).unwrap();
            out
        })
    });
    g.finish();
}

fn all(c: &mut Criterion) {
    backend::<RustCrypto>(c);
    backend::<OpenSsl>(c);
    raw_openssl(c);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(300)).measurement_time(std::time::Duration::from_secs(1));
    targets = all
}
criterion_main!(benches);
