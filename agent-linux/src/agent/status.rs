//! The agent's status pages, answered as a Prometheus agent would: the same
//! paths, status codes and JSON shapes, so the seed's checks work unchanged.
//! `/metrics` is written with the node collectors' exposition writer;
//! `/api/v1/targets` is [`super::targets_api`]'s; `/metrics/node` is the
//! node collectors' text of their last scrape, as they wrote it.
//!
//! The agent owns the server and the state; this module renders.

use std::fmt::{self, Display, Write as _};
use std::path::Path;

use outpost_core::pipeline::SeriesPool;

use super::discovery::Discovering;
use super::scraping::{Scraping, NODE_PAGE};
use super::shipping::Shipping;
use super::targets_api;
use crate::clock;
use crate::collectors::expo::{Expo, Kind};
use crate::collectors::ProcessMetrics;
use crate::log::{json_string, write_rfc3339};
use crate::net::{Responder, Response};
use crate::wal::{DiskWal, SpillReason};

/// A target's scrape history: failures by reason for `/metrics`, the last
/// scrape for `/api/v1/targets`.
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
    /// Whether the last scrape succeeded; `None` until one has ended.
    pub up: Option<bool>,
    /// Wall-clock start of the last scrape that ended (its samples'
    /// timestamp), Unix milliseconds.
    pub last_scrape_wall_ms: i64,
    pub last_duration_s: f64,
    /// Why the last scrape failed; empty when it did not.
    pub last_error: LastError,
    /// Scrapes skipped because no scrape slot freed within their timeout.
    pub skipped_concurrency: u64,
    /// Due and waiting for a scrape slot now.
    pub waiting: bool,
}

impl TargetStats {
    /// A scrape that started at `started_wall_ms` and took `duration_s` was
    /// committed.
    pub(super) fn succeeded(&mut self, started_wall_ms: i64, duration_s: f64) {
        self.ended(started_wall_ms, duration_s);
        self.up = Some(true);
        self.last_error.clear();
    }

    /// The same scrape failed for `reason` (a counter label), told by `msg`.
    pub(super) fn failed(
        &mut self,
        started_wall_ms: i64,
        duration_s: f64,
        reason: &'static str,
        msg: &dyn Display,
    ) {
        self.ended(started_wall_ms, duration_s);
        self.up = Some(false);
        self.last_error.set(msg);
        match self.failures.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => self.failures.push((reason, 1)),
        }
        if reason == "sample_limit" {
            self.exceeded_sample_limit += 1;
        }
    }

    fn ended(&mut self, started_wall_ms: i64, duration_s: f64) {
        self.last_scrape_wall_ms = started_wall_ms;
        self.last_duration_s = duration_s;
    }
}

/// The text of a scrape's error in a buffer allocated once: recording it on
/// every failed scrape allocates nothing. Longer messages are cut at a
/// character boundary and end with `...`.
#[derive(Debug, Clone)]
pub(super) struct LastError(String);

impl LastError {
    /// Room for the longest message the scrape path writes (a TLS error
    /// with a certificate's names runs to about 200 bytes).
    const BYTES: usize = 256;
    const CUT: &'static str = "...";

    pub(super) fn as_str(&self) -> &str {
        &self.0
    }

    fn clear(&mut self) {
        self.0.clear();
    }

    fn set(&mut self, msg: &dyn Display) {
        self.0.clear();
        let mut bounded = Bounded {
            out: &mut self.0,
            room: Self::BYTES - Self::CUT.len(),
        };
        if write!(bounded, "{msg}").is_err() {
            self.0.push_str(Self::CUT);
        }
    }
}

impl Default for LastError {
    fn default() -> Self {
        LastError(String::with_capacity(Self::BYTES))
    }
}

/// Writes up to `room` bytes, then refuses (after the whole characters that
/// still fit).
struct Bounded<'a> {
    out: &'a mut String,
    room: usize,
}

impl fmt::Write for Bounded<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if s.len() <= self.room {
            self.out.push_str(s);
            self.room -= s.len();
            return Ok(());
        }
        let mut cut = self.room;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        self.out.push_str(&s[..cut]);
        self.room = 0;
        Err(fmt::Error)
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

/// The shared series pool: what the series tables reserve, its limits, and
/// the growths it refused (each failed a scrape with `series_pool_full`).
fn render_pool_metrics(expo: &mut Expo<'_>, pool: &SeriesPool) {
    let families: [(&str, &str, Kind, u64); 5] = [
        (
            "outpost_series_pool_bytes",
            "Bytes the targets' series tables reserve in the shared series pool.",
            Kind::Gauge,
            pool.bytes(),
        ),
        (
            "outpost_series_pool_max_bytes",
            "The series pool's size (series_pool.max_size).",
            Kind::Gauge,
            pool.max_bytes(),
        ),
        (
            "outpost_series_pool_series",
            "Series entries the targets' series tables reserve in the shared series pool.",
            Kind::Gauge,
            pool.series(),
        ),
        (
            "outpost_series_pool_max_series",
            "The series pool's entries (series_pool.max_series).",
            Kind::Gauge,
            pool.max_series(),
        ),
        (
            "outpost_series_pool_refused_total",
            "Series-table growths the pool refused.",
            Kind::Counter,
            pool.refused,
        ),
    ];
    for (name, help, kind, value) in families {
        expo.single(&[name], &[help], kind, &[], value);
    }
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
    const SKIPPED: &[&str] = &["outpost_target_scrapes_skipped_total"];
    expo.family(
        SKIPPED,
        &["Scrapes skipped, per target and reason (concurrency: no scrape slot freed within the scrape timeout)."],
        Kind::Counter,
    );
    for t in targets.clone() {
        expo.sample(
            SKIPPED,
            &[
                ("job", &t.job),
                ("instance", &t.instance),
                ("reason", "concurrency"),
            ],
            t.skipped_concurrency,
        );
    }
    expo.single(
        &["outpost_scrapes_waiting"],
        &["Scrapes due and waiting for a free scrape slot."],
        Kind::Gauge,
        &[],
        targets.clone().filter(|t| t.waiting).count() as u64,
    );
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

/// The room reserved at start for a status page: the rendered `/metrics`
/// text, and each status connection's response buffer.
pub(super) const STATUS_PAGE_BYTES: usize = 64 * 1024;

/// The agent's own `/metrics` page, rendered for the status server and for
/// the self-scrape into buffers allocated once.
pub(super) struct SelfMetrics {
    text: String,
    process: ProcessMetrics,
}

impl SelfMetrics {
    pub(super) fn new() -> SelfMetrics {
        SelfMetrics {
            text: String::with_capacity(STATUS_PAGE_BYTES),
            process: ProcessMetrics::new(),
        }
    }

    /// What a Prometheus agent exports, plus outpost's scrape and WAL
    /// families and process metrics.
    pub(super) fn render<'a, I>(
        &mut self,
        ship: &Shipping,
        targets: I,
        discovering: &Discovering,
        pool: &SeriesPool,
        procfs: &Path,
    ) -> &str
    where
        I: Iterator<Item = &'a TargetStats> + Clone,
    {
        let out = &mut self.text;
        out.clear();
        let _ = ship.sender.render_metrics(out, "outpost", &ship.side.url);
        let mut expo = Expo::new(out);
        render_agent_metrics(&mut expo, targets, &ship.wal);
        discovering.render_metrics(&mut expo);
        render_pool_metrics(&mut expo, pool);
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
pub(super) struct StatusView<'a> {
    pub ship: &'a Shipping,
    pub scraping: &'a Scraping,
    pub discovering: &'a Discovering,
    pub info: &'a RuntimeInfo,
    pub procfs: &'a Path,
    /// Put in place of loopback hosts in `/api/v1/targets`' `globalUrl`.
    pub node_name: &'a str,
    pub ready: bool,
    pub self_metrics: &'a mut SelfMetrics,
}

const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Responder for StatusView<'_> {
    fn respond(&mut self, method: &str, path: &str, query: &str, out: &mut Response) {
        if method != "GET" && method != "HEAD" {
            out.status = 405;
            out.body.extend_from_slice(b"Method Not Allowed\n");
            return;
        }
        let targets = &self.scraping.targets;
        match path {
            "/metrics" => {
                let stats = targets.iter().map(|t| &t.stats);
                let pool = &self.scraping.batcher.series_pool;
                let text = self
                    .self_metrics
                    .render(self.ship, stats, self.discovering, pool, self.procfs);
                out.content_type = TEXT_FORMAT;
                out.push_page(text.as_bytes());
            }
            NODE_PAGE => match self.scraping.node_page() {
                Some(text) => {
                    out.content_type = TEXT_FORMAT;
                    out.push_page(text.as_bytes());
                }
                None => {
                    out.status = 404;
                    out.body
                        .extend_from_slice(b"this agent's plan has no node collectors\n");
                }
            },
            "/api/v1/targets" => {
                let text = &mut self.self_metrics.text;
                let discovering = self.discovering;
                let dropped = discovering.dropped();
                let active = targets.iter().map(|t| {
                    let mut a = t.active();
                    a.discovered = t
                        .discovered
                        .as_deref()
                        .and_then(|d| discovering.discovered_labels(d));
                    a
                });
                targets_api::render(text, query, self.node_name, active, dropped);
                out.content_type = "application/json";
                out.push_page(text.as_bytes());
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
                out.push_page(text.as_bytes());
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
        t.failed(
            1_000,
            0.5,
            "sample_limit",
            &"more than limits.samples (10) samples",
        );
        t.failed(2_000, 0.8, "timeout", &"timeout after 800 ms during connect");
        t.failed(
            3_000,
            0.2,
            "sample_limit",
            &"more than limits.samples (10) samples",
        );
        assert_eq!(t.failures, vec![("sample_limit", 2), ("timeout", 1)]);
        assert_eq!(t.exceeded_sample_limit, 2);
        assert_eq!(t.up, Some(false));
        assert_eq!((t.last_scrape_wall_ms, t.last_duration_s), (3_000, 0.2));
        assert_eq!(t.last_error.as_str(), "more than limits.samples (10) samples");
        t.succeeded(4_000, 0.1);
        assert_eq!(t.up, Some(true));
        assert_eq!(t.last_error.as_str(), "");
        assert_eq!(t.failures.len(), 2);
    }

    #[test]
    fn a_long_error_is_cut_at_a_character_boundary_in_its_own_buffer() {
        let mut e = LastError::default();
        let capacity = e.0.capacity();
        // 2-byte characters, so the cut falls inside one unless it is moved.
        let long = "\u{e9}".repeat(LastError::BYTES);
        e.set(&format_args!("x{long}"));
        assert!(e.as_str().len() <= LastError::BYTES, "{}", e.as_str().len());
        assert!(e.as_str().starts_with("x\u{e9}\u{e9}"));
        assert!(e.as_str().ends_with("\u{e9}..."), "{}", e.as_str());
        assert_eq!(e.0.capacity(), capacity, "the buffer did not grow");
        e.set(&"short");
        assert_eq!(e.as_str(), "short");
    }
}
