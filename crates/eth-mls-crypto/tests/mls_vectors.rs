//! The official MLS test vectors (mlswg/mls-implementations) for cipher suites 4 and 1,
//! checked through this crate's provider: the RFC 9420 derivations are computed here with the
//! provider's `OpenMlsCrypto` methods, and the group-level vectors (Welcome, passive client)
//! run through openmls's public API on top of the provider.
//!
//! The folder is `../shared/testdata/mls-vectors/` beside the repository, or the path in the
//! environment variable `MLS_TEST_VECTORS`. A missing folder is a failure, never a skip.
//! Every file prints how many suite 4 and suite 1 entries passed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use eth_mls_crypto::{Backend, Crypto, DhAlg, Provider};
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls::schedule::PreSharedKeyId;
use openmls_traits::OpenMlsProvider;
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::storage::StorageProvider as _;
use openmls_traits::types::{HpkeCiphertext, HpkePrivateKey};
use serde_json::Value;

#[path = "support/passive.rs"]
mod passive;
use passive::{KeyPackageBundleRecord, PrivateKeyRecord, under_faketime};

// ------------------------------------------------------------------ harness

fn vectors_dir() -> PathBuf {
    let dir = std::env::var_os("MLS_TEST_VECTORS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/mls-vectors"),
        PathBuf::from,
    );
    assert!(
        dir.join("crypto-basics.json").is_file(),
        "MLS test vectors not found at {} (set MLS_TEST_VECTORS to a copy of \
         mlswg/mls-implementations/test-vectors)",
        dir.display()
    );
    dir
}

fn load(file: &str) -> Vec<Value> {
    let path = vectors_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn hx(v: &Value, key: &str) -> Vec<u8> {
    let s = v[key]
        .as_str()
        .unwrap_or_else(|| panic!("field {key} missing"));
    hex::decode(s).unwrap_or_else(|e| panic!("field {key}: {e}"))
}

fn num(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("field {key} missing"))
}

type Check = Result<(), String>;

fn ensure(ok: bool, what: impl Into<String>) -> Check {
    if ok { Ok(()) } else { Err(what.into()) }
}

fn eq(got: &[u8], want: &[u8], what: &str) -> Check {
    ensure(
        got == want,
        format!(
            "{what}: got {}, want {}",
            hex::encode(got),
            hex::encode(want)
        ),
    )
}

/// Runs `check` on every suite 4 and suite 1 entry of `file`; prints and returns counts, and
/// fails the test when any entry fails.
fn run_file(file: &str, backend: &str, mut check: impl FnMut(Ciphersuite, &Value) -> Check) {
    let mut counts: BTreeMap<u16, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for (i, entry) in load(file).iter().enumerate() {
        let suite = entry["cipher_suite"].as_u64().unwrap_or(0) as u16;
        let cs = match suite {
            1 => Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519,
            4 => Ciphersuite::MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448,
            _ => continue,
        };
        let count = counts.entry(suite).or_default();
        count.1 += 1;
        match check(cs, entry) {
            Ok(()) => count.0 += 1,
            Err(e) => failures.push(format!("{file} entry {i} (suite {suite}): {e}")),
        }
    }
    let report: Vec<String> = counts
        .iter()
        .rev()
        .map(|(s, (ok, all))| format!("suite {s}: {ok}/{all}"))
        .collect();
    println!("[{backend}] {file}: {}", report.join(", "));
    assert!(
        counts.contains_key(&4) && counts.contains_key(&1),
        "{file}: no suite 4 or suite 1 entries"
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ------------------------------------------------------------------ RFC 9420 helpers

fn varint(len: usize) -> Vec<u8> {
    match len {
        0..=0x3f => vec![len as u8],
        0x40..=0x3fff => ((len as u16) | 0x4000).to_be_bytes().to_vec(),
        _ => ((len as u32) | 0x8000_0000).to_be_bytes().to_vec(),
    }
}

fn vl(bytes: &[u8]) -> Vec<u8> {
    [varint(bytes.len()), bytes.to_vec()].concat()
}

/// GroupContext { version mls10, cipher_suite, group_id<V>, epoch, tree_hash<V>,
/// confirmed_transcript_hash<V>, extensions<V> (empty) }.
fn group_context(
    cs: Ciphersuite,
    group_id: &[u8],
    epoch: u64,
    tree_hash: &[u8],
    cth: &[u8],
) -> Vec<u8> {
    [
        &1u16.to_be_bytes()[..],
        &(cs as u16).to_be_bytes(),
        &vl(group_id),
        &epoch.to_be_bytes(),
        &vl(tree_hash),
        &vl(cth),
        &vl(b""),
    ]
    .concat()
}

fn mls_label(label: &[u8]) -> Vec<u8> {
    vl(&[b"MLS 1.0 ".as_slice(), label].concat())
}

struct Mls<B: Backend> {
    crypto: Crypto<B>,
    cs: Ciphersuite,
}

impl<B: Backend> Mls<B> {
    fn new(cs: Ciphersuite) -> Self {
        Self {
            crypto: Crypto::new(),
            cs,
        }
    }
    fn nh(&self) -> usize {
        self.cs.hash_length()
    }
    fn hash(&self, data: &[u8]) -> Vec<u8> {
        self.crypto.hash(self.cs.hash_algorithm(), data).unwrap()
    }
    fn extract(&self, salt: &[u8], ikm: &[u8]) -> Vec<u8> {
        let salt = if salt.is_empty() {
            vec![0; self.nh()]
        } else {
            salt.to_vec()
        };
        self.crypto
            .hkdf_extract(self.cs.hash_algorithm(), &salt, ikm)
            .unwrap()
            .as_slice()
            .to_vec()
    }
    fn expand_with_label(
        &self,
        secret: &[u8],
        label: &[u8],
        context: &[u8],
        len: usize,
    ) -> Vec<u8> {
        let info = [
            &(len as u16).to_be_bytes()[..],
            &mls_label(label),
            &vl(context),
        ]
        .concat();
        self.crypto
            .hkdf_expand(self.cs.hash_algorithm(), secret, &info, len)
            .unwrap()
            .as_slice()
            .to_vec()
    }
    fn derive_secret(&self, secret: &[u8], label: &[u8]) -> Vec<u8> {
        self.expand_with_label(secret, label, b"", self.nh())
    }
    fn derive_tree_secret(
        &self,
        secret: &[u8],
        label: &[u8],
        generation: u32,
        len: usize,
    ) -> Vec<u8> {
        self.expand_with_label(secret, label, &generation.to_be_bytes(), len)
    }
    fn ref_hash(&self, label: &[u8], value: &[u8]) -> Vec<u8> {
        self.hash(&[vl(label), vl(value)].concat())
    }
    fn sign_content(label: &[u8], content: &[u8]) -> Vec<u8> {
        [mls_label(label), vl(content)].concat()
    }
    fn encrypt_context(label: &[u8], context: &[u8]) -> Vec<u8> {
        [mls_label(label), vl(context)].concat()
    }
    fn nk(&self) -> usize {
        self.cs.aead_key_length()
    }
    fn nn(&self) -> usize {
        self.cs.aead_nonce_length()
    }
}

// ------------------------------------------------------------------ crypto-basics

fn crypto_basics<B: Backend>() {
    run_file("crypto-basics.json", B::NAME, |cs, v| {
        let m = Mls::<B>::new(cs);
        let r = &v["ref_hash"];
        eq(
            &m.ref_hash(r["label"].as_str().unwrap().as_bytes(), &hx(r, "value")),
            &hx(r, "out"),
            "ref_hash",
        )?;

        let e = &v["expand_with_label"];
        let out = m.expand_with_label(
            &hx(e, "secret"),
            e["label"].as_str().unwrap().as_bytes(),
            &hx(e, "context"),
            num(e, "length") as usize,
        );
        eq(&out, &hx(e, "out"), "expand_with_label")?;

        let d = &v["derive_secret"];
        eq(
            &m.derive_secret(&hx(d, "secret"), d["label"].as_str().unwrap().as_bytes()),
            &hx(d, "out"),
            "derive_secret",
        )?;

        let t = &v["derive_tree_secret"];
        let out = m.derive_tree_secret(
            &hx(t, "secret"),
            t["label"].as_str().unwrap().as_bytes(),
            num(t, "generation") as u32,
            num(t, "length") as usize,
        );
        eq(&out, &hx(t, "out"), "derive_tree_secret")?;

        let s = &v["sign_with_label"];
        let content =
            Mls::<B>::sign_content(s["label"].as_str().unwrap().as_bytes(), &hx(s, "content"));
        let scheme = cs.signature_algorithm();
        m.crypto
            .verify_signature(scheme, &content, &hx(s, "pub"), &hx(s, "signature"))
            .map_err(|e| format!("sign_with_label verify: {e:?}"))?;
        // EdDSA is deterministic: our signature is the vector's.
        eq(
            &m.crypto.sign(scheme, &content, &hx(s, "priv")).unwrap(),
            &hx(s, "signature"),
            "sign_with_label",
        )?;

        let x = &v["encrypt_with_label"];
        let ctx =
            Mls::<B>::encrypt_context(x["label"].as_str().unwrap().as_bytes(), &hx(x, "context"));
        let input = HpkeCiphertext {
            kem_output: hx(x, "kem_output").into(),
            ciphertext: hx(x, "ciphertext").into(),
        };
        let pt = m
            .crypto
            .hpke_open(cs.hpke_config(), &input, &hx(x, "priv"), &ctx, b"")
            .map_err(|e| format!("encrypt_with_label open: {e:?}"))?;
        eq(&pt, &hx(x, "plaintext"), "encrypt_with_label plaintext")?;
        // And our own sealing to the vector's key opens with its private key.
        let ours = m
            .crypto
            .hpke_seal(cs.hpke_config(), &hx(x, "pub"), &ctx, b"", b"round trip")
            .unwrap();
        let back = m
            .crypto
            .hpke_open(cs.hpke_config(), &ours, &hx(x, "priv"), &ctx, b"")
            .unwrap();
        eq(&back, b"round trip", "encrypt_with_label round trip")
    });
}

// ------------------------------------------------------------------ secret-tree

/// Array-based tree math (RFC 9420 Appendix C) for a tree of `n` leaves (a power of two).
fn level(x: usize) -> u32 {
    (!x).trailing_zeros()
}
fn root(n_leaves: usize) -> usize {
    let width = 2 * n_leaves - 1;
    (1 << (usize::BITS - 1 - width.leading_zeros())) - 1
}
fn left(x: usize) -> usize {
    x ^ (1 << (level(x) - 1))
}
fn right(x: usize) -> usize {
    x ^ (3 << (level(x) - 1))
}

fn secret_tree<B: Backend>() {
    run_file("secret-tree.json", B::NAME, |cs, v| {
        let m = Mls::<B>::new(cs);
        // Sender data key and nonce from the ciphertext sample.
        let sd = &v["sender_data"];
        let ct = hx(sd, "ciphertext");
        let sample = &ct[..ct.len().min(m.nh())];
        let secret = hx(sd, "sender_data_secret");
        eq(
            &m.expand_with_label(&secret, b"key", sample, m.nk()),
            &hx(sd, "key"),
            "sender data key",
        )?;
        eq(
            &m.expand_with_label(&secret, b"nonce", sample, m.nn()),
            &hx(sd, "nonce"),
            "sender data nonce",
        )?;

        let leaves = v["leaves"].as_array().unwrap();
        let n = leaves.len();
        let root_secret = hx(v, "encryption_secret");
        for (leaf, gens) in leaves.iter().enumerate() {
            // Walk from the root down to leaf node 2 * leaf.
            let target = 2 * leaf;
            let (mut node, mut secret) = (root(n), root_secret.clone());
            while node != target {
                if target < node {
                    secret = m.expand_with_label(&secret, b"tree", b"left", m.nh());
                    node = left(node);
                } else {
                    secret = m.expand_with_label(&secret, b"tree", b"right", m.nh());
                    node = right(node);
                }
            }
            for g in gens.as_array().unwrap() {
                let generation = num(g, "generation") as u32;
                for (kind, key_field, nonce_field) in [
                    (b"handshake".as_slice(), "handshake_key", "handshake_nonce"),
                    (
                        b"application".as_slice(),
                        "application_key",
                        "application_nonce",
                    ),
                ] {
                    let mut ratchet = m.expand_with_label(&secret, kind, b"", m.nh());
                    for j in 0..generation {
                        ratchet = m.derive_tree_secret(&ratchet, b"secret", j, m.nh());
                    }
                    let what = format!("leaf {leaf} generation {generation}");
                    eq(
                        &m.derive_tree_secret(&ratchet, b"key", generation, m.nk()),
                        &hx(g, key_field),
                        &format!("{what} {key_field}"),
                    )?;
                    eq(
                        &m.derive_tree_secret(&ratchet, b"nonce", generation, m.nn()),
                        &hx(g, nonce_field),
                        &format!("{what} {nonce_field}"),
                    )?;
                }
            }
        }
        Ok(())
    });
}

// ------------------------------------------------------------------ key-schedule

fn key_schedule<B: Backend>() {
    run_file("key-schedule.json", B::NAME, |cs, v| {
        let m = Mls::<B>::new(cs);
        let group_id = hx(v, "group_id");
        let mut init_secret = hx(v, "initial_init_secret");
        for (epoch, e) in v["epochs"].as_array().unwrap().iter().enumerate() {
            let what = |f: &str| format!("epoch {epoch} {f}");
            // GroupContext { version mls10, suite, group_id, epoch, tree_hash, cth, extensions }.
            let context = group_context(
                cs,
                &group_id,
                epoch as u64,
                &hx(e, "tree_hash"),
                &hx(e, "confirmed_transcript_hash"),
            );
            eq(&context, &hx(e, "group_context"), &what("group_context"))?;
            let pre_joiner = m.extract(&init_secret, &hx(e, "commit_secret"));
            let joiner = m.expand_with_label(&pre_joiner, b"joiner", &context, m.nh());
            eq(&joiner, &hx(e, "joiner_secret"), &what("joiner_secret"))?;
            let member = m.extract(&joiner, &hx(e, "psk_secret"));
            eq(
                &m.derive_secret(&member, b"welcome"),
                &hx(e, "welcome_secret"),
                &what("welcome_secret"),
            )?;
            let epoch_secret = m.expand_with_label(&member, b"epoch", &context, m.nh());
            for (label, field) in [
                (&b"sender data"[..], "sender_data_secret"),
                (b"encryption", "encryption_secret"),
                (b"exporter", "exporter_secret"),
                (b"authentication", "epoch_authenticator"),
                (b"external", "external_secret"),
                (b"confirm", "confirmation_key"),
                (b"membership", "membership_key"),
                (b"resumption", "resumption_psk"),
                (b"init", "init_secret"),
            ] {
                eq(
                    &m.derive_secret(&epoch_secret, label),
                    &hx(e, field),
                    &what(field),
                )?;
            }
            // The external key pair is derived from the external secret.
            let external = m
                .crypto
                .derive_hpke_keypair(
                    cs.hpke_config(),
                    &m.derive_secret(&epoch_secret, b"external"),
                )
                .unwrap();
            eq(
                &external.public,
                &hx(e, "external_pub"),
                &what("external_pub"),
            )?;
            // MLS-Exporter. The label is used as the text it is in the file (as openmls and
            // the other implementations do), not hex-decoded.
            let x = &e["exporter"];
            let exporter_secret = m.derive_secret(&epoch_secret, b"exporter");
            let derived =
                m.derive_secret(&exporter_secret, x["label"].as_str().unwrap().as_bytes());
            let out = m.expand_with_label(
                &derived,
                b"exported",
                &m.hash(&hx(x, "context")),
                num(x, "length") as usize,
            );
            eq(&out, &hx(x, "secret"), &what("exporter"))?;
            init_secret = m.derive_secret(&epoch_secret, b"init");
        }
        Ok(())
    });
}

// ------------------------------------------------------------------ psk_secret

fn psk_secret<B: Backend>() {
    run_file("psk_secret.json", B::NAME, |cs, v| {
        let m = Mls::<B>::new(cs);
        let psks = v["psks"].as_array().unwrap();
        let count = psks.len() as u16;
        let mut secret = vec![0u8; m.nh()];
        for (index, p) in psks.iter().enumerate() {
            let extracted = m.extract(&[], &hx(p, "psk"));
            // PSKLabel { PreSharedKeyID { external(1), psk_id<V>, psk_nonce<V> }, index, count }.
            let label = [
                &[1u8][..],
                &vl(&hx(p, "psk_id")),
                &vl(&hx(p, "psk_nonce")),
                &(index as u16).to_be_bytes(),
                &count.to_be_bytes(),
            ]
            .concat();
            let input = m.expand_with_label(&extracted, b"derived psk", &label, m.nh());
            secret = m.extract(&input, &secret);
        }
        eq(&secret, &hx(v, "psk_secret"), "psk_secret")
    });
}

// ------------------------------------------------------------------ transcript-hashes

fn transcript_hashes<B: Backend>() {
    run_file("transcript-hashes.json", B::NAME, |cs, v| {
        let m = Mls::<B>::new(cs);
        let content = hx(v, "authenticated_content");
        // AuthenticatedContent ends with the commit's confirmation_tag<V> (Nh bytes).
        let tag_field = vl(&vec![0u8; m.nh()]).len();
        ensure(content.len() > tag_field, "authenticated_content too short")?;
        let (input, tag_with_len) = content.split_at(content.len() - tag_field);
        let tag = &tag_with_len[varint(m.nh()).len()..];
        let confirmed = m.hash(&[hx(v, "interim_transcript_hash_before"), input.to_vec()].concat());
        eq(
            &confirmed,
            &hx(v, "confirmed_transcript_hash_after"),
            "confirmed_transcript_hash_after",
        )?;
        let expected_tag = m
            .crypto
            .hmac(cs.hash_algorithm(), &hx(v, "confirmation_key"), &confirmed)
            .unwrap();
        eq(expected_tag.as_slice(), tag, "confirmation_tag")?;
        let interim = m.hash(&[confirmed, tag_with_len.to_vec()].concat());
        eq(
            &interim,
            &hx(v, "interim_transcript_hash_after"),
            "interim_transcript_hash_after",
        )
    });
}

// ------------------------------------------------------------------ welcome

fn welcome<B: Backend>() {
    run_file("welcome.json", B::NAME, |cs, v| {
        let m = Mls::<B>::new(cs);
        let key_package = match MlsMessageIn::tls_deserialize_exact(hx(v, "key_package"))
            .map_err(|e| e.to_string())?
            .extract()
        {
            MlsMessageBodyIn::KeyPackage(kp) => kp,
            _ => return Err("key_package is not a KeyPackage".into()),
        };
        let kp_bytes = key_package.tls_serialize_detached().unwrap();
        let kp_ref = m.ref_hash(b"MLS 1.0 KeyPackage Reference", &kp_bytes);
        // MLSMessage { version, wire_format = mls_welcome (3), Welcome { cipher_suite,
        // secrets<V> of { new_member<V>, { kem_output<V>, ciphertext<V> } },
        // encrypted_group_info<V> } }, read here field by field.
        let bytes = hx(v, "welcome");
        let mut r = Reader(&bytes);
        ensure(r.u16()? == 1, "version")?;
        ensure(r.u16()? == 3, "wire format is not mls_welcome")?;
        ensure(r.u16()? == cs as u16, "welcome cipher suite")?;
        let mut secrets = Reader(r.vl()?);
        let encrypted_group_info = r.vl()?;
        ensure(r.0.is_empty(), "trailing bytes after the Welcome")?;
        let mut ours = None;
        while !secrets.0.is_empty() {
            let new_member = secrets.vl()?;
            let kem_output = secrets.vl()?;
            let ciphertext = secrets.vl()?;
            if new_member == kp_ref.as_slice() {
                ours = Some(HpkeCiphertext {
                    kem_output: kem_output.to_vec().into(),
                    ciphertext: ciphertext.to_vec().into(),
                });
            }
        }
        let ours = ours.ok_or("no EncryptedGroupSecrets for our KeyPackageRef")?;
        let ctx = Mls::<B>::encrypt_context(b"Welcome", encrypted_group_info);
        let group_secrets = m
            .crypto
            .hpke_open(cs.hpke_config(), &ours, &hx(v, "init_priv"), &ctx, b"")
            .map_err(|e| format!("decrypting GroupSecrets: {e:?}"))?;
        // GroupSecrets { joiner_secret<V>, optional<PathSecret>, psks<V> }: take the joiner secret.
        let joiner = Reader(&group_secrets).vl()?;
        let member = m.extract(joiner, &vec![0u8; m.nh()]);
        let welcome_secret = m.derive_secret(&member, b"welcome");
        let key = m.expand_with_label(&welcome_secret, b"key", b"", m.nk());
        let nonce = m.expand_with_label(&welcome_secret, b"nonce", b"", m.nn());
        let group_info = m
            .crypto
            .aead_decrypt(cs.aead_algorithm(), &key, encrypted_group_info, &nonce, b"")
            .map_err(|e| format!("decrypting GroupInfo: {e:?}"))?;
        // GroupInfo ends with signature<V>; what precedes it is GroupInfoTBS.
        let sig_len = cs.signature_algorithm_len();
        let (tbs, sig) = group_info.split_at(group_info.len() - sig_len);
        let tbs = &tbs[..tbs.len() - varint(sig_len).len()];
        let content = Mls::<B>::sign_content(b"GroupInfoTBS", tbs);
        m.crypto
            .verify_signature(
                cs.signature_algorithm(),
                &content,
                &hx(v, "signer_pub"),
                sig,
            )
            .map_err(|e| format!("GroupInfo signature: {e:?}"))
    });
}

/// A minimal reader for the TLS presentation language with MLS variable-length vectors.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("truncated".into());
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn vl(&mut self) -> Result<&'a [u8], String> {
        let first = self.take(1)?[0];
        let len = match first >> 6 {
            0 => first as usize,
            1 => ((first as usize & 0x3f) << 8) | self.take(1)?[0] as usize,
            2 => {
                let b = self.take(3)?;
                ((first as usize & 0x3f) << 24)
                    | (b[0] as usize) << 16
                    | (b[1] as usize) << 8
                    | b[2] as usize
            }
            _ => return Err("bad varint".into()),
        };
        self.take(len)
    }
}

trait SigLen {
    fn signature_algorithm_len(&self) -> usize;
}
impl SigLen for Ciphersuite {
    fn signature_algorithm_len(&self) -> usize {
        match self.signature_algorithm() {
            SignatureScheme::ED448 => 114,
            _ => 64,
        }
    }
}

// ------------------------------------------------------------------ passive clients

fn passive_client<B: Backend>(file: &str) {
    run_file(file, B::NAME, |cs, v| {
        let provider = Provider::<B>::default();
        for psk in v["external_psks"].as_array().unwrap() {
            PreSharedKeyId::external(hx(psk, "psk_id"), vec![])
                .store(&provider, &hx(psk, "psk"))
                .map_err(|e| format!("storing psk: {e:?}"))?;
        }
        let key_package: KeyPackage =
            match MlsMessageIn::tls_deserialize_exact(hx(v, "key_package"))
                .unwrap()
                .extract()
            {
                MlsMessageBodyIn::KeyPackage(kp) => kp
                    .validate(provider.crypto(), ProtocolVersion::Mls10)
                    .map_err(|e| format!("key package: {e:?}"))?,
                _ => return Err("not a key package".into()),
            };
        ensure(key_package.ciphersuite() == cs, "key package suite")?;
        let hash_ref = key_package.hash_ref(provider.crypto()).unwrap();
        let record = KeyPackageBundleRecord {
            key_package,
            private_init_key: hx(v, "init_priv").into(),
            private_encryption_key: PrivateKeyRecord {
                key: hx(v, "encryption_priv").into(),
            },
        };
        provider
            .storage()
            .write_key_package(&hash_ref, &record)
            .unwrap();

        let config = MlsGroupJoinConfig::builder()
            .use_ratchet_tree_extension(true)
            .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
            .number_of_resumption_psks(16)
            .build();
        let tree = match v["ratchet_tree"].as_str() {
            Some(t) => Some(
                RatchetTreeIn::tls_deserialize_exact(hex::decode(t).unwrap())
                    .map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        let MlsMessageBodyIn::Welcome(welcome) =
            MlsMessageIn::tls_deserialize_exact(hx(v, "welcome"))
                .unwrap()
                .extract()
        else {
            return Err("not a welcome".into());
        };
        let mut group = StagedWelcome::new_from_welcome(&provider, &config, welcome, tree)
            .map_err(|e| format!("staging welcome: {e:?}"))?
            .into_group(&provider)
            .map_err(|e| format!("joining: {e:?}"))?;
        eq(
            group.epoch_authenticator().as_slice(),
            &hx(v, "initial_epoch_authenticator"),
            "initial epoch authenticator",
        )?;

        for (i, epoch) in v["epochs"].as_array().unwrap().iter().enumerate() {
            let messages = epoch["proposals"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| hex::decode(p.as_str().unwrap()).unwrap())
                .chain([hx(epoch, "commit")]);
            for bytes in messages {
                let message = MlsMessageIn::tls_deserialize_exact(bytes).unwrap();
                let protocol = message
                    .try_into_protocol_message()
                    .map_err(|e| format!("epoch {i}: {e:?}"))?;
                let processed = group
                    .process_message(&provider, protocol)
                    .map_err(|e| format!("epoch {i}: processing: {e:?}"))?;
                match processed.into_content() {
                    ProcessedMessageContent::ProposalMessage(p) => {
                        group
                            .store_pending_proposal(provider.storage(), *p)
                            .unwrap();
                    }
                    ProcessedMessageContent::StagedCommitMessage(c) => {
                        group
                            .merge_staged_commit(&provider, *c)
                            .map_err(|e| format!("epoch {i}: merge: {e:?}"))?;
                    }
                    other => return Err(format!("epoch {i}: unexpected {other:?}")),
                }
            }
            eq(
                group.epoch_authenticator().as_slice(),
                &hx(epoch, "epoch_authenticator"),
                &format!("epoch {i} authenticator"),
            )?;
        }
        Ok(())
    });
}

// ------------------------------------------------------------------ ratchet trees

/// A parsed ratchet tree node, keeping its encoding (for tree hashes).
#[derive(Clone)]
enum Node {
    Leaf {
        bytes: Vec<u8>,
        encryption_key: Vec<u8>,
    },
    Parent {
        bytes: Vec<u8>,
        encryption_key: Vec<u8>,
        unmerged: Vec<u32>,
    },
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        Ok(u64::from_be_bytes(b.try_into().unwrap()))
    }
    /// Reads with `f` and returns what it read as bytes too.
    fn span<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, String>,
    ) -> Result<(T, &'a [u8]), String> {
        let start = self.0;
        let value = f(self)?;
        let used = start.len() - self.0.len();
        Ok((value, &start[..used]))
    }
}

/// LeafNode (RFC 9420 §7.2); returns its encryption key.
fn read_leaf(r: &mut Reader<'_>) -> Result<Vec<u8>, String> {
    let encryption_key = r.vl()?.to_vec();
    r.vl()?; // signature_key
    // Credential: basic (identity<V>) or x509 (certificates<V>): both one vector.
    let credential_type = r.u16()?;
    ensure(
        credential_type == 1 || credential_type == 2,
        format!("credential type {credential_type}"),
    )?;
    r.vl()?;
    for _ in 0..5 {
        r.vl()?; // capabilities: versions, ciphersuites, extensions, proposals, credentials
    }
    match r.u8()? {
        1 => {
            r.u64()?;
            r.u64()?;
        }
        2 => {}
        3 => {
            r.vl()?;
        }
        s => return Err(format!("leaf node source {s}")),
    }
    r.vl()?; // extensions
    r.vl()?; // signature
    Ok(encryption_key)
}

fn parse_tree(bytes: &[u8]) -> Result<Vec<Option<Node>>, String> {
    let mut outer = Reader(bytes);
    let mut r = Reader(outer.vl()?);
    ensure(outer.0.is_empty(), "trailing bytes after the tree")?;
    let mut nodes = Vec::new();
    while !r.0.is_empty() {
        nodes.push(match r.u8()? {
            0 => None,
            1 => Some(match r.u8()? {
                1 => {
                    let (key, bytes) = r.span(read_leaf)?;
                    Node::Leaf {
                        bytes: bytes.to_vec(),
                        encryption_key: key,
                    }
                }
                2 => {
                    let ((key, unmerged), bytes) = r.span(|r| {
                        let key = r.vl()?.to_vec();
                        r.vl()?; // parent_hash
                        let mut leaves = Reader(r.vl()?);
                        let mut unmerged = Vec::new();
                        while !leaves.0.is_empty() {
                            unmerged.push(leaves.u32()?);
                        }
                        Ok((key, unmerged))
                    })?;
                    Node::Parent {
                        bytes: bytes.to_vec(),
                        encryption_key: key,
                        unmerged,
                    }
                }
                t => return Err(format!("node type {t}")),
            }),
            p => return Err(format!("optional flag {p}")),
        });
    }
    // Pad to a full tree.
    let leaves = nodes.len().div_ceil(2).next_power_of_two();
    nodes.resize(2 * leaves - 1, None);
    Ok(nodes)
}

fn optional(bytes: Option<&[u8]>) -> Vec<u8> {
    match bytes {
        Some(b) => [&[1u8][..], b].concat(),
        None => vec![0],
    }
}

fn tree_hash<B: Backend>(
    m: &Mls<B>,
    nodes: &[Option<Node>],
    x: usize,
    out: &mut [Vec<u8>],
) -> Vec<u8> {
    let input = if level(x) == 0 {
        let leaf = match &nodes[x] {
            Some(Node::Leaf { bytes, .. }) => Some(bytes.as_slice()),
            _ => None,
        };
        [&[1u8][..], &((x / 2) as u32).to_be_bytes(), &optional(leaf)].concat()
    } else {
        let l = tree_hash(m, nodes, left(x), out);
        let r = tree_hash(m, nodes, right(x), out);
        let parent = match &nodes[x] {
            Some(Node::Parent { bytes, .. }) => Some(bytes.as_slice()),
            _ => None,
        };
        [&[2u8][..], &optional(parent), &vl(&l), &vl(&r)].concat()
    };
    let h = m.hash(&input);
    out[x] = h.clone();
    h
}

fn resolution(nodes: &[Option<Node>], x: usize) -> Vec<usize> {
    match &nodes[x] {
        Some(Node::Leaf { .. }) => vec![x],
        Some(Node::Parent { unmerged, .. }) => {
            let mut r = vec![x];
            r.extend(unmerged.iter().map(|l| 2 * *l as usize));
            r
        }
        None if level(x) == 0 => vec![],
        None => [resolution(nodes, left(x)), resolution(nodes, right(x))].concat(),
    }
}

fn tree_validation<B: Backend>() {
    run_file("tree-validation.json", B::NAME, |cs, v| {
        let m = Mls::<B>::new(cs);
        let tree_bytes = hx(v, "tree");
        let nodes = parse_tree(&tree_bytes)?;
        let mut hashes = vec![Vec::new(); nodes.len()];
        tree_hash(&m, &nodes, root(nodes.len().div_ceil(2)), &mut hashes);
        for (i, want) in v["tree_hashes"].as_array().unwrap().iter().enumerate() {
            eq(
                &hashes[i],
                &hex::decode(want.as_str().unwrap()).unwrap(),
                &format!("tree hash of node {i}"),
            )?;
        }
        for (i, want) in v["resolutions"].as_array().unwrap().iter().enumerate() {
            let want: Vec<usize> = want
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_u64().unwrap() as usize)
                .collect();
            ensure(
                resolution(&nodes, i) == want,
                format!("resolution of node {i}"),
            )?;
        }
        // Leaf signatures and parent hashes, verified by openmls with this provider.
        RatchetTreeIn::tls_deserialize_exact(&tree_bytes)
            .map_err(|e| e.to_string())?
            .into_verified(cs, &m.crypto, &GroupId::from_slice(&hx(v, "group_id")))
            .map_err(|e| format!("tree rejected: {e:?}"))?;
        Ok(())
    });
}

// ------------------------------------------------------------------ message-protection

/// The key and nonce of `leaf` at `generation` in a secret tree of `n_leaves` leaves.
fn ratchet_key<B: Backend>(
    m: &Mls<B>,
    root_secret: &[u8],
    n_leaves: usize,
    leaf: usize,
    handshake: bool,
    generation: u32,
) -> (Vec<u8>, Vec<u8>) {
    let (mut node, mut secret) = (root(n_leaves), root_secret.to_vec());
    while node != 2 * leaf {
        let (label, next) = if 2 * leaf < node {
            (&b"left"[..], left(node))
        } else {
            (&b"right"[..], right(node))
        };
        secret = m.expand_with_label(&secret, b"tree", label, m.nh());
        node = next;
    }
    let kind: &[u8] = if handshake {
        b"handshake"
    } else {
        b"application"
    };
    let mut ratchet = m.expand_with_label(&secret, kind, b"", m.nh());
    for j in 0..generation {
        ratchet = m.derive_tree_secret(&ratchet, b"secret", j, m.nh());
    }
    (
        m.derive_tree_secret(&ratchet, b"key", generation, m.nk()),
        m.derive_tree_secret(&ratchet, b"nonce", generation, m.nn()),
    )
}

struct Protection<'v, B: Backend> {
    m: Mls<B>,
    v: &'v Value,
    group_id: Vec<u8>,
    epoch: u64,
}

impl<B: Backend> Protection<'_, B> {
    fn group_context(&self) -> Vec<u8> {
        group_context(
            self.m.cs,
            &self.group_id,
            self.epoch,
            &hx(self.v, "tree_hash"),
            &hx(self.v, "confirmed_transcript_hash"),
        )
    }

    /// FramedContentTBS for a member sender.
    fn tbs(
        &self,
        wire_format: u16,
        leaf: u32,
        aad: &[u8],
        content_type: u8,
        content: &[u8],
    ) -> Vec<u8> {
        [
            &1u16.to_be_bytes()[..],
            &wire_format.to_be_bytes(),
            &vl(&self.group_id),
            &self.epoch.to_be_bytes(),
            &[1u8],
            &leaf.to_be_bytes(),
            &vl(aad),
            &[content_type],
            content,
            &self.group_context(),
        ]
        .concat()
    }

    fn verify(&self, tbs: &[u8], signature: &[u8]) -> Check {
        let content = Mls::<B>::sign_content(b"FramedContentTBS", tbs);
        self.m
            .crypto
            .verify_signature(
                self.m.cs.signature_algorithm(),
                &content,
                &hx(self.v, "signature_pub"),
                signature,
            )
            .map_err(|e| format!("signature: {e:?}"))
    }

    /// Reads FramedContentAuthData: signature, and the confirmation tag of a commit.
    fn auth<'a>(r: &mut Reader<'a>, commit: bool) -> Result<(&'a [u8], Vec<u8>), String> {
        let (sig, bytes) = r.span(|r| {
            let sig = r.vl()?;
            if commit {
                r.vl()?;
            }
            Ok(sig)
        })?;
        Ok((sig, bytes.to_vec()))
    }

    /// Reads `MLSMessage { version = mls10, wire_format, group_id, epoch, .. }` up to the
    /// epoch, checking each against the vector.
    fn header<'a>(
        &self,
        field: &str,
        bytes: &'a [u8],
        wire_format: u16,
    ) -> Result<Reader<'a>, String> {
        let mut r = Reader(bytes);
        ensure(r.u16()? == 1, format!("{field}: version"))?;
        ensure(
            r.u16()? == wire_format,
            format!("{field}: wire format is not {wire_format}"),
        )?;
        ensure(
            r.vl()? == self.group_id.as_slice(),
            format!("{field}: group id"),
        )?;
        ensure(r.u64()? == self.epoch, format!("{field}: epoch"))?;
        Ok(r)
    }

    /// Unprotects a PrivateMessage and checks it carries `content` (its encoding in
    /// PrivateMessageContent) signed by the vector's key.
    fn private(&self, field: &str, content_type: u8, content: &[u8]) -> Check {
        let bytes = hx(self.v, field);
        let mut r = self.header(field, &bytes, 2)?;
        ensure(r.u8()? == content_type, format!("{field}: content type"))?;
        let aad = r.vl()?;
        let encrypted_sender_data = r.vl()?;
        let ciphertext = r.vl()?;
        let m = &self.m;
        // Sender data.
        let sample = &ciphertext[..ciphertext.len().min(m.nh())];
        let sd_secret = hx(self.v, "sender_data_secret");
        let sd_key = m.expand_with_label(&sd_secret, b"key", sample, m.nk());
        let sd_nonce = m.expand_with_label(&sd_secret, b"nonce", sample, m.nn());
        let sd_aad = [
            vl(&self.group_id),
            self.epoch.to_be_bytes().to_vec(),
            vec![content_type],
        ]
        .concat();
        let sender_data = m
            .crypto
            .aead_decrypt(
                m.cs.aead_algorithm(),
                &sd_key,
                encrypted_sender_data,
                &sd_nonce,
                &sd_aad,
            )
            .map_err(|e| format!("{field}: sender data: {e:?}"))?;
        let mut sd = Reader(&sender_data);
        let (leaf, generation) = (sd.u32()?, sd.u32()?);
        let reuse_guard = sd.take(4)?;
        // Content, with the ratchet key of the sender in a two-member group.
        let (key, mut nonce) = ratchet_key(
            m,
            &hx(self.v, "encryption_secret"),
            2,
            leaf as usize,
            content_type != 1,
            generation,
        );
        for (n, g) in nonce.iter_mut().zip(reuse_guard) {
            *n ^= g;
        }
        let content_aad = [
            vl(&self.group_id),
            self.epoch.to_be_bytes().to_vec(),
            vec![content_type],
            vl(aad),
        ]
        .concat();
        let plaintext = m
            .crypto
            .aead_decrypt(
                m.cs.aead_algorithm(),
                &key,
                ciphertext,
                &nonce,
                &content_aad,
            )
            .map_err(|e| format!("{field}: content: {e:?}"))?;
        ensure(
            plaintext.starts_with(content),
            format!("{field}: decrypted content differs"),
        )?;
        let mut rest = Reader(&plaintext[content.len()..]);
        let (signature, _) = Self::auth(&mut rest, content_type == 3)?;
        ensure(
            rest.0.iter().all(|b| *b == 0),
            format!("{field}: padding is not zeros"),
        )?;
        self.verify(&self.tbs(2, leaf, aad, content_type, content), signature)
    }

    /// Verifies a PublicMessage: signature and membership tag.
    fn public(&self, field: &str, content_type: u8, content: &[u8]) -> Check {
        let bytes = hx(self.v, field);
        let mut r = self.header(field, &bytes, 1)?;
        ensure(r.u8()? == 1, format!("{field}: sender is not a member"))?;
        let leaf = r.u32()?;
        let aad = r.vl()?;
        ensure(r.u8()? == content_type, format!("{field}: content type"))?;
        ensure(
            r.take(content.len())? == content,
            format!("{field}: content differs"),
        )?;
        let (signature, auth_bytes) = Self::auth(&mut r, content_type == 3)?;
        let tag = r.vl()?; // membership_tag (a member sender)
        ensure(r.0.is_empty(), format!("{field}: trailing bytes"))?;
        let tbs = self.tbs(1, leaf, aad, content_type, content);
        self.verify(&tbs, signature)?;
        let tbm = [tbs, auth_bytes].concat();
        let expected = self
            .m
            .crypto
            .hmac(
                self.m.cs.hash_algorithm(),
                &hx(self.v, "membership_key"),
                &tbm,
            )
            .unwrap();
        eq(
            tag,
            expected.as_slice(),
            &format!("{field}: membership tag"),
        )
    }
}

fn message_protection<B: Backend>() {
    run_file("message-protection.json", B::NAME, |cs, v| {
        let p = Protection::<B> {
            m: Mls::new(cs),
            v,
            group_id: hx(v, "group_id"),
            epoch: num(v, "epoch"),
        };
        let (proposal, commit) = (hx(v, "proposal"), hx(v, "commit"));
        p.private("proposal_priv", 2, &proposal)?;
        p.public("proposal_pub", 2, &proposal)?;
        p.private("commit_priv", 3, &commit)?;
        p.public("commit_pub", 3, &commit)?;
        p.private("application_priv", 1, &vl(&hx(v, "application")))
    });
}

// ------------------------------------------------------------------ treekem

fn parent(x: usize) -> usize {
    let k = level(x);
    let b = (x >> (k + 1)) & 1;
    (x | (1 << k)) ^ (b << (k + 1))
}

/// Whether node `x` is in the subtree rooted at `top`.
fn in_subtree(x: usize, top: usize) -> bool {
    let k = level(top);
    let width = (1usize << k) - 1;
    x + width >= top && x <= top + width
}

/// The direct path of `x` (its ancestors, lowest first) in a tree of `n_leaves` leaves.
fn direct_path(x: usize, n_leaves: usize) -> Vec<usize> {
    let r = root(n_leaves);
    let mut path = Vec::new();
    let mut node = x;
    while node != r {
        node = parent(node);
        path.push(node);
    }
    path
}

fn parent_node_bytes(key: &[u8], parent_hash: &[u8]) -> Vec<u8> {
    [vl(key), vl(parent_hash), vl(b"")].concat()
}

fn treekem<B: Backend>() {
    run_file("treekem.json", B::NAME, |cs, v| {
        let m = Mls::<B>::new(cs);
        let hpke = || cs.hpke_config();
        let original = parse_tree(&hx(v, "ratchet_tree"))?;
        let n_leaves = original.len().div_ceil(2);
        let key_of = |nodes: &[Option<Node>], x: usize| -> Option<Vec<u8>> {
            match &nodes[x] {
                Some(Node::Leaf { encryption_key, .. })
                | Some(Node::Parent { encryption_key, .. }) => Some(encryption_key.clone()),
                None => None,
            }
        };
        let node_keys = |path_secret: &[u8]| {
            m.crypto
                .derive_hpke_keypair(hpke(), &m.derive_secret(path_secret, b"node"))
                .unwrap()
        };

        // The private state of some leaves: their keys match the tree.
        let mut private: BTreeMap<usize, BTreeMap<usize, HpkePrivateKey>> = BTreeMap::new();
        for lp in v["leaves_private"].as_array().unwrap() {
            let leaf = num(lp, "index") as usize;
            let mut keys = BTreeMap::new();
            let leaf_priv = hx(lp, "encryption_priv");
            let dh = if cs == Ciphersuite::MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448 {
                DhAlg::X448
            } else {
                DhAlg::X25519
            };
            eq(
                &B::dh_public(dh, &leaf_priv).unwrap(),
                &key_of(&original, 2 * leaf).ok_or("blank leaf with keys")?,
                &format!("leaf {leaf}: encryption key"),
            )?;
            keys.insert(2 * leaf, HpkePrivateKey::from(leaf_priv));
            for ps in lp["path_secrets"].as_array().unwrap() {
                let node = num(ps, "node") as usize;
                let kp = node_keys(&hx(ps, "path_secret"));
                eq(
                    &kp.public,
                    &key_of(&original, node).ok_or("blank node with a path secret")?,
                    &format!("leaf {leaf}: key of node {node}"),
                )?;
                keys.insert(node, kp.private);
            }
            private.insert(leaf, keys);
        }

        for (u, up) in v["update_paths"].as_array().unwrap().iter().enumerate() {
            let sender = num(up, "sender") as usize;
            let what = |s: &str| format!("update path {u} (sender {sender}): {s}");
            // UpdatePath { LeafNode leaf_node; UpdatePathNode nodes<V> }.
            let bytes = hx(up, "update_path");
            let mut r = Reader(&bytes);
            let (leaf_key, leaf_bytes) = r.span(read_leaf)?;
            let mut path_nodes = Vec::new();
            let mut pr = Reader(r.vl()?);
            while !pr.0.is_empty() {
                let key = pr.vl()?.to_vec();
                let mut secrets = Reader(pr.vl()?);
                let mut cts = Vec::new();
                while !secrets.0.is_empty() {
                    cts.push(HpkeCiphertext {
                        kem_output: secrets.vl()?.to_vec().into(),
                        ciphertext: secrets.vl()?.to_vec().into(),
                    });
                }
                path_nodes.push((key, cts));
            }
            ensure(r.0.is_empty(), what("trailing bytes"))?;

            // Filtered direct path: ancestors whose copath child has a non-empty resolution.
            let filtered: Vec<(usize, usize)> = direct_path(2 * sender, n_leaves)
                .into_iter()
                .map(|p| {
                    (
                        p,
                        if in_subtree(2 * sender, left(p)) {
                            right(p)
                        } else {
                            left(p)
                        },
                    )
                })
                .filter(|(_, copath)| !resolution(&original, *copath).is_empty())
                .collect();
            ensure(filtered.len() == path_nodes.len(), what("path length"))?;

            // Merge: blank the direct path, set the new keys, then the parent hashes top-down.
            let mut tree = original.clone();
            tree[2 * sender] = Some(Node::Leaf {
                bytes: leaf_bytes.to_vec(),
                encryption_key: leaf_key,
            });
            for p in direct_path(2 * sender, n_leaves) {
                tree[p] = None;
            }
            for ((p, _), (key, _)) in filtered.iter().zip(&path_nodes) {
                tree[*p] = Some(Node::Parent {
                    bytes: parent_node_bytes(key, b""),
                    encryption_key: key.clone(),
                    unmerged: vec![],
                });
            }
            let mut scratch = vec![Vec::new(); tree.len()];
            let mut parent_hash = Vec::new();
            for i in (0..filtered.len()).rev() {
                let (p, _) = filtered[i];
                let key = &path_nodes[i].0;
                tree[p] = Some(Node::Parent {
                    bytes: parent_node_bytes(key, &parent_hash),
                    encryption_key: key.clone(),
                    unmerged: vec![],
                });
                let (_, copath) = filtered[i];
                let sibling_hash = tree_hash(&m, &tree, copath, &mut scratch);
                parent_hash = m.hash(&[vl(key), vl(&parent_hash), vl(&sibling_hash)].concat());
            }
            // The new leaf commits to the bottom of the chain: its parent_hash field is the
            // last vector before extensions and signature, so check by inclusion.
            ensure(
                filtered.is_empty()
                    || leaf_bytes
                        .windows(parent_hash.len())
                        .any(|w| w == parent_hash.as_slice()),
                what("leaf parent hash"),
            )?;
            let mut hashes = vec![Vec::new(); tree.len()];
            let new_tree_hash = tree_hash(&m, &tree, root(n_leaves), &mut hashes);
            eq(
                &new_tree_hash,
                &hx(up, "tree_hash_after"),
                &what("tree_hash_after"),
            )?;

            let context = group_context(
                cs,
                &hx(v, "group_id"),
                num(v, "epoch"),
                &new_tree_hash,
                &hx(v, "confirmed_transcript_hash"),
            );
            let encrypt_context = Mls::<B>::encrypt_context(b"UpdatePathNode", &context);

            for (leaf, expected) in up["path_secrets"].as_array().unwrap().iter().enumerate() {
                let Some(expected) = expected.as_str() else {
                    continue;
                };
                let keys = private
                    .get(&leaf)
                    .ok_or(what(&format!("no private keys for leaf {leaf}")))?;
                // The lowest filtered ancestor shared with the sender, and the copath child on our side.
                let j = filtered
                    .iter()
                    .position(|(p, _)| in_subtree(2 * leaf, *p))
                    .ok_or(what("no common ancestor"))?;
                let res = resolution(&original, filtered[j].1);
                let (k, node) = res
                    .iter()
                    .enumerate()
                    .find(|(_, n)| keys.contains_key(n))
                    .ok_or(what(&format!("leaf {leaf} holds no key in the resolution")))?;
                let secret = m
                    .crypto
                    .hpke_open(
                        hpke(),
                        &path_nodes[j].1[k],
                        &keys[node],
                        &encrypt_context,
                        b"",
                    )
                    .map_err(|e| what(&format!("leaf {leaf} decrypting: {e:?}")))?;
                eq(
                    &secret,
                    &hex::decode(expected).unwrap(),
                    &what(&format!("leaf {leaf} path secret")),
                )?;
                // Up the path: each new node key follows from its path secret; then the commit secret.
                let mut path_secret = secret;
                for i in j..filtered.len() {
                    if i > j {
                        path_secret = m.derive_secret(&path_secret, b"path");
                    }
                    eq(
                        &node_keys(&path_secret).public,
                        &path_nodes[i].0,
                        &what(&format!("leaf {leaf}: key of node {}", filtered[i].0)),
                    )?;
                }
                let commit_secret = m.derive_secret(&path_secret, b"path");
                eq(
                    &commit_secret,
                    &hx(up, "commit_secret"),
                    &what(&format!("leaf {leaf} commit secret")),
                )?;
            }
        }
        Ok(())
    });
}

macro_rules! vector_tests {
    ($module:ident, $backend:ty) => {
        mod $module {
            #[test]
            fn crypto_basics() {
                super::crypto_basics::<$backend>();
            }
            #[test]
            fn secret_tree() {
                super::secret_tree::<$backend>();
            }
            #[test]
            fn key_schedule() {
                super::key_schedule::<$backend>();
            }
            #[test]
            fn psk_secret() {
                super::psk_secret::<$backend>();
            }
            #[test]
            fn transcript_hashes() {
                super::transcript_hashes::<$backend>();
            }
            #[test]
            fn tree_validation() {
                super::tree_validation::<$backend>();
            }
            #[test]
            fn message_protection() {
                super::message_protection::<$backend>();
            }
            #[test]
            fn treekem() {
                super::treekem::<$backend>();
            }
            #[test]
            fn welcome() {
                super::welcome::<$backend>();
            }
            #[test]
            fn passive_client_welcome() {
                super::under_faketime(
                    concat!(stringify!($module), "::passive_client_welcome"),
                    "@2024-03-01 12:00:00",
                    || super::passive_client::<$backend>("passive-client-welcome.json"),
                );
            }
            #[test]
            fn passive_client_handling_commit() {
                super::under_faketime(
                    concat!(stringify!($module), "::passive_client_handling_commit"),
                    "@2025-03-13 12:00:00",
                    || super::passive_client::<$backend>("passive-client-handling-commit.json"),
                );
            }
        }
    };
}

#[cfg(feature = "rustcrypto")]
vector_tests!(rustcrypto, eth_mls_crypto::RustCrypto);
#[cfg(feature = "openssl")]
vector_tests!(openssl, eth_mls_crypto::OpenSsl);
