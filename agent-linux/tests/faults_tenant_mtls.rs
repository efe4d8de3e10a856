//! Issue 10, per-tenant mTLS through the example fleet: `examples/fleet.yaml`
//! is compiled by `outpostc` with only its addresses, file locations and
//! intervals moved to loopback, and cluster-02's two tenant agents write to
//! one TLS receiver that requires a client certificate from the tenants' CA.
//!
//! The spec has one `receiver.tls` for the whole fleet, so both tenants'
//! plans name the same certificate paths; in Kubernetes each tenant's pod
//! mounts its own namespace's `outpost-tls` Secret there. The test does the
//! same with a private mount namespace per agent: its tenant's directory is
//! bind-mounted on the shared path.
//!
//! Asserted: each request carries the client certificate and the
//! THANOS-TENANT value of one tenant, the same one, and its series carry that
//! tenant's external labels; an agent holding tenant-a's plan with no
//! certificate, or with a tenant-a certificate from another CA, is refused
//! at the handshake, counts the failures and keeps running.

mod tls_support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use outpost_core::plan::{self, Plan};
use outpost_test_support::{
    cannot_unshare_mounts, free_port, get_metrics, metric_sum, outpost, repo_path, wait_for, wire,
    ChildGuard, LoopbackServer, TargetServer, WriteRequest,
};
use rustls::{ServerConnection, StreamOwned};
use tls_support::{make_ca, make_named_leaf, server_config, Ca, Leaf};

const TENANTS: [&str; 2] = ["tenant-a", "tenant-b"];
/// The receiver name the example fleet verifies (`receiver.tls.server_name`).
const RECEIVER_NAME: &str = "thanos-receive.cluster-01.example.net";

/// The subject CN of a DER certificate: the value after the last
/// commonName OID (2.5.4.3), since the issuer's name comes before the
/// subject's. Enough for the certificates this test makes.
fn subject_cn(der: &[u8]) -> Option<String> {
    const CN_OID: [u8; 5] = [0x06, 0x03, 0x55, 0x04, 0x03];
    let at = der.windows(CN_OID.len()).rposition(|w| w == CN_OID)? + CN_OID.len();
    let (tag, len) = (*der.get(at)?, usize::from(*der.get(at + 1)?));
    // UTF8String, PrintableString; short-form lengths only.
    if !matches!(tag, 0x0c | 0x13) || len >= 0x80 {
        return None;
    }
    String::from_utf8(der.get(at + 2..at + 2 + len)?.to_vec()).ok()
}

/// One remote-write POST as the receiver saw it.
struct Seen {
    /// Subject CN of the client certificate the connection presented.
    client_cn: Option<String>,
    tenant_header: Option<String>,
    request: Result<WriteRequest, String>,
}

/// An HTTPS remote-write receiver that requires a client certificate
/// signed by `client_ca` and records every POST with the peer's identity.
struct TenantReceiver {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    refused_handshakes: Arc<AtomicU64>,
    _server: LoopbackServer,
}

impl TenantReceiver {
    fn start(server: &Leaf, client_ca: &Ca) -> TenantReceiver {
        let config = server_config(server, Some(client_ca));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let refused_handshakes = Arc::new(AtomicU64::new(0));
        let (log, refused) = (seen.clone(), refused_handshakes.clone());
        // One thread per connection: two agents write at once.
        let server = LoopbackServer::start("127.0.0.1:0", move |s, stop| {
            let _ = s.set_nonblocking(false);
            let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
            let tls = StreamOwned::new(ServerConnection::new(config.clone()).unwrap(), s);
            serve_tls(tls, &log, &refused, stop);
        });
        TenantReceiver {
            port: server.port(),
            seen,
            refused_handshakes,
            _server: server,
        }
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

fn serve_tls(
    mut tls: StreamOwned<ServerConnection, std::net::TcpStream>,
    log: &Mutex<Vec<Seen>>,
    refused: &AtomicU64,
    stop: &AtomicBool,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    while !stop.load(Ordering::Relaxed) {
        let n = match tls.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => {
                if tls.conn.is_handshaking() {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let header = |name: &str| {
                head.lines().skip(1).find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                })
            };
            let len: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            if buf.len() < end + 4 + len {
                break;
            }
            let body: Vec<u8> = buf.drain(..end + 4 + len).skip(end + 4).collect();
            let client_cn = tls
                .conn
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| subject_cn(c));
            log.lock().unwrap().push(Seen {
                client_cn,
                tenant_header: header("thanos-tenant"),
                request: wire::decode_snappy(&body),
            });
            let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            let _ = tls.flush();
        }
    }
}

/// `outpostc` built from this workspace into the agent's target directory
/// (a no-op when fresh), so the plans come from the compiler of this tree.
fn outpostc() -> PathBuf {
    let agent = Path::new(env!("CARGO_BIN_EXE_outpost"));
    let target_dir = agent
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/outpost");
    let status = Command::new(option_env!("CARGO").unwrap_or("cargo"))
        .args(["build", "--quiet", "-p", "outpost-compiler", "--bin", "outpostc"])
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build for outpostc");
    assert!(status.success(), "cargo build -p outpost-compiler failed");
    let compiler = agent.with_file_name("outpostc");
    assert!(compiler.exists(), "no outpostc at {}", compiler.display());
    compiler
}

/// `examples/fleet.yaml` with every place that names the outside world
/// moved to loopback and the test's directories; `replace` panics if the
/// example no longer has the text, so the copy cannot silently drift.
fn loopback_fleet(receiver_port: u16, ksm: &str, tls_dir: &Path, wal_root: &Path) -> String {
    let example = repo_path("examples/fleet.yaml");
    let mut spec = std::fs::read_to_string(&example).unwrap();
    let mut replace = |from: &str, to: &str| {
        assert!(
            spec.contains(from),
            "examples/fleet.yaml no longer contains {from:?}"
        );
        spec = spec.replace(from, to);
    };
    replace(
        &format!("url: https://{RECEIVER_NAME}:19291/api/v1/receive"),
        &format!("url: https://127.0.0.1:{receiver_port}/api/v1/receive"),
    );
    replace("/etc/outpost/tls/", &format!("{}/", tls_dir.display()));
    replace("kube-state-metrics.monitoring.svc:8080", ksm);
    replace(
        "dir: /var/lib/outpost/wal",
        &format!("dir: {}/wal", wal_root.display()),
    );
    replace(
        "dir: /var/lib/outpost/node-wal",
        &format!("dir: {}/node-wal", wal_root.display()),
    );
    // Batches within a second instead of within half a minute.
    replace("scrape_interval: 30s", "scrape_interval: 1s");
    replace("scrape_timeout: 10s", "scrape_timeout: 800ms");
    replace("batch_send_deadline: 10s", "batch_send_deadline: 200ms");
    replace("max_backoff: 5s", "max_backoff: 500ms");
    spec
}

/// The real agent with `secret_dir` mounted on `tls_dir` in its own mount
/// namespace, as a pod sees its namespace's Secret.
fn start_tenant_agent(
    plan: &Path,
    secret_dir: &Path,
    tls_dir: &Path,
    wal_dir: &Path,
    listen_port: u16,
    log: &Path,
) -> ChildGuard {
    // unshare and sh both exec, so the guard's pid is the agent's own.
    ChildGuard::spawn_logged(
        Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(r#"mount --bind "$1" "$2" && exec "$3" run --plan "$4" --wal-dir "$5" --listen "$6" --node-name edge-node"#)
            .arg("sh")
            .arg(secret_dir)
            .arg(tls_dir)
            .arg(outpost!().binary())
            .arg(plan)
            .arg(wal_dir)
            .arg(format!("127.0.0.1:{listen_port}")),
        log,
    )
}

fn write_secret(dir: &Path, ca_pem: &str, cert: Option<&Leaf>, key_of: &Leaf) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("ca.crt"), ca_pem).unwrap();
    if let Some(cert) = cert {
        std::fs::write(dir.join("client.crt"), &cert.pem).unwrap();
    }
    std::fs::write(dir.join("client.key"), &key_of.key_pem).unwrap();
}

fn external_labels(plan: &Plan) -> BTreeMap<String, String> {
    plan.external_labels
        .iter()
        .map(|l| (plan.str(l.name).to_string(), plan.str(l.value).to_string()))
        .collect()
}

#[test]
fn each_tenant_writes_with_its_own_certificate_and_strangers_are_refused() {
    if let Some(why) = cannot_unshare_mounts() {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let receiver_ca = make_ca("receiver CA");
    let tenant_ca = make_ca("cluster-02 tenants CA");
    let rogue_ca = make_ca("rogue CA");
    let receiver = TenantReceiver::start(&make_named_leaf(&receiver_ca, RECEIVER_NAME), &tenant_ca);
    let ksm = TargetServer::start(
        "# TYPE kube_pod_info gauge\n\
         kube_pod_info{namespace=\"monitoring-tenant-a\",pod=\"app-a-0\",node=\"node-a1\"} 1\n\
         kube_pod_info{namespace=\"monitoring-tenant-b\",pod=\"app-b-0\",node=\"node-b1\"} 1\n"
            .to_string(),
    );

    // The shared path in the plans, and one Secret per tenant.
    let tls_dir = root.join("tls");
    std::fs::create_dir_all(&tls_dir).unwrap();
    let mut certs = BTreeMap::new();
    for tenant in TENANTS {
        let leaf = make_named_leaf(&tenant_ca, tenant);
        write_secret(
            &root.join("secrets").join(tenant),
            &receiver_ca.pem,
            Some(&leaf),
            &leaf,
        );
        certs.insert(tenant, leaf);
    }

    let spec = root.join("fleet.yaml");
    std::fs::write(
        &spec,
        loopback_fleet(receiver.port, &ksm.address(), &tls_dir, &root.join("var")),
    )
    .unwrap();
    let out = Command::new(outpostc())
        .arg("compile")
        .arg(&spec)
        .arg("--output")
        .arg(root.join("plans"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "outpostc compile: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan_path = |tenant: &str| root.join("plans/cluster-02").join(tenant).join("cluster.plan");

    // 1. Both tenants at once, each with its own Secret.
    let mut agents = Vec::new();
    let mut labels = BTreeMap::new();
    for tenant in TENANTS {
        let plan = plan::decode(&std::fs::read(plan_path(tenant)).unwrap()).unwrap();
        let cert = plan
            .receiver
            .tls
            .as_ref()
            .and_then(|t| t.cert_file)
            .map(|f| plan.str(f));
        assert_eq!(
            cert.map(PathBuf::from),
            Some(tls_dir.join("client.crt")),
            "{tenant}'s plan names the shared certificate path"
        );
        let header = plan
            .receiver
            .tenant_header
            .map(|h| (plan.str(h.name), plan.str(h.value)));
        assert_eq!(
            header,
            Some(("THANOS-TENANT", tenant)),
            "{tenant}'s tenant header"
        );
        labels.insert(tenant, external_labels(&plan));
        let port = free_port();
        let log = root.join(format!("{tenant}.log"));
        let agent = start_tenant_agent(
            &plan_path(tenant),
            &root.join("secrets").join(tenant),
            &tls_dir,
            &root.join("wal").join(tenant),
            port,
            &log,
        );
        agents.push((tenant, agent, port, log));
    }
    let per_tenant = |min: usize| {
        let seen = receiver.seen.lock().unwrap();
        TENANTS
            .iter()
            .all(|t| seen.iter().filter(|s| s.client_cn.as_deref() == Some(*t)).count() >= min)
    };
    wait_for("4 writes from each tenant", Duration::from_secs(30), || {
        for (tenant, agent, _, log) in agents.iter_mut() {
            assert!(
                agent.is_running(),
                "{tenant}'s agent exited\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        per_tenant(4).then_some(())
    });
    for (tenant, agent, port, _) in agents.iter_mut() {
        let body = get_metrics(*port).expect("tenant agent /metrics");
        let failed = metric_sum(&body, "prometheus_remote_storage_samples_failed_total", &[]);
        assert_eq!(failed, 0.0, "{tenant} failed samples\n{body}");
        agent.terminate(Duration::from_secs(15)).expect("exit on SIGTERM");
    }
    let accepted = receiver.count();
    let mut samples_per_tenant: BTreeMap<&str, usize> = BTreeMap::new();
    let mut tenant_ksm_namespaces: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (i, s) in receiver.seen.lock().unwrap().iter().enumerate() {
        let cn = s
            .client_cn
            .as_deref()
            .unwrap_or_else(|| panic!("POST #{i} without a client certificate"));
        let tenant = *TENANTS
            .iter()
            .find(|t| **t == cn)
            .unwrap_or_else(|| panic!("POST #{i} from certificate CN {cn}"));
        assert_eq!(
            s.tenant_header.as_deref(),
            Some(tenant),
            "POST #{i}: certificate of {tenant}, THANOS-TENANT {:?}",
            s.tenant_header
        );
        let request = s
            .request
            .as_ref()
            .unwrap_or_else(|e| panic!("POST #{i} from {tenant}: {e}"));
        for series in &request.timeseries {
            for (name, value) in &labels[tenant] {
                assert_eq!(
                    series.label(name),
                    Some(value.as_str()),
                    "POST #{i} from {tenant}: {}",
                    series.key()
                );
            }
            if let Some(ns) = series.label("namespace") {
                tenant_ksm_namespaces
                    .entry(tenant)
                    .or_default()
                    .insert(ns.to_string());
            }
            *samples_per_tenant.entry(tenant).or_default() += series.samples.len();
        }
    }
    for tenant in TENANTS {
        assert_eq!(labels[tenant].get("tenant").map(String::as_str), Some(tenant));
        // tenant_filter: a tenant's agent keeps only its own namespaces.
        let own = format!("monitoring-{tenant}");
        if let Some(namespaces) = tenant_ksm_namespaces.get(tenant) {
            assert!(
                namespaces.iter().all(|n| *n == own),
                "{tenant} sent namespaces {namespaces:?}"
            );
        }
        assert!(
            samples_per_tenant.get(tenant).is_some_and(|n| *n > 0),
            "{tenant} sent samples"
        );
    }

    // 2. Strangers: tenant-a's plan and key, but no certificate (the plan
    // without cert/key files), or a tenant-a certificate from another CA.
    let mut no_cert_plan = plan::decode(&std::fs::read(plan_path("tenant-a")).unwrap()).unwrap();
    let tls = no_cert_plan.receiver.tls.as_mut().unwrap();
    tls.cert_file = None;
    tls.key_file = None;
    let no_cert_path = root.join("tenant-a-no-cert.plan");
    std::fs::write(&no_cert_path, plan::encode(&no_cert_plan).unwrap()).unwrap();
    let forged = make_named_leaf(&rogue_ca, "tenant-a");
    let forged_secret = root.join("secrets/forged");
    write_secret(&forged_secret, &receiver_ca.pem, Some(&forged), &forged);
    // One at a time, so each refusal the receiver counts is this agent's.
    let mut stranger_results = Vec::new();
    for (name, plan, secret) in [
        ("no-cert", no_cert_path.clone(), root.join("secrets/tenant-a")),
        ("forged", plan_path("tenant-a"), forged_secret.clone()),
    ] {
        let refused_before = receiver.refused_handshakes.load(Ordering::Relaxed);
        let port = free_port();
        let log = root.join(format!("{name}.log"));
        let mut agent =
            start_tenant_agent(&plan, &secret, &tls_dir, &root.join("wal").join(name), port, &log);
        let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
        let refused_since = || receiver.refused_handshakes.load(Ordering::Relaxed) - refused_before;
        let retried = |body: &str| metric_sum(body, "prometheus_remote_storage_samples_retried_total", &[]);
        wait_for(
            &format!("the {name} agent refused twice"),
            Duration::from_secs(30),
            || {
                assert!(agent.is_running(), "the {name} agent exited\n{}", log_text());
                let body = get_metrics(port)?;
                (refused_since() >= 2 && retried(&body) > 0.0).then_some(())
            },
        );
        // Still running and still refused a while later.
        thread::sleep(Duration::from_secs(1));
        let body = get_metrics(port).expect("stranger /metrics");
        assert!(agent.is_running(), "the {name} agent exited\n{}", log_text());
        let succeeded = metric_sum(&body, "prometheus_remote_storage_succeeded_samples_total", &[]);
        assert_eq!(succeeded, 0.0, "the {name} agent got samples through\n{body}");
        assert_eq!(
            receiver.count(),
            accepted,
            "the receiver accepted a POST from the {name} agent"
        );
        let status = agent.terminate(Duration::from_secs(15)).expect("exit on SIGTERM");
        assert!(
            status.success(),
            "the {name} agent's exit status {status:?}\n{}",
            log_text()
        );
        stranger_results.push((name, refused_since(), retried(&body)));
    }
    eprintln!(
        "accepted POSTs {accepted}, samples per tenant {samples_per_tenant:?}, external labels {labels:?}, \
         KSM namespaces kept per tenant {tenant_ksm_namespaces:?}; strangers (name, refused handshakes, retried samples) {stranger_results:?}"
    );
}
