//! `/api/v1/targets`, in the JSON shape Prometheus 2.42 answers with, so
//! the tools and habits that read a Prometheus agent's targets read
//! outpost's: every target with the labels it was discovered with and the
//! labels its series carry, its scrape pool (the job) and URL, and how its
//! last scrape went. `?state=active|dropped|any` and `?scrapePool=JOB`
//! filter as Prometheus filters.
//!
//! What differs from Prometheus, on purpose or by what outpost knows:
//! - `lastScrape` is the scrape's start in UTC (`Z`) to the millisecond,
//!   the precision of the samples' timestamps; Prometheus writes its local
//!   zone and nanoseconds. Both are RFC 3339 with trailing zeros dropped.
//! - `lastScrapeDuration` is measured on the monotonic clock in whole
//!   milliseconds.
//! - `lastError` is outpost's own message for the same failure (the
//!   limit's plan field, the phase of the request); Prometheus's are Go's.
//! - The node collectors and the self-scrape run in-process: their
//!   `__address__` is the agent's own (`NODE_NAME:PORT`, the self-scrape's
//!   instance), their URL names the status page that shows the same text
//!   (`/metrics/node`, `/metrics`), and their `scrapeTimeout` is their
//!   interval, as nothing else bounds them.
//! - `globalUrl` replaces a loopback host by the node name, where
//!   Prometheus puts its external URL's host (by default its hostname).
//!
//! Rendering allocates nothing once the page buffer has grown to the page:
//! labels are sorted by selection on the fly, durations and times are
//! written on the stack.

use std::fmt::{self, Write as _};

use outpost_core::pipeline::TargetLabels;

use super::status::TargetStats;
use crate::log::{json_escaped, json_string, write_rfc3339};

/// One active target as the page shows it, borrowed from the scrape side.
#[derive(Clone, Copy)]
pub(super) struct ActiveTarget<'a> {
    /// `job` is the scrape pool.
    pub labels: &'a TargetLabels,
    pub scheme: &'static str,
    /// `host:port` the page is fetched from: `__address__`.
    pub address: &'a str,
    pub path: &'a str,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub stats: &'a TargetStats,
    /// The labels discovery found the target with; `None` for a static
    /// target, whose are made up from its address and job as Prometheus's.
    pub discovered: Option<&'a [(String, String)]>,
}

/// A target discovery found and relabeling dropped: its scrape pool and the
/// labels it was discovered with, in any order.
pub(super) type DroppedTarget<'a> = (&'a str, &'a [(String, String)]);

/// Which targets a request asks for (Prometheus's query parameters).
struct Filter<'q> {
    active: bool,
    dropped: bool,
    /// Still percent-encoded; `None` for every pool.
    pool: Option<&'q str>,
}

impl<'q> Filter<'q> {
    /// `state` (any case) is `active`, `dropped`, `any` or absent (any);
    /// another value shows neither, as in Prometheus. Of a repeated
    /// parameter the first counts.
    fn parse(query: &'q str) -> Filter<'q> {
        let first = |key: &str| {
            query
                .split('&')
                .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v)
        };
        let state = first("state").unwrap_or("");
        let any = state.is_empty() || is_ignoring_case(state, "any");
        Filter {
            active: any || is_ignoring_case(state, "active"),
            dropped: any || is_ignoring_case(state, "dropped"),
            pool: first("scrapePool").filter(|p| !p.is_empty()),
        }
    }

    fn wants_pool(&self, pool: &str) -> bool {
        self.pool.is_none_or(|p| decoded(p).eq(pool.bytes()))
    }
}

fn is_ignoring_case(raw: &str, word: &str) -> bool {
    decoded(raw).map(|b| b.to_ascii_lowercase()).eq(word.bytes())
}

/// The bytes of a query value, `%XX` and `+` decoded; a `%` without two
/// hex digits stands for itself.
fn decoded(raw: &str) -> impl Iterator<Item = u8> + Clone + '_ {
    let bytes = raw.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        let b = *bytes.get(i)?;
        i += 1;
        Some(match b {
            b'+' => b' ',
            b'%' => {
                let hex = |at: usize| bytes.get(at).and_then(|d| (*d as char).to_digit(16));
                match (hex(i), hex(i + 1)) {
                    (Some(hi), Some(lo)) => {
                        i += 2;
                        (hi * 16 + lo) as u8
                    }
                    _ => b'%',
                }
            }
            b => b,
        })
    })
}

/// Renders the page for `query` into `out` (cleared first). `active` is in
/// plan order; the page lists it by scrape pool, as Prometheus does.
/// `node_name` replaces loopback hosts in `globalUrl`.
pub(super) fn render<'a, A, D>(out: &mut String, query: &str, node_name: &str, active: A, dropped: D)
where
    A: Iterator<Item = ActiveTarget<'a>> + Clone,
    D: Iterator<Item = DroppedTarget<'a>>,
{
    let filter = Filter::parse(query);
    out.clear();
    out.push_str("{\"status\":\"success\",\"data\":{\"activeTargets\":[");
    if filter.active {
        let mut first = true;
        let mut last_pool: Option<&str> = None;
        // Pools in name order, chosen one at a time: no list to sort.
        while let Some(pool) = active
            .clone()
            .map(|t| t.labels.job.as_str())
            .filter(|p| last_pool.is_none_or(|l| *p > l))
            .min()
        {
            last_pool = Some(pool);
            if !filter.wants_pool(pool) {
                continue;
            }
            for t in active.clone().filter(|t| t.labels.job == pool) {
                if !first {
                    out.push(',');
                }
                first = false;
                active_target(out, &t, node_name);
            }
        }
    }
    out.push_str("],\"droppedTargets\":[");
    if filter.dropped {
        let mut first = true;
        for (_, discovered) in dropped.filter(|(pool, _)| filter.wants_pool(pool)) {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str("{\"discoveredLabels\":");
            label_object(out, discovered.iter().map(|(n, v)| (n.as_str(), v.as_str())));
            out.push('}');
        }
    }
    out.push_str("]}}");
}

/// Prometheus's labels of a static target before relabeling; the job's
/// static labels come from its target group.
fn static_discovered(
    out: &mut String,
    t: &ActiveTarget<'_>,
    interval: &PromDuration,
    timeout: &PromDuration,
) {
    let labels = t.labels;
    let extra = labels.extra.iter().map(|(n, v)| (n.as_str(), v.as_str()));
    let discovered = [
        ("__address__", t.address),
        ("__metrics_path__", t.path),
        ("__scheme__", t.scheme),
        ("__scrape_interval__", interval.as_str()),
        ("__scrape_timeout__", timeout.as_str()),
        ("job", labels.job.as_str()),
    ];
    label_object(out, discovered.into_iter().chain(extra));
}

fn active_target(out: &mut String, t: &ActiveTarget<'_>, node_name: &str) {
    let interval = PromDuration::new(t.interval_ms);
    let timeout = PromDuration::new(t.timeout_ms);
    let labels = t.labels;
    let extra = labels.extra.iter().map(|(n, v)| (n.as_str(), v.as_str()));
    out.push_str("{\"discoveredLabels\":");
    if let Some(found) = t.discovered {
        label_object(out, found.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    } else {
        static_discovered(out, t, &interval, &timeout);
    }
    out.push_str(",\"labels\":");
    let attached = [
        ("instance", labels.instance.as_str()),
        ("job", labels.job.as_str()),
    ];
    label_object(out, attached.into_iter().chain(extra));
    out.push_str(",\"scrapePool\":");
    json_string(out, &labels.job);
    out.push_str(",\"scrapeUrl\":");
    json_pieces(out, &[t.scheme, "://", t.address, t.path]);
    out.push_str(",\"globalUrl\":");
    match loopback_port(t.address) {
        Some(port) => json_pieces(out, &[t.scheme, "://", node_name, port, t.path]),
        None => json_pieces(out, &[t.scheme, "://", t.address, t.path]),
    }
    out.push_str(",\"lastError\":");
    json_string(out, t.stats.last_error.as_str());
    out.push_str(",\"lastScrape\":\"");
    let (health, duration) = match t.stats.up {
        None => {
            // Go's zero time, which Prometheus shows before a first scrape.
            out.push_str("0001-01-01T00:00:00Z");
            ("unknown", 0.0)
        }
        Some(up) => {
            rfc3339_trimmed(out, t.stats.last_scrape_wall_ms.max(0) as u64);
            (if up { "up" } else { "down" }, t.stats.last_duration_s)
        }
    };
    let _ = write!(
        out,
        "\",\"lastScrapeDuration\":{duration},\"health\":\"{health}\",\"scrapeInterval\":\"{}\",\"scrapeTimeout\":\"{}\"}}",
        interval.as_str(),
        timeout.as_str()
    );
}

/// A JSON object of labels, names in byte order as Go writes a map. Empty
/// values are left out (a label with an empty value does not exist); of
/// two labels with one name the first counts, as on the series.
fn label_object<'a, I>(out: &mut String, pairs: I)
where
    I: Iterator<Item = (&'a str, &'a str)> + Clone,
{
    out.push('{');
    let mut last: Option<&str> = None;
    while let Some((name, value)) = pairs
        .clone()
        .filter(|(n, v)| !v.is_empty() && last.is_none_or(|l| *n > l))
        .reduce(|best, p| if p.0 < best.0 { p } else { best })
    {
        if last.is_some() {
            out.push(',');
        }
        json_string(out, name);
        out.push(':');
        json_string(out, value);
        last = Some(name);
    }
    out.push('}');
}

/// One JSON string of `pieces` joined.
fn json_pieces(out: &mut String, pieces: &[&str]) {
    out.push('"');
    for piece in pieces {
        json_escaped(out, piece);
    }
    out.push('"');
}

/// When `address` names this host by a loopback name, what follows the
/// name (`:PORT`, or nothing): the URL is then not reachable from
/// elsewhere, and `globalUrl` puts the node name in its place.
fn loopback_port(address: &str) -> Option<&str> {
    let (host, port) = match address.rfind(':') {
        // `[::1]:9100`, `127.0.0.1:9100`; not the colons inside `[...]`.
        Some(i) if !address[i..].contains(']') => address.split_at(i),
        _ => (address, ""),
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    matches!(host, "127.0.0.1" | "localhost" | "::1").then_some(port)
}

/// RFC 3339 as Go's `time.Time` writes it in JSON: the fraction's trailing
/// zeros dropped, and the fraction with them when it is zero.
fn rfc3339_trimmed(out: &mut String, ms: u64) {
    let _ = write_rfc3339(out, ms); // ...:SS.mmmZ
    out.pop();
    while out.ends_with('0') {
        out.pop();
    }
    if out.ends_with('.') {
        out.pop();
    }
    out.push('Z');
}

/// A duration as Prometheus writes one (`1m30s`, `800ms`, `1s500ms`; years
/// and weeks only when they divide it), on the stack.
struct PromDuration {
    buf: [u8; 48],
    len: usize,
}

impl PromDuration {
    fn new(ms: u64) -> PromDuration {
        let mut d = PromDuration { buf: [0; 48], len: 0 };
        // 48 bytes hold the longest u64 duration, so the write cannot fail.
        let _ = outpost_core::duration::write(ms, &mut d);
        d
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl fmt::Write for PromDuration {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        self.buf
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(job: &str, instance: &str, extra: &[(&str, &str)]) -> TargetLabels {
        TargetLabels {
            job: job.into(),
            instance: instance.into(),
            extra: extra
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            honor_labels: false,
        }
    }

    fn target<'a>(labels: &'a TargetLabels, stats: &'a TargetStats) -> ActiveTarget<'a> {
        ActiveTarget {
            labels,
            scheme: "http",
            address: &labels.instance,
            path: "/metrics",
            interval_ms: 1_000,
            timeout_ms: 800,
            stats,
            discovered: None,
        }
    }

    #[test]
    fn durations_are_written_as_prometheus_writes_them() {
        const DAY: u64 = 86_400_000;
        for (ms, text) in [
            (0, "0s"),
            (800, "800ms"),
            (1_000, "1s"),
            (1_500, "1s500ms"),
            (90_000, "1m30s"),
            (3_600_000, "1h"),
            (DAY + 1, "1d1ms"),
            (7 * DAY, "1w"),
            (8 * DAY, "8d"),
            (14 * DAY, "2w"),
            (365 * DAY, "1y"),
            (366 * DAY, "366d"),
            (u64::from(u32::MAX), "49d17h2m47s295ms"),
        ] {
            assert_eq!(PromDuration::new(ms).as_str(), text, "{ms} ms");
        }
    }

    #[test]
    fn times_drop_trailing_zeros_of_the_fraction() {
        for (ms, text) in [
            (1_000, "1970-01-01T00:00:01Z"),
            (10_000, "1970-01-01T00:00:10Z"),
            (1_500, "1970-01-01T00:00:01.5Z"),
            (1_020, "1970-01-01T00:00:01.02Z"),
            (1_123, "1970-01-01T00:00:01.123Z"),
            (1_795_539_039_100, "2026-11-24T16:50:39.1Z"),
        ] {
            let mut out = String::from("x");
            rfc3339_trimmed(&mut out, ms);
            assert_eq!(out, format!("x{text}"));
        }
    }

    #[test]
    fn labels_are_sorted_without_empties_and_the_first_of_a_name_counts() {
        let mut out = String::new();
        let pairs = [
            ("job", "a"),
            ("zone", "z"),
            ("empty", ""),
            ("b\"q", "v\n"),
            ("job", "b"),
        ];
        label_object(&mut out, pairs.into_iter());
        assert_eq!(out, r#"{"b\"q":"v\n","job":"a","zone":"z"}"#);
        out.clear();
        label_object(&mut out, std::iter::empty());
        assert_eq!(out, "{}");
    }

    #[test]
    fn loopback_hosts_are_named_by_the_node_in_the_global_url() {
        assert_eq!(loopback_port("127.0.0.1:9100"), Some(":9100"));
        assert_eq!(loopback_port("localhost:80"), Some(":80"));
        assert_eq!(loopback_port("[::1]:9100"), Some(":9100"));
        assert_eq!(loopback_port("localhost"), Some(""));
        assert_eq!(loopback_port("10.0.0.7:9100"), None);
        assert_eq!(loopback_port("[fe80::1]:9100"), None);
        assert_eq!(loopback_port("node-1:9100"), None);
    }

    #[test]
    fn a_target_is_written_in_prometheus_field_order() {
        let l = labels("app", "127.0.0.1:9100", &[("team", "a")]);
        let mut stats = TargetStats::default();
        stats.failed(
            1_500,
            0.002,
            "connect_failed",
            &"connect to 127.0.0.1:9100 failed: connection refused",
        );
        let mut out = String::new();
        render(
            &mut out,
            "",
            "node-1",
            [target(&l, &stats)].into_iter(),
            std::iter::empty(),
        );
        assert_eq!(
            out,
            concat!(
                r#"{"status":"success","data":{"activeTargets":[{"discoveredLabels":{"__address__":"127.0.0.1:9100","#,
                r#""__metrics_path__":"/metrics","__scheme__":"http","__scrape_interval__":"1s","__scrape_timeout__":"800ms","#,
                r#""job":"app","team":"a"},"labels":{"instance":"127.0.0.1:9100","job":"app","team":"a"},"scrapePool":"app","#,
                r#""scrapeUrl":"http://127.0.0.1:9100/metrics","globalUrl":"http://node-1:9100/metrics","#,
                r#""lastError":"connect to 127.0.0.1:9100 failed: connection refused","lastScrape":"1970-01-01T00:00:01.5Z","#,
                r#""lastScrapeDuration":0.002,"health":"down","scrapeInterval":"1s","scrapeTimeout":"800ms"}],"#,
                r#""droppedTargets":[]}}"#
            )
        );
    }

    /// `(scrapePool, health)` of the active targets and the `job` of the
    /// dropped ones, read back by an independent JSON parser.
    fn listed(page: &str) -> (Vec<(String, String)>, Vec<String>) {
        let v: serde_json::Value = serde_json::from_str(page).unwrap_or_else(|e| panic!("{e}: {page}"));
        let data = &v["data"];
        let active = data["activeTargets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["scrapePool"].as_str().unwrap().into(),
                    t["health"].as_str().unwrap().into(),
                )
            })
            .collect();
        let dropped = data["droppedTargets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["discoveredLabels"]["job"].as_str().unwrap().into())
            .collect();
        (active, dropped)
    }

    #[test]
    fn targets_are_listed_by_pool_and_filtered_by_state_and_pool() {
        let (b1, a, b2) = (
            labels("b-job", "127.0.0.1:1", &[]),
            labels("a job", "127.0.0.1:2", &[]),
            labels("b-job", "127.0.0.1:3", &[]),
        );
        let (unknown, mut up) = (TargetStats::default(), TargetStats::default());
        up.succeeded(2_000, 0.001);
        let active = [target(&b1, &up), target(&a, &unknown), target(&b2, &unknown)];
        let meta = [
            ("__address__".to_string(), "10.0.0.9:80".to_string()),
            ("job".to_string(), "a job".to_string()),
        ];
        let dropped: [DroppedTarget<'_>; 1] = [("a job", &meta)];
        let page = |query: &str| {
            let mut out = String::new();
            render(&mut out, query, "n", active.into_iter(), dropped.into_iter());
            listed(&out)
        };
        let all = (
            vec![
                ("a job".to_string(), "unknown".to_string()),
                ("b-job".to_string(), "up".to_string()),
                ("b-job".to_string(), "unknown".to_string()),
            ],
            vec!["a job".to_string()],
        );
        assert_eq!(page(""), all);
        assert_eq!(page("state=any"), all);
        assert_eq!(page("state=ANY&state=dropped"), all);
        assert_eq!(page("state=active"), (all.0.clone(), vec![]));
        assert_eq!(page("state=Dropped"), (vec![], all.1.clone()));
        assert_eq!(page("state=none"), (vec![], vec![]));
        assert_eq!(page("scrapePool=a%20job"), (all.0[..1].to_vec(), all.1.clone()));
        assert_eq!(
            page("scrapePool=a+job&state=active"),
            (all.0[..1].to_vec(), vec![])
        );
        assert_eq!(page("scrapePool=b-job"), (all.0[1..].to_vec(), vec![]));
        assert_eq!(page("scrapePool=c"), (vec![], vec![]));
        assert_eq!(page("scrapePool="), all);
    }

    #[test]
    fn a_target_never_scraped_shows_go_zero_time() {
        let l = labels("j", "h:1", &[]);
        let stats = TargetStats::default();
        let mut out = String::new();
        render(
            &mut out,
            "",
            "n",
            [target(&l, &stats)].into_iter(),
            std::iter::empty(),
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let t = &v["data"]["activeTargets"][0];
        assert_eq!(t["lastScrape"], "0001-01-01T00:00:00Z");
        assert_eq!(t["lastScrapeDuration"], 0.0);
        assert_eq!(t["health"], "unknown");
        assert_eq!(t["lastError"], "");
        assert_eq!(t["globalUrl"], "http://h:1/metrics");
    }
}
