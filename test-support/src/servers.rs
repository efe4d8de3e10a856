//! Loopback servers that stand in for scrape targets and remote-write
//! receivers: a fixed body ([`TargetServer`]), a body numbered by scrape
//! ([`CountingTarget`]), a receiver that records every request and answers by
//! policy ([`RecordingReceiver`]) and one that answers late ([`SlowReceiver`]).
//! All run on [`LoopbackServer`], which serves each connection on its own
//! thread (an agent keeps several open) and stops them all on drop.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::http::http_date;
use crate::wire::{decode_snappy, WriteRequest};

/// Accepts connections on a loopback address and hands each, on a thread of
/// its own, to `serve` with the stop flag, which `serve` checks between
/// reads. Dropping it stops accepting, raises the flag and joins every thread.
pub struct LoopbackServer {
    pub local: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LoopbackServer {
    /// `bind` is a loopback address such as `127.0.0.1:0` (the kernel picks the port).
    pub fn start(
        bind: &str,
        serve: impl Fn(TcpStream, &AtomicBool) + Send + Sync + 'static,
    ) -> LoopbackServer {
        let listener = TcpListener::bind(bind).unwrap_or_else(|e| panic!("bind {bind}: {e}"));
        assert!(
            listener.local_addr().unwrap().ip().is_loopback(),
            "tests bind loopback only, not {bind}"
        );
        listener.set_nonblocking(true).unwrap();
        let local = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let serve = Arc::new(serve);
        let thread = thread::spawn(move || {
            let mut workers = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let (flag, serve) = (flag.clone(), serve.clone());
                        workers.push(thread::spawn(move || serve(s, &flag)));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
            for w in workers {
                let _ = w.join();
            }
        });
        LoopbackServer {
            local,
            stop,
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.local.port()
    }

    /// Stops accepting and serving; returns once every connection is closed.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.stop();
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
                    SystemTime::now()
                        .duration_since(UNIX_EPOCH)
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

/// Serves one body for every GET on any path (keep-alive).
pub struct TargetServer {
    pub port: u16,
    _server: LoopbackServer,
}

impl TargetServer {
    pub fn start(body: impl Into<String>) -> TargetServer {
        let body: Arc<[u8]> = body.into().into_bytes().into();
        let server = LoopbackServer::start("127.0.0.1:0", move |s, stop| {
            serve_connection(s, stop, |_| (200, Vec::new(), body.to_vec()))
        });
        TargetServer {
            port: server.port(),
            _server: server,
        }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Serves `body(n)` for the n-th GET (1-based), so every scrape is told
/// apart by the values it carries; `served()` says how many went out.
pub struct CountingTarget {
    pub port: u16,
    pub local: SocketAddr,
    served: Arc<AtomicU64>,
    server: LoopbackServer,
}

impl CountingTarget {
    pub fn start(body: fn(u64) -> String) -> CountingTarget {
        Self::start_on("127.0.0.1:0", body)
    }

    /// On another loopback address, e.g. `127.0.0.2:0`.
    pub fn start_on(bind: &str, body: fn(u64) -> String) -> CountingTarget {
        let served = Arc::new(AtomicU64::new(0));
        let count = served.clone();
        let server = LoopbackServer::start(bind, move |s, stop| {
            serve_connection(s, stop, |_| {
                let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                (200, Vec::new(), body(n).into_bytes())
            })
        });
        CountingTarget {
            port: server.port(),
            local: server.local,
            served,
            server,
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
        self.server.stop();
        self.served()
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
    _server: LoopbackServer,
}

impl RecordingReceiver {
    pub fn start(policy: Policy) -> RecordingReceiver {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let policy = Mutex::new(policy);
        let log = seen.clone();
        let server = LoopbackServer::start("127.0.0.1:0", move |s, stop| {
            serve_connection(s, stop, |req| {
                let mut seen = log.lock().unwrap();
                let sequence = seen.len();
                let (status, extra) = (policy.lock().unwrap())(sequence);
                seen.push(Received {
                    sequence,
                    path: req.path,
                    request: decode_snappy(&req.body),
                    headers: req.headers,
                    status,
                });
                (status, extra, Vec::new())
            })
        });
        RecordingReceiver {
            port: server.port(),
            seen,
            _server: server,
        }
    }

    /// A receiver that is down, answering 503 (which the agent retries),
    /// until the returned flag is raised, and answers 200 after.
    pub fn switchable() -> (RecordingReceiver, Arc<AtomicBool>) {
        let up = Arc::new(AtomicBool::new(false));
        let flag = up.clone();
        let receiver = RecordingReceiver::start(Box::new(move |_| {
            if flag.load(Ordering::SeqCst) {
                (200, Vec::new())
            } else {
                (503, Vec::new())
            }
        }));
        (receiver, up)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1/write", self.port)
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// A remote-write receiver that answers 200 after `delay_ms` (changeable
/// while it runs), each connection on its own thread so shards really run
/// in parallel. Requests are numbered in arrival order.
pub struct SlowReceiver {
    pub port: u16,
    pub local: SocketAddr,
    pub delay_ms: Arc<AtomicU64>,
    /// (arrival number, decoded request).
    pub seen: Arc<Mutex<Vec<(usize, WriteRequest)>>>,
    /// The `THANOS-TENANT` header of each request, in arrival order.
    pub tenants: Arc<Mutex<Vec<Option<String>>>>,
    /// Connections accepted so far.
    pub connections: Arc<AtomicU64>,
    _server: LoopbackServer,
}

impl SlowReceiver {
    pub fn start(delay_ms: u64) -> SlowReceiver {
        Self::start_on("127.0.0.1:0", delay_ms)
    }

    pub fn start_on(bind: &str, delay_ms: u64) -> SlowReceiver {
        let delay = Arc::new(AtomicU64::new(delay_ms));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicU64::new(0));
        let tenants = Arc::new(Mutex::new(Vec::new()));
        let (d, log, conns, tenant_log) = (delay.clone(), seen.clone(), connections.clone(), tenants.clone());
        let server = LoopbackServer::start(bind, move |s, stop| {
            conns.fetch_add(1, Ordering::SeqCst);
            serve_connection(s, stop, |req| {
                let request = decode_snappy(&req.body).expect("valid remote write");
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
        });
        SlowReceiver {
            port: server.port(),
            local: server.local,
            delay_ms: delay,
            seen,
            tenants,
            connections,
            _server: server,
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
