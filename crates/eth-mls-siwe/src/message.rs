//! The EIP-4361 message: parsing (strict and lenient), printing, building.

use std::fmt;
use std::str::FromStr;

use alloy_primitives::Address;

use crate::abnf;
use crate::address::{AddressCase, AddressError, parse_address, to_checksum};
use crate::time::TimeStamp;

const PREAMBLE: &str = " wants you to sign in with your Ethereum account:";

/// Why a message text is not an EIP-4361 message. Every variant names the line (1-based)
/// and, through [`ParseError::field`], the ABNF field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The first line is not `[scheme "://"] domain " wants you to sign in with your Ethereum account:"`.
    #[error("line {line}: expected \"<domain> wants you to sign in with your Ethereum account:\"")]
    MissingPreamble {
        /// Line number.
        line: usize,
    },
    /// The scheme is not an RFC 3986 scheme.
    #[error("line {line}: scheme {value:?} is not an RFC 3986 scheme")]
    InvalidScheme {
        /// Line number.
        line: usize,
        /// The text found.
        value: String,
    },
    /// The domain is not an RFC 3986 authority.
    #[error("line {line}: domain {value:?} is not an RFC 3986 authority: {reason}")]
    InvalidDomain {
        /// Line number.
        line: usize,
        /// The text found.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// The address is not `0x` + 40 hex digits with a valid EIP-55 checksum.
    #[error("line {line}: address {value:?}: {reason}")]
    InvalidAddress {
        /// Line number.
        line: usize,
        /// The text found.
        value: String,
        /// What is wrong.
        reason: AddressError,
    },
    /// A line that must be empty is not.
    #[error("line {line}: expected an empty line {context}, found {content:?}")]
    ExpectedEmptyLine {
        /// Line number.
        line: usize,
        /// Where in the message.
        context: &'static str,
        /// The text found.
        content: String,
    },
    /// The statement has a character outside `reserved / unreserved / " "`.
    #[error("line {line}: statement has {character:?} at offset {offset}, outside the ABNF")]
    InvalidStatement {
        /// Line number.
        line: usize,
        /// Byte offset in the statement.
        offset: usize,
        /// The character.
        character: char,
    },
    /// A required field line is missing or out of order.
    #[error("line {line}: expected \"{prefix}\" ({field}), found {content:?}")]
    MissingField {
        /// Line number.
        line: usize,
        /// The ABNF field.
        field: &'static str,
        /// The line prefix expected.
        prefix: &'static str,
        /// The text found.
        content: String,
    },
    /// The uri or a resource is not an RFC 3986 URI.
    #[error("line {line}: {field} {value:?} is not an RFC 3986 URI: {reason}")]
    InvalidUri {
        /// Line number.
        line: usize,
        /// `uri` or `resources`.
        field: &'static str,
        /// The text found.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// The version is not `1`.
    #[error("line {line}: version must be \"1\", found {value:?}")]
    InvalidVersion {
        /// Line number.
        line: usize,
        /// The text found.
        value: String,
    },
    /// The chain id is not a decimal number that fits in 64 bits.
    #[error("line {line}: chain id {value:?} is not a decimal number that fits in 64 bits")]
    InvalidChainId {
        /// Line number.
        line: usize,
        /// The text found.
        value: String,
    },
    /// The nonce is not at least 8 letters or digits.
    #[error("line {line}: nonce {value:?} must be at least 8 ASCII letters or digits")]
    InvalidNonce {
        /// Line number.
        line: usize,
        /// The text found.
        value: String,
    },
    /// A date-time is not RFC 3339.
    #[error("line {line}: {field} {value:?} is not an RFC 3339 date-time: {reason}")]
    InvalidTimeStamp {
        /// Line number.
        line: usize,
        /// `issued-at`, `expiration-time` or `not-before`.
        field: &'static str,
        /// The text found.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// The request id has characters outside `pchar`.
    #[error("line {line}: request id {value:?} has characters outside RFC 3986 pchar")]
    InvalidRequestId {
        /// Line number.
        line: usize,
        /// The text found.
        value: String,
    },
    /// Text after the last field, or a field out of order.
    #[error("line {line}: unexpected {content:?}")]
    UnexpectedContent {
        /// Line number.
        line: usize,
        /// The text found.
        content: String,
    },
    /// The message ends before a required field.
    #[error("line {line}: the message ends before {field}")]
    UnexpectedEnd {
        /// Line number where the field was expected.
        line: usize,
        /// The missing field.
        field: &'static str,
    },
}

impl ParseError {
    /// The 1-based line the error is on.
    pub fn line(&self) -> usize {
        match self {
            Self::MissingPreamble { line }
            | Self::InvalidScheme { line, .. }
            | Self::InvalidDomain { line, .. }
            | Self::InvalidAddress { line, .. }
            | Self::ExpectedEmptyLine { line, .. }
            | Self::InvalidStatement { line, .. }
            | Self::MissingField { line, .. }
            | Self::InvalidUri { line, .. }
            | Self::InvalidVersion { line, .. }
            | Self::InvalidChainId { line, .. }
            | Self::InvalidNonce { line, .. }
            | Self::InvalidTimeStamp { line, .. }
            | Self::InvalidRequestId { line, .. }
            | Self::UnexpectedContent { line, .. }
            | Self::UnexpectedEnd { line, .. } => *line,
        }
    }

    /// The ABNF field the error concerns.
    pub fn field(&self) -> &'static str {
        match self {
            Self::MissingPreamble { .. } => "preamble",
            Self::InvalidScheme { .. } => "scheme",
            Self::InvalidDomain { .. } => "domain",
            Self::InvalidAddress { .. } => "address",
            Self::ExpectedEmptyLine { .. } => "layout",
            Self::InvalidStatement { .. } => "statement",
            Self::MissingField { field, .. }
            | Self::InvalidUri { field, .. }
            | Self::InvalidTimeStamp { field, .. }
            | Self::UnexpectedEnd { field, .. } => field,
            Self::InvalidVersion { .. } => "version",
            Self::InvalidChainId { .. } => "chain-id",
            Self::InvalidNonce { .. } => "nonce",
            Self::InvalidRequestId { .. } => "request-id",
            Self::UnexpectedContent { .. } => "end of message",
        }
    }
}

/// Something a lenient parse accepted that a strict parse rejects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Warning {
    /// The address is all lower- or all upper-case, so its EIP-55 checksum was not checked.
    SingleCaseAddress,
    /// No statement, with two line feeds before `URI:` instead of the three of the ABNF (the
    /// layout of older EIP-4361 drafts and libraries).
    LegacyNoStatementLayout,
}

/// Whether a parse rejects or accepts (with warnings) what wallets commonly send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Strict,
    Lenient,
}

/// An EIP-4361 "Sign-In with Ethereum" message.
///
/// Every instance is valid: it comes from a parse, the builder or serde, all of which check
/// each field against the ABNF. `Display` prints the exact message text; a parsed message
/// prints back byte for byte (that text is what the account signed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    scheme: Option<String>,
    domain: String,
    address: Address,
    address_text: String,
    statement: Option<String>,
    uri: String,
    chain_id: u64,
    chain_id_text: String,
    nonce: String,
    issued_at: TimeStamp,
    expiration_time: Option<TimeStamp>,
    not_before: Option<TimeStamp>,
    request_id: Option<String>,
    resources: Option<Vec<String>>,
    legacy_layout: bool,
}

/// Lines of the text with their 1-based numbers.
struct Lines<'a> {
    lines: Vec<&'a str>,
    next: usize,
}

impl<'a> Lines<'a> {
    fn peek(&self) -> Option<&'a str> {
        self.lines.get(self.next).copied()
    }
    fn number(&self) -> usize {
        self.next + 1
    }
    fn take(&mut self, field: &'static str) -> Result<(usize, &'a str), ParseError> {
        let line = self.number();
        let text = self
            .lines
            .get(self.next)
            .copied()
            .ok_or(ParseError::UnexpectedEnd { line, field })?;
        self.next += 1;
        Ok((line, text))
    }
    fn field(
        &mut self,
        field: &'static str,
        prefix: &'static str,
    ) -> Result<(usize, &'a str), ParseError> {
        let (line, text) = self.take(field)?;
        text.strip_prefix(prefix)
            .map(|v| (line, v))
            .ok_or_else(|| ParseError::MissingField {
                line,
                field,
                prefix,
                content: text.to_owned(),
            })
    }
    fn optional(&mut self, prefix: &'static str) -> Option<(usize, &'a str)> {
        let text = self.peek()?.strip_prefix(prefix)?;
        let line = self.number();
        self.next += 1;
        Some((line, text))
    }
    fn empty(&mut self, context: &'static str) -> Result<(), ParseError> {
        let (line, text) = self.take("layout")?;
        if text.is_empty() {
            Ok(())
        } else {
            Err(ParseError::ExpectedEmptyLine {
                line,
                context,
                content: text.to_owned(),
            })
        }
    }
}

fn timestamp(line: usize, field: &'static str, value: &str) -> Result<TimeStamp, ParseError> {
    TimeStamp::parse(value).map_err(|reason| ParseError::InvalidTimeStamp {
        line,
        field,
        value: value.to_owned(),
        reason,
    })
}

fn check_uri(line: usize, field: &'static str, value: &str) -> Result<String, ParseError> {
    abnf::check_uri(value)
        .map(|()| value.to_owned())
        .map_err(|reason| ParseError::InvalidUri {
            line,
            field,
            value: value.to_owned(),
            reason,
        })
}

fn parse(text: &str, mode: Mode) -> Result<(Message, Vec<Warning>), ParseError> {
    let mut warnings = Vec::new();
    let mut lines = Lines {
        lines: text.split('\n').collect(),
        next: 0,
    };
    // [ scheme "://" ] domain " wants you to sign in with your Ethereum account:"
    let (line, first) = lines.take("preamble")?;
    let origin = first
        .strip_suffix(PREAMBLE)
        .ok_or(ParseError::MissingPreamble { line })?;
    let (scheme, domain) = match origin.split_once("://") {
        Some((s, d)) => (Some(s), d),
        None => (None, origin),
    };
    if let Some(s) = scheme
        && !abnf::is_scheme(s)
    {
        return Err(ParseError::InvalidScheme {
            line,
            value: s.to_owned(),
        });
    }
    let domain_error = |reason: String| ParseError::InvalidDomain {
        line,
        value: domain.to_owned(),
        reason,
    };
    if domain.is_empty() {
        return Err(domain_error("empty".into()));
    }
    abnf::parse_authority(domain).map_err(domain_error)?;

    // address
    let (line, address_text) = lines.take("address")?;
    let (address, case) =
        parse_address(address_text).map_err(|reason| ParseError::InvalidAddress {
            line,
            value: address_text.to_owned(),
            reason,
        })?;
    if case == AddressCase::SingleCase {
        match mode {
            Mode::Strict => {
                return Err(ParseError::InvalidAddress {
                    line,
                    value: address_text.to_owned(),
                    reason: AddressError::NotChecksummed,
                });
            }
            Mode::Lenient => warnings.push(Warning::SingleCaseAddress),
        }
    }

    // LF [ statement LF ] LF
    lines.empty("after the address")?;
    let mut legacy_layout = false;
    let statement = match lines.peek() {
        Some(l) if l.starts_with("URI: ") && mode == Mode::Lenient => {
            legacy_layout = true;
            warnings.push(Warning::LegacyNoStatementLayout);
            None
        }
        Some("") => {
            lines.next += 1;
            // Either no statement (the next line is "URI: ...") or an empty one (the line
            // just taken), followed by its empty line.
            if lines.peek() == Some("") {
                lines.next += 1;
                Some(String::new())
            } else {
                None
            }
        }
        _ => {
            let (line, s) = lines.take("statement")?;
            if let Some((offset, character)) = abnf::statement_error(s) {
                return Err(ParseError::InvalidStatement {
                    line,
                    offset,
                    character,
                });
            }
            lines.empty("after the statement")?;
            Some(s.to_owned())
        }
    };

    let (line, u) = lines.field("uri", "URI: ")?;
    let uri = check_uri(line, "uri", u)?;
    let (line, version) = lines.field("version", "Version: ")?;
    if version != "1" {
        return Err(ParseError::InvalidVersion {
            line,
            value: version.to_owned(),
        });
    }
    let (line, chain) = lines.field("chain-id", "Chain ID: ")?;
    let chain_id = if !chain.is_empty() && chain.bytes().all(|c| c.is_ascii_digit()) {
        chain.parse::<u64>().ok()
    } else {
        None
    }
    .ok_or_else(|| ParseError::InvalidChainId {
        line,
        value: chain.to_owned(),
    })?;
    let (line, nonce) = lines.field("nonce", "Nonce: ")?;
    if nonce.len() < 8 || !nonce.bytes().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ParseError::InvalidNonce {
            line,
            value: nonce.to_owned(),
        });
    }
    let (line, issued) = lines.field("issued-at", "Issued At: ")?;
    let issued_at = timestamp(line, "issued-at", issued)?;
    let expiration_time = lines
        .optional("Expiration Time: ")
        .map(|(line, v)| timestamp(line, "expiration-time", v))
        .transpose()?;
    let not_before = lines
        .optional("Not Before: ")
        .map(|(line, v)| timestamp(line, "not-before", v))
        .transpose()?;
    let request_id = match lines.optional("Request ID: ") {
        Some((line, v)) => {
            if !abnf::is_request_id(v) {
                return Err(ParseError::InvalidRequestId {
                    line,
                    value: v.to_owned(),
                });
            }
            Some(v.to_owned())
        }
        None => None,
    };
    let resources = match lines.peek() {
        Some("Resources:") => {
            lines.next += 1;
            let mut list = Vec::new();
            while let Some((line, r)) = lines.optional("- ") {
                list.push(check_uri(line, "resources", r)?);
            }
            Some(list)
        }
        _ => None,
    };
    if let Some(rest) = lines.peek() {
        return Err(ParseError::UnexpectedContent {
            line: lines.number(),
            content: rest.to_owned(),
        });
    }
    Ok((
        Message {
            scheme: scheme.map(str::to_owned),
            domain: domain.to_owned(),
            address,
            address_text: address_text.to_owned(),
            statement,
            uri,
            chain_id,
            chain_id_text: chain.to_owned(),
            nonce: nonce.to_owned(),
            issued_at,
            expiration_time,
            not_before,
            request_id,
            resources,
            legacy_layout,
        },
        warnings,
    ))
}

impl FromStr for Message {
    type Err = ParseError;

    /// Strict parse: the ABNF exactly, EIP-55 checksummed addresses only.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse(text, Mode::Strict).map(|(m, _)| m)
    }
}

impl Message {
    /// Lenient parse, for what wallets send: also accepts an all-lower-case or all-upper-case
    /// address and the older layout without a statement (two line feeds before `URI:`), and
    /// says so in the warnings. Printing the result still gives back the exact text.
    pub fn parse_lenient(text: &str) -> Result<(Message, Vec<Warning>), ParseError> {
        parse(text, Mode::Lenient)
    }

    /// A builder for a new message (nonce from the OS CSPRNG, issued now).
    pub fn builder(domain: &str, address: Address, uri: &str, chain_id: u64) -> MessageBuilder {
        MessageBuilder {
            scheme: None,
            domain: domain.to_owned(),
            address,
            statement: None,
            uri: uri.to_owned(),
            chain_id,
            nonce: None,
            issued_at: None,
            expiration_time: None,
            not_before: None,
            request_id: None,
            resources: None,
        }
    }

    /// The scheme, when the message names one.
    pub fn scheme(&self) -> Option<&str> {
        self.scheme.as_deref()
    }
    /// The domain (an RFC 3986 authority).
    pub fn domain(&self) -> &str {
        &self.domain
    }
    /// The signing address.
    pub fn address(&self) -> Address {
        self.address
    }
    /// The address as written in the message.
    pub fn address_text(&self) -> &str {
        &self.address_text
    }
    /// The statement, when present.
    pub fn statement(&self) -> Option<&str> {
        self.statement.as_deref()
    }
    /// The URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }
    /// The version (always `1`).
    pub fn version(&self) -> &str {
        "1"
    }
    /// The EIP-155 chain id.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }
    /// The nonce.
    pub fn nonce(&self) -> &str {
        &self.nonce
    }
    /// When the message was issued.
    pub fn issued_at(&self) -> &TimeStamp {
        &self.issued_at
    }
    /// When it expires (exclusive), if it does.
    pub fn expiration_time(&self) -> Option<&TimeStamp> {
        self.expiration_time.as_ref()
    }
    /// When it becomes valid (inclusive), if not at once.
    pub fn not_before(&self) -> Option<&TimeStamp> {
        self.not_before.as_ref()
    }
    /// The request id, when present.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }
    /// The resources (empty when there are none).
    pub fn resources(&self) -> &[String] {
        self.resources.as_deref().unwrap_or_default()
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = &self.scheme {
            write!(f, "{s}://")?;
        }
        write!(f, "{}{PREAMBLE}\n{}\n\n", self.domain, self.address_text)?;
        match (&self.statement, self.legacy_layout) {
            (Some(s), _) => write!(f, "{s}\n\n")?,
            (None, false) => f.write_str("\n")?,
            (None, true) => {}
        }
        write!(
            f,
            "URI: {}\nVersion: 1\nChain ID: {}\nNonce: {}\nIssued At: {}",
            self.uri, self.chain_id_text, self.nonce, self.issued_at
        )?;
        if let Some(t) = &self.expiration_time {
            write!(f, "\nExpiration Time: {t}")?;
        }
        if let Some(t) = &self.not_before {
            write!(f, "\nNot Before: {t}")?;
        }
        if let Some(r) = &self.request_id {
            write!(f, "\nRequest ID: {r}")?;
        }
        if let Some(resources) = &self.resources {
            f.write_str("\nResources:")?;
            for r in resources {
                write!(f, "\n- {r}")?;
            }
        }
        Ok(())
    }
}

/// Builds a new [`Message`]; [`MessageBuilder::build`] checks every field by parsing the
/// printed text strictly, so a built message always round-trips.
#[derive(Clone, Debug)]
pub struct MessageBuilder {
    scheme: Option<String>,
    domain: String,
    address: Address,
    statement: Option<String>,
    uri: String,
    chain_id: u64,
    nonce: Option<String>,
    issued_at: Option<TimeStamp>,
    expiration_time: Option<TimeStamp>,
    not_before: Option<TimeStamp>,
    request_id: Option<String>,
    resources: Option<Vec<String>>,
}

impl MessageBuilder {
    /// Sets the scheme of the request origin (e.g. `https`).
    pub fn scheme(mut self, scheme: &str) -> Self {
        self.scheme = Some(scheme.to_owned());
        self
    }
    /// Sets the statement (no line feeds).
    pub fn statement(mut self, statement: &str) -> Self {
        self.statement = Some(statement.to_owned());
        self
    }
    /// Sets the nonce instead of a generated one (at least 8 letters or digits).
    pub fn nonce(mut self, nonce: &str) -> Self {
        self.nonce = Some(nonce.to_owned());
        self
    }
    /// Sets the issue time instead of now.
    pub fn issued_at(mut self, t: TimeStamp) -> Self {
        self.issued_at = Some(t);
        self
    }
    /// Sets the expiration time.
    pub fn expiration_time(mut self, t: TimeStamp) -> Self {
        self.expiration_time = Some(t);
        self
    }
    /// Sets the not-before time.
    pub fn not_before(mut self, t: TimeStamp) -> Self {
        self.not_before = Some(t);
        self
    }
    /// Sets the request id.
    pub fn request_id(mut self, id: &str) -> Self {
        self.request_id = Some(id.to_owned());
        self
    }
    /// Adds a resource URI.
    pub fn resource(mut self, uri: &str) -> Self {
        self.resources
            .get_or_insert_with(Vec::new)
            .push(uri.to_owned());
        self
    }

    /// The message; any field outside the ABNF is a [`ParseError`] naming it.
    pub fn build(self) -> Result<Message, ParseError> {
        let message = Message {
            scheme: self.scheme,
            domain: self.domain,
            address: self.address,
            address_text: to_checksum(&self.address),
            statement: self.statement,
            uri: self.uri,
            chain_id: self.chain_id,
            chain_id_text: self.chain_id.to_string(),
            nonce: self.nonce.unwrap_or_else(crate::generate_nonce),
            issued_at: self.issued_at.unwrap_or_else(TimeStamp::now),
            expiration_time: self.expiration_time,
            not_before: self.not_before,
            request_id: self.request_id,
            resources: self.resources,
            legacy_layout: false,
        };
        message.to_string().parse()
    }
}

#[cfg(feature = "serde")]
mod serde_impl {
    //! The object form of the EIP-4361 reference libraries (camelCase keys), validated like
    //! the text.
    use super::*;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Object {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scheme: Option<String>,
        domain: String,
        address: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        statement: Option<String>,
        uri: String,
        version: String,
        chain_id: u64,
        nonce: String,
        issued_at: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expiration_time: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        not_before: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resources: Option<Vec<String>>,
    }

    impl Serialize for Message {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            Object {
                scheme: self.scheme.clone(),
                domain: self.domain.clone(),
                address: self.address_text.clone(),
                statement: self.statement.clone(),
                uri: self.uri.clone(),
                version: "1".into(),
                chain_id: self.chain_id,
                nonce: self.nonce.clone(),
                issued_at: self.issued_at.to_string(),
                expiration_time: self.expiration_time.as_ref().map(ToString::to_string),
                not_before: self.not_before.as_ref().map(ToString::to_string),
                request_id: self.request_id.clone(),
                resources: self.resources.clone(),
            }
            .serialize(s)
        }
    }

    impl<'de> Deserialize<'de> for Message {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            use serde::de::Error;
            let o = Object::deserialize(d)?;
            // Print the object as message text and parse it strictly: one set of rules.
            let mut text = String::new();
            if let Some(s) = &o.scheme {
                text.push_str(s);
                text.push_str("://");
            }
            let line = |field: &str, v: &str| -> Result<(), D::Error> {
                if v.contains('\n') {
                    Err(D::Error::custom(format!(
                        "{field} must not contain a line feed"
                    )))
                } else {
                    Ok(())
                }
            };
            for (field, v) in [
                ("domain", &o.domain),
                ("address", &o.address),
                ("uri", &o.uri),
                ("version", &o.version),
                ("nonce", &o.nonce),
                ("issuedAt", &o.issued_at),
            ] {
                line(field, v)?;
            }
            for (field, v) in [
                ("scheme", &o.scheme),
                ("statement", &o.statement),
                ("expirationTime", &o.expiration_time),
                ("notBefore", &o.not_before),
                ("requestId", &o.request_id),
            ] {
                if let Some(v) = v {
                    line(field, v)?;
                }
            }
            text.push_str(&format!("{}{PREAMBLE}\n{}\n\n", o.domain, o.address));
            match &o.statement {
                Some(s) => text.push_str(&format!("{s}\n\n")),
                None => text.push('\n'),
            }
            text.push_str(&format!(
                "URI: {}\nVersion: {}\nChain ID: {}\nNonce: {}\nIssued At: {}",
                o.uri, o.version, o.chain_id, o.nonce, o.issued_at
            ));
            if let Some(t) = &o.expiration_time {
                text.push_str(&format!("\nExpiration Time: {t}"));
            }
            if let Some(t) = &o.not_before {
                text.push_str(&format!("\nNot Before: {t}"));
            }
            if let Some(r) = &o.request_id {
                text.push_str(&format!("\nRequest ID: {r}"));
            }
            if let Some(resources) = &o.resources {
                text.push_str("\nResources:");
                for r in resources {
                    line("resources", r)?;
                    text.push_str(&format!("\n- {r}"));
                }
            }
            text.parse()
                .map_err(|e: ParseError| D::Error::custom(format!("{}: {e}", e.field())))
        }
    }
}
