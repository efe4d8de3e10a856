//! The real `outpost` binary against real peers on loopback: a test target
//! served from this file, and Debian's Prometheus 2.42 as remote-write
//! receiver. Every child process and server thread is stopped by a guard.

use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use outpost_core::plan::{self, Collector, Plan, Queue};
use outpost_test_support::{
    free_port, http_get, outpost, wait_for, write_plan, ChildGuard, PlanBuilder, Prometheus, Signal,
    TargetServer, PROMETHEUS, QUEUE,
};

const TARGET_BODY: &str = "# HELP test_requests_total Requests.\n\
# TYPE test_requests_total counter\n\
test_requests_total{code=\"200\",job=\"scraped\"} 42\n\
# TYPE test_temperature_celsius gauge\n\
test_temperature_celsius 21.5\n";

/// Waits until `q` returns exactly one series; gives its metric object and value.
fn wait_single(prom: &Prometheus, q: &str, time_s: Option<f64>) -> (String, String) {
    wait_for(&format!("series for {q}"), Duration::from_secs(40), || {
        let body = prom.query_at(q, time_s);
        let results = body.matches("\"metric\":").count();
        (results == 1).then(|| {
            let metric = body.split("\"metric\":").nth(1).unwrap();
            let metric = &metric[..metric.find('}').unwrap() + 1];
            let value = body.split("\"value\":[").nth(1).unwrap();
            let value = value.split(',').nth(1).unwrap();
            let value = value.trim_end_matches([']', '}']).trim_matches('"');
            (metric.to_string(), value.to_string())
        })
    })
}

fn test_plan(receiver_port: u16, target_port: u16, wal_dir: &Path) -> Plan {
    test_plan_with_down_target(receiver_port, target_port, wal_dir, None)
}

/// With `down_port`, a second job `down` scrapes a port nobody listens on.
fn test_plan_with_down_target(
    receiver_port: u16,
    target_port: u16,
    wal_dir: &Path,
    down_port: Option<u16>,
) -> Plan {
    let mut plan = PlanBuilder::new()
        .receiver_url(&format!("http://127.0.0.1:{receiver_port}/api/v1/write"))
        .external_labels(&[("cluster", "test-cluster"), ("role", "edge")])
        .queue(Queue {
            max_shards: 2,
            ..QUEUE
        })
        .wal_dir(wal_dir)
        .node_collectors(&[Collector::Meminfo, Collector::Loadavg])
        .scrape_job("testapp", &[format!("127.0.0.1:{target_port}")])
        .job_labels(&[("team", "edge")]);
    if let Some(port) = down_port {
        plan = plan.scrape_job("down", &[format!("127.0.0.1:{port}")]);
    }
    plan.build()
}

fn start_outpost(plan: &Path, listen_port: u16, log: &Path) -> ChildGuard {
    outpost!().start(plan, listen_port, "test-node", log)
}

fn meminfo_total_bytes() -> String {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    (kb * 1024).to_string()
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

// ------------------------------------------------------------ tests

#[test]
fn agent_refuses_a_corrupt_plan_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = plan::encode(&test_plan(1, 2, dir.path())).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    let path = dir.path().join("bad.plan");
    std::fs::write(&path, &bytes).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_outpost"))
        .args(["run", "--plan"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!("outpost: plan {}: plan checksum mismatch", path.display());
    assert!(stderr.starts_with(&expected), "stderr: {stderr}");

    let missing = Command::new(env!("CARGO_BIN_EXE_outpost"))
        .args(["run", "--plan", "/nonexistent/x.plan"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("outpost: plan /nonexistent/x.plan: "));

    let version = Command::new(env!("CARGO_BIN_EXE_outpost"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(version.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("outpost {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn agent_ships_target_and_node_metrics_to_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let prom_port = free_port();
    let Some(prom) = Prometheus::start_on(dir.path(), prom_port) else {
        return;
    };
    let target = TargetServer::start(TARGET_BODY);
    let down_port = free_port();
    let plan = write_plan(
        dir.path(),
        "node.plan",
        &test_plan_with_down_target(prom_port, target.port, &dir.path().join("wal"), Some(down_port)),
    );
    let listen = free_port();
    let mut agent = start_outpost(&plan, listen, &dir.path().join("outpost.log"));

    let instance = format!("127.0.0.1:{}", target.port);
    let (metric, value) = wait_single(&prom, "test_requests_total", None);
    assert_eq!(
        metric,
        format!(
            "{{\"__name__\":\"test_requests_total\",\"cluster\":\"test-cluster\",\"code\":\"200\",\
             \"exported_job\":\"scraped\",\"instance\":\"{instance}\",\"job\":\"testapp\",\"role\":\"edge\",\"team\":\"edge\"}}"
        )
    );
    assert_eq!(value, "42");
    let (_, value) = wait_single(
        &prom,
        "test_temperature_celsius{job=\"testapp\",cluster=\"test-cluster\"}",
        None,
    );
    assert_eq!(value, "21.5");

    let (metric, value) = wait_single(&prom, "up{job=\"testapp\"}", None);
    assert_eq!(
        metric,
        format!(
            "{{\"__name__\":\"up\",\"cluster\":\"test-cluster\",\"instance\":\"{instance}\",\"job\":\"testapp\",\
             \"role\":\"edge\",\"team\":\"edge\"}}"
        )
    );
    assert_eq!(value, "1");
    // A target nobody answers for: up 0 arrives with the scrape's own
    // timestamp, in batches that also carry healthy targets' samples.
    let (metric, value) = wait_single(&prom, "up{job=\"down\"}", None);
    assert_eq!(
        metric,
        format!(
            "{{\"__name__\":\"up\",\"cluster\":\"test-cluster\",\"instance\":\"127.0.0.1:{down_port}\",\"job\":\"down\",\
             \"role\":\"edge\"}}"
        )
    );
    assert_eq!(value, "0");
    let (_, scraped) = wait_single(&prom, "scrape_samples_scraped{job=\"testapp\"}", None);
    assert_eq!(scraped, "2");

    let (metric, value) = wait_single(&prom, "node_memory_MemTotal_bytes", None);
    assert_eq!(
        metric,
        "{\"__name__\":\"node_memory_MemTotal_bytes\",\"cluster\":\"test-cluster\",\"instance\":\"test-node\",\
         \"job\":\"node-exporter\",\"role\":\"edge\"}"
    );
    assert_eq!(value, meminfo_total_bytes());

    // The agent's own counters reach the receiver too (the seed's central query).
    // The first self-scrape may come before the first ack: wait for a later one.
    wait_for("acked samples counted centrally", Duration::from_secs(30), || {
        let (_, v) = wait_single(
            &prom,
            "prometheus_remote_storage_succeeded_samples_total{job=\"outpost\"}",
            None,
        );
        (v.parse::<f64>().unwrap() > 0.0).then_some(())
    });

    // Status endpoints.
    assert_eq!(http_get(listen, "/-/healthy").unwrap().0, 200);
    assert_eq!(http_get(listen, "/-/ready").unwrap().0, 200);
    let (status, info) = http_get(listen, "/api/v1/status/runtimeinfo").unwrap();
    assert_eq!(status, 200);
    assert!(
        info.starts_with("{\"status\":\"success\",\"data\":{\"startTime\":\""),
        "{info}"
    );
    assert!(info.contains("\"reloadConfigSuccess\":true"), "{info}");
    let (status, metrics) = http_get(listen, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains("prometheus_remote_storage_succeeded_samples_total{"),
        "{metrics}"
    );
    assert!(metrics.contains("process_resident_memory_bytes "), "{metrics}");

    let status = agent
        .terminate(Duration::from_secs(5))
        .expect("exits within 5 s of SIGTERM");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn agent_replays_its_wal_once_the_receiver_comes_up() {
    let dir = tempfile::tempdir().unwrap();
    if !Path::new(PROMETHEUS).exists() {
        eprintln!("skipping: {PROMETHEUS} is not installed");
        return;
    }
    let prom_port = free_port();
    let target = TargetServer::start(TARGET_BODY);
    let wal = dir.path().join("wal");
    let plan = write_plan(dir.path(), "node.plan", &test_plan(prom_port, target.port, &wal));

    // First run: the receiver is down, batches pile up in the WAL.
    let mut agent = start_outpost(&plan, free_port(), &dir.path().join("outpost-1.log"));
    let first_start = now_s();
    thread::sleep(Duration::from_secs(4));
    let first_end = now_s();
    let status = agent
        .terminate(Duration::from_secs(5))
        .expect("exits within 5 s of SIGTERM");
    assert_eq!(
        status.code(),
        Some(0),
        "log: {}",
        std::fs::read_to_string(dir.path().join("outpost-1.log")).unwrap()
    );
    let wal_bytes: u64 = std::fs::read_dir(&wal)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".wal"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(wal_bytes > 0, "the first run left its batches in the WAL");

    // The receiver comes up; a second run replays what the first one kept.
    let prom = Prometheus::start_on(&dir.path().join("prom"), prom_port).unwrap();
    let _agent = start_outpost(&plan, free_port(), &dir.path().join("outpost-2.log"));
    // At a time inside the first run only its samples can answer.
    let at = first_end - 0.5;
    assert!(at > first_start);
    let (metric, value) = wait_single(&prom, "up{job=\"testapp\"}", Some(at));
    assert!(metric.contains("\"instance\":\"127.0.0.1:"), "{metric}");
    assert_eq!(value, "1");
    let (_, value) = wait_single(&prom, "test_requests_total", Some(at));
    assert_eq!(value, "42");
    let log = std::fs::read_to_string(dir.path().join("outpost-2.log")).unwrap();
    let replayed: u64 = log
        .split("wal_replay_records=")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no replay count in {log}"));
    assert!(replayed > 0, "{log}");
}

#[test]
fn agent_keeps_its_plan_when_a_reload_brings_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let target = TargetServer::start(TARGET_BODY);
    // No receiver: batches stay in the WAL; this test is about the plan.
    let plan = write_plan(
        dir.path(),
        "node.plan",
        &test_plan(free_port(), target.port, &dir.path().join("wal")),
    );
    let listen = free_port();
    let log = dir.path().join("outpost.log");
    let mut agent = start_outpost(&plan, listen, &log);
    wait_for("ready", Duration::from_secs(20), || {
        http_get(listen, "/-/ready").filter(|(s, _)| *s == 200)
    });
    let info = || http_get(listen, "/api/v1/status/runtimeinfo").unwrap().1;
    assert!(info().contains("\"reloadConfigSuccess\":true"));

    std::fs::write(&plan, b"OUTPOST\0 but not really a plan").unwrap();
    agent.signal(Signal::HUP);
    wait_for("failed reload reported", Duration::from_secs(10), || {
        info().contains("\"reloadConfigSuccess\":false").then_some(())
    });
    assert!(agent.is_running());
    assert_eq!(http_get(listen, "/-/healthy").unwrap().0, 200);
    // The old plan keeps scraping.
    let scrapes = || -> u64 {
        let metrics = http_get(listen, "/metrics").unwrap().1;
        let line = metrics
            .lines()
            .find(|l| l.starts_with("outpost_target_scrapes_total{job=\"testapp\""))
            .unwrap_or_else(|| panic!("no scrape counter in {metrics}"))
            .to_string();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let before = scrapes();
    wait_for("scrapes continue", Duration::from_secs(10), || {
        (scrapes() > before).then_some(())
    });

    write_plan(
        dir.path(),
        "node.plan",
        &test_plan(free_port(), target.port, &dir.path().join("wal")),
    );
    agent.signal(Signal::HUP);
    wait_for("good reload reported", Duration::from_secs(10), || {
        info().contains("\"reloadConfigSuccess\":true").then_some(())
    });
    let status = agent
        .terminate(Duration::from_secs(5))
        .expect("exits within 5 s of SIGTERM");
    assert_eq!(status.code(), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("msg=\"reload failed, keeping the running plan\""),
        "{text}"
    );
    assert!(text.contains("msg=\"plan reloaded\""), "{text}");
}

#[test]
fn agent_counts_scrapes_over_the_sample_limit() {
    let dir = tempfile::tempdir().unwrap();
    let target = TargetServer::start(TARGET_BODY);
    let mut p = test_plan(free_port(), target.port, &dir.path().join("wal"));
    // The body has two samples; one is allowed.
    p.scrape_jobs[0].limits.samples = 1;
    let plan = write_plan(dir.path(), "node.plan", &p);
    let listen = free_port();
    let mut agent = start_outpost(&plan, listen, &dir.path().join("outpost.log"));
    let metrics = wait_for("sample-limit failure counted", Duration::from_secs(20), || {
        let (_, m) = http_get(listen, "/metrics")?;
        m.lines()
            .any(|l| l == "prometheus_target_scrapes_exceeded_sample_limit_total 1")
            .then_some(m)
    });
    let failure = format!(
        "outpost_target_scrape_failures_total{{job=\"testapp\",instance=\"127.0.0.1:{}\",reason=\"sample_limit\"}} 1",
        target.port
    );
    assert!(metrics.lines().any(|l| l == failure), "{metrics}");
    assert_eq!(
        agent.terminate(Duration::from_secs(5)).and_then(|s| s.code()),
        Some(0)
    );
    let log = std::fs::read_to_string(dir.path().join("outpost.log")).unwrap();
    assert!(
        log.contains("reason=sample_limit err=\"more than limits.samples (1) samples\""),
        "{log}"
    );
}
