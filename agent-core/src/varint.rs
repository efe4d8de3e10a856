//! Base-128 varints as protobuf and snappy write them: seven bits a byte,
//! least significant group first, the high bit set on every byte but the
//! last. Remote write's fields, snappy's length preamble and the series
//! table's id lists all use this one codec.

use alloc::vec::Vec;

/// The most bytes a `u32` takes.
pub const MAX_LEN_U32: usize = 5;
/// The most bytes a `u64` takes.
pub const MAX_LEN_U64: usize = 10;

/// Bytes `v` takes.
#[inline]
pub const fn len(v: u64) -> usize {
    // 7 payload bits per byte; zero still takes one byte.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Appends `v` to `out`.
#[inline]
pub fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Writes `v` at the start of `out` and returns how many bytes it took;
/// `out` must hold [`len`]`(v)` bytes.
pub fn write(mut v: u64, out: &mut [u8]) -> usize {
    let mut n = 0;
    while v >= 0x80 {
        out[n] = (v as u8) | 0x80;
        v >>= 7;
        n += 1;
    }
    out[n] = v as u8;
    n + 1
}

/// Why [`read`] found no varint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarintError {
    /// The bytes end inside the varint.
    Truncated,
    /// No last byte within the longest varint the caller accepts.
    TooLong,
}

/// Reads the varint at `*at` of at most `max_len` bytes and moves `*at`
/// past it. On error `*at` is left somewhere inside the bad varint.
#[inline]
pub fn read(bytes: &[u8], at: &mut usize, max_len: usize) -> Result<u64, VarintError> {
    let mut v = 0u64;
    for i in 0..max_len.min(MAX_LEN_U64) {
        let Some(&b) = bytes.get(*at) else {
            return Err(VarintError::Truncated);
        };
        *at += 1;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(VarintError::TooLong)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_match_what_is_written() {
        for (v, n) in [
            (0u64, 1),
            (1, 1),
            (127, 1),
            (128, 2),
            (16383, 2),
            (16384, 3),
            (u64::from(u32::MAX), 5),
            (u64::MAX, 10),
        ] {
            assert_eq!(len(v), n, "{v}");
            let mut out = Vec::new();
            put(&mut out, v);
            assert_eq!(out.len(), n, "{v}");
            let mut fixed = [0u8; MAX_LEN_U64];
            let written = write(v, &mut fixed);
            assert_eq!(&fixed[..written], &out[..], "{v}");
            let mut at = 0;
            assert_eq!(read(&out, &mut at, MAX_LEN_U64), Ok(v));
            assert_eq!(at, out.len());
        }
        assert_eq!(len(u64::from(u32::MAX)), MAX_LEN_U32);
        assert_eq!(len(u64::MAX), MAX_LEN_U64);
    }

    #[test]
    fn reading_stops_at_the_end_and_at_the_length_bound() {
        let mut at = 0;
        assert_eq!(
            read(&[0x80, 0x80], &mut at, MAX_LEN_U64),
            Err(VarintError::Truncated)
        );
        let mut at = 0;
        assert_eq!(read(&[0x80; 6], &mut at, MAX_LEN_U32), Err(VarintError::TooLong));
        let mut at = 1;
        assert_eq!(read(&[0xff, 0x96, 0x01], &mut at, MAX_LEN_U32), Ok(150));
        assert_eq!(at, 3);
    }
}
