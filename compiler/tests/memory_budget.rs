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

/// `spec` with `settings` (YAML lines, two spaces in) under `defaults`.
fn with_defaults(spec: &str, settings: &str) -> String {
    format!("defaults:\n{settings}{spec}")
}

/// The number after `key` in `text`, up to a separator.
fn number_after(text: &str, key: &str) -> u64 {
    let after = text
        .split(key)
        .nth(1)
        .unwrap_or_else(|| panic!("no {key} in {text}"));
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number after {key} in {text}"))
}

fn worst_mib(plan: &Plan) -> f64 {
    plan.worst_case_memory().total() as f64 / MIB as f64
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
fn four_jobs_at_the_default_limits_fit_the_default_budget() {
    let plan = node_plan(&node_spec(4, 1));
    eprintln!("node + 4 jobs: {:.1} MiB", worst_mib(&plan));
    assert!(plan.worst_case_memory().total() <= 256 * MIB);
}

#[test]
fn thirty_static_targets_at_the_default_limits_fit_the_default_budget() {
    let plan = node_plan(&node_spec(1, 30));
    let m = plan.worst_case_memory();
    eprintln!("node + 30 targets: {:.1} MiB {m:?}", worst_mib(&plan));
    assert_eq!(plan.target_groups().iter().map(|g| g.targets).sum::<u64>(), 32);
    assert!(m.total() <= 256 * MIB);
    // The shared parts are charged once, whatever the number of targets.
    let sharing = plan.sharing_bounds();
    assert_eq!(
        Some(sharing),
        plan.sharing,
        "the defaults, as 32 targets need them"
    );
    assert_eq!(
        m.scrape_slots,
        u64::from(sharing.scrape_concurrency) * plan.scrape_slot_bytes()
    );
    assert_eq!(m.series_pool, sharing.max_series_bytes);
}

#[test]
fn a_discovery_job_allowed_a_hundred_targets_fits_the_default_budget() {
    let spec = "receiver:\n  url: https://receive.example.net/api/v1/receive\nnode:\n  collectors: default\nscrape_jobs:\n  - name: pods\n    scope: node\n    discovery:\n      role: pod\n      max_targets: 100\nclusters:\n  - name: edge-1\n    role: edge\n";
    let plan = node_plan(spec);
    eprintln!("node + discovery of 100: {:.1} MiB", worst_mib(&plan));
    assert_eq!(plan.target_groups().iter().map(|g| g.targets).sum::<u64>(), 102);
    assert!(plan.worst_case_memory().total() <= 256 * MIB);
}

#[test]
fn too_many_scrape_slots_are_refused_at_scrape_concurrency_with_one_that_fits() {
    // 40 slots for 42 targets (a slot beyond the targets would never be used).
    let spec = with_defaults(&node_spec(2, 20), "  scrape_concurrency: 40\n");
    let d = budget_error(&spec);
    assert_eq!(d.path.to_string(), "defaults.scrape_concurrency");
    assert!(d.message.contains("scrape_concurrency 40 x"), "{}", d.message);
    let help = d.help.as_deref().unwrap();
    let fits = number_after(help, "scrape_concurrency <= ");
    let fixed = with_defaults(&node_spec(2, 20), &format!("  scrape_concurrency: {fits}\n"));
    assert!(node_plan(&fixed).worst_case_memory().total() <= 256 * MIB);
    budget_error(&with_defaults(
        &node_spec(2, 20),
        &format!("  scrape_concurrency: {}\n", fits + 1),
    ));
}

#[test]
fn a_series_pool_too_large_is_refused_at_its_max_size_with_one_that_fits() {
    // Eight targets whose tables could together reserve more than 300Mi.
    let spec = with_defaults(&node_spec(4, 2), "  series_pool:\n    max_size: 300Mi\n");
    let d = budget_error(&spec);
    assert_eq!(d.path.to_string(), "defaults.series_pool.max_size");
    assert!(d.message.contains("series_pool holds the most"), "{}", d.message);
    let fits = number_after(d.help.as_deref().unwrap(), "series_pool.max_size <= ");
    let fixed = with_defaults(
        &node_spec(4, 2),
        &format!("  series_pool:\n    max_size: {fits}Ki\n"),
    );
    assert!(node_plan(&fixed).worst_case_memory().total() <= 256 * MIB);
}

#[test]
fn thousands_of_targets_are_refused_at_their_job_with_a_count_that_fits() {
    let spec = node_spec(1, 2500);
    let d = budget_error(&spec);
    assert_eq!(d.path.to_string(), "scrape_jobs[0].name");
    assert!(
        d.message.contains("job app-0 holds the most: 2500 target(s)"),
        "{}",
        d.message
    );
    let fits = number_after(d.help.as_deref().unwrap(), "at most ");
    let plan = node_plan(&node_spec(1, fits as usize));
    assert!(plan.worst_case_memory().total() <= 256 * MIB);
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
