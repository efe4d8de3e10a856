//! The compiler's worst-case memory bound against what the agent really
//! holds. The agent runs in this process under the counting allocator; every
//! buffer it sizes from the plan is allocated on the loop's thread (start,
//! scrapes, WAL, sender), so that thread's heap high-water is the agent's
//! peak heap. Each plan runs through an outage (the receiver answers 503)
//! and the catch-up after it, the worst the queue and the WAL window see.
//!
//! The bound must hold above the measured peak on every plan, and on the
//! benchmark's plan (50k KSM-shaped series, `benches/fleet-bench.yaml` at
//! N = 50,000) it must not be loose by more than 2x.

mod in_process;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use in_process::run_args;
use outpost_agent::agent::Agent;
use outpost_agent::log;
use outpost_core::plan::{Limits, Plan, Queue, Sharing};
use outpost_test_support::{
    peak_heap_bytes, reset_heap_bytes, write_plan, CountingAllocator, PlanBuilder, RecordingReceiver,
    TargetServer, QUEUE,
};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// `n` KSM-shaped series of about 180 bytes each, as the benchmark's target serves.
fn ksm_body(n: usize) -> String {
    let mut body = String::with_capacity(n * 190);
    body.push_str("# HELP kube_pod_container_status_restarts_total Restarts.\n");
    body.push_str("# TYPE kube_pod_container_status_restarts_total counter\n");
    for i in 0..n {
        body.push_str(&format!(
            "kube_pod_container_status_restarts_total{{namespace=\"namespace-{:04}\",pod=\"deployment-{:06}-7c9f8d6b5-x2k4q\",uid=\"5f0c3a1e-{:08x}-4b1d-9c2e\",container=\"app-{}\"}} {}\n",
            i % 200,
            i,
            i,
            i % 4,
            i % 7
        ));
    }
    body
}

/// A node_exporter-sized page: a few thousand short series.
fn node_body(n: usize) -> String {
    let mut body = String::from("# TYPE node_cpu_seconds_total counter\n");
    for i in 0..n {
        body.push_str(&format!(
            "node_cpu_seconds_total{{cpu=\"{}\",mode=\"m{}\"}} {}.5\n",
            i / 8,
            i % 8,
            i
        ));
    }
    body
}

struct Measured {
    bound: u64,
    peak_heap: u64,
}

/// Distinct series named `metric` among the requests the receiver accepted.
fn accepted_series(receiver: &RecordingReceiver, metric: &str) -> usize {
    let seen = receiver.seen.lock().unwrap();
    let keys: HashSet<String> = seen
        .iter()
        .filter(|r| r.status == 200)
        .filter_map(|r| r.request.as_ref().ok())
        .flat_map(|req| req.timeseries.iter())
        .filter(|ts| ts.label("__name__") == Some(metric))
        .map(|ts| ts.key())
        .collect();
    keys.len()
}

/// Runs `plan` in this process: `down_ms` with the receiver refusing
/// everything, then `up_ms` of catch-up and until every series of
/// `delivered` (metric name, series) has reached the receiver. Returns the
/// plan's bound and the loop thread's heap high-water from just before the
/// agent starts.
fn run_through_outage(
    name: &str,
    build: impl FnOnce(PlanBuilder) -> PlanBuilder,
    (down_ms, up_ms): (u64, u64),
    delivered: (&str, usize),
) -> Measured {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, up) = RecordingReceiver::switchable();
    let plan: Plan = build(
        PlanBuilder::new()
            .receiver_url(&receiver.url())
            .external_labels(&[
                ("agent", "outpost"),
                ("cluster", "bench"),
                ("location", "lab"),
                ("role", "edge"),
            ])
            .wal_dir(&dir.path().join("wal")),
    )
    .build();
    let bound = plan.worst_case_memory().total();
    let plan_path = write_plan(dir.path(), "plan.bin", &plan);
    log::init(log::Format::Logfmt, log::Level::Warn);
    let args = run_args(plan_path, "memory-node", log::Level::Warn);
    reset_heap_bytes();
    let mut agent = Agent::start(args, plan).expect("agent starts");
    assert!(agent.run_for(Duration::from_millis(down_ms)).is_none());
    // The outage lasts until the sender has been refused and has retried.
    for _ in 0..30 {
        if receiver.count() >= 2 {
            break;
        }
        assert!(agent.run_for(Duration::from_millis(1_000)).is_none());
    }
    let refused = receiver.count();
    up.store(true, Ordering::SeqCst);
    assert!(agent.run_for(Duration::from_millis(up_ms)).is_none());
    // A debug build catches up slowly; give it time to deliver all.
    for _ in 0..60 {
        if accepted_series(&receiver, delivered.0) >= delivered.1 {
            break;
        }
        assert!(agent.run_for(Duration::from_millis(1_000)).is_none());
    }
    let peak_heap = peak_heap_bytes().max(0) as u64;
    assert_eq!(agent.stop(), 0);
    let accepted = receiver.count() - refused;
    assert!(
        refused >= 2,
        "{name}: the receiver refused {refused} requests during the outage"
    );
    assert!(accepted > 0, "{name}: nothing was sent after the outage");
    assert_eq!(
        accepted_series(&receiver, delivered.0),
        delivered.1,
        "{name}: series of {}",
        delivered.0
    );
    eprintln!(
        "{name}: bound {:.1} MiB, peak heap {:.1} MiB (bound / peak {:.2}); {refused} requests refused, {accepted} accepted",
        bound as f64 / 1048576.0,
        peak_heap as f64 / 1048576.0,
        bound as f64 / peak_heap.max(1) as f64
    );
    Measured { bound, peak_heap }
}

/// The limits `benches/side_by_side.py` gives a KSM job of `n` series:
/// about 225 bytes a line and 25% headroom.
fn bench_ksm_limits(n: u32) -> Limits {
    Limits {
        body_bytes: ((n as u64 * 225 / 1048576 + 1) << 20) as u32,
        samples: n * 5 / 4 + 1000,
        label_count: 16,
        label_name_bytes: 64,
        label_value_bytes: 256,
    }
}

/// The benchmark's node_exporter job limits (`benches/fleet-bench.yaml`).
const BENCH_NODE_LIMITS: Limits = Limits {
    body_bytes: 4 << 20,
    samples: 20_000,
    label_count: 16,
    label_name_bytes: 64,
    label_value_bytes: 256,
};

/// The benchmark's queue: the seed's batch size and four shards of 10,000.
const BENCH_QUEUE: Queue = Queue {
    capacity: 10_000,
    max_shards: 4,
    max_samples_per_send: 10_000,
    max_batch_bytes: 10_000 * 200,
    batch_send_deadline_ms: 1_000,
    ..QUEUE
};

/// The benchmark's sharing (`benches/fleet-bench.yaml` as the harness fills
/// it at N = 50,000): the default concurrency, and a series pool its 52k
/// series fit in (N x 960 B + 3Mi), as an operator sizes it for the targets
/// they know.
const BENCH_SHARING: Sharing = Sharing {
    scrape_concurrency: 4,
    max_series: 200_000,
    max_series_bytes: 48 << 20,
};

#[test]
fn the_bound_holds_and_is_within_twice_the_peak_on_the_benchmark_plan() {
    let ksm = TargetServer::start(ksm_body(50_000));
    let node = TargetServer::start(node_body(2_000));
    let m = run_through_outage(
        "benchmark plan, 50k series",
        |b| {
            b.queue(BENCH_QUEUE)
                .sharing(BENCH_SHARING)
                .wal_bounds(256 << 20, 16 << 20)
                .scrape_job("node", &[node.address()])
                .job_timing(2_000, 1_900)
                .job_limits(BENCH_NODE_LIMITS)
                .scrape_job("ksm", &[ksm.address()])
                .job_timing(2_000, 1_900)
                .job_limits(bench_ksm_limits(50_000))
        },
        (6_000, 6_000),
        ("kube_pod_container_status_restarts_total", 50_000),
    );
    assert!(
        m.peak_heap < m.bound,
        "peak heap {} over the bound {}",
        m.peak_heap,
        m.bound
    );
    assert!(
        m.bound < 2 * m.peak_heap,
        "the bound {} is more than twice the peak heap {}",
        m.bound,
        m.peak_heap
    );
}

#[test]
fn the_bound_holds_for_small_targets_sharing_the_default_slots_and_pool() {
    let targets: Vec<TargetServer> = (0..4).map(|_| TargetServer::start(node_body(200))).collect();
    let addresses: Vec<String> = targets.iter().map(TargetServer::address).collect();
    let m = run_through_outage(
        "four small targets, default sharing",
        |b| {
            b.sharing(Sharing::DEFAULT)
                .scrape_job("app", &addresses)
                .job_timing(1_000, 900)
        },
        (3_000, 3_000),
        ("node_cpu_seconds_total", 4 * 200),
    );
    assert!(
        m.peak_heap < m.bound,
        "peak heap {} over the bound {}",
        m.peak_heap,
        m.bound
    );
}

/// A plan of format version 3 (no sharing): a slot per target and a pool
/// of every table at its cap, the old proof.
#[test]
fn the_bound_holds_for_small_targets_at_the_test_limits() {
    let targets: Vec<TargetServer> = (0..4).map(|_| TargetServer::start(node_body(200))).collect();
    let addresses: Vec<String> = targets.iter().map(TargetServer::address).collect();
    let m = run_through_outage(
        "four small targets",
        |b| b.scrape_job("app", &addresses).job_timing(1_000, 900),
        (3_000, 3_000),
        ("node_cpu_seconds_total", 4 * 200),
    );
    assert!(
        m.peak_heap < m.bound,
        "peak heap {} over the bound {}",
        m.peak_heap,
        m.bound
    );
}

/// Thirty targets at the compiler's default limits (10Mi bodies, 100,000
/// samples, label limits of their own none) sharing the default slots and
/// pool: what per-target buffers made impossible in 256Mi. Their start
/// must not hold thirty targets' scrape buffers at once either.
#[test]
fn the_bound_holds_for_thirty_targets_at_the_default_limits() {
    let targets: Vec<TargetServer> = (0..30).map(|_| TargetServer::start(node_body(50))).collect();
    let addresses: Vec<String> = targets.iter().map(TargetServer::address).collect();
    let defaults = Limits {
        body_bytes: 10 << 20,
        samples: 100_000,
        label_count: 1024,
        label_name_bytes: u16::MAX,
        label_value_bytes: u32::MAX,
    };
    let m = run_through_outage(
        "thirty targets at the default limits",
        |b| {
            b.sharing(Sharing::DEFAULT)
                .scrape_job("app", &addresses)
                .job_timing(1_000, 900)
                .job_limits(defaults)
        },
        (3_000, 3_000),
        ("node_cpu_seconds_total", 30 * 50),
    );
    assert!(m.bound <= 256 << 20, "bound {} over 256Mi", m.bound);
    assert!(
        m.peak_heap < m.bound,
        "peak heap {} over the bound {}",
        m.peak_heap,
        m.bound
    );
}
