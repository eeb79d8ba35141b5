//! `Debug` output of every type that holds a secret, compared with the snapshot in
//! `tests/snapshots/debug.txt` (`UPDATE_SNAPSHOTS=1` rewrites it), and checked to contain no
//! secret byte string in hex or as a decimal list.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use eth_mls_channel::{
    DefaultBackend as B, Device, KeyPair, OneTimePrekeyChoice, OsKeySource, PrekeyBundle,
    ScriptedKeys, Secret, X3dhPublic, x3dh_initiator,
};

const NOW: u64 = 1_785_000_000;

/// Fixed bytes that look random (no runs that could match unrelated output by chance).
fn bytes<const N: usize>(seed: u8) -> [u8; N] {
    let mut out = [0u8; N];
    let mut x = u32::from(seed)
        .wrapping_mul(2_654_435_761)
        .wrapping_add(12_345);
    for b in &mut out {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = (x >> 24) as u8;
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn debug_output_shows_no_secret() {
    let mut secrets: Vec<Vec<u8>> = Vec::new();
    let mut keep = |b: &[u8]| secrets.push(b.to_vec());
    let (ik_a, ik_b, sig_a, sig_b, spk, opk) = (
        bytes::<56>(1),
        bytes::<56>(2),
        bytes::<57>(3),
        bytes::<57>(4),
        bytes::<56>(5),
        bytes::<56>(6),
    );
    let draws_a: Vec<[u8; 56]> = (10..14).map(bytes::<56>).collect();
    let draws_b: Vec<[u8; 56]> = (20..24).map(bytes::<56>).collect();
    for s in [&ik_a[..], &ik_b, &sig_a, &sig_b, &spk, &opk] {
        keep(s);
    }
    draws_a.iter().chain(&draws_b).for_each(|d| keep(d));

    let mut bob =
        Device::<B>::from_keys([0xbb; 20], Secret::new(ik_b), Secret::new(sig_b)).unwrap();
    bob.add_signed_prekey(1, NOW + 86_400, Secret::new(spk))
        .unwrap();
    bob.add_one_time_prekey(1, Secret::new(opk)).unwrap();
    bob.set_key_source(Box::new(ScriptedKeys::new(
        draws_b.iter().map(|d| Secret::new(*d)),
    )));
    let mut alice =
        Device::<B>::from_keys([0xaa; 20], Secret::new(ik_a), Secret::new(sig_a)).unwrap();
    alice.set_key_source(Box::new(ScriptedKeys::new(
        draws_a.iter().map(|d| Secret::new(*d)),
    )));
    let bundle = bob.bundle(NOW, 1).unwrap();
    let verified = PrekeyBundle::validate::<B>(&bundle.encode().unwrap(), NOW).unwrap();
    let sid = alice
        .initiate(&verified, OneTimePrekeyChoice::Id(1))
        .unwrap();
    let plaintext = b"the plaintext must not be printed either".to_vec();
    keep(&plaintext);
    let m = alice.encrypt(&sid, &plaintext).unwrap();
    let received = bob.receive(&m, NOW).unwrap();
    let session = bob.session(&sid).unwrap();
    let snapshot = session.snapshot();
    keep(snapshot.root_key.expose());
    for k in snapshot.sending_chain_key.iter() {
        keep(k.expose());
    }
    for c in &snapshot.receiving_chains {
        for k in c.chain_key.iter() {
            keep(k.expose());
        }
    }
    let pair = KeyPair::from_secret::<B>(Secret::new(bytes::<56>(30))).unwrap();
    keep(&bytes::<56>(30));
    let ek = KeyPair::from_secret::<B>(Secret::new(bytes::<56>(31))).unwrap();
    keep(&bytes::<56>(31));
    let x3dh = x3dh_initiator::<B>(
        &pair,
        &ek,
        &bundle.signed_prekey.key,
        None,
        &X3dhPublic {
            ik_a: pair.public(),
            ik_b: &bundle.identity_key,
            ek_a: ek.public(),
            address_a: &[0xaa; 20],
            address_b: &[0xbb; 20],
        },
    )
    .unwrap();
    keep(x3dh.sk().expose());

    let outputs: Vec<(&str, String)> = vec![
        ("Secret<56>", format!("{:?}", Secret::new(ik_a))),
        ("KeyPair", format!("{pair:?}")),
        ("Device (alice)", format!("{alice:#?}")),
        ("Device (bob)", format!("{bob:#?}")),
        ("Session", format!("{session:#?}")),
        ("SessionSnapshot", format!("{snapshot:#?}")),
        ("Received", format!("{received:#?}")),
        ("X3dh", format!("{x3dh:?}")),
        (
            "ScriptedKeys",
            format!("{:?}", ScriptedKeys::new([Secret::new(ik_a)])),
        ),
        ("OsKeySource", format!("{:?}", OsKeySource::<B>::default())),
    ];
    let mut text = String::new();
    for (name, out) in &outputs {
        for s in &secrets {
            let h = hex(s);
            let dec = format!("{:?}", &s[..8]).replace(' ', "");
            let dec = &dec[1..dec.len() - 1];
            let flat = out.replace([' ', '\n'], "");
            for needle in [&h[..32], &h[h.len() - 32..]] {
                assert!(
                    !out.contains(needle),
                    "{name}: Debug output contains a secret in hex"
                );
            }
            assert!(
                !flat.contains(dec),
                "{name}: Debug output contains a secret as numbers"
            );
        }
        // The default backend's name depends on the features: keep the snapshot independent.
        let out = out.replace(<B as eth_mls_channel::Backend>::NAME, "<backend>");
        text.push_str(&format!("== {name}\n{out}\n"));
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/debug.txt");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let want =
        std::fs::read_to_string(&path).expect("snapshot missing: run with UPDATE_SNAPSHOTS=1");
    assert_eq!(
        text, want,
        "Debug output differs from tests/snapshots/debug.txt"
    );
}
