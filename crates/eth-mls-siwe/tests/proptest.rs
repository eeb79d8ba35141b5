//! Property tests: generated valid messages print and parse back byte for byte (and through
//! serde); random mutations never panic, and whatever still parses round-trips.
#![allow(clippy::unwrap_used)]

use eth_mls_siwe::{Address, Message, TimeStamp, to_checksum};
use proptest::prelude::*;

fn rfc3339() -> impl Strategy<Value = String> {
    (
        0i64..4_000_000_000,
        prop::option::of(1u32..999_999_999),
        prop::option::of((0u32..24, 0u32..60, any::<bool>())),
    )
        .prop_map(|(secs, frac, offset)| {
            let utc = TimeStamp::from_unix(secs).as_str().to_owned();
            let base = &utc[..19];
            let frac = frac.map(|f| format!(".{f:09}")).unwrap_or_default();
            match offset {
                None => format!("{base}{frac}Z"),
                Some((h, m, plus)) => {
                    format!("{base}{frac}{}{h:02}:{m:02}", if plus { '+' } else { '-' })
                }
            }
        })
}

prop_compose! {
    fn message_text()(
        scheme in prop::option::of("[a-z][a-z0-9+.-]{0,5}"),
        domain in "[a-z]{1,10}(\\.[a-z]{2,5}){0,2}(:[0-9]{1,5})?",
        address in any::<[u8; 20]>(),
        statement in prop::option::of("[a-zA-Z0-9 :/?#\\[\\]@!$&'()*+,;=._~-]{0,40}"),
        uri in "https://[a-z]{1,10}\\.com(/[a-z0-9%]{0,8}){0,3}",
        chain_id in any::<u64>(),
        nonce in "[a-zA-Z0-9]{8,24}",
        issued in rfc3339(),
        expiration in prop::option::of(rfc3339()),
        not_before in prop::option::of(rfc3339()),
        request_id in prop::option::of("[a-zA-Z0-9:@!$&'()*+,;=._~-]{0,12}"),
        resources in prop::option::of(prop::collection::vec("(https://[a-z]{1,8}\\.org/[a-z]{0,6}|ipfs://[a-z2-7]{10,20}|did:key:[a-zA-Z0-9]{5,20})", 0..4)),
    ) -> String {
        let uri = uri.replace('%', "%41");
        let mut t = String::new();
        if let Some(s) = scheme { t.push_str(&format!("{s}://")); }
        t.push_str(&format!("{domain} wants you to sign in with your Ethereum account:\n{}\n\n", to_checksum(&Address::from(address))));
        match statement { Some(s) => t.push_str(&format!("{s}\n\n")), None => t.push('\n') }
        t.push_str(&format!("URI: {uri}\nVersion: 1\nChain ID: {chain_id}\nNonce: {nonce}\nIssued At: {issued}"));
        if let Some(e) = expiration { t.push_str(&format!("\nExpiration Time: {e}")); }
        if let Some(n) = not_before { t.push_str(&format!("\nNot Before: {n}")); }
        if let Some(r) = request_id { t.push_str(&format!("\nRequest ID: {r}")); }
        if let Some(list) = resources {
            t.push_str("\nResources:");
            for r in list { t.push_str(&format!("\n- {r}")); }
        }
        t
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn valid_messages_round_trip(text in message_text()) {
        let m: Message = text.parse().map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(m.to_string(), text.clone());
        let (lenient, warnings) = Message::parse_lenient(&text).unwrap();
        prop_assert!(warnings.is_empty());
        prop_assert_eq!(lenient, m.clone());
        #[cfg(feature = "serde")]
        {
            let json = serde_json::to_string(&m).unwrap();
            let back: Message = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(back.to_string(), text);
        }
    }

    #[test]
    fn mutations_never_panic(
        text in message_text(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let mut bytes = text.into_bytes();
        for (at, byte, kind) in edits {
            let i = at.index(bytes.len() + 1);
            match kind {
                0 if i < bytes.len() => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ if i < bytes.len() => { bytes.remove(i); }
                _ => {}
            }
        }
        let mutated = String::from_utf8_lossy(&bytes).into_owned();
        if let Ok(m) = mutated.parse::<Message>() {
            prop_assert_eq!(m.to_string(), mutated.clone());
        }
        if let Ok((m, _)) = Message::parse_lenient(&mutated) {
            prop_assert_eq!(m.to_string(), mutated);
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        let _ = text.parse::<Message>();
        let _ = Message::parse_lenient(&text);
        let _ = eth_mls_siwe::classify_signing_request(&text);
    }
}
