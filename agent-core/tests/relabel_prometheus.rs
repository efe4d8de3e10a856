//! The real peer: Debian's Prometheus scrapes a small KSM-like body through
//! `metric_relabel_configs`, one job per rule set, and its `/federate` output
//! must equal what `RelabelProgram` makes of the same series.
//!
//! Prometheus here is 2.42: its regexes do not let `.` match `\n` and it
//! wants legacy label names as `replace` targets, so the body has no newlines
//! and the rules only write legacy names (the parts where 2.x and 3.x agree).
//! Skipped, with a message, when `/usr/bin/prometheus` is absent.

#[path = "relabel_support.rs"]
mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use outpost_core::plan::RelabelAction as A;
use support::{labels, program, Spec};

const PROMETHEUS: &str = "/usr/bin/prometheus";

/// Serves one fixed body to every request on 127.0.0.1; stopped on drop.
struct BodyServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BodyServer {
    fn start(body: String) -> BodyServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop_flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(body.as_bytes());
            }
        });
        BodyServer {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for BodyServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Kills the Prometheus child and removes its directory, also on failure.
struct PrometheusGuard {
    child: Child,
    dir: std::path::PathBuf,
}

impl Drop for PrometheusGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(port: u16, path_and_query: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path_and_query} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    head.lines().next()?.contains(" 200 ").then(|| body.to_string())
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

type Series = BTreeSet<Vec<(String, String)>>;

/// Parses exposition text (as `/federate` writes it) into label sets with
/// `__name__`, skipping comments.
fn parse_exposition(text: &str) -> Series {
    let mut out = Series::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let name_end = line.find(['{', ' ']).unwrap();
        let mut set = vec![("__name__".to_string(), line[..name_end].to_string())];
        let mut rest = &line[name_end..];
        if let Some(r) = rest.strip_prefix('{') {
            rest = r;
            while !rest.starts_with('}') {
                let eq = rest.find('=').unwrap();
                let name = rest[..eq].trim_start_matches(',').to_string();
                let mut chars = rest[eq + 2..].char_indices();
                let mut value = String::new();
                let end = loop {
                    let (i, c) = chars.next().unwrap();
                    match c {
                        '\\' => match chars.next().unwrap().1 {
                            'n' => value.push('\n'),
                            other => value.push(other),
                        },
                        '"' => break eq + 2 + i + 1,
                        c => value.push(c),
                    }
                };
                set.push((name, value));
                rest = rest[end..].trim_start_matches(',');
            }
        }
        set.sort();
        out.insert(set);
    }
    out
}

fn body() -> String {
    let mut b = String::new();
    for i in 0..24 {
        let ns = format!("team-{}", i % 4);
        let pod = format!("api-{:x}-{:05x}", 100 + i % 3, 7 * i);
        let app = ["Billing", "AUTH", "search-é"][i % 3];
        let metric = [
            "kube_pod_status_phase",
            "kube_pod_container_status_restarts_total",
            "go_gc_duration_seconds",
            "go_memstats_alloc_bytes",
            "kube_pod_labels",
            "node_load1",
        ][i % 6];
        b.push_str(&format!(
            "{metric}{{namespace=\"{ns}\",pod=\"{pod}\",uid=\"u-{i}\",label_app=\"{app}\",addr=\"10.0.{i}.1:9100\"}} {i}\n"
        ));
    }
    b
}

fn rule_sets() -> Vec<Vec<Spec>> {
    vec![
        vec![Spec::new(A::Drop)
            .sources(&["__name__"])
            .regex("go_gc_.*|go_memstats_.*")],
        vec![
            Spec::new(A::Replace).target("tenant").replacement("tenant-a"),
            Spec::new(A::Replace)
                .sources(&["pod"])
                .regex("(?P<w>.+)-[0-9a-f]+-[0-9a-f]+")
                .target("workload")
                .replacement("${w}"),
            Spec::new(A::Replace)
                .sources(&["__name__"])
                .regex("(kube_pod)_.*")
                .target("${1}_copy"),
            Spec::new(A::Replace)
                .sources(&["addr"])
                .regex(r"([^:]+):(\d+)")
                .target("port")
                .replacement("p$2"),
            Spec::new(A::Replace)
                .sources(&["uid"])
                .regex("u-1(.*)")
                .target("label_app")
                .replacement("$1"),
        ],
        vec![
            Spec::new(A::HashMod)
                .sources(&["namespace", "pod"])
                .modulus(7)
                .target("shard"),
            Spec::new(A::Lowercase)
                .sources(&["label_app"])
                .target("app_lower"),
            Spec::new(A::Uppercase)
                .sources(&["namespace", "uid"])
                .target("ns_upper"),
        ],
        vec![
            Spec::new(A::LabelMap).regex("label_(.+)"),
            Spec::new(A::LabelDrop).regex("uid|label_.*"),
        ],
        vec![
            Spec::new(A::Keep).sources(&["namespace"]).regex("team-[12]"),
            Spec::new(A::Replace)
                .sources(&["uid"])
                .regex("u-(1.*)")
                .target("twin")
                .replacement("u-$1"),
            Spec::new(A::KeepEqual).sources(&["uid"]).target("twin"),
        ],
        vec![
            Spec::new(A::Replace)
                .sources(&["uid"])
                .regex("u-(2.*)")
                .target("twin")
                .replacement("u-$1"),
            Spec::new(A::DropEqual).sources(&["uid"]).target("twin"),
            Spec::new(A::LabelKeep).regex("__name__|job|instance|pod|twin"),
        ],
    ]
}

fn yaml_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn config(port: u16, sets: &[Vec<Spec>]) -> String {
    let mut c = String::from("global:\n  scrape_interval: 1s\n  scrape_timeout: 500ms\nscrape_configs:\n");
    for (j, rules) in sets.iter().enumerate() {
        c.push_str(&format!(
            "  - job_name: j{j}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n    metric_relabel_configs:\n"
        ));
        for r in rules {
            c.push_str(&format!("      - action: {}\n", r.action.name()));
            if !r.source_labels.is_empty() {
                c.push_str(&format!(
                    "        source_labels: [{}]\n",
                    r.source_labels.join(", ")
                ));
            }
            c.push_str(&format!("        separator: {}\n", yaml_quote(&r.separator)));
            if !matches!(
                r.action,
                A::KeepEqual | A::DropEqual | A::HashMod | A::Lowercase | A::Uppercase
            ) {
                c.push_str(&format!("        regex: {}\n", yaml_quote(&r.regex)));
            }
            if r.action == A::HashMod {
                c.push_str(&format!("        modulus: {}\n", r.modulus));
            }
            if !r.target_label.is_empty() {
                c.push_str(&format!(
                    "        target_label: {}\n",
                    yaml_quote(&r.target_label)
                ));
            }
            if matches!(r.action, A::Replace | A::LabelMap) {
                c.push_str(&format!("        replacement: {}\n", yaml_quote(&r.replacement)));
            }
        }
    }
    c
}

#[test]
fn prometheus_metric_relabel_agrees_with_ours() {
    if !std::path::Path::new(PROMETHEUS).exists() {
        eprintln!("skipped: {PROMETHEUS} not installed");
        return;
    }
    let body = body();
    let server = BodyServer::start(body.clone());
    let sets = rule_sets();
    let dir = std::env::temp_dir().join(format!("outpost-relabel-prom-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("prometheus.yml"), config(server.port, &sets)).unwrap();
    let web_port = free_port();
    let child = Command::new(PROMETHEUS)
        .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{web_port}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
        .spawn()
        .unwrap();
    let log = dir.join("prometheus.log");
    let _prometheus = PrometheusGuard { child, dir };

    // Wait until every job has completed a scrape.
    let up = format!("/federate?match[]={}", percent_encode("{__name__=\"up\"}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = http_get(web_port, &up)
            .map(|text| {
                parse_exposition(&text)
                    .iter()
                    .filter(|s| s.iter().any(|(n, _)| n == "job"))
                    .count()
            })
            .unwrap_or(0);
        if ready == sets.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not scrape all jobs within 60s; its log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    let input = parse_exposition(&body);
    let instance = format!("127.0.0.1:{}", server.port);
    for (j, rules) in sets.iter().enumerate() {
        let job = format!("j{j}");
        let mut ours = Series::new();
        let mut p = program(rules).unwrap();
        for series in &input {
            let mut pairs: Vec<(&str, &str)> = series.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            pairs.push(("instance", &instance));
            pairs.push(("job", &job));
            let mut l = labels(&pairs);
            if p.apply(&mut l) {
                let mut set: Vec<(String, String)> = l.iter().map(|(n, v)| (n.into(), v.into())).collect();
                set.sort();
                ours.insert(set);
            }
        }
        let query = percent_encode(&format!("{{job=\"{job}\",__name__!~\"up|scrape_.*\"}}"));
        let theirs = parse_exposition(&http_get(web_port, &format!("/federate?match[]={query}")).unwrap());
        assert!(!ours.is_empty(), "job {job}: rule set keeps something");
        assert_eq!(ours, theirs, "job {job}: rules {rules:?}");
        eprintln!(
            "job {job}: {} of {} series agree with Prometheus",
            ours.len(),
            input.len()
        );
    }
}
