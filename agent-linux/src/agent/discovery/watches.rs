//! One connection per watch: a list or watch request goes out as the core
//! asks, and the response is handed back as it arrives: its status once,
//! each piece of (de-chunked) body at once, so a watch that stays open for
//! minutes is applied event by event and never held. The connection is kept
//! alive from one request of its watch to the next.
//!
//! The body is not bounded here: the core's splitter holds at most one
//! object of `max_object_bytes` and skips larger ones.

use std::net::SocketAddr;

use mio::Registry;
use outpost_core::discovery::watch::WatchRequest;

use super::access::ApiAccess;
use super::JobDiscovery;
use crate::agent::token::Token;
use crate::log;
use crate::net::{BodyLimits, ConnBuffers, Failure, HttpClientConn, Progress, Request, ResponseHead};

/// A watch's buffers: a request with a long `continue` token and a
/// projected service-account token fits.
const BUFFERS: ConnBuffers = ConnBuffers {
    read_bytes: 16 * 1024,
    head_bytes: 8 * 1024,
    request_bytes: 16 * 1024,
    inflate_out_bytes: Some(0),
};

/// Lists and watches end when the server says; their bodies are bounded by
/// the core, object by object.
const UNBOUNDED: BodyLimits = BodyLimits {
    max_body_bytes: u64::MAX,
    max_decoded_bytes: u64::MAX,
};

/// Why a request failed, when the body stopped being wanted.
#[derive(Debug)]
struct Unwanted;

pub(super) struct WatchConn {
    conn: HttpClientConn,
    token: mio::Token,
    /// The address `conn` was made for; the API server's name may move.
    conn_addr: Option<SocketAddr>,
    /// The response's status, once handed to the core; 0 before.
    status: u16,
}

impl WatchConn {
    /// The connection of the loop's watch number `index`.
    pub(super) fn new(access: &ApiAccess, index: usize) -> Result<WatchConn, String> {
        let token = Token::Watch(index).into();
        let addr = access.endpoint.name.addr;
        let placeholder = SocketAddr::from(([0, 0, 0, 0], access.endpoint.name.port));
        let conn = HttpClientConn::new(
            addr.unwrap_or(placeholder),
            access.tls.clone(),
            &access.server_name,
            token,
            BUFFERS,
        )
        .map_err(|e| format!("api_server {}: {e}", access.url))?;
        Ok(WatchConn {
            conn,
            token,
            conn_addr: addr,
            status: 0,
        })
    }

    pub(super) fn deadline_ms(&self) -> Option<u64> {
        self.conn.deadline_ms()
    }

    pub(super) fn close(&mut self, registry: &Registry) {
        self.conn.close(registry);
    }
}

impl JobDiscovery {
    /// Sends watch `w`'s request; a failure to send is the core's to back
    /// off from.
    pub(super) fn send(&mut self, registry: &Registry, w: usize, request: &WatchRequest, now: u64) {
        if let Err((reason, err)) = self.start(registry, w, request, now) {
            self.failed(w, reason, &err, now);
        }
    }

    fn start(
        &mut self,
        registry: &Registry,
        w: usize,
        request: &WatchRequest,
        now: u64,
    ) -> Result<(), (&'static str, String)> {
        let name = &self.access.endpoint.name;
        let c = &mut self.conns[w];
        if name.addr != c.conn_addr {
            let Some(addr) = name.addr else {
                return Err(("dns_failed", format!("{} does not resolve (yet)", name.host)));
            };
            let conn = HttpClientConn::new(
                addr,
                self.access.tls.clone(),
                &self.access.server_name,
                c.token,
                BUFFERS,
            )
            .map_err(|e| ("dns_failed", e.to_string()))?;
            c.conn.close(registry);
            c.conn = conn;
            c.conn_addr = Some(addr);
        }
        let mut headers: [(&str, &[u8]); 2] = [("Accept", b"application/json"), ("", b"")];
        let mut count = 1;
        if let Some(auth) = &mut self.access.auth {
            headers[1] = ("Authorization", auth.header_value());
            count += 1;
        }
        let req = Request {
            method: "GET",
            path: &request.path,
            host: &self.access.endpoint.authority,
            headers: &headers[..count],
            body: &[],
            accept_gzip: false,
            limits: UNBOUNDED,
            timeout_ms: request.timeout_ms,
        };
        c.status = 0;
        c.conn
            .start_request(registry, &req, now)
            .map_err(|e| (e.reason(), e.to_string()))
    }

    /// Works watch `w`'s connection after an event or at its deadline.
    pub(super) fn drive(&mut self, registry: &Registry, w: usize, now: u64) {
        let JobDiscovery { kube, conns, .. } = self;
        let c = &mut conns[w];
        if !c.conn.is_busy() {
            return;
        }
        let status = &mut c.status;
        let mut sink = |head: &ResponseHead, bytes: &[u8]| {
            if *status == 0 {
                kube.handle_head(w, head.status);
                *status = head.status;
            }
            if kube.handle_body(w, bytes) {
                Ok(())
            } else {
                Err(Unwanted)
            }
        };
        match c.conn.handle_event(registry, now, &mut sink) {
            Progress::Pending => {}
            Progress::Done(head) => {
                if c.status == 0 {
                    kube.handle_head(w, head.status);
                }
                let failures = kube.counters.failures;
                kube.handle_end(w, now);
                if kube.counters.failures > failures {
                    let reason = if head.status == 200 {
                        "bad_body"
                    } else {
                        "http_status"
                    };
                    self.count(reason);
                    self.log_failure(w, reason, &format_args!("status {}", head.status));
                }
            }
            Progress::Failed(Failure::Sink(Unwanted)) => {
                // The core stopped reading (410 Gone, an error status, a
                // body that does not parse): it judges the response itself.
                let failures = kube.counters.failures;
                kube.handle_end(w, now);
                if kube.counters.failures > failures {
                    let status = c.status;
                    let reason = if status == 200 { "bad_body" } else { "http_status" };
                    self.count(reason);
                    self.log_failure(w, reason, &format_args!("status {status}"));
                }
            }
            Progress::Failed(Failure::Net(e)) => self.failed(w, e.reason(), &e, now),
        }
    }

    fn failed(&mut self, w: usize, reason: &'static str, err: &dyn std::fmt::Display, now: u64) {
        self.kube.handle_failure(w, now);
        self.count(reason);
        self.log_failure(w, reason, err);
    }

    fn count(&mut self, reason: &'static str) {
        match self.failures.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => self.failures.push((reason, 1)),
        }
    }

    fn log_failure(&self, w: usize, reason: &str, err: &dyn std::fmt::Display) {
        let watch = &self.kube.watches[w];
        log::warn(
            "discovery request failed; the targets found so far stay",
            &[
                ("job", &self.name),
                ("resource", &watch.resource.api().1),
                ("namespace", &watch.namespace.as_deref().unwrap_or("")),
                ("reason", &reason),
                ("err", err),
            ],
        );
    }
}
