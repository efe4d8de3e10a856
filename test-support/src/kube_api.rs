//! A Kubernetes API server stand-in for discovery tests, on loopback: it keeps objects (JSON
//! as the API writes them, built by the tests from k8s-openapi types) and speaks the list and
//! watch protocol that client-go and outpost use:
//!
//! - `GET /api/v1/[namespaces/<ns>/]<plural>` and `/apis/discovery.k8s.io/v1/...`: a list
//!   with the current `resourceVersion`, filtered by namespace and by the field selector
//!   `spec.nodeName=<node>`;
//! - the same with `watch=true&resourceVersion=<v>`: a chunked stream of `ADDED`,
//!   `MODIFIED` and `DELETED` events after `v`, `BOOKMARK`s when asked for, and an `ERROR`
//!   event with a `410` Status when `v` is older than the last [`KubeApi::compact`]; every
//!   watch ends after [`WATCH_SECONDS`] (servers may end watches early; clients watch on);
//! - `GET /version`, which Prometheus asks before choosing the EndpointSlice API.
//!
//! Plain HTTP: Prometheus reaches it with `api_server: http://127.0.0.1:<port>`.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::servers::LoopbackServer;

/// How long one watch stays open at most.
pub const WATCH_SECONDS: u64 = 2;
/// How often an open watch looks for new events, and sends a bookmark when asked for.
const WATCH_TICK: Duration = Duration::from_millis(100);
const BOOKMARK_EVERY: Duration = Duration::from_millis(700);

/// One change, as a watch replays it.
struct Change {
    version: u64,
    plural: String,
    kind: &'static str,
    object: Value,
}

#[derive(Default)]
struct State {
    version: u64,
    /// Watches from an older version get `410 Gone`.
    oldest_watchable: u64,
    /// `(plural, namespace, name)` to the object.
    objects: BTreeMap<(String, String, String), Value>,
    changes: Vec<Change>,
    /// Request lines, for assertions (`GET <path>`).
    requests: Vec<String>,
    /// `410`s answered.
    gone: u64,
    /// Every request is answered `500`, and open watches end.
    failing: bool,
}

pub struct KubeApi {
    state: Arc<Mutex<State>>,
    server: LoopbackServer,
}

/// `(namespace or "", plural)` of a resource path, or `None`.
fn resource(path: &str) -> Option<(String, String)> {
    let rest = path
        .strip_prefix("/api/v1/")
        .or_else(|| path.strip_prefix("/apis/discovery.k8s.io/v1/"))?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [plural] => Some((String::new(), plural.to_string())),
        ["namespaces", ns, plural] => Some((ns.to_string(), plural.to_string())),
        _ => None,
    }
}

fn query(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), percent_decode(v)))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn kind_of(plural: &str) -> &'static str {
    match plural {
        "pods" => "Pod",
        "services" => "Service",
        "endpointslices" => "EndpointSlice",
        "nodes" => "Node",
        _ => "Unknown",
    }
}

/// Whether `object` passes the request's namespace and field selector.
fn selected(object: &Value, namespace: &str, field_selector: Option<&String>) -> bool {
    if !namespace.is_empty() && object["metadata"]["namespace"] != namespace {
        return false;
    }
    match field_selector.and_then(|f| f.strip_prefix("spec.nodeName=")) {
        Some(node) => object["spec"]["nodeName"] == node,
        None => true,
    }
}

impl KubeApi {
    pub fn start() -> KubeApi {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let server = LoopbackServer::start("127.0.0.1:0", move |s, stop| serve(s, stop, &shared));
        KubeApi { state, server }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port())
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Adds or replaces `object` (its `metadata.namespace` and `.name` say which) in
    /// `plural` (`pods`, `services`, `endpointslices`, `nodes`), with a new resource version.
    pub fn apply(&self, plural: &str, mut object: Value) {
        let mut st = self.state.lock().unwrap();
        st.version += 1;
        object["metadata"]["resourceVersion"] = json!(st.version.to_string());
        let key = (
            plural.to_string(),
            object["metadata"]["namespace"].as_str().unwrap_or("").to_string(),
            object["metadata"]["name"].as_str().unwrap().to_string(),
        );
        let kind = if st.objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        st.objects.insert(key, object.clone());
        let version = st.version;
        st.changes.push(Change {
            version,
            plural: plural.to_string(),
            kind,
            object,
        });
    }

    pub fn delete(&self, plural: &str, namespace: &str, name: &str) {
        let mut st = self.state.lock().unwrap();
        let key = (plural.to_string(), namespace.to_string(), name.to_string());
        let Some(mut object) = st.objects.remove(&key) else {
            panic!("no {plural} {namespace}/{name} to delete");
        };
        st.version += 1;
        object["metadata"]["resourceVersion"] = json!(st.version.to_string());
        let version = st.version;
        st.changes.push(Change {
            version,
            plural: plural.to_string(),
            kind: "DELETED",
            object,
        });
    }

    /// Forgets the history: a watch from any version before now is answered `410 Gone`.
    pub fn compact(&self) {
        let mut st = self.state.lock().unwrap();
        st.oldest_watchable = st.version;
        st.changes.clear();
    }

    /// Every request line so far.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    /// While `failing`, every request is answered `500 Internal Server Error` and open
    /// watches end: an API server that is down, as its clients see it.
    pub fn set_failing(&self, failing: bool) {
        self.state.lock().unwrap().failing = failing;
    }

    /// `410 Gone` answers so far.
    pub fn gone(&self) -> u64 {
        self.state.lock().unwrap().gone
    }
}

fn serve(mut s: TcpStream, stop: &AtomicBool, state: &Mutex<State>) {
    let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            match s.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return,
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        let target = head.split(' ').nth(1).unwrap_or("").to_string();
        state.lock().unwrap().requests.push(format!("GET {target}"));
        let (path, q) = target.split_once('?').unwrap_or((&target, ""));
        let q = query(q);
        let failing = state.lock().unwrap().failing;
        let ok = if failing {
            respond(&mut s, 500, &status(500, "InternalError"))
        } else if path == "/version" {
            let v = json!({"major": "1", "minor": "26", "gitVersion": "v1.26.0", "platform": "linux/amd64"});
            respond(&mut s, 200, &v)
        } else if let Some((ns, plural)) = resource(path) {
            if q.get("watch").is_some_and(|w| w == "true" || w == "1") {
                watch(&mut s, stop, state, &ns, &plural, &q)
            } else {
                let list = list(state, &ns, &plural, &q);
                respond(&mut s, 200, &list)
            }
        } else {
            respond(&mut s, 404, &status(404, "NotFound"))
        };
        if !ok {
            return;
        }
    }
}

fn status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": reason, "code": code})
}

fn respond(s: &mut TcpStream, code: u16, body: &Value) -> bool {
    let body = serde_json::to_vec(body).unwrap();
    let head = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        if code == 200 { "OK" } else { "Error" },
        body.len()
    );
    s.write_all(head.as_bytes())
        .and_then(|_| s.write_all(&body))
        .is_ok()
}

fn list(state: &Mutex<State>, ns: &str, plural: &str, q: &HashMap<String, String>) -> Value {
    let st = state.lock().unwrap();
    let items: Vec<Value> = st
        .objects
        .iter()
        .filter(|((p, _, _), o)| p == plural && selected(o, ns, q.get("fieldSelector")))
        .map(|(_, o)| o.clone())
        .collect();
    json!({
        "kind": format!("{}List", kind_of(plural)),
        "apiVersion": if plural == "endpointslices" { "discovery.k8s.io/v1" } else { "v1" },
        "metadata": {"resourceVersion": st.version.to_string()},
        "items": items,
    })
}

fn chunk(s: &mut TcpStream, line: &Value) -> bool {
    let mut body = serde_json::to_vec(line).unwrap();
    body.push(b'\n');
    let framed = format!("{:x}\r\n", body.len());
    s.write_all(framed.as_bytes())
        .and_then(|_| s.write_all(&body))
        .and_then(|_| s.write_all(b"\r\n"))
        .is_ok()
}

fn watch(
    s: &mut TcpStream,
    stop: &AtomicBool,
    state: &Mutex<State>,
    ns: &str,
    plural: &str,
    q: &HashMap<String, String>,
) -> bool {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    if s.write_all(head.as_bytes()).is_err() {
        return false;
    }
    let mut from: u64 = q.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .unwrap_or(WATCH_SECONDS)
        .min(WATCH_SECONDS);
    let started = Instant::now();
    let mut last_bookmark = Instant::now();
    while started.elapsed() < Duration::from_secs(timeout) && !stop.load(Ordering::Relaxed) {
        let (events, now) = {
            let mut st = state.lock().unwrap();
            if st.failing {
                break;
            }
            if from < st.oldest_watchable {
                st.gone += 1;
                drop(st);
                let gone = json!({"type": "ERROR", "object": status(410, "Expired")});
                return chunk(s, &gone) && s.write_all(b"0\r\n\r\n").is_ok();
            }
            let events: Vec<Value> = st
                .changes
                .iter()
                .filter(|c| {
                    c.version > from && c.plural == plural && selected(&c.object, ns, q.get("fieldSelector"))
                })
                .map(|c| json!({"type": c.kind, "object": c.object}))
                .collect();
            (events, st.version)
        };
        for e in &events {
            if !chunk(s, e) {
                return false;
            }
        }
        from = now;
        if bookmarks && last_bookmark.elapsed() >= BOOKMARK_EVERY {
            let api_version = if plural == "endpointslices" {
                "discovery.k8s.io/v1"
            } else {
                "v1"
            };
            let mark = json!({"type": "BOOKMARK", "object": {
                "kind": kind_of(plural), "apiVersion": api_version,
                "metadata": {"resourceVersion": from.to_string()}}});
            if !chunk(s, &mark) {
                return false;
            }
            last_bookmark = Instant::now();
        }
        std::thread::sleep(WATCH_TICK);
    }
    s.write_all(b"0\r\n\r\n").is_ok()
}
