//! The TLS presentation language subset of the spec (§1): big-endian integers, fixed arrays,
//! RFC 9420 variable-length vectors with minimal length prefixes, `optional<T>`. Decoders are
//! bounds-checked and never panic; the caller checks that the whole input was consumed.
//!
//! Public so that formats defined with the same conventions (the eth-mls client's messages)
//! share one implementation. Every decoding failure is [`Error::Decode`] naming the field.

use crate::Error;

/// Largest length a variable-length prefix can express (30 bits).
pub const MAX_VARINT: usize = (1 << 30) - 1;

/// Appends encodings to a byte vector.
#[derive(Default)]
pub struct Writer {
    /// The encoding so far.
    pub buf: Vec<u8>,
}

impl Writer {
    /// An empty writer with room for `n` bytes.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            buf: Vec::with_capacity(n),
        }
    }
    /// `uint8`.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    /// `uint16`.
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    /// `uint32`.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    /// `uint64`.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    /// Raw bytes (`opaque x[N]`).
    pub fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }
    /// A variable-length length prefix (shortest form). Lengths above 2^30 - 1 cannot be
    /// encoded; callers bound their inputs well below.
    pub fn varint(&mut self, len: usize) -> Result<(), Error> {
        match len {
            0..=0x3f => self.u8(len as u8),
            0x40..=0x3fff => self.u16(len as u16 | 0x4000),
            0x4000..=MAX_VARINT => self.u32(len as u32 | 0x8000_0000),
            _ => return Err(Error::TooLarge { len }),
        }
        Ok(())
    }
    /// `opaque x<V>`.
    pub fn vec(&mut self, v: &[u8]) -> Result<(), Error> {
        self.varint(v.len())?;
        self.bytes(v);
        Ok(())
    }
    /// `optional<uint32>`.
    pub fn opt_u32(&mut self, v: Option<u32>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.u32(v);
            }
        }
    }
}

/// Reads encodings from a byte slice. Every failure is [`Error::Decode`].
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

// The buffers may hold secrets (state encodings): `Debug` shows lengths only.
impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Writer {{ len: {} }}", self.buf.len())
    }
}

impl std::fmt::Debug for Reader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reader {{ len: {}, pos: {} }}", self.buf.len(), self.pos)
    }
}

fn short(what: &'static str) -> Error {
    Error::Decode { what }
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }
    /// The next `n` bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Error> {
        let end = self.pos.checked_add(n).ok_or_else(|| short(what))?;
        let out = self.buf.get(self.pos..end).ok_or_else(|| short(what))?;
        self.pos = end;
        Ok(out)
    }
    /// `opaque x[N]`.
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Error> {
        let s = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }
    /// `uint8`.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, Error> {
        Ok(self.array::<1>(what)?[0])
    }
    /// `uint16`.
    pub fn u16(&mut self, what: &'static str) -> Result<u16, Error> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }
    /// `uint32`.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, Error> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }
    /// `uint64`.
    pub fn u64(&mut self, what: &'static str) -> Result<u64, Error> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }
    /// A variable-length prefix: shortest form only, `11` refused.
    pub fn varint(&mut self, what: &'static str) -> Result<usize, Error> {
        let first = self.u8(what)?;
        let (len, min) = match first >> 6 {
            0 => (usize::from(first & 0x3f), 0),
            1 => {
                let lo = self.u8(what)?;
                (usize::from(first & 0x3f) << 8 | usize::from(lo), 0x40)
            }
            2 => {
                let rest = self.array::<3>(what)?;
                let v = u32::from_be_bytes([first & 0x3f, rest[0], rest[1], rest[2]]);
                (v as usize, 0x4000)
            }
            _ => return Err(short(what)),
        };
        if len < min {
            return Err(short(what));
        }
        Ok(len)
    }
    /// `opaque x<V>`.
    pub fn vec(&mut self, what: &'static str) -> Result<&'a [u8], Error> {
        let len = self.varint(what)?;
        self.take(len, what)
    }
    /// `optional<uint32>`: the flag must be 0 or 1.
    pub fn opt_u32(&mut self, what: &'static str) -> Result<Option<u32>, Error> {
        match self.u8(what)? {
            0 => Ok(None),
            1 => Ok(Some(self.u32(what)?)),
            _ => Err(short(what)),
        }
    }
    /// A boolean stored as one byte, 0 or 1 (state encodings).
    pub fn bool(&mut self, what: &'static str) -> Result<bool, Error> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(short(what)),
        }
    }
    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    /// Fails unless every byte was consumed.
    pub fn finish(self, what: &'static str) -> Result<(), Error> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(short(what))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn varint_minimal_forms() {
        for (len, enc) in [
            (0usize, vec![0x00]),
            (63, vec![0x3f]),
            (64, vec![0x40, 0x40]),
            (16383, vec![0x7f, 0xff]),
            (16384, vec![0x80, 0x00, 0x40, 0x00]),
        ] {
            let mut w = Writer::default();
            w.varint(len).unwrap();
            assert_eq!(w.buf, enc, "{len}");
            let mut r = Reader::new(&enc);
            assert_eq!(r.varint("len").unwrap(), len);
            r.finish("x").unwrap();
        }
    }

    #[test]
    fn varint_rejects_long_forms_and_prefix_11() {
        for bad in [
            &[0x40, 0x05][..],
            &[0x80, 0x00, 0x00, 0x05],
            &[0x80, 0x00, 0x3f, 0xff],
            &[0xc0],
            &[0xc0, 0, 0, 0, 0, 0, 0, 1],
            &[0x40],
            &[],
        ] {
            assert!(Reader::new(bad).varint("len").is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn varint_round_trip(len in 0usize..=MAX_VARINT) {
            let mut w = Writer::default();
            w.varint(len).unwrap();
            let mut r = Reader::new(&w.buf);
            prop_assert_eq!(r.varint("len").unwrap(), len);
            prop_assert_eq!(r.remaining(), 0);
        }

        #[test]
        fn reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = Reader::new(&bytes);
            let _ = r.vec("v");
            let _ = r.opt_u32("o");
            let _ = r.u64("u");
        }
    }
}
