//! The operator's status pages against Prometheus 2.42 (issue 20, section 1).
//!
//! `/api/v1/targets`: Prometheus and the `outpost` binary scrape the same
//! three targets with the same settings, one up, one refusing connections
//! and one over its sample limit; both pages are read with serde_json and
//! every field both have is compared: labels, discovered labels, pool, URLs,
//! intervals and health exactly, the last error by meaning (the wording is
//! each implementation's own), the last scrape's time and duration by range.
//! The query parameters `state` and `scrapePool` must select the same
//! targets on both.
//!
//! `/metrics/node`: Prometheus scrapes the agent's node page while the
//! agent ships the same collectors to it by remote write; the series of the
//! two jobs must be the same, except what the node section's
//! `metric_relabel` drops from what is shipped (the page is the collectors'
//! text before it).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use outpost_core::plan::{Collector, Limits, RelabelAction};
use outpost_test_support::*;
use serde_json::Value;

/// 50 series: over a sample limit of 10.
fn target_body() -> String {
    let mut body = String::from("# TYPE app_requests_total counter\n");
    for i in 0..50 {
        body.push_str(&format!("app_requests_total{{path=\"/p{i}\"}} {i}\n"));
    }
    body
}

/// The name Prometheus puts in `globalUrl` for loopback targets (Go's
/// `os.Hostname`); the agent is given it as its node name.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

fn targets_page(port: u16, query: &str) -> Value {
    try_targets_page(port, query).unwrap_or_else(|| panic!("no answer to /api/v1/targets{query}"))
}

/// `None` while nothing listens on `port` yet.
fn try_targets_page(port: u16, query: &str) -> Option<Value> {
    let path = format!("/api/v1/targets{query}");
    let (status, body) = http_get(port, &path)?;
    assert_eq!(status, 200, "{path}: {body}");
    let page: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}\n{body}"));
    assert_eq!(page["status"], "success", "{body}");
    Some(page)
}

fn active(page: &Value) -> &Vec<Value> {
    page["data"]["activeTargets"]
        .as_array()
        .expect("activeTargets is a list")
}

/// The active target of `pool`, once its first scrape has ended.
fn scraped<'a>(page: &'a Value, pool: &str) -> Option<&'a Value> {
    active(page)
        .iter()
        .find(|t| t["scrapePool"] == pool && t["health"] != "unknown")
}

/// Unix milliseconds of an RFC 3339 time with a zone (`Z` or `+hh:mm`).
fn unix_ms(text: &str) -> i64 {
    let n =
        |range: std::ops::Range<usize>| -> i64 { text[range].parse().unwrap_or_else(|_| panic!("{text}")) };
    let (y, mo, d) = (n(0..4), n(5..7), n(8..10));
    let (h, mi, s) = (n(11..13), n(14..16), n(17..19));
    let rest = &text[19..];
    let zone_at = rest
        .find(['Z', '+', '-'])
        .unwrap_or_else(|| panic!("no zone in {text}"));
    let fraction = rest[..zone_at].trim_start_matches('.');
    let ms: i64 = format!("{fraction:0<3}")[..3].parse().unwrap();
    let zone = &rest[zone_at..];
    let offset_min = match zone {
        "Z" => 0,
        _ => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            sign * (zone[1..3].parse::<i64>().unwrap() * 60 + zone[4..6].parse::<i64>().unwrap())
        }
    };
    // Days since 1970-01-01 of the civil date (March-based years).
    let (y, mo) = if mo <= 2 { (y - 1, mo + 9) } else { (y, mo - 3) };
    let days = 365 * y + y / 4 - y / 100 + y / 400 + (153 * mo + 2) / 5 + d - 1 - 719_468;
    ((days * 86_400 + h * 3_600 + mi * 60 + s - offset_min * 60) * 1_000) + ms
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

#[test]
fn rfc3339_reader_agrees_with_date() {
    assert_eq!(unix_ms("1970-01-01T00:00:01Z"), 1_000);
    assert_eq!(unix_ms("2026-11-24T16:50:39.1Z"), 1_795_539_039_100);
    assert_eq!(unix_ms("2026-11-24T17:50:39.123456789+01:00"), 1_795_539_039_123);
}

#[test]
fn targets_page_agrees_with_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let target = TargetServer::start(target_body());
    let refused = format!("127.0.0.1:{}", free_port());
    let up = target.address();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 800ms\n\
         scrape_configs:\n\
         - job_name: app\n  static_configs:\n  - targets: ['{up}']\n    labels: {{team: a, zone: z}}\n\
         - job_name: refused\n  static_configs:\n  - targets: ['{refused}']\n\
         - job_name: limited\n  scrape_interval: 1500ms\n  sample_limit: 10\n  static_configs:\n  - targets: ['{up}']\n"
    );
    let Some(prom) = Prometheus::start_with_config(&dir.path().join("prom"), free_port(), &config) else {
        return;
    };
    let plan = PlanBuilder::new()
        .receiver_url(&prom.write_url())
        .wal_dir(&dir.path().join("wal"))
        .node_collectors(&[Collector::Loadavg])
        .scrape_job("app", &[&up])
        .job_labels(&[("team", "a"), ("zone", "z")])
        .scrape_job("refused", &[&refused])
        .scrape_job("limited", &[&up])
        .job_timing(1_500, 800)
        .job_limits(Limits {
            samples: 10,
            ..LIMITS
        })
        .build();
    let plan_path = write_plan(dir.path(), "plan.bin", &plan);
    let host = hostname();
    let log = dir.path().join("outpost.log");
    let port = free_port();
    let mut agent = outpost!().start(&plan_path, port, &host, &log);

    let pools = ["app", "refused", "limited"];
    let (theirs, ours) = wait_for("both have scraped every target", Duration::from_secs(30), || {
        assert!(agent.is_running(), "the agent exited\n{}", log_text(&log));
        let ours = try_targets_page(port, "")?;
        let theirs = targets_page(prom.port, "");
        let all = |page: &Value, pools: &[&str]| pools.iter().all(|p| scraped(page, p).is_some());
        (all(&theirs, &pools) && all(&ours, &[&pools[..], &["node-exporter", "outpost"]].concat()))
            .then_some((theirs, ours))
    });
    let read_at = now_ms();

    for pool in pools {
        let (p, o) = (scraped(&theirs, pool).unwrap(), scraped(&ours, pool).unwrap());
        let what = format!("pool {pool}:\nPrometheus {p:#}\noutpost {o:#}");
        let fields = |t: &Value| t.as_object().unwrap().keys().cloned().collect::<BTreeSet<_>>();
        assert_eq!(fields(p), fields(o), "{what}");
        for field in [
            "discoveredLabels",
            "labels",
            "scrapePool",
            "scrapeUrl",
            "globalUrl",
            "health",
            "scrapeInterval",
            "scrapeTimeout",
        ] {
            assert_eq!(p[field], o[field], "{field} of {what}");
        }
        for t in [p, o] {
            let age = read_at - unix_ms(t["lastScrape"].as_str().unwrap());
            assert!((-100..5_000).contains(&age), "lastScrape {age} ms ago: {what}");
            let took = t["lastScrapeDuration"].as_f64().unwrap();
            assert!((0.0..0.8).contains(&took), "lastScrapeDuration {took}: {what}");
        }
        let (p_err, o_err) = (p["lastError"].as_str().unwrap(), o["lastError"].as_str().unwrap());
        eprintln!(
            "{pool}: lastError Prometheus {p_err:?}, outpost {o_err:?}; lastScrape {} / {}",
            p["lastScrape"], o["lastScrape"]
        );
        match pool {
            "app" => assert_eq!((p_err, o_err), ("", ""), "{what}"),
            // Go: `Get "URL": dial tcp ADDR: connect: connection refused`;
            // outpost names the address and the errno instead of the URL.
            "refused" => {
                assert!(p_err.ends_with("connect: connection refused"), "{what}");
                let ours = format!("connect to {refused} failed: connection refused (os error 111)");
                assert_eq!(o_err, ours, "{what}");
            }
            // Prometheus names the rule, outpost the plan field and its value.
            "limited" => {
                assert_eq!(p_err, "sample limit exceeded", "{what}");
                assert!(o_err.contains("limits.samples (10)"), "{what}");
            }
            _ => unreachable!(),
        }
    }
    assert_eq!(scraped(&ours, "app").unwrap()["health"], "up");
    assert_eq!(scraped(&ours, "refused").unwrap()["health"], "down");
    assert_eq!(scraped(&ours, "limited").unwrap()["health"], "down");

    // The in-process targets: the node collectors name their page, the
    // self-scrape the agent's /metrics, both at NODE_NAME:PORT.
    let node = scraped(&ours, "node-exporter").unwrap();
    let node_url = format!("http://{host}:{port}/metrics/node");
    assert_eq!(node["scrapeUrl"], node_url.as_str(), "{node:#}");
    assert_eq!(node["globalUrl"], node_url.as_str(), "{node:#}");
    assert_eq!(
        node["labels"],
        serde_json::json!({"instance": host, "job": "node-exporter"}),
        "{node:#}"
    );
    assert_eq!(node["discoveredLabels"]["__address__"], format!("{host}:{port}"));
    assert_eq!(node["health"], "up", "{node:#}");
    assert_eq!(node["scrapeTimeout"], node["scrapeInterval"], "{node:#}");
    let own = scraped(&ours, "outpost").unwrap();
    assert_eq!(own["scrapeUrl"], format!("http://{host}:{port}/metrics"));
    assert_eq!(own["labels"]["instance"], format!("{host}:{port}"));
    let (status, page) = http_get(port, "/metrics/node").unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("\nnode_load1 "), "{page}");
    let bytes = |port: u16, path: &str| http_get(port, path).map_or(0, |(_, body)| body.len());
    eprintln!(
        "bytes: /api/v1/targets outpost {} (5 targets), Prometheus {} (3 targets); /metrics/node {}",
        bytes(port, "/api/v1/targets"),
        bytes(prom.port, "/api/v1/targets"),
        page.len()
    );

    // The same queries pick the same targets (outpost's in-process ones
    // aside, which Prometheus does not have).
    let picked = |page: &Value| {
        let dropped = page["data"]["droppedTargets"].as_array().unwrap().len();
        let active: Vec<String> = active(page)
            .iter()
            .map(|t| t["scrapePool"].as_str().unwrap().to_string())
            .filter(|p| p != "node-exporter" && p != "outpost")
            .collect();
        (active, dropped)
    };
    for query in [
        "?state=active",
        "?state=dropped",
        "?state=Any",
        "?state=bogus",
        "?scrapePool=limited",
        "?scrapePool=refused&state=active",
        "?scrapePool=refused&state=dropped",
        "?scrapePool=nope",
    ] {
        let (p, o) = (targets_page(prom.port, query), targets_page(port, query));
        assert_eq!(picked(&p), picked(&o), "{query}");
    }
    assert_eq!(
        picked(&targets_page(port, "?state=active")).0,
        ["app", "limited", "refused"],
        "pools in name order"
    );
    let only_node = targets_page(port, "?scrapePool=node-exporter");
    assert_eq!(active(&only_node).len(), 1);
    assert_eq!(
        agent.terminate(Duration::from_secs(5)).and_then(|s| s.code()),
        Some(0)
    );
}

/// The label sets of the series `selector` gives at this moment, without
/// `job`, `instance` and `extra` labels, and without the series each
/// scrape adds (`up`, `scrape_*`).
fn series(prom: &Prometheus, selector: &str, drop_labels: &[&str]) -> BTreeSet<Vec<(String, String)>> {
    let answer: Value = serde_json::from_str(&prom.query(selector)).unwrap();
    answer["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["metric"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(n, _)| {
                    !["job", "instance"].contains(&n.as_str()) && !drop_labels.contains(&n.as_str())
                })
                .map(|(n, v)| (n.clone(), v.as_str().unwrap().to_string()))
                .collect::<Vec<_>>()
        })
        .filter(|labels| {
            let name = &labels.iter().find(|(n, _)| n == "__name__").unwrap().1;
            name != "up" && !name.starts_with("scrape_")
        })
        .collect()
}

#[test]
fn prometheus_scrapes_the_node_page_and_finds_what_is_shipped() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 800ms\n\
         scrape_configs:\n\
         - job_name: migration\n  metrics_path: /metrics/node\n  static_configs:\n  - targets: ['127.0.0.1:{port}']\n"
    );
    let Some(prom) = Prometheus::start_with_config(&dir.path().join("prom"), free_port(), &config) else {
        return;
    };
    let mut plan = PlanBuilder::new()
        .receiver_url(&prom.write_url())
        .external_labels(&[("cluster", "c1")])
        .wal_dir(&dir.path().join("wal"))
        .node_collectors(&Collector::ALL)
        .build();
    // Shipped without node_load15; the page still shows it.
    let rules = intern_rules(
        &mut plan,
        &[Rule::new(RelabelAction::Drop)
            .sources(&["__name__"])
            .regex("node_load15")],
    );
    plan.node.as_mut().unwrap().metric_relabel = rules;
    let plan_path = write_plan(dir.path(), "plan.bin", &plan);
    let log = dir.path().join("outpost.log");
    let mut agent = outpost!().start(&plan_path, port, "edge-node", &log);

    wait_for(
        "Prometheus scrapes the node page",
        Duration::from_secs(30),
        || {
            assert!(agent.is_running(), "the agent exited\n{}", log_text(&log));
            let up = prom.query("up{job=\"migration\"} == 1");
            let shipped = prom.query("node_load1{job=\"node-exporter\"}");
            (up.contains("\"value\"") && shipped.contains("\"value\"")).then_some(())
        },
    );
    // A few more scrapes of both, so each has seen every collector's series.
    std::thread::sleep(Duration::from_secs(3));
    let scraped = series(&prom, "{job=\"migration\"}", &[]);
    let shipped = series(&prom, "{job=\"node-exporter\"}", &["cluster"]);
    let load15 = |s: &Vec<(String, String)>| s.iter().any(|(n, v)| n == "__name__" && v == "node_load15");
    assert!(scraped.iter().any(load15), "the page is before metric_relabel");
    assert!(!shipped.iter().any(load15), "node_load15 is not shipped");
    let expected: BTreeSet<_> = scraped.iter().filter(|s| !load15(s)).cloned().collect();
    let names = |set: &BTreeSet<Vec<(String, String)>>| {
        set.iter()
            .map(|s| s.iter().find(|(n, _)| n == "__name__").unwrap().1.clone())
            .collect::<BTreeSet<_>>()
    };
    assert!(names(&expected).len() > 100, "{:?}", names(&expected));
    assert_eq!(
        expected.difference(&shipped).collect::<Vec<_>>(),
        Vec::<&Vec<(String, String)>>::new(),
        "scraped from the page, not shipped"
    );
    assert_eq!(
        shipped.difference(&expected).collect::<Vec<_>>(),
        Vec::<&Vec<(String, String)>>::new(),
        "shipped, not on the page"
    );
    eprintln!(
        "{} series in {} families on the node page, the same shipped but node_load15",
        expected.len() + 1,
        names(&scraped).len()
    );
    assert_eq!(
        agent.terminate(Duration::from_secs(5)).and_then(|s| s.code()),
        Some(0)
    );
}
