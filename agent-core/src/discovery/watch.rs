//! The list-and-watch protocol of one resource in one namespace, as client-go's reflector
//! runs it: list (in pages of [`LIST_PAGE`], following `continue`), then watch from the
//! list's `resourceVersion` with bookmarks on, moving the version on with every event and
//! bookmark; a watch that ends is started again from there; `410 Gone` (as a status or an
//! `ERROR` event) means the version is too old and the resource is listed afresh; any other
//! failure waits a backoff (0.8 s doubling to 30 s, jittered, reset after two minutes of
//! health) and then watches again from the last version, or lists again if the list failed.
//!
//! Sans-IO: [`ResourceWatch::poll_request`] says what to ask for and when, the caller sends
//! it and reports the outcome through the `handle_*` methods. Objects themselves are the
//! caller's (see [`super::KubeDiscovery`]).

use alloc::format;
use alloc::string::String;
use core::fmt::Write as _;

use super::Resource;

/// Objects per list page, as client-go's pager asks.
pub const LIST_PAGE: u32 = 500;
/// A watch asks the server to end it after 5 to 10 minutes, as client-go does.
pub const MIN_WATCH_TIMEOUT_S: u64 = 300;
/// The client gives up on a request this long after the server should have answered or
/// ended it.
pub const REQUEST_GRACE_MS: u64 = 30_000;
/// A list page must arrive within this.
pub const LIST_TIMEOUT_MS: u64 = 60_000;
const BACKOFF_INITIAL_MS: u64 = 800;
const BACKOFF_MAX_MS: u64 = 30_000;
/// After this long without a failure the backoff starts from the beginning again.
const BACKOFF_RESET_MS: u64 = 120_000;
/// A `continue` token or resource version longer than this is not a Kubernetes one.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// What the next request of a resource is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    List,
    Watch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting until `at` before the next request of this phase.
    Due { phase: Phase, at: u64 },
    /// A request of this phase is out.
    Out(Phase),
}

/// A request to send: its phase, path with query, and how long the client may wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchRequest {
    pub phase: Phase,
    pub path: String,
    pub timeout_ms: u64,
}

pub struct ResourceWatch {
    pub resource: Resource,
    /// `None`: all namespaces.
    pub namespace: Option<String>,
    /// `spec.nodeName=<node>` for node-local pods.
    pub node_name: Option<String>,
    state: State,
    resource_version: String,
    continue_token: String,
    /// Bumped at every list's first page; objects a finished list did not carry are gone.
    pub generation: u64,
    /// A list has completed at least once.
    pub synced: bool,
    backoff_ms: u64,
    last_failure_ms: Option<u64>,
    rng: u64,
}

impl ResourceWatch {
    /// `seed` spreads the watches' timeouts and backoffs (any value but 0).
    pub fn new(resource: Resource, namespace: Option<String>, node_name: Option<String>, seed: u64) -> Self {
        ResourceWatch {
            resource,
            namespace,
            node_name,
            state: State::Due {
                phase: Phase::List,
                at: 0,
            },
            resource_version: String::new(),
            continue_token: String::new(),
            generation: 0,
            synced: false,
            backoff_ms: 0,
            last_failure_ms: None,
            rng: seed | 1,
        }
    }

    fn random(&mut self) -> u64 {
        // xorshift64: spread, not secrecy.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    pub fn resource_version(&self) -> &str {
        &self.resource_version
    }

    /// When the next request is due, unless one is out.
    pub fn poll_timeout(&self) -> Option<u64> {
        match self.state {
            State::Due { at, .. } => Some(at),
            State::Out(_) => None,
        }
    }

    /// The phase of the request that is out.
    pub fn in_flight(&self) -> Option<Phase> {
        match self.state {
            State::Out(p) => Some(p),
            State::Due { .. } => None,
        }
    }

    /// The request to send now, if one is due; it counts as sent.
    pub fn poll_request(&mut self, now: u64) -> Option<WatchRequest> {
        let State::Due { phase, at } = self.state else {
            return None;
        };
        if now < at {
            return None;
        }
        let mut path = self.base_path();
        let timeout_ms = match phase {
            Phase::List => {
                if self.continue_token.is_empty() {
                    self.generation += 1;
                }
                let _ = write!(path, "?limit={LIST_PAGE}");
                self.push_selector(&mut path);
                if !self.continue_token.is_empty() {
                    path.push_str("&continue=");
                    push_escaped(&mut path, &self.continue_token);
                }
                LIST_TIMEOUT_MS
            }
            Phase::Watch => {
                let timeout_s = MIN_WATCH_TIMEOUT_S + self.random() % MIN_WATCH_TIMEOUT_S;
                path.push_str("?allowWatchBookmarks=true");
                self.push_selector(&mut path);
                path.push_str("&resourceVersion=");
                push_escaped(&mut path, &self.resource_version);
                let _ = write!(path, "&timeoutSeconds={timeout_s}&watch=true");
                timeout_s * 1000 + REQUEST_GRACE_MS
            }
        };
        self.state = State::Out(phase);
        Some(WatchRequest {
            phase,
            path,
            timeout_ms,
        })
    }

    fn base_path(&self) -> String {
        let (group, plural) = self.resource.api();
        match &self.namespace {
            Some(ns) => format!("{group}/namespaces/{ns}/{plural}"),
            None => format!("{group}/{plural}"),
        }
    }

    fn push_selector(&self, path: &mut String) {
        if let Some(node) = &self.node_name {
            path.push_str("&fieldSelector=");
            push_escaped(path, "spec.nodeName=");
            push_escaped(path, node);
        }
    }

    /// A list page's metadata: where its watch starts and whether a page follows.
    /// `false` when a token is too long to be real (the list then fails).
    pub fn handle_list_meta(&mut self, resource_version: &str, continue_token: &str) -> bool {
        if resource_version.len() > MAX_TOKEN_BYTES || continue_token.len() > MAX_TOKEN_BYTES {
            return false;
        }
        self.resource_version.clear();
        self.resource_version.push_str(resource_version);
        self.continue_token.clear();
        self.continue_token.push_str(continue_token);
        true
    }

    /// A watch event or bookmark moved the version on.
    pub fn handle_version(&mut self, resource_version: &str) {
        if !resource_version.is_empty() && resource_version.len() <= MAX_TOKEN_BYTES {
            self.resource_version.clear();
            self.resource_version.push_str(resource_version);
        }
    }

    /// The response ended well. Returns `true` when a whole list has just completed (the
    /// caller then drops what it did not carry).
    pub fn handle_end(&mut self, now: u64) -> bool {
        self.forget_old_failures(now);
        match self.state {
            State::Out(Phase::List) if !self.continue_token.is_empty() => {
                self.state = State::Due {
                    phase: Phase::List,
                    at: now,
                };
                false
            }
            State::Out(Phase::List) => {
                self.synced = true;
                self.state = State::Due {
                    phase: Phase::Watch,
                    at: now,
                };
                true
            }
            _ => {
                // A watch the server ended on time: watch on from the last version.
                self.state = State::Due {
                    phase: Phase::Watch,
                    at: now,
                };
                false
            }
        }
    }

    /// `410 Gone`: the version is too old to watch from; list again at once.
    pub fn handle_gone(&mut self, now: u64) {
        self.continue_token.clear();
        self.resource_version.clear();
        self.state = State::Due {
            phase: Phase::List,
            at: now,
        };
    }

    /// The request failed (connection, status, body): back off, then watch again from the
    /// last version, or list again when there is none to watch from.
    pub fn handle_failure(&mut self, now: u64) {
        self.forget_old_failures(now);
        self.backoff_ms = match self.backoff_ms {
            0 => BACKOFF_INITIAL_MS,
            b => (b * 2).min(BACKOFF_MAX_MS),
        };
        self.last_failure_ms = Some(now);
        let jitter = self.random() % (self.backoff_ms + 1);
        let phase = match self.state {
            State::Out(Phase::Watch) if self.synced => Phase::Watch,
            _ => {
                self.continue_token.clear();
                Phase::List
            }
        };
        self.state = State::Due {
            phase,
            at: now + self.backoff_ms + jitter,
        };
    }

    fn forget_old_failures(&mut self, now: u64) {
        if self
            .last_failure_ms
            .is_some_and(|at| now >= at + BACKOFF_RESET_MS)
        {
            self.backoff_ms = 0;
            self.last_failure_ms = None;
        }
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn push_escaped(out: &mut String, s: &str) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_in_pages_then_watches_from_the_list_version() {
        let mut w = ResourceWatch::new(Resource::Pods, None, Some("node-1".into()), 7);
        let r = w.poll_request(0).unwrap();
        assert_eq!(r.phase, Phase::List);
        assert_eq!(
            r.path,
            "/api/v1/pods?limit=500&fieldSelector=spec.nodeName%3Dnode-1"
        );
        assert!(w.poll_request(0).is_none(), "one request at a time");
        assert!(w.handle_list_meta("10", "tok/en="));
        assert!(!w.handle_end(5), "a page follows");
        let r = w.poll_request(5).unwrap();
        assert_eq!(
            r.path,
            "/api/v1/pods?limit=500&fieldSelector=spec.nodeName%3Dnode-1&continue=tok%2Fen%3D"
        );
        assert_eq!(w.generation, 1, "a next page is the same list");
        assert!(w.handle_list_meta("12", ""));
        assert!(w.handle_end(6), "the list is whole");
        assert!(w.synced);
        let r = w.poll_request(6).unwrap();
        assert_eq!(r.phase, Phase::Watch);
        assert!(r.path.starts_with(
            "/api/v1/pods?allowWatchBookmarks=true&fieldSelector=spec.nodeName%3Dnode-1&resourceVersion=12&timeoutSeconds="
        ));
        assert!(r.path.ends_with("&watch=true"));
        assert!((300_000 + REQUEST_GRACE_MS..600_000 + REQUEST_GRACE_MS).contains(&r.timeout_ms));
        w.handle_version("15");
        assert!(!w.handle_end(100), "the server ended the watch");
        let r = w.poll_request(100).unwrap();
        assert!(r.path.contains("resourceVersion=15"), "{}", r.path);
    }

    #[test]
    fn gone_relists_and_failures_back_off_then_reset() {
        let mut w = ResourceWatch::new(Resource::EndpointSlices, Some("kube-system".into()), None, 3);
        let r = w.poll_request(0).unwrap();
        assert_eq!(
            r.path,
            "/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices?limit=500"
        );
        w.handle_list_meta("5", "");
        w.handle_end(0);
        w.poll_request(0).unwrap();
        w.handle_gone(10);
        let r = w.poll_request(10).unwrap();
        assert_eq!(r.phase, Phase::List);
        assert_eq!(w.generation, 2);
        w.handle_list_meta("20", "");
        w.handle_end(10);
        w.poll_request(10).unwrap();
        // Failures: 0.8 s, 1.6 s, 3.2 s ... up to 30 s, each plus up to as much jitter.
        let mut now = 10;
        let mut last = 0;
        for _ in 0..8 {
            w.handle_failure(now);
            let at = w.poll_timeout().unwrap();
            let wait = at - now;
            assert!(
                wait >= last.min(BACKOFF_MAX_MS) && wait <= 2 * BACKOFF_MAX_MS,
                "{wait}"
            );
            last = wait / 2;
            assert!(w.poll_request(at - 1).is_none());
            let r = w.poll_request(at).unwrap();
            assert_eq!(
                r.phase,
                Phase::Watch,
                "a synced resource watches on from its version"
            );
            assert!(r.path.contains("resourceVersion=20"));
            now = at;
        }
        // Two quiet minutes later the backoff starts over.
        w.handle_end(now + BACKOFF_RESET_MS);
        w.poll_request(now + BACKOFF_RESET_MS).unwrap();
        w.handle_failure(now + BACKOFF_RESET_MS);
        let wait = w.poll_timeout().unwrap() - (now + BACKOFF_RESET_MS);
        assert!(
            (BACKOFF_INITIAL_MS..=2 * BACKOFF_INITIAL_MS).contains(&wait),
            "{wait}"
        );
    }

    #[test]
    fn a_failed_first_list_lists_again() {
        let mut w = ResourceWatch::new(Resource::Nodes, None, None, 1);
        w.poll_request(0).unwrap();
        w.handle_list_meta("1", "more");
        w.handle_failure(0);
        let at = w.poll_timeout().unwrap();
        let r = w.poll_request(at).unwrap();
        assert_eq!(r.path, "/api/v1/nodes?limit=500", "from the first page");
        assert!(!w.handle_list_meta(&"9".repeat(MAX_TOKEN_BYTES + 1), ""));
    }
}
