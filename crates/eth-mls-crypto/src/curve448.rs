//! Fast curve448 for the pure-Rust backend: Ed448 (RFC 8032) and X448 (RFC 7748).
//!
//! Why this module exists: `ed448-goldilocks` 0.14 pre-releases do their field arithmetic
//! through crypto-bigint's generic Montgomery form (about 130 ns a multiplication here) and
//! multiply the base point without a table, so Ed448 signing, verification and X448 were
//! 3-6x slower than OpenSSL. Here the field is fiat-crypto's formally verified
//! `p448_solinas_64` (unsaturated 56-bit limbs, Solinas reduction), the base point has a
//! precomputed signed radix-16 table (fixed-base multiplication without doublings), and
//! verification uses a width-5 wNAF for the variable-base half. Scalars mod L and SHAKE256
//! come from `ed448-goldilocks`.
//!
//! Constant time: every operation on secret data (field arithmetic, table lookups, scalar
//! recoding, the Montgomery ladder) is branch-free and index-free on secrets. Verification
//! and point decoding work on public data and may take variable time.

use ed448_goldilocks::shake::{
    Shake256,
    digest::{ExtendableOutput, Update, XofReader},
};
use ed448_goldilocks::{EdwardsScalar, EdwardsScalarBytes, WideEdwardsScalarBytes};
use fiat_crypto::p448_solinas_64::{
    fiat_p448_add, fiat_p448_carry, fiat_p448_carry_mul, fiat_p448_carry_square,
    fiat_p448_from_bytes, fiat_p448_loose_field_element, fiat_p448_opp, fiat_p448_relax,
    fiat_p448_selectznz, fiat_p448_sub, fiat_p448_tight_field_element, fiat_p448_to_bytes,
};
use std::sync::OnceLock;
use subtle::{Choice, ConstantTimeEq};
use zeroize::Zeroize;

// ------------------------------------------------------------------ field GF(2^448 - 2^224 - 1)

#[derive(Clone, Copy)]
struct Fe(fiat_p448_tight_field_element);

impl Fe {
    const ZERO: Fe = Fe(fiat_p448_tight_field_element([0; 8]));
    const ONE: Fe = Fe(fiat_p448_tight_field_element([1, 0, 0, 0, 0, 0, 0, 0]));

    fn from_u64(x: u64) -> Fe {
        let mut bytes = [0u8; 56];
        bytes[..8].copy_from_slice(&x.to_le_bytes());
        Fe::from_bytes(&bytes)
    }

    /// Any 56 bytes, reduced mod p.
    fn from_bytes(bytes: &[u8; 56]) -> Fe {
        let mut out = fiat_p448_tight_field_element([0; 8]);
        fiat_p448_from_bytes(&mut out, bytes);
        Fe(out)
    }

    /// The canonical encoding.
    fn to_bytes(self) -> [u8; 56] {
        let mut out = [0u8; 56];
        fiat_p448_to_bytes(&mut out, &self.0);
        out
    }

    fn loose(self) -> fiat_p448_loose_field_element {
        let mut out = fiat_p448_loose_field_element([0; 8]);
        fiat_p448_relax(&mut out, &self.0);
        out
    }

    fn tight(loose: &fiat_p448_loose_field_element) -> Fe {
        let mut out = fiat_p448_tight_field_element([0; 8]);
        fiat_p448_carry(&mut out, loose);
        Fe(out)
    }

    fn add(self, o: Fe) -> Fe {
        let mut l = fiat_p448_loose_field_element([0; 8]);
        fiat_p448_add(&mut l, &self.0, &o.0);
        Fe::tight(&l)
    }

    fn sub(self, o: Fe) -> Fe {
        let mut l = fiat_p448_loose_field_element([0; 8]);
        fiat_p448_sub(&mut l, &self.0, &o.0);
        Fe::tight(&l)
    }

    fn neg(self) -> Fe {
        let mut l = fiat_p448_loose_field_element([0; 8]);
        fiat_p448_opp(&mut l, &self.0);
        Fe::tight(&l)
    }

    fn mul(self, o: Fe) -> Fe {
        let mut out = fiat_p448_tight_field_element([0; 8]);
        fiat_p448_carry_mul(&mut out, &self.loose(), &o.loose());
        Fe(out)
    }

    fn square(self) -> Fe {
        let mut out = fiat_p448_tight_field_element([0; 8]);
        fiat_p448_carry_square(&mut out, &self.loose());
        Fe(out)
    }

    fn pow2k(self, k: u32) -> Fe {
        let mut x = self;
        for _ in 0..k {
            x = x.square();
        }
        x
    }

    /// `self^((p-3)/4)`; `(p-3)/4` is 223 ones, a zero, 222 ones.
    fn pow_p_minus_3_over_4(self) -> Fe {
        let x = self;
        let t2 = x.square().mul(x);
        let t3 = t2.square().mul(x);
        let t6 = t3.pow2k(3).mul(t3);
        let t12 = t6.pow2k(6).mul(t6);
        let t24 = t12.pow2k(12).mul(t12);
        let t48 = t24.pow2k(24).mul(t24);
        let t96 = t48.pow2k(48).mul(t48);
        let t192 = t96.pow2k(96).mul(t96);
        let t216 = t192.pow2k(24).mul(t24);
        let t222 = t216.pow2k(6).mul(t6);
        let t223 = t222.square().mul(x);
        t223.pow2k(223).mul(t222)
    }

    /// `self^(p-2)` (zero for zero).
    fn invert(self) -> Fe {
        self.pow_p_minus_3_over_4().pow2k(2).mul(self)
    }

    fn ct_eq(&self, o: &Fe) -> Choice {
        self.to_bytes().ct_eq(&o.to_bytes())
    }

    fn is_zero(&self) -> Choice {
        self.ct_eq(&Fe::ZERO)
    }

    /// The low bit of the canonical value ("negative" in RFC 8032).
    fn is_odd(&self) -> Choice {
        Choice::from(self.to_bytes()[0] & 1)
    }

    /// Overwrites the limbs with zeros (a volatile write through `zeroize`).
    fn wipe(&mut self) {
        self.0.0.zeroize();
    }

    fn select(a: &Fe, b: &Fe, choice: Choice) -> Fe {
        let mut out = [0u64; 8];
        fiat_p448_selectznz(&mut out, choice.unwrap_u8(), &a.0.0, &b.0.0);
        Fe(fiat_p448_tight_field_element(out))
    }

    fn swap(a: &mut Fe, b: &mut Fe, choice: Choice) {
        let (x, y) = (Fe::select(a, b, choice), Fe::select(b, a, choice));
        *a = x;
        *b = y;
    }
}

/// Edwards d = -39081.
fn edwards_d() -> Fe {
    Fe::from_u64(39081).neg()
}

// ------------------------------------------------------------------ Edwards points (a = 1)

/// Extended coordinates: x = X/Z, y = Y/Z, x*y = T/Z.
#[derive(Clone, Copy)]
struct Point {
    x: Fe,
    y: Fe,
    z: Fe,
    t: Fe,
}

/// An affine point cached for mixed addition: (x, y, d*x*y).
#[derive(Clone, Copy)]
struct Affine {
    x: Fe,
    y: Fe,
    dxy: Fe,
}

impl Affine {
    const IDENTITY: Affine = Affine {
        x: Fe::ZERO,
        y: Fe::ONE,
        dxy: Fe::ZERO,
    };

    fn neg(&self) -> Affine {
        Affine {
            x: self.x.neg(),
            y: self.y,
            dxy: self.dxy.neg(),
        }
    }

    fn select(a: &Affine, b: &Affine, choice: Choice) -> Affine {
        Affine {
            x: Fe::select(&a.x, &b.x, choice),
            y: Fe::select(&a.y, &b.y, choice),
            dxy: Fe::select(&a.dxy, &b.dxy, choice),
        }
    }
}

impl Point {
    const IDENTITY: Point = Point {
        x: Fe::ZERO,
        y: Fe::ONE,
        z: Fe::ONE,
        t: Fe::ZERO,
    };

    /// add-2008-hwcd (complete on Ed448: a = 1 is a square, d is not).
    fn add(&self, o: &Point, d: Fe) -> Point {
        let c = self.t.mul(d).mul(o.t);
        self.add_with(o.x, o.y, c, self.z.mul(o.z))
    }

    /// Mixed addition with a cached affine point (Z2 = 1): one multiplication fewer.
    fn add_affine(&self, o: &Affine) -> Point {
        self.add_with(o.x, o.y, self.t.mul(o.dxy), self.z)
    }

    /// The rest of add-2008-hwcd once C = d T1 T2 and D = Z1 Z2 are known.
    fn add_with(&self, x2: Fe, y2: Fe, c: Fe, dd: Fe) -> Point {
        let a = self.x.mul(x2);
        let b = self.y.mul(y2);
        let e = self.x.add(self.y).mul(x2.add(y2)).sub(a).sub(b);
        let f = dd.sub(c);
        let g = dd.add(c);
        let h = b.sub(a);
        Point {
            x: e.mul(f),
            y: g.mul(h),
            t: e.mul(h),
            z: f.mul(g),
        }
    }

    /// dbl-2008-hwcd with a = 1.
    fn double(&self) -> Point {
        let a = self.x.square();
        let b = self.y.square();
        let c = self.z.square().add(self.z.square());
        let e = self.x.add(self.y).square().sub(a).sub(b);
        let g = a.add(b);
        let f = g.sub(c);
        let h = a.sub(b);
        Point {
            x: e.mul(f),
            y: g.mul(h),
            t: e.mul(h),
            z: f.mul(g),
        }
    }

    fn neg(&self) -> Point {
        Point {
            x: self.x.neg(),
            y: self.y,
            z: self.z,
            t: self.t.neg(),
        }
    }

    /// RFC 8032 §5.2.2 encoding.
    fn compress(&self) -> [u8; 57] {
        let zinv = self.z.invert();
        let x = self.x.mul(zinv);
        let y = self.y.mul(zinv);
        let mut out = [0u8; 57];
        out[..56].copy_from_slice(&y.to_bytes());
        out[56] = x.is_odd().unwrap_u8() << 7;
        out
    }

    /// RFC 8032 §5.2.3 decoding; `None` for an invalid encoding (public data, variable time).
    fn decompress(bytes: &[u8; 57]) -> Option<Point> {
        if bytes[56] & 0x7f != 0 {
            return None;
        }
        let x0 = bytes[56] >> 7;
        let mut y_bytes = [0u8; 56];
        y_bytes.copy_from_slice(&bytes[..56]);
        let y = Fe::from_bytes(&y_bytes);
        if y.to_bytes() != y_bytes {
            return None; // y >= p
        }
        let yy = y.square();
        let u = yy.sub(Fe::ONE);
        let v = edwards_d().mul(yy).sub(Fe::ONE);
        // x = u^3 v (u^5 v^3)^((p-3)/4)
        let u3v = u.square().mul(u).mul(v);
        let u5v3 = u3v.mul(u.square()).mul(v.square());
        let mut x = u3v.mul(u5v3.pow_p_minus_3_over_4());
        if !bool::from(v.mul(x.square()).ct_eq(&u)) {
            return None;
        }
        if bool::from(x.is_zero()) && x0 == 1 {
            return None;
        }
        if x.is_odd().unwrap_u8() != x0 {
            x = x.neg();
        }
        Some(Point {
            x,
            y,
            z: Fe::ONE,
            t: x.mul(y),
        })
    }

    /// Whether this is the neutral element (X = 0, Y = Z).
    fn is_identity(&self) -> bool {
        bool::from(self.x.is_zero() & self.y.ct_eq(&self.z))
    }

    /// Equality of the represented points (X1 Z2 = X2 Z1, Y1 Z2 = Y2 Z1).
    #[cfg(test)]
    fn eq(&self, o: &Point) -> bool {
        bool::from(
            self.x.mul(o.z).ct_eq(&o.x.mul(self.z)) & self.y.mul(o.z).ct_eq(&o.y.mul(self.z)),
        )
    }
}

// ------------------------------------------------------------------ scalars and the base point

const WINDOWS: usize = 113;

/// Signed radix-16 digits d_i in [-8, 8), sum d_i 16^i = s (s < 2^448). Constant time.
fn radix16(s: &EdwardsScalar) -> [i8; WINDOWS] {
    let bytes = s.to_bytes_rfc_8032();
    let mut digits = [0i8; WINDOWS];
    for i in 0..56 {
        digits[2 * i] = (bytes[i] & 15) as i8;
        digits[2 * i + 1] = ((bytes[i] >> 4) & 15) as i8;
    }
    let mut carry = 0i8;
    for d in digits.iter_mut().take(WINDOWS - 1) {
        *d += carry;
        carry = (*d + 8) >> 4;
        *d -= carry << 4;
    }
    digits[WINDOWS - 1] = carry;
    digits
}

/// `table[i][j] = (j + 1) * 16^i * B`.
fn base_table() -> &'static [[Affine; 8]; WINDOWS] {
    static TABLE: OnceLock<Box<[[Affine; 8]; WINDOWS]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let d = edwards_d();
        let encoded = ed448_goldilocks::EdwardsPoint::GENERATOR
            .to_affine()
            .compress()
            .to_bytes();
        let mut base = Point::decompress(&encoded).unwrap_or(Point::IDENTITY);
        // Projective multiples, then one batched inversion to affine.
        let mut points = Vec::with_capacity(WINDOWS * 8);
        for _ in 0..WINDOWS {
            let mut p = base;
            for _ in 0..8 {
                points.push(p);
                p = p.add(&base, d);
            }
            base = base.double().double().double().double();
        }
        let mut acc = Vec::with_capacity(points.len());
        let mut running = Fe::ONE;
        for p in &points {
            acc.push(running);
            running = running.mul(p.z);
        }
        let mut inv = running.invert();
        let mut affine = vec![Affine::IDENTITY; points.len()];
        for (i, p) in points.iter().enumerate().rev() {
            let zinv = inv.mul(acc[i]);
            inv = inv.mul(p.z);
            let (x, y) = (p.x.mul(zinv), p.y.mul(zinv));
            affine[i] = Affine {
                x,
                y,
                dxy: d.mul(x).mul(y),
            };
        }
        let mut table = Box::new([[Affine::IDENTITY; 8]; WINDOWS]);
        for (i, row) in table.iter_mut().enumerate() {
            row.copy_from_slice(&affine[i * 8..i * 8 + 8]);
        }
        table
    })
}

/// `[s]B` in constant time: one table row per digit, no doublings.
fn mul_base(s: &EdwardsScalar) -> Point {
    let table = base_table();
    let mut digits = radix16(s);
    let mut acc = Point::IDENTITY;
    for (row, &digit) in table.iter().zip(digits.iter()) {
        let negative = (digit >> 7) & 1; // 1 when digit < 0
        let abs = ((digit ^ -negative) + negative) as u8; // |digit| in 0..=8
        let mut entry = Affine::IDENTITY;
        for (j, candidate) in row.iter().enumerate() {
            entry = Affine::select(&entry, candidate, (j as u8 + 1).ct_eq(&abs));
        }
        let entry = Affine::select(&entry, &entry.neg(), Choice::from(negative as u8));
        acc = acc.add_affine(&entry);
    }
    digits.zeroize();
    acc
}

/// `[s]B` for public `s` (verification): direct table indexing.
fn mul_base_vartime(s: &EdwardsScalar) -> Point {
    let table = base_table();
    let mut acc = Point::IDENTITY;
    for (row, &digit) in table.iter().zip(radix16(s).iter()) {
        if digit > 0 {
            acc = acc.add_affine(&row[digit as usize - 1]);
        } else if digit < 0 {
            acc = acc.add_affine(&row[(-digit) as usize - 1].neg());
        }
    }
    acc
}

/// Width-5 NAF of a public scalar, least significant first (digits odd, |d| < 16, and any
/// two non-zero digits at least 5 positions apart).
fn wnaf5(s: &EdwardsScalar) -> [i8; 456] {
    let bytes = s.to_bytes_rfc_8032();
    let mut limbs = [0u64; 9];
    for (i, b) in bytes.iter().enumerate() {
        limbs[i / 8] |= (*b as u64) << (8 * (i % 8));
    }
    let mut naf = [0i8; 456];
    let mut pos = 0;
    let mut carry = 0u64;
    while pos < 456 {
        let (idx, bit) = (pos / 64, pos % 64);
        let buf = if bit < 59 {
            limbs[idx] >> bit
        } else {
            (limbs[idx] >> bit) | (limbs[idx + 1] << (64 - bit))
        };
        let window = carry + (buf & 31);
        if window & 1 == 0 {
            pos += 1;
            continue;
        }
        if window < 16 {
            carry = 0;
            naf[pos] = window as i8;
        } else {
            carry = 1;
            naf[pos] = window as i8 - 32;
        }
        pos += 5;
    }
    naf
}

/// `[s]B - [k]A` for public scalars (verification).
fn verification_point(s: &EdwardsScalar, k: &EdwardsScalar, a: &Point) -> Point {
    let d = edwards_d();
    let minus_a = a.neg();
    // Odd multiples of -A: -A, -3A, ..., -15A.
    let twice = minus_a.double();
    let mut odd = [minus_a; 8];
    for i in 1..8 {
        odd[i] = odd[i - 1].add(&twice, d);
    }
    let naf = wnaf5(k);
    let mut acc = Point::IDENTITY;
    let top = naf.iter().rposition(|&x| x != 0).unwrap_or(0);
    for i in (0..=top).rev() {
        acc = acc.double();
        let digit = naf[i];
        if digit > 0 {
            acc = acc.add(&odd[(digit as usize - 1) / 2], d);
        } else if digit < 0 {
            acc = acc.add(&odd[((-digit) as usize - 1) / 2].neg(), d);
        }
    }
    acc.add(&mul_base_vartime(s), d)
}

// ------------------------------------------------------------------ Ed448 (RFC 8032, pure, empty context)

/// dom4(0, "") of RFC 8032 §5.2.
const DOM4: &[u8] = b"SigEd448\x00\x00";

fn shake_scalar(parts: &[&[u8]]) -> EdwardsScalar {
    let mut shake = Shake256::default();
    for p in parts {
        shake.update(p);
    }
    let mut wide = WideEdwardsScalarBytes::default();
    shake.finalize_xof().read(&mut wide);
    let s = EdwardsScalar::from_bytes_mod_order_wide(&wide);
    wide.zeroize();
    s
}

/// An expanded Ed448 private key: the scalar, the nonce prefix, the encoded public key.
pub(crate) struct Ed448Key {
    scalar: EdwardsScalar,
    prefix: [u8; 57],
    public: [u8; 57],
}

impl Drop for Ed448Key {
    fn drop(&mut self) {
        self.scalar.zeroize();
        self.prefix.zeroize();
    }
}

impl Ed448Key {
    /// Expands a 57-byte seed (RFC 8032 §5.2.5).
    pub(crate) fn from_seed(seed: &[u8; 57]) -> Ed448Key {
        let mut h = [0u8; 114];
        let mut shake = Shake256::default();
        shake.update(seed);
        shake.finalize_xof().read(&mut h);
        let mut s = EdwardsScalarBytes::default();
        s.copy_from_slice(&h[..57]);
        s[0] &= 0xfc;
        s[56] = 0;
        s[55] |= 0x80;
        let scalar = EdwardsScalar::from_bytes_mod_order(&s);
        let mut prefix = [0u8; 57];
        prefix.copy_from_slice(&h[57..]);
        h.zeroize();
        s.zeroize();
        let public = mul_base(&scalar).compress();
        Ed448Key {
            scalar,
            prefix,
            public,
        }
    }

    pub(crate) fn public(&self) -> [u8; 57] {
        self.public
    }

    /// RFC 8032 §5.2.6 signing.
    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 114] {
        let mut r = shake_scalar(&[DOM4, &self.prefix, message]);
        let big_r = mul_base(&r).compress();
        let k = shake_scalar(&[DOM4, &big_r, &self.public, message]);
        let s = r + k * self.scalar;
        r.zeroize();
        let mut sig = [0u8; 114];
        sig[..57].copy_from_slice(&big_r);
        sig[57..].copy_from_slice(&s.to_bytes_rfc_8032());
        sig
    }
}

/// RFC 8032 §5.2.7 verification under eth-mls's rules (`ed448_rules`): canonical, not
/// small-order `A` and `R`, `S < L`, and the **cofactored** equation `[4]([S]B - [k]A) = [4]R`,
/// which is what OpenSSL computes, so both backends give one verdict on every input.
pub(crate) fn ed448_verify(public: &[u8; 57], message: &[u8], signature: &[u8; 114]) -> bool {
    if !crate::ed448_rules::acceptable(public, signature) {
        return false;
    }
    let Some(a) = Point::decompress(public) else {
        return false;
    };
    let mut r_bytes = [0u8; 57];
    r_bytes.copy_from_slice(&signature[..57]);
    let Some(r) = Point::decompress(&r_bytes) else {
        return false;
    };
    let mut s_bytes = EdwardsScalarBytes::default();
    s_bytes.copy_from_slice(&signature[57..]);
    let Some(s) = Option::<EdwardsScalar>::from(EdwardsScalar::from_canonical_bytes(&s_bytes))
    else {
        return false; // S >= L (already refused by the byte rules)
    };
    let k = shake_scalar(&[DOM4, &r_bytes, public, message]);
    let difference = verification_point(&s, &k, &a).add(&r.neg(), edwards_d());
    difference.double().double().is_identity()
}

/// Ed448 batch verification: whether **every** signature of `items` (public key, message,
/// signature) passes [`ed448_verify`], checked at once.
///
/// Each signature must pass the byte rules (`ed448_rules`); then, with independent 128-bit
/// random `z_i` (derived from every input and fresh randomness `seed`), one combined
/// cofactored equation `[4]([Σ z_i S_i]B - Σ [z_i k_i]A_i - Σ [z_i]R_i) = O` is checked with a
/// shared doubling chain (Straus, width-5 NAF per point). Every item passing the cofactored
/// equation makes it hold; if one does not, it holds with probability about 2^-128. So `true`
/// is the verdict of [`ed448_verify`] on every item (and OpenSSL's, the same cofactored rules);
/// `false` means at least one fails or the batch could not tell: verify one by one.
pub(crate) fn ed448_verify_batch(items: &[(&[u8], &[u8], &[u8])], seed: &[u8; 32]) -> bool {
    struct Parsed {
        a: Point,
        r: Point,
        s: EdwardsScalar,
        k: EdwardsScalar,
    }
    let mut parsed = Vec::with_capacity(items.len());
    let mut transcript = Shake256::default();
    transcript.update(b"eth-mls ed448 batch v1");
    transcript.update(seed);
    for (public, message, signature) in items {
        let (Ok(public), Ok(signature)) = (
            <&[u8; 57]>::try_from(*public),
            <&[u8; 114]>::try_from(*signature),
        ) else {
            return false;
        };
        if !crate::ed448_rules::acceptable(public, signature) {
            return false;
        }
        let mut r_bytes = [0u8; 57];
        r_bytes.copy_from_slice(&signature[..57]);
        let (Some(a), Some(r)) = (Point::decompress(public), Point::decompress(&r_bytes)) else {
            return false;
        };
        let mut s_bytes = EdwardsScalarBytes::default();
        s_bytes.copy_from_slice(&signature[57..]);
        let Some(s) = Option::<EdwardsScalar>::from(EdwardsScalar::from_canonical_bytes(&s_bytes))
        else {
            return false;
        };
        let k = shake_scalar(&[DOM4, &r_bytes, public, message]);
        for part in [
            public.as_slice(),
            signature.as_slice(),
            &k.to_bytes_rfc_8032()[..],
        ] {
            transcript.update(part);
        }
        parsed.push(Parsed { a, r, s, k });
    }
    let mut z_stream = transcript.finalize_xof();
    let d = edwards_d();
    let mut s_sum = EdwardsScalar::ZERO;
    // The points and their scalars, negated: -A_i with z_i k_i, -R_i with z_i.
    let mut terms: Vec<(Point, [i8; 456])> = Vec::with_capacity(2 * parsed.len());
    for p in &parsed {
        let mut z_bytes = EdwardsScalarBytes::default();
        z_stream.read(&mut z_bytes[..16]);
        let z = EdwardsScalar::from_bytes_mod_order(&z_bytes);
        s_sum += z * p.s;
        terms.push((p.a.neg(), wnaf5(&(z * p.k))));
        terms.push((p.r.neg(), wnaf5(&z)));
    }
    // Odd multiples P, 3P, ..., 15P of every point.
    let tables: Vec<[Point; 8]> = terms
        .iter()
        .map(|(point, _)| {
            let twice = point.double();
            let mut odd = [*point; 8];
            for i in 1..8 {
                odd[i] = odd[i - 1].add(&twice, d);
            }
            odd
        })
        .collect();
    let top = terms
        .iter()
        .filter_map(|(_, naf)| naf.iter().rposition(|&x| x != 0))
        .max()
        .unwrap_or(0);
    let mut acc = Point::IDENTITY;
    for i in (0..=top).rev() {
        acc = acc.double();
        for ((_, naf), odd) in terms.iter().zip(&tables) {
            let digit = naf[i];
            if digit > 0 {
                acc = acc.add(&odd[(digit as usize - 1) / 2], d);
            } else if digit < 0 {
                acc = acc.add(&odd[((-digit) as usize - 1) / 2].neg(), d);
            }
        }
    }
    let total = acc.add(&mul_base_vartime(&s_sum), d);
    total.double().double().is_identity()
}

// ------------------------------------------------------------------ X448 (RFC 7748)

/// X448(k, u); `None` when the result is zero (a low-order u).
pub(crate) fn x448(scalar: &[u8; 56], u: &[u8; 56]) -> Option<[u8; 56]> {
    let mut k = *scalar;
    k[0] &= 252;
    k[55] |= 128;
    let x1 = Fe::from_bytes(u);
    let a24 = Fe::from_u64(39081);
    let (mut x2, mut z2, mut x3, mut z3) = (Fe::ONE, Fe::ZERO, x1, Fe::ONE);
    let mut swap = 0u8;
    for t in (0..448).rev() {
        let bit = (k[t / 8] >> (t % 8)) & 1;
        swap ^= bit;
        Fe::swap(&mut x2, &mut x3, Choice::from(swap));
        Fe::swap(&mut z2, &mut z3, Choice::from(swap));
        swap = bit;
        let a = x2.add(z2);
        let aa = a.square();
        let b = x2.sub(z2);
        let bb = b.square();
        let e = aa.sub(bb);
        let c = x3.add(z3);
        let d = x3.sub(z3);
        let da = d.mul(a);
        let cb = c.mul(b);
        x3 = da.add(cb).square();
        z3 = x1.mul(da.sub(cb).square());
        x2 = aa.mul(bb);
        z2 = e.mul(aa.add(a24.mul(e)));
    }
    Fe::swap(&mut x2, &mut x3, Choice::from(swap));
    Fe::swap(&mut z2, &mut z3, Choice::from(swap));
    k.zeroize();
    swap.zeroize();
    let mut out = x2.mul(z2.invert());
    // The ladder's state depends on the secret scalar: wipe it (x1 is the public u).
    for fe in [&mut x2, &mut z2, &mut x3, &mut z3] {
        fe.wipe();
    }
    let result = if bool::from(out.is_zero()) {
        None
    } else {
        Some(out.to_bytes())
    };
    out.wipe();
    result
}

/// The X448 public key of `scalar`: X448(scalar, 5).
pub(crate) fn x448_public(scalar: &[u8; 56]) -> [u8; 56] {
    let mut five = [0u8; 56];
    five[0] = 5;
    // The base point has prime order: the result is never zero.
    x448(scalar, &five).unwrap_or([0u8; 56])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(seed: u8) -> EdwardsScalar {
        let mut wide = WideEdwardsScalarBytes::default();
        for (i, b) in wide.iter_mut().enumerate() {
            *b = seed.wrapping_mul(31).wrapping_add(i as u8);
        }
        EdwardsScalar::from_bytes_mod_order_wide(&wide)
    }

    fn reference(s: &EdwardsScalar) -> [u8; 57] {
        (ed448_goldilocks::EdwardsPoint::GENERATOR * s)
            .to_affine()
            .compress()
            .to_bytes()
    }

    #[test]
    fn field_inverse_and_sqrt() {
        let x = Fe::from_u64(123456789);
        assert!(bool::from(x.mul(x.invert()).ct_eq(&Fe::ONE)));
        // 4 = 2^2: the candidate root of 4 squares back to 4 (4 is a square mod p).
        let four = Fe::from_u64(4);
        let r = four.mul(four.pow_p_minus_3_over_4());
        assert!(bool::from(r.square().ct_eq(&four)));
    }

    #[test]
    fn radix16_recomposes() {
        for seed in 0..20u8 {
            let s = scalar(seed);
            let digits = radix16(&s);
            assert!(digits.iter().all(|d| (-8..8).contains(d) || *d == 1));
            let mut acc = EdwardsScalar::ZERO;
            for d in digits.iter().rev() {
                acc *= EdwardsScalar::from(16u8);
                acc = if *d >= 0 {
                    acc + EdwardsScalar::from(*d as u8)
                } else {
                    acc - EdwardsScalar::from((-*d) as u8)
                };
            }
            assert_eq!(acc, s);
        }
    }

    #[test]
    fn base_multiplication_matches_ed448_goldilocks() {
        for seed in 0..10u8 {
            let s = scalar(seed);
            assert_eq!(mul_base(&s).compress(), reference(&s), "seed {seed}");
            assert_eq!(
                mul_base_vartime(&s).compress(),
                reference(&s),
                "seed {seed}"
            );
        }
        assert_eq!(
            mul_base(&EdwardsScalar::ZERO).compress(),
            reference(&EdwardsScalar::ZERO)
        );
    }

    #[test]
    fn double_scalar_matches() {
        for seed in 0..10u8 {
            let (s, k, x) = (scalar(seed), scalar(seed + 100), scalar(seed + 200));
            let a = mul_base(&x);
            let expected = reference(&(s - k * x));
            assert_eq!(
                verification_point(&s, &k, &a).compress(),
                expected,
                "seed {seed}"
            );
        }
    }

    /// Differential: Ed448 against ed448-goldilocks, X448 against the x448 crate, on many
    /// pseudo-random keys and messages.
    #[test]
    fn differential_against_reference_crates() {
        let mut state = 0x9e3779b97f4a7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for i in 0..40 {
            let mut seed = [0u8; 57];
            seed.iter_mut().for_each(|b| *b = next() as u8);
            let message: Vec<u8> = (0..i * 7).map(|_| next() as u8).collect();
            let ours = Ed448Key::from_seed(&seed);
            let theirs = ed448_goldilocks::SigningKey::try_from(&seed[..]).unwrap();
            assert_eq!(&ours.public()[..], &theirs.verifying_key().to_bytes()[..]);
            let sig = ours.sign(&message);
            assert_eq!(&sig[..], &theirs.sign_raw(&message).to_bytes()[..]);
            assert!(ed448_verify(&ours.public(), &message, &sig));
            let mut bad = sig;
            bad[(next() % 114) as usize] ^= 1 << (next() % 8);
            let theirs_accepts = ed448_goldilocks::Signature::from_slice(&bad)
                .map(|s| theirs.verifying_key().verify_raw(&s, &message).is_ok())
                .unwrap_or(false);
            assert!(!theirs_accepts);
            assert!(!ed448_verify(&ours.public(), &message, &bad));

            let mut k = [0u8; 56];
            let mut u = [0u8; 56];
            k.iter_mut().for_each(|b| *b = next() as u8);
            u.iter_mut().for_each(|b| *b = next() as u8);
            assert_eq!(x448(&k, &u), x448::x448(k, u));
            assert_eq!(
                x448_public(&k),
                x448::x448(k, x448::X448_BASEPOINT_BYTES).unwrap()
            );
        }
    }

    /// RFC 8032: S >= L is rejected; a non-zero top byte of S is such an S, and flipping any
    /// bit of R or S breaks the signature.
    #[test]
    fn malleated_signatures_are_rejected() {
        let key = Ed448Key::from_seed(&[3u8; 57]);
        let sig = key.sign(b"m");
        assert!(ed448_verify(&key.public(), b"m", &sig));
        for byte in 0..114 {
            for bit in [0u8, 7] {
                let mut bad = sig;
                bad[byte] ^= 1 << bit;
                assert!(
                    !ed448_verify(&key.public(), b"m", &bad),
                    "byte {byte} bit {bit}"
                );
            }
        }
        // S + L: same value mod L, not canonical.
        let l: [u8; 57] = {
            let mut b = [0u8; 57];
            b[..56].copy_from_slice(&ed448_goldilocks::ORDER.to_le_bytes()[..56]);
            b
        };
        let mut s_plus_l = [0u8; 57];
        let mut carry = 0u16;
        for i in 0..57 {
            let v = sig[57 + i] as u16 + l[i] as u16 + carry;
            s_plus_l[i] = v as u8;
            carry = v >> 8;
        }
        let mut bad = sig;
        bad[57..].copy_from_slice(&s_plus_l);
        assert!(!ed448_verify(&key.public(), b"m", &bad));
    }

    #[test]
    fn compress_decompress() {
        for seed in 0..10u8 {
            let p = mul_base(&scalar(seed));
            let enc = p.compress();
            let q = Point::decompress(&enc).unwrap();
            assert!(p.eq(&q));
            assert_eq!(q.compress(), enc);
        }
        // Non-canonical y (= p) and a set high bit in the last byte are rejected.
        let mut bad = [0xffu8; 57];
        bad[28] = 0xfe;
        bad[56] = 0;
        assert!(Point::decompress(&bad).is_none());
        let mut high = mul_base(&scalar(1)).compress();
        high[56] |= 1;
        assert!(Point::decompress(&high).is_none());
    }
    #[test]
    fn rules_order_constant_matches_the_curve() {
        // S = L - 1 passes the byte rules, S = L does not: the constant is the group order.
        let order = ed448_goldilocks::ORDER.to_le_bytes();
        let key = Ed448Key::from_seed(&[5u8; 57]);
        let mut sig = key.sign(b"x");
        sig[57..113].copy_from_slice(&order[..56]);
        sig[113] = 0;
        assert!(!crate::ed448_rules::acceptable(&key.public(), &sig));
        sig[57] -= 1;
        assert!(crate::ed448_rules::acceptable(&key.public(), &sig));
    }
}

/// Ed448 edge cases: both backends must reach one verdict on every input (eth-mls's rules:
/// no small-order `A` or `R`, canonical encodings, `S < L`, cofactored equation).
#[cfg(all(test, feature = "openssl"))]
mod agreement {
    use super::*;
    use crate::{Backend, OpenSsl, RustCrypto, SigAlg};

    /// The 4-torsion: identity, (0, -1) of order 2, (±1, 0) of order 4.
    fn torsion() -> [(&'static str, Point); 4] {
        let p = |x: Fe, y: Fe| Point {
            x,
            y,
            z: Fe::ONE,
            t: x.mul(y),
        };
        [
            ("identity", Point::IDENTITY),
            ("order 2", p(Fe::ZERO, Fe::ONE.neg())),
            ("order 4 (1, 0)", p(Fe::ONE, Fe::ZERO)),
            ("order 4 (-1, 0)", p(Fe::ONE.neg(), Fe::ZERO)),
        ]
    }

    fn scalar(seed: u64) -> EdwardsScalar {
        let mut wide = WideEdwardsScalarBytes::default();
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        for b in wide.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = state as u8;
        }
        EdwardsScalar::from_bytes_mod_order_wide(&wide)
    }

    /// A signature with a chosen commitment point: S = r + k a with k over (R, A, M).
    fn sign_with(
        r: &EdwardsScalar,
        big_r: &[u8; 57],
        a: &EdwardsScalar,
        big_a: &[u8; 57],
        m: &[u8],
    ) -> [u8; 114] {
        let k = shake_scalar(&[DOM4, big_r, big_a, m]);
        let s = *r + k * *a;
        let mut sig = [0u8; 114];
        sig[..57].copy_from_slice(big_r);
        sig[57..].copy_from_slice(&s.to_bytes_rfc_8032());
        sig
    }

    /// Runs both backends; asserts they agree and returns the common verdict.
    fn verdict(public: &[u8; 57], message: &[u8], signature: &[u8; 114]) -> bool {
        let ours = RustCrypto::verify(SigAlg::Ed448, public, message, signature).is_ok();
        let openssl = OpenSsl::verify(SigAlg::Ed448, public, message, signature).is_ok();
        assert_eq!(
            ours,
            openssl,
            "backends disagree on A={} sig={}",
            hex(public),
            hex(signature)
        );
        ours
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn small_order_public_keys_are_refused_by_both() {
        let m = b"any message";
        for (name, t) in torsion() {
            let big_a = t.compress();
            // With A of small order, (R = [s]B, S = s) satisfies the cofactorless equation
            // whenever [k]A is the identity: the classic "signs everything" key.
            for seed in 1..6 {
                let s = scalar(seed);
                let big_r = mul_base(&s).compress();
                let mut sig = [0u8; 114];
                sig[..57].copy_from_slice(&big_r);
                sig[57..].copy_from_slice(&s.to_bytes_rfc_8032());
                assert!(!verdict(&big_a, m, &sig), "A = {name}");
            }
        }
    }

    #[test]
    fn small_order_commitments_are_refused_by_both() {
        let a = scalar(7);
        let big_a = mul_base(&a).compress();
        for (name, t) in torsion() {
            let big_r = t.compress();
            // r = 0: S = k a makes [S]B - [k]A the identity, equal to [4]R for every R here.
            let sig = sign_with(&EdwardsScalar::ZERO, &big_r, &a, &big_a, b"m");
            assert!(!verdict(&big_a, b"m", &sig), "R = {name}");
        }
    }

    #[test]
    fn torsion_components_follow_the_cofactored_equation_on_both() {
        let m = b"torsion";
        for (name, t) in torsion().into_iter().skip(1) {
            // An honest R plus a small-order component: cofactored accepts.
            for seed in 0..4 {
                let a = scalar(100 + seed);
                let big_a = mul_base(&a).compress();
                let r = scalar(200 + seed);
                let big_r = mul_base(&r).add(&t, edwards_d()).compress();
                let sig = sign_with(&r, &big_r, &a, &big_a, m);
                assert!(verdict(&big_a, m, &sig), "R + {name}");
                // A public key with a small-order component: [4] removes it.
                let big_a2 = mul_base(&a).add(&t, edwards_d()).compress();
                let big_r2 = mul_base(&r).compress();
                let sig2 = sign_with(&r, &big_r2, &a, &big_a2, m);
                assert!(verdict(&big_a2, m, &sig2), "A + {name}");
            }
        }
    }

    #[test]
    fn zero_s_and_non_canonical_encodings_are_refused_by_both() {
        let key = Ed448Key::from_seed(&[9u8; 57]);
        let m = b"edge";
        let good = key.sign(m);
        assert!(verdict(&key.public(), m, &good));
        let mut zero_s = good;
        zero_s[57..].fill(0);
        assert!(!verdict(&key.public(), m, &zero_s));
        // A point whose y is small has a second encoding y + p (< 2^448).
        let mut p_bytes = [0xffu8; 56];
        p_bytes[28] = 0xfe;
        let mut found = 0;
        for y in 2u8..60 {
            let mut enc = [0u8; 57];
            enc[0] = y;
            if Point::decompress(&enc).is_none() {
                continue;
            }
            found += 1;
            // y + p, little-endian: y fits in byte 0 and p's byte 0 is 0xff.
            let mut alias = [0u8; 57];
            let mut carry = y as u16;
            for i in 0..56 {
                let v = p_bytes[i] as u16 + carry;
                alias[i] = v as u8;
                carry = v >> 8;
            }
            assert_eq!(carry, 0);
            // As the public key (any signature) and as R.
            assert!(!verdict(&alias, m, &good));
            let mut sig = good;
            sig[..57].copy_from_slice(&alias);
            assert!(!verdict(&key.public(), m, &sig));
        }
        assert!(found > 0, "no small-y point found");
        // "Negative zero": x = 0 with the sign bit set (y = 1).
        let mut neg_zero = [0u8; 57];
        neg_zero[0] = 1;
        neg_zero[56] = 0x80;
        assert!(!verdict(&neg_zero, m, &good));
    }

    /// A signature whose R has a 4-torsion component: valid under the cofactored equation
    /// (ours and OpenSSL's), not under the cofactorless one.
    fn torsion_signature(key: &Ed448Key, m: &[u8]) -> [u8; 114] {
        let r = shake_scalar(&[b"torsion", m]);
        let t4 = Point {
            x: Fe::ONE,
            y: Fe::ZERO,
            z: Fe::ONE,
            t: Fe::ZERO,
        };
        let big_r = mul_base(&r).add(&t4, edwards_d()).compress();
        let k = shake_scalar(&[DOM4, &big_r, &key.public(), m]);
        let s = r + k * key.scalar;
        let mut sig = [0u8; 114];
        sig[..57].copy_from_slice(&big_r);
        sig[57..].copy_from_slice(&s.to_bytes_rfc_8032());
        sig
    }

    #[test]
    fn a_batch_holds_exactly_when_every_signature_does() {
        let keys: Vec<Ed448Key> = (0..12u8).map(|i| Ed448Key::from_seed(&[i; 57])).collect();
        let publics: Vec<[u8; 57]> = keys.iter().map(Ed448Key::public).collect();
        let messages: Vec<Vec<u8>> = (0..12u8).map(|i| vec![i; 40 + i as usize]).collect();
        let mut sigs: Vec<[u8; 114]> = keys.iter().zip(&messages).map(|(k, m)| k.sign(m)).collect();
        // One signature valid only under the cofactored equation: every verifier here
        // accepts it, alone and in a batch.
        sigs[5] = torsion_signature(&keys[5], &messages[5]);
        assert!(verdict(&publics[5], &messages[5], &sigs[5]));
        let batch = |sigs: &[[u8; 114]], messages: &[Vec<u8>]| -> bool {
            let items: Vec<(&[u8], &[u8], &[u8])> = publics
                .iter()
                .zip(messages)
                .zip(sigs)
                .map(|((a, m), s)| (a.as_slice(), m.as_slice(), s.as_slice()))
                .collect();
            ed448_verify_batch(&items, &[7; 32])
        };
        assert!(batch(&sigs, &messages));
        assert!(ed448_verify_batch(&[], &[0; 32]));
        // Any one signature wrong, anywhere, fails the batch.
        for i in 0..12 {
            let mut bad = sigs.clone();
            bad[i][(i * 31) % 114] ^= 1 << (i % 8);
            assert!(!batch(&bad, &messages), "signature {i} tampered");
            let mut other = messages.clone();
            other[i][0] ^= 1;
            assert!(!batch(&sigs, &other), "message {i} changed");
        }
        // Two signatures swapped between their messages.
        let mut swapped = sigs.clone();
        swapped.swap(2, 3);
        assert!(!batch(&swapped, &messages));
        // Wrong lengths are no verdict: false.
        assert!(!ed448_verify_batch(
            &[(&publics[0][..56], &messages[0], &sigs[0])],
            &[0; 32]
        ));
    }

    #[test]
    fn random_valid_and_tampered_signatures_agree() {
        let mut accepted = 0;
        for seed in 0..64u8 {
            let key = Ed448Key::from_seed(&[seed; 57]);
            let m = [seed; 33];
            let sig = key.sign(&m);
            if verdict(&key.public(), &m, &sig) {
                accepted += 1;
            }
            let mut other = m;
            other[0] ^= 1;
            assert!(!verdict(&key.public(), &other, &sig));
            for i in 0..4usize {
                let mut bad = sig;
                bad[(seed as usize * 7 + i * 29) % 114] ^= 1 << (i % 8);
                assert!(!verdict(&key.public(), &m, &bad));
                let mut bad_key = key.public();
                bad_key[(seed as usize + i * 13) % 57] ^= 1 << (i % 8);
                verdict(&bad_key, &m, &sig);
            }
        }
        assert_eq!(accepted, 64);
    }
}
