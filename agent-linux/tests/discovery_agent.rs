//! The `outpost` binary runs Kubernetes pod discovery against test-support's API fixture
//! (`KubeApi`, objects built from k8s-openapi types) and scrapes what it finds: real loopback
//! exposition servers, one per pod (every pod's IP is 127.0.0.1, its `prometheus.io/port`
//! annotation names its server). It ships to a real Prometheus 2.42, where every check is a
//! query:
//!
//! - the annotated pods of the agent's own node are scraped, their samples carrying exactly
//!   the labels the `prometheus.io` preset gives (`job`, `instance`, `namespace`, `pod`);
//!   a pod of another node and a pod without the annotation are not;
//! - a deleted pod's series get staleness markers: they vanish from an instant query at once,
//!   where without markers they would stay for Prometheus's five-minute lookback;
//! - an added pod is scraped without a restart;
//! - after the fixture forgets its history (`410 Gone`), the agent lists again and its set is
//!   still right, including a pod added meanwhile;
//! - while the API server answers `500`, the targets found stay scraped and the failures are
//!   counted on `/metrics`;
//! - `/api/v1/targets` shows each discovered target's `__meta_kubernetes_*` labels and lists
//!   the pod relabeling dropped under `droppedTargets`;
//! - after a SIGHUP reload the discovered targets go on and follow the API server.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, ContainerPort, Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use outpost_compiler::analyze;
use outpost_core::plan::Role;
use outpost_test_support::kube_api::KubeApi;
use outpost_test_support::*;
use serde_json::Value;

type Labels = BTreeMap<String, String>;

fn pod(name: &str, node: &str, scrape_port: Option<u16>) -> Value {
    let mut annotations = BTreeMap::new();
    if let Some(port) = scrape_port {
        annotations.insert("prometheus.io/scrape".to_string(), "true".to_string());
        annotations.insert("prometheus.io/port".to_string(), port.to_string());
    }
    let p = Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("apps".into()),
            uid: Some(format!("uid-{name}")),
            labels: Some(BTreeMap::from([("app".to_string(), name.to_string())])),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.into()),
            containers: vec![Container {
                name: "main".into(),
                image: Some("example/app:1".into()),
                ports: Some(vec![ContainerPort {
                    name: Some("http".into()),
                    container_port: 8080,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            pod_ip: Some("127.0.0.1".into()),
            host_ip: Some("127.0.0.1".into()),
            ..Default::default()
        }),
    };
    serde_json::to_value(p).unwrap()
}

fn spec(api: &str, write_url: &str) -> String {
    format!(
        r#"
receiver:
  url: {write_url}
defaults:
  scrape_interval: 1s
  scrape_timeout: 500ms
  limits: {{body_size: 16Ki, samples: 100}}
scrape_jobs:
  - name: apps
    scope: node
    discovery:
      role: pod
      max_targets: 20
      api_server: {api}
    relabel_preset: prometheus.io
clusters:
  - name: edge-1
    role: edge
"#
    )
}

/// The node agent's plan of [`spec`], written to `dir`.
fn node_plan(dir: &Path, api: &str, write_url: &str) -> std::path::PathBuf {
    let a = analyze("kube.yaml", &spec(api, write_url));
    assert!(!a.has_errors(), "{}", a.render_text(100));
    let node = a.plans.iter().find(|p| p.role == Role::Node).unwrap();
    write_plan(dir, "node.plan", &node.plan)
}

/// The label sets of an instant query's result.
fn series(prom: &Prometheus, q: &str) -> Vec<Labels> {
    let v: Value = serde_json::from_str(&prom.query(q)).unwrap();
    let mut out: Vec<Labels> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["metric"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect()
        })
        .collect();
    out.sort();
    out
}

/// What a discovered pod's samples must carry, exactly: the preset's labels and the
/// cluster's external labels.
fn expected(name: &str, port: u16) -> Labels {
    [
        ("__name__", "demo_value"),
        ("cluster", "edge-1"),
        ("role", "edge"),
        ("job", "apps"),
        ("instance", &format!("127.0.0.1:{port}")),
        ("namespace", "apps"),
        ("pod", name),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Waits until Prometheus shows exactly the pods `want` (name and port).
fn wait_for_pods(prom: &Prometheus, stage: &str, want: &[(&str, u16)]) {
    let mut want: Vec<Labels> = want.iter().map(|(n, p)| expected(n, *p)).collect();
    want.sort();
    let mut last = Vec::new();
    let seen = (0..200).find_map(|_| {
        last = series(prom, "demo_value{job=\"apps\"}");
        if last == want {
            return Some(());
        }
        std::thread::sleep(Duration::from_millis(250));
        None
    });
    assert!(seen.is_some(), "{stage}: want {want:#?}\ngot {last:#?}");
}

fn agent_metric(port: u16, series: &str) -> f64 {
    let page = get_metrics(port).expect("the agent answers /metrics");
    metric_value(&page, series).unwrap_or(0.0)
}

#[test]
fn discovered_pods_are_scraped_and_follow_adds_deletes_relists_and_outages() {
    let dir = tempfile::tempdir().unwrap();
    let Some(prom) = Prometheus::start(dir.path()) else {
        return;
    };
    let api = KubeApi::start();
    // One exposition server per pod, each telling its own value.
    let servers: Vec<TargetServer> = (0..6)
        .map(|i| TargetServer::start(format!("# TYPE demo_value gauge\ndemo_value {i}\n")))
        .collect();
    let port = |i: usize| servers[i].port;
    api.apply("pods", pod("web-0", "node-a", Some(port(0))));
    api.apply("pods", pod("web-1", "node-a", Some(port(1))));
    api.apply("pods", pod("web-2", "node-a", Some(port(2))));
    api.apply("pods", pod("quiet", "node-a", None));
    api.apply("pods", pod("elsewhere", "node-b", Some(port(5))));

    let plan = node_plan(dir.path(), &api.url(), &prom.write_url());
    let log = dir.path().join("outpost.log");
    let listen = free_port();
    let wal = dir.path().join("wal");
    let mut agent = outpost!().start_with(
        &plan,
        listen,
        "node-a",
        &log,
        &["--wal-dir", wal.to_str().unwrap()],
    );
    let log_of = || log_text(&log);

    wait_for_pods(
        &prom,
        "listed",
        &[("web-0", port(0)), ("web-1", port(1)), ("web-2", port(2))],
    );
    let requests = api.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.contains("/api/v1/pods?") && r.contains("fieldSelector=spec.nodeName%3Dnode-a")),
        "the agent watches its own node's pods only: {requests:?}"
    );

    // The targets page: discovered labels of a kept target, and the dropped pod.
    let (status, body) = http_get(listen, "/api/v1/targets?scrapePool=apps").unwrap();
    assert_eq!(status, 200, "{body}");
    let page: Value = serde_json::from_str(&body).unwrap();
    let active = page["data"]["activeTargets"].as_array().unwrap();
    assert_eq!(active.len(), 3, "{body}");
    let web0 = active
        .iter()
        .find(|t| t["labels"]["pod"] == "web-0")
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(web0["discoveredLabels"]["__meta_kubernetes_pod_name"], "web-0");
    assert_eq!(
        web0["discoveredLabels"]["__meta_kubernetes_pod_node_name"],
        "node-a"
    );
    assert_eq!(web0["discoveredLabels"]["__address__"], "127.0.0.1:8080");
    assert_eq!(web0["scrapeUrl"], format!("http://127.0.0.1:{}/metrics", port(0)));
    let dropped = page["data"]["droppedTargets"].as_array().unwrap();
    let dropped_pods: BTreeSet<&str> = dropped
        .iter()
        .map(|t| {
            t["discoveredLabels"]["__meta_kubernetes_pod_name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(dropped_pods, BTreeSet::from(["quiet"]), "{body}");

    // A deleted pod's series go stale at once; an added one is scraped.
    api.delete("pods", "apps", "web-2");
    api.apply("pods", pod("web-3", "node-a", Some(port(3))));
    wait_for_pods(
        &prom,
        "after a delete and an add",
        &[("web-0", port(0)), ("web-1", port(1)), ("web-3", port(3))],
    );
    assert!(
        series(&prom, "up{job=\"apps\",pod=\"web-2\"}").is_empty(),
        "the deleted pod's up series is stale too"
    );
    assert!(
        agent_metric(listen, "outpost_discovery_events_total{job=\"apps\"}") >= 2.0,
        "{}",
        log_of()
    );

    // History forgotten: the next watch is answered 410, the agent lists again and finds
    // the pod added in between.
    api.compact();
    api.apply("pods", pod("web-4", "node-a", Some(port(4))));
    api.compact();
    wait_for_pods(
        &prom,
        "after 410",
        &[
            ("web-0", port(0)),
            ("web-1", port(1)),
            ("web-3", port(3)),
            ("web-4", port(4)),
        ],
    );
    assert!(api.gone() >= 1);
    assert!(agent_metric(listen, "outpost_discovery_relists_total{job=\"apps\"}") >= 1.0);

    // The API server fails: what was found stays scraped, and the failures are counted.
    api.set_failing(true);
    let failures = "outpost_discovery_failures_total{job=\"apps\",reason=\"http_status\"}";
    wait_for("discovery failures counted", Duration::from_secs(30), || {
        (agent_metric(listen, failures) >= 2.0).then_some(())
    });
    let scrapes = |i: usize| {
        let s = format!(
            "outpost_target_scrapes_total{{job=\"apps\",instance=\"127.0.0.1:{}\"}}",
            port(i)
        );
        agent_metric(listen, &s)
    };
    let then = scrapes(0);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        scrapes(0) >= then + 2.0,
        "scrapes go on while the API server fails"
    );
    wait_for_pods(
        &prom,
        "during the outage",
        &[
            ("web-0", port(0)),
            ("web-1", port(1)),
            ("web-3", port(3)),
            ("web-4", port(4)),
        ],
    );
    api.set_failing(false);
    api.delete("pods", "apps", "web-0");
    wait_for_pods(
        &prom,
        "after the outage",
        &[("web-1", port(1)), ("web-3", port(3)), ("web-4", port(4))],
    );
    assert_eq!(
        agent_metric(listen, "outpost_discovery_targets{job=\"apps\"}"),
        3.0
    );

    // A reload lists afresh; the targets found are scraped on meanwhile, and a pod
    // deleted after it still goes stale.
    agent.signal(Signal::HUP);
    wait_for("the reload", Duration::from_secs(20), || {
        log_of().contains("plan reloaded").then_some(())
    });
    api.delete("pods", "apps", "web-1");
    wait_for_pods(&prom, "after a reload", &[("web-3", port(3)), ("web-4", port(4))]);
    assert!(
        agent_metric(listen, "outpost_discovery_relists_total{job=\"apps\"}") >= 1.0,
        "counters go on across a reload"
    );

    agent.terminate(Duration::from_secs(10));
    let log = log_of();
    assert!(!log.contains("level=error"), "{log}");
}

/// Kilobytes of resident memory of process `pid`.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A hundred annotated pods of the agent's node, each its own exposition server: all are
/// discovered and scraped (up on `/api/v1/targets`). Prints the agent's RSS before the pods
/// exist (discovery synced, nothing found) and with the hundred, for the issue's memory
/// note; run it with `OUTPOST_TEST_COMMAND` naming a release build to measure that.
#[test]
fn a_hundred_discovered_pods_are_all_scraped() {
    const PODS: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let receiver = RecordingReceiver::start(Box::new(|_| (200, Vec::new())));
    let api = KubeApi::start();
    let body = "# TYPE demo_value gauge\ndemo_value{kind=\"a\"} 1\ndemo_value{kind=\"b\"} 2\n";
    let servers: Vec<TargetServer> = (0..PODS).map(|_| TargetServer::start(body)).collect();
    let spec = spec(&api.url(), &receiver.url()).replace("max_targets: 20", "max_targets: 100");
    let a = analyze("kube.yaml", &spec);
    assert!(!a.has_errors(), "{}", a.render_text(100));
    let node = a.plans.iter().find(|p| p.role == Role::Node).unwrap();
    let plan = write_plan(dir.path(), "node.plan", &node.plan);
    let listen = free_port();
    let wal = dir.path().join("wal");
    let log = dir.path().join("outpost.log");
    let mut agent = outpost!().start_with(
        &plan,
        listen,
        "node-a",
        &log,
        &["--wal-dir", wal.to_str().unwrap()],
    );
    wait_for("discovery synced", Duration::from_secs(30), || {
        let page = get_metrics(listen)?;
        (metric_value(&page, "outpost_discovery_synced{job=\"apps\"}") == Some(1.0)).then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    let before = rss_kib(agent.pid());
    for (i, s) in servers.iter().enumerate() {
        api.apply("pods", pod(&format!("web-{i}"), "node-a", Some(s.port)));
    }
    let up = || {
        let (_, body) = http_get(listen, "/api/v1/targets?scrapePool=apps&state=active")?;
        let page: Value = serde_json::from_str(&body).ok()?;
        let targets = page["data"]["activeTargets"].as_array()?.clone();
        Some(targets.iter().filter(|t| t["health"] == "up").count())
    };
    wait_for("every pod scraped", Duration::from_secs(60), || {
        (up() == Some(PODS)).then_some(())
    });
    // A few more rounds of scrapes and sends.
    std::thread::sleep(Duration::from_secs(5));
    let with = rss_kib(agent.pid());
    assert_eq!(
        agent_metric(listen, "outpost_discovery_targets{job=\"apps\"}"),
        PODS as f64
    );
    eprintln!("agent RSS: {before} KiB with discovery synced and no pods, {with} KiB with {PODS} discovered pods scraped");
    agent.terminate(Duration::from_secs(10));
}
