//! RFC 3986 and RFC 5234 character classes and the URI, authority and scheme rules the
//! EIP-4361 ABNF refers to.

/// ALPHA.
pub(crate) fn alpha(c: u8) -> bool {
    c.is_ascii_alphabetic()
}

/// DIGIT.
pub(crate) fn digit(c: u8) -> bool {
    c.is_ascii_digit()
}

/// unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"
pub(crate) fn unreserved(c: u8) -> bool {
    alpha(c) || digit(c) || matches!(c, b'-' | b'.' | b'_' | b'~')
}

/// sub-delims = "!" / "$" / "&" / "'" / "(" / ")" / "*" / "+" / "," / ";" / "="
pub(crate) fn sub_delim(c: u8) -> bool {
    matches!(
        c,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// gen-delims = ":" / "/" / "?" / "#" / "[" / "]" / "@"
pub(crate) fn gen_delim(c: u8) -> bool {
    matches!(c, b':' | b'/' | b'?' | b'#' | b'[' | b']' | b'@')
}

/// reserved = gen-delims / sub-delims
pub(crate) fn reserved(c: u8) -> bool {
    gen_delim(c) || sub_delim(c)
}

/// Checks `s` against `*( allowed / pct-encoded )`; returns the offending byte offset.
fn chars_or_pct(s: &str, allowed: impl Fn(u8) -> bool) -> Result<(), usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            // pct-encoded = "%" HEXDIG HEXDIG
            if i + 2 >= b.len() || !(b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit()) {
                return Err(i);
            }
            i += 3;
        } else if allowed(b[i]) {
            i += 1;
        } else {
            return Err(i);
        }
    }
    Ok(())
}

/// pchar = unreserved / pct-encoded / sub-delims / ":" / "@"
fn pchar(c: u8) -> bool {
    unreserved(c) || sub_delim(c) || c == b':' || c == b'@'
}

/// request-id = *pchar
pub(crate) fn is_request_id(s: &str) -> bool {
    chars_or_pct(s, pchar).is_ok()
}

/// scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
pub(crate) fn is_scheme(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && alpha(b[0])
        && b[1..]
            .iter()
            .all(|&c| alpha(c) || digit(c) || matches!(c, b'+' | b'-' | b'.'))
}

/// statement = *( reserved / unreserved / " " )
pub(crate) fn statement_error(s: &str) -> Option<(usize, char)> {
    s.char_indices()
        .find(|&(_, c)| !(c.is_ascii() && (reserved(c as u8) || unreserved(c as u8) || c == ' ')))
}

/// A parsed RFC 3986 authority: `[ userinfo "@" ] host [ ":" port ]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Authority<'a> {
    pub(crate) userinfo: Option<&'a str>,
    pub(crate) host: &'a str,
    pub(crate) port: Option<&'a str>,
}

/// Parses and validates an authority; the error says what is wrong.
pub(crate) fn parse_authority(s: &str) -> Result<Authority<'_>, String> {
    let (userinfo, hostport) = match s.rfind('@') {
        Some(at) => (Some(&s[..at]), &s[at + 1..]),
        None => (None, s),
    };
    if let Some(u) = userinfo {
        chars_or_pct(u, |c| unreserved(c) || sub_delim(c) || c == b':')
            .map_err(|i| format!("invalid character in userinfo at offset {i}"))?;
    }
    let (host, port) = if hostport.starts_with('[') {
        let close = hostport
            .find(']')
            .ok_or_else(|| "unterminated IP literal".to_owned())?;
        let literal = &hostport[1..close];
        let ok = if let Some(future) = literal.strip_prefix(['v', 'V']) {
            // IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
            match future.split_once('.') {
                Some((ver, rest)) => {
                    !ver.is_empty()
                        && ver.bytes().all(|c| c.is_ascii_hexdigit())
                        && !rest.is_empty()
                        && rest
                            .bytes()
                            .all(|c| unreserved(c) || sub_delim(c) || c == b':')
                }
                None => false,
            }
        } else {
            literal.parse::<std::net::Ipv6Addr>().is_ok()
        };
        if !ok {
            return Err(format!("invalid IP literal [{literal}]"));
        }
        let rest = &hostport[close + 1..];
        let port = match rest {
            "" => None,
            _ => Some(
                rest.strip_prefix(':')
                    .ok_or_else(|| format!("unexpected {rest:?} after the IP literal"))?,
            ),
        };
        (&hostport[..=close], port)
    } else {
        match hostport.rfind(':') {
            Some(colon) => (&hostport[..colon], Some(&hostport[colon + 1..])),
            None => (hostport, None),
        }
    };
    if !host.starts_with('[') {
        // reg-name = *( unreserved / pct-encoded / sub-delims ); IPv4address is a reg-name too.
        chars_or_pct(host, |c| unreserved(c) || sub_delim(c))
            .map_err(|i| format!("invalid character in host at offset {i}"))?;
    }
    if let Some(p) = port
        && !p.bytes().all(digit)
    {
        return Err(format!("port {p:?} is not a number"));
    }
    Ok(Authority {
        userinfo,
        host,
        port,
    })
}

/// Validates an RFC 3986 URI:
/// `scheme ":" hier-part [ "?" query ] [ "#" fragment ]`.
pub(crate) fn check_uri(s: &str) -> Result<(), String> {
    let colon = s
        .find(':')
        .ok_or_else(|| "missing scheme (no ':')".to_owned())?;
    let scheme = &s[..colon];
    if !is_scheme(scheme) {
        return Err(format!("invalid scheme {scheme:?}"));
    }
    let rest = &s[colon + 1..];
    let (rest, fragment) = match rest.find('#') {
        Some(h) => (&rest[..h], Some(&rest[h + 1..])),
        None => (rest, None),
    };
    let (hier, query) = match rest.find('?') {
        Some(q) => (&rest[..q], Some(&rest[q + 1..])),
        None => (rest, None),
    };
    let qf = |c: u8| pchar(c) || c == b'/' || c == b'?';
    if let Some(f) = fragment {
        chars_or_pct(f, qf).map_err(|i| format!("invalid character in fragment at offset {i}"))?;
    }
    if let Some(q) = query {
        chars_or_pct(q, qf).map_err(|i| format!("invalid character in query at offset {i}"))?;
    }
    let path = if let Some(after) = hier.strip_prefix("//") {
        let end = after.find('/').unwrap_or(after.len());
        parse_authority(&after[..end])?;
        &after[end..]
    } else {
        // path-absolute, path-rootless or path-empty: a path that does not start with "//".
        hier
    };
    for segment in path.split('/') {
        chars_or_pct(segment, pchar)
            .map_err(|i| format!("invalid character in path segment {segment:?} at offset {i}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        for ok in [
            "https://example.com/login",
            "https://user:pw@example.com:8443/a/b?c=d&e#frag",
            "did:key:z6Mkf",
            "ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/",
            "urn:isbn:0451450523",
            "http://[::1]:8080/",
            "http://[v7.fe80::1]/",
            "eth-mls:mls-signature-key:ed448:AbC",
            "https://example.com/%20x",
            "mailto:",
        ] {
            assert!(check_uri(ok).is_ok(), "{ok}: {:?}", check_uri(ok));
        }
        for bad in [
            "example.com",
            "1http://x",
            "https://exa mple.com",
            "https://example.com/%2",
            "https://example.com/%zz",
            "https://[::g]/",
            "https://example.com:80a/",
            "https://example.com/\u{e9}",
            "https://example.com/<x>",
            "",
        ] {
            assert!(check_uri(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn authorities() {
        let a = parse_authority("user@example.com:8080").unwrap();
        assert_eq!(
            (a.userinfo, a.host, a.port),
            (Some("user"), "example.com", Some("8080"))
        );
        let a = parse_authority("[::1]:3000").unwrap();
        assert_eq!((a.host, a.port), ("[::1]", Some("3000")));
        assert_eq!(parse_authority("localhost").unwrap().port, None);
        assert!(parse_authority("exa mple.com").is_err());
        assert!(parse_authority("example.com:x").is_err());
        assert!(parse_authority("[::1").is_err());
        assert!(parse_authority("a@b@c").is_err());
    }

    #[test]
    fn scheme_and_statement() {
        assert!(is_scheme("https"));
        assert!(is_scheme("a+b-c.d"));
        assert!(!is_scheme("1ab"));
        assert!(!is_scheme(""));
        assert!(statement_error("I accept the ServiceOrg Terms: https://s.org/tos").is_none());
        assert_eq!(statement_error("no\nnewline"), Some((2, '\n')));
        assert!(statement_error("caf\u{e9}").is_some());
        assert!(statement_error("<tag>").is_some());
    }

    #[test]
    fn request_ids() {
        assert!(is_request_id("abc-123:@!$&'()*+,;=%41"));
        assert!(!is_request_id("a b"));
        assert!(!is_request_id("a/b"));
    }
}
