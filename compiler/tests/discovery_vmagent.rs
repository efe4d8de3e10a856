//! outpost's Kubernetes discovery against vmagent's `kubernetes_sd_configs`, both pointed at
//! one API-server fixture (test-support's `KubeApi`, objects built from k8s-openapi types).
//! Debian builds Prometheus 2.42 without Kubernetes discovery, so vmagent 1.79, which gives
//! Prometheus's `__meta_kubernetes_*` labels, is the peer; the labels that differ between
//! the two versions are named in [`VERSION_DIFFERENCES`] and left out.
//!
//! Compared through vmagent's `/api/v1/targets`: the same targets with the same labels
//! before relabeling (`discoveredLabels`, kept and dropped) and after (`labels`), for
//! node-local pods with the `prometheus.io` preset and for CoreDNS's EndpointSlices; then
//! the same targets after adds, updates and deletes, and after a `410 Gone` that makes both
//! list again.
//!
//! outpost's side is agent-core's sans-IO `KubeDiscovery`, driven here by a small blocking
//! HTTP client: the agent does not run discovery yet. Skipped when vmagent is not installed.
//!
//! Not run by default (see its `ignore` reason) until the churn stages compare against a
//! vmagent that cannot have seen a half-applied churn.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Pod, PodSpec, PodStatus, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use outpost_compiler::analyze;
use outpost_core::discovery::KubeDiscovery;
use outpost_core::plan::Role;
use outpost_test_support::kube_api::KubeApi;
use outpost_test_support::{free_port, http_get, VmAgent};
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

fn spec(api: &str) -> String {
    format!(
        r#"
receiver:
  url: https://receive.example.net/api/v1/receive
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

fn outpost_found(d: &KubeDiscovery) -> Found {
    let mut discovered = Vec::new();
    let mut kept = Vec::new();
    for f in d.targets.slots.iter().filter_map(|s| s.found.as_ref()) {
        discovered.push(comparable(f.discovered.iter().map(|(n, v)| (n, v))));
        let t = &f.target.labels;
        let mut l: Labels = t.extra.iter().cloned().collect();
        l.insert("job".into(), t.job.clone());
        l.insert("instance".into(), t.instance.clone());
        kept.push(l);
    }
    let mut dropped: Vec<Labels> = d
        .targets
        .dropped
        .iter()
        .map(|x| comparable(x.discovered.iter().map(|(n, v)| (n, v))))
        .collect();
    discovered.extend(dropped.iter().cloned());
    discovered.sort();
    dropped.sort();
    kept.sort();
    Found {
        discovered,
        dropped,
        kept,
    }
}

/// What one side has that the other has not, per job, for the failure message.
fn differences(ours: &[Found; 2], theirs: &[Option<Found>; 2]) -> String {
    let mut out = String::new();
    for (i, name) in ["annotated-pods", "coredns"].iter().enumerate() {
        let Some(t) = &theirs[i] else {
            out += &format!("{name}: vmagent did not answer\n");
            continue;
        };
        let o = &ours[i];
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

enum Msg {
    Head(usize, u16),
    Body(usize, Vec<u8>),
    End(usize),
    Failed(usize),
}

/// One request to the fixture on its own connection, streamed back as messages.
fn fetch(port: u16, w: usize, path: String, tx: mpsc::Sender<Msg>) {
    let run = || -> Option<()> {
        let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: kube\r\nAccept: application/json\r\n\r\n"
        )
        .ok()?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        let end = loop {
            if let Some(e) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break e;
            }
            let n = s.read(&mut chunk).ok().filter(|&n| n > 0)?;
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let status: u16 = head.get(9..12)?.parse().ok()?;
        tx.send(Msg::Head(w, status)).ok()?;
        let mut rest = buf[end + 4..].to_vec();
        let read_more = |s: &mut TcpStream, rest: &mut Vec<u8>| -> Option<()> {
            let mut chunk = [0u8; 1024];
            let n = s.read(&mut chunk).ok().filter(|&n| n > 0)?;
            rest.extend_from_slice(&chunk[..n]);
            Some(())
        };
        if let Some(len) = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            while rest.len() < len {
                read_more(&mut s, &mut rest)?;
            }
            tx.send(Msg::Body(w, rest[..len].to_vec())).ok()?;
        } else {
            // Chunked: hand over each chunk as it completes.
            loop {
                let line_end = loop {
                    if let Some(e) = rest.windows(2).position(|w| w == b"\r\n") {
                        break e;
                    }
                    read_more(&mut s, &mut rest)?;
                };
                let size =
                    usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).ok()?.trim(), 16).ok()?;
                while rest.len() < line_end + 2 + size + 2 {
                    read_more(&mut s, &mut rest)?;
                }
                if size == 0 {
                    break;
                }
                tx.send(Msg::Body(w, rest[line_end + 2..line_end + 2 + size].to_vec()))
                    .ok()?;
                rest.drain(..line_end + 2 + size + 2);
            }
        }
        tx.send(Msg::End(w)).ok()
    };
    if run().is_none() {
        let _ = tx.send(Msg::Failed(w));
    }
}

/// Runs one job's discovery against the fixture: every request on a thread of its own,
/// its response fed back in order on this thread.
struct Driver {
    d: KubeDiscovery,
    port: u16,
    started: Instant,
    tx: mpsc::Sender<Msg>,
    rx: mpsc::Receiver<Msg>,
}

impl Driver {
    fn new(d: KubeDiscovery, port: u16, started: Instant) -> Driver {
        let (tx, rx) = mpsc::channel();
        Driver {
            d,
            port,
            started,
            tx,
            rx,
        }
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Sends what is due and applies what arrives, for `span`.
    fn pump(&mut self, span: Duration) {
        let until = Instant::now() + span;
        while Instant::now() < until {
            while let Some((w, r)) = self.d.poll_request(self.now()) {
                let (tx, port) = (self.tx.clone(), self.port);
                std::thread::spawn(move || fetch(port, w, r.path, tx));
            }
            match self.rx.recv_timeout(Duration::from_millis(20)) {
                Ok(Msg::Head(w, status)) => self.d.handle_head(w, status),
                Ok(Msg::Body(w, bytes)) => {
                    self.d.handle_body(w, &bytes);
                }
                Ok(Msg::End(w)) => {
                    let now = self.now();
                    self.d.handle_end(w, now);
                }
                Ok(Msg::Failed(w)) => {
                    let now = self.now();
                    self.d.handle_failure(w, now);
                }
                Err(_) => {}
            }
        }
    }
}

#[test]
#[ignore = "fails about one run in five: vmagent 1.79 applies Kubernetes changes on a 30 s tick \
            and can keep a target's labels from a churn it saw half applied; run it with \
            `cargo test -p outpost-compiler --test discovery_vmagent -- --ignored` (issue 19)"]
fn outpost_and_vmagent_discover_the_same_targets_with_the_same_labels() {
    let api = KubeApi::start();
    seed(&api);
    let dir = tempfile::tempdir().unwrap();
    // vmagent sends nowhere: only its discovery is compared.
    let nowhere = format!("http://127.0.0.1:{}/api/v1/write", free_port());
    let Some(peer) = VmAgent::start_with_config(dir.path(), &peer_config(&api.url()), &nowhere) else {
        return;
    };
    let a = analyze("kube.yaml", &spec(&api.url()));
    assert!(!a.has_errors(), "{}", a.render_text(100));
    let agent = |role| a.plans.iter().find(|p| p.role == role).unwrap();
    let job = |p: &outpost_compiler::AgentPlan, name: &str| {
        p.plan
            .scrape_jobs
            .iter()
            .find(|j| p.plan.str(j.name) == name)
            .unwrap()
            .clone()
    };
    let node = agent(Role::Node);
    let cluster = agent(Role::Cluster);
    let started = Instant::now();
    let pods = KubeDiscovery::new(&node.plan, &job(node, "annotated-pods"), "node-a", 7).unwrap();
    let dns = KubeDiscovery::new(&cluster.plan, &job(cluster, "coredns"), "", 9).unwrap();
    let mut pods = Driver::new(pods, api.port(), started);
    let mut dns = Driver::new(dns, api.port(), started);

    let compare = |pods: &mut Driver, dns: &mut Driver, stage: &str, full: bool, kept: (usize, usize)| {
        // Both sides have caught up once they agree. vmagent applies Kubernetes changes every
        // 30 s (its default check interval, kept: a shorter one lets it start targets from a
        // half-applied churn and keep their labels from then), so a stage may take two
        // intervals and some load.
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            pods.pump(Duration::from_millis(200));
            dns.pump(Duration::from_millis(200));
            let ours = [outpost_found(&pods.d), outpost_found(&dns.d)];
            let theirs = [
                peer_found(peer.port, "annotated-pods"),
                peer_found(peer.port, "coredns"),
            ];
            // vmagent 1.79 keeps dropped targets of objects that changed since, and an
            // active target's discovered labels from when it started; Prometheus (and
            // outpost) show the current ones. So after the first list, the discovered labels
            // outpost shows must be among vmagent's, and the targets must be the same.
            let agree = |o: &Found, t: &Found| {
                o.kept == t.kept
                    && if full {
                        o.discovered == t.discovered
                    } else {
                        o.dropped.iter().all(|d| t.dropped.contains(d))
                    }
            };
            let same = (0..2).all(|i| theirs[i].as_ref().is_some_and(|t| agree(&ours[i], t)))
                && (ours[0].kept.len(), ours[1].kept.len()) == kept;
            if same {
                for (name, f) in ["annotated-pods", "coredns"].iter().zip(&ours) {
                    eprintln!(
                        "{stage} {name}: {} discovered label sets ({} labels) and {} targets agree",
                        f.discovered.len(),
                        f.discovered.iter().map(BTreeMap::len).sum::<usize>(),
                        f.kept.len()
                    );
                    let instances: Vec<&String> = f.kept.iter().map(|l| &l["instance"]).collect();
                    eprintln!("  {instances:?}");
                }
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{stage}:\n{}",
                differences(&ours, &theirs)
            );
        }
    };
    // web and tls; coredns-1 and -2.
    compare(&mut pods, &mut dns, "listed", true, (2, 2));
    churn(&api);
    // web, fresh, quiet (now annotated); coredns-1 and -3.
    compare(&mut pods, &mut dns, "after churn", false, (4, 2));

    // The fixture forgets its history: watches from before get 410 Gone, and both list again.
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
    compare(&mut pods, &mut dns, "after 410", false, (5, 2));
    assert!(
        pods.d.counters.relists + dns.d.counters.relists >= 1,
        "{:?} {:?}",
        pods.d.counters,
        dns.d.counters
    );
    assert!(api.gone() >= 1);
    let node_requests: Vec<String> = api
        .requests()
        .into_iter()
        .filter(|r| r.contains("/pods?"))
        .collect();
    assert!(node_requests
        .iter()
        .any(|r| r.contains("fieldSelector=spec.nodeName%3Dnode-a")));
}
