//! The channel test vectors (`../shared/testdata/channel-vectors/`, or the directory in
//! `CHANNEL_TEST_VECTORS`), on every backend. A missing directory is a failure, never a skip.
//! Every file prints how many entries of each section passed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;

use eth_mls_channel::primitives::{dh, kdf_ck, kdf_rk, msg_keys, open, seal};
use eth_mls_channel::{
    Backend, ChannelMessage, Device, Error, KeyPair, MessageHeader, OneTimePrekeyChoice,
    PrekeyBundle, Secret, X3dhPublic, session_id, x3dh_initiator, x3dh_responder,
};
use serde_json::Value;
use support::{Tally, bob_device, device, hx, load, snapshot_matches};

fn arr<const N: usize>(v: &Value, key: &str) -> [u8; N] {
    hx(v, key)
        .try_into()
        .unwrap_or_else(|_| panic!("{key}: not {N} bytes"))
}

fn code(r: Result<impl Sized, Error>) -> String {
    match r {
        Ok(_) => "success".into(),
        Err(e) => e
            .code()
            .map_or_else(|| format!("{e:?}"), |c| c.as_str().to_string()),
    }
}

// ------------------------------------------------------------------ x3dh.json

fn x3dh<B: Backend>() {
    let j = load("x3dh.json");
    let mut t = Tally::new::<B>("x3dh.json");
    for v in j["vectors"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        let (a, b) = (&v["alice"], &v["bob"]);
        let check = || -> Result<(), String> {
            let ik_a = KeyPair::from_secret::<B>(Secret::new(arr(a, "identity_private"))).unwrap();
            let ek = KeyPair::from_secret::<B>(Secret::new(arr(a, "ephemeral_private"))).unwrap();
            if ik_a.public() != &arr(a, "identity_public")
                || ek.public() != &arr(a, "ephemeral_public")
            {
                return Err("public keys".into());
            }
            let (ik_b, spk_b) = (
                arr::<56>(b, "identity_public"),
                arr::<56>(b, "signed_prekey_public"),
            );
            let opk_b = (!b["one_time_prekey_public"].is_null())
                .then(|| arr::<56>(b, "one_time_prekey_public"));
            let (addr_a, addr_b) = (arr::<20>(a, "address"), arr::<20>(b, "address"));
            let p = X3dhPublic {
                ik_a: ik_a.public(),
                ik_b: &ik_b,
                ek_a: ek.public(),
                address_a: &addr_a,
                address_b: &addr_b,
            };
            let init = x3dh_initiator::<B>(&ik_a, &ek, &spk_b, opk_b.as_ref(), &p);
            if let Some(err) = v["error"].as_str() {
                let got = code(init);
                return if got == err {
                    Ok(())
                } else {
                    Err(format!("initiator: {got}, want {err}"))
                };
            }
            let init = init.map_err(|e| format!("initiator: {e}"))?;
            // The DH outputs, one by one.
            let ikb = KeyPair::from_secret::<B>(Secret::new(arr(b, "identity_private"))).unwrap();
            let spk =
                KeyPair::from_secret::<B>(Secret::new(arr(b, "signed_prekey_private"))).unwrap();
            let opk = (!b["one_time_prekey_private"].is_null()).then(|| {
                KeyPair::from_secret::<B>(Secret::new(arr(b, "one_time_prekey_private"))).unwrap()
            });
            let mut dhs = vec![
                dh::<B>(ik_a.secret(), &spk_b).unwrap(),
                dh::<B>(ek.secret(), &ik_b).unwrap(),
                dh::<B>(ek.secret(), &spk_b).unwrap(),
            ];
            if let Some(o) = &opk_b {
                dhs.push(dh::<B>(ek.secret(), o).unwrap());
            }
            for (i, d) in dhs.iter().enumerate() {
                let want = hx(v, &format!("dh{}", i + 1));
                if d.expose()[..] != want[..] {
                    return Err(format!("dh{}", i + 1));
                }
            }
            if !v["dh4"].is_null() && dhs.len() != 4 {
                return Err("dh4 expected".into());
            }
            let mut ikm = vec![0xFF; 57];
            dhs.iter().for_each(|d| ikm.extend_from_slice(d.expose()));
            if ikm != hx(v, "ikm") {
                return Err("ikm".into());
            }
            let resp = x3dh_responder::<B>(&ikb, &spk, opk.as_ref(), &p)
                .map_err(|e| format!("responder: {e}"))?;
            for (who, x) in [("initiator", &init), ("responder", &resp)] {
                if x.sk().expose()[..] != hx(v, "sk")[..]
                    || x.ad()[..] != hx(v, "ad")[..]
                    || x.session_id()[..] != hx(v, "session_id")[..]
                {
                    return Err(format!("{who}: sk/ad/session_id"));
                }
            }
            Ok(())
        };
        t.record("vectors", name, check());
    }
    let any = Secret::new(arr(&j["vectors"][0]["alice"], "identity_private"));
    for (i, k) in j["low_order_public_keys"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let k: [u8; 56] = hex::decode(k.as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let got = code(dh::<B>(&any, &k));
        let r = if got == "ZERO_DH" { Ok(()) } else { Err(got) };
        t.record("low_order_public_keys", &i.to_string(), r);
    }
    t.finish();
}

// ------------------------------------------------------------------ kdf.json

fn kdf<B: Backend>() {
    let j = load("kdf.json");
    let mut t = Tally::new::<B>("kdf.json");
    let mut prev: Option<Vec<u8>> = None;
    for (i, v) in j["root"].as_array().unwrap().iter().enumerate() {
        let rk = hx(v, "root_key");
        let chained = prev.as_ref().is_none_or(|p| *p == rk);
        let (nrk, ck) = kdf_rk::<B>(
            &Secret::from_slice(&rk).unwrap(),
            &Secret::from_slice(&hx(v, "dh_output")).unwrap(),
        )
        .unwrap();
        let ok = chained
            && nrk.expose()[..] == hx(v, "new_root_key")[..]
            && ck.expose()[..] == hx(v, "chain_key")[..];
        prev = Some(nrk.expose().to_vec());
        t.record(
            "root",
            &i.to_string(),
            if ok { Ok(()) } else { Err("KDF_RK".into()) },
        );
    }
    for (i, c) in j["chain"].as_array().unwrap().iter().enumerate() {
        let mut ck = Secret::<64>::from_slice(&hx(c, "initial_chain_key")).unwrap();
        for s in c["steps"].as_array().unwrap() {
            let before = ck.expose()[..] == hx(s, "chain_key")[..];
            let (next, mk) = kdf_ck::<B>(&ck).unwrap();
            let keys = msg_keys::<B>(&mk).unwrap();
            let ok = before
                && mk.expose()[..] == hx(s, "message_key")[..]
                && next.expose()[..] == hx(s, "next_chain_key")[..]
                && keys.expose()[..32] == hx(s, "aead_key")[..]
                && keys.expose()[32..] == hx(s, "aead_nonce")[..];
            ck = next;
            t.record(
                "chain",
                &format!("{i}/{}", s["n"]),
                if ok {
                    Ok(())
                } else {
                    Err("KDF_CK / MSG_KEYS".into())
                },
            );
        }
    }
    for (i, v) in j["aead"].as_array().unwrap().iter().enumerate() {
        let mk = Secret::<64>::from_slice(&hx(v, "message_key")).unwrap();
        let h = &v["header"];
        let header = MessageHeader {
            dh: arr(h, "dh"),
            pn: h["pn"].as_u64().unwrap() as u32,
            n: h["n"].as_u64().unwrap() as u32,
        };
        let enc = header.encode();
        let aad = [hx(v, "ad"), enc.to_vec()].concat();
        let keys = msg_keys::<B>(&mk).unwrap();
        let ct = seal::<B>(&mk, &hx(v, "plaintext"), &aad).unwrap();
        let ok = enc[..] == hx(v, "header_encoding")[..]
            && aad == hx(v, "associated_data")
            && keys.expose()[..32] == hx(v, "aead_key")[..]
            && keys.expose()[32..] == hx(v, "aead_nonce")[..]
            && ct == hx(v, "ciphertext")
            && open::<B>(&mk, &ct, &aad).unwrap() == hx(v, "plaintext");
        t.record(
            "aead",
            &i.to_string(),
            if ok { Ok(()) } else { Err("AEAD".into()) },
        );
    }
    for (i, v) in j["session_id"].as_array().unwrap().iter().enumerate() {
        let got = session_id::<B>(
            &arr(v, "identity_key_a"),
            &arr(v, "identity_key_b"),
            &arr(v, "ephemeral_key_a"),
        )
        .unwrap();
        t.record(
            "session_id",
            &i.to_string(),
            if got[..] == hx(v, "session_id")[..] {
                Ok(())
            } else {
                Err("session_id".into())
            },
        );
    }
    t.finish();
}

// ------------------------------------------------------------------ bundle.json

fn bundle<B: Backend>() {
    let j = load("bundle.json");
    let keys = &j["keys"];
    let mut t = Tally::new::<B>("bundle.json");
    for v in j["vectors"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        let bytes = hx(v, "bundle");
        let now = v["now"].as_u64().unwrap();
        let result = PrekeyBundle::validate::<B>(&bytes, now);
        let check = || -> Result<(), String> {
            if v["valid"].as_bool() != Some(true) {
                let want = v["error"].as_str().unwrap();
                let got = code(result);
                return if got == want {
                    Ok(())
                } else {
                    Err(format!("{got}, want {want}"))
                };
            }
            let verified = result.map_err(|e| format!("rejected: {e}"))?;
            let b = verified.bundle();
            let p = &v["parsed"];
            let s = &p["signed_prekey"];
            let fields_ok = p["version"].as_u64() == Some(1)
                && b.address[..] == hx(p, "address")[..]
                && b.signature_key[..] == hx(p, "signature_key")[..]
                && b.identity_key[..] == hx(p, "identity_key")[..]
                && b.identity_signature[..] == hx(p, "identity_signature")[..]
                && u64::from(b.signed_prekey.id) == s["id"].as_u64().unwrap()
                && b.signed_prekey.expiry == s["expiry"].as_u64().unwrap()
                && b.signed_prekey.key[..] == hx(s, "key")[..]
                && b.signed_prekey.signature[..] == hx(s, "signature")[..]
                && b.identity_tbs() == hx(p, "identity_tbs")
                && b.signed_prekey_tbs() == hx(p, "signed_prekey_tbs");
            let opks = p["one_time_prekeys"].as_array().unwrap();
            let opks_ok = opks.len() == b.one_time_prekeys.len()
                && opks.iter().zip(&b.one_time_prekeys).all(|(o, k)| {
                    o["id"].as_u64() == Some(u64::from(k.id)) && hx(o, "key")[..] == k.key[..]
                });
            if !fields_ok || !opks_ok {
                return Err("parsed fields".into());
            }
            if b.encode().unwrap() != bytes {
                return Err("re-encoding differs".into());
            }
            // Re-create the bundle from the private keys: signing is deterministic.
            let mut dev = Device::<B>::from_keys(
                b.address,
                Secret::new(arr(keys, "identity_private")),
                Secret::new(arr(keys, "signature_private")),
            )
            .unwrap();
            dev.add_signed_prekey(
                b.signed_prekey.id,
                b.signed_prekey.expiry,
                Secret::new(arr(keys, "signed_prekey_private")),
            )
            .unwrap();
            for k in &b.one_time_prekeys {
                dev.add_one_time_prekey(
                    k.id,
                    Secret::new(arr(&keys["one_time_prekey_privates"], &k.id.to_string())),
                )
                .unwrap();
            }
            let again = dev
                .bundle(now, b.one_time_prekeys.len())
                .unwrap()
                .encode()
                .unwrap();
            if again != bytes {
                return Err("bundle re-created from the keys differs".into());
            }
            Ok(())
        };
        t.record("vectors", name, check());
    }
    t.finish();
}

// ------------------------------------------------------------------ conversations

/// Runs a `session.json`-format conversation; `label` names it in failures.
fn conversation<B: Backend>(c: &Value) -> Result<usize, String> {
    let now = c["now"].as_u64().unwrap();
    let (mut alice, alice_draws) = device::<B>(&c["alice"]);
    let (mut bob, bob_draws) = bob_device::<B>(&c["bob"]);
    let bundle_bytes = hx(c, "bundle");
    let all_opks = bob.one_time_prekey_ids().len();
    if bob.bundle(now, all_opks).unwrap().encode().unwrap() != bundle_bytes {
        return Err("the bundle is not re-created from Bob's keys".into());
    }
    let bundle =
        PrekeyBundle::validate::<B>(&bundle_bytes, now).map_err(|e| format!("bundle: {e}"))?;
    let choice = c["one_time_prekey_id"]
        .as_u64()
        .map_or(OneTimePrekeyChoice::None, |id| {
            OneTimePrekeyChoice::Id(id as u32)
        });
    let sid = alice
        .initiate(&bundle, choice)
        .map_err(|e| format!("initiate: {e}"))?;
    let x = &c["x3dh"];
    let session = alice.session(&sid).unwrap();
    if sid[..] != hx(x, "session_id")[..] || session.associated_data()[..] != hx(x, "ad")[..] {
        return Err("x3dh session_id / ad".into());
    }
    let mut sent: HashMap<String, Vec<u8>> = HashMap::new();
    let mut checked = 0;
    for (i, e) in c["events"].as_array().unwrap().iter().enumerate() {
        let at = |what: String| {
            format!(
                "event {i} ({} {} {}): {what}",
                e["op"], e["party"], e["label"]
            )
        };
        let (dev, draws) = match e["party"].as_str().unwrap() {
            "alice" => (&mut alice, &alice_draws),
            _ => (&mut bob, &bob_draws),
        };
        match e["op"].as_str().unwrap() {
            "send" => {
                let bytes = dev
                    .encrypt(&sid, &hx(e, "plaintext"))
                    .map_err(|err| at(format!("{err}")))?;
                if bytes != hx(e, "message") {
                    return Err(at("message bytes differ".into()));
                }
                let kind = match ChannelMessage::decode(&bytes).unwrap() {
                    ChannelMessage::Prekey(_) => "prekey",
                    ChannelMessage::Normal(_) => "normal",
                };
                if kind != e["kind"].as_str().unwrap() {
                    return Err(at("kind".into()));
                }
                sent.insert(e["label"].as_str().unwrap().to_string(), bytes);
            }
            "receive" => {
                let bytes = match e["message"].as_str() {
                    Some(m) => hex::decode(m).unwrap(),
                    None => sent[e["label"].as_str().unwrap()].clone(),
                };
                let when = e["now"].as_u64().unwrap_or(now);
                let before = dev.to_bytes();
                let drawn = draws.drawn();
                let result = dev.receive(&bytes, when);
                match e["error"].as_str() {
                    Some(want) => {
                        let got = code(result);
                        if got != want {
                            return Err(at(format!("{got}, want {want}")));
                        }
                        if dev.to_bytes() != before || draws.drawn() != drawn {
                            return Err(at("a rejected message changed the device".into()));
                        }
                    }
                    None => {
                        let got = result.map_err(|err| at(format!("{err}")))?;
                        if got.plaintext != hx(e, "plaintext") || got.session_id != sid {
                            return Err(at("plaintext / session".into()));
                        }
                    }
                }
            }
            op => return Err(at(format!("unknown op {op}"))),
        }
        if let Some(s) = e.get("state_after").filter(|s| !s.is_null()) {
            let session = dev.session(&sid).ok_or_else(|| at("no session".into()))?;
            snapshot_matches(&session.snapshot(), s).map_err(at)?;
        }
        checked += 1;
    }
    if alice_draws.remaining() != 0 || bob_draws.remaining() != 0 {
        return Err("key draws left over".into());
    }
    Ok(checked)
}

fn session<B: Backend>() {
    let j = load("session.json");
    let mut t = Tally::new::<B>("session.json");
    for c in j["conversations"].as_array().unwrap() {
        t.record(
            "conversations",
            c["name"].as_str().unwrap(),
            conversation::<B>(c).map(|_| ()),
        );
    }
    t.finish();
}

fn negative<B: Backend>() {
    let j = load("negative.json");
    let p = &j["parameters"];
    assert_eq!(p["max_skip"].as_u64(), Some(eth_mls_channel::MAX_SKIP));
    assert_eq!(
        p["max_skipped_keys_per_chain"].as_u64(),
        Some(eth_mls_channel::MAX_SKIPPED_PER_CHAIN as u64)
    );
    assert_eq!(
        p["max_receiving_chains"].as_u64(),
        Some(eth_mls_channel::MAX_RECEIVING_CHAINS as u64)
    );
    assert_eq!(p["spk_grace"].as_u64(), Some(eth_mls_channel::SPK_GRACE));
    let mut t = Tally::new::<B>("negative.json");
    for v in j["decode"].as_array().unwrap() {
        let bytes = hx(v, "message");
        let want = v["error"].as_str().unwrap();
        let got = code(ChannelMessage::decode(&bytes));
        // A device rejects them the same way, before consulting any state.
        let (mut bob, _) = bob_device::<B>(&j["responder"][0]["bob"]);
        let before = bob.to_bytes();
        let via_device = code(bob.receive(&bytes, 0));
        let r = if got == want && via_device == want && bob.to_bytes() == before {
            Ok(())
        } else {
            Err(format!("{got} / {via_device}, want {want}"))
        };
        t.record("decode", v["name"].as_str().unwrap(), r);
    }
    for v in j["responder"].as_array().unwrap() {
        let check = || -> Result<(), String> {
            let (mut bob, draws) = bob_device::<B>(&v["bob"]);
            for (i, prior) in v["prior"].as_array().unwrap().iter().enumerate() {
                let got = bob
                    .receive(&hx(prior, "message"), prior["now"].as_u64().unwrap())
                    .map_err(|e| format!("prior {i}: {e}"))?;
                if got.plaintext != hx(prior, "plaintext") {
                    return Err(format!("prior {i}: plaintext"));
                }
            }
            let before = bob.to_bytes();
            let drawn = draws.drawn();
            let result = bob.receive(&hx(v, "message"), v["now"].as_u64().unwrap());
            match v["error"].as_str() {
                Some(want) => {
                    let got = code(result);
                    if got != want {
                        return Err(format!("{got}, want {want}"));
                    }
                    if bob.to_bytes() != before || draws.drawn() != drawn {
                        return Err("the rejection changed the device".into());
                    }
                }
                None => {
                    let got = result.map_err(|e| format!("{e}"))?;
                    if got.plaintext != hx(v, "plaintext") {
                        return Err("plaintext".into());
                    }
                }
            }
            for (i, then) in v["then"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[])
                .iter()
                .enumerate()
            {
                let got = bob
                    .receive(&hx(then, "message"), then["now"].as_u64().unwrap())
                    .map_err(|e| format!("then {i}: {e}"))?;
                if got.plaintext != hx(then, "plaintext") {
                    return Err(format!("then {i}: plaintext"));
                }
            }
            Ok(())
        };
        t.record("responder", v["name"].as_str().unwrap(), check());
    }
    for c in j["conversations"].as_array().unwrap() {
        t.record(
            "conversations",
            c["name"].as_str().unwrap(),
            conversation::<B>(c).map(|_| ()),
        );
    }
    t.finish();
}

fn all<B: Backend>() {
    x3dh::<B>();
    kdf::<B>();
    bundle::<B>();
    session::<B>();
    negative::<B>();
}

#[cfg(feature = "rustcrypto")]
#[test]
fn vectors_rustcrypto() {
    all::<eth_mls_crypto::RustCrypto>();
}

#[cfg(feature = "openssl")]
#[test]
fn vectors_openssl() {
    all::<eth_mls_crypto::OpenSsl>();
}
