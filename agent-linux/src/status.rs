//! The agent's status pages, answered as a Prometheus agent would: the same
//! paths, status codes and JSON shapes, so the seed's checks work unchanged.
//!
//! This module only renders; `agent.rs` owns the server and the state.

use std::fmt::Write as _;

use crate::log::{json_string, write_rfc3339};

/// Per-target scrape failures by reason, for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct TargetStats {
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
    pub fn count_failure(&mut self, reason: &'static str) {
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
pub struct RuntimeInfo {
    pub start_time_ms: u64,
    pub cwd: String,
    pub reload_config_success: bool,
    pub last_config_time_ms: u64,
    pub corruption_count: u64,
    pub wal_dir: String,
    /// `wal.max_bytes`, rendered where Prometheus shows its retention.
    pub wal_max_bytes: u64,
}

pub fn render_runtimeinfo(info: &RuntimeInfo, out: &mut String) {
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

/// Escapes a label value for the text exposition format.
pub fn write_label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// The agent-level families that are not the sender's: scrape failures and
/// limits per target, WAL health, build info.
pub fn render_agent_metrics<'a, I>(
    out: &mut String,
    targets: I,
    wal: &crate::wal::WalCounters,
    wal_bytes: u64,
) where
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
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {total}");
    }
    let duplicates: u64 = targets.clone().map(|t| t.duplicate_samples).sum();
    let _ = writeln!(
        out,
        "# HELP prometheus_target_scrapes_sample_duplicate_timestamp_total Total number of samples rejected due to duplicate timestamps but different values.\n\
         # TYPE prometheus_target_scrapes_sample_duplicate_timestamp_total counter\n\
         prometheus_target_scrapes_sample_duplicate_timestamp_total {duplicates}"
    );

    // Prometheus's name; per target, since the count is only actionable
    // with the target that sends the old samples (Prometheus names it in
    // its log line instead). `sum()` gives Prometheus's single series.
    out.push_str(
        "# HELP prometheus_target_scrapes_sample_out_of_bounds_total Total number of samples rejected due to timestamp falling outside of the time bounds (older than queue.max_sample_age when scraped).\n\
         # TYPE prometheus_target_scrapes_sample_out_of_bounds_total counter\n",
    );
    for t in targets.clone() {
        out.push_str("prometheus_target_scrapes_sample_out_of_bounds_total{job=\"");
        write_label_value(out, &t.job);
        out.push_str("\",instance=\"");
        write_label_value(out, &t.instance);
        let _ = writeln!(out, "\"}} {}", t.samples_too_old);
    }
    out.push_str("# HELP outpost_target_scrapes_total Scrapes attempted, per target.\n# TYPE outpost_target_scrapes_total counter\n");
    for t in targets.clone() {
        out.push_str("outpost_target_scrapes_total{job=\"");
        write_label_value(out, &t.job);
        out.push_str("\",instance=\"");
        write_label_value(out, &t.instance);
        let _ = writeln!(out, "\"}} {}", t.scrapes);
    }
    out.push_str(
        "# HELP outpost_target_scrape_failures_total Failed scrapes, per target and reason.\n# TYPE outpost_target_scrape_failures_total counter\n",
    );
    for t in targets {
        for (reason, n) in &t.failures {
            out.push_str("outpost_target_scrape_failures_total{job=\"");
            write_label_value(out, &t.job);
            out.push_str("\",instance=\"");
            write_label_value(out, &t.instance);
            let _ = writeln!(out, "\",reason=\"{reason}\"}} {n}");
        }
    }
    let _ = write!(
        out,
        "# HELP outpost_wal_bytes Bytes held in WAL segments.\n# TYPE outpost_wal_bytes gauge\noutpost_wal_bytes {wal_bytes}\n\
         # HELP outpost_wal_records_appended_total Batches appended to the WAL.\n# TYPE outpost_wal_records_appended_total counter\noutpost_wal_records_appended_total {}\n\
         # HELP outpost_wal_fsyncs_total fsync calls on WAL segments.\n# TYPE outpost_wal_fsyncs_total counter\noutpost_wal_fsyncs_total {}\n\
         # HELP outpost_wal_corruptions_total Torn or corrupt WAL tails truncated at start-up.\n# TYPE outpost_wal_corruptions_total counter\noutpost_wal_corruptions_total {}\n\
         # HELP outpost_wal_replayed_samples_total Samples found unsent in the WAL at start-up.\n# TYPE outpost_wal_replayed_samples_total counter\noutpost_wal_replayed_samples_total {}\n",
        wal.records_appended, wal.fsyncs, wal.corruptions, wal.replayed_samples
    );
    let _ = write!(
        out,
        "# HELP outpost_build_info A metric with a constant '1' value labeled by version, revision, branch, \
         rustversion, os and arch from which outpost was built.\n\
         # TYPE outpost_build_info gauge\n\
         outpost_build_info{{arch=\"{}\",branch=\"{}\",os=\"{}\",revision=\"{}\",rustversion=\"{}\",version=\"{}\"}} 1\n",
        // The same label set as the node collector's copy of this series.
        std::env::consts::ARCH,
        option_env!("OUTPOST_GIT_BRANCH").unwrap_or("unknown"),
        std::env::consts::OS,
        option_env!("OUTPOST_GIT_REVISION").unwrap_or("unknown"),
        option_env!("OUTPOST_RUSTC_VERSION").unwrap_or("unknown"),
        env!("CARGO_PKG_VERSION"),
    );
}

/// What the agent knows about its wall clock: the kernel's synchronisation
/// state (`None` when adjtimex is not allowed) and the offset from the
/// receiver's `Date` header (`None` before the first answer).
pub fn render_clock_metrics(
    out: &mut String,
    synchronised: Option<bool>,
    receiver_offset_s: Option<f64>,
    url: &str,
) {
    if let Some(synced) = synchronised {
        let _ = write!(
            out,
            "# HELP outpost_clock_sync_status Is the kernel clock synchronized to a reliable server (1 = yes, 0 = no), from adjtimex as node_timex_sync_status.\n\
             # TYPE outpost_clock_sync_status gauge\noutpost_clock_sync_status {}\n",
            u8::from(synced)
        );
    }
    if let Some(offset) = receiver_offset_s {
        out.push_str(
            "# HELP outpost_receiver_clock_offset_seconds Local wall clock minus the receiver's, from the Date header of its last answer (+-0.5 s).\n\
             # TYPE outpost_receiver_clock_offset_seconds gauge\noutpost_receiver_clock_offset_seconds{url=\"",
        );
        write_label_value(out, url);
        let _ = writeln!(out, "\"}} {offset}");
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
