//! Throughput of outpost's hot path on a KSM-shaped body (50,000 series,
//! 5-8 labels each, plus the Go runtime block), in samples per second:
//!
//! - `parse`: exposition text -> samples (`expfmt::Parser`, fed in 16 KiB
//!   chunks as a socket read would hand them over);
//! - `relabel`: the seed's `go_gc_.*|go_memstats_.*` drop over complete label
//!   sets (`relabel::RelabelProgram`);
//! - `encode`: sorted label sets -> protobuf `WriteRequest` batches of
//!   10,000 samples -> snappy (`remote_write::BatchBuilder`);
//! - `pipeline`: all three chained per sample, every series encoded anew;
//! - `target_pipeline`: the agent's real path (`pipeline::TargetPipeline`
//!   and `Batcher`) in steady state, where each series' labels were encoded
//!   at its first scrape and later scrapes only look the series up and copy
//!   its bytes; includes target and external labels, staleness tracking,
//!   the synthetic series and snappy.
//!
//! Run with `cargo bench -p outpost-benches`; criterion prints `thrpt` in
//! elements (samples) per second.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use outpost_benches::{
    body_samples, full_label_sets, full_labels, ksm_body, ksm_limits, ksm_series, seed_plan, ADDED_LABELS,
    MAX_LABELS, MAX_LABEL_BYTES,
};
use outpost_core::error::ScrapeError;
use outpost_core::expfmt::{ExpositionFormat, Parser, Sample};
use outpost_core::labels::LabelSet;
use outpost_core::pipeline::{BatchSink, Batcher, TargetLabels, TargetPipeline};
use outpost_core::plan::{LabelPair, StrId};
use outpost_core::relabel::RelabelProgram;
use outpost_core::remote_write::BatchBuilder;
use std::hint::black_box;

const SERIES: usize = 50_000;
/// What one socket read typically hands the parser.
const CHUNK: usize = 16 * 1024;
const TIMESTAMP_MS: i64 = 1_764_000_000_000;

fn parse_body(
    parser: &mut Parser,
    body: &[u8],
    sink: &mut dyn FnMut(&Sample<'_>) -> Result<(), ScrapeError>,
) {
    parser.reset(ExpositionFormat::PrometheusText);
    for chunk in body.chunks(CHUNK) {
        parser.handle_chunk(chunk, sink).expect("KSM body parses");
    }
    parser.finish(sink).expect("KSM body parses");
}

fn bench_parse(c: &mut Criterion) {
    let series = ksm_series(SERIES);
    let body = ksm_body(&series, 1).into_bytes();
    let mut parser = Parser::new(&ksm_limits());
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(body_samples(SERIES) as u64));
    group.bench_function(BenchmarkId::new("ksm", SERIES), |b| {
        b.iter(|| {
            let mut count = 0u64;
            let mut value_sum = 0.0f64;
            parse_body(&mut parser, &body, &mut |s| {
                count += 1;
                value_sum += s.value;
                Ok(())
            });
            assert_eq!(count, body_samples(SERIES) as u64);
            black_box(value_sum)
        })
    });
    group.finish();
}

fn drop_program() -> RelabelProgram {
    let plan = seed_plan();
    let mut program = RelabelProgram::build(
        &plan,
        &plan.receiver.write_relabel,
        outpost_benches::MAX_LABEL_BYTES,
    )
    .expect("the seed's drop rule compiles");
    program.reserve_labels(outpost_benches::MAX_LABELS);
    program
}

fn bench_relabel(c: &mut Criterion) {
    let series = ksm_series(SERIES);
    let mut sets = full_label_sets(&series);
    let mut program = drop_program();
    let mut group = c.benchmark_group("relabel");
    group.throughput(Throughput::Elements(sets.len() as u64));
    group.bench_function(BenchmarkId::new("seed_drop_rule", sets.len()), |b| {
        b.iter(|| {
            let mut kept = 0usize;
            for labels in sets.iter_mut() {
                kept += usize::from(program.apply(labels));
            }
            // Every kube_* series stays; the Go runtime block goes.
            assert_eq!(kept, SERIES);
            black_box(kept)
        })
    });
    group.finish();
}

/// Pushes one sample, closing the batch into `out` when it is full.
fn push(
    builder: &mut BatchBuilder,
    out: &mut Vec<u8>,
    wire_bytes: &mut usize,
    labels: &LabelSet,
    value: f64,
) {
    if builder.push(labels, value, TIMESTAMP_MS).is_err() {
        *wire_bytes += builder.finish_into(out);
        builder
            .push(labels, value, TIMESTAMP_MS)
            .expect("a sample fits an empty batch");
    }
}

fn bench_encode(c: &mut Criterion) {
    let series = ksm_series(SERIES);
    let sets = &full_label_sets(&series)[..SERIES];
    let values: Vec<f64> = series.iter().enumerate().map(|(i, s)| s.value_at(i, 1)).collect();
    let plan = seed_plan();
    let mut builder = BatchBuilder::new(&plan.queue);
    let mut out = Vec::with_capacity(builder.max_compressed_len());
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(SERIES as u64));
    group.bench_function(BenchmarkId::new("protobuf_snappy", SERIES), |b| {
        b.iter(|| {
            let mut wire_bytes = 0;
            for (labels, value) in sets.iter().zip(&values) {
                push(&mut builder, &mut out, &mut wire_bytes, labels, *value);
            }
            wire_bytes += builder.finish_into(&mut out);
            black_box(wire_bytes)
        })
    });
    // The same pushes without compression, to split the cost between protobuf and snappy.
    group.bench_function(BenchmarkId::new("protobuf_only", SERIES), |b| {
        b.iter(|| {
            let mut raw_bytes = 0;
            for (labels, value) in sets.iter().zip(&values) {
                if builder.push(labels, *value, TIMESTAMP_MS).is_err() {
                    raw_bytes += builder.encoded_len();
                    builder.clear();
                    builder
                        .push(labels, *value, TIMESTAMP_MS)
                        .expect("a sample fits an empty batch");
                }
            }
            raw_bytes += builder.encoded_len();
            builder.clear();
            black_box(raw_bytes)
        })
    });
    group.finish();
}

fn bench_pipeline(c: &mut Criterion) {
    let series = ksm_series(SERIES);
    let body = ksm_body(&series, 1).into_bytes();
    let mut parser = Parser::new(&ksm_limits());
    let mut program = drop_program();
    let plan = seed_plan();
    let mut builder = BatchBuilder::new(&plan.queue);
    let mut out = Vec::with_capacity(builder.max_compressed_len());
    let mut labels = outpost_benches::label_set();
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(body_samples(SERIES) as u64));
    group.bench_function(BenchmarkId::new("parse_relabel_encode", SERIES), |b| {
        b.iter(|| {
            let mut wire_bytes = 0usize;
            let mut kept = 0usize;
            parse_body(&mut parser, &body, &mut |s| {
                full_labels(s.name, s.labels.iter(), &mut labels);
                if program.apply(&mut labels) {
                    kept += 1;
                    push(&mut builder, &mut out, &mut wire_bytes, &labels, s.value);
                }
                Ok(())
            });
            wire_bytes += builder.finish_into(&mut out);
            assert_eq!(
                kept,
                SERIES + 1,
                "kube_* series and go_goroutines survive the drop rule"
            );
            black_box(wire_bytes)
        })
    });
    group.finish();
}

/// Finishes every closed batch into snappy bytes, as the agent's WAL append does.
struct Compress {
    out: Vec<u8>,
    wire_bytes: usize,
}

impl BatchSink for Compress {
    fn batch_closed(&mut self, _shard: u16, batch: &mut BatchBuilder) {
        self.wire_bytes += batch.finish_into(&mut self.out);
    }
}

fn bench_target_pipeline(c: &mut Criterion) {
    let series = ksm_series(SERIES);
    let bodies = [
        ksm_body(&series, 2).into_bytes(),
        ksm_body(&series, 3).into_bytes(),
    ];
    let mut plan = seed_plan();
    // The target adds job and instance; the rest of ADDED_LABELS are external.
    for (name, value) in ADDED_LABELS
        .iter()
        .filter(|(n, _)| *n != "job" && *n != "instance")
    {
        plan.strings.push(name.to_string());
        plan.strings.push(value.to_string());
        let at = plan.strings.len() as u32;
        plan.external_labels.push(LabelPair {
            name: StrId(at - 2),
            value: StrId(at - 1),
        });
    }
    let target = TargetLabels {
        job: "kube-state-metrics".into(),
        instance: "kube-state-metrics.monitoring.svc:8080".into(),
        extra: Vec::new(),
        honor_labels: false,
    };
    let mut pipeline = TargetPipeline::new(&plan, target, ksm_limits(), &[]).expect("pipeline builds");
    let mut batcher = Batcher::new(&plan, 1, MAX_LABELS, MAX_LABEL_BYTES).expect("batcher builds");
    let mut sink = Compress {
        out: Vec::with_capacity(BatchBuilder::new(&plan.queue).max_compressed_len()),
        wire_bytes: 0,
    };
    let mut scrape = |tick: usize| {
        let ts = TIMESTAMP_MS + tick as i64 * 15_000;
        pipeline.begin(ExpositionFormat::PrometheusText, ts);
        for chunk in bodies[tick % 2].chunks(CHUNK) {
            pipeline
                .handle_chunk(chunk, &mut batcher)
                .expect("KSM body parses");
        }
        let report = pipeline
            .finish(0.1, &mut batcher, &mut sink)
            .expect("KSM body parses");
        batcher.close_all(&mut sink);
        report
    };
    // The first scrape encodes every series; the bench measures the ones after.
    scrape(0);
    let mut tick = 1;
    let mut group = c.benchmark_group("target_pipeline");
    group.throughput(Throughput::Elements(body_samples(SERIES) as u64));
    group.bench_function(BenchmarkId::new("steady_scrape", SERIES), |b| {
        b.iter(|| {
            tick += 1;
            let report = scrape(tick);
            assert_eq!(report.series_added, 0);
            assert_eq!(report.samples_scraped, body_samples(SERIES) as u64);
            black_box(report)
        })
    });
    group.finish();
    black_box(sink.wire_bytes);
}

/// Reports bytes on the wire per sample for the KSM body once, so the
/// number sits next to the throughput in the bench output.
fn report_wire_size(_c: &mut Criterion) {
    let series = ksm_series(SERIES);
    let sets = &full_label_sets(&series)[..SERIES];
    let plan = seed_plan();
    let mut builder = BatchBuilder::new(&plan.queue);
    let mut out = Vec::with_capacity(builder.max_compressed_len());
    let (mut raw, mut wire) = (0usize, 0usize);
    for (i, labels) in sets.iter().enumerate() {
        if builder
            .push(labels, series[i].value_at(i, 1), TIMESTAMP_MS)
            .is_err()
        {
            raw += builder.encoded_len();
            wire += builder.finish_into(&mut out);
            builder
                .push(labels, series[i].value_at(i, 1), TIMESTAMP_MS)
                .expect("fits an empty batch");
        }
    }
    raw += builder.encoded_len();
    wire += builder.finish_into(&mut out);
    println!(
        "encode/wire_size: {SERIES} samples -> {raw} protobuf bytes ({:.1} B/sample) -> {wire} snappy bytes ({:.2} B/sample)",
        raw as f64 / SERIES as f64,
        wire as f64 / SERIES as f64
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = report_wire_size, bench_parse, bench_relabel, bench_encode, bench_pipeline, bench_target_pipeline
}
criterion_main!(benches);
