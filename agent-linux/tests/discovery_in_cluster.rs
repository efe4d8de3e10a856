//! In-cluster discovery as a pod runs it: no `api_server` in the spec, so the `outpost`
//! binary finds the API server through `KUBERNETES_SERVICE_HOST`/`_PORT`, verifies its TLS
//! certificate against the service account's `ca.crt` (made here by rcgen) and sends the
//! service account's `token`, re-reading it when it rotates. The API server is
//! test-support's `KubeApi` behind a TLS-terminating relay, which also records the
//! `Authorization` headers it sees.
//!
//! Checked: the annotated pod is discovered and scraped (up on `/api/v1/targets`); a rotated
//! token is sent from then on; the token is never in the agent's log; and an agent given
//! another CA does not trust the server, finds nothing and counts the TLS failures.

mod tls_support;

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use outpost_compiler::analyze;
use outpost_core::plan::Role;
use outpost_test_support::kube_api::KubeApi;
use outpost_test_support::*;
use rustls::{ServerConfig, ServerConnection};
use serde_json::Value;
use tls_support::{make_ca, make_leaf, server_config};

/// Relays one TLS client to the plain API fixture, recording each `Authorization` header.
fn relay(
    client: TcpStream,
    stop: &AtomicBool,
    config: Arc<ServerConfig>,
    upstream: u16,
    seen: &Mutex<Vec<String>>,
) {
    let Ok(mut tls) = ServerConnection::new(config) else {
        return;
    };
    let mut client = client;
    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    if client.set_nonblocking(true).is_err() || up.set_nonblocking(true).is_err() {
        return;
    }
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let mut moved = false;
        match tls.read_tls(&mut client) {
            Ok(0) => return,
            Ok(_) => {
                moved = true;
                if tls.process_new_packets().is_err() {
                    let _ = tls.write_tls(&mut client);
                    return;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
        loop {
            match tls.reader().read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    moved = true;
                    let text = String::from_utf8_lossy(&buf[..n]);
                    for line in text.lines() {
                        if line.to_ascii_lowercase().starts_with("authorization:") {
                            seen.lock().unwrap().push(line[14..].trim().to_string());
                        }
                    }
                    if write_all(&mut up, &buf[..n]).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => return,
            }
        }
        match up.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                moved = true;
                if tls.writer().write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
        while tls.wants_write() {
            match tls.write_tls(&mut client) {
                Ok(_) => moved = true,
                Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(1)),
                Err(_) => return,
            }
        }
        if !moved {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// `write_all` on a non-blocking socket.
fn write_all(s: &mut TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        match s.write(bytes) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn pod(name: &str, port: u16) -> Value {
    let p = Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("apps".into()),
            annotations: Some(BTreeMap::from([
                ("prometheus.io/scrape".to_string(), "true".to_string()),
                ("prometheus.io/port".to_string(), port.to_string()),
            ])),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some("node-a".into()),
            containers: vec![Container {
                name: "main".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            pod_ip: Some("127.0.0.1".into()),
            ..Default::default()
        }),
    };
    serde_json::to_value(p).unwrap()
}

const SPEC: &str = r#"
receiver:
  url: RECEIVER
defaults:
  scrape_interval: 1s
  scrape_timeout: 500ms
  limits: {body_size: 16Ki, samples: 100}
scrape_jobs:
  - name: apps
    scope: node
    discovery:
      role: pod
      max_targets: 5
    relabel_preset: prometheus.io
clusters:
  - name: edge-1
    role: edge
"#;

/// A service-account directory with `ca_pem` and `token`.
fn service_account(dir: &Path, ca_pem: &str, token: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("ca.crt"), ca_pem).unwrap();
    std::fs::write(dir.join("token"), token).unwrap();
}

fn start_agent(
    dir: &Path,
    plan: &Path,
    sa: &Path,
    api_port: u16,
    name: &str,
) -> (ChildGuard, u16, std::path::PathBuf) {
    let listen = free_port();
    let log = dir.join(format!("{name}.log"));
    let wal = dir.join(format!("{name}-wal"));
    let agent = ChildGuard::spawn_logged(
        outpost!()
            .command()
            .args(["run", "--plan"])
            .arg(plan)
            .args([
                "--listen",
                &format!("127.0.0.1:{listen}"),
                "--node-name",
                "node-a",
            ])
            .args(["--log-level", "debug", "--wal-dir"])
            .arg(&wal)
            .arg("--kube.service-account-dir")
            .arg(sa)
            .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
            .env("KUBERNETES_SERVICE_PORT", api_port.to_string()),
        &log,
    );
    (agent, listen, log)
}

fn metric(port: u16, series: &str) -> f64 {
    get_metrics(port)
        .and_then(|page| metric_value(&page, series))
        .unwrap_or(0.0)
}

#[test]
fn in_cluster_discovery_verifies_the_api_server_and_sends_the_rotating_token() {
    let dir = tempfile::tempdir().unwrap();
    let api = KubeApi::start();
    let target = TargetServer::start("# TYPE demo_value gauge\ndemo_value 1\n");
    api.apply("pods", pod("web-0", target.port));

    let ca = make_ca("kube-ca");
    let leaf = make_leaf(&ca, &["127.0.0.1", "kubernetes.default.svc"]);
    let config = server_config(&leaf, None);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let upstream = api.port();
    let recorded = seen.clone();
    let relay_server = LoopbackServer::start("127.0.0.1:0", move |s, stop| {
        relay(s, stop, config.clone(), upstream, &recorded)
    });
    let receiver = RecordingReceiver::start(Box::new(|_| (200, Vec::new())));
    let a = analyze("kube.yaml", &SPEC.replace("RECEIVER", &receiver.url()));
    assert!(!a.has_errors(), "{}", a.render_text(100));
    let node = a.plans.iter().find(|p| p.role == Role::Node).unwrap();
    let plan = write_plan(dir.path(), "node.plan", &node.plan);

    let sa = dir.path().join("sa");
    service_account(&sa, &ca.pem, "token-one\n");
    let (mut agent, listen, log) = start_agent(dir.path(), &plan, &sa, relay_server.port(), "trusting");
    let instance = format!("127.0.0.1:{}", target.port);
    wait_for("the discovered pod scraped", Duration::from_secs(30), || {
        let (_, body) = http_get(listen, "/api/v1/targets?scrapePool=apps")?;
        let page: Value = serde_json::from_str(&body).ok()?;
        let t = page["data"]["activeTargets"].as_array()?.first()?.clone();
        (t["labels"]["instance"] == instance.as_str() && t["health"] == "up").then_some(())
    });
    assert!(seen.lock().unwrap().iter().all(|h| h == "Bearer token-one"));
    assert!(!seen.lock().unwrap().is_empty());

    // Projected tokens rotate: the file changes, and so does what the agent sends.
    std::fs::write(sa.join("token"), "token-two\n").unwrap();
    let later = SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(sa.join("token"))
        .unwrap()
        .set_modified(later)
        .unwrap();
    wait_for("the rotated token sent", Duration::from_secs(30), || {
        seen.lock()
            .unwrap()
            .iter()
            .any(|h| h == "Bearer token-two")
            .then_some(())
    });
    assert_eq!(metric(listen, "outpost_discovery_targets{job=\"apps\"}"), 1.0);
    agent.terminate(Duration::from_secs(10));
    let text = log_text(&log);
    assert!(
        !text.contains("token-one") && !text.contains("token-two"),
        "the token is never logged:\n{text}"
    );

    // Another CA: the server is not trusted, nothing is discovered, the failures are counted.
    let other = make_ca("someone-else");
    let sa2 = dir.path().join("sa2");
    service_account(&sa2, &other.pem, "token-three\n");
    let (mut doubting, listen2, log2) = start_agent(dir.path(), &plan, &sa2, relay_server.port(), "doubting");
    let failures = "outpost_discovery_failures_total{job=\"apps\",reason=\"tls_handshake_failed\"}";
    wait_for("TLS failures counted", Duration::from_secs(30), || {
        (metric(listen2, failures) >= 1.0).then_some(())
    });
    assert_eq!(metric(listen2, "outpost_discovery_targets{job=\"apps\"}"), 0.0);
    assert_eq!(metric(listen2, "outpost_discovery_synced{job=\"apps\"}"), 0.0);
    doubting.terminate(Duration::from_secs(10));
    assert!(!seen.lock().unwrap().iter().any(|h| h.contains("token-three")));
    let text = log_text(&log2);
    assert!(text.contains("tls_handshake_failed"), "{text}");
}
