//! Remote write over mutual TLS: the plan's CA verifies the receiver, the
//! plan's client certificate authenticates the agent (defect 4 of the seed:
//! plain HTTP across clusters). The receiver is a rustls server thread with
//! certificates made by rcgen.

mod tls_support;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use outpost_core::plan::{Fsync, Plan, Queue, Role};
use outpost_test_support::{free_port, write_plan, ChildGuard, LoopbackServer, PlanBuilder, QUEUE};
use rustls::{ServerConnection, StreamOwned};
use tls_support::{make_ca, make_leaf, server_config, Ca, Leaf};

/// An HTTPS receiver that requires a client certificate from `client_ca`
/// and answers 200 to every remote-write POST whose body is snappy.
struct MtlsReceiver {
    port: u16,
    accepted_writes: Arc<AtomicU64>,
    handshake_failures: Arc<AtomicU64>,
    _server: LoopbackServer,
}

impl MtlsReceiver {
    fn start(server: &Leaf, client_ca: &Ca) -> MtlsReceiver {
        let config = server_config(server, Some(client_ca));
        let accepted_writes = Arc::new(AtomicU64::new(0));
        let handshake_failures = Arc::new(AtomicU64::new(0));
        let (writes, failures) = (accepted_writes.clone(), handshake_failures.clone());
        let server = LoopbackServer::start("127.0.0.1:0", move |s, stop| {
            let _ = s.set_nonblocking(false);
            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
            let mut tls = StreamOwned::new(ServerConnection::new(config.clone()).unwrap(), s);
            let mut buf = Vec::new();
            let mut chunk = [0u8; 16384];
            while !stop.load(Ordering::Relaxed) {
                let n = match tls.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) => {
                        if e.kind() != std::io::ErrorKind::WouldBlock
                            && e.kind() != std::io::ErrorKind::TimedOut
                        {
                            failures.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        continue;
                    }
                };
                buf.extend_from_slice(&chunk[..n]);
                // Answer each complete request (head + Content-Length body).
                while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buf.len() < end + 4 + len {
                        break;
                    }
                    let body: Vec<u8> = buf.drain(..end + 4 + len).skip(end + 4).collect();
                    let client_cert = tls.conn.peer_certificates().is_some_and(|c| !c.is_empty());
                    let decodes = snap::raw::Decoder::new().decompress_vec(&body).is_ok();
                    if head.starts_with("post /api/v1/write ") && client_cert && decodes {
                        writes.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                    let _ = tls.flush();
                }
            }
        });
        MtlsReceiver {
            port: server.port(),
            accepted_writes,
            handshake_failures,
            _server: server,
        }
    }
}

fn plan(port: u16, dir: &Path, with_client_cert: bool) -> Plan {
    let path = |name: &str| dir.join(name);
    let client = with_client_cert.then(|| (path("client.pem"), path("client.key")));
    PlanBuilder::new()
        .role(Role::Cluster)
        .external_labels(&[("cluster", "cluster-03")])
        .receiver_url(&format!("https://127.0.0.1:{port}/api/v1/write"))
        .receiver_tls(
            &path("ca.pem"),
            client.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
        )
        .queue(Queue {
            capacity: 1_000,
            batch_send_deadline_ms: 100,
            max_backoff_ms: 200,
            max_batch_bytes: 128 * 1024,
            ..QUEUE
        })
        .wal_dir(&path(if with_client_cert { "wal-mtls" } else { "wal-plain" }))
        .wal_bounds(16 << 20, 1 << 20)
        .fsync(Fsync::Always)
        .self_scrape(200, "outpost")
        .build()
}

fn run_agent(dir: &Path, plan: &Plan, name: &str) -> ChildGuard {
    let plan_path = write_plan(dir, &format!("{name}.plan"), plan);
    ChildGuard::spawn_logged(
        Command::new(env!("CARGO_BIN_EXE_outpost"))
            .args(["run", "--plan"])
            .arg(&plan_path)
            .args(["--listen", &format!("127.0.0.1:{}", free_port())]),
        &dir.join(format!("{name}.log")),
    )
}

#[test]
fn agent_writes_over_mutual_tls_and_is_refused_without_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = make_ca("receiver CA");
    let client_ca = make_ca("agent CA");
    let server = make_leaf(&server_ca, &["127.0.0.1"]);
    let client = make_leaf(&client_ca, &["outpost-agent"]);
    std::fs::write(dir.path().join("ca.pem"), &server_ca.pem).unwrap();
    std::fs::write(dir.path().join("client.pem"), &client.pem).unwrap();
    std::fs::write(dir.path().join("client.key"), &client.key_pem).unwrap();
    let receiver = MtlsReceiver::start(&server, &client_ca);

    // Without a client certificate the receiver refuses every handshake.
    let agent = run_agent(dir.path(), &plan(receiver.port, dir.path(), false), "plain");
    let deadline = Instant::now() + Duration::from_secs(20);
    while receiver.handshake_failures.load(Ordering::Relaxed) < 2 {
        assert!(Instant::now() < deadline, "no refused handshakes seen");
        thread::sleep(Duration::from_millis(50));
    }
    drop(agent);
    assert_eq!(receiver.accepted_writes.load(Ordering::Relaxed), 0);

    // With it, batches arrive.
    let _agent = run_agent(dir.path(), &plan(receiver.port, dir.path(), true), "mtls");
    let deadline = Instant::now() + Duration::from_secs(20);
    while receiver.accepted_writes.load(Ordering::Relaxed) < 2 {
        assert!(
            Instant::now() < deadline,
            "no writes over mTLS; log: {}",
            std::fs::read_to_string(dir.path().join("mtls.log")).unwrap()
        );
        thread::sleep(Duration::from_millis(50));
    }
}
