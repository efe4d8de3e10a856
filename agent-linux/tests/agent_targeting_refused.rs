//! Plans whose jobs relabel or discover their targets (plan version 3) are compiled, but this
//! agent does not run discovery yet: it refuses such a plan by name instead of scraping
//! other targets than the spec asked for.

use outpost_agent::agent::load_plan;
use outpost_core::plan::{Discovery, KubeRole, Targeting};
use outpost_test_support::{write_plan, PlanBuilder};

#[test]
fn a_plan_with_discovery_is_refused_naming_the_job_and_a_static_one_loads() {
    let dir = tempfile::tempdir().unwrap();
    let plain = PlanBuilder::new().scrape_job("apps", &["127.0.0.1:9100"]).build();
    let path = write_plan(dir.path(), "plain.plan", &plain);
    assert!(load_plan(&path).is_ok());

    let mut discovering = plain.clone();
    discovering.scrape_jobs[0].targeting = Targeting {
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
    let error = load_plan(&path).unwrap_err();
    assert!(
        error.contains("job apps relabels or discovers its targets, which this agent does not run yet"),
        "{error}"
    );
}
