//! The body of one remote-write request, built at send time from the WAL
//! records of a [`Run`](crate::queue::Run).
//!
//! Every record's payload is a snappy stream of a `WriteRequest` whose
//! series each carry one sample, so the request is the records' protobuf
//! concatenated, and its body is their snappy elements behind one new
//! preamble ([`Joiner`]). A record is copied as it is, never decompressed,
//! unless it straddles the run's age cutoff: then it is decompressed into
//! a scratch buffer of `max_batch_bytes`, its too-old samples are left out
//! ([`remote_write::retain_samples_since`]) and what is left is compressed
//! into the body. That happens only to records that aged while waiting
//! (an outage), so the steady state only copies bytes.

use crate::remote_write::{self, WireError};
use crate::snappy::{self, Compressor, Joiner, SnappyError};
use crate::wal_record::RecordMeta;
use alloc::vec::Vec;
use core::fmt;

/// A record's payload that cannot go into a request; the record is given up
/// as unreadable (`wal_corrupt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordError {
    Snappy(SnappyError),
    Wire(WireError),
    /// The payload decompresses to more than `max_batch_bytes`.
    TooLarge {
        raw_bytes: usize,
        limit: usize,
    },
    /// The payload holds another number of samples than its header says.
    SampleCount {
        header: u32,
        payload: u32,
    },
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Snappy(e) => e.fmt(f),
            RecordError::Wire(e) => e.fmt(f),
            RecordError::TooLarge { raw_bytes, limit } => write!(
                f,
                "record holds {raw_bytes} bytes uncompressed, more than queue.max_batch_bytes ({limit})"
            ),
            RecordError::SampleCount { header, payload } => {
                write!(
                    f,
                    "record header says {header} samples, its payload holds {payload}"
                )
            }
        }
    }
}

/// Builds request bodies into a caller-owned buffer; owns the scratch
/// buffer and compressor that filtering needs, sized once.
pub struct RequestBuilder {
    raw: Vec<u8>,
    compressor: Compressor,
    joiner: Option<Joiner>,
}

impl RequestBuilder {
    /// Scratch for one record of at most `max_batch_bytes` uncompressed.
    pub fn new(max_batch_bytes: usize) -> RequestBuilder {
        RequestBuilder {
            raw: Vec::with_capacity(max_batch_bytes),
            compressor: Compressor::new(),
            joiner: None,
        }
    }

    /// Capacity the body buffer needs for a run within `max_batch_bytes`.
    pub fn body_capacity(max_batch_bytes: usize) -> usize {
        snappy::PREAMBLE_ROOM + snappy::max_compressed_len(max_batch_bytes as u64) as usize
    }

    /// Starts a body in `out` (cleared first).
    pub fn begin(&mut self, out: &mut Vec<u8>) {
        out.clear();
        self.joiner = Some(Joiner::begin(out));
    }

    /// Appends record `meta`'s payload to the body. Samples before
    /// `cutoff_ms` are left out when the record has any; returns how many
    /// were. On error nothing of the record is in the body.
    pub fn push(
        &mut self,
        meta: &RecordMeta,
        payload: &[u8],
        cutoff_ms: Option<i64>,
        out: &mut Vec<u8>,
    ) -> Result<u32, RecordError> {
        let joiner = self.joiner.as_mut().expect("begin() before push()");
        let Some(cutoff) = cutoff_ms.filter(|&c| meta.oldest_timestamp_ms < c) else {
            joiner.push_stream(payload, out).map_err(RecordError::Snappy)?;
            return Ok(0);
        };
        let (raw_bytes, _) = snappy::decompressed_len(payload).map_err(RecordError::Snappy)?;
        let limit = self.raw.capacity();
        if raw_bytes > limit {
            return Err(RecordError::TooLarge { raw_bytes, limit });
        }
        self.raw.resize(raw_bytes, 0);
        snappy::decompress(payload, &mut self.raw).map_err(RecordError::Snappy)?;
        let retained =
            remote_write::retain_samples_since(&mut self.raw, cutoff).map_err(RecordError::Wire)?;
        let counted = retained.kept + retained.dropped;
        if counted != meta.samples {
            return Err(RecordError::SampleCount {
                header: meta.samples,
                payload: counted,
            });
        }
        joiner
            .push_raw(&mut self.compressor, &self.raw, out)
            .map_err(RecordError::Snappy)?;
        Ok(retained.dropped)
    }

    /// Uncompressed bytes in the body so far.
    pub fn raw_len(&self) -> u64 {
        self.joiner.as_ref().map_or(0, Joiner::total)
    }

    /// Ends the body; it is `out[returned..]`.
    pub fn finish(&mut self, out: &mut [u8]) -> usize {
        self.joiner.take().expect("begin() before finish()").finish(out)
    }
}
