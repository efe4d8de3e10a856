//! The scrape pipeline allocates nothing once warmed up: parse, target
//! labels, staging, staleness, external labels, batching and snappy all
//! work in buffers sized from the plan.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use outpost_core::expfmt::Format;
use outpost_core::pipeline::{BatchSink, Batcher, TargetLabels, TargetPipeline};
use outpost_core::plan::{
    Agent, Auth, Budget, Fsync, LabelPair, Limits, Plan, Queue, Receiver, RelabelAction, RelabelRule, Role,
    SelfScrape, StrId, Wal,
};
use outpost_core::remote_write::BatchBuilder;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Compresses each closed batch into one reused buffer, as the agent does
/// before the WAL append.
struct Compress {
    out: Vec<u8>,
    batches: u64,
    bytes: u64,
}

impl BatchSink for Compress {
    fn batch_closed(&mut self, _shard: u16, batch: &mut BatchBuilder) {
        self.bytes += batch.finish_into(&mut self.out) as u64;
        self.batches += 1;
    }
}

fn plan() -> Plan {
    let strings: Vec<String> = [
        "cluster",
        "c1",
        "__name__",
        ";",
        "go_gc_.*|go_memstats_.*",
        "$1",
        "",
        "/w",
        "self",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    Plan {
        strings,
        agent: Agent {
            cluster: StrId(1),
            tenant: None,
            role: Role::Cluster,
        },
        external_labels: vec![LabelPair {
            name: StrId(0),
            value: StrId(1),
        }],
        receiver: Receiver {
            url: StrId(6),
            tenant_header: None,
            tls: None,
            auth: Auth::None,
            remote_timeout_ms: 1000,
            write_relabel: vec![RelabelRule {
                action: RelabelAction::Drop,
                source_labels: vec![StrId(2)],
                separator: StrId(3),
                regex: StrId(4),
                modulus: 0,
                target_label: StrId(6),
                replacement: StrId(5),
            }],
        },
        queue: Queue {
            capacity: 10_000,
            min_shards: 2,
            max_shards: 2,
            max_samples_per_send: 2_000,
            batch_send_deadline_ms: 5_000,
            min_backoff_ms: 30,
            max_backoff_ms: 5_000,
            max_batch_bytes: 512 * 1024,
            max_sample_age_ms: 0,
        },
        wal: Wal {
            dir: StrId(7),
            max_bytes: 1 << 30,
            segment_bytes: 1 << 20,
            fsync: Fsync::Never,
        },
        node: None,
        scrape_jobs: Vec::new(),
        self_scrape: SelfScrape {
            interval_ms: 1000,
            job: StrId(8),
        },
        budget: Budget {
            cpu_request_millis: 1,
            cpu_limit_millis: 1,
            memory_request_bytes: 1,
            memory_limit_bytes: 1,
        },
    }
}

/// A KSM-like body; `round` changes values and drops some series so the
/// staleness path runs too.
fn body(round: u32) -> String {
    let mut s = String::new();
    s.push_str("# HELP kube_pod_status_phase The pods current phase.\n# TYPE kube_pod_status_phase gauge\n");
    for i in 0..5_000u32 {
        if round % 2 == 1 && i % 10 == 0 {
            continue;
        }
        let _ = writeln!(
            s,
            "kube_pod_status_phase{{namespace=\"ns-{}\",pod=\"pod-{i}\",uid=\"{:08x}-aaaa\",phase=\"Running\"}} {}",
            i % 40,
            i * 7919,
            (i + round) % 2
        );
    }
    s.push_str("go_memstats_alloc_bytes 12345\ngo_gc_duration_seconds_count 7\n");
    s
}

#[test]
fn a_warm_pipeline_scrapes_without_allocating() {
    let plan = plan();
    let limits = Limits {
        body_bytes: 4 << 20,
        samples: 10_000,
        label_count: 16,
        label_name_bytes: 64,
        label_value_bytes: 256,
    };
    let labels = TargetLabels {
        job: "kube-state-metrics".into(),
        instance: "ksm:8080".into(),
        extra: Vec::new(),
        honor_labels: false,
    };
    let mut target = TargetPipeline::new(&plan, labels, limits, &[]).unwrap();
    let mut batcher = Batcher::new(&plan, 2, 32, 4096).unwrap();
    let mut sink = Compress {
        out: Vec::with_capacity(BatchBuilder::new(&plan.queue).max_compressed_len()),
        batches: 0,
        bytes: 0,
    };
    let bodies = [body(0), body(1)];
    let mut scrape = |round: usize, sink: &mut Compress| {
        let ts = 1_000 * round as i64;
        target.begin(Format::PrometheusText, ts);
        // Uneven chunks, as a socket would deliver them.
        for chunk in bodies[round % 2].as_bytes().chunks(1400) {
            target.handle_chunk(chunk, &mut batcher).unwrap();
        }
        let report = target.finish(0.1, ts as u64, &mut batcher, sink).unwrap();
        batcher.close_all(sink);
        report
    };
    for round in 0..3 {
        scrape(round, &mut sink);
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let report = scrape(3, &mut sink);
    let report2 = scrape(4, &mut sink);
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!(report.samples_scraped, 4_502);
    assert_eq!(report2.samples_scraped, 5_002);
    assert_eq!(report.stale_markers, 500);
    assert!(sink.batches > 0 && sink.bytes > 0);
    assert_eq!(allocations, 0, "allocations in two warm scrapes");
}
