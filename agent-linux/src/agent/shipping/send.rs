//! Sending: the sender's runs become request bodies joined from their WAL
//! records and go out on their shard's connection; answers come back to
//! the sender.

use std::net::SocketAddr;

use mio::Registry;
use outpost_core::queue::{DropReason, Outcome, Run};
use outpost_core::remote_write::HEADERS;

use super::Shipping;
use crate::agent::token::Token;
use crate::log;
use crate::net::{BodyLimits, ConnBuffers, Failure, HttpClientConn, Progress, Request, ResponseHead};

/// A shard's connection to the receiver.
pub(super) struct ShardConn {
    pub conn: HttpClientConn,
    /// The receiver address this connection dials.
    addr: SocketAddr,
    /// The run whose request is on this connection.
    pub in_flight: Option<u64>,
}

impl Shipping {
    /// Starts every send the sender allows now. `wall` is the wall clock,
    /// which judges sample age; `now` is the clock of every deadline.
    pub(in crate::agent) fn transmit(&mut self, registry: &Registry, now: u64, wall: i64) {
        if self.pending_rebuild.is_some() {
            return;
        }
        while let Some(run) = self.sender.poll_transmit(now, wall, &mut self.run_records) {
            let shard = usize::from(run.shard);
            if !self.connect(registry, shard) {
                self.sender.handle_transport_error(run.id, now);
                self.write_through(true);
                continue;
            }
            let at = self.build_body(&run);
            if !self
                .sender
                .handle_built(run.id, (self.body.len() - at) as u64, now)
            {
                // Every record of the run was lost: nothing to send.
                continue;
            }
            let side = &mut self.side;
            // A fixed array: sending allocates nothing.
            let mut headers: [(&str, &[u8]); HEADERS.len() + 2] = [("", b""); HEADERS.len() + 2];
            for (slot, (n, v)) in headers.iter_mut().zip(HEADERS.iter()) {
                *slot = (n, v.as_bytes());
            }
            let mut count = HEADERS.len();
            if let Some((n, v)) = &side.tenant_header {
                headers[count] = (n.as_str(), v.as_slice());
                count += 1;
            }
            if let Some(auth) = &mut side.auth {
                headers[count] = ("Authorization", auth.header_value());
                count += 1;
            }
            let req = Request {
                method: "POST",
                path: &side.endpoint.path,
                host: &side.endpoint.authority,
                headers: &headers[..count],
                body: &self.body[at..],
                accept_gzip: false,
                limits: BodyLimits {
                    max_body_bytes: 64 * 1024,
                    max_decoded_bytes: 64 * 1024,
                },
                timeout_ms: side.remote_timeout_ms,
            };
            let sc = self.shards[shard].as_mut().expect("connected above");
            match sc.conn.start_request(registry, &req, now) {
                Ok(()) => sc.in_flight = Some(run.id),
                Err(e) => {
                    self.log_send_failure(&e);
                    self.sender.handle_transport_error(run.id, now);
                    self.write_through(true);
                }
            }
        }
    }

    /// Makes sure shard `shard` has a connection to the receiver's current
    /// address; false (logged) when it cannot have one now.
    fn connect(&mut self, registry: &Registry, shard: usize) -> bool {
        let addr = self.side.endpoint.name.addr;
        // The receiver's name moved: an idle connection to the old
        // address is replaced (busy ones finish first).
        let moved = self.shards[shard]
            .as_ref()
            .is_some_and(|sc| sc.in_flight.is_none() && Some(sc.addr) != addr);
        if moved {
            if let Some(mut old) = self.shards[shard].take() {
                old.conn.close(registry);
            }
        }
        if self.shards[shard].is_some() {
            return true;
        }
        let Some(addr) = addr else {
            // Not resolved yet (the lookup runs off the loop): the
            // run backs off and is offered again.
            self.log_send_failure(&"receiver name not resolved yet");
            return false;
        };
        let bufs = ConnBuffers {
            read_bytes: 16 * 1024,
            head_bytes: 8 * 1024,
            request_bytes: self.body.capacity() + 4096,
            inflate_out_bytes: Some(16 * 1024),
        };
        let side = &self.side;
        match HttpClientConn::new(
            addr,
            side.tls.clone(),
            &side.server_name,
            Token::Shard(shard).into(),
            bufs,
        ) {
            Ok(conn) => {
                self.shards[shard] = Some(ShardConn {
                    conn,
                    addr,
                    in_flight: None,
                });
                true
            }
            Err(e) => {
                log::error(
                    "cannot set up receiver connection",
                    &[("url", &side.url), ("err", &e)],
                );
                false
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

    /// A socket event of shard `shard`'s connection, or its deadline; its
    /// answer goes to the sender.
    pub(in crate::agent) fn handle_shard_event(&mut self, registry: &Registry, shard: usize, now: u64) {
        let Some(sc) = self.shards.get_mut(shard).and_then(Option::as_mut) else {
            return;
        };
        let mut discard = |_: &ResponseHead, _: &[u8]| -> Result<(), ()> { Ok(()) };
        let progress = sc.conn.handle_event(registry, now, &mut discard);
        let Some(run) = sc.in_flight else {
            return;
        };
        match progress {
            Progress::Pending => {}
            Progress::Done(head) => {
                sc.in_flight = None;
                self.handle_answer(run, &head, now);
            }
            Progress::Failed(f) => {
                sc.in_flight = None;
                let err = match f {
                    Failure::Net(e) => e.to_string(),
                    Failure::Sink(()) => "sink".to_string(),
                };
                self.side.endpoint.name.ask_soon(now);
                self.log_send_failure(&err);
                self.sender.handle_transport_error(run, now);
                self.write_through(true);
            }
        }
    }

    fn handle_answer(&mut self, run: u64, head: &ResponseHead, now: u64) {
        let url = &self.side.url;
        if let Some(date_s) = head.date_s {
            self.receiver_offset.observe(date_s, self.wall_ms, now, url);
        }
        if head.is_success() {
            if self.consecutive_failures > 0 {
                log::info(
                    "remote write recovered",
                    &[("url", url), ("failures", &self.consecutive_failures)],
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
                    ("url", url),
                    ("status", &head.status),
                    ("batch", &run),
                    ("outcome", &outcome_name(&outcome)),
                ],
            );
        }
        // Spill mode holds records only while the receiver takes requests.
        match outcome {
            Outcome::Retry { .. } => self.write_through(true),
            Outcome::Acked { .. } | Outcome::Dropped { .. } => self.write_through(false),
            Outcome::Unknown { .. } => {}
        }
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
