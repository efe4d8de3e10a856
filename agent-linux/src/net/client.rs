//! One outgoing HTTP/1.1 connection, plain or TLS, driven by a single-threaded mio loop.
//!
//! The loop owns the `Poll`; this type owns its socket and registers it under the token it was
//! given. The loop calls [`HttpClientConn::handle_event`] for every event on that token and
//! once [`HttpClientConn::deadline_ms`] has passed. Sockets are registered edge-triggered for
//! both directions once, so each call works until the socket says `WouldBlock`. A deadline is
//! judged after reading what has arrived: an answer that came in while the loop was busy
//! elsewhere is taken, not failed as a timeout.
//!
//! Buffers (request, read, response head, inflate window) are allocated in `new` and reused for
//! every request on every reconnect. The TLS session object is created per TCP connection, which
//! keep-alive makes rare.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use rustls::{ClientConfig, ClientConnection};
use rustls_pki_types::ServerName;

use super::error::{Failure, NetError, Phase};
use super::response::{BodyLimits, BodySink, Feed, GzipState, ResponseHead, ResponseParser};

/// Buffer sizes for one connection; the runtime derives them from the plan's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnBuffers {
    /// Socket reads (plaintext after TLS).
    pub read_bytes: usize,
    /// Status line plus headers of a response.
    pub head_bytes: usize,
    /// A serialized request including its body (remote-write batches must fit).
    pub request_bytes: usize,
    /// Inflate output handed to the sink per call, with the connection's
    /// own gzip state; `None`: it holds none, and one is lent to it for each
    /// exchange that may get a gzip body ([`HttpClientConn::swap_gzip`]).
    pub inflate_out_bytes: Option<usize>,
}

impl Default for ConnBuffers {
    fn default() -> Self {
        ConnBuffers {
            read_bytes: 16 * 1024,
            head_bytes: 8 * 1024,
            request_bytes: 8 * 1024,
            inflate_out_bytes: Some(32 * 1024),
        }
    }
}

/// What to send. Everything is borrowed: it is copied into the connection's request buffer.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// Path and query, e.g. `/metrics` or `/api/v1/receive`.
    pub path: &'a str,
    /// `Host` header value (host or host:port of the URL).
    pub host: &'a str,
    /// Extra headers: Authorization, the tenant header, Content-Type, Content-Encoding, ...
    pub headers: &'a [(&'a str, &'a [u8])],
    pub body: &'a [u8],
    /// Adds `Accept-Encoding: gzip` (scrapes).
    pub accept_gzip: bool,
    pub limits: BodyLimits,
    /// Deadline for the whole exchange, connect included.
    pub timeout_ms: u64,
}

/// The outcome of one `handle_*` call.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress<E> {
    /// Nothing finished; wait for the next event or the deadline.
    Pending,
    /// The response is complete; its body went to the sink. The connection stays open for the
    /// next request unless the peer asked to close.
    Done(ResponseHead),
    /// The exchange failed; the connection was closed.
    Failed(Failure<E>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exchange {
    Idle,
    InFlight,
}

pub struct HttpClientConn {
    addr: SocketAddr,
    token: Token,
    tls_config: Option<Arc<ClientConfig>>,
    server_name: ServerName<'static>,
    stream: Option<TcpStream>,
    tls: Option<ClientConnection>,
    connected: bool,
    out: Vec<u8>,
    out_cap: usize,
    out_pos: usize,
    rbuf: Box<[u8]>,
    parser: ResponseParser,
    exchange: Exchange,
    head_request: bool,
    limits: BodyLimits,
    deadline_ms: Option<u64>,
    timeout_ms: u64,
    /// The current request went out on a connection that had already served one.
    reused: bool,
    /// Already resent once after a kept-alive connection turned out closed.
    resent: bool,
    requests_on_conn: u32,
    connects: u32,
}

impl HttpClientConn {
    /// `server_name` is the TLS name to verify (the URL host, or the plan's override).
    pub fn new(
        addr: SocketAddr,
        tls: Option<Arc<ClientConfig>>,
        server_name: &str,
        token: Token,
        bufs: ConnBuffers,
    ) -> Result<Self, NetError> {
        let server_name =
            ServerName::try_from(server_name.to_string()).map_err(|_| NetError::BadRequest {
                what: "TLS server name is not a valid DNS name or IP",
            })?;
        Ok(HttpClientConn {
            addr,
            token,
            tls_config: tls,
            server_name,
            stream: None,
            tls: None,
            connected: false,
            out: Vec::with_capacity(bufs.request_bytes),
            out_cap: bufs.request_bytes,
            out_pos: 0,
            rbuf: vec![0u8; bufs.read_bytes.max(512)].into_boxed_slice(),
            parser: ResponseParser::with_gzip(
                bufs.head_bytes,
                bufs.inflate_out_bytes.map_or(GzipState::none(), GzipState::new),
            ),
            exchange: Exchange::Idle,
            head_request: false,
            limits: BodyLimits {
                max_body_bytes: 0,
                max_decoded_bytes: 0,
            },
            deadline_ms: None,
            timeout_ms: 0,
            reused: false,
            resent: false,
            requests_on_conn: 0,
            connects: 0,
        })
    }

    /// Exchanges the connection's gzip state with `other`: a scrape is lent
    /// its slot's state for the exchange and gives it back after.
    pub fn swap_gzip(&mut self, other: &mut GzipState) {
        self.parser.swap_gzip(other);
    }

    pub fn token(&self) -> Token {
        self.token
    }

    /// Moves the connection to another token (its owner moved in the loop's table). A socket
    /// that cannot be moved is closed; the next request reconnects under the new token.
    pub fn set_token(&mut self, registry: &Registry, token: Token) {
        self.token = token;
        if let Some(s) = self.stream.as_mut() {
            if registry
                .reregister(s, token, Interest::READABLE | Interest::WRITABLE)
                .is_err()
            {
                self.close(registry);
            }
        }
    }

    /// When the loop must call [`Self::handle_event`] even without an event, if a request is in
    /// flight.
    pub fn deadline_ms(&self) -> Option<u64> {
        self.deadline_ms
    }

    pub fn is_busy(&self) -> bool {
        self.exchange == Exchange::InFlight
    }

    /// TCP connections opened so far (keep-alive keeps this low).
    pub fn connects(&self) -> u32 {
        self.connects
    }

    /// Starts a request; connects first if there is no open connection.
    pub fn start_request(
        &mut self,
        registry: &Registry,
        req: &Request<'_>,
        now_ms: u64,
    ) -> Result<(), NetError> {
        if self.exchange == Exchange::InFlight {
            return Err(NetError::Busy);
        }
        self.serialize(req)?;
        self.head_request = req.method.eq_ignore_ascii_case("HEAD");
        self.limits = req.limits;
        self.timeout_ms = req.timeout_ms;
        self.deadline_ms = Some(now_ms.saturating_add(req.timeout_ms));
        self.resent = false;
        self.begin_exchange(registry)
    }

    fn begin_exchange(&mut self, registry: &Registry) -> Result<(), NetError> {
        self.out_pos = 0;
        self.parser.begin(self.limits, self.head_request);
        self.exchange = Exchange::InFlight;
        if self.stream.is_some() && self.connected && !self.idle_conn_is_dead() {
            self.reused = true;
            // Edge-triggered: a writable socket gives no new event, so write now.
            if let Err(e) = self.flush_out() {
                self.close(registry);
                if !self.resent {
                    self.resent = true;
                    return self.connect(registry);
                }
                self.exchange = Exchange::Idle;
                self.deadline_ms = None;
                return Err(e);
            }
            Ok(())
        } else {
            self.close(registry);
            self.reused = false;
            self.connect(registry)
        }
    }

    /// A kept-alive connection the server has closed (EOF, reset, or a stray byte such as a
    /// TLS close_notify) is not worth writing into.
    fn idle_conn_is_dead(&self) -> bool {
        let Some(stream) = self.stream.as_ref() else {
            return true;
        };
        let mut probe = [0u8; 1];
        !matches!(stream.peek(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    fn connect(&mut self, registry: &Registry) -> Result<(), NetError> {
        self.out_pos = 0;
        self.parser.begin(self.limits, self.head_request);
        self.reused = false;
        self.requests_on_conn = 0;
        let connect_err = |e: io::Error| NetError::Connect {
            addr: self.addr,
            kind: e.kind(),
            os_code: e.raw_os_error(),
        };
        let mut stream = match TcpStream::connect(self.addr) {
            Ok(s) => s,
            Err(e) => {
                self.exchange = Exchange::Idle;
                self.deadline_ms = None;
                return Err(connect_err(e));
            }
        };
        // Requests are written whole; Nagle would only delay the last segment.
        let _ = stream.set_nodelay(true);
        if let Err(e) = registry.register(&mut stream, self.token, Interest::READABLE | Interest::WRITABLE) {
            self.exchange = Exchange::Idle;
            self.deadline_ms = None;
            return Err(NetError::io(Phase::Connect, &e));
        }
        if let Some(cfg) = &self.tls_config {
            match ClientConnection::new(cfg.clone(), self.server_name.clone()) {
                Ok(c) => self.tls = Some(c),
                Err(e) => {
                    let _ = registry.deregister(&mut stream);
                    self.exchange = Exchange::Idle;
                    self.deadline_ms = None;
                    return Err(NetError::TlsHandshake(e));
                }
            }
        }
        self.stream = Some(stream);
        self.connected = false;
        self.connects += 1;
        Ok(())
    }

    /// Closes the connection (if any). Idle keep-alive connections can be closed this way too.
    pub fn close(&mut self, registry: &Registry) {
        if let Some(mut s) = self.stream.take() {
            let _ = registry.deregister(&mut s);
        }
        self.tls = None;
        self.connected = false;
    }

    /// Past the deadline, an exchange still incomplete fails with a timeout naming the phase.
    fn fail_if_past_deadline<E>(&mut self, registry: &Registry, now_ms: u64) -> Progress<E> {
        match self.deadline_ms {
            Some(d) if now_ms >= d && self.exchange == Exchange::InFlight => {
                let phase = self.phase();
                self.fail(
                    registry,
                    NetError::Timeout {
                        phase,
                        timeout_ms: self.timeout_ms,
                    }
                    .into(),
                )
            }
            _ => Progress::Pending,
        }
    }

    /// Works the socket after an event on this connection's token, or once the deadline has
    /// passed: what has arrived is read first, so an answer is judged by itself however late the
    /// loop got to it; an exchange still incomplete past its deadline fails as a timeout.
    pub fn handle_event<E>(
        &mut self,
        registry: &Registry,
        now_ms: u64,
        sink: &mut BodySink<'_, E>,
    ) -> Progress<E> {
        if self.stream.is_none() {
            return self.fail_if_past_deadline(registry, now_ms);
        }
        let progress = match self.drive(registry, sink) {
            Ok(p) => p,
            Err(Failure::Net(NetError::Io { kind, .. })) if self.may_resend() && is_reset(kind) => {
                match self.resend(registry) {
                    Ok(()) => Progress::Pending,
                    Err(e) => self.fail(registry, e.into()),
                }
            }
            Err(f) => self.fail(registry, f),
        };
        match progress {
            Progress::Pending => self.fail_if_past_deadline(registry, now_ms),
            ended => ended,
        }
    }

    fn phase(&self) -> Phase {
        if !self.connected {
            Phase::Connect
        } else if self.out_pos < self.out.len() || self.tls.as_ref().is_some_and(|t| t.is_handshaking()) {
            Phase::Send
        } else if self.parser.head().is_none() {
            Phase::Head
        } else {
            Phase::Body
        }
    }

    fn fail<E>(&mut self, registry: &Registry, f: Failure<E>) -> Progress<E> {
        self.close(registry);
        self.exchange = Exchange::Idle;
        self.deadline_ms = None;
        Progress::Failed(f)
    }

    fn drive<E>(
        &mut self,
        registry: &Registry,
        sink: &mut BodySink<'_, E>,
    ) -> Result<Progress<E>, Failure<E>> {
        if !self.connected {
            let stream = self.stream.as_ref().expect("checked by caller");
            let connect_err = |e: io::Error| NetError::Connect {
                addr: self.addr,
                kind: e.kind(),
                os_code: e.raw_os_error(),
            };
            match stream.take_error() {
                Ok(Some(e)) | Err(e) => return Err(connect_err(e).into()),
                Ok(None) => {}
            }
            match stream.peer_addr() {
                Ok(_) => self.connected = true,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(Progress::Pending),
                Err(e) => return Err(connect_err(e).into()),
            }
        }
        loop {
            let mut progressed = self.flush_out()?;
            let mut eof = false;
            if self.tls.is_some() {
                let (p, e) = self.read_tls()?;
                progressed |= p;
                eof = e;
            } else {
                let stream = self.stream.as_mut().expect("connected");
                match stream.read(&mut self.rbuf) {
                    Ok(0) => eof = true,
                    Ok(n) => {
                        progressed = true;
                        if let Some(done) = self.consume(registry, n, sink)? {
                            return Ok(done);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => progressed = true,
                    Err(e) => return Err(NetError::io(self.phase(), &e).into()),
                }
            }
            if self.tls.is_some() {
                // Plaintext already decrypted may hold the end of the response.
                while let Some(n) = self.read_plaintext()? {
                    if n == 0 {
                        eof = true;
                        break;
                    }
                    progressed = true;
                    if let Some(done) = self.consume(registry, n, sink)? {
                        return Ok(done);
                    }
                }
            }
            if eof {
                return self.at_eof(registry);
            }
            if !progressed {
                return Ok(Progress::Pending);
            }
        }
    }

    /// Returns (made progress, peer closed the TCP stream).
    fn read_tls<E>(&mut self) -> Result<(bool, bool), Failure<E>> {
        let phase = self.phase();
        let tls = self.tls.as_mut().expect("tls");
        let stream = self.stream.as_mut().expect("connected");
        let mut eof = false;
        let mut progressed = false;
        if tls.wants_read() {
            match tls.read_tls(stream) {
                Ok(0) => eof = true,
                Ok(_) => progressed = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => progressed = true,
                Err(e) => return Err(NetError::io(phase, &e).into()),
            }
        }
        if let Err(e) = tls.process_new_packets() {
            // Send our alert so the server logs why; the connection is closed either way.
            let _ = tls.write_tls(stream);
            // A server that wants a client certificate says so after a TLS 1.3 client
            // considers the handshake done, but before any response byte: still a handshake failure.
            let in_handshake = tls.is_handshaking() || self.parser.bytes_seen() == 0;
            return Err(if in_handshake {
                NetError::TlsHandshake(e)
            } else {
                NetError::Tls(e)
            }
            .into());
        }
        Ok((progressed, eof))
    }

    /// `Some(n)` plaintext bytes read into `rbuf` (0 = clean TLS close), `None` when none now.
    fn read_plaintext<E>(&mut self) -> Result<Option<usize>, Failure<E>> {
        let phase = self.phase();
        let tls = self.tls.as_mut().expect("tls");
        match tls.reader().read(&mut self.rbuf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            // rustls reports a TCP close without close_notify this way; treat it as EOF so an
            // until-close body from a sloppy server still ends.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(Some(0)),
            Err(e) => Err(NetError::io(phase, &e).into()),
        }
    }

    /// Feeds `rbuf[..n]` to the parser; `Some` once the response is complete.
    fn consume<E>(
        &mut self,
        registry: &Registry,
        n: usize,
        sink: &mut BodySink<'_, E>,
    ) -> Result<Option<Progress<E>>, Failure<E>> {
        if self.exchange != Exchange::InFlight {
            // Bytes nobody asked for: the connection is out of step, drop it.
            self.close(registry);
            return Ok(Some(Progress::Pending));
        }
        match self.parser.feed(&self.rbuf[..n], sink)? {
            Feed::NeedMore => Ok(None),
            Feed::Done { consumed } => Ok(Some(self.finish(registry, consumed < n))),
        }
    }

    fn finish<E>(&mut self, registry: &Registry, trailing_garbage: bool) -> Progress<E> {
        let head = *self.parser.head().expect("done implies head");
        self.exchange = Exchange::Idle;
        self.deadline_ms = None;
        self.requests_on_conn += 1;
        if head.close || trailing_garbage || self.out_pos < self.out.len() {
            self.close(registry);
        }
        Progress::Done(head)
    }

    fn at_eof<E>(&mut self, registry: &Registry) -> Result<Progress<E>, Failure<E>> {
        if self.exchange != Exchange::InFlight {
            // The server closed an idle keep-alive connection; the next request reconnects.
            self.close(registry);
            return Ok(Progress::Pending);
        }
        if self.may_resend() {
            self.resend(registry)?;
            return Ok(Progress::Pending);
        }
        self.parser.finish_at_eof::<E>()?;
        Ok(self.finish(registry, false))
    }

    /// The server closed the kept-alive connection as we reused it and nothing of this request
    /// was answered, so sending it once more on a fresh connection is safe.
    fn may_resend(&self) -> bool {
        self.exchange == Exchange::InFlight && self.reused && !self.resent && self.parser.bytes_seen() == 0
    }

    fn resend(&mut self, registry: &Registry) -> Result<(), NetError> {
        self.close(registry);
        self.resent = true;
        self.connect(registry)
    }

    /// Writes as much of the request as the socket takes. `Ok(true)` if anything moved.
    fn flush_out(&mut self) -> Result<bool, NetError> {
        let phase = if self.connected {
            Phase::Send
        } else {
            Phase::Connect
        };
        let Some(stream) = self.stream.as_mut() else {
            return Ok(false);
        };
        let mut progressed = false;
        match self.tls.as_mut() {
            None => {
                while self.out_pos < self.out.len() {
                    match stream.write(&self.out[self.out_pos..]) {
                        Ok(0) => return Err(NetError::ClosedEarly { phase }),
                        Ok(n) => {
                            self.out_pos += n;
                            progressed = true;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(NetError::io(phase, &e)),
                    }
                }
            }
            Some(tls) => loop {
                // rustls buffers plaintext up to its limit (also before the handshake ends).
                if self.out_pos < self.out.len() {
                    match tls.writer().write(&self.out[self.out_pos..]) {
                        Ok(n) => {
                            self.out_pos += n;
                            progressed |= n > 0;
                        }
                        Err(e) => return Err(NetError::io(phase, &e)),
                    }
                }
                if !tls.wants_write() {
                    break;
                }
                match tls.write_tls(stream) {
                    Ok(0) => return Err(NetError::ClosedEarly { phase }),
                    Ok(_) => progressed = true,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(NetError::io(phase, &e)),
                }
            },
        }
        Ok(progressed)
    }

    fn serialize(&mut self, req: &Request<'_>) -> Result<(), NetError> {
        fn token_ok(s: &str) -> bool {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        }
        fn value_ok(v: &[u8]) -> bool {
            v.iter().all(|&b| b != b'\r' && b != b'\n' && b != 0)
        }
        if !token_ok(req.method) {
            return Err(NetError::BadRequest {
                what: "method is not an HTTP token",
            });
        }
        if !req.path.starts_with('/') || !req.path.bytes().all(|b| b > b' ' && b != 0x7f) {
            return Err(NetError::BadRequest {
                what: "path must start with '/' and hold no spaces or controls",
            });
        }
        if !value_ok(req.host.as_bytes()) || req.host.is_empty() {
            return Err(NetError::BadRequest {
                what: "Host is empty or holds CR/LF",
            });
        }
        for (name, value) in req.headers {
            if !token_ok(name) {
                return Err(NetError::BadRequest {
                    what: "header name is not an HTTP token",
                });
            }
            if !value_ok(value) {
                return Err(NetError::BadRequest {
                    what: "header value holds CR, LF or NUL",
                });
            }
        }
        let cap = self.out_cap;
        let out = &mut self.out;
        out.clear();
        let mut push = |bytes: &[u8]| -> Result<(), NetError> {
            if out.len() + bytes.len() > cap {
                return Err(NetError::RequestTooLarge { limit: cap });
            }
            out.extend_from_slice(bytes);
            Ok(())
        };
        push(req.method.as_bytes())?;
        push(b" ")?;
        push(req.path.as_bytes())?;
        push(b" HTTP/1.1\r\nHost: ")?;
        push(req.host.as_bytes())?;
        push(concat!("\r\nUser-Agent: outpost/", env!("CARGO_PKG_VERSION"), "\r\n").as_bytes())?;
        if req.accept_gzip {
            push(b"Accept-Encoding: gzip\r\n")?;
        }
        for (name, value) in req.headers {
            push(name.as_bytes())?;
            push(b": ")?;
            push(value)?;
            push(b"\r\n")?;
        }
        let has_body = !req.body.is_empty() || matches!(req.method, "POST" | "PUT" | "PATCH");
        if has_body {
            push(b"Content-Length: ")?;
            let mut digits = [0u8; 20];
            push(format_decimal(req.body.len() as u64, &mut digits))?;
            push(b"\r\n")?;
        }
        push(b"\r\n")?;
        push(req.body)?;
        Ok(())
    }
}

fn is_reset(kind: io::ErrorKind) -> bool {
    matches!(
        kind,
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionAborted
    )
}

/// `n` in decimal in `buf`; formatting into a slice allocates nothing.
fn format_decimal(n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut rest = &mut buf[..];
    write!(rest, "{n}").expect("20 bytes hold a u64");
    let len = 20 - rest.len();
    &buf[..len]
}
