//! What Kubernetes discovery holds for 1,000 discovered pods, measured with the counting
//! allocator, against what the worst-case model charges it (`Discovery::worst_case_bytes`,
//! the `discovery` row of `outpostc explain`): the model must not be exceeded, and the
//! measurement is printed per 1,000 targets for the issue note.

use outpost_core::discovery::KubeDiscovery;
use outpost_core::plan::{Discovery, KubeRole, Targeting};
use outpost_core::sizing::{CONNECTION_BYTES, DECODED_BYTES_PER_JSON_BYTE, DISCOVERED_TARGET_BYTES};
use outpost_test_support::{
    live_heap_bytes, peak_heap_bytes, reset_heap_bytes, CountingAllocator, PlanBuilder,
};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const PODS: usize = 1_000;

/// A pod as the API server writes it, with the labels and annotations a Deployment's pod
/// typically carries (about 1.3 KiB of JSON).
fn pod(i: usize) -> String {
    format!(
        r#"{{"metadata":{{"name":"shop-{i}-7d9c8b6f5-x{i:05}","namespace":"shop","uid":"4f1c2a9e-{i:04}-4b1e-9c7d-2a6e8f0b1c3d","resourceVersion":"{rv}","labels":{{"app":"shop","pod-template-hash":"7d9c8b6f5","tier":"web","version":"v1.4.2"}},"annotations":{{"prometheus.io/scrape":"true","prometheus.io/port":"9102","kubectl.kubernetes.io/restartedAt":"2026-11-29T10:00:00Z"}},"ownerReferences":[{{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"shop-7d9c8b6f5","uid":"0c1d","controller":true,"blockOwnerDeletion":true}}]}},"spec":{{"nodeName":"node-a","containers":[{{"name":"shop","image":"registry.example.net/shop/web:1.4.2","ports":[{{"name":"http","containerPort":8080,"protocol":"TCP"}}],"resources":{{"requests":{{"cpu":"100m","memory":"128Mi"}}}}}}]}},"status":{{"phase":"Running","podIP":"10.1.{a}.{b}","hostIP":"192.168.1.10","conditions":[{{"type":"Ready","status":"True"}}],"containerStatuses":[{{"name":"shop","containerID":"containerd://{i:064}","ready":true}}]}}}}"#,
        rv = 1000 + i,
        a = i / 250,
        b = i % 250
    )
}

#[test]
fn a_thousand_discovered_pods_stay_within_the_modelled_bytes() {
    let mut plan = PlanBuilder::new().scrape_job("shop", &["127.0.0.1:9100"]).build();
    plan.scrape_jobs[0].targets.clear();
    let discovery = Discovery {
        role: KubeRole::Pod,
        namespaces: Vec::new(),
        own_node: true,
        max_targets: PODS as u32,
        max_object_bytes: 64 * 1024,
        max_store_bytes: 8 << 20,
        api_server: None,
    };
    plan.scrape_jobs[0].targeting = Targeting {
        relabel: Vec::new(),
        discovery: Some(discovery.clone()),
    };
    let items: Vec<String> = (0..PODS).map(pod).collect();
    let body = format!(
        r#"{{"kind":"PodList","apiVersion":"v1","metadata":{{"resourceVersion":"5000"}},"items":[{}]}}"#,
        items.join(",")
    );

    reset_heap_bytes();
    let mut d = KubeDiscovery::new(&plan, &plan.scrape_jobs[0], "node-a", 1).unwrap();
    let (w, _) = d.poll_request(0).unwrap();
    d.handle_head(w, 200);
    for chunk in body.as_bytes().chunks(16 * 1024) {
        assert!(d.handle_body(w, chunk));
    }
    d.handle_end(w, 1);
    assert!(d.synced());
    assert_eq!(d.targets.kept(), PODS);
    let held = live_heap_bytes();
    let peak = peak_heap_bytes();

    // The model charges the watch's connection too, which this test does not open.
    let modelled = discovery.worst_case_bytes() - CONNECTION_BYTES;
    eprintln!(
        "{PODS} pods ({} KiB of JSON): discovery holds {} KiB after the list, {} KiB at its peak; \
         the model charges {} KiB (without the connection); {} B held per target",
        body.len() / 1024,
        held / 1024,
        peak / 1024,
        modelled / 1024,
        held / PODS as i64
    );
    assert!(
        peak as u64 <= modelled,
        "peak {peak} B over the modelled {modelled} B"
    );
    // What the model leans on: what is held stays within the decoded share of what the store
    // accounts, a slot per target and one object being decoded, whatever `max_store_bytes` is.
    let stored = d.stored_bytes() as u64;
    let leaned_on = DECODED_BYTES_PER_JSON_BYTE * (stored + u64::from(discovery.max_object_bytes))
        + u64::from(discovery.max_targets) * DISCOVERED_TARGET_BYTES;
    eprintln!(
        "store accounts {} KiB; the model leans on {} KiB",
        stored / 1024,
        leaned_on / 1024
    );
    assert!(peak as u64 <= leaned_on, "peak {peak} B over {leaned_on} B");
    assert!(d.stored_bytes() <= discovery.max_store_bytes as usize);
    drop(d);
}
