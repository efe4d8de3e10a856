//! The WAL record codec. The Linux agent owns the files and segments; this
//! module only turns records into bytes and back, and says exactly where a
//! damaged tail starts so the caller can truncate there.
//!
//! A record is a 44-byte header followed by its payload, all little endian:
//!
//! | offset | size | field                                                 |
//! |--------|------|-------------------------------------------------------|
//! | 0      | 1    | magic `0xA7`                                          |
//! | 1      | 1    | kind: 1 batch, 2 ack floor                            |
//! | 2      | 4    | payload length                                        |
//! | 6      | 4    | CRC-32 (IEEE) of bytes 10..44 and the payload         |
//! | 10     | 8    | seq                                                   |
//! | 18     | 2    | shard                                                 |
//! | 20     | 4    | samples                                               |
//! | 24     | 8    | oldest sample timestamp, ms                           |
//! | 32     | 8    | newest sample timestamp, ms                           |
//! | 40     | 4    | reserved, zero                                        |
//!
//! A batch record holds what one scrape put into one shard (more than one
//! when that does not fit one request). Its payload is the
//! snappy-compressed `WriteRequest`, a complete block-format stream; the
//! sender joins the payloads of consecutive records into one request body
//! without recompressing them (`snappy::Joiner`), so a record is written
//! once and sent as it is. The uncompressed length the sender bounds
//! requests with is the payload's snappy preamble ([`raw_len`]), so it
//! needs no header field: WALs written before records were joined read the
//! same. An ack record has no payload; its seq is the sender's ack floor at
//! the time, so a restart does not resend batches the receiver already has.
//!
//! The checksum covers the length too (through the payload it delimits and
//! the fields after it), so a torn write and a flipped bit both surface as an
//! error at the record's offset, never as a bogus record.

use crate::snappy;
use alloc::vec::Vec;
use core::fmt;

/// What the WAL knows about a record, and all the sender needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMeta {
    /// WAL record sequence; strictly increasing across enqueues.
    pub seq: u64,
    pub shard: u16,
    pub samples: u32,
    pub oldest_timestamp_ms: i64,
    pub newest_timestamp_ms: i64,
    /// Compressed payload bytes.
    pub bytes: u32,
    /// Uncompressed `WriteRequest` bytes; 0 when unknown, and then the
    /// record is sent on its own.
    pub raw_bytes: u32,
}

pub const MAGIC: u8 = 0xA7;
pub const HEADER_LEN: usize = 44;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// A compressed batch ready to send.
    Batch = 1,
    /// Every seq below `meta.seq` is acked or dropped.
    AckFloor = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub kind: RecordKind,
    /// `bytes` is the payload length, `raw_bytes` its [`raw_len`].
    pub meta: RecordMeta,
    pub payload: &'a [u8],
    /// Where the record starts in the slice the reader was given.
    pub offset: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalError {
    /// The data ends inside the record starting at `offset`: an interrupted
    /// write. Truncate at `offset`.
    Torn { offset: usize },
    /// The record at `offset` is damaged. Truncate at `offset`; what
    /// follows cannot be trusted to be aligned on a record.
    Corrupt { offset: usize, reason: &'static str },
}

impl WalError {
    /// Where the caller truncates the segment.
    pub fn offset(&self) -> usize {
        match *self {
            WalError::Torn { offset } | WalError::Corrupt { offset, .. } => offset,
        }
    }
}

impl fmt::Display for WalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalError::Torn { offset } => write!(f, "WAL record at byte {offset} is cut short (torn write)"),
            WalError::Corrupt { offset, reason } => {
                write!(f, "WAL record at byte {offset} is corrupt: {reason}")
            }
        }
    }
}

/// The header for `payload`; write it and then the payload (e.g. with one
/// `writev`) to append a record without copying the payload.
pub fn encode_header(kind: RecordKind, meta: &RecordMeta, payload: &[u8]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0] = MAGIC;
    h[1] = kind as u8;
    h[2..6].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    h[10..18].copy_from_slice(&meta.seq.to_le_bytes());
    h[18..20].copy_from_slice(&meta.shard.to_le_bytes());
    h[20..24].copy_from_slice(&meta.samples.to_le_bytes());
    h[24..32].copy_from_slice(&meta.oldest_timestamp_ms.to_le_bytes());
    h[32..40].copy_from_slice(&meta.newest_timestamp_ms.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&h[10..]);
    crc.update(payload);
    h[6..10].copy_from_slice(&crc.finalize().to_le_bytes());
    h
}

/// The uncompressed length a batch payload's snappy preamble announces; 0
/// when the payload does not start with one.
pub fn raw_len(payload: &[u8]) -> u32 {
    snappy::decompressed_len(payload).map_or(0, |(len, _)| len as u32)
}

/// Appends a batch record to `out`. `meta.bytes` and `meta.raw_bytes` are
/// ignored; they follow from the payload.
pub fn encode_record(meta: &RecordMeta, payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&encode_header(RecordKind::Batch, meta, payload));
    out.extend_from_slice(payload);
}

/// Appends an ack-floor record: every seq below `floor` is resolved.
pub fn encode_ack_floor(floor: u64, out: &mut Vec<u8>) {
    let meta = RecordMeta {
        seq: floor,
        shard: 0,
        samples: 0,
        oldest_timestamp_ms: 0,
        newest_timestamp_ms: 0,
        bytes: 0,
        raw_bytes: 0,
    };
    out.extend_from_slice(&encode_header(RecordKind::AckFloor, &meta, &[]));
}

/// Bytes a batch record with `payload_len` bytes of payload takes.
pub const fn record_len(payload_len: usize) -> usize {
    HEADER_LEN + payload_len
}

/// Reads records from a segment held in memory (or a window of one). Stops
/// at the first error, which it reports once; [`RecordReader::offset`] is
/// then where the good data ends.
pub struct RecordReader<'a> {
    buf: &'a [u8],
    offset: usize,
    max_payload: usize,
    failed: bool,
}

impl<'a> RecordReader<'a> {
    /// `max_payload` is the largest payload a valid record can have
    /// (`snappy::max_compressed_len(queue.max_batch_bytes)`); a longer length field
    /// is corruption, not a reason to wait for more bytes.
    pub fn new(buf: &'a [u8], max_payload: usize) -> Self {
        RecordReader {
            buf,
            offset: 0,
            max_payload,
            failed: false,
        }
    }

    /// End of the last record that decoded.
    pub fn offset(&self) -> usize {
        self.offset
    }

    fn read(&self) -> Result<Record<'a>, WalError> {
        let offset = self.offset;
        let rest = &self.buf[offset..];
        let corrupt = |reason| WalError::Corrupt { offset, reason };
        if rest[0] != MAGIC {
            return Err(corrupt("bad magic byte"));
        }
        if rest.len() < HEADER_LEN {
            return Err(WalError::Torn { offset });
        }
        let h = &rest[..HEADER_LEN];
        let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let kind = match h[1] {
            1 => RecordKind::Batch,
            2 => RecordKind::AckFloor,
            _ => return Err(corrupt("unknown record kind")),
        };
        let len = u32_at(2) as usize;
        if len > self.max_payload {
            return Err(corrupt("payload length over the batch limit"));
        }
        let Some(payload) = rest.get(HEADER_LEN..HEADER_LEN + len) else {
            return Err(WalError::Torn { offset });
        };
        let mut crc = crc32fast::Hasher::new();
        crc.update(&h[10..]);
        crc.update(payload);
        if crc.finalize() != u32_at(6) {
            return Err(corrupt("checksum mismatch"));
        }
        if u32_at(40) != 0 {
            return Err(corrupt("reserved bytes are not zero"));
        }
        Ok(Record {
            kind,
            meta: RecordMeta {
                seq: u64_at(10),
                shard: u16::from_le_bytes([h[18], h[19]]),
                samples: u32_at(20),
                oldest_timestamp_ms: u64_at(24) as i64,
                newest_timestamp_ms: u64_at(32) as i64,
                bytes: len as u32,
                raw_bytes: match kind {
                    RecordKind::Batch => raw_len(payload),
                    RecordKind::AckFloor => 0,
                },
            },
            payload,
            offset,
        })
    }
}

impl<'a> Iterator for RecordReader<'a> {
    type Item = Result<Record<'a>, WalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.offset >= self.buf.len() {
            return None;
        }
        match self.read() {
            Ok(r) => {
                self.offset += record_len(r.payload.len());
                Some(Ok(r))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
