//! Wallet-side checks: the request-origin algorithm of EIP-4361 and the "wants you to sign
//! in" phishing check.

use crate::abnf::parse_authority;
use crate::{Message, ParseError};

/// The wallet's policy for [`check_request_origin`].
#[derive(Clone, Debug)]
pub struct OriginPolicy {
    /// Schemes the wallet accepts (browsers: just `https`, unless in developer mode).
    pub allowed_schemes: Vec<String>,
    /// The scheme assumed when the message has none (browsers: `https`).
    pub default_scheme: String,
    /// Developer mode: scheme, host and subdomain mismatches become warnings.
    pub developer_mode: bool,
}

impl Default for OriginPolicy {
    fn default() -> Self {
        Self {
            allowed_schemes: vec!["https".into()],
            default_scheme: "https".into(),
            developer_mode: false,
        }
    }
}

/// A mismatch that the algorithm reports without rejecting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OriginWarning {
    /// Scheme differs from the origin's (developer mode).
    SchemeMismatch {
        /// The message's (or default) scheme.
        message: String,
        /// The origin's scheme.
        origin: String,
    },
    /// Host differs from the origin's (developer mode).
    HostMismatch {
        /// The message's host.
        message: String,
        /// The origin's host.
        origin: String,
    },
    /// Same site, different subdomain (developer mode).
    SubdomainMismatch {
        /// The message's host.
        message: String,
        /// The origin's host.
        origin: String,
    },
    /// The message's port (explicit or the scheme's default) differs from the origin's.
    PortMismatch {
        /// The message's port.
        message: String,
        /// The origin's port.
        origin: String,
    },
    /// The message gives no port (and its scheme has no default) but the origin has one.
    OriginHasPort {
        /// The origin's port.
        origin: String,
    },
}

/// Why the request is rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    /// The origin is not `scheme://authority`.
    #[error("origin {0:?} is not scheme://host[:port]")]
    InvalidOrigin(String),
    /// The scheme is not allowed by the wallet.
    #[error("scheme {0:?} is not allowed")]
    SchemeNotAllowed(String),
    /// The scheme differs from the origin's.
    #[error("message scheme {message:?} does not match the origin's {origin:?}")]
    SchemeMismatch {
        /// The message's (or default) scheme.
        message: String,
        /// The origin's scheme.
        origin: String,
    },
    /// The host differs from the origin's: a phishing attempt unless in developer mode.
    #[error("message domain {message:?} does not match the origin host {origin:?}")]
    HostMismatch {
        /// The message's host.
        message: String,
        /// The origin's host.
        origin: String,
    },
    /// Same site, different subdomain.
    #[error("message domain {message:?} is another subdomain than the origin's {origin:?}")]
    SubdomainMismatch {
        /// The message's host.
        message: String,
        /// The origin's host.
        origin: String,
    },
}

fn default_port(scheme: &str) -> Option<&'static str> {
    match scheme.to_ascii_lowercase().as_str() {
        "https" | "wss" => Some("443"),
        "http" | "ws" => Some("80"),
        _ => None,
    }
}

/// The registrable part of a host, approximated by its last two labels (no public suffix
/// list here; IP literals and single labels are their own site).
fn site(host: &str) -> &str {
    if host.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok() {
        return host;
    }
    let mut dots = host.rmatch_indices('.');
    match (dots.next(), dots.next()) {
        (Some(_), Some((i, _))) => &host[i + 1..],
        _ => host,
    }
}

/// The RECOMMENDED request-origin verification of EIP-4361 for wallets: `origin` is the
/// requesting page's origin (`scheme://host[:port]`) from a trusted source. Returns the
/// warnings to show, or the reason to reject. Hosts compare case-insensitively; subdomains
/// are told from hosts by the last two labels.
pub fn check_request_origin(
    message: &Message,
    origin: &str,
    policy: &OriginPolicy,
) -> Result<Vec<OriginWarning>, OriginError> {
    let invalid = || OriginError::InvalidOrigin(origin.to_owned());
    let (origin_scheme, origin_authority) = origin.split_once("://").ok_or_else(invalid)?;
    let origin_authority = origin_authority
        .strip_suffix('/')
        .unwrap_or(origin_authority);
    let o = parse_authority(origin_authority).map_err(|_| invalid())?;
    if o.host.is_empty() {
        return Err(invalid());
    }
    // The message's domain was validated when it was parsed.
    let m = parse_authority(message.domain()).map_err(|_| invalid())?;
    let mut warnings = Vec::new();

    let scheme = message
        .scheme()
        .unwrap_or(&policy.default_scheme)
        .to_ascii_lowercase();
    if !policy
        .allowed_schemes
        .iter()
        .any(|s| s.eq_ignore_ascii_case(&scheme))
    {
        return Err(OriginError::SchemeNotAllowed(scheme));
    }
    if !scheme.eq_ignore_ascii_case(origin_scheme) {
        let (message, origin) = (scheme.clone(), origin_scheme.to_ascii_lowercase());
        if policy.developer_mode {
            warnings.push(OriginWarning::SchemeMismatch { message, origin });
        } else {
            return Err(OriginError::SchemeMismatch { message, origin });
        }
    }
    let (mh, oh) = (m.host.to_ascii_lowercase(), o.host.to_ascii_lowercase());
    if mh != oh {
        let same_site = site(&mh) == site(&oh);
        match (same_site, policy.developer_mode) {
            (false, false) => {
                return Err(OriginError::HostMismatch {
                    message: mh,
                    origin: oh,
                });
            }
            (false, true) => warnings.push(OriginWarning::HostMismatch {
                message: mh,
                origin: oh,
            }),
            (true, false) => {
                return Err(OriginError::SubdomainMismatch {
                    message: mh,
                    origin: oh,
                });
            }
            (true, true) => warnings.push(OriginWarning::SubdomainMismatch {
                message: mh,
                origin: oh,
            }),
        }
    }
    let port = m.port.filter(|p| !p.is_empty()).or(default_port(&scheme));
    let origin_port = o
        .port
        .filter(|p| !p.is_empty())
        .or(default_port(origin_scheme));
    match (port, origin_port) {
        (Some(p), op) if Some(p) != op => warnings.push(OriginWarning::PortMismatch {
            message: p.to_owned(),
            origin: op.unwrap_or("").to_owned(),
        }),
        (None, Some(op)) => warnings.push(OriginWarning::OriginHasPort {
            origin: op.to_owned(),
        }),
        _ => {}
    }
    Ok(warnings)
}

/// The SIWE phrase wallets look for in signing requests.
pub const SIWE_PHRASE: &str = "wants you to sign in with your Ethereum account";

/// What a wallet should make of a `personal_sign` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SigningRequest {
    /// A conforming SIWE message (strict parse).
    SignIn(Box<Message>),
    /// Text that contains the SIWE phrase but is not a conforming message: warn the user, it
    /// is likely a phishing attempt (EIP-4361, wallet implementer steps).
    Suspicious(ParseError),
    /// Not a sign-in request.
    Other,
}

/// Classifies a `personal_sign` request text.
pub fn classify_signing_request(text: &str) -> SigningRequest {
    match text.parse::<Message>() {
        Ok(m) => SigningRequest::SignIn(Box::new(m)),
        Err(e) if text.contains(SIWE_PHRASE) => SigningRequest::Suspicious(e),
        Err(_) => SigningRequest::Other,
    }
}
