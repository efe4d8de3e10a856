//! Helpers shared by the `peers_*` tests: child-process and server guards,
//! loopback HTTP, bounded waits, starting the real peers (Prometheus,
//! VictoriaMetrics, outpost), remote-write decoding and plan building.
//! Every server binds 127.0.0.1 on an ephemeral port; every child dies with
//! its guard, also when a test panics.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use outpost_core::plan::{
    self, Agent, Auth, Budget, Collector, Fsync, LabelPair, Limits, NodeCollectors, Plan, Queue, Receiver,
    Role, Scheme, ScrapeJob, SelfScrape, StrId, Wal,
};

pub const PROMETHEUS: &str = "/usr/bin/prometheus";
pub const VICTORIA_METRICS: &str = "/usr/bin/victoria-metrics";

// ------------------------------------------------------------ processes

pub struct ChildGuard(pub Option<Child>);

impl ChildGuard {
    pub fn signal(&self, signal: i32) {
        let child = self.0.as_ref().expect("running");
        // SAFETY: kill(2) on the pid of our own, not yet reaped child.
        unsafe {
            libc::kill(child.id() as i32, signal);
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.0.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGTERM, then a bounded wait for the exit status.
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        self.0.as_ref()?;
        self.signal(libc::SIGTERM);
        let child = self.0.as_mut()?;
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.0 = None;
                return Some(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` every 200 ms until it gives a value; panics naming `what` after `within`.
pub fn wait_for<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// GET on loopback with HTTP/1.0 so the body ends at EOF; gives (status, body).
pub fn http_get(port: u16, path_and_query: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path_and_query} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let out = String::from_utf8_lossy(&out).into_owned();
    let status = out.get(9..12)?.parse().ok()?;
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of one unlabelled or labelled sample line in an exposition body.
pub fn metric_value(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Sum over every line of the family `name` whose label set contains all of `must_contain`.
pub fn metric_sum(body: &str, name: &str, must_contain: &[&str]) -> f64 {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b'{' | b' ')))
        .filter(|l| must_contain.iter().all(|m| l.contains(m)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub struct Prometheus {
    pub port: u16,
    _child: ChildGuard,
}

impl Prometheus {
    /// Prometheus 2.42 as a remote-write receiver; `None` (test skips) when not installed.
    pub fn start(dir: &Path) -> Option<Prometheus> {
        Prometheus::start_on(dir, free_port())
    }

    /// The same on a given port (a test that restarts it on the same address).
    pub fn start_on(dir: &Path, port: u16) -> Option<Prometheus> {
        if !Path::new(PROMETHEUS).exists() {
            eprintln!("skipping: {PROMETHEUS} is not installed (apt install prometheus)");
            return None;
        }
        std::fs::create_dir_all(dir).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, "global:\n  scrape_interval: 1m\n").unwrap();
        let child = Command::new(PROMETHEUS)
            .arg("--web.enable-remote-write-receiver")
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--config.file={}", config.display()))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let p = Prometheus {
            port,
            _child: ChildGuard(Some(child)),
        };
        wait_for("prometheus ready", Duration::from_secs(30), || {
            http_get(port, "/-/ready").filter(|(s, _)| *s == 200)
        });
        Some(p)
    }

    pub fn write_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1/write", self.port)
    }

    /// The raw JSON answer of an instant query.
    pub fn query(&self, q: &str) -> String {
        self.query_at(q, None)
    }

    /// The same, evaluated at `time_s` (Unix seconds) when given.
    pub fn query_at(&self, q: &str, time_s: Option<f64>) -> String {
        let mut path = format!("/api/v1/query?query={}", urlencode(q));
        if let Some(t) = time_s {
            path.push_str(&format!("&time={t:.3}"));
        }
        let (status, body) =
            http_get(self.port, &path).unwrap_or_else(|| panic!("prometheus did not answer query {q}"));
        assert_eq!(status, 200, "query {q}: {body}");
        body
    }
}

pub struct VictoriaMetrics {
    pub port: u16,
    _child: ChildGuard,
}

impl VictoriaMetrics {
    /// Single-node VictoriaMetrics 1.79; `None` (test skips) when not installed.
    pub fn start(dir: &Path) -> Option<VictoriaMetrics> {
        if !Path::new(VICTORIA_METRICS).exists() {
            eprintln!("skipping: {VICTORIA_METRICS} is not installed (apt install victoria-metrics)");
            return None;
        }
        let port = free_port();
        let child = Command::new(VICTORIA_METRICS)
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg(format!("-storageDataPath={}", dir.join("vm").display()))
            .arg("-retentionPeriod=1d")
            // Without it the newest minute is hidden from queries.
            .arg("-search.latencyOffset=0s")
            .arg("-loggerLevel=ERROR")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let vm = VictoriaMetrics {
            port,
            _child: ChildGuard(Some(child)),
        };
        wait_for("victoria-metrics healthy", Duration::from_secs(30), || {
            http_get(port, "/health").filter(|(s, _)| *s == 200)
        });
        Some(vm)
    }

    pub fn write_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1/write", self.port)
    }
}

/// The agent the peers tests start: this build's `outpost`, or the command in
/// `OUTPOST_TEST_COMMAND` (split on whitespace), which CI sets to run the same
/// checks against other builds: the aarch64 binary under qemu-user
/// (`qemu-aarch64 target/aarch64-unknown-linux-gnu/release/outpost`) and the
/// container image under runc (`targets/image/runc-outpost.sh BUNDLE`).
pub fn outpost_command() -> Command {
    match std::env::var("OUTPOST_TEST_COMMAND") {
        Ok(line) => {
            let mut words = line.split_whitespace();
            let mut cmd = Command::new(words.next().expect("OUTPOST_TEST_COMMAND is empty"));
            cmd.args(words);
            cmd
        }
        Err(_) => Command::new(env!("CARGO_BIN_EXE_outpost")),
    }
}

pub fn start_outpost(plan: &Path, listen_port: u16, node_name: &str, log: &Path) -> ChildGuard {
    start_outpost_with(plan, listen_port, node_name, log, &[])
}

/// [`start_outpost`] with more command-line flags.
pub fn start_outpost_with(
    plan: &Path,
    listen_port: u16,
    node_name: &str,
    log: &Path,
    extra: &[&str],
) -> ChildGuard {
    let log = std::fs::File::create(log).unwrap();
    let child = outpost_command()
        .args(["run", "--plan"])
        .arg(plan)
        .args([
            "--listen",
            &format!("127.0.0.1:{listen_port}"),
            "--node-name",
            node_name,
        ])
        .args(["--log-level", "debug"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    ChildGuard(Some(child))
}

// ------------------------------------------------------------ target server

/// Serves `body()` for every GET on any path (keep-alive); stopped on drop.
pub struct TargetServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TargetServer {
    pub fn start(body: String) -> TargetServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let body = Arc::new(body);
        let thread = thread::spawn(move || {
            let mut workers = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    // One thread per connection: several agents keep their connections alive.
                    Ok((s, _)) => {
                        let (flag, body) = (flag.clone(), body.clone());
                        workers.push(thread::spawn(move || {
                            serve_connection(s, &flag, |_| (200, Vec::new(), body.as_bytes().to_vec()))
                        }));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
            for w in workers {
                let _ = w.join();
            }
        });
        TargetServer {
            port,
            stop,
            thread: Some(thread),
        }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for TargetServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One parsed HTTP/1.1 request.
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    /// Lower-cased names.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

/// Reads requests off one connection until it closes and answers each with
/// `respond` -> (status, extra headers, body).
pub fn serve_connection(
    mut s: TcpStream,
    stop: &AtomicBool,
    mut respond: impl FnMut(HttpRequest) -> (u16, Vec<(String, String)>, Vec<u8>),
) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        match s.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return,
        }
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let mut lines = head.split("\r\n");
            let mut start = lines.next().unwrap_or("").split(' ');
            let method = start.next().unwrap_or("").to_string();
            let path = start.next().unwrap_or("").to_string();
            let headers: HashMap<String, String> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let length: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if buf.len() < end + 4 + length {
                break;
            }
            let body = buf[end + 4..end + 4 + length].to_vec();
            buf.drain(..end + 4 + length);
            let (status, extra, answer) = respond(HttpRequest {
                method,
                path,
                headers,
                body,
            });
            let mut out = format!(
                "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nContent-Type: text/plain; version=0.0.4\r\nDate: {}\r\n",
                if status == 200 { "OK" } else { "Status" },
                answer.len(),
                http_date(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs() as i64
                )
            );
            for (k, v) in extra {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            if s.write_all(out.as_bytes())
                .and_then(|_| s.write_all(&answer))
                .is_err()
            {
                return;
            }
        }
    }
}

/// Unix seconds as an HTTP `Date` (IMF-fixdate), as every real server sends.
pub fn http_date(unix_s: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (days, secs) = (unix_s.div_euclid(86_400), unix_s.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (March-based years).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[month as usize - 1],
        secs / 3_600,
        secs / 60 % 60,
        secs % 60
    )
}

// ------------------------------------------------------------ remote-write receiver

// One definition of the messages for the whole repository: the core's.
#[path = "../../../agent-core/tests/wire/mod.rs"]
mod wire;
#[allow(unused_imports)] // Not every test binary reads labels and samples by type.
pub use wire::{Label, Sample, TimeSeries, WriteRequest};

impl TimeSeries {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.value.as_str())
    }

    /// `name{a="x",b="y"}` with labels in wire order, for messages and keys.
    pub fn key(&self) -> String {
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|l| format!("{}={:?}", l.name, l.value))
            .collect();
        labels.join(",")
    }
}

/// One POST as the receiver saw it; `request` is `Err` when it did not decode.
pub struct Received {
    pub sequence: usize,
    pub headers: HashMap<String, String>,
    pub path: String,
    pub request: Result<WriteRequest, String>,
    pub status: u16,
}

/// The answer the receiver gives to the n-th POST (0-based): status and extra headers.
pub type Policy = Box<dyn FnMut(usize) -> (u16, Vec<(String, String)>) + Send>;

/// A loopback remote-write receiver that decodes and records every POST.
pub struct RecordingReceiver {
    pub port: u16,
    pub seen: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RecordingReceiver {
    pub fn start(policy: Policy) -> RecordingReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let policy = Arc::new(Mutex::new(policy));
        let (flag, log) = (stop.clone(), seen.clone());
        let thread = thread::spawn(move || {
            let mut workers = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        // One thread per connection: the agent may hold several shards open.
                        let (flag, log, policy) = (flag.clone(), log.clone(), policy.clone());
                        workers.push(thread::spawn(move || {
                            serve_connection(s, &flag, |req| {
                                let mut seen = log.lock().unwrap();
                                let sequence = seen.len();
                                let (status, extra) = (policy.lock().unwrap())(sequence);
                                seen.push(Received {
                                    sequence,
                                    path: req.path,
                                    request: decode_write_request(&req.body),
                                    headers: req.headers,
                                    status,
                                });
                                (status, extra, Vec::new())
                            })
                        }));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
            for w in workers {
                let _ = w.join();
            }
        });
        RecordingReceiver {
            port,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1/write", self.port)
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
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

pub fn decode_write_request(body: &[u8]) -> Result<WriteRequest, String> {
    wire::decode_snappy(body)
}

// ------------------------------------------------------------ plans

/// Adds `s` to the plan's string table (or finds it) and gives its id.
pub fn intern(plan: &mut Plan, s: &str) -> StrId {
    if let Some(i) = plan.strings.iter().position(|x| x == s) {
        return StrId(i as u32);
    }
    plan.strings.push(s.to_string());
    StrId(plan.strings.len() as u32 - 1)
}

pub fn limits() -> Limits {
    Limits {
        body_bytes: 4 << 20,
        samples: 20_000,
        label_count: 32,
        label_name_bytes: 128,
        label_value_bytes: 1024,
    }
}

/// A node-role plan with 1 s intervals, one scrape job `testapp` on
/// `targets`, `external` labels, and a small queue that sends quickly.
pub fn small_plan(
    receiver_url: &str,
    targets: &[String],
    external: &[(&str, &str)],
    wal_dir: &Path,
    node_collectors: Vec<Collector>,
) -> Plan {
    let mut p = Plan {
        strings: Vec::new(),
        agent: Agent {
            cluster: StrId(0),
            tenant: None,
            role: Role::Node,
        },
        external_labels: Vec::new(),
        receiver: Receiver {
            url: StrId(0),
            tenant_header: None,
            tls: None,
            auth: Auth::None,
            remote_timeout_ms: 5_000,
            write_relabel: Vec::new(),
        },
        queue: Queue {
            capacity: 2_000,
            min_shards: 1,
            max_shards: 1,
            max_samples_per_send: 500,
            batch_send_deadline_ms: 200,
            min_backoff_ms: 30,
            max_backoff_ms: 500,
            max_batch_bytes: 256 * 1024,
            max_sample_age_ms: 3_600_000,
        },
        wal: Wal {
            dir: StrId(0),
            max_bytes: 64 << 20,
            segment_bytes: 1 << 20,
            fsync: Fsync::Never,
        },
        node: None,
        scrape_jobs: Vec::new(),
        self_scrape: SelfScrape {
            interval_ms: 1_000,
            job: StrId(0),
        },
        budget: Budget {
            cpu_request_millis: 100,
            cpu_limit_millis: 200,
            memory_request_bytes: 64 << 20,
            memory_limit_bytes: 256 << 20,
        },
    };
    let cluster = external
        .iter()
        .find(|(n, _)| *n == "cluster")
        .map_or("test-cluster", |(_, v)| v);
    p.agent.cluster = intern(&mut p, cluster);
    let mut labels: Vec<(&str, &str)> = external.to_vec();
    labels.sort();
    for (n, v) in labels {
        let pair = LabelPair {
            name: intern(&mut p, n),
            value: intern(&mut p, v),
        };
        p.external_labels.push(pair);
    }
    p.receiver.url = intern(&mut p, receiver_url);
    p.wal.dir = intern(&mut p, &wal_dir.display().to_string());
    p.self_scrape.job = intern(&mut p, "outpost");
    if !node_collectors.is_empty() {
        let job = intern(&mut p, "node-exporter");
        p.node = Some(NodeCollectors {
            collectors: node_collectors,
            interval_ms: 1_000,
            job,
            limits: limits(),
            metric_relabel: Vec::new(),
            options: Default::default(),
        });
    }
    if !targets.is_empty() {
        let job = ScrapeJob {
            name: intern(&mut p, "testapp"),
            interval_ms: 1_000,
            timeout_ms: 800,
            scheme: Scheme::Http,
            path: intern(&mut p, "/metrics"),
            targets: targets.iter().map(|t| intern(&mut p, t)).collect(),
            labels: Vec::new(),
            honor_labels: false,
            bearer_token_file: None,
            tls: None,
            limits: limits(),
            metric_relabel: Vec::new(),
        };
        p.scrape_jobs.push(job);
    }
    p
}

/// Decodes a committed golden plan from `examples/plans/<rel>`.
pub fn golden_plan(rel: &str) -> Plan {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/plans")
        .join(rel);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("golden plan {}: {e}", path.display()));
    plan::decode(&bytes).unwrap_or_else(|e| panic!("golden plan {}: {e:?}", path.display()))
}

/// Points a plan at loopback: receiver URL, WAL dir, faster intervals and
/// queue deadlines so a test sees batches within seconds.
pub fn to_loopback(plan: &mut Plan, receiver_url: &str, wal_dir: &Path) {
    plan.receiver.url = intern(plan, receiver_url);
    plan.receiver.tls = None;
    plan.receiver.auth = Auth::None;
    plan.wal.dir = intern(plan, &wal_dir.display().to_string());
    plan.wal.fsync = Fsync::Never;
    plan.queue.batch_send_deadline_ms = 200;
    plan.queue.min_backoff_ms = 30;
    plan.queue.max_backoff_ms = 500;
    plan.self_scrape.interval_ms = 1_000;
    if let Some(node) = plan.node.as_mut() {
        node.interval_ms = 1_000;
    }
    for job in &mut plan.scrape_jobs {
        job.interval_ms = 1_000;
        job.timeout_ms = 800;
    }
}

pub fn write_plan(dir: &Path, name: &str, plan: &Plan) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, plan::encode(plan).unwrap()).unwrap();
    path
}

/// A human-readable listing of a plan, for assertion messages and discovery.
pub fn describe(plan: &Plan) -> String {
    let s = |id: StrId| plan.str(id).to_string();
    let mut out = format!(
        "role={:?} cluster={} tenant={:?} url={} tenant_header={:?}\nexternal:",
        plan.agent.role,
        s(plan.agent.cluster),
        plan.agent.tenant.map(s),
        s(plan.receiver.url),
        plan.receiver.tenant_header.map(|p| (s(p.name), s(p.value)))
    );
    for l in &plan.external_labels {
        out.push_str(&format!(" {}={}", s(l.name), s(l.value)));
    }
    for job in &plan.scrape_jobs {
        out.push_str(&format!(
            "\njob {} scheme={:?} path={} targets={:?} relabel={}",
            s(job.name),
            job.scheme,
            s(job.path),
            job.targets.iter().map(|t| s(*t)).collect::<Vec<_>>(),
            job.metric_relabel.len()
        ));
        for r in &job.metric_relabel {
            out.push_str(&format!(
                "\n  {:?} src={:?} regex={} target={} repl={}",
                r.action,
                r.source_labels.iter().map(|t| s(*t)).collect::<Vec<_>>(),
                s(r.regex),
                s(r.target_label),
                s(r.replacement)
            ));
        }
    }
    out
}

// --- runtime2 ---

/// Serves `body(n)` for the n-th GET (1-based), so every scrape is told
/// apart by the values it carries; `served()` says how many went out.
pub struct CountingTarget {
    pub port: u16,
    pub local: std::net::SocketAddr,
    served: Arc<std::sync::atomic::AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CountingTarget {
    pub fn start(body: fn(u64) -> String) -> CountingTarget {
        Self::start_on("127.0.0.1:0", body)
    }

    /// On another loopback address, e.g. `127.0.0.2:0`.
    pub fn start_on(bind: &str, body: fn(u64) -> String) -> CountingTarget {
        let listener = TcpListener::bind(bind).unwrap();
        listener.set_nonblocking(true).unwrap();
        let local = listener.local_addr().unwrap();
        let port = local.port();
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (flag, count) = (stop.clone(), served.clone());
        let thread = thread::spawn(move || {
            let mut workers = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let (flag, count) = (flag.clone(), count.clone());
                        workers.push(thread::spawn(move || {
                            serve_connection(s, &flag, |_| {
                                let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                                (200, Vec::new(), body(n).into_bytes())
                            })
                        }));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
            for w in workers {
                let _ = w.join();
            }
        });
        CountingTarget {
            port,
            local,
            served,
            stop,
            thread: Some(thread),
        }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn served(&self) -> u64 {
        self.served.load(Ordering::SeqCst)
    }

    /// Stops serving and gives the final count: nothing is served after it.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.served()
    }
}

impl Drop for CountingTarget {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A remote-write receiver that answers 200 after `delay_ms` (changeable
/// while it runs), each connection on its own thread so shards really run
/// in parallel. Requests are numbered in arrival order.
pub struct SlowReceiver {
    pub port: u16,
    pub local: std::net::SocketAddr,
    pub delay_ms: Arc<std::sync::atomic::AtomicU64>,
    /// (arrival number, decoded request).
    pub seen: Arc<Mutex<Vec<(usize, WriteRequest)>>>,
    /// The `THANOS-TENANT` header of each request, in arrival order.
    pub tenants: Arc<Mutex<Vec<Option<String>>>>,
    /// Connections accepted so far.
    pub connections: Arc<std::sync::atomic::AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SlowReceiver {
    pub fn start(delay_ms: u64) -> SlowReceiver {
        Self::start_on("127.0.0.1:0", delay_ms)
    }

    pub fn start_on(bind: &str, delay_ms: u64) -> SlowReceiver {
        use std::sync::atomic::AtomicU64;
        let listener = TcpListener::bind(bind).unwrap();
        listener.set_nonblocking(true).unwrap();
        let local = listener.local_addr().unwrap();
        let port = local.port();
        let stop = Arc::new(AtomicBool::new(false));
        let delay = Arc::new(AtomicU64::new(delay_ms));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicU64::new(0));
        let tenants = Arc::new(Mutex::new(Vec::new()));
        let (flag, d, log, conns) = (stop.clone(), delay.clone(), seen.clone(), connections.clone());
        let tenant_log = tenants.clone();
        let thread = thread::spawn(move || {
            let mut workers = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        conns.fetch_add(1, Ordering::SeqCst);
                        let (flag, d, log) = (flag.clone(), d.clone(), log.clone());
                        let tenant_log = tenant_log.clone();
                        workers.push(thread::spawn(move || {
                            serve_connection(s, &flag, |req| {
                                let request = decode_write_request(&req.body).expect("valid remote write");
                                {
                                    let mut seen = log.lock().unwrap();
                                    let n = seen.len();
                                    seen.push((n, request));
                                    let tenant = req.headers.get("thanos-tenant").cloned();
                                    tenant_log.lock().unwrap().push(tenant);
                                }
                                thread::sleep(Duration::from_millis(d.load(Ordering::SeqCst)));
                                (200, Vec::new(), Vec::new())
                            })
                        }));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
            for w in workers {
                let _ = w.join();
            }
        });
        SlowReceiver {
            port,
            local,
            delay_ms: delay,
            seen,
            tenants,
            connections,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/api/v1/write", self.local)
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn tenant_headers(&self) -> Vec<Option<String>> {
        self.tenants.lock().unwrap().clone()
    }

    /// Per series whose `__name__` is `name`: the `(series key, values)` in
    /// arrival order.
    pub fn values_of(&self, name: &str) -> HashMap<String, Vec<f64>> {
        let seen = self.seen.lock().unwrap();
        let mut out: HashMap<String, Vec<f64>> = HashMap::new();
        for (_, req) in seen.iter() {
            for ts in &req.timeseries {
                if ts.label("__name__") == Some(name) {
                    out.entry(ts.key())
                        .or_default()
                        .extend(ts.samples.iter().map(|s| s.value));
                }
            }
        }
        out
    }
}

impl Drop for SlowReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Checks that each series got exactly the values 1, 2, ..., n in order
/// (the value is the scrape number the target stamped): a gap is a lost
/// sample, a repeat a duplicate, a step back a reordering. Returns the
/// smallest n over the series.
pub fn assert_each_scrape_once_in_order(values: &HashMap<String, Vec<f64>>, series: usize) -> u64 {
    assert_eq!(
        values.len(),
        series,
        "series received: {:?}",
        values.keys().collect::<Vec<_>>()
    );
    let mut least = u64::MAX;
    for (key, v) in values {
        for (i, value) in v.iter().enumerate() {
            assert_eq!(
                *value,
                (i + 1) as f64,
                "{key}: value #{i} is {value}, expected {} (values {:?})",
                i + 1,
                v
            );
        }
        least = least.min(v.len() as u64);
    }
    least
}
