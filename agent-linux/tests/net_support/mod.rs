//! Shared by the net_* tests: loopback test servers on threads and a
//! small mio loop that drives one `HttpClientConn` the way the agent's runtime does.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};
use outpost_agent::net::{
    BodyLimits, ConnBuffers, Failure, HttpClientConn, NetError, Progress, Request, ResponseHead,
};

/// A thread serving connections on 127.0.0.1 one after another; stopped and joined on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl TestServer {
    pub fn start<F>(handler: F) -> TestServer
    where
        F: Fn(TcpStream) + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (stop2, accepted2) = (stop.clone(), accepted.clone());
        let handle = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                accepted2.fetch_add(1, Ordering::SeqCst);
                // Never let a stuck handler hang the test run.
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                handler(stream);
            }
        });
        TestServer {
            addr,
            accepted,
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Reads one request (head and Content-Length body). `None` at EOF.
pub fn read_request(stream: &mut impl Read) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8(buf).unwrap();
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).ok()?;
    Some((head, body))
}

pub fn write_all(stream: &mut impl Write, bytes: &[u8]) -> bool {
    stream.write_all(bytes).is_ok() && stream.flush().is_ok()
}

/// gzip (RFC 1952) around miniz_oxide's raw deflate.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    out.extend(miniz_oxide::deflate::compress_to_vec(data, 6));
    out.extend(crc32fast::hash(data).to_le_bytes());
    out.extend((data.len() as u32).to_le_bytes());
    out
}

pub fn limits(body: u64, decoded: u64) -> BodyLimits {
    BodyLimits {
        max_body_bytes: body,
        max_decoded_bytes: decoded,
    }
}

pub fn get<'a>(path: &'a str, host: &'a str, timeout_ms: u64) -> Request<'a> {
    Request {
        method: "GET",
        path,
        host,
        headers: &[],
        body: &[],
        accept_gzip: true,
        limits: limits(1 << 20, 4 << 20),
        timeout_ms,
    }
}

pub const CONN: Token = Token(7);

pub fn small_bufs() -> ConnBuffers {
    ConnBuffers {
        read_bytes: 4096,
        head_bytes: 4096,
        request_bytes: 64 * 1024,
        inflate_out_bytes: Some(8192),
    }
}

/// The runtime's loop in miniature: poll, dispatch events to the conn, fire its deadline.
pub struct Driver {
    pub poll: Poll,
    events: Events,
    start: Instant,
}

impl Default for Driver {
    fn default() -> Self {
        Driver::new()
    }
}

impl Driver {
    pub fn new() -> Driver {
        Driver {
            poll: Poll::new().unwrap(),
            events: Events::with_capacity(16),
            start: Instant::now(),
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Sends `req` and runs until the exchange ends; returns the outcome and the body bytes.
    pub fn exchange(
        &mut self,
        conn: &mut HttpClientConn,
        req: &Request<'_>,
    ) -> (Result<ResponseHead, Failure<&'static str>>, Vec<u8>) {
        let mut body = Vec::new();
        if let Err(e) = conn.start_request(self.poll.registry(), req, self.now_ms()) {
            return (Err(Failure::Net(e)), body);
        }
        loop {
            let wait = conn
                .deadline_ms()
                .map(|d| Duration::from_millis(d.saturating_sub(self.now_ms()) + 1));
            self.poll.poll(&mut self.events, wait).unwrap();
            let now = self.now_ms();
            let mut sink = |_: &ResponseHead, b: &[u8]| -> Result<(), &'static str> {
                body.extend_from_slice(b);
                Ok(())
            };
            let had_event = self.events.iter().any(|e| e.token() == conn.token());
            let due = conn.deadline_ms().is_some_and(|d| now >= d);
            let outcome = if had_event || due {
                conn.handle_event(self.poll.registry(), now, &mut sink)
            } else {
                Progress::Pending
            };
            match outcome {
                Progress::Pending => {}
                Progress::Done(head) => return (Ok(head), body),
                Progress::Failed(f) => return (Err(f), body),
            }
        }
    }
}

pub fn net_err(r: Result<ResponseHead, Failure<&'static str>>) -> NetError {
    match r {
        Err(Failure::Net(e)) => e,
        other => panic!("expected a NetError, got {other:?}"),
    }
}
