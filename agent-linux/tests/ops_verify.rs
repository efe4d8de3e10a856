//! `outpostc verify` against a real deployment in miniature: all eight
//! golden plans of examples/plans run as real agents (receiver rewritten to
//! a loopback Prometheus 2.42, 1 s intervals, the kubelet/cAdvisor and
//! kube-state-metrics targets pointed at loopback servers), and verify
//! reads examples/fleet.yaml. First every row passes; then one agent is
//! stopped and one has half its batches refused by the ingress in front of
//! the receiver, and verify must name exactly those two.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use outpost_compiler::verify::{self, ApiOptions, QueryApi, Report, Thresholds};
use outpost_core::plan::{Auth, Role, Scheme};
use outpost_test_support::*;

/// The ingress in front of the receiver: forwards every POST to it, except
/// that while `refuse` is set every second one is answered 400.
struct RefusingProxy {
    port: u16,
    refuse: Arc<AtomicBool>,
    refused: Arc<AtomicU64>,
    _server: LoopbackServer,
}

impl RefusingProxy {
    fn start(upstream: u16) -> RefusingProxy {
        let refuse = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicU64::new(0));
        let posts = AtomicU64::new(0);
        let (on, count) = (refuse.clone(), refused.clone());
        let server = LoopbackServer::start("127.0.0.1:0", move |s, stop| {
            serve_connection(s, stop, |req| {
                let n = posts.fetch_add(1, Ordering::SeqCst);
                if on.load(Ordering::SeqCst) && n.is_multiple_of(2) {
                    count.fetch_add(1, Ordering::SeqCst);
                    return (400, Vec::new(), b"refused at the ingress".to_vec());
                }
                forward(upstream, &req)
            })
        });
        RefusingProxy {
            port: server.port(),
            refuse,
            refused,
            _server: server,
        }
    }
}

/// Sends one request on to the receiver and gives its answer back.
fn forward(upstream: u16, req: &HttpRequest) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return (503, Vec::new(), Vec::new());
    };
    let mut head = format!(
        "{} {} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n",
        req.method,
        req.path,
        req.body.len()
    );
    for name in [
        "content-type",
        "content-encoding",
        "x-prometheus-remote-write-version",
    ] {
        if let Some(v) = req.headers.get(name) {
            head.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    head.push_str("\r\n");
    let mut answer = Vec::new();
    let sent = s
        .write_all(head.as_bytes())
        .and_then(|_| s.write_all(&req.body))
        .and_then(|_| s.read_to_end(&mut answer));
    let text = String::from_utf8_lossy(&answer);
    let status = text.get(9..12).and_then(|c| c.parse().ok());
    match (sent, status) {
        (Ok(_), Some(status)) => {
            let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
            (status, Vec::new(), body.as_bytes().to_vec())
        }
        _ => (503, Vec::new(), Vec::new()),
    }
}

const KSM_BODY: &str = "# TYPE kube_pod_info gauge\n\
kube_pod_info{namespace=\"monitoring-tenant-a\",pod=\"a\",node=\"node-a1\"} 1\n\
kube_pod_info{namespace=\"monitoring-tenant-b\",pod=\"b\",node=\"node-b1\"} 1\n\
kube_pod_info{namespace=\"monitoring\",pod=\"ksm\",node=\"node-1\"} 1\n";

const KUBELET_BODY: &str = "# TYPE kubelet_running_pods gauge\nkubelet_running_pods 3\n";

/// The one-line-per-row view of a report, for assertion messages.
fn failing(report: &Report) -> BTreeSet<(String, Option<String>, Option<&'static str>)> {
    report
        .failing()
        .iter()
        .map(|r| (r.cluster.clone(), r.tenant.clone(), r.role.map(Role::as_str)))
        .collect()
}

#[test]
fn verify_names_exactly_the_stopped_and_the_dropping_agent() {
    let dir = tempfile::tempdir().unwrap();
    let Some(prom) = Prometheus::start(&dir.path().join("prom")) else {
        return;
    };
    let proxy = RefusingProxy::start(prom.port);
    let ksm = TargetServer::start(KSM_BODY.to_string());
    let kubelet = TargetServer::start(KUBELET_BODY.to_string());
    let fleet = repo_path("examples/fleet.yaml");
    let analysis = outpost_compiler::load_spec(&fleet).unwrap();
    assert!(!analysis.has_errors(), "{}", analysis.render_text(100));

    let mut agents = Vec::new();
    for agent in &analysis.plans {
        let rel = agent.rel_path();
        let name = rel.display().to_string().replace(['/', '.'], "-");
        let mut plan = golden_plan(&rel.display().to_string());
        let dropping = agent.cluster == "cluster-02"
            && agent.tenant.as_deref() == Some("tenant-b")
            && agent.role == Role::Cluster;
        let receiver = if dropping {
            format!("http://127.0.0.1:{}/api/v1/write", proxy.port)
        } else {
            prom.write_url()
        };
        to_loopback(&mut plan, &receiver, &dir.path().join(format!("wal-{name}")));
        let ksm_target = intern(&mut plan, &ksm.address());
        let kubelet_target = intern(&mut plan, &kubelet.address());
        let ksm_name = intern(&mut plan, "kube-state-metrics");
        for job in &mut plan.scrape_jobs {
            let target = if job.name == ksm_name {
                ksm_target
            } else {
                kubelet_target
            };
            job.targets = vec![target];
            job.scheme = Scheme::Http;
            job.tls = None;
            job.bearer_token_file = None;
        }
        assert_eq!(plan.receiver.auth, Auth::None);
        let path = write_plan(dir.path(), &format!("{name}.plan"), &plan);
        let node_name = match agent.role {
            Role::Node => format!("{name}-node-1"),
            Role::Cluster => "outpost-cluster-0".to_string(),
        };
        let log = dir.path().join(format!("{name}.log"));
        let child = outpost!().start(&path, free_port(), &node_name, &log);
        agents.push((agent.cluster.clone(), agent.tenant.clone(), agent.role, child));
    }
    assert_eq!(agents.len(), 8, "4 clusters or tenants x 2 roles");

    let api = QueryApi::new(&ApiOptions {
        url: format!("http://127.0.0.1:{}", prom.port),
        ..ApiOptions::default()
    })
    .unwrap();
    // The agents were rewritten to 1 s intervals; the spec says 30 s.
    let thresholds = Thresholds {
        window: "1m".into(),
        max_age_s: Some(5.0),
        ..Thresholds::default()
    };
    let run = || verify::verify(&analysis.plans, &api, &thresholds).unwrap();

    let healthy = wait_for("every row of verify to pass", Duration::from_secs(60), || {
        let r = run();
        (r.failed() == 0).then_some(r)
    });
    // Per cluster or tenant: two agent rows, node-exporter, kubelet, cadvisor, kube-state-metrics.
    assert_eq!(healthy.rows.len(), 4 * 6, "{}", healthy.render_text());
    let text = healthy.render_text();
    // The agents export their receiver clock offset, and it is checked.
    assert!(!text.contains("clock offset not exported"), "{text}");
    assert!(
        text.ends_with("24 rows: 24 ok, 0 failed (rates over 1m)\n"),
        "{text}"
    );

    let stopped = agents
        .iter_mut()
        .find(|(c, t, role, _)| c == "cluster-04" && t.is_none() && *role == Role::Node)
        .unwrap();
    assert!(stopped.3.terminate(Duration::from_secs(5)).is_some());
    proxy.refuse.store(true, Ordering::SeqCst);

    let expected: BTreeSet<_> = [
        (
            "cluster-02".to_string(),
            Some("tenant-b".to_string()),
            Some("cluster"),
        ),
        ("cluster-04".to_string(), None, Some("node")),
    ]
    .into();
    let mut last = String::new();
    let report = wait_for("verify to name the two agents", Duration::from_secs(40), || {
        let r = run();
        last = r.render_text();
        let agent_rows_fail = r.failing().iter().filter(|row| row.job.is_none()).count() == 2;
        (failing(&r) == expected && agent_rows_fail).then_some(r)
    });
    assert!(proxy.refused.load(Ordering::SeqCst) > 0);
    let text = report.render_text();
    let line = |cluster: &str, tenant: &str, role: &str| {
        text.lines()
            .find(|l| {
                let cells: Vec<&str> = l.split_whitespace().collect();
                cells.len() > 4 && cells[..4] == [cluster, tenant, role, "-"]
            })
            .unwrap_or_else(|| panic!("no row {cluster} {tenant} {role}: {text}"))
            .to_string()
    };
    let dropping = line("cluster-02", "tenant-b", "cluster");
    assert!(dropping.contains("FAIL"), "{dropping}");
    assert!(
        dropping.contains("outpost-cluster-0:") && dropping.contains("(reason http_4xx)"),
        "{dropping}"
    );
    let stopped = line("cluster-04", "-", "node");
    assert!(
        stopped.contains("FAIL") && stopped.contains(" stale: newest sample "),
        "{stopped}"
    );
    // Its jobs are stale too; every other cluster's rows still pass.
    for job in ["node-exporter", "kubelet", "cadvisor"] {
        let row = report
            .rows
            .iter()
            .find(|r| r.cluster == "cluster-04" && r.job.as_deref() == Some(job))
            .unwrap();
        assert!(!row.ok(), "{job}: {text}");
    }
    assert_eq!(
        report.failed(),
        5,
        "two agent rows and the stopped agent's three jobs: {last}"
    );
    let json = report.render_json();
    assert_eq!(json["failed"], 5);
    assert_eq!(json["ok"], 19);
    let dropping_json = json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["tenant"] == "tenant-b" && r["role"] == "cluster" && r["job"].is_null())
        .unwrap();
    assert_eq!(dropping_json["status"], "fail");
}
