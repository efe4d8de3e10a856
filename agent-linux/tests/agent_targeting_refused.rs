//! Plans whose jobs discover their targets (plan version 3) load: the agent runs Kubernetes
//! discovery and relabels what it finds (see discovery_agent.rs). Target relabeling of static
//! targets is not run yet, so a plan asking for it is refused by name instead of scraping
//! other targets than the spec asked for.

use outpost_agent::agent::load_plan;
use outpost_core::plan::{Discovery, KubeRole, RelabelAction, RelabelRule, Targeting};
use outpost_test_support::{write_plan, PlanBuilder};

#[test]
fn a_plan_with_discovery_loads_and_one_relabeling_static_targets_is_refused_naming_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let plain = PlanBuilder::new().scrape_job("apps", &["127.0.0.1:9100"]).build();
    let path = write_plan(dir.path(), "plain.plan", &plain);
    assert!(load_plan(&path).is_ok());

    let mut discovering = plain.clone();
    let job = &mut discovering.scrape_jobs[0];
    job.targets.clear();
    job.targeting = Targeting {
        relabel: Vec::new(),
        discovery: Some(Discovery {
            role: KubeRole::EndpointSlice,
            namespaces: Vec::new(),
            own_node: false,
            max_targets: 10,
            max_object_bytes: 65_536,
            max_store_bytes: 1 << 20,
            api_server: None,
        }),
    };
    let path = write_plan(dir.path(), "discovering.plan", &discovering);
    let loaded = load_plan(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        loaded.scrape_jobs[0].targeting,
        discovering.scrape_jobs[0].targeting
    );

    let mut relabeling = plain.clone();
    let job = &mut relabeling.scrape_jobs[0];
    let any = job.name;
    job.targeting.relabel.push(RelabelRule {
        action: RelabelAction::Keep,
        source_labels: vec![any],
        separator: any,
        regex: any,
        modulus: 0,
        target_label: any,
        replacement: any,
    });
    let path = write_plan(dir.path(), "relabeling.plan", &relabeling);
    let error = load_plan(&path).unwrap_err();
    assert!(
        error.contains("job apps relabels its static targets, which this agent does not run yet"),
        "{error}"
    );
}
