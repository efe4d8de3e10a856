//! Once warmed up, a scrape -> batch -> snappy cycle of a 10,000-series
//! target allocates nothing: parsing, staging, staleness, the synthetic
//! series, external labels, batching and compression all work in buffers
//! sized from the plan.
//!
//! With `OUTPOST_ALLOC_TRACE=1` every counted allocation prints a backtrace,
//! to find where one comes from.

use outpost_core::expfmt::ExpositionFormat;
use outpost_core::pipeline::{BatchSink, Batcher, SeriesPool, TargetLabels, TargetPipeline};
use outpost_core::plan::{Limits, Plan, Queue, RelabelAction, Role, Sharing};
use outpost_core::remote_write::BatchBuilder;
use outpost_test_support::{count_allocations, CountingAllocator, PlanBuilder, Rule};
use std::fmt::Write as _;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

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
    PlanBuilder::new()
        .external_labels(&[("cluster", "c1"), ("region", "eu")])
        .queue(queue())
        .build()
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
    let plan = plan();
    let limits = limits(2 << 20, 12_000);
    let labels = target_labels("node", "h:9100", &[("team", "edge")]);
    let mut target = TargetPipeline::new(&plan, labels, limits, &[]).unwrap();
    let mut batcher = Batcher::new(&plan, 1, 32, 8192).unwrap();
    // The target is built beside the plan, not from it: a pool of the
    // default size holds it.
    batcher.series_pool = SeriesPool::new(Sharing::DEFAULT.max_series, Sharing::DEFAULT.max_series_bytes);
    let mut sink = Compress::for_plan(&plan);
    let bodies: Vec<String> = (0..8).map(body).collect();

    let cycle = |n: usize, target: &mut TargetPipeline, batcher: &mut Batcher, sink: &mut Compress| {
        let ts = T0 + n as i64 * 15_000;
        target.begin(ExpositionFormat::PrometheusText, ts);
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
    let ((), allocations) = count_allocations(|| {
        for n in 3..8 {
            let report = cycle(n, &mut target, &mut batcher, &mut sink);
            reports.push(report);
        }
    });

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
    // The target is built beside the plan, not from it: a pool of the
    // default size holds it.
    batcher.series_pool = SeriesPool::new(Sharing::DEFAULT.max_series, Sharing::DEFAULT.max_series_bytes);
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
        target.begin(ExpositionFormat::PrometheusText, ts);
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
    let ((), allocations) = count_allocations(|| {
        for n in pattern.len()..2 * pattern.len() {
            run(n, &mut target, &mut batcher, &mut sink);
        }
    });
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
    PlanBuilder::new()
        .role(Role::Cluster)
        .external_labels(&[("cluster", "c1")])
        .write_relabel(&[Rule::new(RelabelAction::Drop)
            .sources(&["__name__"])
            .regex("go_gc_.*|go_memstats_.*")])
        .queue(Queue {
            capacity: 10_000,
            min_shards: 2,
            max_shards: 2,
            ..queue()
        })
        .build()
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
    // The target is built beside the plan, not from it: a pool of the
    // default size holds it.
    batcher.series_pool = SeriesPool::new(Sharing::DEFAULT.max_series, Sharing::DEFAULT.max_series_bytes);
    let mut sink = Compress::for_plan(&plan);
    let bodies = [ksm_body(0), ksm_body(1)];
    let mut scrape = |round: usize, sink: &mut Compress| {
        let ts = 1_000 * round as i64;
        target.begin(ExpositionFormat::PrometheusText, ts);
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
    let ((report, report2), allocations) = count_allocations(|| (scrape(3, &mut sink), scrape(4, &mut sink)));
    assert_eq!(report.samples_scraped, 4_502);
    assert_eq!(report2.samples_scraped, 5_002);
    assert_eq!(report.stale_markers, 500);
    assert!(sink.batches > 0 && sink.bytes > 0);
    // The rule really ran: both Go series of each of the five scrapes.
    assert_eq!(batcher.counters.dropped_write_relabel, 5 * 2);
    assert_eq!(allocations, 0, "allocations in two warm scrapes");
}
