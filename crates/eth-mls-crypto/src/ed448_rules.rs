//! The Ed448 verification rules both backends share, so that every input gets one verdict.
//!
//! RFC 8032 §5.2.7 allows a verifier to check either `[S]B = R + [k]A` (cofactorless) or
//! `[4][S]B = [4]R + [4][k]A` (cofactored), and implementations differ on points of small
//! order. A group whose members use different verifiers can then be split by one signature
//! that some accept and others reject. eth-mls therefore fixes the rules, for every backend:
//!
//! 1. the public key `A` and the commitment `R` are canonical encodings (`y < p`, the unused
//!    bits of the last byte zero, no "negative zero");
//! 2. neither `A` nor `R` has small order (order 1, 2 or 4: the points with `x = 0` or
//!    `y = 0`, i.e. the encodings of `y` = 0, 1 or `p - 1`);
//! 3. `S < L`;
//! 4. the **cofactored** equation `[4]([S]B - [k]A) = [4]R` holds.
//!
//! Rules 1-3 are checked here on bytes alone, before either backend runs; rule 4 is the
//! RustCrypto path's equation (`curve448`'s `ed448_verify`) and what OpenSSL's
//! decaf-based verification computes (it compares points modulo the 4-torsion).

/// p = 2^448 - 2^224 - 1, little-endian.
const P: [u8; 56] = {
    let mut p = [0xffu8; 56];
    p[28] = 0xfe;
    p
};

/// L = 2^446 - 13818066809895115352007386748515426880336692474882178609894547503885,
/// little-endian, 57 bytes (the signature's S field).
const L: [u8; 57] = [
    0xf3, 0x44, 0x58, 0xab, 0x92, 0xc2, 0x78, 0x23, 0x55, 0x8f, 0xc5, 0x8d, 0x72, 0xc2, 0x6c, 0x21,
    0x90, 0x36, 0xd6, 0xae, 0x49, 0xdb, 0x4e, 0xc4, 0xe9, 0x23, 0xca, 0x7c, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f, 0x00,
];

/// `a < b` for little-endian integers of equal length (public data, variable time).
fn less_than(a: &[u8], b: &[u8]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x < y;
        }
    }
    false
}

/// Rules 1 and 2 for one encoded point (`A` or `R`).
fn acceptable_point(encoded: &[u8; 57]) -> bool {
    // Only the sign bit of x may be set in the last byte.
    if encoded[56] & 0x7f != 0 {
        return false;
    }
    let y = &encoded[..56];
    if !less_than(y, &P) {
        return false; // y >= p: not canonical
    }
    // The 4-torsion is {(0, 1), (0, -1), (1, 0), (-1, 0)}: y = 1, p - 1 or 0. Rejecting those
    // y values also removes every "negative zero" (x = 0 only for y = ±1).
    let y_is = |value: &[u8; 56]| y == value;
    let mut one = [0u8; 56];
    one[0] = 1;
    let mut minus_one = P;
    minus_one[0] = 0xfe;
    !(y_is(&[0u8; 56]) || y_is(&one) || y_is(&minus_one))
}

/// Rules 1-3: whether `public` and `signature` are worth checking the equation for. Both
/// backends call this first and reject when it returns false.
pub(crate) fn acceptable(public: &[u8; 57], signature: &[u8; 114]) -> bool {
    let mut r = [0u8; 57];
    r.copy_from_slice(&signature[..57]);
    acceptable_point(public) && acceptable_point(&r) && less_than(&signature[57..], &L)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point_with_y(y: &[u8; 56], sign: u8) -> [u8; 57] {
        let mut out = [0u8; 57];
        out[..56].copy_from_slice(y);
        out[56] = sign << 7;
        out
    }

    #[test]
    fn small_order_and_non_canonical_points_are_refused() {
        let mut one = [0u8; 56];
        one[0] = 1;
        let mut minus_one = P;
        minus_one[0] = 0xfe;
        for y in [[0u8; 56], one, minus_one, P] {
            for sign in [0, 1] {
                assert!(!acceptable_point(&point_with_y(&y, sign)));
            }
        }
        let mut bad_bits = point_with_y(&[7u8; 56], 0);
        bad_bits[56] = 1;
        assert!(!acceptable_point(&bad_bits));
        assert!(acceptable_point(&point_with_y(&[7u8; 56], 1)));
    }

    #[test]
    fn s_must_be_below_l() {
        let public = point_with_y(&[7u8; 56], 0);
        let mut sig = [0u8; 114];
        sig[..57].copy_from_slice(&point_with_y(&[9u8; 56], 0));
        assert!(acceptable(&public, &sig)); // S = 0 passes the byte rules
        sig[57..].copy_from_slice(&L);
        assert!(!acceptable(&public, &sig));
        let mut l_minus_one = L;
        l_minus_one[0] -= 1;
        sig[57..].copy_from_slice(&l_minus_one);
        assert!(acceptable(&public, &sig));
        sig[113] = 1;
        assert!(!acceptable(&public, &sig));
    }
}
