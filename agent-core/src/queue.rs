//! Sending, retrying and sharding of WAL batches, as a state machine.
//!
//! A batch enters with [`Sender::handle_enqueued`] once it is in the WAL,
//! leaves through [`Sender::poll_transmit`] when its shard may send it, and
//! ends with [`Sender::handle_response`] / [`Sender::handle_transport_error`]
//! as acked, retried later, or dropped with a reason. Time is always an
//! argument, so hours of outage run in a test in milliseconds.
//!
//! Rules:
//! - per shard, batches go out in `seq` order, at most one in flight;
//! - 2xx acks; 5xx, 429 and transport errors retry with exponential backoff
//!   from `min_backoff_ms` to `max_backoff_ms`, or later if `Retry-After` says
//!   so; any other status (400, 409 out of bounds, ...) drops the batch at
//!   once, so one refused batch never blocks the ones behind it;
//! - a batch whose oldest sample is older than `max_sample_age_ms` when its
//!   turn comes is dropped (`too_old`): after a long outage the receiver
//!   would refuse it anyway, and fresh data must not wait behind it.
//!
//! The sender tracks a bounded window of batches ([`Sender::window`]); when
//! it is full, [`Sender::handle_enqueued`] refuses and the batch stays in the
//! WAL until there is room, so the WAL is never loaded into memory whole.
//!
//! Sharding: the pipeline puts a series into shard `LabelSet::hash() %
//! shards()`. When [`Sender::desired_shards`] differs from [`Sender::shards`],
//! the pipeline closes its open batches and calls [`Sender::poll_reshard`]
//! with the next seq; batches from that seq on are held back until every
//! earlier batch is resolved, so a series that moves shard stays in order.

use crate::plan;
use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

/// What the WAL knows about a batch, and all the sender needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    /// WAL record sequence; strictly increasing across enqueues.
    pub seq: u64,
    pub shard: u16,
    pub samples: u32,
    pub oldest_timestamp_ms: i64,
    pub newest_timestamp_ms: i64,
    /// Compressed body bytes (what goes on the wire).
    pub bytes: u32,
}

/// Why a batch was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Its oldest sample passed `queue.max_sample_age_ms`.
    TooOld,
    /// The receiver answered with a 4xx other than 429.
    Http4xx,
    /// The receiver answered with a status that is neither success, retryable nor 4xx.
    HttpOther,
    /// The WAL reached `wal.max_bytes` and its oldest data went (counted by the WAL side).
    WalFull,
    /// The WAL tail did not decode after a crash (counted by the WAL side).
    WalCorrupt,
}

impl DropReason {
    pub const ALL: [DropReason; 5] = [
        DropReason::TooOld,
        DropReason::Http4xx,
        DropReason::HttpOther,
        DropReason::WalFull,
        DropReason::WalCorrupt,
    ];

    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::TooOld => "too_old",
            DropReason::Http4xx => "http_4xx",
            DropReason::HttpOther => "http_other",
            DropReason::WalFull => "wal_full",
            DropReason::WalCorrupt => "wal_corrupt",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Acked {
        seq: u64,
    },
    /// The batch will be offered again by `poll_transmit` at `at_ms`.
    Retry {
        seq: u64,
        at_ms: u64,
    },
    Dropped {
        seq: u64,
        reason: DropReason,
    },
    /// The seq is not in flight (already resolved, or never sent): ignored.
    Unknown {
        seq: u64,
    },
}

/// The sender's window is full; keep the batch in the WAL and offer it again
/// once [`Sender::has_room`] is true.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowFull {
    pub limit: usize,
}

impl fmt::Display for WindowFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sender window holds {} batches already", self.limit)
    }
}

/// Self-metrics, named after Prometheus's `prometheus_remote_storage_*`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Samples put on the wire, once per attempt (Prometheus counts retries here too).
    pub samples_total: u64,
    /// Samples the receiver acknowledged.
    pub succeeded_samples_total: u64,
    /// Samples given up after a non-retryable answer.
    pub failed_samples_total: u64,
    /// Samples whose send is retried.
    pub retried_samples_total: u64,
    pub dropped_too_old: u64,
    pub dropped_http_4xx: u64,
    pub dropped_http_other: u64,
    pub dropped_wal_full: u64,
    pub dropped_wal_corrupt: u64,
    pub sent_batches: u64,
    pub sent_bytes_total: u64,
    /// Newest sample timestamp handed to the sender.
    pub highest_timestamp_ms: i64,
    /// Newest sample timestamp the receiver acknowledged.
    pub highest_sent_timestamp_ms: i64,
}

impl Counters {
    pub fn dropped(&self, reason: DropReason) -> u64 {
        match reason {
            DropReason::TooOld => self.dropped_too_old,
            DropReason::Http4xx => self.dropped_http_4xx,
            DropReason::HttpOther => self.dropped_http_other,
            DropReason::WalFull => self.dropped_wal_full,
            DropReason::WalCorrupt => self.dropped_wal_corrupt,
        }
    }

    /// Counts samples dropped for `reason`; the WAL side calls this for
    /// `WalFull` and `WalCorrupt`.
    pub fn record_dropped(&mut self, reason: DropReason, samples: u64) {
        let slot = match reason {
            DropReason::TooOld => &mut self.dropped_too_old,
            DropReason::Http4xx => &mut self.dropped_http_4xx,
            DropReason::HttpOther => &mut self.dropped_http_other,
            DropReason::WalFull => &mut self.dropped_wal_full,
            DropReason::WalCorrupt => &mut self.dropped_wal_corrupt,
        };
        *slot += samples;
    }
}

/// Writes `v` as a Prometheus label value (backslash, quote and newline escaped).
fn write_label_value(out: &mut impl fmt::Write, v: &str) -> fmt::Result {
    for c in v.chars() {
        match c {
            '\\' => out.write_str("\\\\")?,
            '"' => out.write_str("\\\"")?,
            '\n' => out.write_str("\\n")?,
            c => out.write_char(c)?,
        }
    }
    Ok(())
}

/// Milliseconds as Prometheus's float seconds, without going through floats
/// (exact, and no float formatting code pulled into the agent).
fn write_seconds(out: &mut impl fmt::Write, ms: i64) -> fmt::Result {
    let sign = if ms < 0 { "-" } else { "" };
    let abs = ms.unsigned_abs();
    write!(out, "{sign}{}.{:03}", abs / 1000, abs % 1000)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ready,
    InFlight { since_ms: u64 },
    Backoff { until_ms: u64 },
    Done,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    meta: BatchMeta,
    state: State,
    attempts: u32,
}

/// How often the shard count is re-evaluated, as in Prometheus.
pub const SHARD_UPDATE_INTERVAL_MS: u64 = 10_000;
/// Changes smaller than this fraction of the current count are ignored.
const SHARD_TOLERANCE: f64 = 0.3;
/// Weight of the newest interval in the rate averages.
const EWMA_WEIGHT: f64 = 0.2;

/// Send-rate bookkeeping for the shard count.
#[derive(Debug, Clone, Copy, Default)]
struct Throughput {
    next_update_ms: u64,
    samples_in: u64,
    samples_out: u64,
    busy_ms: u64,
    retried: bool,
    rate_in: f64,
    rate_out: f64,
    busy_rate: f64,
    initialised: bool,
}

pub struct Sender {
    entries: VecDeque<Entry>,
    window: usize,
    min_shards: u16,
    max_shards: u16,
    shards: u16,
    desired: u16,
    /// Batches from this seq on wait until every earlier one is resolved.
    barrier_seq: u64,
    min_backoff_ms: u64,
    max_backoff_ms: u64,
    max_sample_age_ms: u64,
    /// One past the highest seq ever enqueued.
    next_seq: Option<u64>,
    /// Per shard, the `poll_transmit` pass in which it was last seen; a pass
    /// number instead of a bool array spares clearing it on every call.
    shard_seen: Vec<u32>,
    pass: u32,
    throughput: Throughput,
    pub counters: Counters,
}

impl Sender {
    /// A sender whose window holds every batch the plan's queue bounds allow
    /// in memory: per shard, the batch in flight plus `capacity` samples.
    pub fn new(queue: &plan::Queue) -> Sender {
        let per_shard = (queue.capacity as usize).div_ceil(queue.max_samples_per_send.max(1) as usize) + 1;
        Sender::with_window(queue, per_shard * usize::from(queue.max_shards.max(1)))
    }

    pub fn with_window(queue: &plan::Queue, window: usize) -> Sender {
        let min_shards = queue.min_shards.max(1);
        let max_shards = queue.max_shards.max(min_shards);
        Sender {
            entries: VecDeque::with_capacity(window),
            window,
            min_shards,
            max_shards,
            shards: min_shards,
            desired: min_shards,
            barrier_seq: 0,
            min_backoff_ms: u64::from(queue.min_backoff_ms.max(1)),
            max_backoff_ms: u64::from(queue.max_backoff_ms.max(queue.min_backoff_ms).max(1)),
            max_sample_age_ms: queue.max_sample_age_ms,
            next_seq: None,
            shard_seen: vec![0; usize::from(max_shards)],
            pass: 0,
            throughput: Throughput::default(),
            counters: Counters::default(),
        }
    }

    /// Most batches the sender tracks at once.
    pub fn window(&self) -> usize {
        self.window
    }

    pub fn has_room(&self) -> bool {
        self.entries.len() < self.window
    }

    /// Batches enqueued and not yet acked or dropped.
    pub fn pending_batches(&self) -> usize {
        self.entries.iter().filter(|e| e.state != State::Done).count()
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

    /// Takes a batch that is now safely in the WAL. Its `seq` must be higher
    /// than every earlier one, and its shard below [`Sender::shards`] as it
    /// was when the batch was built.
    pub fn handle_enqueued(&mut self, meta: BatchMeta) -> Result<(), WindowFull> {
        if !self.has_room() {
            return Err(WindowFull { limit: self.window });
        }
        debug_assert!(self.next_seq.is_none_or(|n| meta.seq >= n), "seq must increase");
        debug_assert!(
            usize::from(meta.shard) < self.shard_seen.len(),
            "shard out of range"
        );
        self.next_seq = Some(meta.seq + 1);
        self.throughput.samples_in += u64::from(meta.samples);
        self.counters.highest_timestamp_ms = self.counters.highest_timestamp_ms.max(meta.newest_timestamp_ms);
        self.entries.push_back(Entry {
            meta,
            state: State::Ready,
            attempts: 0,
        });
        Ok(())
    }

    fn too_old(&self, meta: &BatchMeta, now_ms: u64) -> bool {
        self.max_sample_age_ms > 0
            && (now_ms as i128 - meta.oldest_timestamp_ms as i128) > self.max_sample_age_ms as i128
    }

    fn resolve(&mut self, i: usize, reason: Option<DropReason>) -> Outcome {
        let e = &mut self.entries[i];
        e.state = State::Done;
        let meta = e.meta;
        let samples = u64::from(meta.samples);
        let outcome = match reason {
            None => {
                self.counters.succeeded_samples_total += samples;
                self.counters.highest_sent_timestamp_ms = self
                    .counters
                    .highest_sent_timestamp_ms
                    .max(meta.newest_timestamp_ms);
                self.throughput.samples_out += samples;
                Outcome::Acked { seq: meta.seq }
            }
            Some(reason) => {
                if reason != DropReason::TooOld {
                    self.counters.failed_samples_total += samples;
                }
                self.counters.record_dropped(reason, samples);
                Outcome::Dropped {
                    seq: meta.seq,
                    reason,
                }
            }
        };
        while self.entries.front().is_some_and(|e| e.state == State::Done) {
            self.entries.pop_front();
        }
        outcome
    }

    /// The next batch to put on the wire now, if any shard may send one.
    /// Batches that are too old when their turn comes are dropped here.
    pub fn poll_transmit(&mut self, now_ms: u64) -> Option<BatchMeta> {
        self.update_shards(now_ms);
        self.pass = self.pass.wrapping_add(1);
        if self.pass == 0 {
            self.shard_seen.fill(0);
            self.pass = 1;
        }
        let mut i = 0;
        while i < self.entries.len() {
            let e = self.entries[i];
            if e.state == State::Done {
                i += 1;
                continue;
            }
            if e.meta.seq >= self.barrier_seq && self.entries[0].meta.seq < self.barrier_seq {
                // Everything from here on waits for the old shard layout to drain.
                return None;
            }
            let shard = usize::from(e.meta.shard).min(self.shard_seen.len() - 1);
            if self.shard_seen[shard] == self.pass {
                i += 1;
                continue;
            }
            self.shard_seen[shard] = self.pass;
            let due = match e.state {
                State::Ready => true,
                State::Backoff { until_ms } => now_ms >= until_ms,
                _ => false,
            };
            if !due {
                i += 1;
                continue;
            }
            if self.too_old(&e.meta, now_ms) {
                let before = self.entries.len();
                self.resolve(i, Some(DropReason::TooOld));
                // `resolve` may pop resolved entries off the front; the shard
                // gets another look at its next batch in this same pass.
                self.shard_seen[shard] = 0;
                i = (i + self.entries.len()).saturating_sub(before);
                continue;
            }
            let entry = &mut self.entries[i];
            entry.state = State::InFlight { since_ms: now_ms };
            entry.attempts += 1;
            self.counters.samples_total += u64::from(e.meta.samples);
            self.counters.sent_batches += 1;
            self.counters.sent_bytes_total += u64::from(e.meta.bytes);
            return Some(e.meta);
        }
        None
    }

    fn find_in_flight(&self, seq: u64) -> Option<(usize, u64)> {
        let i = self.entries.binary_search_by_key(&seq, |e| e.meta.seq).ok()?;
        match self.entries[i].state {
            State::InFlight { since_ms } => Some((i, since_ms)),
            _ => None,
        }
    }

    fn backoff_ms(&self, attempts: u32) -> u64 {
        let shift = attempts.saturating_sub(1).min(63);
        self.min_backoff_ms
            .saturating_mul(1u64 << shift.min(40))
            .min(self.max_backoff_ms)
    }

    /// The receiver's answer to batch `seq`. `retry_after_ms` is the parsed
    /// `Retry-After` header, if any.
    pub fn handle_response(
        &mut self,
        seq: u64,
        status: u16,
        retry_after_ms: Option<u64>,
        now_ms: u64,
    ) -> Outcome {
        let Some((i, since_ms)) = self.find_in_flight(seq) else {
            return Outcome::Unknown { seq };
        };
        self.throughput.busy_ms += now_ms.saturating_sub(since_ms);
        match status {
            200..=299 => self.resolve(i, None),
            429 | 500..=599 => self.retry(i, retry_after_ms, now_ms),
            400..=499 => self.resolve(i, Some(DropReason::Http4xx)),
            _ => self.resolve(i, Some(DropReason::HttpOther)),
        }
    }

    /// The request for batch `seq` failed before an answer (connect, TLS,
    /// timeout, reset): retried with backoff.
    pub fn handle_transport_error(&mut self, seq: u64, now_ms: u64) -> Outcome {
        let Some((i, since_ms)) = self.find_in_flight(seq) else {
            return Outcome::Unknown { seq };
        };
        self.throughput.busy_ms += now_ms.saturating_sub(since_ms);
        self.retry(i, None, now_ms)
    }

    fn retry(&mut self, i: usize, retry_after_ms: Option<u64>, now_ms: u64) -> Outcome {
        let wait = self
            .backoff_ms(self.entries[i].attempts)
            .max(retry_after_ms.unwrap_or(0));
        let at_ms = now_ms.saturating_add(wait);
        let e = &mut self.entries[i];
        e.state = State::Backoff { until_ms: at_ms };
        self.counters.retried_samples_total += u64::from(e.meta.samples);
        self.throughput.retried = true;
        Outcome::Retry {
            seq: e.meta.seq,
            at_ms,
        }
    }

    /// The earliest time `poll_transmit` may have something new to do.
    pub fn poll_timeout(&self) -> Option<u64> {
        let backoff = self
            .entries
            .iter()
            .filter_map(|e| match e.state {
                State::Backoff { until_ms } => Some(until_ms),
                _ => None,
            })
            .min();
        let reshard = (self.pending_batches() > 0 && self.throughput.initialised)
            .then_some(self.throughput.next_update_ms);
        match (backoff, reshard) {
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
    /// has drained. Call it after closing every open batch; `next_seq` is
    /// the seq the next batch will get. Returns the new count to use.
    pub fn poll_reshard(&mut self, next_seq: u64) -> Option<u16> {
        if self.desired == self.shards {
            return None;
        }
        let draining = self
            .entries
            .front()
            .is_some_and(|e| e.meta.seq < self.barrier_seq);
        if draining {
            return None;
        }
        self.shards = self.desired;
        self.barrier_seq = next_seq;
        Some(self.shards)
    }

    /// Re-evaluates the desired shard count every [`SHARD_UPDATE_INTERVAL_MS`],
    /// from Prometheus's rule: shards = time per sample x (incoming rate +
    /// a tenth of the backlog per interval).
    fn update_shards(&mut self, now_ms: u64) {
        let t = &mut self.throughput;
        if !t.initialised {
            t.initialised = true;
            t.next_update_ms = now_ms + SHARD_UPDATE_INTERVAL_MS;
            return;
        }
        if now_ms < t.next_update_ms {
            return;
        }
        let interval = SHARD_UPDATE_INTERVAL_MS as f64;
        let blend = |avg: f64, new: f64, first: bool| {
            if first {
                new
            } else {
                avg + EWMA_WEIGHT * (new - avg)
            }
        };
        let first = t.rate_out == 0.0 && t.busy_rate == 0.0;
        t.rate_in = blend(t.rate_in, t.samples_in as f64 / interval, first);
        t.rate_out = blend(t.rate_out, t.samples_out as f64 / interval, first);
        t.busy_rate = blend(t.busy_rate, t.busy_ms as f64 / interval, first);
        let retried = t.retried;
        t.samples_in = 0;
        t.samples_out = 0;
        t.busy_ms = 0;
        t.retried = false;
        t.next_update_ms = now_ms + SHARD_UPDATE_INTERVAL_MS;
        if t.rate_out <= 0.0 {
            return;
        }
        // Busy shard-milliseconds per millisecond over samples per millisecond.
        let ms_per_sample = t.busy_rate / t.rate_out;
        let backlog: u64 = self
            .entries
            .iter()
            .filter(|e| e.state != State::Done)
            .map(|e| u64::from(e.meta.samples))
            .sum();
        let wanted = ms_per_sample * (t.rate_in + 0.1 * backlog as f64 / interval);
        let current = f64::from(self.shards);
        if (wanted - current).abs() <= current * SHARD_TOLERANCE {
            return;
        }
        // A failing receiver is not helped by more connections.
        if retried && wanted > current {
            return;
        }
        let ceil = wanted as u64 + u64::from(wanted.fract_part() > 0.0);
        self.desired = ceil.clamp(u64::from(self.min_shards), u64::from(self.max_shards)) as u16;
    }

    /// Renders the counters in the Prometheus text format with Prometheus's
    /// names and `remote_name`/`url` labels. The legacy names the seed's
    /// queries use (`succeeded_samples_total`, `failed_samples_total`,
    /// `retried_samples_total`) are written next to the current ones.
    pub fn render_metrics(&self, out: &mut impl fmt::Write, remote_name: &str, url: &str) -> fmt::Result {
        let c = &self.counters;
        let labels = |out: &mut dyn fmt::Write| -> fmt::Result {
            out.write_str("remote_name=\"")?;
            write_label_value(&mut WriteDyn(out), remote_name)?;
            out.write_str("\",url=\"")?;
            write_label_value(&mut WriteDyn(out), url)?;
            out.write_str("\"")
        };
        let counters: [(&str, &str, u64); 9] = [
            (
                "samples_total",
                "Total number of samples sent to remote storage.",
                c.samples_total,
            ),
            (
                "samples_failed_total",
                "Total number of samples which failed on send to remote storage, non-recoverable errors.",
                c.failed_samples_total,
            ),
            (
                "samples_retried_total",
                "Total number of samples which failed on send to remote storage but were retried.",
                c.retried_samples_total,
            ),
            (
                "succeeded_samples_total",
                "Total number of samples successfully sent to remote storage (legacy name).",
                c.succeeded_samples_total,
            ),
            (
                "failed_samples_total",
                "Total number of samples which failed on send to remote storage (legacy name).",
                c.failed_samples_total,
            ),
            (
                "retried_samples_total",
                "Total number of samples which were retried (legacy name).",
                c.retried_samples_total,
            ),
            (
                "bytes_total",
                "The total number of bytes of data sent by the queue after compression.",
                c.sent_bytes_total,
            ),
            (
                "sent_batches_total",
                "Total number of batches put on the wire.",
                c.sent_batches,
            ),
            (
                "shards",
                "The number of shards used for parallel sending.",
                u64::from(self.shards),
            ),
        ];
        for (i, (name, help, value)) in counters.iter().enumerate() {
            let kind = if i == counters.len() - 1 {
                "gauge"
            } else {
                "counter"
            };
            writeln!(out, "# HELP prometheus_remote_storage_{name} {help}")?;
            writeln!(out, "# TYPE prometheus_remote_storage_{name} {kind}")?;
            write!(out, "prometheus_remote_storage_{name}{{")?;
            labels(out)?;
            writeln!(out, "}} {value}")?;
        }
        let pending: u64 = self
            .entries
            .iter()
            .filter(|e| e.state != State::Done)
            .map(|e| u64::from(e.meta.samples))
            .sum();
        let gauges: [(&str, &str, u64); 4] = [
            (
                "samples_pending",
                "The number of samples pending in the queues shards to be sent to the remote storage.",
                pending,
            ),
            (
                "shards_desired",
                "The number of shards that the queues shard calculation wants to run.",
                u64::from(self.desired),
            ),
            (
                "shards_min",
                "The minimum number of shards.",
                u64::from(self.min_shards),
            ),
            (
                "shards_max",
                "The maximum number of shards.",
                u64::from(self.max_shards),
            ),
        ];
        for (name, help, value) in gauges {
            writeln!(out, "# HELP prometheus_remote_storage_{name} {help}")?;
            writeln!(out, "# TYPE prometheus_remote_storage_{name} gauge")?;
            write!(out, "prometheus_remote_storage_{name}{{")?;
            labels(out)?;
            writeln!(out, "}} {value}")?;
        }
        let name = "prometheus_remote_storage_samples_dropped_total";
        writeln!(
            out,
            "# HELP {name} Total number of samples dropped instead of sent, by reason."
        )?;
        writeln!(out, "# TYPE {name} counter")?;
        for reason in DropReason::ALL {
            write!(out, "{name}{{reason=\"{}\",", reason.as_str())?;
            labels(out)?;
            writeln!(out, "}} {}", c.dropped(reason))?;
        }
        let name = "prometheus_remote_storage_queue_highest_sent_timestamp_seconds";
        writeln!(
            out,
            "# HELP {name} Timestamp from a WAL sample, the highest timestamp successfully sent by this queue."
        )?;
        writeln!(out, "# TYPE {name} gauge")?;
        write!(out, "{name}{{")?;
        labels(out)?;
        out.write_str("} ")?;
        write_seconds(out, c.highest_sent_timestamp_ms.max(0))?;
        out.write_str("\n")?;
        // Process-wide in Prometheus, so without queue labels.
        let name = "prometheus_remote_storage_highest_timestamp_in_seconds";
        writeln!(
            out,
            "# HELP {name} Highest timestamp that has come into the remote storage via the Appender interface."
        )?;
        writeln!(out, "# TYPE {name} gauge")?;
        write!(out, "{name} ")?;
        write_seconds(out, c.highest_timestamp_ms.max(0))?;
        out.write_str("\n")
    }
}

/// Lets a `&mut dyn Write` be passed where `impl Write` is expected.
struct WriteDyn<'a>(&'a mut dyn fmt::Write);

impl fmt::Write for WriteDyn<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.write_str(s)
    }
}

trait FractPart {
    fn fract_part(self) -> f64;
}

impl FractPart for f64 {
    /// `f64::fract` lives in std; this is enough for the non-negative shard
    /// estimate.
    fn fract_part(self) -> f64 {
        self - (self as u64) as f64
    }
}
