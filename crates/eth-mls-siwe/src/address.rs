//! Ethereum addresses and their EIP-55 mixed-case checksum encoding.

use alloy_primitives::{Address, keccak256};

/// Why an address text is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The text does not start with `0x`.
    #[error("missing the 0x prefix")]
    MissingPrefix,
    /// Not exactly 40 hex digits after `0x`.
    #[error("expected 40 hex digits, got {0} characters")]
    Length(usize),
    /// A character that is not a hex digit.
    #[error("'{0}' is not a hex digit")]
    NotHex(char),
    /// Mixed case that is not the EIP-55 checksum.
    #[error("mixed-case address with a wrong EIP-55 checksum")]
    BadChecksum,
    /// All lower- or all upper-case: no checksum to verify (accepted only by lenient parsing).
    #[error("address is not EIP-55 checksummed (all one case)")]
    NotChecksummed,
}

/// The EIP-55 checksummed text of `address` (`0x` + 40 mixed-case hex digits).
pub fn to_checksum(address: &Address) -> String {
    let lower = hex_lower(address.as_slice());
    let hash = keccak256(lower.as_bytes());
    let mut out = String::with_capacity(42);
    out.push_str("0x");
    for (i, c) in lower.chars().enumerate() {
        let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
        out.push(if c.is_ascii_alphabetic() && nibble >= 8 {
            c.to_ascii_uppercase()
        } else {
            c
        });
    }
    out
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How an accepted address text was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressCase {
    /// Valid EIP-55 mixed case.
    Checksummed,
    /// All lower-case or all upper-case hex (no checksum information).
    SingleCase,
}

/// Parses `0x` + 40 hex digits. Text equal to the EIP-55 checksum is
/// [`AddressCase::Checksummed`]; other mixed case is [`AddressError::BadChecksum`]; other
/// single-case text is [`AddressCase::SingleCase`], for the caller to decide (strict
/// parsing rejects it).
pub fn parse_address(text: &str) -> Result<(Address, AddressCase), AddressError> {
    let hex = text.strip_prefix("0x").ok_or(AddressError::MissingPrefix)?;
    if hex.len() != 40 {
        return Err(AddressError::Length(hex.chars().count()));
    }
    if let Some(c) = hex.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(AddressError::NotHex(c));
    }
    let mut bytes = [0u8; 20];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| AddressError::NotHex('?'))?;
    }
    let address = Address::from(bytes);
    if to_checksum(&address)[2..] == *hex {
        return Ok((address, AddressCase::Checksummed));
    }
    let has_lower = hex.bytes().any(|c| c.is_ascii_lowercase());
    let has_upper = hex.bytes().any(|c| c.is_ascii_uppercase());
    if has_lower && has_upper {
        Err(AddressError::BadChecksum)
    } else {
        Ok((address, AddressCase::SingleCase))
    }
}

/// Whether `text` is a valid EIP-55 checksummed address.
pub fn is_checksummed(text: &str) -> bool {
    matches!(parse_address(text), Ok((_, AddressCase::Checksummed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The examples of EIP-55.
    const EIP55: [&str; 8] = [
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        "0x52908400098527886E0F7030069857D2E4169EE7",
        "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
        "0xde709f2102306220921060314715629080e2fb77",
        "0x27b1fdb04752bbc536007a920d24acb045561c26",
    ];

    #[test]
    fn eip55_examples() {
        for text in EIP55 {
            let (address, _) = parse_address(text).unwrap();
            assert_eq!(to_checksum(&address), text);
        }
        // All-caps or all-lower text that is the checksum counts as checksummed.
        assert_eq!(parse_address(EIP55[4]).unwrap().1, AddressCase::Checksummed);
        // The lower-case spelling of a mixed-case address is single-case: lenient only.
        let lower = EIP55[0].to_lowercase();
        assert_eq!(parse_address(&lower).unwrap().1, AddressCase::SingleCase);
        assert_eq!(
            parse_address(&EIP55[0].to_uppercase().replace("0X", "0x"))
                .unwrap()
                .1,
            AddressCase::SingleCase
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            parse_address("5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"),
            Err(AddressError::MissingPrefix)
        );
        assert_eq!(parse_address("0x5aAeb605"), Err(AddressError::Length(8)));
        assert_eq!(
            parse_address("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeg"),
            Err(AddressError::NotHex('g'))
        );
        assert_eq!(
            parse_address("0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"),
            Err(AddressError::BadChecksum)
        );
        assert!(!is_checksummed(
            "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"
        ));
        assert!(is_checksummed("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"));
    }
}
