//! The example fleets: they check clean, compile to the committed golden
//! plans byte for byte, compile the same way twice, and decode back to the
//! plans that were built.

use outpost_compiler::{analyze, load_spec, AgentPlan};
use outpost_core::plan::{self, RelabelAction, Role};
use outpost_test_support::repo_path;

fn fleet() -> Vec<AgentPlan> {
    let a = load_spec(&repo_path("examples/fleet.yaml")).unwrap();
    assert!(a.diagnostics.is_empty(), "{}", a.render_text(100));
    a.plans
}

#[test]
fn fleet_has_one_plan_per_agent_at_the_documented_paths() {
    let mut paths: Vec<String> = fleet()
        .iter()
        .map(|p| p.rel_path().display().to_string())
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "cluster-02/tenant-a/cluster.plan",
            "cluster-02/tenant-a/node.plan",
            "cluster-02/tenant-b/cluster.plan",
            "cluster-02/tenant-b/node.plan",
            "cluster-03/cluster.plan",
            "cluster-03/node.plan",
            "cluster-04/cluster.plan",
            "cluster-04/node.plan",
        ]
    );
}

/// The fleet as it was before `collectors: default` and node options existed (the seed's 11
/// collectors, listed) still compiles to the version-1 plan bytes the compiler wrote then,
/// kept in agent-core/tests/data/node-v1.plan: a spec using nothing new gets identical plans.
/// The node role's WAL mode is the one default that changed since (to `spill`, on purpose:
/// flash wear), so the spec says `node_wal.mode: append` to ask for what it had.
#[test]
fn a_spec_using_nothing_new_compiles_to_the_bytes_it_always_had() {
    let text = std::fs::read_to_string(repo_path("examples/fleet.yaml")).unwrap();
    let wal = "  node_wal:\n";
    assert!(text.contains(wal));
    let text = text.replace(wal, "  node_wal:\n    mode: append\n");
    let start = text.find("\nnode:\n").unwrap() + 1;
    let end = start + text[start..].find("  limits:\n").unwrap();
    let old = format!(
        "{}node:\n  collectors: [cpu, meminfo, loadavg, diskstats, filesystem, netdev, stat, uname, time, vmstat, pressure]\n{}",
        &text[..start],
        &text[end..]
    );
    let a = analyze("fleet-before.yaml", &old);
    assert!(!a.has_errors(), "{}", a.render_text(100));
    // Those 11 leave node-mixin alerts without data, and the check says so.
    assert!(a.diagnostics.iter().all(|d| d.code == "node-mixin-gap"));
    assert!(!a.diagnostics.is_empty());
    let node = a
        .plans
        .iter()
        .find(|p| p.cluster == "cluster-03" && p.role == Role::Node)
        .unwrap();
    // The fixture was written when the fleet's node limit was 128Mi; the limit
    // rose to 160Mi when the memory model began to charge what the series
    // tables really reserve. Every plan now says what its targets share
    // (format version 4); without that, everything else must be the bytes
    // of then.
    let mut then = node.plan.clone();
    assert_eq!(then.budget.memory_limit_bytes, 160 << 20);
    then.budget.memory_limit_bytes = 128 << 20;
    assert_eq!(then.sharing, Some(plan::Sharing::DEFAULT));
    then.sharing = None;
    let bytes = plan::encode(&then).unwrap();
    let before = std::fs::read(repo_path("agent-core/tests/data/node-v1.plan")).unwrap();
    assert!(bytes == before, "the plan of a spec without new keys changed");
}

/// Set OUTPOST_UPDATE_GOLDEN=1 to rewrite examples/plans after an intended change.
#[test]
fn golden_plans_are_byte_identical() {
    let golden = repo_path("examples/plans");
    let update = std::env::var_os("OUTPOST_UPDATE_GOLDEN").is_some();
    for agent in fleet() {
        let bytes = plan::encode(&agent.plan).unwrap();
        let path = golden.join(agent.rel_path());
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            committed == bytes,
            "{} differs from a fresh compile",
            path.display()
        );
    }
}

#[test]
fn compiling_twice_gives_the_same_bytes() {
    let text = std::fs::read_to_string(repo_path("examples/fleet.yaml")).unwrap();
    let first = analyze("fleet.yaml", &text);
    let second = analyze("other-name.yaml", &text);
    assert_eq!(first.plans.len(), second.plans.len());
    for (a, b) in first.plans.iter().zip(&second.plans) {
        assert_eq!(plan::encode(&a.plan).unwrap(), plan::encode(&b.plan).unwrap());
    }
}

#[test]
fn spec_to_plan_to_decode_round_trips() {
    for agent in fleet() {
        let bytes = plan::encode(&agent.plan).unwrap();
        let decoded = plan::decode(&bytes).unwrap();
        assert_eq!(decoded, agent.plan, "{}", agent.rel_path().display());
        // Compact: a few hundred bytes, not kilobytes.
        assert!(
            bytes.len() < 2048,
            "{} is {} bytes",
            agent.rel_path().display(),
            bytes.len()
        );
        // Interned: no string is stored twice.
        let mut strings = decoded.strings.clone();
        strings.sort();
        strings.dedup();
        assert_eq!(strings.len(), decoded.strings.len());
    }
}

#[test]
fn fleet_keeps_the_seeds_settings() {
    let plans = fleet();
    let labels = |a: &AgentPlan| -> Vec<(String, String)> {
        a.plan
            .external_labels
            .iter()
            .map(|l| (a.plan.str(l.name).to_string(), a.plan.str(l.value).to_string()))
            .collect()
    };
    let c03 = plans
        .iter()
        .find(|a| a.cluster == "cluster-03" && a.role == Role::Cluster)
        .unwrap();
    assert_eq!(
        labels(c03),
        [
            ("cluster", "cluster-03"),
            ("location", "edge-site-1"),
            ("role", "edge")
        ]
        .map(|(n, v)| (n.to_string(), v.to_string()))
    );
    let ta = plans
        .iter()
        .find(|a| a.tenant.as_deref() == Some("tenant-a") && a.role == Role::Cluster)
        .unwrap();
    assert_eq!(
        labels(ta),
        [
            ("cluster", "cluster-02"),
            ("role", "edge-multi-tenant"),
            ("tenant", "tenant-a")
        ]
        .map(|(n, v)| (n.to_string(), v.to_string()))
    );
    // Defect 1: the header Thanos Receive reads, with the tenant's name.
    let h = ta.plan.receiver.tenant_header.unwrap();
    assert_eq!(
        (ta.plan.str(h.name), ta.plan.str(h.value)),
        ("THANOS-TENANT", "tenant-a")
    );
    assert!(c03.plan.receiver.tenant_header.is_none());
    for a in &plans {
        let p = &a.plan;
        let w = &p.receiver.write_relabel;
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].action, RelabelAction::Drop);
        assert_eq!(p.str(w[0].regex), "go_gc_.*|go_memstats_.*");
        assert_eq!(p.str(w[0].separator), ";");
        assert_eq!(p.str(w[0].replacement), "$1");
        assert!(p.str(p.receiver.url).starts_with("https://"));
        assert!(p.worst_case_memory().total() <= p.budget.memory_limit_bytes);
        for j in &p.scrape_jobs {
            assert_eq!((j.interval_ms, j.timeout_ms), (30_000, 10_000));
        }
        match a.role {
            Role::Cluster => {
                assert_eq!(p.wal.max_bytes, 50 << 30);
                assert_eq!(
                    (p.budget.cpu_request_millis, p.budget.memory_request_bytes),
                    (200, 256 << 20)
                );
                assert_eq!(
                    (p.budget.cpu_limit_millis, p.budget.memory_limit_bytes),
                    (500, 512 << 20)
                );
                assert_eq!(p.scrape_jobs.len(), 1);
                assert_eq!(p.str(p.scrape_jobs[0].name), "kube-state-metrics");
            }
            Role::Node => {
                // node_exporter's default collectors, and the textfile directory.
                let node = p.node.as_ref().unwrap();
                let mut default = outpost_compiler::compile::defaults::DEFAULT_COLLECTORS.to_vec();
                default.sort();
                assert_eq!(node.collectors, default);
                let textfile = node.options.textfile.as_ref().unwrap();
                assert_eq!(
                    p.str(textfile.directory),
                    "/var/lib/node_exporter/textfile_collector"
                );
                assert_eq!((textfile.max_files, textfile.max_file_bytes), (64, 1 << 20));
                let names: Vec<&str> = p.scrape_jobs.iter().map(|j| p.str(j.name)).collect();
                assert_eq!(names, ["kubelet", "cadvisor"]);
                let kubelet = &p.scrape_jobs[0];
                assert_eq!(kubelet.scheme, plan::Scheme::Https);
                assert_eq!(p.str(kubelet.targets[0]), "${NODE_IP}:10250");
                assert_eq!(
                    p.str(kubelet.bearer_token_file.unwrap()),
                    "/var/run/secrets/kubernetes.io/serviceaccount/token"
                );
            }
        }
    }
}

/// Defect 2: a tenant's cluster agent keeps only its own series from the
/// shared kube-state-metrics. The rule is checked with the engine the agent
/// uses, anchored the way the agent anchors it.
#[test]
fn tenant_filter_keeps_own_namespaces_and_nodes_only() {
    let plans = fleet();
    let ta = plans
        .iter()
        .find(|a| a.tenant.as_deref() == Some("tenant-a") && a.role == Role::Cluster)
        .unwrap();
    let p = &ta.plan;
    let rule = &p.scrape_jobs[0].metric_relabel[0];
    assert_eq!(rule.action, RelabelAction::Keep);
    let sources: Vec<&str> = rule.source_labels.iter().map(|l| p.str(*l)).collect();
    assert_eq!(sources, ["namespace", "__name__", "label_tenant"]);
    let re = regex_automata::meta::Regex::new(&format!("^(?s:{})$", p.str(rule.regex))).unwrap();
    let kept = |ns: &str, name: &str, tenant: &str| re.is_match(&format!("{ns};{name};{tenant}"));
    assert!(kept("monitoring-tenant-a", "kube_pod_info", ""));
    assert!(kept("monitoring-tenant-a", "kube_deployment_status_replicas", ""));
    assert!(!kept("monitoring-tenant-b", "kube_pod_info", ""));
    assert!(!kept("monitoring", "kube_pod_info", ""));
    assert!(!kept("monitoring-tenant-ab", "kube_pod_info", ""));
    assert!(kept("", "kube_node_labels", "tenant-a"));
    assert!(!kept("", "kube_node_labels", "tenant-b"));
    assert!(!kept("", "kube_node_info", ""));
    assert!(!kept("", "kube_namespace_created", ""));
    // Ordinary clusters are not filtered.
    let c03 = plans
        .iter()
        .find(|a| a.cluster == "cluster-03" && a.role == Role::Cluster)
        .unwrap();
    assert!(c03.plan.scrape_jobs[0].metric_relabel.is_empty());
}

#[test]
fn demo_checks_clean_even_with_warnings_denied() {
    let a = load_spec(&repo_path("examples/demo.yaml")).unwrap();
    assert!(a.diagnostics.is_empty(), "{}", a.render_text(100));
    assert_eq!(a.plans.len(), 1);
    let p = &a.plans[0].plan;
    assert_eq!(a.plans[0].role, Role::Node);
    assert_eq!(p.str(p.receiver.url), "http://127.0.0.1:19090/api/v1/write");
    assert_eq!(p.str(p.wal.dir), "/tmp/outpost-demo/wal");
    assert_eq!(p.wal.max_bytes, 256 << 20);
    assert_eq!(p.node.as_ref().unwrap().interval_ms, 5000);
    assert_eq!(p.str(p.scrape_jobs[0].name), "prometheus");
    assert_eq!(p.str(p.scrape_jobs[0].targets[0]), "127.0.0.1:19090");
}

#[test]
fn defaults_are_inherited_and_overridden_per_cluster_and_tenant() {
    let text = r#"
receiver:
  url: https://receive.example.net/api/v1/receive
  tenant_header: X-Scope-OrgID
defaults:
  scrape_interval: 1m
  queue: {capacity: 1000, max_shards: 2}
  external_labels: {region: eu}
scrape_jobs:
  - name: app
    scope: cluster
    targets: ["app:8080"]
    tenant_filter: none
clusters:
  - name: plain
    role: edge
  - name: shared
    role: edge
    overrides:
      scrape_interval: 1m30s
      queue: {max_shards: 3}
      external_labels: {region: us}
    tenants:
      - name: t1
        node_selector: {tenant: t1}
        namespaces: [t1]
        overrides:
          queue: {capacity: 500}
          external_labels: {team: blue}
      - name: t2
        node_selector: {tenant: t2}
        namespaces: [t2]
"#;
    let a = analyze("inherit.yaml", text);
    assert!(a.diagnostics.is_empty(), "{}", a.render_text(100));
    let get = |c: &str, t: Option<&str>| {
        a.plans
            .iter()
            .find(|p| p.cluster == c && p.tenant.as_deref() == t)
            .unwrap()
    };
    let plain = &get("plain", None).plan;
    assert_eq!(plain.scrape_jobs[0].interval_ms, 60_000);
    assert_eq!((plain.queue.capacity, plain.queue.max_shards), (1000, 2));
    let t1 = &get("shared", Some("t1")).plan;
    assert_eq!(t1.scrape_jobs[0].interval_ms, 90_000);
    assert_eq!((t1.queue.capacity, t1.queue.max_shards), (500, 3));
    let labels: Vec<(&str, &str)> = t1
        .external_labels
        .iter()
        .map(|l| (t1.str(l.name), t1.str(l.value)))
        .collect();
    assert_eq!(
        labels,
        [
            ("cluster", "shared"),
            ("region", "us"),
            ("role", "edge"),
            ("team", "blue"),
            ("tenant", "t1")
        ]
    );
    let h = t1.receiver.tenant_header.unwrap();
    assert_eq!((t1.str(h.name), t1.str(h.value)), ("X-Scope-OrgID", "t1"));
    // tenant_filter: none leaves the job unfiltered.
    assert!(t1.scrape_jobs[0].metric_relabel.is_empty());
    let t2 = &get("shared", Some("t2")).plan;
    assert_eq!((t2.queue.capacity, t2.queue.max_shards), (1000, 3));
}

#[test]
fn relabel_defaults_are_filled_in() {
    let text = r#"
receiver:
  url: https://receive.example.net/api/v1/receive
defaults:
  metric_relabel:
    - source_labels: [pod]
      target_label: pod_name
    - action: labelmap
      regex: __meta_(.+)
    - action: hashmod
      source_labels: [instance]
      target_label: __tmp_shard
      modulus: 8
scrape_jobs:
  - name: app
    scope: cluster
    targets: ["app:8080"]
clusters:
  - name: one
    role: edge
"#;
    let a = analyze("relabel.yaml", text);
    assert!(a.diagnostics.is_empty(), "{}", a.render_text(100));
    let p = &a.plans[0].plan;
    let rules = &p.scrape_jobs[0].metric_relabel;
    assert_eq!(rules.len(), 3);
    assert_eq!(rules[0].action, RelabelAction::Replace);
    assert_eq!(
        (
            p.str(rules[0].separator),
            p.str(rules[0].regex),
            p.str(rules[0].replacement)
        ),
        (";", "(.*)", "$1")
    );
    assert_eq!(p.str(rules[0].target_label), "pod_name");
    assert_eq!(rules[1].action, RelabelAction::LabelMap);
    assert_eq!(p.str(rules[1].regex), "__meta_(.+)");
    assert_eq!((rules[2].action, rules[2].modulus), (RelabelAction::HashMod, 8));
}

/// What `outpostc explain` and `outpostc budget` print for the example
/// fleet, pinned so changes to the plan or the memory model show up in review.
#[test]
fn explain_and_budget_snapshots() {
    let plans = fleet();
    let ta = plans
        .iter()
        .find(|a| a.tenant.as_deref() == Some("tenant-a") && a.role == Role::Cluster)
        .unwrap();
    let bytes = plan::encode(&ta.plan).unwrap();
    insta::assert_snapshot!(
        "explain_cluster_02_tenant_a_cluster",
        outpost_compiler::explain::explain_text(&ta.plan, bytes.len())
    );
    let node = plans
        .iter()
        .find(|a| a.cluster == "cluster-03" && a.role == Role::Node)
        .unwrap();
    let bytes = plan::encode(&node.plan).unwrap();
    insta::assert_snapshot!(
        "explain_cluster_03_node",
        outpost_compiler::explain::explain_text(&node.plan, bytes.len())
    );
    let budgets = outpost_compiler::budget::cluster_budgets(&plans);
    insta::assert_snapshot!("budget_fleet", outpost_compiler::budget::budget_text(&budgets));
}

/// A spec directory: the fleet split over three files compiles to the same
/// plans, and a mistake in one file is reported in that file.
#[test]
fn a_directory_of_files_is_one_spec() {
    let text = std::fs::read_to_string(repo_path("examples/fleet.yaml")).unwrap();
    let at = |key: &str| text.find(&format!("\n{key}:")).unwrap() + 1;
    let (jobs, clusters) = (at("node"), at("clusters"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("00-receiver.yaml"), &text[..jobs]).unwrap();
    std::fs::write(dir.path().join("10-jobs.yml"), &text[jobs..clusters]).unwrap();
    std::fs::write(dir.path().join("20-clusters.yaml"), &text[clusters..]).unwrap();
    std::fs::write(dir.path().join("README.md"), "not part of the spec").unwrap();
    let split = load_spec(dir.path()).unwrap();
    assert!(split.diagnostics.is_empty(), "{}", split.render_text(100));
    assert_eq!(split.files.len(), 3);
    let whole = fleet();
    assert_eq!(split.plans.len(), whole.len());
    for (a, b) in split.plans.iter().zip(&whole) {
        assert_eq!(plan::encode(&a.plan).unwrap(), plan::encode(&b.plan).unwrap());
    }

    let broken = text[clusters..].replace(
        "location: edge-site-2",
        "location: edge-site-2\n    overrides: {scrape_timeout: 1 minute}",
    );
    std::fs::write(dir.path().join("20-clusters.yaml"), broken).unwrap();
    std::fs::write(
        dir.path().join("30-more.yaml"),
        "receiver:\n  url: https://other.example.net/\n",
    )
    .unwrap();
    let a = load_spec(dir.path()).unwrap();
    let json = a.render_json();
    let list = json["diagnostics"].as_array().unwrap();
    let codes: Vec<&str> = list.iter().map(|d| d["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["bad-duration", "duplicate-section"], "{json:#}");
    assert!(list[0]["file"].as_str().unwrap().ends_with("20-clusters.yaml"));
    assert_eq!(list[0]["path"], "clusters[1].overrides.scrape_timeout");
    assert_eq!(list[0]["line"], 8);
    assert!(list[1]["file"].as_str().unwrap().ends_with("30-more.yaml"));
    assert_eq!(
        (list[1]["line"].as_u64(), list[1]["column"].as_u64()),
        (Some(1), Some(1))
    );
}
