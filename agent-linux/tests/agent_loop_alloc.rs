//! The event loop itself allocates nothing once warm: scrape timers, the
//! HTTP client reading a target, a target refusing connections and one over
//! its sample limit (their errors recorded for `/api/v1/targets`), the node
//! collectors, the self-scrape, the pipeline, the WAL append, the sender,
//! the remote-write POST and its answer, ack-floor bookkeeping and the
//! status server answering `/metrics`, `/metrics/node` and
//! `/api/v1/targets` (with and without a query).
//!
//! The agent runs in this process under a counting allocator that counts
//! only on the loop's thread (the loopback target and receiver threads
//! allocate freely and are not the agent). Each counted allocation is
//! attributed to the innermost `outpost_agent` function on its stack.
//!
//! Any allocation fails the test and names the functions that made it.
//! The node collectors and the process metrics are also checked on their
//! own, every collector at once against this machine's `/proc` and `/sys`.

mod in_process;

use std::collections::BTreeMap;
use std::time::Duration;

use in_process::run_args;
use outpost_agent::agent::Agent;
use outpost_agent::collectors::{
    render_process_metrics, FsStats, FsStatsSource, NodeCollector, Paths, Statvfs,
};
use outpost_agent::log;
use outpost_agent::wal::{DiskWal, WalConfig, WalLock};
use outpost_core::plan::{Collector, Fsync, Limits, Spill, WalMode};
use outpost_core::queue::RecordMeta;
use outpost_test_support::{
    allocation_stacks, free_port, get_metrics, http_get, metric_sum, write_plan, CountingAllocator,
    PlanBuilder, RecordingReceiver, TargetServer, LIMITS,
};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// The innermost `outpost_agent::` function of a symbolised stack.
fn allocating_function(stack: &str) -> String {
    stack
        .lines()
        .filter_map(|l| l.trim().split_once(": ").map(|(_, f)| f))
        // `<outpost_agent::X as outpost_agent::Trait>::method` counts too.
        .find(|f| f.trim_start_matches('<').starts_with("outpost_agent::") && !f.contains("{{closure}}"))
        .unwrap_or("(no outpost_agent frame)")
        .to_string()
}

/// 50 series with HELP/TYPE, like a small exporter.
fn target_body() -> String {
    let mut body = String::from("# HELP app_requests_total Requests.\n# TYPE app_requests_total counter\n");
    for i in 0..50 {
        body.push_str(&format!(
            "app_requests_total{{path=\"/p{i}\",code=\"200\"}} {}\n",
            i * 7
        ));
    }
    body
}

#[test]
fn warm_loop_allocates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = RecordingReceiver::start(Box::new(|_| (200, Vec::new())));
    let target = TargetServer::start(target_body());
    let collectors = vec![
        Collector::Cpu,
        Collector::Meminfo,
        Collector::Loadavg,
        Collector::Stat,
        Collector::Vmstat,
    ];
    let plan = PlanBuilder::new()
        .receiver_url(&receiver.url())
        .external_labels(&[("cluster", "c1")])
        .wal_dir(&dir.path().join("wal"))
        .node_collectors(&collectors)
        .scrape_job("testapp", &[target.address()])
        .scrape_job("refused", &[format!("127.0.0.1:{}", free_port())])
        .scrape_job("limited", &[target.address()])
        .job_limits(Limits {
            samples: 10,
            ..LIMITS
        })
        .build();
    let plan_path = write_plan(dir.path(), "plan.bin", &plan);
    log::init(log::Format::Logfmt, log::Level::Warn);
    let args = run_args(plan_path, "alloc-node", log::Level::Warn);
    let mut agent = Agent::start(args, plan).expect("agent starts");
    let status_port = agent.listen_addr().unwrap().port();

    // Warm-up: four 1 s rounds grow every buffer to its working size and
    // open the target, receiver and status connections. Every page is asked
    // for in every round, while counting too.
    let poller = std::thread::spawn(move || {
        let page = |path: &str, must_contain: &str| {
            http_get(status_port, path)
                .is_some_and(|(status, body)| status == 200 && body.contains(must_contain))
        };
        // Failed scrapes of the two failing targets, as /metrics counts them, per round.
        let mut failures = Vec::new();
        for round in 0..8 {
            std::thread::sleep(Duration::from_millis(900));
            let metrics = get_metrics(status_port).unwrap_or_default();
            let failed = |job: &str| {
                let job = format!("job=\"{job}\"");
                metric_sum(&metrics, "outpost_target_scrape_failures_total", &[&job])
            };
            failures.push((failed("refused"), failed("limited")));
            let answered = [
                metrics.contains("prometheus_remote_storage_shards"),
                page("/metrics/node", "\nnode_load1 "),
                // Once every target has been scraped, each shows how.
                page(
                    "/api/v1/targets",
                    if round > 2 {
                        "more than limits.samples (10)"
                    } else {
                        ""
                    },
                ),
                page(
                    "/api/v1/targets?state=active&scrapePool=testapp",
                    "\"health\":\"up\"",
                ),
            ];
            if answered.contains(&false) {
                return Err(format!("round {round}: {answered:?}"));
            }
        }
        Ok(failures)
    });
    assert!(agent.run_for(Duration::from_millis(4_000)).is_none());
    let posts_before = receiver.count();
    assert!(posts_before > 0, "no remote write during warm-up");

    let mut stop = None;
    let (allocations, by_function) = allocations_in(|| stop = agent.run_for(Duration::from_millis(5_000)));
    assert!(stop.is_none());

    let posts = receiver.count() - posts_before;
    eprintln!("allocations on the loop thread over 5 warm rounds: {allocations} {by_function:#?}");
    let failures = poller.join().unwrap().expect("status pages answered");
    assert_eq!(agent.stop(), 0);
    // Five rounds of five scrapes (node, three targets, self) and at least a
    // POST per round really happened while counting.
    assert!(posts >= 5, "only {posts} remote writes while counting");
    // Rounds 4 to 7 of the poller fell in the counted 5 s (from 4.5 s to
    // 7.2 s): the failing targets failed, and were recorded, meanwhile.
    let (before, after) = (failures[3], failures[7]);
    assert!(
        after.0 - before.0 >= 2.0 && after.1 - before.1 >= 1.0,
        "failed scrapes (refused, limited) per round: {failures:?}"
    );
    assert_eq!(
        by_function.values().sum::<u64>(),
        allocations,
        "every allocation was attributed"
    );
    assert_eq!(allocations, 0, "the warm loop allocated in {by_function:#?}");
}

/// Allocations made on this thread while `f` runs: how many, and how many by allocating function.
fn allocations_in(f: impl FnOnce()) -> (u64, BTreeMap<String, u64>) {
    let ((), allocations, stacks) = allocation_stacks(f);
    let mut by_function: BTreeMap<String, u64> = BTreeMap::new();
    for stack in &stacks {
        *by_function.entry(allocating_function(stack)).or_default() += 1;
    }
    (allocations, by_function)
}

#[test]
fn warm_node_scrapes_and_process_metrics_allocate_nothing() {
    let mut node = NodeCollector::new(Paths::default(), &Collector::ALL);
    let mut page = String::new();
    let mut process = String::new();
    let scrape = |node: &mut NodeCollector, page: &mut String, process: &mut String| {
        let samples = node.collect(page);
        process.clear();
        render_process_metrics(std::path::Path::new("/proc"), process);
        samples
    };
    // The counter sees an allocation made on this thread, so an empty answer below means none.
    let (_, probe) = allocations_in(|| drop(std::hint::black_box(Box::new(7u64))));
    assert_eq!(probe.values().sum::<u64>(), 1, "{probe:?}");
    // Two warm-up scrapes: buffers grow to this machine's file sizes.
    let warm = scrape(&mut node, &mut page, &mut process);
    scrape(&mut node, &mut page, &mut process);
    let failed: Vec<_> = node.failures().map(|(c, e)| format!("{c:?}: {e}")).collect();
    eprintln!("{warm} node samples; collectors failing on this machine: {failed:?}");
    let mut counted = 0;
    let (_, allocated) = allocations_in(|| {
        for _ in 0..3 {
            counted += scrape(&mut node, &mut page, &mut process);
        }
    });
    assert!(
        allocated.is_empty(),
        "warm scrapes allocated in {allocated:#?}; failed: {failed:?}"
    );
    // Real work was done while counting: every collector's families and the process page.
    assert!(warm > 50, "only {warm} node samples");
    assert!(
        counted >= 3 * (warm - 10),
        "{counted} samples in 3 scrapes after {warm}"
    );
    assert!(
        page.contains("node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"}"),
        "{page}"
    );
    assert!(page.contains("node_memory_MemTotal_bytes "));
    let open_fds: u64 = process
        .lines()
        .find_map(|l| l.strip_prefix("process_open_fds "))
        .expect("open fds on a real procfs")
        .parse()
        .unwrap();
    assert!(open_fds >= 3, "{process}");
    assert!(process.contains("process_resident_memory_bytes "));
}

#[test]
fn a_collector_failing_on_every_scrape_allocates_nothing_once_warm() {
    // A procfs without pressure/: a kernel built without PSI, or booted without psi=1.
    let procfs = tempfile::tempdir().unwrap();
    std::fs::copy("/proc/loadavg", procfs.path().join("loadavg")).unwrap();
    let paths = Paths {
        procfs: procfs.path().to_path_buf(),
        ..Paths::default()
    };
    let mut node = NodeCollector::new(paths, &[Collector::Loadavg, Collector::Pressure]);
    let mut page = String::new();
    node.collect(&mut page);
    node.collect(&mut page);
    let mut samples = 0;
    let (_, allocated) = allocations_in(|| {
        for _ in 0..3 {
            samples += node.collect(&mut page);
        }
    });
    assert!(
        allocated.is_empty(),
        "a failing collector allocated in {allocated:#?}"
    );
    // Loadavg's 3 gauges, 2 + 2 scrape-meta samples and the two build infos, three times.
    assert_eq!(samples, 3 * (3 + 4 + 2), "{page}");
    assert!(page.contains("node_scrape_collector_success{collector=\"pressure\"} 0\n"));
    let failures: Vec<String> = node.failures().map(|(c, e)| format!("{c:?}: {e}")).collect();
    let missing = procfs.path().join("pressure/cpu");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].starts_with(&format!("Pressure: {}: ", missing.display())),
        "{failures:?}"
    );
}

/// statvfs of mount points named `hung` hangs until the test ends (a dead NFS server); other
/// mounts answer.
struct HungMount {
    released: std::sync::Mutex<bool>,
    release: std::sync::Condvar,
}

impl FsStatsSource for HungMount {
    fn stats(&self, path: &std::path::Path) -> std::io::Result<FsStats> {
        if path.ends_with("hung") {
            let mut released = self.released.lock().unwrap();
            while !*released {
                released = self.release.wait(released).unwrap();
            }
        }
        Statvfs.stats(path)
    }
}

#[test]
fn scrapes_with_a_hung_mount_allocate_nothing_once_warm() {
    let (procfs, rootfs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::create_dir(procfs.path().join("1")).unwrap();
    std::fs::write(
        procfs.path().join("1/mounts"),
        "/dev/vda / ext4 rw 0 0\nserver:/export /hung nfs4 rw 0 0\n/dev/vdb /data ext4 rw 0 0\n",
    )
    .unwrap();
    for dir in ["hung", "data"] {
        std::fs::create_dir(rootfs.path().join(dir)).unwrap();
    }
    let paths = Paths {
        procfs: procfs.path().to_path_buf(),
        rootfs: rootfs.path().to_path_buf(),
        ..Paths::default()
    };
    let source = std::sync::Arc::new(HungMount {
        released: std::sync::Mutex::new(false),
        release: std::sync::Condvar::new(),
    });
    let mut node = NodeCollector::with_fs_stats(
        paths,
        &[Collector::Filesystem],
        source.clone(),
        // A mount that answers must answer in time even when the worker thread waits seconds
        // for a core: timing out would start another worker, an allocation and a missing
        // mount. Only the hung mount is waited for this long, once.
        Duration::from_secs(2),
    );
    let mut page = String::new();
    node.collect(&mut page);
    node.collect(&mut page);
    let mut samples = 0;
    let (_, allocated) = allocations_in(|| {
        for _ in 0..3 {
            samples += node.collect(&mut page);
        }
    });
    *source.released.lock().unwrap() = true;
    source.release.notify_all();
    assert!(
        allocated.is_empty(),
        "scrapes with a hung mount allocated in {allocated:#?}"
    );
    assert!(
        page.contains("node_filesystem_device_error{device=\"server:/export\",fstype=\"nfs4\",mountpoint=\"/hung\"} 1\n"),
        "{page}"
    );
    // Two answering mounts with 7 families each, the hung one's device_error, 2 scrape-meta
    // samples and the two build infos, three times.
    assert_eq!(samples, 3 * (2 * 7 + 1 + 2 + 2), "{page}");
}

#[test]
fn wal_send_cycles_with_segment_rolls_and_deletes_allocate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let wal_dir = dir.path().join("wal");
    let lock = WalLock::acquire(&wal_dir, Duration::ZERO).unwrap();
    let mut wal = DiskWal::open(
        WalConfig {
            dir: wal_dir,
            // Three 1,044-byte records per segment: rolls and deletes happen every few cycles.
            segment_bytes: 3_200,
            max_bytes: 1 << 20,
            fsync: Fsync::Always,
            mode: WalMode::Append,
            max_payload_bytes: 1_000,
            max_window_records: 8,
            max_window_samples: 1_000,
        },
        lock,
    )
    .unwrap();
    let batch = RecordMeta {
        seq: 0,
        shard: 0,
        samples: 25,
        oldest_timestamp_ms: 1_000,
        newest_timestamp_ms: 2_000,
        bytes: 0,
        raw_bytes: 0,
    };
    let mut dropped = Vec::with_capacity(8);
    // What the loop does per record: append, send from the WAL, acknowledge, remember the floor.
    // The acknowledgement lags one record (a send in flight), so a record at or above the floor
    // is always on disk and the floor has to be written.
    let mut cycle = |wal: &mut DiskWal, round: u64| {
        let payload = [(round % 251) as u8; 1_000];
        let meta = wal.append(batch, &payload, round, &mut dropped).unwrap();
        let next = wal.peek_from(meta.seq).unwrap().expect("just appended");
        assert_eq!(next.seq, meta.seq);
        assert_eq!(wal.read_payload(next.seq).unwrap(), Some(&payload[..]));
        wal.ack(meta.seq);
        wal.persist_ack_floor();
    };
    for round in 0..10 {
        cycle(&mut wal, round);
    }
    let appended_before = wal.counters.records_appended;
    let (_, allocated) = allocations_in(|| {
        for round in 10..40 {
            cycle(&mut wal, round);
        }
    });
    assert!(allocated.is_empty(), "WAL cycles allocated in {allocated:#?}");
    assert_eq!(wal.counters.records_appended - appended_before, 30);
    assert!(dropped.is_empty());
    // Segments were rolled and deleted while counting: about one per three records.
    assert!(wal.segment_count() <= 2, "{} segments", wal.segment_count());
    let newest_segment = std::fs::read_dir(dir.path().join("wal"))
        .unwrap()
        .filter_map(|e| {
            e.unwrap()
                .file_name()
                .to_str()?
                .strip_suffix(".wal")?
                .parse::<u32>()
                .ok()
        })
        .max()
        .unwrap();
    assert!(newest_segment >= 12, "only {newest_segment} segments ever");
    let floor = std::fs::read_to_string(dir.path().join("wal/ack_floor")).unwrap();
    assert_eq!(floor, "39\n");
}

#[test]
fn spill_mode_holds_releases_and_spills_without_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let wal_dir = dir.path().join("wal");
    let lock = WalLock::acquire(&wal_dir, Duration::ZERO).unwrap();
    let mut wal = DiskWal::open(
        WalConfig {
            dir: wal_dir,
            segment_bytes: 3_200,
            max_bytes: 1 << 20,
            fsync: Fsync::Always,
            // Room for three held payloads: the fourth unacknowledged one spills the oldest.
            mode: WalMode::Spill(Spill {
                after_ms: 5,
                max_held_bytes: 3_000,
            }),
            max_payload_bytes: 1_000,
            max_window_records: 8,
            max_window_samples: 1_000,
        },
        lock,
    )
    .unwrap();
    let mut dropped = Vec::with_capacity(8);
    wal.set_write_through(false, 0, &mut dropped).unwrap();
    let batch = RecordMeta {
        seq: 0,
        shard: 0,
        samples: 25,
        oldest_timestamp_ms: 1_000,
        newest_timestamp_ms: 2_000,
        bytes: 0,
        raw_bytes: 0,
    };
    // Per round of 4 ms: a record is held and sent from memory; every other round's record
    // is acknowledged at once, the others only after they spilled for their age.
    let mut cycle = |wal: &mut DiskWal, round: u64| {
        let now = round * 4;
        let payload = [(round % 251) as u8; 1_000];
        let meta = wal.append(batch, &payload, now, &mut dropped).unwrap();
        assert_eq!(wal.read_payload(meta.seq).unwrap(), Some(&payload[..]));
        let acked_now = |seq: u64| seq.is_multiple_of(2);
        wal.release_held(acked_now);
        wal.spill_due(now, &mut dropped).unwrap();
        // The slow ones are acknowledged two rounds later, from disk.
        wal.ack(meta.seq.saturating_sub(2));
        wal.persist_ack_floor();
    };
    for round in 0..10 {
        cycle(&mut wal, round);
    }
    let (held_before, appended_before) = (wal.held_records(), wal.counters.records_appended);
    let (_, allocated) = allocations_in(|| {
        for round in 10..40 {
            cycle(&mut wal, round);
        }
    });
    assert!(
        allocated.is_empty(),
        "spill-mode cycles allocated in {allocated:#?}"
    );
    assert!(held_before <= 2, "{held_before} held");
    // Only the odd (slow) records were written: 15 in 30 rounds.
    assert_eq!(wal.counters.records_appended - appended_before, 15);
    assert!(dropped.is_empty());
}

/// A pod for the discovery test below: annotated to be scraped at `port` of 127.0.0.1.
fn annotated_pod(name: &str, port: u16) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "apps",
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": port.to_string()},
        },
        "spec": {"nodeName": "alloc-node", "containers": [{"name": "main"}]},
        "status": {"phase": "Running", "podIP": "127.0.0.1"},
    })
}

/// Discovered targets scrape like static ones: without allocating. What discovery itself
/// does while idle (the fixture ends each watch after 2 s and sends a bookmark every 0.7 s;
/// a real API server every 5 to 10 minutes and about every minute) allocates in discovery's
/// own functions only: the next watch's request path and the decoded bookmarks.
#[test]
fn discovered_targets_scrape_without_allocating_and_idle_discovery_allocates_only_in_discovery() {
    use outpost_test_support::kube_api::KubeApi;
    let dir = tempfile::tempdir().unwrap();
    let receiver = RecordingReceiver::start(Box::new(|_| (200, Vec::new())));
    let api = KubeApi::start();
    let targets = [
        TargetServer::start(target_body()),
        TargetServer::start(target_body()),
    ];
    for (i, t) in targets.iter().enumerate() {
        api.apply("pods", annotated_pod(&format!("web-{i}"), t.port));
    }
    let spec = format!(
        r#"
receiver:
  url: {}
defaults:
  scrape_interval: 1s
  scrape_timeout: 500ms
  limits: {{body_size: 16Ki, samples: 100}}
  queue: {{max_shards: 1, batch_send_deadline: 1s}}
node:
  collectors: [cpu, meminfo]
scrape_jobs:
  - name: apps
    scope: node
    discovery:
      role: pod
      max_targets: 5
      api_server: {}
    relabel_preset: prometheus.io
clusters:
  - name: edge-1
    role: edge
"#,
        receiver.url(),
        api.url()
    );
    let a = outpost_compiler::analyze("alloc.yaml", &spec);
    assert!(!a.has_errors(), "{}", a.render_text(100));
    let plan = a
        .plans
        .iter()
        .find(|p| p.role == outpost_core::plan::Role::Node)
        .unwrap()
        .plan
        .clone();
    let plan_path = write_plan(dir.path(), "plan.bin", &plan);
    log::init(log::Format::Logfmt, log::Level::Warn);
    let mut args = run_args(plan_path, "alloc-node", log::Level::Warn);
    args.wal_dir = Some(dir.path().join("wal"));
    let mut agent = Agent::start(args, plan).expect("agent starts");
    let status_port = agent.listen_addr().unwrap().port();
    let poller = std::thread::spawn(move || {
        let mut scrapes = Vec::new();
        for _ in 0..8 {
            std::thread::sleep(Duration::from_millis(1_000));
            let metrics = get_metrics(status_port).unwrap_or_default();
            scrapes.push(metric_sum(
                &metrics,
                "outpost_target_scrapes_total",
                &["job=\"apps\""],
            ));
        }
        scrapes
    });
    assert!(agent.run_for(Duration::from_millis(4_000)).is_none());
    let mut stop = None;
    let ((), allocations, stacks) = allocation_stacks(|| stop = agent.run_for(Duration::from_millis(5_000)));
    assert!(stop.is_none());
    let scrapes = poller.join().unwrap();
    assert_eq!(agent.stop(), 0);
    let mut by_function: BTreeMap<String, u64> = BTreeMap::new();
    for stack in &stacks {
        *by_function.entry(allocating_function(stack)).or_default() += 1;
    }
    eprintln!("allocations on the loop thread over 5 s with discovery idle: {allocations} {by_function:#?}");
    // Both discovered targets were scraped every second while counting (samples 3 and 7
    // of the poller fall in the counted 5 s).
    assert!(
        scrapes[7] - scrapes[3] >= 6.0,
        "scrapes of the discovered targets: {scrapes:?}"
    );
    let elsewhere: Vec<String> = stacks
        .iter()
        .filter(|s| !s.contains("outpost_agent::agent::discovery::"))
        .map(|s| allocating_function(s))
        .collect();
    assert!(
        elsewhere.is_empty(),
        "allocated outside discovery: {elsewhere:#?}"
    );
}
