//! The agent's status pages, answered as a Prometheus agent would: the same
//! paths, status codes and JSON shapes, so the seed's checks work unchanged.
//! `/metrics` is written with the node collectors' exposition writer.
//!
//! The agent owns the server and the state; this module renders.

use std::fmt::Write as _;
use std::path::Path;

use super::shipping::Shipping;
use crate::clock;
use crate::collectors::expo::{Expo, Kind};
use crate::collectors::ProcessMetrics;
use crate::log::{json_string, write_rfc3339};
use crate::net::{Responder, Response};
use crate::wal::{DiskWal, SpillReason};

/// Per-target scrape failures by reason, for `/metrics`.
#[derive(Debug, Clone, Default)]
pub(super) struct TargetStats {
    pub job: String,
    pub instance: String,
    pub scrapes: u64,
    /// `(reason, count)`, reasons from `ScrapeError::reason` or the network.
    pub failures: Vec<(&'static str, u64)>,
    pub exceeded_sample_limit: u64,
    /// Series repeated within one scrape (the later ones are dropped).
    pub duplicate_samples: u64,
    /// Samples refused because their own timestamp was older than
    /// `queue.max_sample_age` when scraped.
    pub samples_too_old: u64,
}

impl TargetStats {
    pub(super) fn count_failure(&mut self, reason: &'static str) {
        match self.failures.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => self.failures.push((reason, 1)),
        }
        if reason == "sample_limit" {
            self.exceeded_sample_limit += 1;
        }
    }
}

/// Facts for `/api/v1/status/runtimeinfo`.
#[derive(Debug, Clone, Default)]
pub(super) struct RuntimeInfo {
    pub start_time_ms: u64,
    pub cwd: String,
    pub reload_config_success: bool,
    pub last_config_time_ms: u64,
    pub corruption_count: u64,
    pub wal_dir: String,
    /// `wal.max_bytes`, rendered where Prometheus shows its retention.
    pub wal_max_bytes: u64,
}

fn render_runtimeinfo(info: &RuntimeInfo, out: &mut String) {
    out.clear();
    out.push_str("{\"status\":\"success\",\"data\":{\"startTime\":\"");
    let _ = write_rfc3339(out, info.start_time_ms);
    out.push_str("\",\"CWD\":");
    json_string(out, &info.cwd);
    let _ = write!(
        out,
        ",\"reloadConfigSuccess\":{},\"lastConfigTime\":\"",
        info.reload_config_success
    );
    let _ = write_rfc3339(out, info.last_config_time_ms);
    let _ = write!(
        out,
        "\",\"corruptionCount\":{},\"goroutineCount\":0,\"GOMAXPROCS\":1,\"GOGC\":\"\",\"GODEBUG\":\"\",\"storageRetention\":",
        info.corruption_count
    );
    json_string(out, &format!("WAL bounded by size: {}B", info.wal_max_bytes));
    out.push_str(",\"walDir\":");
    json_string(out, &info.wal_dir);
    out.push_str("}}");
}

/// A counter family with one series per target: name, help, value.
type PerTarget = (&'static str, &'static str, fn(&TargetStats) -> u64);

/// The agent-level families that are not the sender's: scrape failures and
/// limits per target, WAL health, build info.
fn render_agent_metrics<'a, I>(expo: &mut Expo<'_>, targets: I, wal: &DiskWal)
where
    I: Iterator<Item = &'a TargetStats> + Clone,
{
    // Prometheus's own names for the same limits, summed over targets.
    let families: [(&str, &str, &[&str]); 3] = [
        (
            "prometheus_target_scrapes_exceeded_sample_limit_total",
            "Total number of scrapes that hit the sample limit and were rejected.",
            &["sample_limit"],
        ),
        (
            "prometheus_target_scrapes_exceeded_body_size_limit_total",
            "Total number of scrapes that hit the body size limit",
            &["body_size_limit", "decompressed_size_limit"],
        ),
        (
            "prometheus_target_scrape_pool_exceeded_label_limits_total",
            "Total number of times scrapes hit the label limits.",
            &[
                "label_limit",
                "label_name_length_limit",
                "label_value_length_limit",
            ],
        ),
    ];
    for (name, help, reasons) in families {
        let total: u64 = targets
            .clone()
            .flat_map(|t| t.failures.iter())
            .filter(|(r, _)| reasons.contains(r))
            .map(|(_, n)| n)
            .sum();
        expo.single(&[name], &[help], Kind::Counter, &[], total);
    }
    expo.single(
        &["prometheus_target_scrapes_sample_duplicate_timestamp_total"],
        &["Total number of samples rejected due to duplicate timestamps but different values."],
        Kind::Counter,
        &[],
        targets.clone().map(|t| t.duplicate_samples).sum::<u64>(),
    );

    // Prometheus's name; per target, since the count is only actionable
    // with the target that sends the old samples (Prometheus names it in
    // its log line instead). `sum()` gives Prometheus's single series.
    let per_target: [PerTarget; 2] = [
        (
            "prometheus_target_scrapes_sample_out_of_bounds_total",
            "Total number of samples rejected due to timestamp falling outside of the time bounds \
             (older than queue.max_sample_age when scraped).",
            |t| t.samples_too_old,
        ),
        (
            "outpost_target_scrapes_total",
            "Scrapes attempted, per target.",
            |t| t.scrapes,
        ),
    ];
    for (name, help, value) in per_target {
        expo.family(&[name], &[help], Kind::Counter);
        for t in targets.clone() {
            expo.sample(&[name], &[("job", &t.job), ("instance", &t.instance)], value(t));
        }
    }
    const FAILURES: &[&str] = &["outpost_target_scrape_failures_total"];
    expo.family(
        FAILURES,
        &["Failed scrapes, per target and reason."],
        Kind::Counter,
    );
    for t in targets {
        for (reason, n) in &t.failures {
            expo.sample(
                FAILURES,
                &[("job", &t.job), ("instance", &t.instance), ("reason", reason)],
                *n,
            );
        }
    }
    let counters = &wal.counters;
    let wal_families: [(&str, &str, Kind, u64); 8] = [
        (
            "outpost_wal_bytes",
            "Bytes held in WAL segments.",
            Kind::Gauge,
            wal.total_bytes(),
        ),
        (
            "outpost_wal_records_appended_total",
            "Records written to WAL segments.",
            Kind::Counter,
            counters.records_appended,
        ),
        (
            "outpost_wal_bytes_appended_total",
            "Bytes written to WAL segments, record headers included.",
            Kind::Counter,
            counters.bytes_appended,
        ),
        (
            "outpost_wal_held_bytes",
            "Spill mode: compressed bytes of the records held in memory until acknowledged.",
            Kind::Gauge,
            wal.held_bytes() as u64,
        ),
        (
            "outpost_wal_held_records",
            "Spill mode: records held in memory until acknowledged.",
            Kind::Gauge,
            wal.held_records() as u64,
        ),
        (
            "outpost_wal_fsyncs_total",
            "fsync calls on WAL segments.",
            Kind::Counter,
            counters.fsyncs,
        ),
        (
            "outpost_wal_corruptions_total",
            "Torn or corrupt WAL tails truncated at start-up.",
            Kind::Counter,
            counters.corruptions,
        ),
        (
            "outpost_wal_replayed_samples_total",
            "Samples found unsent in the WAL at start-up.",
            Kind::Counter,
            counters.replayed_samples,
        ),
    ];
    for (name, help, kind, value) in wal_families {
        expo.single(&[name], &[help], kind, &[], value);
    }
    const SPILLED: &[&str] = &["outpost_wal_spilled_records_total"];
    expo.family(
        SPILLED,
        &["Spill mode: records written to the WAL instead of only held in memory, by reason."],
        Kind::Counter,
    );
    for reason in SpillReason::ALL {
        expo.sample(
            SPILLED,
            &[("reason", reason.as_str())],
            counters.spilled_records[reason as usize],
        );
    }
    expo.build_info();
}

/// What the agent knows about its wall clock: the kernel's synchronisation
/// state (`None` when adjtimex is not allowed) and the offset from the
/// receiver's `Date` header (`None` before the first answer).
fn render_clock_metrics(
    expo: &mut Expo<'_>,
    synchronised: Option<bool>,
    receiver_offset_s: Option<f64>,
    url: &str,
) {
    if let Some(synced) = synchronised {
        expo.single(
            &["outpost_clock_sync_status"],
            &[
                "Is the kernel clock synchronized to a reliable server (1 = yes, 0 = no), from adjtimex as \
               node_timex_sync_status.",
            ],
            Kind::Gauge,
            &[],
            u64::from(synced),
        );
    }
    if let Some(offset) = receiver_offset_s {
        expo.single(
            &["outpost_receiver_clock_offset_seconds"],
            &["Local wall clock minus the receiver's, from the Date header of its last answer (+-0.5 s)."],
            Kind::Gauge,
            &[("url", url)],
            offset,
        );
    }
}

/// The agent's own `/metrics` page, rendered for the status server and for
/// the self-scrape into buffers allocated once.
pub(super) struct SelfMetrics {
    text: String,
    process: ProcessMetrics,
}

impl SelfMetrics {
    pub(super) fn new() -> SelfMetrics {
        SelfMetrics {
            text: String::with_capacity(64 * 1024),
            process: ProcessMetrics::new(),
        }
    }

    /// What a Prometheus agent exports, plus outpost's scrape and WAL
    /// families and process metrics.
    pub(super) fn render<'a, I>(&mut self, ship: &Shipping, targets: I, procfs: &Path) -> &str
    where
        I: Iterator<Item = &'a TargetStats> + Clone,
    {
        let out = &mut self.text;
        out.clear();
        let _ = ship.sender.render_metrics(out, "outpost", &ship.side.url);
        let mut expo = Expo::new(out);
        render_agent_metrics(&mut expo, targets, &ship.wal);
        render_clock_metrics(
            &mut expo,
            clock::kernel_clock_synchronised(),
            ship.receiver_offset.seconds(),
            &ship.side.url,
        );
        self.process.render(procfs, out);
        out
    }
}

/// The status server's view of the agent for one request.
pub(super) struct StatusView<'a, I> {
    pub ship: &'a Shipping,
    pub targets: I,
    pub info: &'a RuntimeInfo,
    pub procfs: &'a Path,
    pub ready: bool,
    pub self_metrics: &'a mut SelfMetrics,
}

impl<'a, I> Responder for StatusView<'a, I>
where
    I: Iterator<Item = &'a TargetStats> + Clone,
{
    fn respond(&mut self, method: &str, path: &str, out: &mut Response) {
        if method != "GET" && method != "HEAD" {
            out.status = 405;
            out.body.extend_from_slice(b"Method Not Allowed\n");
            return;
        }
        match path {
            "/metrics" => {
                let text = self
                    .self_metrics
                    .render(self.ship, self.targets.clone(), self.procfs);
                out.content_type = "text/plain; version=0.0.4; charset=utf-8";
                out.body.extend_from_slice(text.as_bytes());
            }
            "/-/healthy" => out.body.extend_from_slice(b"Healthy\n"),
            "/-/ready" if self.ready => out.body.extend_from_slice(b"Ready\n"),
            "/-/ready" => {
                out.status = 503;
                out.body.extend_from_slice(b"Service Unavailable\n");
            }
            "/api/v1/status/runtimeinfo" => {
                let text = &mut self.self_metrics.text;
                render_runtimeinfo(self.info, text);
                out.content_type = "application/json";
                out.body.extend_from_slice(text.as_bytes());
            }
            _ => {
                out.status = 404;
                out.body.extend_from_slice(b"404 page not found\n");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtimeinfo_has_prometheus_field_names() {
        let mut out = String::new();
        render_runtimeinfo(
            &RuntimeInfo {
                start_time_ms: 1_000,
                cwd: "/work".into(),
                reload_config_success: true,
                last_config_time_ms: 2_000,
                corruption_count: 1,
                wal_dir: "/w\"al".into(),
                wal_max_bytes: 1024,
            },
            &mut out,
        );
        assert_eq!(
            out,
            "{\"status\":\"success\",\"data\":{\"startTime\":\"1970-01-01T00:00:01.000Z\",\"CWD\":\"/work\",\
             \"reloadConfigSuccess\":true,\"lastConfigTime\":\"1970-01-01T00:00:02.000Z\",\"corruptionCount\":1,\
             \"goroutineCount\":0,\"GOMAXPROCS\":1,\"GOGC\":\"\",\"GODEBUG\":\"\",\
             \"storageRetention\":\"WAL bounded by size: 1024B\",\"walDir\":\"/w\\\"al\"}}"
        );
    }

    #[test]
    fn failures_are_counted_by_reason() {
        let mut t = TargetStats::default();
        t.count_failure("sample_limit");
        t.count_failure("timeout");
        t.count_failure("sample_limit");
        assert_eq!(t.failures, vec![("sample_limit", 2), ("timeout", 1)]);
        assert_eq!(t.exceeded_sample_limit, 2);
    }
}
