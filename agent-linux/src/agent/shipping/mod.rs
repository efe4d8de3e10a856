//! The durable half of the agent: the WAL, the sender state machine and the
//! receiver connections. It outlives plan reloads; a reload that changes
//! the receiver or queue reconfigures the sender and rebuilds the
//! connections over the same WAL ([`rebuild`]).
//!
//! - [`wal_feed`]: closed batches into the WAL, WAL records to the sender,
//!   acknowledgements back to the WAL.
//! - [`send`]: runs into request bodies, on their shard's connection, and
//!   the answers back to the sender.
//! - [`receiver`]: where and how to send, from the plan.

mod rebuild;
mod receiver;
mod send;
mod wal_feed;

use std::path::PathBuf;
use std::time::Duration;

use outpost_core::plan::Plan;
use outpost_core::queue::{DropReason, RecordMeta, Sender, Window, RECORDS_PER_SHARD};
use outpost_core::request::RequestBuilder;
use outpost_core::sizing::WAL_LOOKAHEAD_RECORDS;
use outpost_core::snappy;

use crate::agent::start_error::StartError;
use crate::cli::RunArgs;
use crate::clock::ReceiverOffset;
use crate::log;
use crate::wal::{DiskWal, WalConfig, WalLock};
use rebuild::PendingRebuild;
pub(super) use receiver::ReceiverSide;
use send::ShardConn;
pub(super) use wal_feed::ACK_FLOOR_PERSIST_MS;

/// Sends in flight get at most this long to be answered, at shutdown and
/// before a reload's rebuild.
pub(super) const IN_FLIGHT_GRACE_MS: u64 = 4_000;

pub(super) struct Shipping {
    pub wal: DiskWal,
    pub sender: Sender,
    shards: Vec<Option<ShardConn>>,
    /// Where and how batches go; replaced whole by a rebuild.
    pub side: ReceiverSide,
    /// Joins a run's WAL records into `body`; one body at a time, since a
    /// connection copies the request when it starts it.
    request: RequestBuilder,
    body: Vec<u8>,
    /// The records of the run being built.
    run_records: Vec<RecordMeta>,
    /// Next WAL seq to hand to the sender.
    fed_upto: u64,
    /// A reload's new receiver side and queue, waiting for sends in flight
    /// to be answered.
    pending_rebuild: Option<Box<PendingRebuild>>,
    batch_buf: Vec<u8>,
    dropped: Vec<RecordMeta>,
    /// The loop's clock when it last looked: appends are stamped with it.
    pub now_ms: u64,
    /// The wall clock read with `now_ms`, for the receiver's `Date`.
    pub wall_ms: i64,
    pub receiver_offset: ReceiverOffset,
    last_persist_ms: u64,
    consecutive_failures: u64,
}

impl Shipping {
    /// Locks and opens the WAL (scanning what it holds) and sets up the
    /// sender for the plan's receiver and queue.
    pub(super) fn open(plan: &Plan, args: &RunArgs) -> Result<Shipping, StartError> {
        let side = ReceiverSide::build(plan).map_err(StartError::Plan)?;
        let max_batch_bytes = plan.queue.max_batch_bytes as usize;
        let dir = args
            .wal_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(plan.str(plan.wal.dir)));
        let lock = WalLock::acquire(&dir, Duration::from_millis(args.wal_lock_wait_ms))
            .map_err(StartError::WalLocked)?;
        let window = Window::of(&plan.queue);
        let lookahead = WAL_LOOKAHEAD_RECORDS as u64 * u64::from(plan.queue.max_samples_per_send);
        let wal = DiskWal::open(
            WalConfig {
                dir,
                segment_bytes: u64::from(plan.wal.segment_bytes),
                max_bytes: plan.wal.max_bytes,
                fsync: plan.wal.fsync,
                mode: plan.wal.mode,
                max_payload_bytes: snappy::max_compressed_len(max_batch_bytes as u64) as usize,
                // The sender's window plus a look-ahead: what may sit in memory.
                max_window_records: window.records + WAL_LOOKAHEAD_RECORDS,
                max_window_samples: window.samples + lookahead,
            },
            lock,
        )
        .map_err(StartError::Wal)?;
        let sender = Sender::with_window(&plan.queue, window);
        let shards = (0..plan.queue.max_shards.max(1)).map(|_| None).collect();
        let fed_upto = wal.ack_floor();
        Ok(Shipping {
            fed_upto,
            pending_rebuild: None,
            wal,
            sender,
            shards,
            side,
            request: RequestBuilder::new(max_batch_bytes),
            body: Vec::with_capacity(RequestBuilder::body_capacity(max_batch_bytes)),
            run_records: Vec::with_capacity(RECORDS_PER_SHARD),
            batch_buf: Vec::with_capacity(snappy::max_compressed_len(max_batch_bytes as u64) as usize),
            dropped: Vec::new(),
            now_ms: 0,
            wall_ms: 0,
            receiver_offset: ReceiverOffset::default(),
            last_persist_ms: 0,
            consecutive_failures: 0,
        })
    }

    /// Samples a scrape refused as older than `queue.max_sample_age`.
    pub(super) fn count_too_old(&mut self, samples: u64) {
        self.sender.counters.record_dropped(DropReason::TooOld, samples);
    }

    fn log_send_failure(&mut self, err: &dyn std::fmt::Display) {
        self.consecutive_failures += 1;
        // An outage fails every retry; one line per ten keeps the log readable.
        if self.consecutive_failures % 10 == 1 {
            log::warn(
                "remote write failed",
                &[
                    ("url", &self.side.url),
                    ("consecutive_failures", &self.consecutive_failures),
                    ("err", err),
                ],
            );
        }
    }

    /// The earliest moment the sending side needs the loop.
    pub(super) fn next_deadline(&mut self) -> Option<u64> {
        let conns = self
            .shards
            .iter()
            .flatten()
            .filter_map(|s| s.conn.deadline_ms())
            .min();
        let rebuild = self.pending_rebuild.as_ref().map(|p| p.until_ms);
        // While a rebuild waits nothing is sent, so the sender's deadlines
        // (which may be due) wait for it too.
        let sender = match rebuild {
            Some(_) => None,
            None => self.sender.poll_timeout(),
        };
        [
            conns,
            sender,
            self.wal.next_sync_ms(),
            self.wal.next_spill_ms(),
            rebuild,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Works the receiver connections whose deadline passed.
    pub(super) fn handle_timeouts(&mut self, registry: &mio::Registry, now: u64) {
        for shard in 0..self.shards.len() {
            let due = self.shards[shard]
                .as_ref()
                .and_then(|s| s.conn.deadline_ms())
                .is_some_and(|d| now >= d);
            if due {
                self.handle_shard_event(registry, shard, now);
            }
        }
    }

    /// Sends whose answer has not come yet.
    pub(super) fn in_flight(&self) -> usize {
        self.shards
            .iter()
            .flatten()
            .filter(|s| s.in_flight.is_some())
            .count()
    }
}
