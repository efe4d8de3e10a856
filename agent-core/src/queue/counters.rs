//! What the sender counts, why samples are dropped, and how both are
//! rendered for `/metrics`, in Prometheus's `prometheus_remote_storage_*`
//! names.

use crate::expfmt::write_label_value;
use core::fmt;

/// Why samples were given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The samples themselves were older than `queue.max_sample_age_ms`.
    TooOld,
    /// The receiver answered with a 4xx other than 429.
    Http4xx,
    /// The receiver answered with a status that is neither success, retryable nor 4xx.
    HttpOther,
    /// The WAL reached `wal.max_bytes` and its oldest data went.
    WalFull,
    /// A WAL record could not be written or read back.
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

/// Self-metrics, named after Prometheus's `prometheus_remote_storage_*`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Samples put on the wire, once per attempt (Prometheus counts retries here too).
    pub samples_total: u64,
    /// Samples the receiver acknowledged.
    pub succeeded_samples_total: u64,
    /// Samples the receiver refused for good (non-retryable answers).
    pub failed_samples_total: u64,
    /// Samples whose send is retried.
    pub retried_samples_total: u64,
    pub dropped_too_old: u64,
    pub dropped_http_4xx: u64,
    pub dropped_http_other: u64,
    pub dropped_wal_full: u64,
    pub dropped_wal_corrupt: u64,
    /// Requests put on the wire.
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
    /// records the sender never held.
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

    /// Renders the counters in the Prometheus text format with Prometheus's
    /// names and `remote_name`/`url` labels. The legacy names the seed's
    /// queries use (`succeeded_samples_total`, `failed_samples_total`,
    /// `retried_samples_total`) are written next to the current ones.
    pub(super) fn render(
        &self,
        gauges: &Gauges,
        out: &mut impl fmt::Write,
        remote_name: &str,
        url: &str,
    ) -> fmt::Result {
        let c = self;
        let labels = |out: &mut dyn fmt::Write| -> fmt::Result {
            out.write_str("remote_name=\"")?;
            write_label_value(out, remote_name)?;
            out.write_str("\",url=\"")?;
            write_label_value(out, url)?;
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
                u64::from(gauges.shards),
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
        let pending = gauges.pending_samples;
        let gauges: [(&str, &str, u64); 4] = [
            (
                "samples_pending",
                "The number of samples pending in the queues shards to be sent to the remote storage.",
                pending,
            ),
            (
                "shards_desired",
                "The number of shards that the queues shard calculation wants to run.",
                u64::from(gauges.desired),
            ),
            (
                "shards_min",
                "The minimum number of shards.",
                u64::from(gauges.min_shards),
            ),
            (
                "shards_max",
                "The maximum number of shards.",
                u64::from(gauges.max_shards),
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

/// The sender's gauges, rendered next to its counters.
#[derive(Debug, Clone, Copy)]
pub(super) struct Gauges {
    pub shards: u16,
    pub desired: u16,
    pub min_shards: u16,
    pub max_shards: u16,
    pub pending_samples: u64,
}

/// Milliseconds as Prometheus's float seconds, without going through floats
/// (exact, and no float formatting code pulled into the agent).
fn write_seconds(out: &mut impl fmt::Write, ms: i64) -> fmt::Result {
    let sign = if ms < 0 { "-" } else { "" };
    let abs = ms.unsigned_abs();
    write!(out, "{sign}{}.{:03}", abs / 1000, abs % 1000)
}
