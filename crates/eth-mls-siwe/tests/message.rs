//! Parsing, printing, building and serde of EIP-4361 messages; one test per error variant.
#![allow(clippy::unwrap_used)]

use eth_mls_siwe::{Address, AddressError, Message, ParseError, TimeStamp, Warning};

/// The example message of EIP-4361.
const EIP_EXAMPLE: &str = "example.com wants you to sign in with your Ethereum account:
0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2

I accept the ExampleOrg Terms of Service: https://example.com/tos

URI: https://example.com/login
Version: 1
Chain ID: 1
Nonce: 32891756
Issued At: 2021-09-30T16:25:24Z
Resources:
- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/
- https://example.com/my-web2-claim.json";

/// Every optional field, a scheme and a port.
const FULL: &str = "https://example.com:3388 wants you to sign in with your Ethereum account:
0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2

I accept the ExampleOrg Terms of Service: https://example.com/tos

URI: https://example.com/login
Version: 1
Chain ID: 10
Nonce: 32891756abcDEF
Issued At: 2021-09-30T16:25:24.000+02:00
Expiration Time: 2021-10-01T16:25:24Z
Not Before: 2021-09-30T16:25:24Z
Request ID: some_id-42
Resources:
- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/";

const NO_STATEMENT: &str = "example.com wants you to sign in with your Ethereum account:
0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2


URI: https://example.com/login
Version: 1
Chain ID: 1
Nonce: 32891756
Issued At: 2021-09-30T16:25:24Z";

fn err(text: &str) -> ParseError {
    text.parse::<Message>().unwrap_err()
}

fn replace(line: &str, with: &str) -> String {
    EIP_EXAMPLE.replacen(line, with, 1)
}

#[test]
fn eip_example_round_trips() {
    let m: Message = EIP_EXAMPLE.parse().unwrap();
    assert_eq!(m.to_string(), EIP_EXAMPLE);
    assert_eq!(m.domain(), "example.com");
    assert_eq!(m.scheme(), None);
    assert_eq!(
        m.address().to_string().to_lowercase(),
        "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
    );
    assert_eq!(
        m.statement(),
        Some("I accept the ExampleOrg Terms of Service: https://example.com/tos")
    );
    assert_eq!(m.uri(), "https://example.com/login");
    assert_eq!(m.version(), "1");
    assert_eq!(m.chain_id(), 1);
    assert_eq!(m.nonce(), "32891756");
    assert_eq!(m.issued_at().unix_seconds(), 1_633_019_124);
    assert_eq!(m.resources().len(), 2);
    assert_eq!(m.expiration_time(), None);
}

#[test]
fn full_message_round_trips() {
    let m: Message = FULL.parse().unwrap();
    assert_eq!(m.to_string(), FULL);
    assert_eq!(m.scheme(), Some("https"));
    assert_eq!(m.domain(), "example.com:3388");
    assert_eq!(m.issued_at().as_str(), "2021-09-30T16:25:24.000+02:00");
    assert_eq!(m.request_id(), Some("some_id-42"));
    assert!(m.not_before().unwrap() > m.issued_at());
}

#[test]
fn statement_layouts() {
    let m: Message = NO_STATEMENT.parse().unwrap();
    assert_eq!(m.statement(), None);
    assert_eq!(m.to_string(), NO_STATEMENT);
    // An empty statement is different from none, and prints back as it was.
    let empty = NO_STATEMENT.replace("\n\n\nURI", "\n\n\n\nURI");
    let m: Message = empty.parse().unwrap();
    assert_eq!(m.statement(), Some(""));
    assert_eq!(m.to_string(), empty);
    // The older two-line-feed layout: lenient only, with a warning, printed back as is.
    let legacy = NO_STATEMENT.replace("\n\n\nURI", "\n\nURI");
    assert!(matches!(
        err(&legacy),
        ParseError::MissingField {
            line: 4,
            field: "uri",
            ..
        } | ParseError::InvalidStatement { .. }
            | ParseError::ExpectedEmptyLine { .. }
    ));
    let (m, warnings) = Message::parse_lenient(&legacy).unwrap();
    assert_eq!(warnings, vec![Warning::LegacyNoStatementLayout]);
    assert_eq!(m.to_string(), legacy);
    // An empty resource list.
    let no_resources = format!("{NO_STATEMENT}\nResources:");
    let m: Message = no_resources.parse().unwrap();
    assert!(m.resources().is_empty());
    assert_eq!(m.to_string(), no_resources);
}

#[test]
fn lenient_addresses() {
    let lower = EIP_EXAMPLE.replace(
        "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2",
        "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2",
    );
    let upper = EIP_EXAMPLE.replace(
        "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2",
        "0xC02AAA39B223FE8D0A0E5C4F27EAD9083C756CC2",
    );
    for text in [&lower, &upper] {
        assert_eq!(
            err(text),
            ParseError::InvalidAddress {
                line: 2,
                value: text.lines().nth(1).unwrap().to_owned(),
                reason: AddressError::NotChecksummed
            }
        );
        let (m, warnings) = Message::parse_lenient(text).unwrap();
        assert_eq!(warnings, vec![Warning::SingleCaseAddress]);
        assert_eq!(&m.to_string(), text, "printed as signed");
        assert_eq!(
            m.address(),
            EIP_EXAMPLE.parse::<Message>().unwrap().address()
        );
    }
    // A wrong checksum is wrong in both modes.
    let bad = EIP_EXAMPLE.replace("0xC02aaA39", "0xc02AaA39");
    assert!(matches!(
        err(&bad),
        ParseError::InvalidAddress {
            reason: AddressError::BadChecksum,
            ..
        }
    ));
    assert!(Message::parse_lenient(&bad).is_err());
}

#[test]
fn every_error_names_its_field_and_line() {
    let cases: Vec<(String, &str, usize)> = vec![
        (
            EIP_EXAMPLE.replace(" wants you", " want you"),
            "preamble",
            1,
        ),
        (
            EIP_EXAMPLE.replacen("example.com wants", "1ht tp://example.com wants", 1),
            "scheme",
            1,
        ),
        (
            EIP_EXAMPLE.replacen("example.com wants", "ht_tp://example.com wants", 1),
            "scheme",
            1,
        ),
        (
            EIP_EXAMPLE.replacen("example.com wants", "exa mple.com wants", 1),
            "domain",
            1,
        ),
        (
            EIP_EXAMPLE.replacen("example.com wants", " wants", 1),
            "domain",
            1,
        ),
        (
            replace("0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2", "0xC02aaA39"),
            "address",
            2,
        ),
        (replace("\n\nI accept", "\nx\nI accept"), "layout", 3),
        (
            replace("I accept the ExampleOrg", "I accept the <ExampleOrg>"),
            "statement",
            4,
        ),
        (
            replace(
                "Service: https://example.com/tos\n\n",
                "Service: https://example.com/tos\nx\n",
            ),
            "layout",
            5,
        ),
        (
            replace(
                "URI: https://example.com/login",
                "URL: https://example.com/login",
            ),
            "uri",
            6,
        ),
        (
            replace("URI: https://example.com/login", "URI: example.com/login"),
            "uri",
            6,
        ),
        (replace("Version: 1", "Version: 2"), "version", 7),
        (replace("Chain ID: 1", "Chain ID: one"), "chain-id", 8),
        (
            replace("Chain ID: 1", "Chain ID: 18446744073709551616"),
            "chain-id",
            8,
        ),
        (replace("Nonce: 32891756", "Nonce: 1234567"), "nonce", 9),
        (replace("Nonce: 32891756", "Nonce: 12345678!"), "nonce", 9),
        (
            replace(
                "Issued At: 2021-09-30T16:25:24Z",
                "Issued At: 2021-09-30 16:25:24Z",
            ),
            "issued-at",
            10,
        ),
        (
            replace("Resources:\n", "Expiration Time: tomorrow\nResources:\n"),
            "expiration-time",
            11,
        ),
        (
            replace(
                "Resources:\n",
                "Not Before: 2021-02-30T00:00:00Z\nResources:\n",
            ),
            "not-before",
            11,
        ),
        (
            replace("Resources:\n", "Request ID: a b\nResources:\n"),
            "request-id",
            11,
        ),
        (
            replace("- https://example.com/my-web2-claim.json", "- not a uri"),
            "resources",
            13,
        ),
        (format!("{EIP_EXAMPLE}\n"), "end of message", 14),
        (format!("{EIP_EXAMPLE}\nExtra: field"), "end of message", 14),
        (
            replace(
                "Resources:\n",
                "Not Before: 2021-09-30T16:25:24Z\nExpiration Time: 2021-10-30T16:25:24Z\nResources:\n",
            ),
            "end of message",
            12,
        ),
        (
            EIP_EXAMPLE.split("\nNonce").next().unwrap().to_owned(),
            "nonce",
            9,
        ),
    ];
    for (text, field, line) in cases {
        let e = err(&text);
        assert_eq!((e.field(), e.line()), (field, line), "{e} for:\n{text}");
        assert!(e.to_string().contains(&format!("line {line}")), "{e}");
    }
}

#[test]
fn specific_variants() {
    assert_eq!(err("nothing"), ParseError::MissingPreamble { line: 1 });
    assert!(matches!(err(""), ParseError::MissingPreamble { line: 1 }));
    assert!(matches!(
        err(&replace("Version: 1", "Version: 2")),
        ParseError::InvalidVersion { line: 7, ref value } if value == "2"
    ));
    assert!(matches!(
        err(&replace("Nonce: 32891756", "Nonce: short")),
        ParseError::InvalidNonce { line: 9, .. }
    ));
    assert!(matches!(
        err(EIP_EXAMPLE.split("\nURI").next().unwrap()),
        ParseError::UnexpectedEnd { field: "uri", .. }
    ));
}

#[test]
fn builder() {
    let address: Address = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
        .parse()
        .unwrap();
    let issued = TimeStamp::parse("2021-09-30T16:25:24Z").unwrap();
    let m = Message::builder("example.com", address, "https://example.com/login", 1)
        .statement("I accept the ExampleOrg Terms of Service: https://example.com/tos")
        .nonce("32891756")
        .issued_at(issued.clone())
        .resource("ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/")
        .resource("https://example.com/my-web2-claim.json")
        .build()
        .unwrap();
    assert_eq!(m.to_string(), EIP_EXAMPLE);

    // Defaults: a fresh nonce (24 alphanumerics), issued now.
    let a = Message::builder("example.com", address, "https://example.com", 1)
        .build()
        .unwrap();
    let b = Message::builder("example.com", address, "https://example.com", 1)
        .build()
        .unwrap();
    assert_eq!(a.nonce().len(), 24);
    assert!(a.nonce().bytes().all(|c| c.is_ascii_alphanumeric()));
    assert_ne!(a.nonce(), b.nonce());
    assert!((a.issued_at().unix_seconds() - TimeStamp::now().unix_seconds()).abs() < 5);

    // Invalid fields are reported by name.
    let e = Message::builder("example.com", address, "not a uri", 1)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "uri");
    let e = Message::builder("example.com", address, "https://x", 1)
        .statement("a\nb")
        .build()
        .unwrap_err();
    assert!(e.field() == "layout" || e.field() == "statement", "{e}");
    let e = Message::builder("example.com", address, "https://x", 1)
        .nonce("short")
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "nonce");
    let e = Message::builder("bad host", address, "https://x", 1)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "domain");
}

#[test]
fn generated_nonces_are_distinct_and_alphanumeric() {
    let nonces: std::collections::HashSet<String> =
        (0..200).map(|_| eth_mls_siwe::generate_nonce()).collect();
    assert_eq!(nonces.len(), 200);
    assert!(
        nonces
            .iter()
            .all(|n| n.len() >= 17 && n.bytes().all(|c| c.is_ascii_alphanumeric()))
    );
}

#[cfg(feature = "serde")]
#[test]
fn serde_object_form() {
    let m: Message = FULL.parse().unwrap();
    let json = serde_json::to_value(&m).unwrap();
    assert_eq!(json["chainId"], 10);
    assert_eq!(json["issuedAt"], "2021-09-30T16:25:24.000+02:00");
    assert_eq!(json["requestId"], "some_id-42");
    assert_eq!(json["scheme"], "https");
    let back: Message = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back, m);
    assert_eq!(back.to_string(), FULL);

    // Every field is validated as in the text.
    for (key, bad) in [
        (
            "address",
            serde_json::json!("0xc02AaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"),
        ),
        ("nonce", serde_json::json!("short")),
        ("issuedAt", serde_json::json!("yesterday")),
        ("uri", serde_json::json!("nope")),
        ("version", serde_json::json!("2")),
        ("statement", serde_json::json!("two\nlines")),
        ("domain", serde_json::json!("a b")),
    ] {
        let mut j = json.clone();
        j[key] = bad;
        let e = serde_json::from_value::<Message>(j)
            .unwrap_err()
            .to_string();
        assert!(!e.is_empty(), "{key}");
    }
    let mut unknown = json.clone();
    unknown["extra"] = serde_json::json!(1);
    assert!(serde_json::from_value::<Message>(unknown).is_err());
}
