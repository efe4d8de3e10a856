//! What the agent puts on the wire to a receiver, checked by a recording
//! receiver written here: remote-write headers, the plan's tenant header,
//! bearer auth re-read when the token file changes, a snappy protobuf body
//! that decodes to the expected series, and a 409 that drops one batch
//! without blocking the ones behind it.

use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::Duration;

use outpost_core::plan::{self, Fsync, Plan, Queue, Role};
use outpost_test_support::{
    free_port, get_metrics, wait_for, ChildGuard, PlanBuilder, RecordingReceiver, QUEUE,
};

fn plan(receiver_port: u16, token_file: &Path, wal: &Path) -> Plan {
    PlanBuilder::new()
        .role(Role::Cluster)
        .tenant("tenant-a")
        .external_labels(&[("cluster", "cluster-02"), ("tenant", "tenant-a")])
        .receiver_url(&format!("http://127.0.0.1:{receiver_port}/api/v1/receive"))
        .tenant_header("THANOS-TENANT", "tenant-a")
        .bearer_token_file(token_file)
        .queue(Queue {
            capacity: 1_000,
            batch_send_deadline_ms: 100,
            max_backoff_ms: 200,
            max_batch_bytes: 128 * 1024,
            ..QUEUE
        })
        .wal_dir(wal)
        .wal_bounds(16 << 20, 1 << 20)
        .fsync(Fsync::IntervalMs(500))
        .self_scrape(300, "outpost")
        .build()
}

#[test]
fn agent_sends_tenant_header_rotated_token_and_survives_a_409() {
    let dir = tempfile::tempdir().unwrap();
    // 409 to the first request, 200 after.
    let receiver = RecordingReceiver::start(Box::new(|n| (if n == 0 { 409 } else { 200 }, Vec::new())));
    let token = dir.path().join("token");
    std::fs::write(&token, "first-token\n").unwrap();
    let plan_path = dir.path().join("cluster.plan");
    std::fs::write(
        &plan_path,
        plan::encode(&plan(receiver.port, &token, &dir.path().join("wal"))).unwrap(),
    )
    .unwrap();
    let listen = free_port();
    let _agent = ChildGuard::spawn_logged(
        Command::new(env!("CARGO_BIN_EXE_outpost"))
            .args(["run", "--plan"])
            .arg(&plan_path)
            .args([
                "--listen",
                &format!("127.0.0.1:{listen}"),
                "--node-name",
                "n1",
                "--log-format",
                "json",
            ]),
        &dir.path().join("outpost.log"),
    );

    wait_for("three requests", Duration::from_secs(20), || {
        (receiver.seen.lock().unwrap().len() >= 3).then_some(())
    });
    {
        let seen = receiver.seen.lock().unwrap();
        assert_eq!(seen[0].status, 409);
        for r in seen.iter() {
            assert_eq!(r.path, "/api/v1/receive");
            assert_eq!(r.headers["thanos-tenant"], "tenant-a");
            assert_eq!(r.headers["authorization"], "Bearer first-token");
            assert_eq!(r.headers["content-encoding"], "snappy");
            assert_eq!(r.headers["content-type"], "application/x-protobuf");
            assert_eq!(r.headers["x-prometheus-remote-write-version"], "0.1.0");
            for ts in &r.request.as_ref().unwrap().timeseries {
                let names: Vec<&str> = ts.labels.iter().map(|l| l.name.as_str()).collect();
                let mut sorted = names.clone();
                sorted.sort();
                sorted.dedup();
                assert_eq!(names, sorted, "labels sorted and unique");
                assert_eq!(names[0], "__name__");
                let get = |n: &str| ts.labels.iter().find(|l| l.name == n).map(|l| l.value.as_str());
                assert_eq!(get("cluster"), Some("cluster-02"));
                assert_eq!(get("tenant"), Some("tenant-a"));
                assert_eq!(get("job"), Some("outpost"));
            }
        }
        let up = seen
            .iter()
            .flat_map(|r| &r.request.as_ref().unwrap().timeseries)
            .find(|ts| ts.labels[0].value == "up")
            .unwrap();
        assert_eq!(up.samples[0].value, 1.0);
    }

    // The token file rotates: the next requests carry the new token.
    thread::sleep(Duration::from_millis(1100)); // a different mtime, even on coarse clocks
    std::fs::write(&token, "second-token\n").unwrap();
    wait_for("rotated token", Duration::from_secs(20), || {
        let seen = receiver.seen.lock().unwrap();
        seen.iter()
            .any(|r| r.headers["authorization"] == "Bearer second-token")
            .then_some(())
    });

    // The 409'd batch was dropped and counted, and later batches went through.
    let metrics = wait_for("dropped counter", Duration::from_secs(10), || get_metrics(listen));
    let dropped = metrics
        .lines()
        .find(|l| l.starts_with("prometheus_remote_storage_samples_dropped_total{reason=\"http_4xx\""))
        .expect("dropped counter present");
    assert!(!dropped.ends_with(" 0"), "{dropped}");
    assert!(!metrics.contains("first-token") && !metrics.contains("second-token"));
    let log = std::fs::read_to_string(dir.path().join("outpost.log")).unwrap();
    assert!(
        !log.contains("first-token") && !log.contains("second-token"),
        "a secret reached the log"
    );
    assert!(
        log.lines()
            .all(|l| l.starts_with("{\"ts\":\"") && l.ends_with('}')),
        "{log}"
    );
    assert!(
        log.contains("\"msg\":\"receiver refused a batch\",\"url\":"),
        "{log}"
    );
}

fn metric_value(metrics: &str, prefix: &str) -> f64 {
    let line = metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {metrics}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn agent_keeps_its_wal_within_max_bytes_while_the_receiver_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t\n").unwrap();
    let unused = free_port();
    let mut p = plan(unused, &token, &dir.path().join("wal"));
    p.queue.max_batch_bytes = 4096;
    p.wal.segment_bytes = 8192;
    p.wal.max_bytes = 32 * 1024;
    p.self_scrape.interval_ms = 50;
    p.queue.batch_send_deadline_ms = 50;
    let plan_path = dir.path().join("cluster.plan");
    std::fs::write(&plan_path, plan::encode(&p).unwrap()).unwrap();
    let listen = free_port();
    let _agent = ChildGuard::spawn_logged(
        Command::new(env!("CARGO_BIN_EXE_outpost"))
            .args(["run", "--plan"])
            .arg(&plan_path)
            .args(["--listen", &format!("127.0.0.1:{listen}")]),
        &dir.path().join("outpost.log"),
    );
    let metrics = wait_for("wal_full drops", Duration::from_secs(30), || {
        let m = get_metrics(listen)?;
        let dropped = metric_value(
            &m,
            "prometheus_remote_storage_samples_dropped_total{reason=\"wal_full\"",
        );
        (dropped > 0.0).then_some(m)
    });
    assert!(metric_value(&metrics, "outpost_wal_bytes ") <= 32.0 * 1024.0);
    assert_eq!(
        metric_value(&metrics, "prometheus_remote_storage_succeeded_samples_total{"),
        0.0
    );
    let on_disk: u64 = std::fs::read_dir(dir.path().join("wal"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".wal"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(on_disk <= 32 * 1024, "{on_disk} bytes of segments on disk");
    let log = std::fs::read_to_string(dir.path().join("outpost.log")).unwrap();
    assert!(log.contains("msg=\"wal: full, dropped oldest segment\""), "{log}");
}
