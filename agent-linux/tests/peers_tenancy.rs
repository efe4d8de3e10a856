//! cluster-02 end to end: the two tenant agents of the example fleet, run
//! from the committed golden plans (only the receiver URL, the KSM target
//! and the WAL dir are rewritten to loopback), scrape one shared
//! KSM-shaped target and write to one loopback receiver that records the
//! tenant header of every request. Each tenant must carry its own header
//! value and `tenant` label, and never the other tenant's namespaces or nodes.

use std::collections::BTreeSet;
use std::time::Duration;

use outpost_test_support::*;

/// Shaped like kube-state-metrics on a cluster whose nodes are labelled per tenant.
fn ksm_body() -> String {
    let mut body = String::from("# HELP kube_pod_info Information about pod.\n# TYPE kube_pod_info gauge\n");
    for (ns, pod, node) in [
        ("monitoring-tenant-a", "app-a-0", "node-a1"),
        ("monitoring-tenant-a", "app-a-1", "node-a2"),
        ("monitoring-tenant-b", "app-b-0", "node-b1"),
        ("monitoring", "kube-state-metrics-0", "node-a1"),
        ("kube-system", "coredns-0", "node-b1"),
    ] {
        body.push_str(&format!(
            "kube_pod_info{{namespace=\"{ns}\",pod=\"{pod}\",node=\"{node}\",host_ip=\"10.0.0.1\"}} 1\n"
        ));
    }
    body.push_str("# TYPE kube_pod_container_status_restarts_total counter\n");
    for (ns, pod) in [
        ("monitoring-tenant-a", "app-a-0"),
        ("monitoring-tenant-b", "app-b-0"),
        ("monitoring", "kube-state-metrics-0"),
    ] {
        body.push_str(&format!(
            "kube_pod_container_status_restarts_total{{namespace=\"{ns}\",pod=\"{pod}\",container=\"c\"}} 3\n"
        ));
    }
    body.push_str("# TYPE kube_namespace_status_phase gauge\n");
    for ns in ["monitoring-tenant-a", "monitoring-tenant-b", "monitoring"] {
        body.push_str(&format!(
            "kube_namespace_status_phase{{namespace=\"{ns}\",phase=\"Active\"}} 1\n"
        ));
    }
    body.push_str("# TYPE kube_node_labels gauge\n");
    for (node, tenant) in [
        ("node-a1", "tenant-a"),
        ("node-a2", "tenant-a"),
        ("node-b1", "tenant-b"),
    ] {
        body.push_str(&format!(
            "kube_node_labels{{node=\"{node}\",label_tenant=\"{tenant}\"}} 1\n"
        ));
    }
    body.push_str("# TYPE kube_node_info gauge\n");
    for node in ["node-a1", "node-a2", "node-b1"] {
        body.push_str(&format!(
            "kube_node_info{{node=\"{node}\",kernel_version=\"6.1\"}} 1\n"
        ));
    }
    body
}

struct TenantView {
    requests: usize,
    header_values: BTreeSet<String>,
    tenant_labels: BTreeSet<String>,
    namespaces: BTreeSet<String>,
    nodes: BTreeSet<String>,
    ksm_series: BTreeSet<String>,
}

/// Groups what the receiver saw by the `tenant` label of the series'
/// request (every series of one request must share it).
fn view_of(rx: &RecordingReceiver, header_value: &str) -> TenantView {
    let seen = rx.seen.lock().unwrap();
    let mut v = TenantView {
        requests: 0,
        header_values: BTreeSet::new(),
        tenant_labels: BTreeSet::new(),
        namespaces: BTreeSet::new(),
        nodes: BTreeSet::new(),
        ksm_series: BTreeSet::new(),
    };
    for r in seen.iter() {
        let req = r.request.as_ref().expect("every POST decodes");
        // Attribute the request by its series' tenant label, then check the header against it.
        let labels: BTreeSet<String> = req
            .timeseries
            .iter()
            .map(|t| t.label("tenant").unwrap_or("<none>").to_string())
            .collect();
        if !labels.contains(header_value) {
            continue;
        }
        v.requests += 1;
        v.tenant_labels.extend(labels);
        v.header_values.insert(
            r.headers
                .get("thanos-tenant")
                .cloned()
                .unwrap_or_else(|| "<none>".into()),
        );
        for t in &req.timeseries {
            if t.label("job") != Some("kube-state-metrics") {
                continue;
            }
            if let Some(ns) = t.label("namespace") {
                v.namespaces.insert(ns.to_string());
            }
            if let Some(node) = t.label("node") {
                v.nodes.insert(node.to_string());
            }
            if !matches!(t.label("__name__"), Some("up" | "scrape_samples_scraped"))
                && !t.label("__name__").unwrap_or("").starts_with("scrape_")
            {
                v.ksm_series.insert(t.key());
            }
        }
    }
    v
}

#[test]
fn cluster_02_tenants_receive_only_their_own_ksm_series_under_their_own_header() {
    let dir = tempfile::tempdir().unwrap();
    let ksm = TargetServer::start(ksm_body());
    let rx = RecordingReceiver::start(Box::new(|_| (200, Vec::new())));

    let mut agents = Vec::new();
    for tenant in ["tenant-a", "tenant-b"] {
        let mut plan = golden_plan(&format!("cluster-02/{tenant}/cluster.plan"));
        let before = describe(&plan);
        // The golden plan must be what the fleet says, before the test touches it.
        let header = plan
            .receiver
            .tenant_header
            .expect("tenant plans carry a tenant header");
        assert_eq!(plan.str(header.name), "THANOS-TENANT", "{before}");
        assert_eq!(plan.str(header.value), tenant, "{before}");
        assert_eq!(
            plan.agent.tenant.map(|t| plan.str(t).to_string()).as_deref(),
            Some(tenant)
        );
        let wal = dir.path().join(format!("wal-{tenant}"));
        to_loopback(&mut plan, &rx.url(), &wal);
        let ksm_job = plan
            .scrape_jobs
            .iter()
            .position(|j| plan.str(j.name) == "kube-state-metrics")
            .unwrap_or_else(|| panic!("no kube-state-metrics job in {before}"));
        let target = intern(&mut plan, &ksm.address());
        plan.scrape_jobs[ksm_job].targets = vec![target];
        // Only KSM matters here; other cluster-wide jobs would scrape names that do not resolve.
        plan.scrape_jobs.retain(|j| j.targets == vec![target]);
        let path = write_plan(dir.path(), &format!("{tenant}.plan"), &plan);
        let log = dir.path().join(format!("{tenant}.log"));
        agents.push((tenant, outpost!().start(&path, free_port(), "node-x", &log), log));
    }

    // Two scrape rounds of each tenant's KSM job at least.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let a = view_of(&rx, "tenant-a");
        let b = view_of(&rx, "tenant-b");
        if a.ksm_series.len() >= 6 && b.ksm_series.len() >= 4 && rx.count() >= 4 {
            break;
        }
        if std::time::Instant::now() > deadline {
            let logs: String = agents
                .iter()
                .map(|(t, _, log)| format!("--- {t}\n{}", std::fs::read_to_string(log).unwrap_or_default()))
                .collect();
            panic!(
                "after 30 s: {} requests, tenant-a {:?}, tenant-b {:?}\n{logs}",
                rx.count(),
                a.ksm_series,
                b.ksm_series
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for (_, agent, _) in agents.iter_mut() {
        assert!(agent.terminate(Duration::from_secs(5)).is_some());
    }
    let logs: String = agents
        .iter()
        .map(|(t, _, log)| format!("--- {t}\n{}", std::fs::read_to_string(log).unwrap_or_default()))
        .collect();

    // Every request carries exactly one tenant: no request mixes both.
    for r in rx.seen.lock().unwrap().iter() {
        let req = r.request.as_ref().unwrap();
        let tenants: BTreeSet<&str> = req
            .timeseries
            .iter()
            .map(|t| t.label("tenant").unwrap_or("<none>"))
            .collect();
        assert_eq!(
            tenants.len(),
            1,
            "request {} mixes tenants {tenants:?}",
            r.sequence
        );
        let header = r.headers.get("thanos-tenant").map(String::as_str);
        assert_eq!(
            header,
            tenants.first().copied(),
            "request {}: header vs tenant label",
            r.sequence
        );
        assert_eq!(r.path, "/api/v1/write");
    }

    let a = view_of(&rx, "tenant-a");
    let b = view_of(&rx, "tenant-b");
    assert!(a.requests > 0 && b.requests > 0, "{logs}");
    assert_eq!(a.header_values, BTreeSet::from(["tenant-a".to_string()]));
    assert_eq!(b.header_values, BTreeSet::from(["tenant-b".to_string()]));
    assert_eq!(a.tenant_labels, BTreeSet::from(["tenant-a".to_string()]));
    assert_eq!(b.tenant_labels, BTreeSet::from(["tenant-b".to_string()]));

    // Exactly the tenant's namespace, and the tenant's nodes only via kube_node_labels
    // or its own pods.
    assert_eq!(
        a.namespaces,
        BTreeSet::from(["monitoring-tenant-a".to_string()]),
        "{:#?}",
        a.ksm_series
    );
    assert_eq!(
        b.namespaces,
        BTreeSet::from(["monitoring-tenant-b".to_string()]),
        "{:#?}",
        b.ksm_series
    );
    assert_eq!(
        a.nodes,
        BTreeSet::from(["node-a1".to_string(), "node-a2".to_string()])
    );
    assert_eq!(b.nodes, BTreeSet::from(["node-b1".to_string()]));
    // The full KSM series count per tenant: 2 pod_info + 1 restarts + 1 phase + 2 node_labels
    // for tenant-a; 1 + 1 + 1 + 1 for tenant-b.
    assert_eq!(a.ksm_series.len(), 6, "{:#?}", a.ksm_series);
    assert_eq!(b.ksm_series.len(), 4, "{:#?}", b.ksm_series);
    for series in a.ksm_series.iter().chain(&b.ksm_series) {
        assert!(
            !series.contains("\"monitoring\"") && !series.contains("kube-system"),
            "{series}"
        );
        assert!(!series.contains("kube_node_info"), "{series}");
    }
}
