//! One agent against a loopback server that misbehaves in every way a
//! scraped workload can (issue 10, hostile targets): each hostile target's
//! scrape must fail with a named reason, its `up` must be 0 at the receiver,
//! the one well-behaved target must keep delivering with `up` 1, and the
//! agent's RSS must stay below the plan's worst-case bound.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use outpost_core::plan::Sharing;
use outpost_test_support::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Hostility {
    GzipBomb,
    OversizedBody,
    EndlessChunked,
    Slowloris,
    MillionSeries,
    HugeLabelValue,
    InvalidUtf8,
    MalformedLines,
}

impl Hostility {
    const ALL: [Hostility; 8] = [
        Hostility::GzipBomb,
        Hostility::OversizedBody,
        Hostility::EndlessChunked,
        Hostility::Slowloris,
        Hostility::MillionSeries,
        Hostility::HugeLabelValue,
        Hostility::InvalidUtf8,
        Hostility::MalformedLines,
    ];

    /// The failure reasons that correctly name this attack. Two are allowed
    /// where the agent may legitimately notice either limit first (e.g. an
    /// endless body ends on the size limit on a fast link, on the timeout on a
    /// slow one).
    fn accepted_reasons(self) -> &'static [&'static str] {
        match self {
            Hostility::GzipBomb => &["decompressed_size_limit", "body_size_limit"],
            Hostility::OversizedBody => &["body_size_limit"],
            Hostility::EndlessChunked => &["body_size_limit", "timeout"],
            Hostility::Slowloris => &["timeout"],
            // Its series may outgrow the shared series pool before the sample limit.
            Hostility::MillionSeries => &["sample_limit", "body_size_limit", "series_pool_full"],
            Hostility::HugeLabelValue => &["label_value_length_limit", "line_too_long"],
            Hostility::InvalidUtf8 => &["invalid_utf8"],
            Hostility::MalformedLines => &["parse_error"],
        }
    }
}

/// A gzip member whose inflated size is `inflated` bytes of exposition comments.
/// The trailer's CRC is left zero: the agent must stop at its decoded-size
/// limit long before it could reach the trailer, so the CRC is never checked.
fn gzip_bomb(inflated: usize) -> Vec<u8> {
    let line = format!("#{}\n", "x".repeat(98));
    let plain = line.repeat(inflated / line.len());
    let deflated = miniz_oxide::deflate::compress_to_vec(plain.as_bytes(), 6);
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    out.extend_from_slice(&deflated);
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(plain.len() as u32).to_le_bytes());
    out
}

/// Serves one hostile behaviour on its own port, one thread per connection;
/// every writer checks `stop` so the server ends with its guard.
struct HostileServer {
    port: u16,
    _server: LoopbackServer,
}

impl HostileServer {
    fn start(kind: Hostility, bomb: Arc<Vec<u8>>, body_limit: usize) -> HostileServer {
        let server = LoopbackServer::start("127.0.0.1:0", move |s, stop| {
            serve_hostile(s, kind, stop, &bomb, body_limit)
        });
        HostileServer {
            port: server.port(),
            _server: server,
        }
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn read_request_head(s: &mut TcpStream, stop: &AtomicBool) -> bool {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = s.set_write_timeout(Some(Duration::from_millis(500)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        match s.read(&mut chunk) {
            Ok(0) => return false,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    return true;
                }
                if buf.len() > 64 * 1024 {
                    return false;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return false,
        }
    }
    false
}

/// Writes `chunk` until the peer goes away, `stop` is set or `max_writes` is reached.
fn write_repeatedly(
    s: &mut TcpStream,
    stop: &AtomicBool,
    max_writes: usize,
    mut chunk: impl FnMut(usize) -> Vec<u8>,
) {
    for i in 0..max_writes {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        match s.write_all(&chunk(i)) {
            Ok(()) => {}
            // A full send buffer: the agent stopped reading, keep the
            // connection open so it has to time out or close on its own.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

/// Answers one request per connection, then closes.
fn serve_hostile(mut s: TcpStream, kind: Hostility, stop: &AtomicBool, bomb: &[u8], body_limit: usize) {
    if !read_request_head(&mut s, stop) {
        return;
    }
    let head =
        |extra: &str| format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n{extra}\r\n");
    match kind {
        Hostility::GzipBomb => {
            let h = head(&format!(
                "Content-Encoding: gzip\r\nContent-Length: {}\r\n",
                bomb.len()
            ));
            let _ = s.write_all(h.as_bytes()).and_then(|_| s.write_all(bomb));
        }
        Hostility::OversizedBody => {
            // Valid exposition, twice the limit, honestly announced.
            let line = b"oversized_metric_total 1\n";
            let lines = 2 * body_limit / line.len();
            let h = head(&format!("Content-Length: {}\r\n", lines * line.len()));
            if s.write_all(h.as_bytes()).is_ok() {
                write_repeatedly(&mut s, stop, lines / 1000 + 1, |_| line.repeat(1000));
            }
        }
        Hostility::EndlessChunked => {
            if s.write_all(head("Transfer-Encoding: chunked\r\n").as_bytes())
                .is_ok()
            {
                write_repeatedly(&mut s, stop, usize::MAX, |i| {
                    let payload = format!("# endless comment {i:>48}\n").repeat(256);
                    format!("{:x}\r\n{payload}\r\n", payload.len()).into_bytes()
                });
            }
        }
        Hostility::Slowloris => {
            let body = b"slow_metric 1\n";
            let h = head(&format!("Content-Length: {}\r\n", body.len()));
            if s.write_all(h.as_bytes()).is_ok() {
                for b in body {
                    if s.write_all(&[*b]).is_err() {
                        return;
                    }
                    for _ in 0..10 {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        }
        Hostility::MillionSeries => {
            // Generated line by line as it is written, never held in memory.
            const SERIES: usize = 1_000_000;
            const PER_WRITE: usize = 1000;
            if s.write_all(head("Transfer-Encoding: chunked\r\n").as_bytes())
                .is_ok()
            {
                write_repeatedly(&mut s, stop, SERIES / PER_WRITE, |i| {
                    let mut payload = String::with_capacity(PER_WRITE * 40);
                    for j in 0..PER_WRITE {
                        payload.push_str(&format!("many_series{{id=\"{}\"}} 1\n", i * PER_WRITE + j));
                    }
                    format!("{:x}\r\n{payload}\r\n", payload.len()).into_bytes()
                });
                let _ = s.write_all(b"0\r\n\r\n");
            }
        }
        Hostility::HugeLabelValue => {
            let body = format!("huge_label{{v=\"{}\"}} 1\n", "v".repeat(1 << 20));
            let h = head(&format!("Content-Length: {}\r\n", body.len()));
            let _ = s
                .write_all(h.as_bytes())
                .and_then(|_| s.write_all(body.as_bytes()));
        }
        Hostility::InvalidUtf8 => {
            let mut body = b"utf8_ok 1\nutf8_bad{v=\"".to_vec();
            body.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28]);
            body.extend_from_slice(b"\"} 1\n");
            let h = head(&format!("Content-Length: {}\r\n", body.len()));
            let _ = s.write_all(h.as_bytes()).and_then(|_| s.write_all(&body));
        }
        Hostility::MalformedLines => {
            let body = "malformed_ok 1\nmalformed{a=\"1\" 2\n}{ nonsense\nno_value_here\n";
            let h = head(&format!("Content-Length: {}\r\n", body.len()));
            let _ = s
                .write_all(h.as_bytes())
                .and_then(|_| s.write_all(body.as_bytes()));
        }
    }
    // Let the agent read what was sent before the close.
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 1024];
    for _ in 0..10 {
        if stop.load(Ordering::Relaxed) || matches!(s.read(&mut sink), Ok(0) | Err(_)) {
            return;
        }
    }
}

fn vm_rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Samples VmRSS every 50 ms until dropped; keeps the peak.
struct RssSampler {
    peak: Arc<AtomicU64>,
    samples: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let peak = Arc::new(AtomicU64::new(0));
        let samples = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, n, flag) = (peak.clone(), samples.clone(), stop.clone());
        let thread = thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                if let Some(rss) = vm_rss_bytes(pid) {
                    p.fetch_max(rss, Ordering::Relaxed);
                    n.fetch_add(1, Ordering::Relaxed);
                }
                thread::sleep(Duration::from_millis(50));
            }
        });
        RssSampler {
            peak,
            samples,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `up` values the receiver got, per instance, and the instances that sent `good_metric`.
fn received_up(receiver: &RecordingReceiver) -> (HashMap<String, Vec<f64>>, usize) {
    let seen = receiver.seen.lock().unwrap();
    let mut up: HashMap<String, Vec<f64>> = HashMap::new();
    let mut good_samples = 0;
    for r in seen.iter() {
        let Ok(req) = &r.request else { continue };
        for ts in &req.timeseries {
            match ts.label("__name__") {
                Some("up") => {
                    let instance = ts.label("instance").unwrap_or("").to_string();
                    up.entry(instance)
                        .or_default()
                        .extend(ts.samples.iter().map(|s| s.value));
                }
                Some("good_metric") => good_samples += ts.samples.len(),
                _ => {}
            }
        }
    }
    (up, good_samples)
}

#[test]
fn hostile_targets_fail_by_name_and_stay_within_the_memory_bound() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = RecordingReceiver::start(Box::new(|_| (200, Vec::new())));
    let good = TargetServer::start("# TYPE good_metric gauge\ngood_metric{kind=\"fine\"} 42\n".to_string());
    let body_limit = LIMITS.body_bytes as usize;
    let bomb = Arc::new(gzip_bomb(64 << 20));
    assert!(
        bomb.len() < body_limit / 4,
        "the bomb must be small on the wire: {} bytes",
        bomb.len()
    );
    println!(
        "gzip bomb: {} bytes on the wire, {} bytes inflated, body limit {body_limit}",
        bomb.len(),
        64 << 20
    );
    let hostile: Vec<(Hostility, HostileServer)> = Hostility::ALL
        .iter()
        .map(|&k| (k, HostileServer::start(k, bomb.clone(), body_limit)))
        .collect();

    let mut targets = vec![good.address()];
    targets.extend(hostile.iter().map(|(_, s)| s.address()));
    let plan = PlanBuilder::new()
        .receiver_url(&receiver.url())
        .wal_dir(&dir.path().join("wal"))
        // The default slots and series pool, shared by the good target and
        // the hostile ones.
        .sharing(Sharing::DEFAULT)
        .scrape_job("testapp", &targets)
        // Inflating and parsing the bomb's first 4 MiB takes a debug build
        // well past the default 800 ms on a starved machine. Slowloris
        // (14 s for its body) still times out.
        .job_timing(4_000, 3_000)
        .build();
    let bound = plan.worst_case_memory().total();
    let plan_path = write_plan(dir.path(), "plan.bin", &plan);
    let listen = free_port();
    let log = dir.path().join("agent.log");
    let mut agent = outpost!().start(&plan_path, listen, "hostile-node", &log);
    let pid = agent.pid();
    let rss = RssSampler::start(pid);
    let agent_log = || std::fs::read_to_string(&log).unwrap_or_default();

    // Every hostile target has failed with an accepted reason at least twice
    // (so a second attempt after the first failure also failed), and the
    // receiver has `up` for each of them.
    let failures_by_target = wait_for(
        "every hostile target failing by name",
        Duration::from_secs(60),
        || {
            assert!(agent.is_running(), "agent exited; log:\n{}", agent_log());
            let (status, metrics) = http_get(listen, "/metrics")?;
            if status != 200 {
                return None;
            }
            let mut named = Vec::new();
            for (kind, server) in &hostile {
                let instance = format!("instance=\"{}\"", server.address());
                let count: f64 = kind
                    .accepted_reasons()
                    .iter()
                    .map(|r| {
                        metric_sum(
                            &metrics,
                            "outpost_target_scrape_failures_total",
                            &[&instance, &format!("reason=\"{r}\"")],
                        )
                    })
                    .sum();
                if count < 2.0 {
                    return None;
                }
                named.push((*kind, count, metrics.clone()));
            }
            let (up, good_samples) = received_up(&receiver);
            let all_reported = hostile.iter().all(|(_, s)| up.contains_key(&s.address()));
            let good_up = up.get(&good.address()).is_some_and(|v| v.len() >= 3);
            (all_reported && good_up && good_samples >= 3).then_some(named)
        },
    );

    // The loop may spend seconds on the hostile bodies on a starved machine.
    let (_, metrics) =
        http::http_get_within(listen, "/metrics", Duration::from_secs(30)).expect("agent /metrics");
    for (kind, server) in &hostile {
        let instance = format!("instance=\"{}\"", server.address());
        let reasons: Vec<&str> = metrics
            .lines()
            .filter(|l| l.starts_with("outpost_target_scrape_failures_total{") && l.contains(&instance))
            .collect();
        let count = failures_by_target.iter().find(|(k, _, _)| k == kind).unwrap().1;
        println!(
            "{kind:?} {}: {count} failures with an accepted reason; all: {reasons:?}",
            server.address()
        );
        // Every failure of a hostile target carries a reason that names the attack.
        let accepted: f64 = kind
            .accepted_reasons()
            .iter()
            .map(|r| {
                metric_sum(
                    &metrics,
                    "outpost_target_scrape_failures_total",
                    &[&instance, &format!("reason=\"{r}\"")],
                )
            })
            .sum();
        let all = metric_sum(&metrics, "outpost_target_scrape_failures_total", &[&instance]);
        assert_eq!(
            accepted, all,
            "{kind:?}: failures with other reasons: {reasons:?}"
        );
        let scrapes = metric_sum(&metrics, "outpost_target_scrapes_total", &[&instance]);
        assert!(
            scrapes >= all,
            "{kind:?}: {all} failures but only {scrapes} scrapes"
        );
    }

    let (up, good_samples) = received_up(&receiver);
    for (kind, server) in &hostile {
        let values = &up[&server.address()];
        assert!(!values.is_empty(), "{kind:?}: no up sample at the receiver");
        assert!(
            values.iter().all(|v| *v == 0.0),
            "{kind:?} target {} had up={values:?} at the receiver",
            server.address()
        );
    }
    let good_up = &up[&good.address()];
    assert!(
        good_up.iter().all(|v| *v == 1.0),
        "the well-behaved target must stay up, got {good_up:?}"
    );

    // The good target keeps delivering while the hostile ones keep failing.
    let before = good_samples;
    wait_for("good target still delivering", Duration::from_secs(40), || {
        (received_up(&receiver).1 >= before + 3).then_some(())
    });
    let undecodable = receiver
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.request.is_err())
        .count();
    assert_eq!(undecodable, 0, "every remote-write request must decode");

    assert!(agent.is_running(), "agent exited; log:\n{}", agent_log());
    let peak = rss.peak.load(Ordering::Relaxed);
    let rss_samples = rss.samples.load(Ordering::Relaxed);
    drop(rss);
    println!(
        "peak VmRSS {peak} bytes ({:.1} MiB) over {rss_samples} samples; worst-case bound {bound} bytes ({:.1} MiB)",
        peak as f64 / 1048576.0,
        bound as f64 / 1048576.0
    );
    assert!(rss_samples >= 10, "too few RSS samples: {rss_samples}");
    assert!(
        peak > 0 && peak < bound,
        "peak RSS {peak} must stay below the plan's bound {bound}"
    );

    let status = agent.terminate(Duration::from_secs(10));
    assert!(status.is_some(), "agent did not stop on SIGTERM");
    let seen_kinds: HashSet<Hostility> = failures_by_target.iter().map(|(k, _, _)| *k).collect();
    assert_eq!(seen_kinds.len(), Hostility::ALL.len());
}
