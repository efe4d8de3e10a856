//! Kubernetes discovery in the spec: examples/discovery.yaml compiles clean into plans that
//! say what each agent watches, the `prometheus.io` preset chooses targets as Prometheus's
//! example configuration does (checked by feeding a pod list, built from k8s-openapi types,
//! through agent-core's discovery), tenants discover only in their own namespaces, and every
//! discovered target is charged in the worst case.

use k8s_openapi::api::core::v1::{Container, ContainerPort, Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, ObjectMeta};
use k8s_openapi::List;
use outpost_compiler::{analyze, load_spec, AgentPlan};
use outpost_core::discovery::KubeDiscovery;
use outpost_core::plan::{self, KubeRole, Role, Scheme};
use outpost_test_support::repo_path;
use std::collections::BTreeMap;

fn example() -> Vec<AgentPlan> {
    let a = load_spec(&repo_path("examples/discovery.yaml")).unwrap();
    assert!(a.diagnostics.is_empty(), "{}", a.render_text(100));
    a.plans
}

fn job<'p>(agent: &'p AgentPlan, name: &str) -> &'p plan::ScrapeJob {
    let p = &agent.plan;
    p.scrape_jobs.iter().find(|j| p.str(j.name) == name).unwrap()
}

#[test]
fn the_example_plans_say_what_each_agent_watches() {
    let plans = example();
    let node = plans.iter().find(|a| a.role == Role::Node).unwrap();
    let cluster = plans.iter().find(|a| a.role == Role::Cluster).unwrap();

    let pods = job(node, "annotated-pods");
    let d = pods.targeting.discovery.as_ref().unwrap();
    assert_eq!((d.role, d.own_node, d.max_targets), (KubeRole::Pod, true, 20));
    assert!(d.namespaces.is_empty() && d.api_server.is_none());
    assert!(pods.targets.is_empty());
    assert!(!pods.targeting.relabel.is_empty());

    let dns = job(cluster, "coredns");
    let d = dns.targeting.discovery.as_ref().unwrap();
    assert_eq!(
        (d.role, d.own_node, d.max_targets),
        (KubeRole::EndpointSlice, false, 4)
    );
    let namespaces: Vec<&str> = d.namespaces.iter().map(|n| cluster.plan.str(*n)).collect();
    assert_eq!(namespaces, ["kube-system"]);
    assert_eq!(dns.targeting.relabel.len(), 2);

    for agent in &plans {
        let bytes = plan::encode(&agent.plan).unwrap();
        assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 4);
        assert_eq!(plan::decode(&bytes).unwrap(), agent.plan);
        let mut unshared = agent.plan.clone();
        unshared.sharing = None;
        let bytes = plan::encode(&unshared).unwrap();
        assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 3);
    }
}

#[test]
fn every_discovered_target_is_charged_in_the_worst_case() {
    let plans = example();
    let node = plans.iter().find(|a| a.role == Role::Node).unwrap();
    let mut without = node.plan.clone();
    without.scrape_jobs.retain(|j| j.targeting.discovery.is_none());
    // The node section and self-scrape, plus the 20 pods the job may keep.
    let targets = |p: &plan::Plan| -> u64 { p.target_groups().iter().map(|g| g.targets).sum() };
    assert_eq!(targets(&node.plan), targets(&without) + 20);
    let with = node.plan.worst_case_memory();
    let bare = without.worst_case_memory();
    assert!(with.discovery > 0 && bare.discovery == 0);
    let groups = node.plan.target_groups();
    let pods = groups
        .iter()
        .find(|g| g.job == "annotated-pods")
        .expect("the discovery job's group");
    assert_eq!(pods.targets, 20);
    assert!(with.total() >= bare.total() + pods.total() + with.discovery);
}

fn pod(name: &str, annotations: &[(&str, &str)], ports: &[(&str, i32)]) -> Pod {
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("apps".into()),
            uid: Some(format!("uid-{name}")),
            resource_version: Some("7".into()),
            labels: Some(map(&[("app", name)])),
            annotations: Some(map(annotations)),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some("node-a".into()),
            containers: vec![Container {
                name: "main".into(),
                ports: Some(
                    ports
                        .iter()
                        .map(|(n, p)| ContainerPort {
                            name: Some(n.to_string()),
                            container_port: *p,
                            protocol: Some("TCP".into()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            pod_ip: Some(format!("10.0.0.{}", name.len())),
            host_ip: Some("192.168.1.10".into()),
            ..Default::default()
        }),
    }
}

/// A kept target: address, scheme, path and target labels.
type Kept = (String, Scheme, String, Vec<(String, String)>);

#[test]
fn the_prometheus_io_preset_keeps_annotated_pods_where_their_annotations_say() {
    let plans = example();
    let node = plans.iter().find(|a| a.role == Role::Node).unwrap();
    let mut d = KubeDiscovery::new(&node.plan, job(node, "annotated-pods"), "node-a", 1).unwrap();

    let (w, request) = d.poll_request(0).unwrap();
    assert_eq!(
        request.path, "/api/v1/pods?limit=500&fieldSelector=spec.nodeName%3Dnode-a",
        "each agent lists only its own node's pods"
    );
    let list = List::<Pod> {
        items: vec![
            // Annotated with a port and path: one target there, whatever its container ports.
            pod(
                "web",
                &[
                    ("prometheus.io/scrape", "true"),
                    ("prometheus.io/port", "9102"),
                    ("prometheus.io/path", "/stats"),
                ],
                &[("http", 8080), ("admin", 8081)],
            ),
            // Annotated with https and no port: a target per container port.
            pod(
                "tls",
                &[
                    ("prometheus.io/scrape", "true"),
                    ("prometheus.io/scheme", "https"),
                ],
                &[("m", 8443)],
            ),
            // Not annotated, or not "true": dropped.
            pod("quiet", &[], &[("http", 8080)]),
            pod("off", &[("prometheus.io/scrape", "false")], &[("http", 8080)]),
        ],
        metadata: ListMeta {
            resource_version: Some("42".into()),
            ..Default::default()
        },
    };
    let body = serde_json::to_vec(&list).unwrap();
    d.handle_head(w, 200);
    // Fed in small pieces, as a socket hands them over.
    for chunk in body.chunks(97) {
        assert!(d.handle_body(w, chunk));
    }
    d.handle_end(w, 10);
    assert!(d.synced());

    let mut kept: Vec<Kept> = d
        .targets
        .slots
        .iter()
        .filter_map(|s| s.found.as_ref())
        .map(|f| {
            let t = &f.target;
            assert_eq!(t.labels.job, "annotated-pods");
            (
                t.address.clone(),
                t.scheme,
                t.path.clone(),
                t.labels.extra.clone(),
            )
        })
        .collect();
    kept.sort_by(|a, b| a.0.cmp(&b.0));
    let labels = |pod: &str| {
        vec![
            ("namespace".to_string(), "apps".to_string()),
            ("pod".to_string(), pod.to_string()),
        ]
    };
    // "web" has two container ports: both move to the annotated port and make one target,
    // as Prometheus scrapes targets with the same labels once.
    assert_eq!(
        kept,
        [
            (
                "10.0.0.3:8443".into(),
                Scheme::Https,
                "/metrics".into(),
                labels("tls")
            ),
            (
                "10.0.0.3:9102".into(),
                Scheme::Http,
                "/stats".into(),
                labels("web")
            ),
        ]
    );
    assert_eq!(d.targets.counters.duplicates, 1);

    // The watch goes on from the list's version, with bookmarks.
    let (_, watch) = d.poll_request(10).unwrap();
    assert!(watch.path.starts_with("/api/v1/pods?allowWatchBookmarks=true&fieldSelector=spec.nodeName%3Dnode-a&resourceVersion=42&timeoutSeconds="));
}

const TENANTS: &str = r#"
receiver:
  url: https://receive.example.net/api/v1/receive
  tenant_header: THANOS-TENANT
defaults:
  limits: {body_size: 256Ki, samples: 2000}
scrape_jobs:
  - name: apps
    scope: cluster
    discovery:
      role: endpointslice
      max_targets: 10
  - name: mixed
    scope: cluster
    discovery:
      role: service
      namespaces: [shop-a, shop-b, kube-system]
      max_targets: 10
clusters:
  - name: cluster-02
    role: edge-multi-tenant
    tenants:
      - name: tenant-a
        node_selector: {tenant: tenant-a}
        namespaces: [shop-a]
      - name: tenant-b
        node_selector: {tenant: tenant-b}
        namespaces: [shop-b]
"#;

#[test]
fn a_tenant_agent_discovers_only_in_its_own_namespaces() {
    let a = analyze("tenants.yaml", TENANTS);
    assert!(!a.has_errors(), "{}", a.render_text(100));
    for (tenant, own) in [("tenant-a", "shop-a"), ("tenant-b", "shop-b")] {
        let agent = a
            .plans
            .iter()
            .find(|p| p.tenant.as_deref() == Some(tenant) && p.role == Role::Cluster)
            .unwrap();
        for name in ["apps", "mixed"] {
            let d = job(agent, name).targeting.discovery.as_ref().unwrap();
            let namespaces: Vec<&str> = d.namespaces.iter().map(|n| agent.plan.str(*n)).collect();
            assert_eq!(namespaces, [own], "{tenant} {name}");
        }
    }

    let node_role = TENANTS.replace("role: service", "role: node");
    let a = analyze("tenants.yaml", &node_role);
    assert!(a
        .diagnostics
        .iter()
        .any(|d| d.code == "cluster-wide-role-for-tenant"));
    assert!(a.has_errors());
}

/// The RBAC `outpostc manifests` writes for discovery: `list` and `watch` on what each agent's
/// jobs read, a tenant's only in its own namespaces.
#[test]
fn manifests_grant_each_agent_only_what_its_discovery_reads() {
    use outpost_compiler::manifests::{self, image};
    let a = analyze("tenants.yaml", TENANTS);
    assert!(!a.has_errors(), "{}", a.render_text(100));
    let fleet = a.fleet.as_ref().unwrap();
    let pinned = format!("ghcr.io/outpost/outpost:0.1.0@sha256:{}", "a".repeat(64));
    let image = image::resolve(fleet, Some(&pinned), None).unwrap();
    let files = manifests::render(fleet, &a.plans, &image).unwrap();
    let rbac: Vec<serde_json::Value> = files
        .iter()
        .flat_map(|f| {
            f.contents
                .split("\n---\n")
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|d| !d.trim().trim_start_matches("---").trim().is_empty())
        .map(|d| serde_saphyr::from_str::<serde_json::Value>(d.trim_start_matches("---\n")).unwrap())
        .filter(|d| {
            d["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("outpost-discovery-"))
        })
        .collect();
    let kinds: Vec<String> = rbac
        .iter()
        .map(|d| d["kind"].as_str().unwrap().to_string())
        .collect();
    assert!(!kinds.iter().any(|k| k.starts_with("Cluster")), "{kinds:?}");
    for (tenant_ns, own) in [
        ("monitoring-tenant-a", "shop-a"),
        ("monitoring-tenant-b", "shop-b"),
    ] {
        let name = format!("outpost-discovery-{tenant_ns}");
        let mine: Vec<&serde_json::Value> = rbac
            .iter()
            .filter(|d| d["metadata"]["name"] == name.as_str())
            .collect();
        assert_eq!(mine.len(), 2, "{mine:?}");
        let role = mine.iter().find(|d| d["kind"] == "Role").unwrap();
        assert_eq!(role["metadata"]["namespace"], own);
        assert_eq!(
            role["rules"],
            serde_json::json!([
                {"apiGroups": [""], "resources": ["pods", "services"], "verbs": ["list", "watch"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
            ])
        );
        let binding = mine.iter().find(|d| d["kind"] == "RoleBinding").unwrap();
        assert_eq!(
            binding["subjects"],
            serde_json::json!([{"kind": "ServiceAccount", "name": "outpost", "namespace": tenant_ns}])
        );
    }
}
