//! What the agent puts on the wire to a receiver, checked by a recording
//! receiver written here: remote-write headers, the plan's tenant header,
//! bearer auth re-read when the token file changes, a snappy protobuf body
//! that decodes to the expected series, and a 409 that drops one batch
//! without blocking the ones behind it.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use outpost_core::plan::{
    self, Agent, Auth, Budget, Fsync, LabelPair, Plan, Queue, Receiver, Role, SelfScrape, StrId, Wal,
};

mod peers_support;
use peers_support::{ChildGuard, WriteRequest};

struct Recorded {
    path: String,
    headers: HashMap<String, String>,
    request: WriteRequest,
    status: u16,
}

/// Answers 409 to the first request and 200 after; records everything.
struct RecordingReceiver {
    port: u16,
    seen: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn read_request(s: &mut TcpStream) -> Option<(String, HashMap<String, String>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_string();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((path, headers, body))
}

impl RecordingReceiver {
    fn start() -> RecordingReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let thread = thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                let Ok((mut s, _)) = listener.accept() else {
                    thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = s.set_nonblocking(false);
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                while !stop2.load(Ordering::Relaxed) {
                    let Some((path, headers, body)) = read_request(&mut s) else {
                        break;
                    };
                    let request = peers_support::decode_write_request(&body)
                        .unwrap_or_else(|e| panic!("remote-write body: {e}"));
                    let mut seen = seen2.lock().unwrap();
                    let status = if seen.is_empty() { 409 } else { 200 };
                    seen.push(Recorded {
                        path,
                        headers,
                        request,
                        status,
                    });
                    drop(seen);
                    let reason = if status == 200 { "OK" } else { "Conflict" };
                    let _ = write!(s, "HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\n\r\n");
                }
            }
        });
        RecordingReceiver {
            port,
            seen,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for RecordingReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn plan(receiver_port: u16, token_file: &Path, wal: &Path) -> Plan {
    let mut strings: Vec<String> = Vec::new();
    let mut id = |s: &str| {
        if let Some(i) = strings.iter().position(|x| x == s) {
            return StrId(i as u32);
        }
        strings.push(s.to_string());
        StrId(strings.len() as u32 - 1)
    };
    let p = Plan {
        strings: Vec::new(),
        agent: Agent {
            cluster: id("cluster-02"),
            tenant: Some(id("tenant-a")),
            role: Role::Cluster,
        },
        external_labels: vec![
            LabelPair {
                name: id("cluster"),
                value: id("cluster-02"),
            },
            LabelPair {
                name: id("tenant"),
                value: id("tenant-a"),
            },
        ],
        receiver: Receiver {
            url: id(&format!("http://127.0.0.1:{receiver_port}/api/v1/receive")),
            tenant_header: Some(LabelPair {
                name: id("THANOS-TENANT"),
                value: id("tenant-a"),
            }),
            tls: None,
            auth: Auth::BearerTokenFile(id(&token_file.display().to_string())),
            remote_timeout_ms: 5_000,
            write_relabel: Vec::new(),
        },
        queue: Queue {
            capacity: 1_000,
            min_shards: 1,
            max_shards: 1,
            max_samples_per_send: 500,
            batch_send_deadline_ms: 100,
            min_backoff_ms: 30,
            max_backoff_ms: 200,
            max_batch_bytes: 128 * 1024,
            max_sample_age_ms: 3_600_000,
        },
        wal: Wal {
            dir: id(&wal.display().to_string()),
            max_bytes: 16 << 20,
            segment_bytes: 1 << 20,
            fsync: Fsync::IntervalMs(500),
        },
        node: None,
        scrape_jobs: Vec::new(),
        self_scrape: SelfScrape {
            interval_ms: 300,
            job: id("outpost"),
        },
        budget: Budget {
            cpu_request_millis: 100,
            cpu_limit_millis: 200,
            memory_request_bytes: 64 << 20,
            memory_limit_bytes: 256 << 20,
        },
    };
    Plan { strings, ..p }
}

fn wait_for<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn agent_sends_tenant_header_rotated_token_and_survives_a_409() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = RecordingReceiver::start();
    let token = dir.path().join("token");
    std::fs::write(&token, "first-token\n").unwrap();
    let plan_path = dir.path().join("cluster.plan");
    std::fs::write(
        &plan_path,
        plan::encode(&plan(receiver.port, &token, &dir.path().join("wal"))).unwrap(),
    )
    .unwrap();
    let listen = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = std::fs::File::create(dir.path().join("outpost.log")).unwrap();
    let _agent = ChildGuard(Some(
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
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    ));

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
            for ts in &r.request.timeseries {
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
            .flat_map(|r| &r.request.timeseries)
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
    let metrics = wait_for("dropped counter", Duration::from_secs(10), || {
        let mut s = TcpStream::connect(("127.0.0.1", listen)).ok()?;
        write!(s, "GET /metrics HTTP/1.0\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    });
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

fn get_metrics(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(s, "GET /metrics HTTP/1.0\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
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
    let unused = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut p = plan(unused, &token, &dir.path().join("wal"));
    p.queue.max_batch_bytes = 4096;
    p.wal.segment_bytes = 8192;
    p.wal.max_bytes = 32 * 1024;
    p.self_scrape.interval_ms = 50;
    p.queue.batch_send_deadline_ms = 50;
    let plan_path = dir.path().join("cluster.plan");
    std::fs::write(&plan_path, plan::encode(&p).unwrap()).unwrap();
    let listen = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = std::fs::File::create(dir.path().join("outpost.log")).unwrap();
    let _agent = ChildGuard(Some(
        Command::new(env!("CARGO_BIN_EXE_outpost"))
            .args(["run", "--plan"])
            .arg(&plan_path)
            .args(["--listen", &format!("127.0.0.1:{listen}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    ));
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
