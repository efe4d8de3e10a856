//! What realistic specs cost against the default 256Mi budget, and what the
//! memory-budget error says when a spec does not fit.

use outpost_compiler::analyze;
use outpost_core::plan::Plan;
use std::fmt::Write;

const MIB: u64 = 1 << 20;

/// A node-role spec with node collectors and `jobs` plain scrape jobs of
/// `targets_each` targets, at the default limits, queue and budget.
fn node_spec(jobs: usize, targets_each: usize) -> String {
    let mut spec = String::from(
        "receiver:\n  url: https://receive.example.net/api/v1/receive\nnode:\n  collectors: default\nscrape_jobs:\n",
    );
    for j in 0..jobs {
        let targets: Vec<String> = (0..targets_each)
            .map(|t| format!("\"app-{j}-{t}.example.net:8080\""))
            .collect();
        write!(
            spec,
            "  - name: app-{j}\n    scope: node\n    targets: [{}]\n",
            targets.join(", ")
        )
        .unwrap();
    }
    spec.push_str("clusters:\n  - name: edge-1\n    role: edge\n");
    spec
}

fn node_plan(spec: &str) -> Plan {
    let a = analyze("spec.yaml", spec);
    assert!(!a.has_errors(), "{:#?}", a.diagnostics);
    a.plans
        .into_iter()
        .find(|p| p.plan.node.is_some())
        .expect("a node-role plan")
        .plan
}

/// The memory-budget error of `spec`, printed for the test's log.
fn budget_error(spec: &str) -> outpost_compiler::Diagnostic {
    let a = analyze("spec.yaml", spec);
    let d = a
        .diagnostics
        .into_iter()
        .find(|d| d.code == "memory-budget")
        .expect("a memory-budget error");
    eprintln!("{}\nhelp: {}", d.message, d.help.as_deref().unwrap_or(""));
    d
}

/// `spec` with every job's limits set through `defaults`: `samples`, and `body_size` if given.
fn with_default_limits(spec: &str, samples: u64, body_size: Option<&str>) -> String {
    let body = body_size
        .map(|b| format!("    body_size: {b}\n"))
        .unwrap_or_default();
    format!("defaults:\n  limits:\n    samples: {samples}\n{body}{spec}")
}

/// The first limits the error's help suggests (`samples <= N`, with `and
/// body_size <= S` when both must go down). They must fit; one more sample
/// alone must not. Returns the spec with them.
fn check_suggested_limits(spec: &str, d: &outpost_compiler::Diagnostic) -> String {
    let help = d.help.as_deref().unwrap();
    let after = help
        .split("samples <= ")
        .nth(1)
        .unwrap_or_else(|| panic!("no samples in {help}"));
    let samples: u64 = after
        .split_whitespace()
        .next()
        .and_then(|n| n.trim_end_matches(',').parse().ok())
        .unwrap_or_else(|| panic!("no samples in {help}"));
    let body = after
        .strip_prefix(&format!("{samples} and body_size <= "))
        .and_then(|s| s.split([';', ',', ' ']).next());
    let fixed = with_default_limits(spec, samples, body);
    let worst = node_plan(&fixed).worst_case_memory().total();
    eprintln!(
        "fits at samples {samples}, body_size {body:?}: {:.1} MiB",
        worst as f64 / MIB as f64
    );
    assert!(worst <= 256 * MIB);
    if body.is_none() {
        budget_error(&with_default_limits(spec, samples + 1, body));
    }
    fixed
}

#[test]
fn the_node_and_two_jobs_at_the_default_limits_fit_the_default_budget() {
    let plan = node_plan(&node_spec(2, 1));
    let worst = plan.worst_case_memory().total();
    eprintln!("node + 2 jobs: {:.1} MiB", worst as f64 / MIB as f64);
    assert_eq!(plan.budget.memory_limit_bytes, 256 * MIB);
    assert!(worst <= 256 * MIB);
}

#[test]
fn four_jobs_at_the_default_limits_are_refused_naming_a_job_with_limits_that_fit() {
    let spec = node_spec(4, 1);
    let d = budget_error(&spec);
    assert!(
        d.message.contains("job app-0 holds the most: 1 target(s)"),
        "{}",
        d.message
    );
    assert_eq!(d.path.to_string(), "scrape_jobs[0].name");
    let help = d.help.as_deref().unwrap();
    assert!(
        help.contains("job app-0 and the other 4 job(s) with the same limits"),
        "{help}"
    );
    check_suggested_limits(&spec, &d);
}

#[test]
fn thirty_targets_at_the_default_limits_are_refused_naming_the_job_with_limits_that_fit() {
    let spec = node_spec(1, 30);
    let d = budget_error(&spec);
    assert!(
        d.message.contains("job app-0 holds the most: 30 target(s)"),
        "{}",
        d.message
    );
    assert_eq!(d.path.to_string(), "scrape_jobs[0].name");
    check_suggested_limits(&spec, &d);
    // With the job's own limits, the error points at them.
    let own = spec.replace(
        "    scope: node\n",
        "    scope: node\n    limits:\n      body_size: 10Mi\n",
    );
    assert_eq!(budget_error(&own).path.to_string(), "scrape_jobs[0].limits");
}

#[test]
fn the_seed_queue_in_the_example_fleet_is_still_refused_at_the_queue() {
    let fleet =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/fleet.yaml")).unwrap();
    let seed = fleet.replace(
        "    min_shards: 1\n    max_shards: 4\n",
        "    min_shards: 10\n    max_shards: 100\n",
    );
    assert_ne!(seed, fleet, "the example's queue changed; update this test");
    let a = analyze("fleet.yaml", &seed);
    let d = a
        .diagnostics
        .iter()
        .find(|d| d.code == "memory-budget")
        .expect("the seed's queue does not fit");
    assert!(
        d.message.contains("100 shards x (20000 + 10000) samples"),
        "{}",
        d.message
    );
    assert!(d.path.to_string().ends_with("queue.max_shards"), "{}", d.path);
}
