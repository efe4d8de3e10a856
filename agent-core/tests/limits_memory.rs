//! With the default label limits (none of their own, as in Prometheus) a
//! series may be as long as its line bound, a sixteenth of `body_size`. The
//! buffers that hold one series are sized from that bound, and this test
//! holds the worst-case memory bound to it: a target built as the agent
//! builds it, fed the longest line and the widest series the defaults
//! allow, never has more heap live than the bound's scraping terms charge.
//!
//! Heap bytes are counted by a global allocator, on this test's thread only.

use outpost_core::expfmt::ExpositionFormat;
use outpost_core::pipeline::{BatchSink, Batcher, TargetLabels, TargetPipeline};
use outpost_core::plan::{Budget, Fsync, Limits, Plan, Queue, RelabelAction, Role, SELF_SCRAPE_LIMITS};
use outpost_core::remote_write::BatchBuilder;
use outpost_test_support::{
    live_heap_bytes, peak_heap_bytes, reset_heap_bytes, CountingAllocator, PlanBuilder, Rule,
};
use std::fmt::Write as _;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// What `outpostc` writes when a spec sets no limits.
const DEFAULT_LIMITS: Limits = Limits {
    body_bytes: 10 << 20,
    samples: 100_000,
    label_count: 1024,
    label_name_bytes: u16::MAX,
    label_value_bytes: u32::MAX,
};

fn plan() -> Plan {
    PlanBuilder::new()
        .role(Role::Cluster)
        .external_labels(&[("cluster", "edge-7")])
        .receiver_url("https://r/api/v1/write")
        .remote_timeout_ms(30_000)
        .write_relabel(&[Rule::new(RelabelAction::Drop)
            .sources(&["__name__"])
            .regex("go_gc_.*")])
        .queue(Queue {
            capacity: 2_500,
            min_shards: 1,
            max_shards: 4,
            max_samples_per_send: 2_000,
            batch_send_deadline_ms: 5_000,
            min_backoff_ms: 30,
            max_backoff_ms: 5_000,
            max_batch_bytes: 400_000,
            max_sample_age_ms: 7_200_000,
        })
        .wal_bounds(1 << 30, 8 << 20)
        .fsync(Fsync::IntervalMs(1_000))
        .scrape_job("app", &["app:8080"])
        .job_timing(30_000, 10_000)
        .job_limits(DEFAULT_LIMITS)
        // A labelmap (which snapshots the whole series) and a replace
        // (which joins sources): every relabeling scratch in use.
        .job_relabel(&[
            Rule::new(RelabelAction::LabelMap)
                .regex("(source)")
                .replacement("copy_$1"),
            Rule::new(RelabelAction::Replace)
                .sources(&["source", "source"])
                .target("copy"),
        ])
        .self_scrape(30_000, "outpost")
        .budget(Budget {
            cpu_request_millis: 200,
            cpu_limit_millis: 500,
            memory_request_bytes: 256 << 20,
            memory_limit_bytes: 512 << 20,
        })
        .build()
}

struct Discard;

impl BatchSink for Discard {
    fn batch_closed(&mut self, _shard: u16, batch: &mut BatchBuilder) {
        batch.clear();
    }
}

fn labels(job: &str, instance: &str) -> TargetLabels {
    TargetLabels {
        job: job.into(),
        instance: instance.into(),
        extra: Vec::new(),
        honor_labels: false,
    }
}

/// A body whose one series' line is `line_len` bytes, in a label value.
fn longest_line(line_len: usize) -> String {
    let head = "kube_pod_annotations{source=\"s\",label_a=\"x\",annotation_config=\"";
    let tail = "\"} 1\n";
    let value: String = (0..line_len - head.len() - tail.len() + 1)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    format!("{head}{value}{tail}")
}

/// A body whose one series has as many labels as the defaults allow, their
/// values as long as the line allows.
fn widest_series(line_len: usize, labels: usize) -> String {
    let mut line = String::from("kube_pod_labels{source=\"s\"");
    let value_len = (line_len - 64) / labels - 16;
    for i in 1..labels - 1 {
        let value: String = (0..value_len)
            .map(|j| char::from(b'a' + ((i + j) % 26) as u8))
            .collect();
        write!(line, ",label_{i:04}=\"{value}\"").unwrap();
    }
    line.push_str("} 1\n");
    assert!(line.len() <= line_len && line.len() > line_len - 32 * 1024);
    line
}

#[test]
fn the_longest_series_the_defaults_allow_stays_within_the_worst_case_bound() {
    let plan = plan();
    let limits = DEFAULT_LIMITS;
    let line = limits.max_line_bytes();
    assert_eq!(line, 640 * 1024, "a sixteenth of the default body");
    let m = plan.worst_case_memory();
    let charged = m.scrape_slots + m.series_pool + m.targets + m.batching;

    reset_heap_bytes();
    // As the agent builds its scrape side for this plan: the job's target,
    // the self scrape, and one batcher sized for the largest of them.
    let job = labels("app", "app:8080");
    let mut target =
        TargetPipeline::new(&plan, job.clone(), limits, &plan.scrape_jobs[0].metric_relabel).unwrap();
    let mut own =
        TargetPipeline::new(&plan, labels("outpost", "node:9090"), SELF_SCRAPE_LIMITS, &[]).unwrap();
    let max_labels = limits.max_labels() + 2 + job.extra.len();
    let max_label_bytes = limits.series_label_bytes() + job.job.len() + job.instance.len() + 64;
    let mut batcher = Batcher::new(&plan, plan.queue.min_shards, max_labels, max_label_bytes).unwrap();
    let built = live_heap_bytes();

    // Bodies are made before counting them would blur the figure.
    let bodies = [longest_line(line), widest_series(line, limits.max_labels())];
    let body_bytes: i64 = bodies.iter().map(|b| b.capacity() as i64).sum();
    for (round, body) in bodies.iter().enumerate() {
        let ts = 1_700_000_000_000 + round as i64 * 30_000;
        target.begin(ExpositionFormat::PrometheusText, ts);
        // In socket-sized chunks, so the line is assembled in its buffer.
        for chunk in body.as_bytes().chunks(16 * 1024) {
            target.handle_chunk(chunk, &mut batcher).unwrap();
        }
        let report = target.finish(0.1, &mut batcher, &mut Discard).unwrap();
        assert_eq!(report.samples_post_relabel, 1, "round {round}");
        own.begin(ExpositionFormat::PrometheusText, ts);
        own.handle_chunk(b"outpost_up 1\n", &mut batcher).unwrap();
        own.finish(0.0, &mut batcher, &mut Discard).unwrap();
    }
    batcher.close_all(&mut Discard);
    let peak = peak_heap_bytes() - body_bytes;
    eprintln!(
        "line bound {line} B; built {built} B; peak {peak} B; charged by the bound {charged} B \
         (scrape_slots {}, series_pool {}, targets {}, batching {})",
        m.scrape_slots, m.series_pool, m.targets, m.batching
    );
    assert!(
        peak > 0 && (peak as u64) <= charged,
        "peak {peak} B > bound {charged} B"
    );
}
