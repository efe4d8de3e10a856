//! The `outpost` agent's Kubernetes discovery against vmagent's `kubernetes_sd_configs`, both
//! pointed at one API-server fixture (test-support's `KubeApi`, objects built from k8s-openapi
//! types). Debian builds Prometheus 2.42 without Kubernetes discovery, so vmagent 1.79, which
//! gives Prometheus's `__meta_kubernetes_*` labels, is the peer; the labels that differ
//! between the two versions are named in [`VERSION_DIFFERENCES`] and left out.
//!
//! Compared through both agents' `/api/v1/targets`: the same targets with the same labels
//! before relabeling (`discoveredLabels`, kept and dropped) and after (`labels`), for
//! node-local pods with the `prometheus.io` preset (a node agent) and for CoreDNS's
//! EndpointSlices (a cluster agent); then the same after adds, updates and deletes, and after
//! a `410 Gone` that makes outpost list again.
//!
//! The outpost agents run through every stage; a fresh vmagent is started for each stage once
//! the fixture holds its objects. vmagent 1.79 applies Kubernetes changes on a 30 s tick and
//! can keep labels from a churn it saw half applied, and it keeps dropped targets of objects
//! that changed since; one started after the churn can do neither, so each stage compares
//! final states. Skipped when vmagent is not installed.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Pod, PodSpec, PodStatus, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use outpost_compiler::analyze;
use outpost_core::plan::Role;
use outpost_test_support::kube_api::KubeApi;
use outpost_test_support::*;
use serde_json::Value;

type Labels = BTreeMap<String, String>;

fn map(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn meta(ns: &str, name: &str, labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(ns.into()),
        uid: Some(format!("uid-{ns}-{name}")),
        labels: map(labels),
        annotations: map(annotations),
        ..Default::default()
    }
}

fn container(name: &str, ports: &[(&str, i32)]) -> Container {
    Container {
        name: name.into(),
        image: Some(format!("example/{name}:1")),
        ports: (!ports.is_empty()).then(|| {
            ports
                .iter()
                .map(|(n, p)| ContainerPort {
                    name: Some(n.to_string()),
                    container_port: *p,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                })
                .collect()
        }),
        ..Default::default()
    }
}

fn pod(
    ns: &str,
    name: &str,
    node: &str,
    ip: &str,
    annotations: &[(&str, &str)],
    containers: Vec<Container>,
) -> Value {
    let p = Pod {
        metadata: meta(ns, name, &[("app", name)], annotations),
        spec: Some(PodSpec {
            node_name: Some(node.into()),
            containers,
            init_containers: (name == "quiet").then(|| vec![container("migrate", &[])]),
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            pod_ip: Some(ip.into()),
            host_ip: Some("127.0.0.1".into()),
            ..Default::default()
        }),
    };
    serde_json::to_value(p).unwrap()
}

fn coredns_service(annotation: &str) -> Value {
    let s = Service {
        metadata: meta(
            "kube-system",
            "kube-dns",
            &[("k8s-app", "kube-dns")],
            &[("note", annotation)],
        ),
        spec: Some(ServiceSpec {
            cluster_ip: Some("127.0.2.10".into()),
            type_: Some("ClusterIP".into()),
            ports: Some(vec![
                ServicePort {
                    name: Some("dns".into()),
                    port: 53,
                    protocol: Some("UDP".into()),
                    ..Default::default()
                },
                ServicePort {
                    name: Some("metrics".into()),
                    port: 9153,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    };
    serde_json::to_value(s).unwrap()
}

fn coredns_slice(pods: &[(&str, &str, &str, bool)]) -> Value {
    let s = EndpointSlice {
        metadata: meta(
            "kube-system",
            "kube-dns-x1",
            &[
                ("kubernetes.io/service-name", "kube-dns"),
                (
                    "endpointslice.kubernetes.io/managed-by",
                    "endpointslice-controller.k8s.io",
                ),
            ],
            &[],
        ),
        address_type: "IPv4".into(),
        endpoints: pods
            .iter()
            .map(|(name, node, ip, ready)| Endpoint {
                addresses: vec![ip.to_string()],
                conditions: Some(EndpointConditions {
                    ready: Some(*ready),
                    serving: Some(*ready),
                    terminating: Some(false),
                }),
                node_name: Some(node.to_string()),
                target_ref: Some(ObjectReference {
                    kind: Some("Pod".into()),
                    name: Some(name.to_string()),
                    namespace: Some("kube-system".into()),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect(),
        ports: Some(vec![
            EndpointPort {
                name: Some("dns".into()),
                port: Some(53),
                protocol: Some("UDP".into()),
                ..Default::default()
            },
            EndpointPort {
                name: Some("metrics".into()),
                port: Some(9153),
                protocol: Some("TCP".into()),
                app_protocol: Some("http".into()),
            },
        ]),
    };
    serde_json::to_value(s).unwrap()
}

fn coredns_pod(name: &str, node: &str, ip: &str) -> Value {
    pod(
        "kube-system",
        name,
        node,
        ip,
        &[],
        vec![container("coredns", &[("dns", 53), ("metrics", 9153)])],
    )
}

/// The objects every test starts with.
fn seed(api: &KubeApi) {
    let scrape = ("prometheus.io/scrape", "true");
    api.apply(
        "pods",
        pod(
            "apps",
            "web",
            "node-a",
            "127.0.1.1",
            &[
                scrape,
                ("prometheus.io/port", "9102"),
                ("prometheus.io/path", "/stats"),
            ],
            vec![container("main", &[("http", 8080)])],
        ),
    );
    api.apply(
        "pods",
        pod(
            "apps",
            "tls",
            "node-a",
            "127.0.1.2",
            &[scrape, ("prometheus.io/scheme", "https")],
            vec![container("main", &[("m", 8443)])],
        ),
    );
    // Not annotated, so all dropped: a target per container port, one for a container
    // without ports (the pod's IP alone), one for the init container.
    api.apply(
        "pods",
        pod(
            "apps",
            "quiet",
            "node-a",
            "127.0.1.3",
            &[],
            vec![
                container("main", &[("http", 8080), ("admin", 8081)]),
                container("sidecar", &[]),
            ],
        ),
    );
    api.apply(
        "pods",
        pod(
            "apps",
            "elsewhere",
            "node-b",
            "127.0.1.4",
            &[scrape],
            vec![container("main", &[("http", 8080)])],
        ),
    );
    api.apply("services", coredns_service("one"));
    api.apply("pods", coredns_pod("coredns-1", "node-a", "127.0.1.11"));
    api.apply("pods", coredns_pod("coredns-2", "node-b", "127.0.1.12"));
    api.apply(
        "endpointslices",
        coredns_slice(&[
            ("coredns-1", "node-a", "127.0.1.11", true),
            ("coredns-2", "node-b", "127.0.1.12", false),
        ]),
    );
}

/// Adds, updates and deletes.
fn churn(api: &KubeApi) {
    api.delete("pods", "apps", "tls");
    api.apply(
        "pods",
        pod(
            "apps",
            "fresh",
            "node-a",
            "127.0.1.5",
            &[("prometheus.io/scrape", "true")],
            vec![container("main", &[("http", 8080)])],
        ),
    );
    api.apply(
        "pods",
        pod(
            "apps",
            "quiet",
            "node-a",
            "127.0.1.3",
            &[("prometheus.io/scrape", "true")],
            vec![container("main", &[("http", 8080)])],
        ),
    );
    api.apply("services", coredns_service("two"));
    api.apply("pods", coredns_pod("coredns-3", "node-a", "127.0.1.13"));
    api.apply(
        "endpointslices",
        coredns_slice(&[
            ("coredns-1", "node-a", "127.0.1.11", true),
            ("coredns-3", "node-a", "127.0.1.13", true),
        ]),
    );
    api.delete("pods", "kube-system", "coredns-2");
}

fn spec(api: &str, receiver: &str) -> String {
    format!(
        r#"
receiver:
  url: {receiver}
defaults:
  scrape_interval: 30s
  scrape_timeout: 10s
  limits: {{body_size: 64Ki, samples: 1000}}
scrape_jobs:
  - name: annotated-pods
    scope: node
    discovery:
      role: pod
      max_targets: 20
      api_server: {api}
    relabel_preset: prometheus.io
  - name: coredns
    scope: cluster
    discovery:
      role: endpointslice
      namespaces: [kube-system]
      max_targets: 10
      api_server: {api}
    relabel:
      - source_labels: [__meta_kubernetes_service_name, __meta_kubernetes_endpointslice_port_name]
        regex: kube-dns;metrics
        action: keep
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
clusters:
  - name: edge-1
    role: edge
"#
    )
}

/// The same jobs for vmagent, the preset's rules written out as Prometheus's example
/// configuration has them.
fn peer_config(api: &str) -> String {
    format!(
        r#"
global:
  scrape_interval: 30s
  scrape_timeout: 10s
scrape_configs:
  - job_name: annotated-pods
    kubernetes_sd_configs:
      - role: pod
        api_server: {api}
        selectors:
          - role: pod
            field: spec.nodeName=node-a
    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]
        action: keep
        regex: "true"
      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scheme]
        action: replace
        regex: (https?)
        target_label: __scheme__
      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_path]
        action: replace
        regex: (.+)
        target_label: __metrics_path__
      - source_labels: [__address__, __meta_kubernetes_pod_annotation_prometheus_io_port]
        action: replace
        regex: (.+?)(?::\d+)?;(\d+)
        replacement: $1:$2
        target_label: __address__
      - source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
  - job_name: coredns
    kubernetes_sd_configs:
      - role: endpointslice
        api_server: {api}
        namespaces:
          names: [kube-system]
    relabel_configs:
      - source_labels: [__meta_kubernetes_service_name, __meta_kubernetes_endpointslice_port_name]
        regex: kube-dns;metrics
        action: keep
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
"#
    )
}

/// What one agent found for a job: discovered label sets (kept and dropped) and the kept
/// targets' labels, each sorted.
#[derive(Debug, PartialEq)]
struct Found {
    discovered: Vec<Labels>,
    /// The discovered labels of dropped targets alone.
    dropped: Vec<Labels>,
    kept: Vec<Labels>,
}

fn peer_found(port: u16, job: &str) -> Option<Found> {
    let (status, body) = http_get(port, "/api/v1/targets?state=any")?;
    if status != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(&body).ok()?;
    let labels = |o: &Value| -> Labels {
        let all: Labels = o
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        comparable(&all)
    };
    let ours = |t: &&Value| t["discoveredLabels"]["job"] == job;
    let active: Vec<&Value> = v["data"]["activeTargets"]
        .as_array()?
        .iter()
        .filter(ours)
        .collect();
    let dropped: Vec<&Value> = v["data"]["droppedTargets"]
        .as_array()?
        .iter()
        .filter(ours)
        .collect();
    let mut discovered: Vec<Labels> = active
        .iter()
        .chain(&dropped)
        .map(|t| labels(&t["discoveredLabels"]))
        .collect();
    let mut kept: Vec<Labels> = active.iter().map(|t| labels(&t["labels"])).collect();
    let mut dropped: Vec<Labels> = dropped.iter().map(|t| labels(&t["discoveredLabels"])).collect();
    discovered.sort();
    dropped.sort();
    kept.sort();
    Some(Found {
        discovered,
        dropped,
        kept,
    })
}

/// Labels one side gives and the other does not, left out of the comparison on both sides:
/// outpost follows Prometheus 2.42 (`pod_container_image`, the `serving` and `terminating`
/// endpoint conditions), which vmagent 1.79 predates; vmagent adds EndpointSlice labels and
/// the Service's type and cluster IP to every endpoint.
const VERSION_DIFFERENCES: [&str; 7] = [
    "__meta_kubernetes_pod_container_image",
    "__meta_kubernetes_endpointslice_endpoint_conditions_serving",
    "__meta_kubernetes_endpointslice_endpoint_conditions_terminating",
    "__meta_kubernetes_endpointslice_label_",
    "__meta_kubernetes_endpointslice_labelpresent_",
    "__meta_kubernetes_service_cluster_ip",
    "__meta_kubernetes_service_type",
];

fn comparable<'a>(labels: impl IntoIterator<Item = (&'a String, &'a String)>) -> Labels {
    labels
        .into_iter()
        .filter(|(n, _)| !VERSION_DIFFERENCES.iter().any(|d| n.starts_with(d)))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect()
}

/// What one side has that the other has not, per job, for the failure message.
fn differences(ours: &[Option<Found>; 2], theirs: &[Option<Found>; 2]) -> String {
    let mut out = String::new();
    for (i, name) in ["annotated-pods", "coredns"].iter().enumerate() {
        let (Some(o), Some(t)) = (&ours[i], &theirs[i]) else {
            out += &format!("{name}: an agent did not answer\n");
            continue;
        };
        let only = |a: &Vec<Labels>, b: &Vec<Labels>| -> Vec<Labels> {
            a.iter().filter(|x| !b.contains(x)).cloned().collect()
        };
        out += &format!(
            "{name}: {} / {} discovered, {} / {} kept (outpost / vmagent)\n\
             discovered only by outpost: {:#?}\ndiscovered only by vmagent: {:#?}\n\
             kept only by outpost: {:#?}\nkept only by vmagent: {:#?}\n",
            o.discovered.len(),
            t.discovered.len(),
            o.kept.len(),
            t.kept.len(),
            only(&o.discovered, &t.discovered),
            only(&t.discovered, &o.discovered),
            only(&o.kept, &t.kept),
            only(&t.kept, &o.kept),
        );
    }
    out
}

const JOBS: [&str; 2] = ["annotated-pods", "coredns"];

/// The fixture's state as both agents must see it.
struct Stage<'a> {
    name: &'a str,
    /// Targets kept per job.
    kept: (usize, usize),
}

/// One outpost agent running `role`'s plan of the spec.
fn start_outpost(
    dir: &Path,
    plans: &[outpost_compiler::AgentPlan],
    role: Role,
    node: &str,
) -> (ChildGuard, u16) {
    let plan = &plans.iter().find(|p| p.role == role).unwrap().plan;
    let name = format!("{role:?}").to_lowercase();
    let file = write_plan(dir, &format!("{name}.plan"), plan);
    let listen = free_port();
    let wal = dir.join(format!("{name}-wal"));
    let agent = outpost!().start_with(
        &file,
        listen,
        node,
        &dir.join(format!("{name}.log")),
        &["--wal-dir", wal.to_str().unwrap()],
    );
    (agent, listen)
}

/// Waits until outpost shows the stage's target counts and then until a vmagent started now
/// agrees with it, job by job; returns outpost's view.
fn compare(dir: &Path, api: &KubeApi, outposts: [u16; 2], stage: &Stage<'_>) -> Option<[Found; 2]> {
    let ours = || [peer_found(outposts[0], JOBS[0]), peer_found(outposts[1], JOBS[1])];
    let counts = |o: &[Option<Found>; 2]| {
        o.iter()
            .map(|f| f.as_ref().map(|f| f.kept.len()))
            .collect::<Vec<_>>()
    };
    let want = vec![Some(stage.kept.0), Some(stage.kept.1)];
    wait_for(
        &format!("{}: outpost's targets", stage.name),
        Duration::from_secs(30),
        || (counts(&ours()) == want).then_some(()),
    );
    let nowhere = format!("http://127.0.0.1:{}/api/v1/write", free_port());
    let peer_dir = dir.join(format!("vmagent-{}", stage.name.replace(' ', "-")));
    let peer = VmAgent::start_with_config(&peer_dir, &peer_config(&api.url()), &nowhere)?;
    // vmagent shows targets after its first discovery tick (30 s).
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (o, t) = (
            ours(),
            [peer_found(peer.port, JOBS[0]), peer_found(peer.port, JOBS[1])],
        );
        if (0..2).all(|i| o[i].is_some() && o[i] == t[i]) {
            let [a, b] = o;
            return Some([a.unwrap(), b.unwrap()]);
        }
        assert!(
            Instant::now() < deadline,
            "{}:\n{}",
            stage.name,
            differences(&o, &t)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn report(stage: &str, found: &[Found; 2]) {
    for (name, f) in JOBS.iter().zip(found) {
        eprintln!(
            "{stage} {name}: {} discovered label sets ({} labels), {} dropped, {} targets agree",
            f.discovered.len(),
            f.discovered.iter().map(BTreeMap::len).sum::<usize>(),
            f.dropped.len(),
            f.kept.len()
        );
    }
}

#[test]
fn outpost_and_vmagent_discover_the_same_targets_with_the_same_labels() {
    if !Path::new(VMAGENT).exists() {
        return;
    }
    let api = KubeApi::start();
    seed(&api);
    let dir = tempfile::tempdir().unwrap();
    let nowhere = format!("http://127.0.0.1:{}/api/v1/write", free_port());
    let a = analyze("kube.yaml", &spec(&api.url(), &nowhere));
    assert!(!a.has_errors(), "{}", a.render_text(100));
    let (_node, node_port) = start_outpost(dir.path(), &a.plans, Role::Node, "node-a");
    let (_cluster, cluster_port) = start_outpost(dir.path(), &a.plans, Role::Cluster, "cluster-agent");
    let outposts = [node_port, cluster_port];

    // web and tls; coredns-1 and -2.
    let listed = Stage {
        name: "listed",
        kept: (2, 2),
    };
    let Some(found) = compare(dir.path(), &api, outposts, &listed) else {
        return;
    };
    report(listed.name, &found);

    churn(&api);
    // web, fresh, quiet (now annotated: its container and its init container); coredns-1
    // and -3.
    let churned = Stage {
        name: "after churn",
        kept: (4, 2),
    };
    report(
        churned.name,
        &compare(dir.path(), &api, outposts, &churned).unwrap(),
    );

    // The fixture forgets its history: outpost's watches get 410 Gone and it lists again.
    api.compact();
    api.apply(
        "pods",
        pod(
            "apps",
            "late",
            "node-a",
            "127.0.1.6",
            &[("prometheus.io/scrape", "true")],
            vec![container("main", &[("http", 8080)])],
        ),
    );
    api.compact();
    let relisted = Stage {
        name: "after 410",
        kept: (5, 2),
    };
    report(
        relisted.name,
        &compare(dir.path(), &api, outposts, &relisted).unwrap(),
    );
    assert!(api.gone() >= 1);
    let relists: f64 = outposts
        .iter()
        .map(|p| metric_sum(&get_metrics(*p).unwrap(), "outpost_discovery_relists_total", &[]))
        .sum();
    assert!(relists >= 1.0);
    let node_requests: Vec<String> = api
        .requests()
        .into_iter()
        .filter(|r| r.contains("/pods?"))
        .collect();
    assert!(node_requests
        .iter()
        .any(|r| r.contains("fieldSelector=spec.nodeName%3Dnode-a")));
}
