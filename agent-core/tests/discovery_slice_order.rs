//! EndpointSlice discovery watches pods and slices on separate connections, so a new pod's
//! event may arrive after the slice that already names it. The slice's endpoint must then get
//! the pod's labels when the pod arrives, as it would had the events come the other way round
//! (vmagent, which rebuilds from its caches, shows them; `agent-linux/tests/discovery_vmagent.rs`
//! compares with it).

use outpost_core::discovery::watch::Phase;
use outpost_core::discovery::{KubeDiscovery, Resource};
use outpost_core::plan::{Discovery, KubeRole, Targeting};
use outpost_test_support::{intern, PlanBuilder};

const SLICE: &str = r#"{"metadata":{"name":"dns-x1","namespace":"kube-system","resourceVersion":"11","labels":{"kubernetes.io/service-name":"kube-dns"}},"addressType":"IPv4","endpoints":[{"addresses":["10.1.0.7"],"conditions":{"ready":true},"targetRef":{"kind":"Pod","namespace":"kube-system","name":"coredns-1"}}],"ports":[{"name":"metrics","port":9153,"protocol":"TCP"}]}"#;
const POD: &str = r#"{"metadata":{"name":"coredns-1","namespace":"kube-system","resourceVersion":"12","labels":{"k8s-app":"kube-dns"}},"spec":{"nodeName":"node-a","containers":[{"name":"coredns","ports":[{"name":"metrics","containerPort":9153,"protocol":"TCP"}]}]},"status":{"phase":"Running","podIP":"10.1.0.7"}}"#;

/// Lists every resource empty and starts every watch, each answered `200`.
fn watching(d: &mut KubeDiscovery) {
    let mut watches = 0;
    while let Some((w, r)) = d.poll_request(0) {
        d.handle_head(w, 200);
        match r.phase {
            Phase::List => {
                let empty = br#"{"kind":"List","metadata":{"resourceVersion":"10"},"items":[]}"#;
                assert!(d.handle_body(w, empty));
                d.handle_end(w, 0);
            }
            Phase::Watch => watches += 1,
        }
    }
    assert!(d.synced());
    assert_eq!(watches, 3, "services, pods and slices");
}

fn watch_of(d: &KubeDiscovery, r: Resource) -> usize {
    d.watches.iter().position(|w| w.resource == r).unwrap()
}

#[test]
fn a_pod_seen_after_the_slice_naming_it_labels_its_endpoint() {
    let mut plan = PlanBuilder::new()
        .scrape_job("coredns", &["127.0.0.1:9100"])
        .build();
    plan.scrape_jobs[0].targets.clear();
    let ns = intern(&mut plan, "kube-system");
    plan.scrape_jobs[0].targeting = Targeting {
        relabel: Vec::new(),
        discovery: Some(Discovery {
            role: KubeRole::EndpointSlice,
            namespaces: vec![ns],
            own_node: false,
            max_targets: 10,
            max_object_bytes: 64 * 1024,
            max_store_bytes: 1 << 20,
            api_server: None,
        }),
    };
    let mut d = KubeDiscovery::new(&plan, &plan.scrape_jobs[0], "", 1).unwrap();
    watching(&mut d);
    let pod_label = |d: &KubeDiscovery| {
        let f = d
            .targets
            .slots
            .iter()
            .find_map(|s| s.found.as_deref())
            .expect("the endpoint is a target");
        f.discovered
            .iter()
            .find(|(n, _)| n == "__meta_kubernetes_pod_name")
            .map(|(_, v)| v.clone())
    };

    let slices = watch_of(&d, Resource::EndpointSlices);
    assert!(d.handle_body(
        slices,
        format!("{{\"type\":\"ADDED\",\"object\":{SLICE}}}\n").as_bytes()
    ));
    assert_eq!(pod_label(&d), None, "the pod is not known yet");
    let pods = watch_of(&d, Resource::Pods);
    assert!(d.handle_body(
        pods,
        format!("{{\"type\":\"ADDED\",\"object\":{POD}}}\n").as_bytes()
    ));
    assert_eq!(pod_label(&d).as_deref(), Some("coredns-1"));
    assert_eq!(d.targets.kept(), 1);
}
