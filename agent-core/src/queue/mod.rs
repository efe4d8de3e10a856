//! Sending, retrying and sharding of WAL records, as a state machine.
//!
//! A WAL record holds what one scrape put into one shard (the pipeline
//! closes its per-shard batches at the end of every scrape, see
//! [`crate::pipeline::Batcher`]), so the WAL gets every scrape as soon as it
//! is complete. Batching happens here, at send time: a record enters with
//! [`Sender::handle_enqueued`] once it is in the WAL, and
//! [`Sender::poll_transmit`] hands out a *run*, consecutive records of one
//! shard that go out as one request. The shell joins their payloads behind
//! one snappy preamble ([`crate::request::RequestBuilder`]), so a record is
//! compressed and written once and never rewritten. A run ends with
//! [`Sender::handle_response`] / [`Sender::handle_transport_error`] as acked,
//! retried later, or dropped with a reason. Time is always an argument, so
//! hours of outage run in a test in milliseconds.
//!
//! Rules:
//! - a run holds at most `max_samples_per_send` samples and `max_batch_bytes`
//!   uncompressed bytes; one record always fits (the pipeline closed it
//!   within those bounds);
//! - a run goes out once it is full, once its oldest record has waited
//!   `batch_send_deadline` since it was enqueued (Prometheus's rule: wait
//!   for more only that long), or at once when it is a retry;
//! - per shard, one run in flight and records in `seq` order;
//! - 2xx acks every record of the run; 5xx, 429 and transport errors retry
//!   the shard with exponential backoff from `min_backoff_ms` to
//!   `max_backoff_ms`, or later if `Retry-After` says so; any other status
//!   (400, 409 out of bounds, ...) drops the run at once, so one refused
//!   request never blocks the ones behind it;
//! - age is judged per sample, when a run is formed: a record whose newest
//!   sample is older than `max_sample_age_ms` is dropped whole (`too_old`);
//!   a record that straddles the cutoff goes into the run with
//!   [`Run::cutoff_ms`], the shell leaves out the samples older than it and
//!   reports how many with [`Sender::handle_aged_out`]. A fresh sample is
//!   never dropped, or counted as dropped, because of another one;
//! - a record the WAL lost (deleted when full, unreadable) is given up with
//!   [`Sender::handle_lost`] and counted under that reason.
//!
//! Clocks: `now_ms` is the monotonic clock every deadline uses (backoff,
//! batch deadline, shard updates); `wall_ms` is the wall clock, used only to
//! judge sample age against sample timestamps.
//!
//! The sender tracks a bounded window of records ([`Window`]); when it is
//! full, [`Sender::handle_enqueued`] refuses and the record stays in the WAL
//! until there is room, so the WAL is never loaded into memory whole.
//!
//! Sharding: the pipeline puts a series into shard `LabelSet::hash() %
//! shards()`. When [`Sender::desired_shards`] differs from [`Sender::shards`],
//! the pipeline switches at a scrape boundary and calls
//! [`Sender::poll_reshard`] with the next seq; records from that seq on are
//! held back until every earlier one is resolved, so a series that moves
//! shard stays in order.
//!
//! This file is the state machine; beside it, `window.rs` says how much it
//! tracks and what it keeps per record, `throughput.rs` estimates the shard
//! count, and `counters.rs` holds the counters, the drop reasons and their
//! rendering for `/metrics`.

mod counters;
mod throughput;
mod window;

pub use crate::sizing::RECORDS_PER_SHARD;
pub use crate::wal_record::RecordMeta;
pub use counters::{Counters, DropReason};
pub use throughput::SHARD_UPDATE_INTERVAL_MS;
pub use window::{Window, WindowFull, ENTRY_BYTES};

use crate::plan;
use crate::snappy;
use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use counters::Gauges;
use throughput::Throughput;
use window::{RecordState, TrackedRecord};

/// Records that go out as one request: the caller's record buffer holds
/// them, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Names the run in the answers; the seq of its first record.
    pub id: u64,
    pub shard: u16,
    /// Samples with a timestamp before this are too old: a record whose
    /// `oldest_timestamp_ms` is before it must be filtered sample by sample
    /// (and the count reported with [`Sender::handle_aged_out`]).
    pub cutoff_ms: Option<i64>,
}

/// What an answer did to a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Acked {
        run: u64,
    },
    /// The shard offers its records again from `at_ms` on.
    Retry {
        run: u64,
        at_ms: u64,
    },
    Dropped {
        run: u64,
        reason: DropReason,
    },
    /// No run with this id is waiting for an answer: ignored.
    Unknown {
        run: u64,
    },
}

#[derive(Debug, Clone, Copy)]
struct RunState {
    id: u64,
    /// When the request went out; `None` while the shell builds it.
    sent_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default)]
struct ShardState {
    run: Option<RunState>,
    /// Failed attempts in a row; a shard with any sends its next run at once.
    attempts: u32,
    /// No run before this (backoff after a failure).
    not_before_ms: u64,
}

/// The queue settings the sender works by, taken from the plan.
#[derive(Debug, Clone, Copy)]
struct SendLimits {
    min_shards: u16,
    max_shards: u16,
    min_backoff_ms: u64,
    max_backoff_ms: u64,
    max_sample_age_ms: u64,
    deadline_ms: u64,
    run_samples: u32,
    run_raw_bytes: u64,
    /// Compressed bytes of a run: the snappy bound of `run_raw_bytes`, what
    /// the shell's request buffer holds.
    run_bytes: u64,
}

impl SendLimits {
    fn of(queue: &plan::Queue) -> SendLimits {
        let min_shards = queue.min_shards.max(1);
        SendLimits {
            min_shards,
            max_shards: queue.max_shards.max(min_shards),
            min_backoff_ms: u64::from(queue.min_backoff_ms.max(1)),
            max_backoff_ms: u64::from(queue.max_backoff_ms.max(queue.min_backoff_ms).max(1)),
            max_sample_age_ms: queue.max_sample_age_ms,
            deadline_ms: u64::from(queue.batch_send_deadline_ms),
            run_samples: queue.max_samples_per_send.max(1),
            run_raw_bytes: u64::from(queue.max_batch_bytes),
            run_bytes: snappy::max_compressed_len(u64::from(queue.max_batch_bytes)),
        }
    }
}

pub struct Sender {
    entries: VecDeque<TrackedRecord>,
    window: Window,
    /// Samples of the records in `entries`.
    window_samples: u64,
    limits: SendLimits,
    /// Indexed by shard, `max_shards` long.
    shard_states: Vec<ShardState>,
    shards: u16,
    desired: u16,
    /// Records from this seq on wait until every earlier one is resolved.
    barrier_seq: u64,
    /// One past the highest seq ever enqueued.
    next_seq: Option<u64>,
    /// Per shard, the scan in which it was last seen; a scan number instead
    /// of a bool array spares clearing it on every call.
    shard_seen: Vec<u32>,
    scan: u32,
    throughput: Throughput,
    pub counters: Counters,
}

impl Sender {
    /// A sender with the window the plan's queue calls for ([`Window::of`]).
    pub fn new(queue: &plan::Queue) -> Sender {
        Sender::with_window(queue, Window::of(queue))
    }

    pub fn with_window(queue: &plan::Queue, window: Window) -> Sender {
        let limits = SendLimits::of(queue);
        Sender {
            entries: VecDeque::with_capacity(window.records),
            window,
            window_samples: 0,
            shard_states: vec![ShardState::default(); usize::from(limits.max_shards)],
            shards: limits.min_shards,
            desired: limits.min_shards,
            barrier_seq: 0,
            next_seq: None,
            shard_seen: vec![0; usize::from(limits.max_shards)],
            scan: 0,
            throughput: Throughput::default(),
            counters: Counters::default(),
            limits,
        }
    }

    pub fn window(&self) -> Window {
        self.window
    }

    pub fn has_room(&self) -> bool {
        self.entries.len() < self.window.records && self.window_samples < self.window.samples
    }

    /// Records enqueued and not yet acked or dropped.
    pub fn pending_records(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.state != RecordState::Done)
            .count()
    }

    /// Whether record `seq` is acked or dropped: the WAL frees a record it
    /// holds in memory once it is. False for a record not enqueued yet.
    pub fn is_resolved(&self, seq: u64) -> bool {
        match self.find(seq) {
            Some(i) => self.entries[i].state == RecordState::Done,
            None => self.ack_floor().is_some_and(|floor| seq < floor),
        }
    }

    /// Samples enqueued and not yet acked or dropped.
    pub fn pending_samples(&self) -> u64 {
        self.entries
            .iter()
            .filter(|e| e.state != RecordState::Done)
            .map(|e| u64::from(e.live_samples()))
            .sum()
    }

    /// Shard count the pipeline must use now: `LabelSet::hash() % shards()`.
    pub fn shards(&self) -> u16 {
        self.shards
    }

    /// Shard count the throughput calls for; takes effect through
    /// [`Sender::poll_reshard`].
    pub fn desired_shards(&self) -> u16 {
        self.desired
    }

    /// Takes a record that is now safely in the WAL. Its `seq` must be
    /// higher than every earlier one. A shard beyond `max_shards` (a WAL
    /// written under a plan with more shards) wraps around; per-series
    /// order holds because one shard's records still go in seq order.
    pub fn handle_enqueued(&mut self, meta: RecordMeta, now_ms: u64) -> Result<(), WindowFull> {
        let full = self.entries.len() >= self.window.records
            || self.window_samples + u64::from(meta.samples) > self.window.samples;
        if full && !self.entries.is_empty() {
            return Err(WindowFull { window: self.window });
        }
        debug_assert!(self.next_seq.is_none_or(|n| meta.seq >= n), "seq must increase");
        self.next_seq = Some(meta.seq + 1);
        self.throughput.count_in(u64::from(meta.samples));
        self.counters.highest_timestamp_ms = self.counters.highest_timestamp_ms.max(meta.newest_timestamp_ms);
        self.window_samples += u64::from(meta.samples);
        debug_assert!(
            self.entries.len() < self.entries.capacity(),
            "the window was sized for {} records",
            self.window.records
        );
        self.entries.push_back(TrackedRecord {
            meta: RecordMeta {
                shard: meta.shard % self.limits.max_shards,
                ..meta
            },
            state: RecordState::Pending,
            enqueued_ms: now_ms,
            aged_out: 0,
        });
        Ok(())
    }

    /// Samples with a timestamp before this are too old at `wall_ms`.
    fn cutoff(&self, wall_ms: i64) -> Option<i64> {
        (self.limits.max_sample_age_ms > 0)
            .then(|| wall_ms.saturating_sub(self.limits.max_sample_age_ms.min(i64::MAX as u64) as i64))
    }

    /// Marks entry `i` done, counting its unsent samples under `reason`
    /// (`None`: acknowledged).
    fn resolve(&mut self, i: usize, reason: Option<DropReason>) {
        let e = &mut self.entries[i];
        e.state = RecordState::Done;
        let samples = u64::from(e.live_samples());
        let newest = e.meta.newest_timestamp_ms;
        let c = &mut self.counters;
        match reason {
            None => {
                c.succeeded_samples_total += samples;
                c.highest_sent_timestamp_ms = c.highest_sent_timestamp_ms.max(newest);
                self.throughput.count_out(samples);
            }
            Some(reason) => {
                if matches!(reason, DropReason::Http4xx | DropReason::HttpOther) {
                    c.failed_samples_total += samples;
                }
                c.record_dropped(reason, samples);
            }
        }
    }

    /// Drops resolved records off the front of the window.
    fn pop_done(&mut self) {
        while let Some(e) = self.entries.front().filter(|e| e.state == RecordState::Done) {
            self.window_samples -= u64::from(e.meta.samples);
            self.entries.pop_front();
        }
    }

    /// True while records of the previous shard layout are unresolved:
    /// then nothing from `barrier_seq` on may go.
    fn old_layout_pending(&self) -> bool {
        self.entries
            .iter()
            .find(|e| e.state != RecordState::Done)
            .is_some_and(|e| e.meta.seq < self.barrier_seq)
    }

    /// Starts a walk over the shards' oldest pending records (see
    /// [`Sender::next_shard_head`]).
    fn next_scan(&mut self) -> u32 {
        self.scan = self.scan.wrapping_add(1);
        if self.scan == 0 {
            self.shard_seen.fill(0);
            self.scan = 1;
        }
        self.scan
    }

    /// From entry `from` on, the oldest pending record of a shard that walk
    /// `scan` has not met yet (the shard is met now); `None` at the end of
    /// the window or, while the old layout drains (`blocked`), at the
    /// barrier.
    fn next_shard_head(&mut self, from: usize, blocked: bool, scan: u32) -> Option<usize> {
        for i in from..self.entries.len() {
            let e = &self.entries[i];
            if e.state != RecordState::Pending {
                continue;
            }
            if blocked && e.meta.seq >= self.barrier_seq {
                return None;
            }
            let shard = usize::from(e.meta.shard);
            if self.shard_seen[shard] != scan {
                self.shard_seen[shard] = scan;
                return Some(i);
            }
        }
        None
    }

    /// The next run to put on the wire now, if any shard may send one; its
    /// records are written to `records` (cleared first; give it
    /// [`RECORDS_PER_SHARD`] capacity and it never grows). Records that are
    /// too old as a whole when their shard's turn comes are dropped here.
    /// Build the request, then call [`Sender::handle_built`].
    pub fn poll_transmit(&mut self, now_ms: u64, wall_ms: i64, records: &mut Vec<RecordMeta>) -> Option<Run> {
        self.update_shards(now_ms);
        records.clear();
        let cutoff = self.cutoff(wall_ms);
        let blocked = self.old_layout_pending();
        let scan = self.next_scan();
        let mut run = None;
        let mut next = 0;
        while let Some(i) = self.next_shard_head(next, blocked, scan) {
            next = i + 1;
            let shard = usize::from(self.entries[i].meta.shard);
            let st = self.shard_states[shard];
            if st.run.is_some() || now_ms < st.not_before_ms {
                continue;
            }
            let Some((full, first_enqueued_ms)) = self.collect_run(i, blocked, cutoff, records) else {
                continue;
            };
            let waited = now_ms >= first_enqueued_ms.saturating_add(self.limits.deadline_ms);
            if !(full || st.attempts > 0 || waited) {
                records.clear();
                continue;
            }
            let (id, last) = (records[0].seq, records[records.len() - 1].seq);
            // collect_run took every pending record of the shard up to `last`.
            for e in self.entries.iter_mut().skip(i) {
                if e.state == RecordState::Pending && usize::from(e.meta.shard) == shard && e.meta.seq <= last
                {
                    e.state = RecordState::InRun;
                }
            }
            self.shard_states[shard].run = Some(RunState { id, sent_ms: None });
            run = Some(Run {
                id,
                shard: shard as u16,
                cutoff_ms: cutoff,
            });
            break;
        }
        self.pop_done();
        run
    }

    /// Gathers into `records` the run that shard `entries[from]`'s records
    /// make from `from` on, dropping records wholly older than `cutoff` on
    /// the way. Gives whether the run is full (nothing more would fit) and
    /// when its first record was enqueued; `None` when nothing is left.
    fn collect_run(
        &mut self,
        from: usize,
        blocked: bool,
        cutoff: Option<i64>,
        records: &mut Vec<RecordMeta>,
    ) -> Option<(bool, u64)> {
        let shard = self.entries[from].meta.shard;
        let l = self.limits;
        let (mut samples, mut raw, mut bytes) = (0u32, 0u64, 0u64);
        let mut first_enqueued_ms = None;
        let mut full = false;
        for i in from..self.entries.len() {
            let e = self.entries[i];
            if e.meta.shard != shard || e.state != RecordState::Pending {
                continue;
            }
            if blocked && e.meta.seq >= self.barrier_seq {
                break;
            }
            if cutoff.is_some_and(|c| e.meta.newest_timestamp_ms < c) {
                self.resolve(i, Some(DropReason::TooOld));
                continue;
            }
            let e_raw = match e.meta.raw_bytes {
                0 => l.run_raw_bytes,
                n => u64::from(n),
            };
            let fits = samples + e.live_samples() <= l.run_samples
                && raw + e_raw <= l.run_raw_bytes
                && bytes + u64::from(e.meta.bytes) <= l.run_bytes
                && records.len() < RECORDS_PER_SHARD;
            if !fits && !records.is_empty() {
                full = true;
                break;
            }
            first_enqueued_ms.get_or_insert(e.enqueued_ms);
            records.push(e.meta);
            samples += e.live_samples();
            raw += e_raw;
            bytes += u64::from(e.meta.bytes);
            if samples >= l.run_samples || raw >= l.run_raw_bytes {
                full = true;
                break;
            }
        }
        first_enqueued_ms.map(|at| (full, at))
    }

    fn find(&self, seq: u64) -> Option<usize> {
        self.entries.binary_search_by_key(&seq, |e| e.meta.seq).ok()
    }

    /// The shell left out `older` samples of record `seq` (part of a run
    /// being built) because they are before the run's cutoff. Counted as
    /// `too_old` once, however often the record is filtered again.
    pub fn handle_aged_out(&mut self, seq: u64, older: u32) {
        let Some(i) = self.find(seq) else {
            return;
        };
        let e = &mut self.entries[i];
        let older = older.min(e.meta.samples);
        if e.state == RecordState::InRun && older > e.aged_out {
            self.counters.dropped_too_old += u64::from(older - e.aged_out);
            e.aged_out = older;
        }
    }

    /// Record `seq` is gone from the WAL (deleted because the WAL was full,
    /// or unreadable): it is given up and counted under `reason`. A record
    /// whose request is already on the wire is left to that request's
    /// answer (if it is retried, its loss shows when the retry is built).
    /// Returns whether the record was given up now.
    pub fn handle_lost(&mut self, seq: u64, reason: DropReason) -> bool {
        let Some(i) = self.find(seq) else {
            return false;
        };
        let e = self.entries[i];
        let on_the_wire = self.shard_states[usize::from(e.meta.shard)]
            .run
            .is_some_and(|r| r.sent_ms.is_some());
        let lost = match e.state {
            RecordState::Done => false,
            RecordState::InRun => !on_the_wire,
            RecordState::Pending => true,
        };
        if lost {
            self.resolve(i, Some(reason));
            self.pop_done();
        }
        lost
    }

    /// The request for run `run` is built (`body_bytes` on the wire) and
    /// about to be sent. False when nothing of the run was left to send
    /// (every record lost); then the shard is free again.
    pub fn handle_built(&mut self, run: u64, body_bytes: u64, now_ms: u64) -> bool {
        let Some(shard) = self.shard_of(run, false) else {
            return false;
        };
        let (mut records, mut samples) = (0u64, 0u64);
        for e in self
            .entries
            .iter()
            .filter(|e| e.state == RecordState::InRun && usize::from(e.meta.shard) == shard)
        {
            records += 1;
            samples += u64::from(e.live_samples());
        }
        if samples == 0 {
            self.resolve_run(shard, Some(DropReason::TooOld));
            self.shard_states[shard].run = None;
            self.pop_done();
            return false;
        }
        debug_assert!(records > 0);
        self.shard_states[shard].run = Some(RunState {
            id: run,
            sent_ms: Some(now_ms),
        });
        let c = &mut self.counters;
        c.samples_total += samples;
        c.sent_batches += 1;
        c.sent_bytes_total += body_bytes;
        true
    }

    /// The shard whose current run is `run`, sent or still being built.
    fn shard_of(&self, run: u64, sent: bool) -> Option<usize> {
        self.shard_states
            .iter()
            .position(|s| s.run.is_some_and(|r| r.id == run && r.sent_ms.is_some() == sent))
    }

    /// Resolves every record of shard `shard`'s run.
    fn resolve_run(&mut self, shard: usize, reason: Option<DropReason>) {
        for i in 0..self.entries.len() {
            let e = &self.entries[i];
            if e.state == RecordState::InRun && usize::from(e.meta.shard) == shard {
                self.resolve(i, reason);
            }
        }
    }

    fn backoff_ms(&self, attempts: u32) -> u64 {
        let shift = attempts.saturating_sub(1).min(40);
        self.limits
            .min_backoff_ms
            .saturating_mul(1u64 << shift)
            .min(self.limits.max_backoff_ms)
    }

    /// The receiver's answer to run `run`. `retry_after_ms` is the parsed
    /// `Retry-After` header, if any.
    pub fn handle_response(
        &mut self,
        run: u64,
        status: u16,
        retry_after_ms: Option<u64>,
        now_ms: u64,
    ) -> Outcome {
        let Some(shard) = self.shard_of(run, true) else {
            return Outcome::Unknown { run };
        };
        let sent_ms = self.shard_states[shard]
            .run
            .and_then(|r| r.sent_ms)
            .unwrap_or(now_ms);
        self.throughput.count_busy(now_ms.saturating_sub(sent_ms));
        let reason = match status {
            200..=299 => None,
            429 | 500..=599 => return self.retry(shard, run, retry_after_ms, now_ms),
            400..=499 => Some(DropReason::Http4xx),
            _ => Some(DropReason::HttpOther),
        };
        self.resolve_run(shard, reason);
        self.shard_states[shard] = ShardState::default();
        self.pop_done();
        match reason {
            None => Outcome::Acked { run },
            Some(reason) => Outcome::Dropped { run, reason },
        }
    }

    /// The request for run `run` failed before an answer (connect, TLS,
    /// timeout, reset), or could not be started: retried with backoff.
    pub fn handle_transport_error(&mut self, run: u64, now_ms: u64) -> Outcome {
        let Some(shard) = self.shard_of(run, true).or_else(|| self.shard_of(run, false)) else {
            return Outcome::Unknown { run };
        };
        if let Some(sent_ms) = self.shard_states[shard].run.and_then(|r| r.sent_ms) {
            self.throughput.count_busy(now_ms.saturating_sub(sent_ms));
        }
        self.retry(shard, run, None, now_ms)
    }

    fn retry(&mut self, shard: usize, run: u64, retry_after_ms: Option<u64>, now_ms: u64) -> Outcome {
        let attempts = self.shard_states[shard].attempts + 1;
        let wait = self.backoff_ms(attempts).max(retry_after_ms.unwrap_or(0));
        let at_ms = now_ms.saturating_add(wait);
        self.shard_states[shard] = ShardState {
            run: None,
            attempts,
            not_before_ms: at_ms,
        };
        let mut samples = 0u64;
        for e in self.entries.iter_mut() {
            if e.state == RecordState::InRun && usize::from(e.meta.shard) == shard {
                e.state = RecordState::Pending;
                samples += u64::from(e.live_samples());
            }
        }
        self.counters.retried_samples_total += samples;
        self.throughput.count_retry();
        Outcome::Retry { run, at_ms }
    }

    /// The earliest time [`Sender::poll_transmit`] may have something new
    /// to do, once it has been called for `now`: a backoff ending, a
    /// shard's oldest record reaching the batch deadline, the next shard
    /// update.
    pub fn poll_timeout(&mut self) -> Option<u64> {
        let blocked = self.old_layout_pending();
        let scan = self.next_scan();
        let mut at: Option<u64> = None;
        let mut next = 0;
        while let Some(i) = self.next_shard_head(next, blocked, scan) {
            next = i + 1;
            let e = &self.entries[i];
            let st = &self.shard_states[usize::from(e.meta.shard)];
            if st.run.is_some() {
                continue;
            }
            let t = if st.attempts > 0 {
                st.not_before_ms
            } else {
                e.enqueued_ms.saturating_add(self.limits.deadline_ms)
            };
            at = Some(at.map_or(t, |a| a.min(t)));
        }
        let reshard = self
            .throughput
            .next_update_ms()
            .filter(|_| self.pending_records() > 0);
        match (at, reshard) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Every seq below this is acked or dropped: WAL segments wholly below
    /// it may be deleted. `None` before the first enqueue.
    pub fn ack_floor(&self) -> Option<u64> {
        match self.entries.front() {
            Some(e) => Some(e.meta.seq),
            None => self.next_seq,
        }
    }

    /// Applies a pending shard-count change, if any and if the previous one
    /// has drained. Call it at a scrape boundary (no batch open); `next_seq`
    /// is the seq the next record will get. Returns the new count to use.
    pub fn poll_reshard(&mut self, next_seq: u64) -> Option<u16> {
        if self.desired == self.shards || self.old_layout_pending() {
            return None;
        }
        self.shards = self.desired;
        self.barrier_seq = next_seq;
        Some(self.shards)
    }

    /// Takes a changed queue section (a reload) without forgetting any
    /// record: runs that were not answered go back to pending (their
    /// connections are gone) and are sent again. The pipeline restarts with
    /// `min_shards` shards from `next_seq` on, which waits for every earlier
    /// record as after a reshard; records of shards beyond the new
    /// `max_shards` wrap around.
    pub fn reconfigure(&mut self, queue: &plan::Queue, next_seq: u64) {
        let unanswered: u64 = self
            .entries
            .iter()
            .filter(|e| e.state == RecordState::InRun)
            .map(|e| u64::from(e.live_samples()))
            .sum();
        self.counters.retried_samples_total += unanswered;
        self.limits = SendLimits::of(queue);
        let max_shards = self.limits.max_shards;
        for e in self.entries.iter_mut() {
            if e.state == RecordState::InRun {
                e.state = RecordState::Pending;
            }
            e.meta.shard %= max_shards;
        }
        self.window = Window::of(queue);
        self.entries
            .reserve(self.window.records.saturating_sub(self.entries.len()));
        self.shard_states = vec![ShardState::default(); usize::from(max_shards)];
        self.shard_seen = vec![0; usize::from(max_shards)];
        self.scan = 0;
        self.shards = self.limits.min_shards;
        self.desired = self.shards;
        self.barrier_seq = next_seq;
    }

    /// Re-evaluates the desired shard count every [`SHARD_UPDATE_INTERVAL_MS`]
    /// (see [`throughput`]).
    fn update_shards(&mut self, now_ms: u64) {
        let Some(estimate) = self.throughput.poll_estimate(now_ms) else {
            return;
        };
        let l = self.limits;
        if let Some(desired) =
            estimate.shards(self.pending_samples(), self.shards, l.min_shards, l.max_shards)
        {
            self.desired = desired;
        }
    }

    /// Renders the counters in the Prometheus text format with Prometheus's
    /// names and `remote_name`/`url` labels. The legacy names the seed's
    /// queries use (`succeeded_samples_total`, `failed_samples_total`,
    /// `retried_samples_total`) are written next to the current ones.
    pub fn render_metrics(&self, out: &mut impl fmt::Write, remote_name: &str, url: &str) -> fmt::Result {
        let gauges = Gauges {
            shards: self.shards,
            desired: self.desired,
            min_shards: self.limits.min_shards,
            max_shards: self.limits.max_shards,
            pending_samples: self.pending_samples(),
        };
        self.counters.render(&gauges, out, remote_name, url)
    }
}
