//! Snappy block format (the unframed one remote write requires), both ways,
//! into caller-owned buffers.
//!
//! The stream is a varint of the uncompressed length followed by elements;
//! the two low bits of each element's tag say what it is:
//! `00` literal, `01` copy with an 11-bit offset, `10` copy with a 16-bit
//! offset, `11` copy with a 32-bit offset. The compressor works on 64 KiB
//! blocks so every offset fits the 16-bit form, like the reference encoder.
//!
//! [`Compressor`] owns its hash table; it is allocated once and reused, so
//! compressing allocates nothing. [`decompress`] is bounded by the output
//! slice and refuses malformed input instead of panicking.
//!
//! [`Joiner`] puts several streams behind one preamble without
//! recompressing them. That is sound because a copy element's offset counts
//! back from the current output position and a valid stream never reaches
//! before its own start: after a stream's elements are appended to another
//! stream's, every copy still lands inside the bytes its own stream produced.
//! The sender uses it to send several WAL records, each compressed once when
//! it was written, as one request.

use crate::varint;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

/// Matches are searched within blocks of this size (offsets stay < 64 KiB).
const BLOCK_BYTES: usize = 1 << 16;
const TABLE_BITS: u32 = 14;
/// Inputs shorter than this are not worth searching and leave room for the
/// 4-byte loads of the match finder.
const MIN_SEARCH_BYTES: usize = 16;

/// Snappy's documented worst case: the largest output
/// [`Compressor::compress`] can produce for `n` input bytes. In `u64`, as the
/// memory model adds it up; a buffer takes it `as usize`.
pub const fn max_compressed_len(n: u64) -> u64 {
    32 + n + n / 6
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnappyError {
    /// The output slice is smaller than the bound the operation needs.
    OutputTooSmall { need: usize, have: usize },
    /// The length preamble is not a valid varint of at most 32 bits.
    BadPreamble,
    /// An element runs past the end of the input.
    Truncated { at: usize },
    /// A copy points before the start of the output, or has offset 0.
    BadOffset { at: usize },
    /// The elements produce more or fewer bytes than the preamble says.
    LengthMismatch { expected: usize, produced: usize },
    /// Joined streams would hold more than the format's 4 GiB.
    TooLong { len: u64 },
}

impl fmt::Display for SnappyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnappyError::OutputTooSmall { need, have } => {
                write!(f, "snappy: output buffer of {have} bytes, {need} needed")
            }
            SnappyError::BadPreamble => write!(f, "snappy: invalid length preamble"),
            SnappyError::Truncated { at } => write!(f, "snappy: element at byte {at} is truncated"),
            SnappyError::BadOffset { at } => write!(f, "snappy: copy at byte {at} has an invalid offset"),
            SnappyError::LengthMismatch { expected, produced } => write!(
                f,
                "snappy: preamble says {expected} bytes, elements produce {produced}"
            ),
            SnappyError::TooLong { len } => {
                write!(f, "snappy: {len} bytes is more than one stream can hold")
            }
        }
    }
}

/// A reusable compressor; the hash table is its only storage (32 KiB).
pub struct Compressor {
    table: Vec<u16>,
}

impl Default for Compressor {
    fn default() -> Self {
        Compressor::new()
    }
}

impl Compressor {
    pub fn new() -> Self {
        Compressor {
            table: vec![0; 1 << TABLE_BITS],
        }
    }

    /// Compresses `input` (at most 4 GiB, the format's limit) into `out`,
    /// replacing its contents, and returns the compressed length. With
    /// [`max_compressed_len`]`(input.len())` capacity, `out` never grows;
    /// bytes are appended, never zero-filled first, so only the pages the
    /// stream reaches are touched.
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> usize {
        out.clear();
        out.reserve(max_compressed_len(input.len() as u64) as usize);
        varint::put(out, u64::from(input.len() as u32));
        self.append_elements(input, out);
        out.len()
    }

    /// Appends the elements that encode `input` to `out`, without a
    /// preamble; the caller accounts for the length (see [`Joiner`]).
    fn append_elements(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for block in input.chunks(BLOCK_BYTES) {
            self.compress_block(block, out);
        }
    }

    fn compress_block(&mut self, block: &[u8], out: &mut Vec<u8>) {
        if block.len() < MIN_SEARCH_BYTES {
            return put_literal(out, block);
        }
        // Positions are block-relative, so a stale entry from an earlier
        // block is harmless: every candidate is verified before use.
        self.table.fill(0);
        let last_search = block.len() - MIN_SEARCH_BYTES;
        let mut ip = 1usize;
        let mut next_emit = 0usize;
        'outer: loop {
            // Step faster through data that does not match, as the reference
            // encoder does: after 32 misses the stride grows by one byte.
            let mut misses = 32u32;
            let candidate = loop {
                if ip > last_search {
                    break 'outer;
                }
                let word = load_u32(block, ip);
                let slot = hash(word);
                let candidate = self.table[slot] as usize;
                self.table[slot] = ip as u16;
                if candidate < ip && load_u32(block, candidate) == word {
                    break candidate;
                }
                ip += (misses >> 5) as usize;
                misses += 1;
            };
            put_literal(out, &block[next_emit..ip]);
            let len = match_len(block, candidate, ip, 4);
            put_copy(out, ip - candidate, len);
            ip += len;
            next_emit = ip;
            if ip > last_search {
                break;
            }
            // Seed the table with the position just before the next search
            // so runs of repeats chain into each other.
            let prev = ip - 1;
            self.table[hash(load_u32(block, prev))] = prev as u16;
        }
        put_literal(out, &block[next_emit..])
    }
}

fn load_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn load_u64(b: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Length of the match at `ip` against `candidate` (< `ip`), whose first
/// `known` bytes are known equal. The source may run into the bytes at
/// `ip` (an overlapping copy), which is fine: all of them are input. Eight
/// bytes per step, since remote-write batches repeat label runs hundreds of
/// bytes long.
fn match_len(block: &[u8], candidate: usize, ip: usize, known: usize) -> usize {
    let mut len = known;
    while ip + len + 8 <= block.len() {
        let diff = load_u64(block, candidate + len) ^ load_u64(block, ip + len);
        if diff != 0 {
            return len + (diff.trailing_zeros() / 8) as usize;
        }
        len += 8;
    }
    while ip + len < block.len() && block[candidate + len] == block[ip + len] {
        len += 1;
    }
    len
}

fn hash(word: u32) -> usize {
    (word.wrapping_mul(0x1e35_a7bd) >> (32 - TABLE_BITS)) as usize
}

fn put_literal(out: &mut Vec<u8>, lit: &[u8]) {
    if lit.is_empty() {
        return;
    }
    let n = lit.len() - 1;
    if n < 60 {
        out.push((n as u8) << 2);
    } else {
        let bytes = (4 - ((n as u32).leading_zeros() as usize / 8)).max(1);
        let n_le = (n as u32).to_le_bytes();
        out.push(((59 + bytes) as u8) << 2);
        out.extend_from_slice(&n_le[..bytes]);
    }
    out.extend_from_slice(lit);
}

fn put_copy(out: &mut Vec<u8>, offset: usize, mut len: usize) {
    // Long matches are cut into 64-byte copies, leaving a tail of at least 4
    // so the last piece is still encodable.
    while len >= 68 {
        put_copy_2(out, offset, 64);
        len -= 64;
    }
    if len > 64 {
        put_copy_2(out, offset, 60);
        len -= 60;
    }
    if len < 12 && offset < 2048 {
        out.push(0b01 | (((len - 4) as u8) << 2) | (((offset >> 8) as u8) << 5));
        out.push(offset as u8);
    } else {
        put_copy_2(out, offset, len)
    }
}

fn put_copy_2(out: &mut Vec<u8>, offset: usize, len: usize) {
    out.push(0b10 | (((len - 1) as u8) << 2));
    out.extend_from_slice(&(offset as u16).to_le_bytes());
}

/// Room kept for a joined stream's preamble: the longest varint of a `u32`.
pub const PREAMBLE_ROOM: usize = varint::MAX_LEN_U32;

/// One block-format stream made of several, appended to a caller's buffer
/// (see the module docs for why no recompression is needed).
///
/// [`Joiner::begin`] leaves [`PREAMBLE_ROOM`] bytes for the preamble, since
/// the total length is known only at the end; [`Joiner::finish`] writes the
/// shortest varint right-aligned in that room and says where the stream
/// starts, so the result is byte for byte what a one-piece encoder with the
/// same elements would give.
#[derive(Debug)]
pub struct Joiner {
    start: usize,
    total: u64,
}

impl Joiner {
    /// Starts a stream at the end of `out`.
    pub fn begin(out: &mut Vec<u8>) -> Joiner {
        let start = out.len();
        out.extend_from_slice(&[0; PREAMBLE_ROOM]);
        Joiner { start, total: 0 }
    }

    /// Uncompressed bytes joined so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    fn add(&mut self, len: usize) -> Result<(), SnappyError> {
        let total = self.total + len as u64;
        if total > u64::from(u32::MAX) {
            return Err(SnappyError::TooLong { len: total });
        }
        self.total = total;
        Ok(())
    }

    /// Appends the elements of `stream`, a complete block-format stream
    /// (e.g. a WAL record's payload, whose checksum vouches for it), and
    /// returns its uncompressed length. Only the preamble is read: the
    /// elements are copied as they are.
    pub fn push_stream(&mut self, stream: &[u8], out: &mut Vec<u8>) -> Result<usize, SnappyError> {
        let (len, elements_at) = decompressed_len(stream)?;
        self.add(len)?;
        out.extend_from_slice(&stream[elements_at..]);
        Ok(len)
    }

    /// Compresses `raw` into the joined stream.
    pub fn push_raw(
        &mut self,
        compressor: &mut Compressor,
        raw: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SnappyError> {
        self.add(raw.len())?;
        compressor.append_elements(raw, out);
        Ok(())
    }

    /// Writes the preamble; the joined stream is `out[returned..]`.
    pub fn finish(self, out: &mut [u8]) -> usize {
        let mut bytes = [0u8; PREAMBLE_ROOM];
        let n = varint::write(u64::from(self.total as u32), &mut bytes);
        let at = self.start + PREAMBLE_ROOM - n;
        out[at..at + n].copy_from_slice(&bytes[..n]);
        at
    }
}

/// The uncompressed length a stream announces, and where its elements start.
pub fn decompressed_len(input: &[u8]) -> Result<(usize, usize), SnappyError> {
    let mut at = 0;
    match varint::read(input, &mut at, varint::MAX_LEN_U32) {
        Ok(len) if len <= u64::from(u32::MAX) => Ok((len as usize, at)),
        _ => Err(SnappyError::BadPreamble),
    }
}

/// Decompresses a block-format stream into `out`, returning the length.
/// Never panics and never writes past `out`, whatever `input` holds.
pub fn decompress(input: &[u8], out: &mut [u8]) -> Result<usize, SnappyError> {
    let (expected, mut r) = decompressed_len(input)?;
    if expected > out.len() {
        return Err(SnappyError::OutputTooSmall {
            need: expected,
            have: out.len(),
        });
    }
    let out = &mut out[..expected];
    let mut w = 0usize;
    let overrun = |produced: usize| SnappyError::LengthMismatch { expected, produced };
    while r < input.len() {
        let at = r;
        let tag = input[r];
        r += 1;
        let (offset, len) = match tag & 0b11 {
            0b00 => {
                let mut n = (tag >> 2) as usize;
                if n >= 60 {
                    let bytes = n - 59;
                    let ext = input.get(r..r + bytes).ok_or(SnappyError::Truncated { at })?;
                    n = ext.iter().rev().fold(0usize, |acc, b| (acc << 8) | *b as usize);
                    r += bytes;
                }
                let len = n + 1;
                let lit = input.get(r..r + len).ok_or(SnappyError::Truncated { at })?;
                let dst = out.get_mut(w..w + len).ok_or(overrun(w + len))?;
                dst.copy_from_slice(lit);
                r += len;
                w += len;
                continue;
            }
            0b01 => {
                let b = *input.get(r).ok_or(SnappyError::Truncated { at })?;
                r += 1;
                (
                    (((tag >> 5) as usize) << 8) | b as usize,
                    ((tag >> 2) & 0b111) as usize + 4,
                )
            }
            0b10 => {
                let b = input.get(r..r + 2).ok_or(SnappyError::Truncated { at })?;
                r += 2;
                (u16::from_le_bytes([b[0], b[1]]) as usize, (tag >> 2) as usize + 1)
            }
            _ => {
                let b = input.get(r..r + 4).ok_or(SnappyError::Truncated { at })?;
                r += 4;
                (
                    u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize,
                    (tag >> 2) as usize + 1,
                )
            }
        };
        if offset == 0 || offset > w {
            return Err(SnappyError::BadOffset { at });
        }
        if w + len > expected {
            return Err(overrun(w + len));
        }
        // Byte by byte: an overlapping copy (offset < len) repeats a pattern.
        for i in w..w + len {
            out[i] = out[i - offset];
        }
        w += len;
    }
    if w != expected {
        return Err(SnappyError::LengthMismatch {
            expected,
            produced: w,
        });
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(input: &[u8]) -> usize {
        let mut c = Compressor::new();
        let mut out = Vec::with_capacity(max_compressed_len(input.len() as u64) as usize);
        let n = c.compress(input, &mut out);
        assert_eq!(n, out.len());
        let mut back = vec![0u8; input.len()];
        assert_eq!(decompress(&out[..n], &mut back), Ok(input.len()));
        assert_eq!(back, input);
        n
    }

    #[test]
    fn edge_sizes_round_trip() {
        for len in [0, 1, 15, 16, 17, 60, 61, 256, 257, 65535, 65536, 65537, 200_000] {
            let data: std::vec::Vec<u8> = (0..len).map(|i| (i % 251) as u8 ^ (i / 7) as u8).collect();
            round_trip(&data);
        }
    }

    #[test]
    fn repetitive_input_compresses() {
        let data = [b'a'; 10_000];
        assert!(round_trip(&data) < 600);
    }

    #[test]
    fn a_roomy_output_never_grows() {
        let mut c = Compressor::new();
        let input: Vec<u8> = (0..100_000u32).map(|i| (i % 7) as u8).collect();
        let mut out = Vec::with_capacity(max_compressed_len(input.len() as u64) as usize);
        let before = out.as_ptr();
        let n = c.compress(&input, &mut out);
        assert_eq!((out.as_ptr(), out.len()), (before, n));
    }

    #[test]
    fn malformed_streams_are_errors() {
        let mut out = [0u8; 64];
        assert_eq!(decompress(&[], &mut out), Err(SnappyError::BadPreamble));
        // Copy before any output.
        assert_eq!(
            decompress(&[4, 0b01, 1], &mut out),
            Err(SnappyError::BadOffset { at: 1 })
        );
        // Literal longer than the input.
        assert_eq!(
            decompress(&[4, 3 << 2, b'a'], &mut out),
            Err(SnappyError::Truncated { at: 1 })
        );
        // Announces more than the output holds.
        assert!(matches!(
            decompress(&[200, 1], &mut out),
            Err(SnappyError::OutputTooSmall { .. })
        ));
    }
}
