//! The agent's status server (`/metrics`, `/metrics/node`, `/api/v1/targets`, `/-/healthy`, ...; the
//! pages are the [`Responder`]'s): a nonblocking HTTP/1.1 server on a mio listener with a fixed
//! number of connection slots.
//!
//! One request per connection, then `Connection: close`: scrapers of the agent come every few
//! seconds at most, and it keeps the state per slot to a buffer and a cursor. A connection that
//! finds every slot taken gets a short 503 and is closed; a client that has not sent a whole
//! request by the deadline is closed (slowloris defence); a request larger than the request
//! buffer gets 431.

use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};

/// Filled by the [`Responder`]; each connection slot has its own, and its `body` buffer is
/// reused for the slot's later responses.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    /// Appends a rendered page to the body. A slot's body buffer serves its later requests too, and a
    /// page differs by a few bytes from one request to the next (its numbers' digits): a buffer
    /// that must grow gets a quarter more than this page, so the next one fits without allocating.
    pub fn push_page(&mut self, page: &[u8]) {
        let needed = self.body.len() + page.len();
        if self.body.capacity() < needed {
            self.body.reserve_exact(needed + needed / 4 - self.body.len());
        }
        self.body.extend_from_slice(page);
    }

    fn reset(&mut self) {
        self.status = 200;
        self.content_type = "text/plain; charset=utf-8";
        self.body.clear();
    }
}

/// The caller's side: render the answer for one request.
pub trait Responder {
    /// `path` excludes the query string, which comes as `query` (without the `?`, still
    /// percent-encoded, empty when there is none); `out` arrives with status 200, text/plain and an
    /// empty body.
    fn respond(&mut self, method: &str, path: &str, query: &str, out: &mut Response);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Concurrent connections; one more is answered 503 and closed.
    pub max_conns: usize,
    /// Request line plus headers.
    pub max_request_bytes: usize,
    /// From accept until the response is written.
    pub timeout_ms: u64,
    /// Each connection's response buffer is reserved this large at bind, so answering never
    /// allocates while responses stay within it (a larger one grows that connection's buffer).
    pub response_bytes: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_conns: 16,
            max_request_bytes: 4096,
            timeout_ms: 10_000,
            response_bytes: 16 * 1024,
        }
    }
}

struct Slot {
    stream: Option<TcpStream>,
    req: Box<[u8]>,
    req_len: usize,
    head: Vec<u8>,
    response: Response,
    /// Bytes of head and body written so far; `Some` once the response is ready.
    written: Option<usize>,
    deadline_ms: u64,
}

/// Counts for self-metrics and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ServerStats {
    pub accepted: u64,
    pub rejected_full: u64,
    pub timed_out: u64,
    pub too_large: u64,
    pub bad_request: u64,
    pub responses: u64,
}

pub struct HttpServer {
    listener: TcpListener,
    listener_token: Token,
    conn_token_base: usize,
    slots: Vec<Slot>,
    limits: ServerLimits,
    stats: ServerStats,
}

impl HttpServer {
    /// Binds and registers the listener under `listener_token`; connection `i` uses token
    /// `conn_token_base + i`, so the loop must keep `conn_token_base .. + max_conns` free.
    pub fn bind(
        addr: SocketAddr,
        registry: &Registry,
        listener_token: Token,
        conn_token_base: usize,
        limits: ServerLimits,
    ) -> io::Result<Self> {
        let mut listener = TcpListener::bind(addr)?;
        registry.register(&mut listener, listener_token, Interest::READABLE)?;
        let slots = (0..limits.max_conns)
            .map(|_| Slot {
                stream: None,
                req: vec![0u8; limits.max_request_bytes.max(64)].into_boxed_slice(),
                req_len: 0,
                head: Vec::with_capacity(256),
                response: Response {
                    status: 200,
                    content_type: "text/plain",
                    body: Vec::with_capacity(limits.response_bytes),
                },
                written: None,
                deadline_ms: 0,
            })
            .collect();
        Ok(HttpServer {
            listener,
            listener_token,
            conn_token_base,
            slots,
            limits,
            stats: ServerStats::default(),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn stats(&self) -> ServerStats {
        self.stats
    }

    pub fn open_connections(&self) -> usize {
        self.slots.iter().filter(|s| s.stream.is_some()).count()
    }

    /// Whether an event token belongs to this server.
    pub fn owns(&self, token: Token) -> bool {
        token == self.listener_token
            || (token.0 >= self.conn_token_base && token.0 < self.conn_token_base + self.slots.len())
    }

    /// Earliest deadline of an open connection.
    pub fn deadline_ms(&self) -> Option<u64> {
        self.slots
            .iter()
            .filter(|s| s.stream.is_some())
            .map(|s| s.deadline_ms)
            .min()
    }

    /// Closes connections whose deadline passed.
    pub fn handle_timeout(&mut self, registry: &Registry, now_ms: u64) {
        for i in 0..self.slots.len() {
            if self.slots[i].stream.is_some() && now_ms >= self.slots[i].deadline_ms {
                self.stats.timed_out += 1;
                self.close(registry, i);
            }
        }
    }

    /// Handles an event on any token [`Self::owns`].
    pub fn handle_event(
        &mut self,
        registry: &Registry,
        token: Token,
        now_ms: u64,
        responder: &mut dyn Responder,
    ) {
        if token == self.listener_token {
            self.accept(registry, now_ms);
        } else if self.owns(token) {
            let i = token.0 - self.conn_token_base;
            if self.slots[i].stream.is_some() {
                self.work(registry, i, responder);
            }
        }
    }

    fn accept(&mut self, registry: &Registry, now_ms: u64) {
        loop {
            let (mut stream, _) = match self.listener.accept() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // EMFILE and friends: leave the rest in the backlog until the next event.
                Err(_) => return,
            };
            let Some(i) = self.slots.iter().position(|s| s.stream.is_none()) else {
                self.stats.rejected_full += 1;
                // Best effort: a fresh socket's send buffer takes this without blocking.
                let _ = stream.write(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            };
            let token = Token(self.conn_token_base + i);
            if registry
                .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                .is_err()
            {
                continue;
            }
            self.stats.accepted += 1;
            let slot = &mut self.slots[i];
            slot.stream = Some(stream);
            slot.req_len = 0;
            slot.written = None;
            slot.deadline_ms = now_ms.saturating_add(self.limits.timeout_ms);
            // No need to read now: epoll reports a socket's current readiness on registration.
        }
    }

    fn close(&mut self, registry: &Registry, i: usize) {
        if let Some(mut s) = self.slots[i].stream.take() {
            let _ = registry.deregister(&mut s);
        }
        self.slots[i].req_len = 0;
        self.slots[i].written = None;
    }

    fn work(&mut self, registry: &Registry, i: usize, responder: &mut dyn Responder) {
        if self.slots[i].written.is_none() {
            match self.read_request(i) {
                Ok(true) => self.prepare(i, responder),
                Ok(false) => return,
                Err(()) => {
                    self.close(registry, i);
                    return;
                }
            }
        }
        match self.write_response(i) {
            Ok(true) => {
                self.stats.responses += 1;
                if let Some(s) = self.slots[i].stream.as_ref() {
                    let _ = s.shutdown(std::net::Shutdown::Write);
                }
                self.close(registry, i);
            }
            Ok(false) => {}
            Err(()) => self.close(registry, i),
        }
    }

    /// `Ok(true)` when a response has been prepared (request complete, or refused).
    fn read_request(&mut self, i: usize) -> Result<bool, ()> {
        loop {
            let slot = &mut self.slots[i];
            if slot.req_len == slot.req.len() {
                self.stats.too_large += 1;
                self.prepare_error(i, 431, "request header fields too large\n");
                return Ok(true);
            }
            let stream = slot.stream.as_mut().ok_or(())?;
            match stream.read(&mut slot.req[slot.req_len..]) {
                Ok(0) => return Err(()),
                Ok(n) => {
                    slot.req_len += n;
                    let mut headers = [httparse::EMPTY_HEADER; 32];
                    let mut parsed = httparse::Request::new(&mut headers);
                    match parsed.parse(&slot.req[..slot.req_len]) {
                        Ok(httparse::Status::Complete(_)) => return Ok(true),
                        Ok(httparse::Status::Partial) => {}
                        Err(_) => {
                            self.stats.bad_request += 1;
                            self.prepare_error(i, 400, "malformed request\n");
                            return Ok(true);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(()),
            }
        }
    }

    fn prepare_error(&mut self, i: usize, status: u16, msg: &str) {
        let slot = &mut self.slots[i];
        slot.response.reset();
        slot.response.status = status;
        slot.response.body.extend_from_slice(msg.as_bytes());
        slot.finish_response(false);
    }

    fn prepare(&mut self, i: usize, responder: &mut dyn Responder) {
        let slot = &mut self.slots[i];
        if slot.written.is_some() {
            return;
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Request::new(&mut headers);
        let _ = parsed.parse(&slot.req[..slot.req_len]);
        let method = parsed.method.unwrap_or("GET");
        let target = parsed.path.unwrap_or("/");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        slot.response.reset();
        responder.respond(method, path, query, &mut slot.response);
        slot.finish_response(method == "HEAD");
    }

    /// `Ok(true)` once everything is written.
    fn write_response(&mut self, i: usize) -> Result<bool, ()> {
        let slot = &mut self.slots[i];
        let Some(mut written) = slot.written else {
            return Ok(false);
        };
        let (head, body) = (&slot.head, &slot.response.body);
        let total = head.len() + body.len();
        let stream = slot.stream.as_mut().ok_or(())?;
        while written < total {
            let bufs: [IoSlice<'_>; 2] = if written < head.len() {
                [IoSlice::new(&head[written..]), IoSlice::new(body)]
            } else {
                [IoSlice::new(&body[written - head.len()..]), IoSlice::new(&[])]
            };
            match stream.write_vectored(&bufs) {
                Ok(0) => return Err(()),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(()),
            }
        }
        slot.written = Some(written);
        Ok(written == total)
    }
}

impl Slot {
    /// Renders the head for the response the slot holds; it goes out from the next write.
    fn finish_response(&mut self, omit_body: bool) {
        let r = &mut self.response;
        self.head.clear();
        let _ = write!(
            self.head,
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            r.status,
            reason_phrase(r.status),
            r.content_type,
            r.body.len()
        );
        if omit_body {
            r.body.clear();
        }
        self.written = Some(0);
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_a_few_bytes_longer_than_the_last_fits_without_growing() {
        let mut out = Response {
            status: 200,
            content_type: "",
            body: Vec::new(),
        };
        out.push_page(&[b'x'; 1_000]);
        let capacity = out.body.capacity();
        assert_eq!(capacity, 1_250);
        out.reset();
        out.push_page(&[b'y'; 1_200]);
        assert_eq!((out.body.len(), out.body.capacity()), (1_200, capacity));
        // Past the room: a quarter more than the whole body.
        out.push_page(&[b'z'; 100]);
        assert_eq!(out.body.capacity(), 1_625);
        assert_eq!((&out.body[1_199..1_201], out.body.len()), (&b"yz"[..], 1_300));
    }
}
