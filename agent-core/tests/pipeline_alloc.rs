//! Once warmed up, a scrape -> batch -> snappy cycle of a 10,000-series
//! target allocates nothing: parsing, staging, staleness, the synthetic
//! series, external labels, batching and compression all work in buffers
//! sized from the plan.
//!
//! With `OUTPOST_ALLOC_TRACE=1` every counted allocation prints a backtrace,
//! to find where one comes from.

use outpost_core::expfmt::Format;
use outpost_core::pipeline::{BatchSink, Batcher, TargetLabels, TargetPipeline};
use outpost_core::plan::{
    Agent, Auth, Budget, Fsync, LabelPair, Limits, Plan, Queue, Receiver, RelabelAction, RelabelRule, Role,
    SelfScrape, StrId, Wal,
};
use outpost_core::remote_write::BatchBuilder;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static TRACE: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Only the test's own thread is counted: the harness's threads allocate
    /// on their own schedule.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    /// Set while a backtrace is taken, which allocates itself.
    static IN_TRACE: Cell<bool> = const { Cell::new(false) };
}

fn counted() {
    if !COUNTING.with(|c| c.get()) {
        return;
    }
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    if TRACE.load(Ordering::Relaxed) && !IN_TRACE.with(|t| t.replace(true)) {
        let bt = std::backtrace::Backtrace::force_capture();
        eprintln!("allocation in the steady state:\n{bt}");
        IN_TRACE.with(|t| t.set(false));
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        counted();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        counted();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        counted();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SERIES: u32 = 10_000;
const T0: i64 = 1_700_000_000_000;

/// Compresses each closed batch into one reused buffer, as the agent does
/// before its WAL append.
struct Compress {
    out: Vec<u8>,
    batches: u64,
    samples: u64,
    bytes: u64,
}

impl Compress {
    fn for_plan(plan: &Plan) -> Compress {
        Compress {
            out: Vec::with_capacity(BatchBuilder::new(&plan.queue).max_compressed_len()),
            batches: 0,
            samples: 0,
            bytes: 0,
        }
    }
}

/// Per-target bounds with room for every label these bodies carry.
fn limits(body_bytes: u32, samples: u32) -> Limits {
    Limits {
        body_bytes,
        samples,
        label_count: 16,
        label_name_bytes: 64,
        label_value_bytes: 256,
    }
}

fn target_labels(job: &str, instance: &str, extra: &[(&str, &str)]) -> TargetLabels {
    TargetLabels {
        job: job.into(),
        instance: instance.into(),
        extra: extra
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        honor_labels: false,
    }
}

impl BatchSink for Compress {
    fn batch_closed(&mut self, _shard: u16, batch: &mut BatchBuilder) {
        self.samples += u64::from(batch.samples());
        self.bytes += batch.finish_into(&mut self.out) as u64;
        self.batches += 1;
    }
}

fn queue() -> Queue {
    Queue {
        capacity: 20_000,
        min_shards: 1,
        max_shards: 1,
        max_samples_per_send: 2_000,
        batch_send_deadline_ms: 5_000,
        min_backoff_ms: 30,
        max_backoff_ms: 5_000,
        max_batch_bytes: 512 * 1024,
        max_sample_age_ms: 0,
    }
}

fn plan() -> Plan {
    let strings: Vec<String> = ["cluster", "c1", "region", "eu", ""]
        .iter()
        .map(|s| s.to_string())
        .collect();
    Plan {
        strings,
        agent: Agent {
            cluster: StrId(1),
            tenant: None,
            role: Role::Node,
        },
        external_labels: vec![
            LabelPair {
                name: StrId(0),
                value: StrId(1),
            },
            LabelPair {
                name: StrId(2),
                value: StrId(3),
            },
        ],
        receiver: Receiver {
            url: StrId(4),
            tenant_header: None,
            tls: None,
            auth: Auth::None,
            remote_timeout_ms: 30_000,
            write_relabel: Vec::new(),
        },
        queue: queue(),
        wal: Wal {
            dir: StrId(4),
            max_bytes: 1 << 20,
            segment_bytes: 1 << 16,
            fsync: Fsync::Never,
        },
        node: None,
        scrape_jobs: Vec::new(),
        self_scrape: SelfScrape {
            interval_ms: 15_000,
            job: StrId(4),
        },
        budget: Budget {
            cpu_request_millis: 1,
            cpu_limit_millis: 1,
            memory_request_bytes: 1,
            memory_limit_bytes: 1,
        },
    }
}

/// The body of cycle `cycle`: the same 10,000 series, every value new.
fn body(cycle: u32) -> String {
    let mut b = String::with_capacity(SERIES as usize * 80);
    b.push_str("# HELP node_disk_io_total Bytes moved.\n# TYPE node_disk_io_total counter\n");
    for i in 0..SERIES {
        writeln!(
            b,
            "node_disk_io_total{{device=\"dev{i}\",kind=\"k{}\",mode=\"read\"}} {}",
            i % 7,
            u64::from(cycle) * 1_000_003 + u64::from(i)
        )
        .unwrap();
    }
    b
}

#[test]
fn a_warm_scrape_batch_compress_cycle_allocates_nothing() {
    TRACE.store(
        std::env::var_os("OUTPOST_ALLOC_TRACE").is_some(),
        Ordering::Relaxed,
    );
    let plan = plan();
    let limits = limits(2 << 20, 12_000);
    let labels = target_labels("node", "h:9100", &[("team", "edge")]);
    let mut target = TargetPipeline::new(&plan, labels, limits, &[]).unwrap();
    let mut batcher = Batcher::new(&plan, 1, 32, 8192).unwrap();
    let mut sink = Compress::for_plan(&plan);
    let bodies: Vec<String> = (0..8).map(body).collect();

    let cycle = |n: usize, target: &mut TargetPipeline, batcher: &mut Batcher, sink: &mut Compress| {
        let ts = T0 + n as i64 * 15_000;
        target.begin(Format::PrometheusText, ts);
        for chunk in bodies[n].as_bytes().chunks(16 * 1024) {
            target
                .handle_chunk(chunk, batcher)
                .expect("the body is within limits");
        }
        let report = target.finish(0.1, batcher, sink).expect("the scrape succeeds");
        batcher.close_all(sink);
        report
    };

    for n in 0..3 {
        cycle(n, &mut target, &mut batcher, &mut sink);
    }
    let samples_before = sink.samples;
    let batches_before = sink.batches;
    let bytes_before = sink.bytes;

    let mut reports = Vec::with_capacity(5);
    ALLOCATIONS.store(0, Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    for n in 3..8 {
        let report = cycle(n, &mut target, &mut batcher, &mut sink);
        reports.push(report);
    }
    COUNTING.with(|c| c.set(false));
    let allocations = ALLOCATIONS.load(Ordering::Relaxed);

    let samples = sink.samples - samples_before;
    let batches = sink.batches - batches_before;
    eprintln!(
        "5 warm cycles: {samples} samples in {batches} batches, {} compressed bytes, {allocations} allocations",
        sink.bytes - bytes_before
    );
    for r in &reports {
        assert_eq!(r.samples_scraped, u64::from(SERIES));
        assert_eq!(r.series_added, 0);
        assert_eq!(r.stale_markers, 0);
    }
    // Every series plus the five synthetic ones, every cycle.
    assert_eq!(samples, 5 * (u64::from(SERIES) + 5));
    assert!(batches >= 5 * 5, "2,000 samples per batch at most");
    assert_eq!(
        allocations, 0,
        "allocations in 5 warm cycles (OUTPOST_ALLOC_TRACE=1 shows where)"
    );
}

/// What a round of the churning target answers.
#[derive(Clone, Copy)]
enum Round {
    All,
    /// The last `n` series are gone (staleness markers for them).
    Without(u32),
    /// The body breaks off after half the series (every series goes stale).
    Broken,
}

fn churn_body(cycle: u32, round: Round) -> String {
    let series = match round {
        Round::All => SERIES,
        Round::Without(n) => SERIES - n,
        Round::Broken => SERIES / 2,
    };
    let mut b = String::with_capacity(SERIES as usize * 80);
    for i in 0..series {
        writeln!(
            b,
            "node_cpu_seconds_total{{cpu=\"{}\",mode=\"m{}\"}} {}.5",
            i / 8,
            i % 8,
            u64::from(cycle) * 7 + u64::from(i)
        )
        .unwrap();
    }
    if let Round::Broken = round {
        b.push_str("node_cpu_seconds_total{cpu=\"0\" this is not exposition\n");
    }
    b
}

#[test]
fn staleness_and_failed_scrapes_allocate_nothing_either() {
    let plan = plan();
    let limits = limits(2 << 20, 12_000);
    let labels = target_labels("node", "h:9100", &[]);
    let mut target = TargetPipeline::new(&plan, labels, limits, &[]).unwrap();
    let mut batcher = Batcher::new(&plan, 1, 32, 8192).unwrap();
    let mut sink = Compress::for_plan(&plan);
    // Series vanish and come back, a scrape fails and every series is new
    // again after it: the table is emptied and refilled within its bounds.
    let pattern = [
        Round::All,
        Round::Without(300),
        Round::All,
        Round::Broken,
        Round::All,
        Round::Without(1),
    ];
    let rounds: Vec<(Round, String)> = (0..2 * pattern.len())
        .map(|n| {
            (
                pattern[n % pattern.len()],
                churn_body(n as u32, pattern[n % pattern.len()]),
            )
        })
        .collect();
    let mut failures = 0u64;
    let mut run = |n: usize, target: &mut TargetPipeline, batcher: &mut Batcher, sink: &mut Compress| {
        let ts = T0 + n as i64 * 15_000;
        let (round, body) = &rounds[n];
        target.begin(Format::PrometheusText, ts);
        let mut result = Ok(());
        for chunk in body.as_bytes().chunks(16 * 1024) {
            result = target.handle_chunk(chunk, batcher);
            if result.is_err() {
                break;
            }
        }
        match result {
            Ok(()) => {
                target.finish(0.1, batcher, sink).expect("the scrape succeeds");
            }
            Err(_) => {
                assert!(matches!(round, Round::Broken));
                target.fail(ts, 0.1, batcher, sink);
                failures += 1;
            }
        }
        batcher.close_all(sink);
    };
    for n in 0..pattern.len() {
        run(n, &mut target, &mut batcher, &mut sink);
    }
    let samples_before = sink.samples;
    ALLOCATIONS.store(0, Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    for n in pattern.len()..2 * pattern.len() {
        run(n, &mut target, &mut batcher, &mut sink);
    }
    COUNTING.with(|c| c.set(false));
    let allocations = ALLOCATIONS.load(Ordering::Relaxed);
    let samples = sink.samples - samples_before;
    // All, Without(300) + 300 stale, All, Broken: 10,000 stale, All, Without(1) + 1 stale;
    // five synthetic series each round.
    let s = u64::from(SERIES);
    let expected = s + s + s + s + s + s + 6 * 5;
    eprintln!("one churn pattern: {samples} samples, {allocations} allocations");
    assert_eq!(failures, 2);
    assert_eq!(samples, expected);
    assert_eq!(
        allocations, 0,
        "allocations in a warm churn pattern (OUTPOST_ALLOC_TRACE=1 shows where)"
    );
}

/// The cluster role's shape, which the node plan above lacks: two shards and
/// a write-relabel rule dropping Go runtime series after external labels.
fn sharded_plan_with_write_relabel() -> Plan {
    let mut plan = plan();
    let first = plan.strings.len() as u32;
    for s in ["__name__", ";", "go_gc_.*|go_memstats_.*", "$1"] {
        plan.strings.push(s.to_string());
    }
    plan.agent.role = Role::Cluster;
    plan.external_labels.truncate(1);
    plan.queue.capacity = 10_000;
    plan.queue.min_shards = 2;
    plan.queue.max_shards = 2;
    plan.receiver.write_relabel = vec![RelabelRule {
        action: RelabelAction::Drop,
        source_labels: vec![StrId(first)],
        separator: StrId(first + 1),
        regex: StrId(first + 2),
        modulus: 0,
        // The empty string.
        target_label: StrId(4),
        replacement: StrId(first + 3),
    }];
    plan
}

/// A kube-state-metrics-like body of 5,000 series plus two Go runtime ones;
/// odd rounds leave out every tenth series so the staleness path runs too.
fn ksm_body(round: u32) -> String {
    let mut s = String::new();
    s.push_str("# HELP kube_pod_status_phase The pods current phase.\n# TYPE kube_pod_status_phase gauge\n");
    for i in 0..5_000u32 {
        if round % 2 == 1 && i % 10 == 0 {
            continue;
        }
        writeln!(
            s,
            "kube_pod_status_phase{{namespace=\"ns-{}\",pod=\"pod-{i}\",uid=\"{:08x}-aaaa\",phase=\"Running\"}} {}",
            i % 40,
            i * 7919,
            (i + round) % 2
        )
        .unwrap();
    }
    s.push_str("go_memstats_alloc_bytes 12345\ngo_gc_duration_seconds_count 7\n");
    s
}

/// Socket-sized chunks that split lines, two shards and write relabeling:
/// the paths the node test above leaves out.
#[test]
fn write_relabel_and_two_shards_allocate_nothing_with_socket_sized_chunks() {
    let plan = sharded_plan_with_write_relabel();
    let limits = limits(4 << 20, 10_000);
    let labels = target_labels("kube-state-metrics", "ksm:8080", &[]);
    let mut target = TargetPipeline::new(&plan, labels, limits, &[]).unwrap();
    let mut batcher = Batcher::new(&plan, 2, 32, 4096).unwrap();
    let mut sink = Compress::for_plan(&plan);
    let bodies = [ksm_body(0), ksm_body(1)];
    let mut scrape = |round: usize, sink: &mut Compress| {
        let ts = 1_000 * round as i64;
        target.begin(Format::PrometheusText, ts);
        // Uneven chunks, as a socket would deliver them.
        for chunk in bodies[round % 2].as_bytes().chunks(1400) {
            target.handle_chunk(chunk, &mut batcher).unwrap();
        }
        let report = target.finish(0.1, &mut batcher, sink).unwrap();
        batcher.close_all(sink);
        report
    };
    for round in 0..3 {
        scrape(round, &mut sink);
    }
    ALLOCATIONS.store(0, Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    let report = scrape(3, &mut sink);
    let report2 = scrape(4, &mut sink);
    COUNTING.with(|c| c.set(false));
    let allocations = ALLOCATIONS.load(Ordering::Relaxed);
    assert_eq!(report.samples_scraped, 4_502);
    assert_eq!(report2.samples_scraped, 5_002);
    assert_eq!(report.stale_markers, 500);
    assert!(sink.batches > 0 && sink.bytes > 0);
    // The rule really ran: both Go series of each of the five scrapes.
    assert_eq!(batcher.counters.dropped_write_relabel, 5 * 2);
    assert_eq!(allocations, 0, "allocations in two warm scrapes");
}
