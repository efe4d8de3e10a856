//! The sender's window: how many records it tracks at once and what it
//! keeps of each.

use crate::plan;
use crate::sizing::{MIN_SAMPLE_BYTES, RECORDS_PER_SHARD, RECORD_INDEX_BYTES};
use crate::wal_record::RecordMeta;
use core::fmt;

/// How much the sender tracks at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub records: usize,
    pub samples: u64,
}

impl Window {
    /// The window a plan's queue calls for: per shard, `capacity` samples
    /// ahead of the `max_samples_per_send` being sent, and
    /// [`RECORDS_PER_SHARD`] records, but never more records than the
    /// compiler's memory model pays for: it budgets at least
    /// [`MIN_SAMPLE_BYTES`] per sample of that allowance, and a record
    /// costs [`RECORD_INDEX_BYTES`].
    pub fn of(queue: &plan::Queue) -> Window {
        let shards = u64::from(queue.max_shards.max(1));
        let samples = shards * (u64::from(queue.capacity) + u64::from(queue.max_samples_per_send.max(1)));
        let paid_for = samples * MIN_SAMPLE_BYTES / RECORD_INDEX_BYTES;
        let records = (RECORDS_PER_SHARD as u64 * shards).min(paid_for).max(1) as usize;
        Window { records, samples }
    }
}

/// The sender's window is full; keep the record in the WAL and offer it
/// again once [`Sender::has_room`](super::Sender::has_room) is true.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowFull {
    pub window: Window,
}

impl fmt::Display for WindowFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sender window holds {} records or {} samples already",
            self.window.records, self.window.samples
        )
    }
}

/// Where a tracked record is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RecordState {
    /// Waiting for its shard's next run.
    Pending,
    /// Part of its shard's current run.
    InRun,
    /// Acked or dropped; leaves the window once every earlier record has.
    Done,
}

/// A record in the window, as the sender tracks it.
#[derive(Debug, Clone, Copy)]
pub(super) struct TrackedRecord {
    pub(super) meta: RecordMeta,
    pub(super) state: RecordState,
    /// When it was enqueued, for `batch_send_deadline`.
    pub(super) enqueued_ms: u64,
    /// Samples already left out as too old (and counted).
    pub(super) aged_out: u32,
}

impl TrackedRecord {
    /// Samples still to send.
    pub(super) fn live_samples(&self) -> u32 {
        self.meta.samples - self.aged_out
    }
}

/// Bytes of the sender's bookkeeping per record, for the memory model.
pub const ENTRY_BYTES: usize = core::mem::size_of::<TrackedRecord>();

// The memory model pays for a record's entry here and its location in the
// WAL together; the agent's WAL tests check the sum.
const _: () = assert!(ENTRY_BYTES as u64 <= RECORD_INDEX_BYTES);
