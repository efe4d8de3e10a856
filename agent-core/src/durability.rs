//! What a plan's WAL promises, as numbers `outpostc explain` and `budget`
//! print: what a process crash and a power loss can take, and how long an
//! outage the WAL holds at the plan's worst-case ingest before it drops its
//! oldest segment.
//!
//! The ingest figure is an upper bound the plan proves, not a measurement:
//! every target sends its sample limit on every scrape and replaces all its
//! series each time (so the previous scrape's series all get staleness
//! markers too), and each sample takes the plan's per-sample size
//! (`queue.max_batch_bytes / max_samples_per_send`, the figure the memory
//! bound uses) at snappy's incompressible bound. Real scrapes compress to
//! about a quarter of that, so real outages last longer than the figure.
//!
//! The loss windows follow from where the agent writes and fsyncs (see
//! docs/operations.md, Durability, for the measured numbers).

use crate::pipeline::SYNTHETIC_SERIES;
use crate::plan::{Fsync, Limits, Plan, WalMode, SELF_SCRAPE_LIMITS};
use crate::snappy::max_compressed_len;
use crate::wal_record::HEADER_LEN;

/// Seconds after which Linux writes dirty pages back on its own, by
/// default (`vm.dirty_expire_centisecs` 30 s, plus the flusher's 5 s
/// `dirty_writeback_centisecs`): what `fsync: never` leaves to it.
pub const KERNEL_WRITEBACK_MS: u64 = 35_000;

/// The plan's worst-case ingest: what every target at its limits sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ingest {
    /// Samples per second, rounded up.
    pub samples_per_s: u64,
    /// WAL bytes per second (record headers, snappy's bound), rounded up.
    pub wal_bytes_per_s: u64,
}

impl Ingest {
    /// WAL bytes one sample takes at this ingest, rounded up.
    pub fn bytes_per_sample(&self) -> u64 {
        self.wal_bytes_per_s.div_ceil(self.samples_per_s.max(1))
    }
}

/// What a process crash and a power loss can take from a running agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LossWindow {
    /// Completed scrapes a process crash (kill -9, OOM kill) can take, as
    /// the time they span: 0 in append-before-send mode (only a scrape in
    /// progress is lost); in spill mode, the records held in memory while
    /// the receiver is healthy (at most `spill.after_ms` of scrapes, and
    /// at most `max_held_bytes`).
    pub crash_ms: u64,
    /// What a power loss or kernel crash can take, as the time it spans:
    /// the crash window plus what was written but not yet synced. `None`
    /// with `fsync: never`, where the kernel decides (about
    /// [`KERNEL_WRITEBACK_MS`] by default).
    pub power_ms: Option<u64>,
}

impl Plan {
    /// Every scrape the plan makes, as (its limits, its interval in ms).
    fn scrapes(&self) -> impl Iterator<Item = (Limits, u32)> + '_ {
        let node = self.node.iter().map(|n| (n.limits, n.interval_ms));
        let jobs = self
            .scrape_jobs
            .iter()
            .flat_map(|j| core::iter::repeat_n((j.limits, j.interval_ms), j.targets.len()));
        node.chain(jobs).chain(core::iter::once((
            SELF_SCRAPE_LIMITS,
            self.self_scrape.interval_ms,
        )))
    }

    /// The worst-case ingest (see the module doc for what it assumes).
    pub fn worst_case_ingest(&self) -> Ingest {
        let q = &self.queue;
        let per_send = u128::from(q.max_samples_per_send.max(1));
        let sample_bytes = u128::from(q.max_batch_bytes) / per_send;
        let shards = u128::from(q.max_shards.max(1));
        let record_overhead = HEADER_LEN as u128 + max_compressed_len(0) as u128;
        let (mut samples_per_s, mut bytes_per_s) = (0u128, 0u128);
        for (limits, interval_ms) in self.scrapes() {
            let interval = u128::from(interval_ms.max(1));
            // This scrape's series, the previous one's as staleness markers,
            // and the synthetic series.
            let samples = 2 * u128::from(limits.samples) + SYNTHETIC_SERIES as u128;
            let raw = samples * sample_bytes;
            // A record closes per shard at the end of the scrape, and
            // whenever a batch fills up on the way.
            let full = samples
                .div_ceil(per_send)
                .max(raw.div_ceil(u128::from(q.max_batch_bytes.max(1))));
            let records = shards + full;
            // snappy's bound, n + n/6 + 32, summed over the records.
            let bytes = records * record_overhead + raw + raw / 6;
            samples_per_s += (samples * 1000).div_ceil(interval);
            bytes_per_s += (bytes * 1000).div_ceil(interval);
        }
        Ingest {
            samples_per_s: samples_per_s.min(u128::from(u64::MAX)) as u64,
            wal_bytes_per_s: bytes_per_s.min(u128::from(u64::MAX)) as u64,
        }
    }

    /// How long an outage the WAL holds at the worst-case ingest before it
    /// drops its oldest segment, in ms. A full WAL drops a whole segment,
    /// so what it is sure to hold is `max_bytes` less one segment.
    pub fn outage_covered_ms(&self) -> u64 {
        let held = self
            .wal
            .max_bytes
            .saturating_sub(u64::from(self.wal.segment_bytes));
        let rate = self.worst_case_ingest().wal_bytes_per_s.max(1);
        (u128::from(held) * 1000 / u128::from(rate)).min(u128::from(u64::MAX)) as u64
    }

    /// What a crash and a power loss can take under this plan's WAL mode
    /// and fsync policy.
    pub fn loss_window(&self) -> LossWindow {
        let crash_ms = match self.wal.mode {
            WalMode::Append => 0,
            WalMode::Spill(spill) => u64::from(spill.after_ms),
        };
        let unsynced = match self.wal.fsync {
            Fsync::Always => Some(0),
            Fsync::IntervalMs(ms) => Some(u64::from(ms)),
            Fsync::Never => None,
        };
        LossWindow {
            crash_ms,
            power_ms: unsynced.map(|ms| crash_ms + ms),
        }
    }
}
