//! Time of one scrape of each node collector on this machine's real `/proc` and `/sys`, and of
//! all of them at once, as the node role runs them. Each run is warm (buffers grown by earlier
//! iterations), so this is the steady-state cost. A collector whose hardware this machine lacks
//! (md arrays, bonding, hwmon) measures its failure path.
//!
//! Run with `cargo bench -p outpost-benches --bench collectors`.

use criterion::{criterion_group, criterion_main, Criterion};
use outpost_agent::collectors::{NodeCollector, Paths};
use outpost_core::plan::Collector;

fn bench_collectors(c: &mut Criterion) {
    let mut group = c.benchmark_group("node_collector");
    let mut out = String::new();
    for collector in Collector::ALL {
        let mut node = NodeCollector::new(Paths::default(), &[collector]);
        node.collect(&mut out);
        group.bench_function(collector.name(), |b| b.iter(|| node.collect(&mut out)));
    }
    let mut node = NodeCollector::new(Paths::default(), &Collector::ALL);
    node.collect(&mut out);
    group.bench_function("all", |b| b.iter(|| node.collect(&mut out)));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench_collectors
}
criterion_main!(benches);
