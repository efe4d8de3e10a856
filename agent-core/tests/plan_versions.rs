//! Plan format versions 1 to 3: a plan that needs nothing new stays version 1, byte for byte;
//! one that names a newer collector or sets node options is version 2 and round-trips; one
//! whose WAL holds records in memory (spill mode) or whose scrape jobs relabel or discover their
//! targets is version 3; an older header cannot smuggle in what only a newer version may hold.

use outpost_core::plan::{
    self, Collector, Discovery, KubeRole, NodeOptions, PlanError, Spill, StrId, Targeting, Textfile, WalMode,
};
use outpost_test_support::plan::PlanBuilder;
use outpost_test_support::repo_path;

/// A version-1 node plan as outpostc wrote it before version 2 existed: cluster-03's golden
/// node plan until examples/fleet.yaml moved to node_exporter's default collectors (which need
/// version 2). Kept as it was, byte for byte.
fn golden_node_plan() -> Vec<u8> {
    std::fs::read(repo_path("agent-core/tests/data/node-v1.plan")).unwrap()
}

fn version(bytes: &[u8]) -> u16 {
    u16::from_le_bytes([bytes[8], bytes[9]])
}

#[test]
fn version_one_plans_still_load_and_encode_identically() {
    let bytes = golden_node_plan();
    assert_eq!(version(&bytes), 1);
    let plan = plan::decode(&bytes).unwrap();
    assert_eq!(plan.node.as_ref().unwrap().options, NodeOptions::default());
    assert_eq!(plan.format_version(), 1);
    assert_eq!(plan::encode(&plan).unwrap(), bytes);
}

#[test]
fn newer_collectors_and_options_make_a_version_two_plan_that_round_trips() {
    let mut plan = plan::decode(&golden_node_plan()).unwrap();
    let node = plan.node.as_mut().unwrap();
    node.collectors.push(Collector::Netstat);
    let bytes = plan::encode(&plan).unwrap();
    assert_eq!(version(&bytes), 2);
    assert_eq!(plan::decode(&bytes).unwrap(), plan);

    // Options alone need version 2 too.
    let mut plan = plan::decode(&golden_node_plan()).unwrap();
    plan.strings.push("^(veth|cali).*".into());
    plan.strings.push("/var/lib/node-exporter".into());
    let pattern = StrId(plan.strings.len() as u32 - 2);
    let directory = StrId(plan.strings.len() as u32 - 1);
    let node = plan.node.as_mut().unwrap();
    node.options.netdev_device_exclude = Some(pattern);
    node.options.filesystem_mount_timeout_ms = 250;
    node.options.textfile = Some(Textfile {
        directory,
        max_files: 16,
        max_file_bytes: 65_536,
    });
    let bytes = plan::encode(&plan).unwrap();
    assert_eq!(version(&bytes), 2);
    let decoded = plan::decode(&bytes).unwrap();
    assert_eq!(decoded, plan);
    assert_eq!(decoded.node.unwrap().options.filesystem_mount_timeout_ms, 250);
}

#[test]
fn a_version_one_header_on_a_version_two_payload_is_refused() {
    let mut plan = plan::decode(&golden_node_plan()).unwrap();
    plan.node.as_mut().unwrap().collectors.push(Collector::Timex);
    let mut bytes = plan::encode(&plan).unwrap();
    // Relabel it version 1 and drop the options section, fixing length and checksum.
    let payload_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let options_len = postcard::to_allocvec(&NodeOptions::default()).unwrap().len();
    bytes.truncate(20 + payload_len - options_len);
    bytes[8..10].copy_from_slice(&1u16.to_le_bytes());
    let new_len = (bytes.len() - 20) as u32;
    bytes[12..16].copy_from_slice(&new_len.to_le_bytes());
    let crc = crc32fast::hash(&bytes[20..]);
    bytes[16..20].copy_from_slice(&crc.to_le_bytes());
    match plan::decode(&bytes) {
        Err(PlanError::Invalid { field, .. }) => assert_eq!(field, "node.collectors"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_option_naming_a_missing_string_is_refused() {
    let mut plan = plan::decode(&golden_node_plan()).unwrap();
    plan.node.as_mut().unwrap().options.netstat_fields = Some(StrId(1_000_000));
    let bytes = plan::encode(&plan).unwrap();
    match plan::decode(&bytes) {
        Err(PlanError::BadString { field, .. }) => assert_eq!(field, "node.options.netstat_fields"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_newer_version_is_refused_with_the_range_this_agent_reads() {
    let mut bytes = golden_node_plan();
    bytes[8..10].copy_from_slice(&5u16.to_le_bytes());
    let error = plan::decode(&bytes).unwrap_err().to_string();
    assert!(
        error.contains("version 5 is not supported by this agent (it reads versions 1 to 4)"),
        "{error}"
    );
}

#[test]
fn a_discovering_job_makes_a_version_three_plan_that_round_trips_and_is_charged_its_targets() {
    let fixed = PlanBuilder::new().scrape_job("pods", &["127.0.0.1:9100"]).build();
    let bytes = plan::encode(&fixed).unwrap();
    assert!(version(&bytes) < 3, "static targets need no version 3");

    let mut plan = fixed.clone();
    let namespace = plan::StrId(plan.strings.len() as u32);
    plan.strings.push("apps".into());
    plan.scrape_jobs[0].targeting = Targeting {
        relabel: Vec::new(),
        discovery: Some(Discovery {
            role: KubeRole::Pod,
            namespaces: vec![namespace],
            own_node: true,
            max_targets: 40,
            max_object_bytes: 256 * 1024,
            max_store_bytes: 2 << 20,
            api_server: None,
        }),
    };
    let bytes = plan::encode(&plan).unwrap();
    assert_eq!(version(&bytes), 3);
    assert_eq!(plan::decode(&bytes).unwrap(), plan);
    // Each discovered target may be scraped: 40 more than the one static target.
    let targets = |p: &plan::Plan| -> u64 { p.target_groups().iter().map(|g| g.targets).sum() };
    assert_eq!(targets(&plan), targets(&fixed) + 40);
    assert!(plan.worst_case_memory().total() > fixed.worst_case_memory().total());

    // Only the pod role watches its own node.
    let mut wrong = plan.clone();
    let d = wrong.scrape_jobs[0].targeting.discovery.as_mut().unwrap();
    d.role = KubeRole::EndpointSlice;
    match plan::decode(&plan::encode(&wrong).unwrap()) {
        Err(PlanError::Invalid { field, .. }) => {
            assert_eq!(field, "scrape_jobs.targeting.discovery.own_node")
        }
        other => panic!("{other:?}"),
    }
}

fn spill() -> WalMode {
    WalMode::Spill(Spill {
        after_ms: 30_000,
        max_held_bytes: 8 << 20,
    })
}

#[test]
fn spill_mode_makes_a_version_three_plan_and_older_plans_append_before_send() {
    let old = plan::decode(&golden_node_plan()).unwrap();
    assert_eq!(old.wal.mode, WalMode::Append, "what agents before version 3 did");
    let mut plan = old.clone();
    plan.wal.mode = spill();
    let bytes = plan::encode(&plan).unwrap();
    assert_eq!(version(&bytes), 3);
    assert_eq!(plan::decode(&bytes).unwrap(), plan);
    // Back to append: the oldest version that holds it again.
    plan.wal.mode = WalMode::Append;
    assert_eq!(plan::encode(&plan).unwrap(), golden_node_plan());
}

#[test]
fn a_version_two_header_on_a_spill_mode_payload_is_refused() {
    let mut plan = plan::decode(&golden_node_plan()).unwrap();
    plan.wal.mode = spill();
    let mut bytes = plan::encode(&plan).unwrap();
    bytes[8..10].copy_from_slice(&2u16.to_le_bytes());
    match plan::decode(&bytes) {
        Err(PlanError::TrailingBytes(n)) => {
            // Version 3's two additions: the WAL mode, then each job's targeting.
            let targeting: Vec<&Targeting> = plan.scrape_jobs.iter().map(|j| &j.targeting).collect();
            let added = postcard::to_allocvec(&spill()).unwrap().len()
                + postcard::to_allocvec(&targeting).unwrap().len();
            assert_eq!(n, added)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_spill_window_of_zero_or_held_memory_below_one_batch_is_refused() {
    let mut plan = plan::decode(&golden_node_plan()).unwrap();
    plan.wal.mode = WalMode::Spill(Spill {
        after_ms: 0,
        max_held_bytes: 8 << 20,
    });
    let bytes = plan::encode(&plan).unwrap();
    match plan::decode(&bytes) {
        Err(PlanError::Invalid { field, .. }) => assert_eq!(field, "wal.mode.spill.after_ms"),
        other => panic!("{other:?}"),
    }
    plan.wal.mode = WalMode::Spill(Spill {
        after_ms: 30_000,
        max_held_bytes: plan.queue.max_batch_bytes,
    });
    let bytes = plan::encode(&plan).unwrap();
    match plan::decode(&bytes) {
        Err(PlanError::Invalid { field, .. }) => assert_eq!(field, "wal.mode.spill.max_held_bytes"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn sharing_makes_a_version_four_plan_and_older_plans_keep_a_slot_and_a_table_per_target() {
    let fixed = PlanBuilder::new()
        .scrape_job("app", &["127.0.0.1:9100", "127.0.0.1:9101"])
        .build();
    let old = plan::decode(&plan::encode(&fixed).unwrap()).unwrap();
    assert_eq!(old.sharing, None);
    // Before version 4 every target had its own: node-less, two targets and the self-scrape.
    let legacy = old.sharing_or_legacy();
    assert_eq!(legacy.scrape_concurrency, 3);
    let caps: u64 = old
        .target_groups()
        .iter()
        .map(|g| g.targets * g.per_target.series_cap)
        .sum();
    assert!(legacy.max_series_bytes > caps);

    let mut shared = fixed.clone();
    shared.sharing = Some(plan::Sharing::DEFAULT);
    let bytes = plan::encode(&shared).unwrap();
    assert_eq!(version(&bytes), 4);
    assert_eq!(plan::decode(&bytes).unwrap(), shared);
    let mut none = shared.clone();
    none.sharing = Some(plan::Sharing {
        scrape_concurrency: 0,
        ..plan::Sharing::DEFAULT
    });
    match plan::decode(&plan::encode(&none).unwrap()) {
        Err(PlanError::Invalid { field, .. }) => assert_eq!(field, "sharing.scrape_concurrency"),
        other => panic!("{other:?}"),
    }
}
