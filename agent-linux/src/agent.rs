//! The event loop: one mio `Poll`, one thread for all data work. Host
//! names are resolved on a second, lookup-only thread (`ResolverThread`)
//! because getaddrinfo blocks.
//!
//! Everything the agent does is a reaction to a socket event or a deadline:
//! scrape timers per target, request timeouts, the batch send deadline, the
//! sender's backoff, WAL fsync intervals. Each turn computes the earliest
//! deadline, polls until then, and works whatever became ready. Deadlines
//! follow the monotonic [`Clock::now_ms`]; the wall clock is read only to
//! stamp scrapes (see [`crate::clock`]).
//!
//! Data path: scrape body -> [`TargetPipeline`] -> [`Batcher`] -> at the
//! end of the scrape, one record per shard -> [`DiskWal::append`] -> fed to
//! the [`Sender`] as its window has room -> the sender groups a shard's
//! records into a run -> their payloads read back from the WAL and joined
//! into one body -> POST on the shard's connection -> response -> ack ->
//! WAL segments below the ack floor deleted. Replay after a restart is the
//! same path: the WAL lists the unsent records and the sender takes them as
//! its window allows.

use std::fs;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use outpost_core::expfmt::Format;
use outpost_core::plan::{self, Auth, Plan, Scheme};
use outpost_core::queue::{DropReason, Outcome, RecordMeta, Run, Sender, Window, RECORDS_PER_SHARD};
use outpost_core::remote_write::{BatchBuilder, HEADERS};
use outpost_core::request::RequestBuilder;
use rustls::ClientConfig;

use crate::cli::RunArgs;
use crate::clock::{self, Clock, ReceiverOffset};
use crate::collectors::{self, NodeCollector, Paths};
use crate::log;
use crate::net::{
    BodyLimits, ConnBuffers, Failure, HttpClientConn, HttpServer, Progress, Request, Responder, Response,
    ServerLimits,
};
use crate::status::{self, RuntimeInfo, TargetStats};
use crate::wal::{DiskWal, LockError, WalConfig, WalLock};
use outpost_core::pipeline::{job_labels, BatchSink, Batcher, TargetLabels, TargetPipeline};

const SIGNAL_TOKEN: Token = Token(0);
const LISTENER_TOKEN: Token = Token(1);
const RESOLVER_TOKEN: Token = Token(999);
const STATUS_CONN_BASE: usize = 2;
const STATUS_CONNS: usize = 16;
const TARGET_TOKEN_BASE: usize = 1_000;
const SHARD_TOKEN_BASE: usize = 1_000_000;
/// Longest sleep of the loop: the ack floor is persisted about this often.
const MAX_SLEEP_MS: u64 = 1_000;
/// The sender re-evaluates its desired count every 10 s; checking more often
/// only shortens the lag between its decision and the switch (the check
/// itself is two integer compares when nothing changed).
const RESHARD_CHECK_MS: u64 = 1_000;
const SHUTDOWN_BUDGET_MS: u64 = 4_000;
/// A target refusing samples as too old is logged at most this often.
const TOO_OLD_LOG_EVERY_MS: u64 = 600_000;

/// Reads and validates a plan file; the error names the file.
pub fn load_plan(path: &Path) -> Result<Plan, String> {
    let bytes = fs::read(path).map_err(|e| format!("plan {}: {e}", path.display()))?;
    plan::decode(&bytes).map_err(|e| format!("plan {}: {e}", path.display()))
}

// ---------------------------------------------------------------- signals

static SIGNAL_WRITE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(signal: libc::c_int) {
    let fd = SIGNAL_WRITE_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = signal as u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is a local byte.
        unsafe {
            libc::write(fd, (&byte as *const u8).cast(), 1);
        }
    }
}

/// The self-pipe: signal handlers write the signal number, the loop reads
/// it as an ordinary readable event.
struct SignalPipe {
    read_fd: RawFd,
}

impl SignalPipe {
    fn install() -> io::Result<SignalPipe> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: fds is a valid two-int array.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        SIGNAL_WRITE_FD.store(fds[1], Ordering::Relaxed);
        for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            // SAFETY: a zeroed sigaction with a plain handler and an empty mask is valid.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        Ok(SignalPipe { read_fd: fds[0] })
    }

    /// Signals that arrived since the last call.
    fn drain(&self, out: &mut Vec<libc::c_int>) {
        let mut buf = [0u8; 16];
        loop {
            // SAFETY: reading into a local buffer of the stated length.
            let n = unsafe { libc::read(self.read_fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return;
            }
            out.extend(buf[..n as usize].iter().map(|&b| libc::c_int::from(b)));
        }
    }
}

// ---------------------------------------------------------------- secrets

/// A credential file, re-read when its modification time changes (rotated
/// service-account tokens). Its content is never logged.
struct FileSecret {
    path: PathBuf,
    mtime: Option<SystemTime>,
    value: Vec<u8>,
}

impl FileSecret {
    fn new(path: &str) -> FileSecret {
        FileSecret {
            path: PathBuf::from(path),
            mtime: None,
            value: Vec::new(),
        }
    }

    /// The trimmed file content, refreshed if the file changed.
    fn get(&mut self) -> &[u8] {
        let mtime = fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        if mtime.is_none() || mtime != self.mtime {
            match fs::read(&self.path) {
                Ok(mut v) => {
                    while v.last().is_some_and(|b| b.is_ascii_whitespace()) {
                        v.pop();
                    }
                    self.value = v;
                    self.mtime = mtime;
                }
                Err(e) => {
                    log::warn(
                        "cannot read credential file",
                        &[("path", &self.path.display()), ("err", &e)],
                    );
                }
            }
        }
        &self.value
    }
}

fn base64(input: &[u8], out: &mut Vec<u8>) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
}

// ---------------------------------------------------------------- endpoints

/// A parsed `http(s)://host[:port]/path` URL. Its name is resolved off the
/// loop (see [`ResolverThread`]).
#[derive(Debug, Clone)]
struct Endpoint {
    https: bool,
    host: String,
    /// `Host` header: the URL's host and port as written.
    authority: String,
    path: String,
    name: Name,
}

fn parse_url(url: &str) -> Result<Endpoint, String> {
    use outpost_core::url::{Url, UrlError};
    let u = Url::parse(url).map_err(|e| match e {
        // Not repeated in the log: the URL holds the secret.
        UrlError::Credentials => format!("url: {e}"),
        e => format!("url {url}: {e}"),
    })?;
    Ok(Endpoint {
        https: u.scheme == Scheme::Https,
        name: Name::new(u.host, u.port),
        host: u.host.to_string(),
        authority: u.authority.to_string(),
        path: u.request_target().to_string(),
    })
}

fn split_host_port(authority: &str, default_port: u16) -> Result<(String, u16), String> {
    use outpost_core::url::{parse_host_port, UrlError};
    match parse_host_port(authority) {
        Ok(hp) => Ok((hp.host.to_string(), hp.port.unwrap_or(default_port))),
        // `${NODE_IP}` of an IPv6 node is filled in without brackets
        // (`fd00::7:9100`); the compiler lets no other unbracketed IPv6 through.
        Err(UrlError::BadHost(h)) if h.parse::<std::net::Ipv6Addr>().is_ok() => {
            let port = &authority[h.len() + 1..];
            Ok((
                h.to_string(),
                port.parse().map_err(|_| format!("bad port {port}"))?,
            ))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The system resolver (getaddrinfo): the first address of `host`.
pub fn system_resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} resolves to no address"))
}

// ---------------------------------------------------------------- name resolution

/// Turns a host name and port into an address; runs on the resolver thread.
pub type ResolveFn = Arc<dyn Fn(&str, u16) -> Result<SocketAddr, String> + Send + Sync>;

/// How host names become addresses. Tests swap `resolve` to move a name
/// from one address to another.
#[derive(Clone)]
pub struct Resolution {
    pub resolve: ResolveFn,
    /// A resolved name is asked again this often, so an address change behind
    /// it is picked up without a restart. A connection failure asks at once.
    pub refresh_ms: u64,
}

impl Default for Resolution {
    fn default() -> Resolution {
        Resolution {
            resolve: Arc::new(system_resolve),
            refresh_ms: 60_000,
        }
    }
}

/// A failed lookup is retried this much later.
const DNS_RETRY_MS: u64 = 5_000;
/// A first scrape waits at most this long for its name's first answer
/// before it counts as failed, so a start-up does not report a spurious
/// `dns_failed` for a name that resolves in a millisecond.
const FIRST_ANSWER_WAIT_MS: u64 = 2_000;

struct Lookup {
    host: String,
    port: u16,
}

struct Answer {
    host: String,
    port: u16,
    result: Result<SocketAddr, String>,
}

/// getaddrinfo blocks for as long as DNS takes (seconds when a server is
/// down). It runs on this one thread, so the loop never waits on it; the
/// answer comes back through a channel and a [`Waker`] event.
struct ResolverThread {
    requests: mpsc::Sender<Lookup>,
    answers: mpsc::Receiver<Answer>,
}

impl ResolverThread {
    fn spawn(registry: &Registry, resolve: ResolveFn) -> io::Result<ResolverThread> {
        let waker = Waker::new(registry, RESOLVER_TOKEN)?;
        let (requests, lookups) = mpsc::channel::<Lookup>();
        let (answer_tx, answers) = mpsc::channel();
        // Not joined on exit: a lookup may hang for the resolver's full
        // timeout, and the process ends anyway. Dropping `requests` ends it.
        std::thread::Builder::new()
            .name("outpost-dns".to_string())
            .spawn(move || {
                for Lookup { host, port } in lookups {
                    let result = resolve(&host, port);
                    if answer_tx.send(Answer { host, port, result }).is_err() {
                        return;
                    }
                    let _ = waker.wake();
                }
            })?;
        Ok(ResolverThread { requests, answers })
    }

    fn ask(&self, host: &str, port: u16) {
        let _ = self.requests.send(Lookup {
            host: host.to_string(),
            port,
        });
    }
}

/// One host name a connection needs, with its last good address. Literal
/// IPs are addresses from the start and never go to the resolver thread.
#[derive(Debug, Clone)]
struct Name {
    host: String,
    port: u16,
    literal: bool,
    addr: Option<SocketAddr>,
    next_ask_ms: u64,
    asked_at_ms: Option<u64>,
    answered: bool,
}

impl Name {
    fn new(host: &str, port: u16) -> Name {
        let ip = host.parse::<IpAddr>().ok();
        Name {
            host: host.to_string(),
            port,
            literal: ip.is_some(),
            addr: ip.map(|ip| SocketAddr::new(ip, port)),
            next_ask_ms: 0,
            asked_at_ms: None,
            answered: ip.is_some(),
        }
    }

    fn ask_if_due(&mut self, now: u64, resolver: &ResolverThread) {
        if self.literal || self.asked_at_ms.is_some() || now < self.next_ask_ms {
            return;
        }
        resolver.ask(&self.host, self.port);
        self.asked_at_ms = Some(now);
    }

    /// After a connection failure: the address may have moved.
    fn ask_soon(&mut self, now: u64) {
        self.next_ask_ms = self.next_ask_ms.min(now);
    }

    /// Still waiting for the very first answer, and not for too long.
    fn awaiting_first_answer(&self, now: u64) -> bool {
        !self.answered && self.asked_at_ms.is_none_or(|t| now < t + FIRST_ANSWER_WAIT_MS)
    }

    /// Takes an answer meant for this name; true when the address changed.
    /// A failed lookup keeps the last good address.
    fn apply(&mut self, answer: &Answer, now: u64, refresh_ms: u64, what: &str) -> bool {
        if self.literal || answer.host != self.host || answer.port != self.port {
            return false;
        }
        self.asked_at_ms = None;
        self.answered = true;
        match &answer.result {
            Ok(addr) => {
                self.next_ask_ms = now + refresh_ms;
                let changed = self.addr != Some(*addr);
                if changed {
                    log::info(
                        "name resolved to a new address",
                        &[("for", &what), ("host", &self.host), ("addr", addr)],
                    );
                }
                self.addr = Some(*addr);
                changed
            }
            Err(e) => {
                self.next_ask_ms = now + DNS_RETRY_MS;
                log::warn(
                    "name does not resolve",
                    &[
                        ("for", &what),
                        ("host", &self.host),
                        (
                            "keeping",
                            &self.addr.map_or("nothing".to_string(), |a| a.to_string()),
                        ),
                        ("err", e),
                    ],
                );
                false
            }
        }
    }
}

fn tls_config(plan: &Plan, tls: &Option<plan::Tls>) -> Result<Option<Arc<ClientConfig>>, String> {
    let t = tls.clone().unwrap_or(plan::Tls {
        ca_file: None,
        cert_file: None,
        key_file: None,
        server_name: None,
        insecure_skip_verify: false,
    });
    let path = |id: Option<plan::StrId>| id.map(|i| PathBuf::from(plan.str(i)));
    let (ca, cert, key) = (path(t.ca_file), path(t.cert_file), path(t.key_file));
    if t.insecure_skip_verify {
        log::warn(
            "TLS server verification is OFF for an endpoint (insecure_skip_verify)",
            &[],
        );
    }
    crate::net::client_config(
        ca.as_deref(),
        cert.as_deref(),
        key.as_deref(),
        t.insecure_skip_verify,
    )
    .map(Some)
    .map_err(|e| e.to_string())
}

fn fill_node_vars(s: &str, args: &RunArgs) -> String {
    s.replace("${NODE_NAME}", &args.node_name)
        .replace("${NODE_IP}", &args.node_ip)
}

// ---------------------------------------------------------------- targets

const SCRAPE_ACCEPT: &[u8] =
    b"application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1";

/// What it takes to (re)build a target's connection when its name resolves
/// or moves.
struct Dial {
    name: Name,
    tls: Option<Arc<ClientConfig>>,
    server_name: String,
    token: Token,
    bufs: ConnBuffers,
    /// The address `conn` was built for; `None` while unresolved.
    conn_addr: Option<SocketAddr>,
}

struct HttpTarget {
    conn: HttpClientConn,
    dial: Dial,
    /// `X-Prometheus-Scrape-Timeout-Seconds`, rendered once.
    timeout_header: String,
    auth_header: Vec<u8>,
    authority: String,
    path: String,
    timeout_ms: u64,
    bearer: Option<FileSecret>,
    limits: BodyLimits,
}

enum Source {
    Node,
    SelfScrape,
    Http(Box<HttpTarget>),
}

struct Target {
    pipeline: TargetPipeline,
    source: Source,
    interval_ms: u64,
    next_at_ms: u64,
    /// Monotonic start of the scrape in progress.
    started_ms: Option<u64>,
    /// Its wall-clock time: the timestamp of its samples.
    started_wall_ms: i64,
    begun: bool,
    up: Option<bool>,
    stats: TargetStats,
    /// When samples refused as too old were last logged, and how many
    /// were refused since.
    too_old_logged_ms: Option<u64>,
    too_old_unlogged: u64,
}

/// Everything built from the scrape side of a plan; replaced on reload.
struct Scraping {
    targets: Vec<Target>,
    batcher: Batcher,
    node: Option<NodeCollector>,
}

impl Scraping {
    fn build(plan: &Plan, args: &RunArgs, shards: u16, now: u64) -> Result<Scraping, String> {
        let mut targets = Vec::new();
        let mut max_labels = 0usize;
        let mut max_label_bytes = 0usize;
        let mut grow = |l: &plan::Limits, t: &TargetLabels| {
            max_labels = max_labels.max(l.max_labels() + 2 + t.extra.len());
            let bytes = l.series_label_bytes();
            max_label_bytes = max_label_bytes.max(bytes + t.job.len() + t.instance.len() + 64);
        };
        let mut node = None;
        if let Some(n) = &plan.node {
            let labels = TargetLabels {
                job: plan.str(n.job).to_string(),
                instance: args.node_name.clone(),
                extra: Vec::new(),
                honor_labels: false,
            };
            grow(&n.limits, &labels);
            targets.push(Target::new(
                TargetPipeline::new(plan, labels, n.limits, &n.metric_relabel)?,
                Source::Node,
                n.interval_ms,
            ));
            let paths = Paths {
                procfs: args.procfs.clone(),
                sysfs: args.sysfs.clone(),
                rootfs: args.rootfs.clone(),
            };
            node = Some(NodeCollector::from_plan(paths, plan, n)?);
        }
        for job in &plan.scrape_jobs {
            let tls = match job.scheme {
                Scheme::Https => {
                    tls_config(plan, &job.tls).map_err(|e| format!("job {}: {e}", plan.str(job.name)))?
                }
                Scheme::Http => None,
            };
            for target in &job.targets {
                let instance = fill_node_vars(plan.str(*target), args);
                let labels = job_labels(plan, job, &instance);
                grow(&job.limits, &labels);
                let default_port = if job.scheme == Scheme::Https { 443 } else { 80 };
                let (host, port) = split_host_port(&instance, default_port)
                    .map_err(|e| format!("job {} target {instance}: {e}", labels.job))?;
                // A name is resolved off the loop; until it resolves the
                // target scrapes as down (`dns_failed`).
                let name = Name::new(&host, port);
                let addr = name.addr.unwrap_or(SocketAddr::from(([0, 0, 0, 0], port)));
                let server_name = job
                    .tls
                    .as_ref()
                    .and_then(|t| t.server_name)
                    .map(|s| plan.str(s).to_string())
                    .unwrap_or_else(|| host.clone());
                let token = Token(TARGET_TOKEN_BASE + targets.len());
                let bufs = ConnBuffers {
                    read_bytes: 16 * 1024,
                    head_bytes: 8 * 1024,
                    request_bytes: 4 * 1024,
                    inflate_out_bytes: 32 * 1024,
                };
                let conn = HttpClientConn::new(addr, tls.clone(), &server_name, token, bufs)
                    .map_err(|e| format!("job {} target {instance}: {e}", labels.job))?;
                let http = HttpTarget {
                    conn,
                    dial: Dial {
                        conn_addr: name.addr,
                        name,
                        tls: tls.clone(),
                        server_name,
                        token,
                        bufs,
                    },
                    timeout_header: format!("{}", f64::from(job.timeout_ms) / 1000.0),
                    auth_header: Vec::with_capacity(4096),
                    authority: instance.clone(),
                    path: plan.str(job.path).to_string(),
                    timeout_ms: u64::from(job.timeout_ms),
                    bearer: job.bearer_token_file.map(|f| FileSecret::new(plan.str(f))),
                    limits: BodyLimits {
                        max_body_bytes: u64::from(job.limits.body_bytes),
                        max_decoded_bytes: u64::from(job.limits.body_bytes),
                    },
                };
                targets.push(Target::new(
                    TargetPipeline::new(plan, labels, job.limits, &job.metric_relabel)?,
                    Source::Http(Box::new(http)),
                    job.interval_ms,
                ));
            }
        }
        let self_labels = TargetLabels {
            job: plan.str(plan.self_scrape.job).to_string(),
            instance: format!("{}:{}", args.node_name, args.listen.port()),
            extra: Vec::new(),
            honor_labels: false,
        };
        grow(&plan::SELF_SCRAPE_LIMITS, &self_labels);
        targets.push(Target::new(
            TargetPipeline::new(plan, self_labels, plan::SELF_SCRAPE_LIMITS, &[])?,
            Source::SelfScrape,
            plan.self_scrape.interval_ms,
        ));
        // Spread first scrapes over each interval so targets do not all
        // fire in the same millisecond.
        let n = targets.len() as u64;
        for (i, t) in targets.iter_mut().enumerate() {
            t.next_at_ms = now + t.interval_ms * i as u64 / n.max(1) / 4;
        }
        Ok(Scraping {
            batcher: Batcher::new(plan, shards, max_labels, max_label_bytes)?,
            targets,
            node,
        })
    }

    fn close(&mut self, registry: &Registry) {
        for t in &mut self.targets {
            if let Source::Http(h) = &mut t.source {
                h.conn.close(registry);
            }
        }
    }
}

impl Target {
    fn new(pipeline: TargetPipeline, source: Source, interval_ms: u32) -> Target {
        let stats = TargetStats {
            job: pipeline.target.job.clone(),
            instance: pipeline.target.instance.clone(),
            ..TargetStats::default()
        };
        Target {
            pipeline,
            source,
            interval_ms: u64::from(interval_ms.max(1)),
            next_at_ms: 0,
            started_ms: None,
            started_wall_ms: 0,
            begun: false,
            up: None,
            stats,
            too_old_logged_ms: None,
            too_old_unlogged: 0,
        }
    }
}

// ---------------------------------------------------------------- sending

struct ShardConn {
    conn: HttpClientConn,
    /// The receiver address this connection dials.
    addr: SocketAddr,
    /// The run whose request is on this connection.
    in_flight: Option<u64>,
}

/// Where and how batches are sent: everything a plan's `receiver` section
/// decides. Built whole before it replaces the running one, so a reload
/// with a bad receiver (unreadable CA, bad URL) changes nothing.
struct ReceiverSide {
    receiver: Endpoint,
    receiver_url: String,
    tls: Option<Arc<ClientConfig>>,
    server_name: String,
    tenant_header: Option<(String, Vec<u8>)>,
    auth: Option<(FileSecret, Option<String>)>,
    remote_timeout_ms: u64,
}

impl ReceiverSide {
    fn build(plan: &Plan) -> Result<ReceiverSide, String> {
        let url = plan.str(plan.receiver.url).to_string();
        let receiver = parse_url(&url).map_err(|e| format!("receiver.{e}"))?;
        let tls = if receiver.https {
            tls_config(plan, &plan.receiver.tls).map_err(|e| format!("receiver.tls: {e}"))?
        } else {
            None
        };
        let server_name = plan
            .receiver
            .tls
            .as_ref()
            .and_then(|t| t.server_name)
            .map(|s| plan.str(s).to_string())
            .unwrap_or_else(|| receiver.host.clone());
        let auth = match &plan.receiver.auth {
            Auth::None => None,
            Auth::BearerTokenFile(f) => Some((FileSecret::new(plan.str(*f)), None)),
            Auth::Basic {
                username,
                password_file,
            } => Some((
                FileSecret::new(plan.str(*password_file)),
                Some(plan.str(*username).to_string()),
            )),
        };
        Ok(ReceiverSide {
            receiver_url: url,
            receiver,
            tls,
            server_name,
            tenant_header: plan.receiver.tenant_header.map(|h| {
                (
                    plan.str(h.name).to_string(),
                    plan.str(h.value).as_bytes().to_vec(),
                )
            }),
            auth,
            remote_timeout_ms: u64::from(plan.receiver.remote_timeout_ms),
        })
    }
}

struct PendingRebuild {
    side: ReceiverSide,
    queue: plan::Queue,
    /// Answers to sends in flight count until then.
    until_ms: u64,
    /// The first seq built under the new shard layout.
    layout_barrier: u64,
}

/// Records the WAL keeps in memory ahead of the sender's window, so the
/// sender's next records are at hand when it has room.
const WAL_LOOKAHEAD_RECORDS: usize = 64;

/// The durable half: WAL, sender state machine and receiver connections.
/// It outlives plan reloads; a reload that changes the receiver or queue
/// reconfigures the sender and rebuilds the connections over the same WAL.
struct Shipping {
    wal: DiskWal,
    sender: Sender,
    shards: Vec<Option<ShardConn>>,
    receiver: Endpoint,
    receiver_url: String,
    tls: Option<Arc<ClientConfig>>,
    server_name: String,
    tenant_header: Option<(String, Vec<u8>)>,
    auth: Option<(FileSecret, Option<String>)>,
    auth_value: Vec<u8>,
    remote_timeout_ms: u64,
    /// Joins a run's WAL records into `body`; one body at a time, since a
    /// connection copies the request when it starts it.
    request: RequestBuilder,
    body: Vec<u8>,
    /// The records of the run being built.
    run_records: Vec<RecordMeta>,
    /// Next WAL seq to hand to the sender.
    fed_upto: u64,
    /// A reload's new receiver side and queue, waiting for sends in flight
    /// to be answered.
    pending_rebuild: Option<Box<PendingRebuild>>,
    batch_buf: Vec<u8>,
    dropped: Vec<RecordMeta>,
    now_ms: u64,
    /// The wall clock read with `now_ms`, for the receiver's `Date`.
    wall_ms: i64,
    receiver_offset: ReceiverOffset,
    last_persist_ms: u64,
    consecutive_failures: u64,
}

impl BatchSink for Shipping {
    /// A scrape ended (or a batch filled up): its samples of one shard
    /// become a WAL record, written before the next scrape of the target.
    fn batch_closed(&mut self, shard: u16, batch: &mut BatchBuilder) {
        let samples = batch.samples();
        // The WAL fills in seq and sizes.
        let record = RecordMeta {
            seq: 0,
            shard,
            samples,
            oldest_timestamp_ms: batch.oldest_timestamp_ms().unwrap_or(0),
            newest_timestamp_ms: batch.newest_timestamp_ms().unwrap_or(0),
            bytes: 0,
            raw_bytes: 0,
        };
        batch.finish_into(&mut self.batch_buf);
        let mut dropped = std::mem::take(&mut self.dropped);
        let appended = self
            .wal
            .append(record, &self.batch_buf, self.now_ms, &mut dropped);
        if let Err(e) = appended {
            log::error(
                "samples lost: WAL append failed",
                &[("samples", &samples), ("err", &e)],
            );
            self.sender
                .counters
                .record_dropped(DropReason::WalCorrupt, u64::from(samples));
        }
        for meta in dropped.drain(..) {
            if meta.seq >= self.fed_upto {
                // Never handed to the sender: counted here.
                self.sender
                    .counters
                    .record_dropped(DropReason::WalFull, u64::from(meta.samples));
            } else {
                // The sender gives it up now, or, when its request is on the
                // wire, once that request's answer calls for a retry.
                self.sender.handle_lost(meta.seq, DropReason::WalFull);
            }
        }
        self.dropped = dropped;
    }
}

impl Shipping {
    fn open(plan: &Plan, args: &RunArgs) -> Result<Shipping, StartError> {
        let side = ReceiverSide::build(plan)?;
        let max_batch_bytes = plan.queue.max_batch_bytes as usize;
        let dir = args
            .wal_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(plan.str(plan.wal.dir)));
        let lock = WalLock::acquire(&dir, Duration::from_millis(args.wal_lock_wait_ms))
            .map_err(StartError::WalLocked)?;
        let window = Window::of(&plan.queue);
        let lookahead = WAL_LOOKAHEAD_RECORDS as u64 * u64::from(plan.queue.max_samples_per_send);
        let wal = DiskWal::open(
            WalConfig {
                dir,
                segment_bytes: u64::from(plan.wal.segment_bytes),
                max_bytes: plan.wal.max_bytes,
                fsync: plan.wal.fsync,
                max_payload_bytes: plan::snappy_max_len(max_batch_bytes as u64) as usize,
                // The sender's window plus a look-ahead: what may sit in memory.
                max_window_records: window.records + WAL_LOOKAHEAD_RECORDS,
                max_window_samples: window.samples + lookahead,
            },
            lock,
        )?;
        let sender = Sender::with_window(&plan.queue, window);
        let shards = (0..plan.queue.max_shards.max(1)).map(|_| None).collect();
        let fed_upto = wal.ack_floor();
        Ok(Shipping {
            fed_upto,
            pending_rebuild: None,
            wal,
            sender,
            shards,
            receiver_url: side.receiver_url,
            receiver: side.receiver,
            tls: side.tls,
            server_name: side.server_name,
            tenant_header: side.tenant_header,
            auth: side.auth,
            auth_value: Vec::new(),
            remote_timeout_ms: side.remote_timeout_ms,
            request: RequestBuilder::new(max_batch_bytes),
            body: Vec::with_capacity(RequestBuilder::body_capacity(max_batch_bytes)),
            run_records: Vec::with_capacity(RECORDS_PER_SHARD),
            batch_buf: Vec::with_capacity(plan::snappy_max_len(max_batch_bytes as u64) as usize),
            dropped: Vec::new(),
            now_ms: 0,
            wall_ms: 0,
            receiver_offset: ReceiverOffset::default(),
            last_persist_ms: 0,
            consecutive_failures: 0,
        })
    }

    /// Asks for the receiver and queue settings to be replaced over the same
    /// WAL and sender. No new send starts from now on; sends in flight get
    /// until their timeout (at most [`SHUTDOWN_BUDGET_MS`]) to be answered,
    /// and their answers count. Then [`Shipping::rebuild_when_drained`]
    /// switches.
    fn request_rebuild(&mut self, side: ReceiverSide, queue: plan::Queue, now: u64) {
        self.pending_rebuild = Some(Box::new(PendingRebuild {
            side,
            queue,
            until_ms: now + self.remote_timeout_ms.min(SHUTDOWN_BUDGET_MS),
            layout_barrier: self.wal.next_seq(),
        }));
    }

    /// Switches once nothing is in flight or the drain time is up. What is
    /// still unanswered then goes back to the sender's pending records and
    /// is sent again to the new receiver.
    fn rebuild_when_drained(&mut self, registry: &Registry, now: u64) {
        let due = self
            .pending_rebuild
            .as_ref()
            .is_some_and(|p| self.in_flight() == 0 || now >= p.until_ms);
        if !due {
            return;
        }
        let Some(pending) = self.pending_rebuild.take() else {
            return;
        };
        let PendingRebuild {
            side,
            queue,
            layout_barrier,
            ..
        } = *pending;
        let abandoned = self.in_flight();
        for mut sc in self.shards.iter_mut().filter_map(Option::take) {
            sc.conn.close(registry);
        }
        self.sender.reconfigure(&queue, layout_barrier);
        self.shards = (0..queue.max_shards.max(1)).map(|_| None).collect();
        self.receiver = side.receiver;
        self.receiver_url = side.receiver_url;
        self.tls = side.tls;
        self.server_name = side.server_name;
        self.tenant_header = side.tenant_header;
        self.auth = side.auth;
        self.remote_timeout_ms = side.remote_timeout_ms;
        self.consecutive_failures = 0;
        log::info(
            "reload: remote write rebuilt",
            &[
                ("url", &self.receiver_url),
                ("min_shards", &queue.min_shards),
                ("max_shards", &queue.max_shards),
                ("abandoned_in_flight", &abandoned),
            ],
        );
    }

    /// Hands WAL records to the sender as its window has room.
    fn feed(&mut self, now: u64) {
        // Records built under a reload's new shard layout wait for the
        // sender that knows that layout.
        let barrier = self.pending_rebuild.as_ref().map(|p| p.layout_barrier);
        while self.sender.has_room() {
            let meta = match self.wal.peek_from(self.fed_upto) {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => {
                    log::error("cannot read the WAL", &[("err", &e)]);
                    break;
                }
            };
            if barrier.is_some_and(|b| meta.seq >= b) || self.sender.handle_enqueued(meta, now).is_err() {
                break;
            }
            self.fed_upto = meta.seq + 1;
        }
    }

    fn refresh_auth(&mut self) {
        self.auth_value.clear();
        let Some((secret, user)) = &mut self.auth else {
            return;
        };
        let value = secret.get();
        match user {
            None => {
                self.auth_value.extend_from_slice(b"Bearer ");
                self.auth_value.extend_from_slice(value);
            }
            Some(user) => {
                let mut plain = Vec::with_capacity(user.len() + 1 + value.len());
                plain.extend_from_slice(user.as_bytes());
                plain.push(b':');
                plain.extend_from_slice(value);
                self.auth_value.extend_from_slice(b"Basic ");
                base64(&plain, &mut self.auth_value);
            }
        }
    }

    /// Builds the body of the run the sender handed out from its WAL
    /// records into `self.body`; gives where it starts. Records the WAL no
    /// longer has (deleted when full) or cannot read are given up, and
    /// samples older than the run's cutoff are left out and reported.
    fn build_body(&mut self, run: &Run) -> usize {
        self.request.begin(&mut self.body);
        for meta in &self.run_records {
            let lost = match self.wal.read_payload(meta.seq) {
                Ok(Some(payload)) => match self.request.push(meta, payload, run.cutoff_ms, &mut self.body) {
                    Ok(aged_out) => {
                        self.sender.handle_aged_out(meta.seq, aged_out);
                        None
                    }
                    Err(e) => {
                        log::error(
                            "WAL record cannot be sent; giving it up",
                            &[("seq", &meta.seq), ("err", &e)],
                        );
                        Some(DropReason::WalCorrupt)
                    }
                },
                Ok(None) => Some(DropReason::WalFull),
                Err(e) => {
                    log::error(
                        "cannot read a record back from the WAL; giving it up",
                        &[("seq", &meta.seq), ("err", &e)],
                    );
                    Some(DropReason::WalCorrupt)
                }
            };
            if let Some(reason) = lost {
                self.sender.handle_lost(meta.seq, reason);
            }
        }
        self.request.finish(&mut self.body)
    }

    fn log_send_failure(&mut self, err: &dyn std::fmt::Display) {
        self.consecutive_failures += 1;
        // An outage fails every retry; one line per ten keeps the log readable.
        if self.consecutive_failures % 10 == 1 {
            log::warn(
                "remote write failed",
                &[
                    ("url", &self.receiver_url),
                    ("consecutive_failures", &self.consecutive_failures),
                    ("err", err),
                ],
            );
        }
    }

    /// Starts every send the sender allows now. `wall` is the wall clock,
    /// which judges sample age; `now` is the clock of every deadline.
    fn transmit(&mut self, registry: &Registry, now: u64, wall: i64) {
        if self.pending_rebuild.is_some() {
            return;
        }
        while let Some(run) = self.sender.poll_transmit(now, wall, &mut self.run_records) {
            let shard = usize::from(run.shard);
            // The receiver's name moved: an idle connection to the old
            // address is replaced (busy ones finish first, see below).
            let moved = self.shards[shard]
                .as_ref()
                .is_some_and(|sc| sc.in_flight.is_none() && Some(sc.addr) != self.receiver.name.addr);
            if moved {
                if let Some(mut old) = self.shards[shard].take() {
                    old.conn.close(registry);
                }
            }
            if self.shards[shard].is_none() {
                let bufs = ConnBuffers {
                    read_bytes: 16 * 1024,
                    head_bytes: 8 * 1024,
                    request_bytes: self.body.capacity() + 4096,
                    inflate_out_bytes: 16 * 1024,
                };
                let Some(addr) = self.receiver.name.addr else {
                    // Not resolved yet (the lookup runs off the loop): the
                    // run backs off and is offered again.
                    self.log_send_failure(&"receiver name not resolved yet");
                    self.sender.handle_transport_error(run.id, now);
                    continue;
                };
                match HttpClientConn::new(
                    addr,
                    self.tls.clone(),
                    &self.server_name,
                    Token(SHARD_TOKEN_BASE + shard),
                    bufs,
                ) {
                    Ok(conn) => {
                        self.shards[shard] = Some(ShardConn {
                            conn,
                            addr,
                            in_flight: None,
                        })
                    }
                    Err(e) => {
                        log::error(
                            "cannot set up receiver connection",
                            &[("url", &self.receiver_url), ("err", &e)],
                        );
                        self.sender.handle_transport_error(run.id, now);
                        continue;
                    }
                }
            }
            let at = self.build_body(&run);
            if !self
                .sender
                .handle_built(run.id, (self.body.len() - at) as u64, now)
            {
                // Every record of the run was lost: nothing to send.
                continue;
            }
            self.refresh_auth();
            // A fixed array: sending allocates nothing.
            let mut headers: [(&str, &[u8]); HEADERS.len() + 2] = [("", b""); HEADERS.len() + 2];
            for (slot, (n, v)) in headers.iter_mut().zip(HEADERS.iter()) {
                *slot = (n, v.as_bytes());
            }
            let mut count = HEADERS.len();
            if let Some((n, v)) = &self.tenant_header {
                headers[count] = (n.as_str(), v.as_slice());
                count += 1;
            }
            if !self.auth_value.is_empty() {
                headers[count] = ("Authorization", self.auth_value.as_slice());
                count += 1;
            }
            let req = Request {
                method: "POST",
                path: &self.receiver.path,
                host: &self.receiver.authority,
                headers: &headers[..count],
                body: &self.body[at..],
                accept_gzip: false,
                limits: BodyLimits {
                    max_body_bytes: 64 * 1024,
                    max_decoded_bytes: 64 * 1024,
                },
                timeout_ms: self.remote_timeout_ms,
            };
            let sc = self.shards[shard].as_mut().expect("created above");
            match sc.conn.start_request(registry, &req, now) {
                Ok(()) => sc.in_flight = Some(run.id),
                Err(e) => {
                    self.log_send_failure(&e);
                    self.sender.handle_transport_error(run.id, now);
                }
            }
        }
    }

    fn handle_shard_event(&mut self, registry: &Registry, shard: usize, now: u64, timeout: bool) {
        let Some(sc) = self.shards.get_mut(shard).and_then(Option::as_mut) else {
            return;
        };
        let mut discard = |_: &crate::net::ResponseHead, _: &[u8]| -> Result<(), ()> { Ok(()) };
        let progress = if timeout {
            sc.conn.handle_timeout::<()>(registry, now)
        } else {
            sc.conn.handle_event(registry, now, &mut discard)
        };
        let Some(run) = sc.in_flight else {
            return;
        };
        match progress {
            Progress::Pending => {}
            Progress::Done(head) => {
                sc.in_flight = None;
                if let Some(date_s) = head.date_s {
                    self.receiver_offset
                        .observe(date_s, self.wall_ms, now, &self.receiver_url);
                }
                if head.is_success() {
                    if self.consecutive_failures > 0 {
                        log::info(
                            "remote write recovered",
                            &[
                                ("url", &self.receiver_url),
                                ("failures", &self.consecutive_failures),
                            ],
                        );
                    }
                    self.consecutive_failures = 0;
                }
                let retry_after = head.retry_after_s.map(|s| u64::from(s) * 1000);
                let outcome = self.sender.handle_response(run, head.status, retry_after, now);
                if !head.is_success() {
                    log::warn(
                        "receiver refused a batch",
                        &[
                            ("url", &self.receiver_url),
                            ("status", &head.status),
                            ("batch", &run),
                            ("outcome", &outcome_name(&outcome)),
                        ],
                    );
                }
            }
            Progress::Failed(f) => {
                sc.in_flight = None;
                let err = match f {
                    Failure::Net(e) => e.to_string(),
                    Failure::Sink(()) => "sink".to_string(),
                };
                self.receiver.name.ask_soon(now);
                self.log_send_failure(&err);
                self.sender.handle_transport_error(run, now);
            }
        }
    }

    fn next_deadline(&mut self) -> Option<u64> {
        let conns = self
            .shards
            .iter()
            .flatten()
            .filter_map(|s| s.conn.deadline_ms())
            .min();
        let rebuild = self.pending_rebuild.as_ref().map(|p| p.until_ms);
        // While a rebuild waits nothing is sent, so the sender's deadlines
        // (which may be due) wait for it too.
        let sender = match rebuild {
            Some(_) => None,
            None => self.sender.poll_timeout(),
        };
        [conns, sender, self.wal.next_sync_ms(), rebuild]
            .into_iter()
            .flatten()
            .min()
    }

    fn settle(&mut self, now: u64) {
        if let Some(floor) = self.sender.ack_floor() {
            self.wal.ack(floor);
        }
        if now >= self.last_persist_ms + MAX_SLEEP_MS {
            self.wal.persist_ack_floor();
            self.last_persist_ms = now;
        }
        if self.wal.next_sync_ms().is_some_and(|t| now >= t) {
            self.wal.sync(now);
        }
    }

    fn in_flight(&self) -> usize {
        self.shards
            .iter()
            .flatten()
            .filter(|s| s.in_flight.is_some())
            .count()
    }
}

fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Acked { .. } => "acked",
        Outcome::Retry { .. } => "retry",
        Outcome::Dropped { reason, .. } => reason.as_str(),
        Outcome::Unknown { .. } => "unknown",
    }
}

// ---------------------------------------------------------------- status

/// Renders the agent's own `/metrics`: what a Prometheus agent exports,
/// plus outpost's scrape and WAL families and process metrics.
fn render_self_metrics(
    out: &mut String,
    ship: &Shipping,
    scraping: &Scraping,
    procfs: &Path,
    scratch: &mut String,
) {
    out.clear();
    let _ = ship.sender.render_metrics(out, "outpost", &ship.receiver_url);
    let targets = scraping.targets.iter().map(|t| &t.stats);
    status::render_agent_metrics(out, targets, &ship.wal.counters, ship.wal.total_bytes());
    status::render_clock_metrics(
        out,
        clock::kernel_clock_synchronised(),
        ship.receiver_offset.seconds(),
        &ship.receiver_url,
    );
    scratch.clear();
    collectors::render_process_metrics(procfs, scratch);
    out.push_str(scratch);
}

struct StatusView<'a> {
    ship: &'a Shipping,
    scraping: &'a Scraping,
    info: &'a RuntimeInfo,
    procfs: &'a Path,
    ready: bool,
    text: &'a mut String,
    scratch: &'a mut String,
}

impl Responder for StatusView<'_> {
    fn respond(&mut self, method: &str, path: &str, out: &mut Response) {
        if method != "GET" && method != "HEAD" {
            out.status = 405;
            out.body.extend_from_slice(b"Method Not Allowed\n");
            return;
        }
        match path {
            "/metrics" => {
                render_self_metrics(self.text, self.ship, self.scraping, self.procfs, self.scratch);
                out.content_type = "text/plain; version=0.0.4; charset=utf-8";
                out.body.extend_from_slice(self.text.as_bytes());
            }
            "/-/healthy" => out.body.extend_from_slice(b"Healthy\n"),
            "/-/ready" if self.ready => out.body.extend_from_slice(b"Ready\n"),
            "/-/ready" => {
                out.status = 503;
                out.body.extend_from_slice(b"Service Unavailable\n");
            }
            "/api/v1/status/runtimeinfo" => {
                self.text.clear();
                status::render_runtimeinfo(self.info, self.text);
                out.content_type = "application/json";
                out.body.extend_from_slice(self.text.as_bytes());
            }
            _ => {
                out.status = 404;
                out.body.extend_from_slice(b"404 page not found\n");
            }
        }
    }
}

// ---------------------------------------------------------------- the agent

/// Why the agent did not start; each has its own exit code.
#[derive(Debug)]
pub enum StartError {
    /// Another process holds the WAL directory.
    WalLocked(LockError),
    /// Anything else: a bad plan field, a file, a port.
    Failed(String),
}

impl StartError {
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::WalLocked(_) => crate::cli::EXIT_WAL_LOCKED,
            StartError::Failed(_) => 1,
        }
    }
}

impl From<String> for StartError {
    fn from(e: String) -> StartError {
        StartError::Failed(e)
    }
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::WalLocked(e) => e.fmt(f),
            StartError::Failed(e) => f.write_str(e),
        }
    }
}

/// Why the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM or SIGINT.
    Signal(libc::c_int),
    /// `epoll_wait` failed with something other than EINTR.
    PollFailed,
}

pub struct Agent {
    args: RunArgs,
    poll: Poll,
    signals: SignalPipe,
    server: HttpServer,
    plan: Plan,
    scraping: Scraping,
    ship: Shipping,
    info: RuntimeInfo,
    ready: bool,
    last_reshard_check_ms: u64,
    resolver: ResolverThread,
    resolution: Resolution,
    clock: Clock,
    events: Events,
    pending_signals: Vec<libc::c_int>,
    text: String,
    scratch: String,
    node_body: String,
}

impl Agent {
    /// Loads everything the plan describes: WAL (scanned, not loaded),
    /// targets, status server. Errors name the plan field or the file.
    pub fn start(args: RunArgs, plan: Plan) -> Result<Agent, StartError> {
        Self::start_with(args, plan, Resolution::default())
    }

    /// [`Agent::start`] with a chosen name resolution (tests move names).
    pub fn start_with(args: RunArgs, plan: Plan, resolution: Resolution) -> Result<Agent, StartError> {
        Self::start_with_clock(args, plan, resolution, Clock::system())
    }

    /// [`Agent::start_with`] on a chosen clock (tests step its wall clock).
    pub fn start_with_clock(
        args: RunArgs,
        plan: Plan,
        resolution: Resolution,
        clock: Clock,
    ) -> Result<Agent, StartError> {
        let now = clock.now_ms();
        let wall = clock.wall_ms().max(0) as u64;
        let poll = Poll::new().map_err(|e| format!("cannot create poll: {e}"))?;
        let signals = SignalPipe::install().map_err(|e| format!("cannot install signal handlers: {e}"))?;
        poll.registry()
            .register(&mut SourceFd(&signals.read_fd), SIGNAL_TOKEN, Interest::READABLE)
            .map_err(|e| format!("cannot register signal pipe: {e}"))?;
        let resolver = ResolverThread::spawn(poll.registry(), resolution.resolve.clone())
            .map_err(|e| format!("cannot start the resolver thread: {e}"))?;
        let ship = Shipping::open(&plan, &args)?;
        let scraping = Scraping::build(&plan, &args, ship.sender.shards(), now)?;
        let server = HttpServer::bind(
            args.listen,
            poll.registry(),
            LISTENER_TOKEN,
            STATUS_CONN_BASE,
            ServerLimits {
                max_conns: STATUS_CONNS,
                ..ServerLimits::default()
            },
        )
        .map_err(|e| format!("--listen {}: {e}", args.listen))?;
        let info = RuntimeInfo {
            start_time_ms: wall,
            cwd: std::env::current_dir()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            reload_config_success: true,
            last_config_time_ms: wall,
            corruption_count: ship.wal.counters.corruptions,
            wal_dir: ship.wal.dir().display().to_string(),
            wal_max_bytes: plan.wal.max_bytes,
        };
        log::info(
            "outpost started",
            &[
                ("version", &env!("CARGO_PKG_VERSION")),
                ("plan", &args.plan.display()),
                ("role", &plan.agent.role.as_str()),
                ("targets", &scraping.targets.len()),
                ("receiver", &ship.receiver_url),
                ("wal_dir", &ship.wal.dir().display()),
                ("wal_replay_records", &ship.wal.counters.replayed_records),
                ("wal_replay_samples", &ship.wal.counters.replayed_samples),
                ("listen", &args.listen),
            ],
        );
        Ok(Agent {
            args,
            poll,
            signals,
            server,
            plan,
            scraping,
            ship,
            info,
            ready: false,
            last_reshard_check_ms: now,
            resolver,
            resolution,
            clock,
            events: Events::with_capacity(256),
            pending_signals: Vec::with_capacity(16),
            text: String::with_capacity(64 * 1024),
            scratch: String::with_capacity(8 * 1024),
            node_body: String::with_capacity(256 * 1024),
        })
    }

    pub fn listen_addr(&self) -> io::Result<SocketAddr> {
        self.server.local_addr()
    }

    /// Runs until SIGTERM/SIGINT; returns the process exit code.
    pub fn run(mut self) -> i32 {
        loop {
            match self.turn() {
                None => {}
                Some(Stop::Signal(signal)) => return self.shutdown(signal),
                Some(Stop::PollFailed) => return 1,
            }
        }
    }

    /// Runs loop turns for `duration` of the agent's monotonic clock.
    /// Returns early, without shutting down, if SIGTERM/SIGINT came in or
    /// polling failed: the caller decides. Lets a test or an embedder drive
    /// the same loop `run` drives, a bounded stretch at a time.
    pub fn run_for(&mut self, duration: Duration) -> Option<Stop> {
        let until_ms = self.clock.now_ms() + duration.as_millis() as u64;
        while self.clock.now_ms() < until_ms {
            if let Some(signal) = self.turn() {
                return Some(signal);
            }
        }
        None
    }

    /// Flushes and exits as on SIGTERM; for callers of [`Agent::run_for`].
    pub fn stop(self) -> i32 {
        self.shutdown(libc::SIGTERM)
    }

    /// One loop turn: work due deadlines, wait for events (at most
    /// [`MAX_SLEEP_MS`]), handle them. Returns why the loop must end, if it must.
    fn turn(&mut self) -> Option<Stop> {
        let now = self.clock.now_ms();
        if !self.ready {
            // The WAL was scanned in `start`; what it holds goes to the sender now.
            self.ship.feed(now);
            self.ready = true;
        }
        self.ship.now_ms = now;
        self.ship.wall_ms = self.clock.wall_ms();
        self.tick(now);
        let timeout = self
            .next_deadline()
            .map(|d| d.saturating_sub(self.clock.now_ms()).min(MAX_SLEEP_MS));
        let timeout = Duration::from_millis(timeout.unwrap_or(MAX_SLEEP_MS));
        if let Err(e) = self.poll.poll(&mut self.events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                log::error("poll failed", &[("err", &e)]);
                return Some(Stop::PollFailed);
            }
        }
        let now = self.clock.now_ms();
        self.ship.now_ms = now;
        self.ship.wall_ms = self.clock.wall_ms();
        // Taken out so the handlers may borrow `self`; an empty `Events` has
        // no heap buffer, so the swap allocates nothing.
        let events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        for event in events.iter() {
            let token = event.token();
            if token == SIGNAL_TOKEN {
                self.signals.drain(&mut self.pending_signals);
            } else if token == RESOLVER_TOKEN {
                self.take_answers(now);
            } else if self.server.owns(token) {
                let mut view = StatusView {
                    ship: &self.ship,
                    scraping: &self.scraping,
                    info: &self.info,
                    procfs: &self.args.procfs,
                    ready: self.ready,
                    text: &mut self.text,
                    scratch: &mut self.scratch,
                };
                self.server
                    .handle_event(self.poll.registry(), token, now, &mut view);
            } else if token.0 >= SHARD_TOKEN_BASE {
                self.ship
                    .handle_shard_event(self.poll.registry(), token.0 - SHARD_TOKEN_BASE, now, false);
            } else if token.0 >= TARGET_TOKEN_BASE {
                self.handle_target_event(token.0 - TARGET_TOKEN_BASE, now, false);
            }
        }
        self.events = events;
        let mut i = 0;
        while i < self.pending_signals.len() {
            let signal = self.pending_signals[i];
            i += 1;
            match signal {
                libc::SIGHUP => self.reload(now),
                libc::SIGTERM | libc::SIGINT => {
                    self.pending_signals.clear();
                    return Some(Stop::Signal(signal));
                }
                _ => {}
            }
        }
        self.pending_signals.clear();
        None
    }

    /// Hands each lookup answer to every name it is for (a host shared by
    /// the receiver and targets is asked once per refresh each, answered to
    /// all).
    fn take_answers(&mut self, now: u64) {
        let refresh = self.resolution.refresh_ms;
        while let Ok(answer) = self.resolver.answers.try_recv() {
            self.ship.receiver.name.apply(&answer, now, refresh, "receiver");
            for t in &mut self.scraping.targets {
                if let Source::Http(h) = &mut t.source {
                    h.dial.name.apply(&answer, now, refresh, "target");
                }
            }
        }
    }

    /// Works every deadline that has passed.
    fn tick(&mut self, now: u64) {
        self.server.handle_timeout(self.poll.registry(), now);
        self.ship.receiver.name.ask_if_due(now, &self.resolver);
        for t in &mut self.scraping.targets {
            if let Source::Http(h) = &mut t.source {
                h.dial.name.ask_if_due(now, &self.resolver);
            }
        }
        for i in 0..self.scraping.targets.len() {
            let t = &self.scraping.targets[i];
            let timed_out = match &t.source {
                Source::Http(h) => h.conn.deadline_ms().is_some_and(|d| now >= d),
                _ => false,
            };
            if timed_out {
                self.handle_target_event(i, now, true);
            }
            if self.scraping.targets[i].started_ms.is_none() && now >= self.scraping.targets[i].next_at_ms {
                self.start_scrape(i, now);
            }
        }
        for shard in 0..self.ship.shards.len() {
            let due = self.ship.shards[shard]
                .as_ref()
                .and_then(|s| s.conn.deadline_ms())
                .is_some_and(|d| now >= d);
            if due {
                self.ship
                    .handle_shard_event(self.poll.registry(), shard, now, true);
            }
        }
        self.maybe_reshard(now);
        self.ship.rebuild_when_drained(self.poll.registry(), now);
        self.ship.settle(now);
        self.ship.feed(now);
        // One clock for deadlines and for sample age until the clocks split.
        let wall = self.ship.wall_ms;
        self.ship.transmit(self.poll.registry(), now, wall);
    }

    fn maybe_reshard(&mut self, now: u64) {
        if now < self.last_reshard_check_ms + RESHARD_CHECK_MS || self.ship.pending_rebuild.is_some() {
            return;
        }
        self.last_reshard_check_ms = now;
        let sender = &mut self.ship.sender;
        if sender.desired_shards() == sender.shards() {
            return;
        }
        // Between loop turns no batch is open (every scrape closed its own),
        // so the next record is the first of the new layout.
        if let Some(n) = self.ship.sender.poll_reshard(self.ship.wal.next_seq()) {
            log::info("resharding", &[("shards", &n)]);
            self.scraping
                .batcher
                .set_shards(n, &self.plan.queue, &mut self.ship);
        }
    }

    fn next_deadline(&mut self) -> Option<u64> {
        let targets = self
            .scraping
            .targets
            .iter()
            .map(|t| match (&t.source, t.started_ms) {
                (Source::Http(h), Some(_)) => h.conn.deadline_ms().unwrap_or(u64::MAX),
                _ => t.next_at_ms,
            })
            .min();
        [targets, self.ship.next_deadline(), self.server.deadline_ms()]
            .into_iter()
            .flatten()
            .min()
    }

    fn start_scrape(&mut self, i: usize, now: u64) {
        let t = &mut self.scraping.targets[i];
        if let Source::Http(h) = &t.source {
            if h.dial.name.addr.is_none() && h.dial.name.awaiting_first_answer(now) {
                t.next_at_ms = now + 50;
                return;
            }
        }
        // Keep the phase: the next scrape is one interval after this one was due.
        t.next_at_ms = (t.next_at_ms + t.interval_ms).max(now + 1);
        t.stats.scrapes += 1;
        t.begun = false;
        t.started_ms = Some(now);
        t.started_wall_ms = self.clock.wall_ms();
        let wall = t.started_wall_ms;
        match &mut t.source {
            Source::Http(h) => {
                let d = &mut h.dial;
                if d.name.addr != d.conn_addr {
                    let Some(addr) = d.name.addr else {
                        let msg = format!("{} does not resolve (yet)", d.name.host);
                        return self.scrape_failed(i, now, "dns_failed", &msg);
                    };
                    // The name moved (or resolved for the first time): the
                    // next request connects to the new address.
                    match HttpClientConn::new(addr, d.tls.clone(), &d.server_name, d.token, d.bufs) {
                        Ok(conn) => {
                            h.conn.close(self.poll.registry());
                            h.conn = conn;
                            d.conn_addr = Some(addr);
                        }
                        Err(e) => return self.scrape_failed(i, now, "dns_failed", &e.to_string()),
                    }
                }
                let mut headers: [(&str, &[u8]); 3] = [
                    ("Accept", SCRAPE_ACCEPT),
                    ("X-Prometheus-Scrape-Timeout-Seconds", h.timeout_header.as_bytes()),
                    ("", b""),
                ];
                let mut count = 2;
                if let Some(secret) = &mut h.bearer {
                    h.auth_header.clear();
                    h.auth_header.extend_from_slice(b"Bearer ");
                    h.auth_header.extend_from_slice(secret.get());
                    headers[count] = ("Authorization", &h.auth_header);
                    count += 1;
                }
                let req = Request {
                    method: "GET",
                    path: &h.path,
                    host: &h.authority,
                    headers: &headers[..count],
                    body: &[],
                    accept_gzip: true,
                    limits: h.limits,
                    timeout_ms: h.timeout_ms,
                };
                if let Err(e) = h.conn.start_request(self.poll.registry(), &req, now) {
                    let reason = e.reason();
                    let msg = e.to_string();
                    self.scrape_failed(i, now, reason, &msg);
                }
            }
            Source::Node => {
                t.pipeline.begin(Format::PrometheusText, wall);
                if let Some(node) = &mut self.scraping.node {
                    node.collect(&mut self.node_body);
                }
                let result = t
                    .pipeline
                    .handle_chunk(self.node_body.as_bytes(), &mut self.scraping.batcher);
                self.finish_scrape(i, now, result);
            }
            Source::SelfScrape => {
                render_self_metrics(
                    &mut self.text,
                    &self.ship,
                    &self.scraping,
                    &self.args.procfs,
                    &mut self.scratch,
                );
                let t = &mut self.scraping.targets[i];
                t.pipeline.begin(Format::PrometheusText, wall);
                let result = t
                    .pipeline
                    .handle_chunk(self.text.as_bytes(), &mut self.scraping.batcher);
                self.finish_scrape(i, now, result);
            }
        }
    }

    fn handle_target_event(&mut self, i: usize, now: u64, timeout: bool) {
        let registry = self.poll.registry();
        let batcher = &mut self.scraping.batcher;
        let Some(t) = self.scraping.targets.get_mut(i) else {
            return;
        };
        if t.started_ms.is_none() {
            return;
        }
        let started = t.started_wall_ms;
        let Target {
            pipeline,
            source,
            begun,
            ..
        } = t;
        let Source::Http(h) = source else {
            return;
        };
        let mut sink = |head: &crate::net::ResponseHead, chunk: &[u8]| {
            if head.status != 200 {
                return Ok(());
            }
            if !*begun {
                pipeline.begin(Format::from_content_type(head.content_type()), started);
                *begun = true;
            }
            pipeline.handle_chunk(chunk, batcher)
        };
        let progress = if timeout {
            h.conn.handle_timeout(registry, now)
        } else {
            h.conn.handle_event(registry, now, &mut sink)
        };
        match progress {
            Progress::Pending => {}
            Progress::Done(head) if head.status == 200 => {
                if !t.begun {
                    t.pipeline
                        .begin(Format::from_content_type(head.content_type()), started);
                }
                self.finish_scrape(i, now, Ok(()));
            }
            Progress::Done(head) => {
                let msg = format!("server returned HTTP status {}", head.status);
                self.scrape_failed(i, now, "http_status", &msg);
            }
            Progress::Failed(Failure::Net(e)) => self.scrape_failed(i, now, e.reason(), &e.to_string()),
            Progress::Failed(Failure::Sink(e)) => self.scrape_failed(i, now, e.reason(), &e.to_string()),
        }
    }

    /// The body is complete (or the in-process text was fed): commit it.
    fn finish_scrape(&mut self, i: usize, now: u64, fed: Result<(), outpost_core::error::ScrapeError>) {
        if let Err(e) = fed {
            return self.scrape_failed(i, now, e.reason(), &e.to_string());
        }
        let t = &mut self.scraping.targets[i];
        let duration = now.saturating_sub(t.started_ms.unwrap_or(now)) as f64 / 1000.0;
        t.started_ms = None;
        let committed = t
            .pipeline
            .finish(duration, now, &mut self.scraping.batcher, &mut self.ship);
        // The scrape is in the WAL before the next one of the target starts.
        self.scraping.batcher.close_all(&mut self.ship);
        let t = &mut self.scraping.targets[i];
        match committed {
            Ok(report) => {
                t.stats.duplicate_samples += report.duplicates;
                if report.too_old > 0 {
                    t.stats.samples_too_old += report.too_old;
                    self.ship
                        .sender
                        .counters
                        .record_dropped(DropReason::TooOld, report.too_old);
                    Self::log_too_old(t, report.too_old, self.plan.queue.max_sample_age_ms, now);
                }
                if t.up != Some(true) {
                    log::info(
                        "target up",
                        &[
                            ("job", &t.stats.job),
                            ("instance", &t.stats.instance),
                            ("samples", &report.samples_post_relabel),
                        ],
                    );
                }
                t.up = Some(true);
            }
            Err(e) => {
                t.stats.count_failure(e.reason());
                Self::log_down(t, e.reason(), &e.to_string());
            }
        }
    }

    /// Samples refused as too old are logged when a target first sends
    /// them, then at most every [`TOO_OLD_LOG_EVERY_MS`] with the count since.
    fn log_too_old(t: &mut Target, refused: u64, max_age_ms: u64, now: u64) {
        t.too_old_unlogged += refused;
        if t.too_old_logged_ms
            .is_some_and(|at| now < at + TOO_OLD_LOG_EVERY_MS)
        {
            return;
        }
        log::warn(
            "samples with own timestamps older than queue.max_sample_age refused; the rest of the scrape is kept",
            &[
                ("job", &t.stats.job),
                ("instance", &t.stats.instance),
                ("refused", &t.too_old_unlogged),
                ("max_sample_age_seconds", &(max_age_ms / 1000)),
            ],
        );
        t.too_old_logged_ms = Some(now);
        t.too_old_unlogged = 0;
    }

    fn scrape_failed(&mut self, i: usize, now: u64, reason: &'static str, msg: &str) {
        let t = &mut self.scraping.targets[i];
        if let Source::Http(h) = &mut t.source {
            if matches!(
                reason,
                "connect_failed" | "timeout" | "dns_failed" | "connection_closed"
            ) {
                h.dial.name.ask_soon(now);
            }
        }
        let duration = now.saturating_sub(t.started_ms.unwrap_or(now)) as f64 / 1000.0;
        t.started_ms = None;
        t.stats.count_failure(reason);
        t.pipeline.fail(
            t.started_wall_ms,
            duration,
            now,
            &mut self.scraping.batcher,
            &mut self.ship,
        );
        self.scraping.batcher.close_all(&mut self.ship);
        Self::log_down(&mut self.scraping.targets[i], reason, msg);
    }

    fn log_down(t: &mut Target, reason: &str, msg: &str) {
        let level = if t.up == Some(false) {
            log::Level::Debug
        } else {
            log::Level::Warn
        };
        log::event(
            level,
            "scrape failed",
            &[
                ("job", &t.stats.job),
                ("instance", &t.stats.instance),
                ("reason", &reason),
                ("err", &msg),
            ],
        );
        t.up = Some(false);
    }

    /// SIGHUP: a new plan replaces the scrape side. A changed receiver or
    /// queue rebuilds the sending side over the same WAL (see
    /// [`Shipping::request_rebuild`]); WAL settings wait for a restart. A bad plan
    /// keeps the old one whole.
    fn reload(&mut self, now: u64) {
        let wall = self.clock.wall_ms();
        let mut plan = match load_plan(&self.args.plan) {
            Ok(p) => p,
            Err(e) => {
                self.info.reload_config_success = false;
                log::error("reload failed, keeping the running plan", &[("err", &e)]);
                return;
            }
        };
        if plan.wal != self.plan.wal {
            // The WAL's directory, bound and segment size shape the open
            // segments; moving them under a running sender is not supported.
            log::warn(
                "reload: wal settings (dir, max_bytes, segment_bytes, fsync) are NOT applied; restart required",
                &[("plan", &self.args.plan.display())],
            );
            plan.wal = self.plan.wal.clone();
        }
        if plan.queue.max_batch_bytes > self.plan.queue.max_batch_bytes {
            // WAL records were sized for the old bound at open.
            log::warn(
                "reload: a larger queue.max_batch_bytes is NOT applied; restart required",
                &[
                    ("running", &self.plan.queue.max_batch_bytes),
                    ("new", &plan.queue.max_batch_bytes),
                ],
            );
            plan.queue.max_batch_bytes = self.plan.queue.max_batch_bytes;
        }
        let shipping_changed = plan.receiver != self.plan.receiver || plan.queue != self.plan.queue;
        let side = if shipping_changed {
            match ReceiverSide::build(&plan) {
                Ok(side) => Some(side),
                Err(e) => {
                    self.info.reload_config_success = false;
                    log::error("reload failed, keeping the running plan", &[("err", &e)]);
                    return;
                }
            }
        } else {
            None
        };
        let shards = if shipping_changed {
            plan.queue.min_shards.max(1)
        } else {
            self.ship.sender.shards()
        };
        match Scraping::build(&plan, &self.args, shards, now) {
            Ok(new) => {
                // Same target in both plans: keep its staleness memory and
                // counters. Gone from the new plan: its series go stale.
                let mut old = std::mem::replace(&mut self.scraping, new);
                for t in &mut old.targets {
                    let kept = self
                        .scraping
                        .targets
                        .iter_mut()
                        .find(|n| n.stats.job == t.stats.job && n.stats.instance == t.stats.instance);
                    match kept {
                        Some(n) => {
                            // A target whose series change (its labels, relabeling,
                            // external labels) starts afresh; its old series go stale.
                            if !n
                                .pipeline
                                .adopt_series(&mut t.pipeline, &old.batcher, &self.scraping.batcher)
                            {
                                t.pipeline.retire(wall, now, &mut old.batcher, &mut self.ship);
                            }
                            std::mem::swap(&mut n.stats, &mut t.stats);
                            n.up = t.up;
                            n.too_old_logged_ms = t.too_old_logged_ms;
                            n.too_old_unlogged = t.too_old_unlogged;
                        }
                        None => t.pipeline.retire(wall, now, &mut old.batcher, &mut self.ship),
                    }
                }
                old.batcher.close_all(&mut self.ship);
                old.close(self.poll.registry());
                if let Some(side) = side {
                    self.ship.request_rebuild(side, plan.queue.clone(), now);
                }
                self.plan = plan;
                self.info.reload_config_success = true;
                self.info.last_config_time_ms = wall.max(0) as u64;
                log::info(
                    "plan reloaded",
                    &[
                        ("plan", &self.args.plan.display()),
                        ("targets", &self.scraping.targets.len()),
                    ],
                );
            }
            Err(e) => {
                self.info.reload_config_success = false;
                log::error("reload failed, keeping the running plan", &[("err", &e)]);
            }
        }
    }

    /// SIGTERM/SIGINT: every completed scrape is in the WAL already; it is
    /// synced, then a short grace period lets sends in flight finish;
    /// whatever is unsent stays in the WAL for the next start. A scrape
    /// still in progress is abandoned, as Prometheus abandons it.
    fn shutdown(mut self, signal: libc::c_int) -> i32 {
        let start = self.clock.now_ms();
        self.ship.now_ms = start;
        self.ship.wal.sync(start);
        let mut events = Events::with_capacity(64);
        while self.ship.in_flight() > 0 && self.clock.now_ms() < start + SHUTDOWN_BUDGET_MS {
            let _ = self.poll.poll(&mut events, Some(Duration::from_millis(100)));
            let now = self.clock.now_ms();
            self.ship.wall_ms = self.clock.wall_ms();
            for event in events.iter() {
                let token = event.token();
                if token.0 >= SHARD_TOKEN_BASE {
                    self.ship.handle_shard_event(
                        self.poll.registry(),
                        token.0 - SHARD_TOKEN_BASE,
                        now,
                        false,
                    );
                }
            }
        }
        if let Some(floor) = self.ship.sender.ack_floor() {
            self.ship.wal.ack(floor);
        }
        self.ship.wal.persist_ack_floor();
        log::info(
            "outpost stopped",
            &[
                ("signal", &signal),
                (
                    "unsent_records_in_wal",
                    &(self.ship.wal.next_seq() - self.ship.wal.ack_floor()),
                ),
                (
                    "succeeded_samples",
                    &self.ship.sender.counters.succeeded_samples_total,
                ),
            ],
        );
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("user:pass", "dXNlcjpwYXNz"),
        ] {
            let mut out = Vec::new();
            base64(plain.as_bytes(), &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), encoded, "{plain}");
        }
    }

    #[test]
    fn urls_and_targets_split_into_host_port_and_path() {
        let e = parse_url("http://127.0.0.1:19090/api/v1/write").unwrap();
        assert!(!e.https);
        assert_eq!(
            (e.host.as_str(), e.name.port, e.path.as_str()),
            ("127.0.0.1", 19090, "/api/v1/write")
        );
        assert_eq!(e.authority, "127.0.0.1:19090");
        assert_eq!(e.name.addr, Some("127.0.0.1:19090".parse().unwrap()));
        assert!(e.name.literal);
        let e = parse_url("http://receive.example:19291/api/v1/receive").unwrap();
        assert_eq!(
            (e.name.addr, e.name.literal),
            (None, false),
            "names wait for the resolver"
        );
        let e = parse_url("https://[::1]/receive").unwrap();
        assert_eq!((e.host.as_str(), e.name.port), ("::1", 443));
        assert!(parse_url("ftp://x/").unwrap_err().contains("scheme"));
        assert_eq!(
            split_host_port("node:9100", 80).unwrap(),
            ("node".to_string(), 9100)
        );
        assert_eq!(split_host_port("node", 443).unwrap(), ("node".to_string(), 443));
        assert!(split_host_port("node:x", 80).unwrap_err().contains("bad port x"));
        assert_eq!(
            split_host_port("fd00::7:9100", 80).unwrap(),
            ("fd00::7".to_string(), 9100)
        );
        assert!(split_host_port("user@node:9100", 80)
            .unwrap_err()
            .contains("host user@node"));
    }

    #[test]
    fn node_variables_are_filled_in() {
        let args = crate::cli::RunArgs {
            plan: "/p".into(),
            wal_dir: None,
            wal_lock_wait_ms: 0,
            listen: "127.0.0.1:1".parse().unwrap(),
            node_name: "n1".into(),
            node_ip: "10.0.0.7".into(),
            procfs: "/proc".into(),
            sysfs: "/sys".into(),
            rootfs: "/".into(),
            log_format: log::Format::Logfmt,
            log_level: log::Level::Info,
        };
        assert_eq!(fill_node_vars("${NODE_IP}:10250", &args), "10.0.0.7:10250");
        assert_eq!(fill_node_vars("${NODE_NAME}", &args), "n1");
    }
}
