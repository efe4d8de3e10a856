//! HttpServer on a mio loop in a thread, talked to with blocking std clients.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};
use outpost_agent::net::{HttpServer, Responder, Response, ServerLimits, ServerStats};

struct StatusPages;

impl Responder for StatusPages {
    fn respond(&mut self, method: &str, path: &str, query: &str, out: &mut Response) {
        if method != "GET" && method != "HEAD" {
            out.status = 405;
            return;
        }
        match path {
            "/metrics" => {
                out.content_type = "text/plain; version=0.0.4; charset=utf-8";
                out.body
                    .extend_from_slice(b"prometheus_remote_storage_samples_total 42\n");
            }
            "/-/healthy" => out.body.extend_from_slice(b"OK\n"),
            "/query" => out.body.extend_from_slice(query.as_bytes()),
            "/big" => out.body.extend(std::iter::repeat_n(b'b', 3 << 20)),
            _ => {
                out.status = 404;
                out.body.extend_from_slice(b"not found\n");
            }
        }
    }
}

/// The server's loop on its own thread; stopped on drop, which hands back the stats.
struct Running {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<ServerStats>>,
}

impl Running {
    fn start(limits: ServerLimits) -> Running {
        let poll = Poll::new().unwrap();
        let mut server = HttpServer::bind(
            "127.0.0.1:0".parse().unwrap(),
            poll.registry(),
            Token(0),
            100,
            limits,
        )
        .unwrap();
        let addr = server.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut poll = poll;
            let mut events = Events::with_capacity(64);
            let start = Instant::now();
            let mut pages = StatusPages;
            while !stop2.load(Ordering::SeqCst) {
                poll.poll(&mut events, Some(Duration::from_millis(20))).unwrap();
                let now = start.elapsed().as_millis() as u64;
                for ev in events.iter() {
                    assert!(server.owns(ev.token()));
                    server.handle_event(poll.registry(), ev.token(), now, &mut pages);
                }
                if server.deadline_ms().is_some_and(|d| now >= d) {
                    server.handle_timeout(poll.registry(), now);
                }
            }
            server.stats()
        });
        Running {
            addr,
            stop,
            handle: Some(handle),
        }
    }

    fn finish(mut self) -> ServerStats {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.take().unwrap().join().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn roundtrip(s: &mut TcpStream, request: &[u8]) -> String {
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn split(resp: &str) -> (&str, &str) {
    resp.split_once("\r\n\r\n").unwrap()
}

#[test]
fn get_metrics_returns_the_callers_body() {
    let server = Running::start(ServerLimits::default());
    let resp = roundtrip(
        &mut connect(server.addr),
        b"GET /metrics?x=1 HTTP/1.1\r\nHost: agent\r\n\r\n",
    );
    let (head, body) = split(&resp);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    assert!(head.contains("Content-Length: 43"), "{head}");
    assert_eq!(body, "prometheus_remote_storage_samples_total 42\n");

    let resp = roundtrip(&mut connect(server.addr), b"GET /nope HTTP/1.1\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 404 Not Found\r\n"));
    let resp = roundtrip(&mut connect(server.addr), b"HEAD /-/healthy HTTP/1.1\r\n\r\n");
    let (head, body) = split(&resp);
    assert!(head.contains("Content-Length: 3"), "{head}");
    assert_eq!(body, "");
    let stats = server.finish();
    assert_eq!(stats.accepted, 3);
    assert_eq!(stats.responses, 3);
}

#[test]
fn the_query_string_reaches_the_responder_apart_from_the_path() {
    let server = Running::start(ServerLimits::default());
    for (request, body) in [
        (
            &b"GET /query?state=active&scrapePool=a%20b HTTP/1.1\r\n\r\n"[..],
            "state=active&scrapePool=a%20b",
        ),
        (b"GET /query HTTP/1.1\r\n\r\n", ""),
        (b"GET /query? HTTP/1.1\r\n\r\n", ""),
        (b"GET /query?a=1?b=2 HTTP/1.1\r\n\r\n", "a=1?b=2"),
    ] {
        let resp = roundtrip(&mut connect(server.addr), request);
        let (head, got) = split(&resp);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert_eq!(got, body, "{}", String::from_utf8_lossy(request));
    }
}

#[test]
fn large_body_is_written_across_many_writable_events() {
    let server = Running::start(ServerLimits::default());
    let mut s = connect(server.addr);
    s.write_all(b"GET /big HTTP/1.1\r\n\r\n").unwrap();
    // Read slowly at first so the server's socket buffer fills and it must wait for writable.
    std::thread::sleep(Duration::from_millis(100));
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = split(&text);
    assert!(head.contains(&format!("Content-Length: {}", 3 << 20)));
    assert_eq!(body.len(), 3 << 20);
    assert!(body.bytes().all(|b| b == b'b'));
}

#[test]
fn oversized_request_is_rejected_with_431() {
    let server = Running::start(ServerLimits {
        max_request_bytes: 1024,
        ..ServerLimits::default()
    });
    let mut req = b"GET /metrics HTTP/1.1\r\nX-Padding: ".to_vec();
    req.extend(std::iter::repeat_n(b'p', 4000));
    req.extend(b"\r\n\r\n");
    let mut s = connect(server.addr);
    // The server may close before reading all of it; the answer still arrives first.
    let _ = s.write_all(&req);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{text}"
    );
    let stats = server.finish();
    assert_eq!(stats.too_large, 1);
    assert_eq!(stats.responses, 1);
}

#[test]
fn malformed_request_gets_400() {
    let server = Running::start(ServerLimits::default());
    let resp = roundtrip(
        &mut connect(server.addr),
        b"GET /metrics HTTP/1.1\r\nBad Header\r\n\r\n",
    );
    assert!(resp.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{resp}");
}

#[test]
fn seventeenth_connection_is_refused_and_the_sixteen_still_work() {
    let server = Running::start(ServerLimits {
        max_conns: 16,
        ..ServerLimits::default()
    });
    let mut held: Vec<TcpStream> = (0..16).map(|_| connect(server.addr)).collect();
    let mut extra = connect(server.addr);
    let mut out = Vec::new();
    extra.read_to_end(&mut out).unwrap();
    assert!(String::from_utf8(out)
        .unwrap()
        .starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
    for s in held.iter_mut() {
        let resp = roundtrip(s, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
        assert!(resp.ends_with("prometheus_remote_storage_samples_total 42\n"));
    }
    // Slots are free again after the sixteen closed.
    let resp = roundtrip(&mut connect(server.addr), b"GET /-/healthy HTTP/1.1\r\n\r\n");
    assert!(resp.ends_with("\r\n\r\nOK\n"), "{resp}");
    let stats = server.finish();
    assert_eq!(stats.rejected_full, 1);
    assert_eq!(stats.accepted, 17);
    assert_eq!(stats.responses, 17);
}

#[test]
fn slow_client_is_closed_at_the_deadline() {
    let server = Running::start(ServerLimits {
        timeout_ms: 200,
        ..ServerLimits::default()
    });
    let mut s = connect(server.addr);
    s.write_all(b"GET /metr").unwrap();
    let mut out = Vec::new();
    let n = s.read_to_end(&mut out).unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
    let stats = server.finish();
    assert_eq!(stats.timed_out, 1);
    assert_eq!(stats.responses, 0);
}
