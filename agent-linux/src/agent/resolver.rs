//! Host names become addresses on a second, lookup-only thread, because
//! getaddrinfo blocks for as long as DNS takes. Each [`Name`] a connection
//! needs keeps its last good address, asks again every refresh and at once
//! after a connection failure.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::sync::Arc;

use mio::{Registry, Waker};

use super::token::Token;
use crate::log;

/// The system resolver (getaddrinfo): the first address of `host`.
pub fn system_resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} resolves to no address"))
}

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

pub(super) struct Answer {
    host: String,
    port: u16,
    result: Result<SocketAddr, String>,
}

/// getaddrinfo blocks for as long as DNS takes (seconds when a server is
/// down). It runs on this one thread, so the loop never waits on it; the
/// answer comes back through a channel and a [`Waker`] event.
pub(super) struct ResolverThread {
    requests: mpsc::Sender<Lookup>,
    answers: mpsc::Receiver<Answer>,
}

impl ResolverThread {
    pub(super) fn spawn(registry: &Registry, resolve: ResolveFn) -> io::Result<ResolverThread> {
        let waker = Waker::new(registry, Token::Resolver.into())?;
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

    /// The next answer that came back, if any.
    pub(super) fn try_answer(&self) -> Option<Answer> {
        self.answers.try_recv().ok()
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
pub(super) struct Name {
    pub host: String,
    pub port: u16,
    pub literal: bool,
    pub addr: Option<SocketAddr>,
    next_ask_ms: u64,
    asked_at_ms: Option<u64>,
    answered: bool,
}

impl Name {
    pub(super) fn new(host: &str, port: u16) -> Name {
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

    pub(super) fn ask_if_due(&mut self, now: u64, resolver: &ResolverThread) {
        if self.literal || self.asked_at_ms.is_some() || now < self.next_ask_ms {
            return;
        }
        resolver.ask(&self.host, self.port);
        self.asked_at_ms = Some(now);
    }

    /// After a connection failure: the address may have moved.
    pub(super) fn ask_soon(&mut self, now: u64) {
        self.next_ask_ms = self.next_ask_ms.min(now);
    }

    /// Still waiting for the very first answer, and not for too long.
    pub(super) fn awaiting_first_answer(&self, now: u64) -> bool {
        !self.answered && self.asked_at_ms.is_none_or(|t| now < t + FIRST_ANSWER_WAIT_MS)
    }

    /// Takes an answer meant for this name; true when the address changed.
    /// A failed lookup keeps the last good address.
    pub(super) fn apply(&mut self, answer: &Answer, now: u64, refresh_ms: u64, what: &str) -> bool {
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
