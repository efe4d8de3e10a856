//! Remote write 1.0: the `prometheus.WriteRequest` protobuf, encoded by hand
//! into a buffer sized once from the plan, then snappy-compressed.
//!
//! Wire shape (field numbers of Prometheus's `remote.proto`/`types.proto`):
//! `WriteRequest { repeated TimeSeries timeseries = 1; }`,
//! `TimeSeries { repeated Label labels = 1; repeated Sample samples = 2; }`,
//! `Label { string name = 1; string value = 2; }`,
//! `Sample { double value = 1; int64 timestamp = 2; }`.
//!
//! Every pushed sample becomes its own `TimeSeries` entry, which the spec
//! allows; it keeps a push O(labels) with no lookup table. The sample's value
//! and timestamp fields are always written, even when zero, so `-0.0` and
//! NaN payloads (the staleness marker) reach the receiver bit for bit.

use crate::labels::LabelSet;
use crate::plan;
use crate::snappy::{self, Compressor};
use crate::varint::{self, VarintError};
use alloc::vec::Vec;
use core::fmt;

/// Prometheus's staleness marker, a NaN with this exact payload.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Headers every remote-write request carries; the tenant header, when the
/// plan has one, comes from `plan::Receiver::tenant_header`.
pub const HEADERS: [(&str, &str); 3] = [
    ("Content-Encoding", "snappy"),
    ("Content-Type", "application/x-protobuf"),
    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
];

const WIRE_VARINT: u8 = 0;
const WIRE_I64: u8 = 1;
const WIRE_LEN: u8 = 2;

const fn tag(field: u8, wire: u8) -> u8 {
    (field << 3) | wire
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// Taking this sample would cross `queue.max_samples_per_send` or
    /// `queue.max_batch_bytes`: close the batch and push again.
    BatchFull,
    /// One sample's series is larger than `queue.max_batch_bytes` on its own;
    /// it can never be sent and is dropped by the caller.
    SeriesTooLarge { need: usize, limit: usize },
    /// Label names are not sorted and unique (remote write 1.0 requires it).
    LabelsNotSorted { at: usize },
    /// The series has no `__name__` label (remote write 1.0 requires one).
    MissingMetricName,
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::BatchFull => write!(f, "remote-write batch is full"),
            PushError::SeriesTooLarge { need, limit } => write!(
                f,
                "one series encodes to {need} bytes, more than queue.max_batch_bytes ({limit})"
            ),
            PushError::LabelsNotSorted { at } => {
                write!(f, "label {at} is not sorted by name or repeats a name")
            }
            PushError::MissingMetricName => write!(f, "series has no __name__ label"),
        }
    }
}

/// Bytes of a length-delimited field holding `len` bytes.
fn field_len(len: usize) -> usize {
    1 + varint::len(len as u64) + len
}

fn label_len(name: &str, value: &str) -> usize {
    // An empty value is left out, as proto3 encoders do; it decodes as "".
    let value = if value.is_empty() {
        0
    } else {
        field_len(value.len())
    };
    field_len(name.len()) + value
}

fn sample_len(timestamp_ms: i64) -> usize {
    1 + 8 + 1 + varint::len(timestamp_ms as u64)
}

/// Checks the remote-write 1.0 rules on a series: names sorted and unique,
/// `__name__` present.
pub fn check_labels(labels: &LabelSet) -> Result<(), PushError> {
    let mut has_name = false;
    let mut prev: Option<&str> = None;
    for (i, (name, _)) in labels.iter().enumerate() {
        if prev.is_some_and(|p| p >= name) {
            return Err(PushError::LabelsNotSorted { at: i });
        }
        has_name |= name == "__name__";
        prev = Some(name);
    }
    if has_name {
        Ok(())
    } else {
        Err(PushError::MissingMetricName)
    }
}

/// Bytes [`put_labels`] writes for `labels`.
pub fn encoded_labels_len(labels: &LabelSet) -> usize {
    labels.iter().map(|(n, v)| label_field_len(n, v)).sum()
}

/// Bytes [`put_label`] writes for one label.
pub fn label_field_len(name: &str, value: &str) -> usize {
    field_len(label_len(name, value))
}

/// Writes the `TimeSeries.labels` fields of a series (sorted, with
/// `__name__`: see [`check_labels`]).
pub fn put_labels(labels: &LabelSet, buf: &mut Vec<u8>) {
    for (name, value) in labels.iter() {
        put_label(buf, name, value);
    }
}

/// Writes one `TimeSeries.labels` field.
pub fn put_label(buf: &mut Vec<u8>, name: &str, value: &str) {
    buf.push(tag(1, WIRE_LEN));
    varint::put(buf, label_len(name, value) as u64);
    buf.push(tag(1, WIRE_LEN));
    varint::put(buf, name.len() as u64);
    buf.extend_from_slice(name.as_bytes());
    if !value.is_empty() {
        buf.push(tag(2, WIRE_LEN));
        varint::put(buf, value.len() as u64);
        buf.extend_from_slice(value.as_bytes());
    }
}

/// Accumulates samples into one encoded `WriteRequest`, within the plan's
/// bounds, without ever growing its buffer.
pub struct BatchBuilder {
    buf: Vec<u8>,
    max_bytes: usize,
    max_samples: u32,
    samples: u32,
    oldest_timestamp_ms: i64,
    newest_timestamp_ms: i64,
    compressor: Compressor,
}

impl BatchBuilder {
    /// Allocates the batch buffer (`queue.max_batch_bytes`) and the snappy
    /// table, once.
    pub fn new(queue: &plan::Queue) -> Self {
        BatchBuilder::with_bounds(queue.max_samples_per_send, queue.max_batch_bytes as usize)
    }

    pub fn with_bounds(max_samples: u32, max_bytes: usize) -> Self {
        BatchBuilder {
            buf: Vec::with_capacity(max_bytes),
            max_bytes,
            max_samples,
            samples: 0,
            oldest_timestamp_ms: i64::MAX,
            newest_timestamp_ms: i64::MIN,
            compressor: Compressor::new(),
        }
    }

    /// Capacity `out` needs for [`BatchBuilder::finish_into`] on a full batch.
    pub fn max_compressed_len(&self) -> usize {
        snappy::max_compressed_len(self.max_bytes as u64) as usize
    }

    /// Appends one sample of the series `labels` (sorted by name, with
    /// `__name__`). On error nothing is written.
    pub fn push(&mut self, labels: &LabelSet, value: f64, timestamp_ms: i64) -> Result<(), PushError> {
        debug_assert_eq!(
            check_labels(labels),
            Ok(()),
            "labels must be sorted with __name__"
        );
        check_labels(labels)?;
        self.push_with(encoded_labels_len(labels), value, timestamp_ms, |buf| {
            put_labels(labels, buf)
        })
    }

    /// Appends one sample whose `Label` fields `write_labels` writes,
    /// exactly `labels_len` bytes of them (see [`label_field_len`] and
    /// [`put_label`]). The caller vouches for the rules of [`check_labels`].
    pub fn push_with(
        &mut self,
        labels_len: usize,
        value: f64,
        timestamp_ms: i64,
        write_labels: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), PushError> {
        let series_len = labels_len + field_len(sample_len(timestamp_ms));
        let need = field_len(series_len);
        if need > self.max_bytes {
            return Err(PushError::SeriesTooLarge {
                need,
                limit: self.max_bytes,
            });
        }
        if self.samples >= self.max_samples || self.buf.len() + need > self.max_bytes {
            return Err(PushError::BatchFull);
        }
        let buf = &mut self.buf;
        let start = buf.len();
        buf.push(tag(1, WIRE_LEN));
        varint::put(buf, series_len as u64);
        write_labels(buf);
        buf.push(tag(2, WIRE_LEN));
        varint::put(buf, sample_len(timestamp_ms) as u64);
        buf.push(tag(1, WIRE_I64));
        buf.extend_from_slice(&value.to_bits().to_le_bytes());
        buf.push(tag(2, WIRE_VARINT));
        // int64 is a plain varint of the two's complement: negative times take 10 bytes.
        varint::put(buf, timestamp_ms as u64);
        // The bound above held only if the labels took what was announced;
        // then the buffer, sized to `max_bytes`, never grew.
        debug_assert_eq!(
            buf.len() - start,
            need,
            "write_labels wrote other than labels_len bytes"
        );

        self.samples += 1;
        self.oldest_timestamp_ms = self.oldest_timestamp_ms.min(timestamp_ms);
        self.newest_timestamp_ms = self.newest_timestamp_ms.max(timestamp_ms);
        Ok(())
    }

    pub fn samples(&self) -> u32 {
        self.samples
    }

    pub fn is_empty(&self) -> bool {
        self.samples == 0
    }

    /// Bytes of the uncompressed `WriteRequest` so far.
    pub fn encoded_len(&self) -> usize {
        self.buf.len()
    }

    /// The uncompressed `WriteRequest` so far (for tests and debugging).
    pub fn encoded(&self) -> &[u8] {
        &self.buf
    }

    pub fn oldest_timestamp_ms(&self) -> Option<i64> {
        (self.samples > 0).then_some(self.oldest_timestamp_ms)
    }

    pub fn newest_timestamp_ms(&self) -> Option<i64> {
        (self.samples > 0).then_some(self.newest_timestamp_ms)
    }

    /// Snappy-compresses the `WriteRequest` into `out` (replacing its
    /// contents), clears the builder, and returns the compressed length.
    /// `out` should have [`BatchBuilder::max_compressed_len`] capacity
    /// (`snappy::max_compressed_len(max_batch_bytes)`); with less, it grows once.
    pub fn finish_into(&mut self, out: &mut Vec<u8>) -> usize {
        let n = self.compressor.compress(&self.buf, out);
        self.clear();
        n
    }

    /// Empties the batch, keeping its storage.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.samples = 0;
        self.oldest_timestamp_ms = i64::MAX;
        self.newest_timestamp_ms = i64::MIN;
    }
}

/// An encoded `WriteRequest` that does not parse: what is wrong and at
/// which byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireError {
    pub at: usize,
    pub what: &'static str,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WriteRequest byte {}: {}", self.at, self.what)
    }
}

/// Samples [`retain_samples_since`] kept and left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retained {
    pub kept: u32,
    pub dropped: u32,
}

/// One protobuf field: where it starts and ends, and its payload (the
/// content of a length-delimited field, the bytes of a scalar one).
struct Field {
    number: u64,
    wire: u8,
    start: usize,
    payload: (usize, usize),
    end: usize,
}

fn read_varint(buf: &[u8], at: &mut usize) -> Result<u64, WireError> {
    let start = *at;
    varint::read(buf, at, varint::MAX_LEN_U64).map_err(|e| WireError {
        at: start,
        what: match e {
            VarintError::Truncated => "varint runs past the end",
            VarintError::TooLong => "varint longer than 10 bytes",
        },
    })
}

fn read_field(buf: &[u8], start: usize) -> Result<Field, WireError> {
    let mut at = start;
    let key = read_varint(buf, &mut at)?;
    let wire = (key & 7) as u8;
    let len = match wire {
        WIRE_VARINT => {
            let from = at;
            read_varint(buf, &mut at)?;
            at - from
        }
        WIRE_I64 => 8,
        WIRE_LEN => read_varint(buf, &mut at)? as usize,
        5 => 4,
        _ => {
            return Err(WireError {
                at: start,
                what: "unsupported wire type",
            })
        }
    };
    let payload_start = if wire == WIRE_VARINT { at - len } else { at };
    let end = payload_start
        .checked_add(len)
        .filter(|&e| e <= buf.len())
        .ok_or(WireError {
            at: start,
            what: "field runs past the end",
        })?;
    Ok(Field {
        number: key >> 3,
        wire,
        start,
        payload: (payload_start, end),
        end,
    })
}

/// The timestamp of an encoded `Sample` (0 when absent, as proto3 reads it).
fn sample_timestamp(sample: &[u8], base: usize) -> Result<i64, WireError> {
    let mut at = 0;
    let mut ts = 0i64;
    while at < sample.len() {
        let f = read_field(sample, at).map_err(|e| WireError { at: base + e.at, ..e })?;
        if f.number == 2 && f.wire == WIRE_VARINT {
            let mut p = f.payload.0;
            ts = read_varint(sample, &mut p)? as i64;
        }
        at = f.end;
    }
    Ok(ts)
}

/// Whether a `TimeSeries` field is a sample older than `cutoff_ms`.
fn is_old_sample(series: &[u8], f: &Field, base: usize, cutoff_ms: i64) -> Result<bool, WireError> {
    if f.number != 2 {
        return Ok(false);
    }
    if f.wire != WIRE_LEN {
        return Err(WireError {
            at: base + f.start,
            what: "TimeSeries.samples is not length-delimited",
        });
    }
    let (from, to) = f.payload;
    Ok(sample_timestamp(&series[from..to], base + from)? < cutoff_ms)
}

/// Leaves out, in place, every sample of the encoded `WriteRequest` in
/// `req` whose timestamp is before `cutoff_ms`, and every series that has
/// no sample left; everything else is kept byte for byte, in order. Used at
/// send time on a WAL record that straddles `queue.max_sample_age`, so that
/// only the samples that are themselves too old are dropped.
///
/// Works in one buffer: a kept field only ever moves towards the start, and
/// a series' new length prefix is never longer than its old one. On error
/// `req` is left partly rewritten; the caller gives the record up.
pub fn retain_samples_since(req: &mut Vec<u8>, cutoff_ms: i64) -> Result<Retained, WireError> {
    let mut counts = Retained::default();
    let (mut r, mut w) = (0usize, 0usize);
    while r < req.len() {
        let f = read_field(req, r)?;
        r = f.end;
        if f.number != 1 || f.wire != WIRE_LEN {
            req.copy_within(f.start..f.end, w);
            w += f.end - f.start;
            continue;
        }
        // A TimeSeries: first find out how much of it stays.
        let (base, series_end) = f.payload;
        let (mut kept, mut dropped, mut kept_len) = (0u32, 0u32, 0usize);
        let mut at = base;
        while at < series_end {
            let g = read_field(&req[..series_end], at)?;
            if is_old_sample(&req[..series_end], &g, 0, cutoff_ms)? {
                dropped += 1;
            } else {
                kept += u32::from(g.number == 2);
                kept_len += g.end - g.start;
            }
            at = g.end;
        }
        counts.kept += kept;
        counts.dropped += dropped;
        if dropped == 0 {
            req.copy_within(f.start..f.end, w);
            w += f.end - f.start;
            continue;
        }
        if kept == 0 {
            continue;
        }
        let mut prefix = [0u8; 1 + varint::MAX_LEN_U64];
        prefix[0] = tag(1, WIRE_LEN);
        let n = 1 + varint::write(kept_len as u64, &mut prefix[1..]);
        req[w..w + n].copy_from_slice(&prefix[..n]);
        w += n;
        let mut at = base;
        while at < series_end {
            let g = read_field(&req[..series_end], at)?;
            if !is_old_sample(&req[..series_end], &g, 0, cutoff_ms)? {
                req.copy_within(g.start..g.end, w);
                w += g.end - g.start;
            }
            at = g.end;
        }
    }
    req.truncate(w);
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(pairs: &[(&str, &str)]) -> LabelSet {
        let mut l = LabelSet::with_capacity(8, 256);
        for (n, v) in pairs {
            l.push(n, v).unwrap();
        }
        l
    }

    #[test]
    fn encoded_len_matches_prediction() {
        let mut b = BatchBuilder::with_bounds(10, 4096);
        let l = series(&[("__name__", "up"), ("job", "node")]);
        b.push(&l, 1.0, 1_700_000_000_000).unwrap();
        b.push(&l, 0.0, -5).unwrap();
        let one = 2 + (2 + 14) + (2 + 11) + (2 + 1 + 8 + 1 + 6);
        assert_eq!(b.encoded_len(), one + (one - 6 + 10));
        assert_eq!(b.oldest_timestamp_ms(), Some(-5));
    }

    #[test]
    fn unsorted_or_nameless_series_are_refused() {
        let b = BatchBuilder::with_bounds(10, 4096);
        assert_eq!(
            check_labels(&series(&[("job", "a")])),
            Err(PushError::MissingMetricName)
        );
        assert_eq!(
            check_labels(&series(&[("__name__", "up"), ("job", "a"), ("instance", "x")])),
            Err(PushError::LabelsNotSorted { at: 2 })
        );
        assert_eq!(
            check_labels(&series(&[("__name__", "up"), ("a", "1"), ("a", "2")])),
            Err(PushError::LabelsNotSorted { at: 2 })
        );
        assert_eq!(b.samples(), 0);
    }
}
