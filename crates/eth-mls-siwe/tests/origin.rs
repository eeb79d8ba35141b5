//! The wallet-side request-origin algorithm and the phishing check.
#![allow(clippy::unwrap_used)]

use eth_mls_siwe::{
    Message, OriginError, OriginPolicy, OriginWarning, SigningRequest, check_request_origin,
    classify_signing_request,
};

fn msg(origin_part: &str) -> Message {
    format!(
        "{origin_part} wants you to sign in with your Ethereum account:
0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2


URI: https://example.com/login
Version: 1
Chain ID: 1
Nonce: 32891756
Issued At: 2021-09-30T16:25:24Z"
    )
    .parse()
    .unwrap()
}

fn dev() -> OriginPolicy {
    OriginPolicy {
        allowed_schemes: vec!["https".into(), "http".into()],
        developer_mode: true,
        ..OriginPolicy::default()
    }
}

#[test]
fn matching_origin_passes() {
    let p = OriginPolicy::default();
    assert_eq!(
        check_request_origin(&msg("example.com"), "https://example.com", &p),
        Ok(vec![])
    );
    assert_eq!(
        check_request_origin(&msg("https://example.com"), "https://EXAMPLE.com/", &p),
        Ok(vec![])
    );
    assert_eq!(
        check_request_origin(&msg("example.com:443"), "https://example.com", &p),
        Ok(vec![])
    );
}

#[test]
fn scheme_rules() {
    let p = OriginPolicy::default();
    assert_eq!(
        check_request_origin(&msg("http://example.com"), "http://example.com", &p),
        Err(OriginError::SchemeNotAllowed("http".into()))
    );
    let both = OriginPolicy {
        allowed_schemes: vec!["https".into(), "http".into()],
        ..OriginPolicy::default()
    };
    assert!(matches!(
        check_request_origin(&msg("http://example.com"), "https://example.com", &both),
        Err(OriginError::SchemeMismatch { .. })
    ));
    let warnings =
        check_request_origin(&msg("http://example.com"), "https://example.com", &dev()).unwrap();
    assert!(warnings.contains(&OriginWarning::SchemeMismatch {
        message: "http".into(),
        origin: "https".into()
    }));
}

#[test]
fn host_and_subdomain_rules() {
    let p = OriginPolicy::default();
    assert!(matches!(
        check_request_origin(&msg("example.com"), "https://evil.com", &p),
        Err(OriginError::HostMismatch { .. })
    ));
    assert!(matches!(
        check_request_origin(&msg("login.example.com"), "https://app.example.com", &p),
        Err(OriginError::SubdomainMismatch { .. })
    ));
    let w = check_request_origin(&msg("example.com"), "https://evil.com", &dev()).unwrap();
    assert!(matches!(w[0], OriginWarning::HostMismatch { .. }));
    let w =
        check_request_origin(&msg("login.example.com"), "https://app.example.com", &dev()).unwrap();
    assert!(matches!(w[0], OriginWarning::SubdomainMismatch { .. }));
}

#[test]
fn port_warnings() {
    let p = OriginPolicy::default();
    assert_eq!(
        check_request_origin(&msg("example.com:8443"), "https://example.com", &p),
        Ok(vec![OriginWarning::PortMismatch {
            message: "8443".into(),
            origin: "443".into()
        }])
    );
    assert_eq!(
        check_request_origin(&msg("example.com"), "https://example.com:8443", &p),
        Ok(vec![OriginWarning::PortMismatch {
            message: "443".into(),
            origin: "8443".into()
        }])
    );
    let custom = OriginPolicy {
        allowed_schemes: vec!["app".into()],
        default_scheme: "app".into(),
        developer_mode: false,
    };
    assert_eq!(
        check_request_origin(&msg("example.com"), "app://example.com:9000", &custom),
        Ok(vec![OriginWarning::OriginHasPort {
            origin: "9000".into()
        }])
    );
    assert!(matches!(
        check_request_origin(&msg("example.com"), "example.com", &p),
        Err(OriginError::InvalidOrigin(_))
    ));
}

#[test]
fn phishing_check() {
    let good = msg("example.com").to_string();
    assert!(matches!(
        classify_signing_request(&good),
        SigningRequest::SignIn(_)
    ));
    let broken = good.replace("Version: 1", "Version: 9");
    match classify_signing_request(&broken) {
        SigningRequest::Suspicious(e) => assert_eq!(e.field(), "version"),
        other => panic!("{other:?}"),
    }
    let hidden = "Please sign this harmless text.\nevil.com wants you to sign in with your Ethereum account: 0x0";
    assert!(matches!(
        classify_signing_request(hidden),
        SigningRequest::Suspicious(_)
    ));
    assert_eq!(
        classify_signing_request("hello world"),
        SigningRequest::Other
    );
}
