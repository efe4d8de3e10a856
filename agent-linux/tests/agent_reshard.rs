//! Runtime resharding, end to end: the real binary against a loopback
//! receiver that first answers slowly (one shard cannot keep up, so the
//! sender asks for more) and then fast (the extra shards sit idle, so it
//! asks for fewer). Across both switches every scrape's samples arrive
//! exactly once and in order per series, and /metrics shows the counts under
//! Prometheus's gauge names.

use std::sync::atomic::Ordering;
use std::time::Duration;

use outpost_core::plan::Queue;
use outpost_test_support::{
    assert_each_scrape_once_in_order, free_port, http_get, metric_sum, outpost, wait_for, write_plan,
    CountingTarget, PlanBuilder, SlowReceiver, QUEUE,
};

const SERIES: usize = 400;

/// The n-th scrape of the target: every series carries n, so a receiver can
/// tell which scrape a sample came from.
fn body(n: u64) -> String {
    let mut out = String::with_capacity(SERIES * 40);
    out.push_str("# TYPE rt_scrape counter\n");
    for i in 0..SERIES {
        out.push_str(&format!("rt_scrape{{series=\"s{i}\"}} {n}\n"));
    }
    out
}

/// The shard counts of every `resharding` log line so far.
fn reshards(log: &std::path::Path) -> Vec<u16> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("msg=resharding"))
        .filter_map(|l| l.split_once(" shards=")?.1.split(' ').next()?.parse().ok())
        .collect()
}

fn gauge(port: u16, name: &str) -> Option<f64> {
    let (status, body) = http_get(port, "/metrics")?;
    assert_eq!(status, 200);
    body.lines()
        .any(|l| l.starts_with(&format!("{name}{{")))
        .then(|| metric_sum(&body, name, &["remote_name=\"outpost\""]))
}

#[test]
fn shards_rise_under_a_slow_receiver_fall_after_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // 600 ms per 100-sample request: one shard moves ~170 samples/s while
    // the target alone produces 400/s.
    let receiver = SlowReceiver::start(600);
    let target = CountingTarget::start(body);
    let plan = PlanBuilder::new()
        .receiver_url(&receiver.url())
        .external_labels(&[("cluster", "reshard")])
        .wal_dir(&dir.path().join("wal"))
        .queue(Queue {
            min_shards: 1,
            max_shards: 4,
            max_samples_per_send: 100,
            // A small window: the backlog lives in the WAL, so the drain the
            // reshard barrier waits for stays short.
            capacity: 200,
            ..QUEUE
        })
        .scrape_job("testapp", &[target.address()])
        .build();
    let plan_path = write_plan(dir.path(), "plan.bin", &plan);
    let port = free_port();
    let log = dir.path().join("outpost.log");
    let _agent = outpost!().start(&plan_path, port, "reshard-node", &log);

    wait_for("/metrics", Duration::from_secs(10), || {
        gauge(port, "prometheus_remote_storage_shards")
    });
    assert_eq!(gauge(port, "prometheus_remote_storage_shards_min"), Some(1.0));
    assert_eq!(gauge(port, "prometheus_remote_storage_shards_max"), Some(4.0));
    assert_eq!(gauge(port, "prometheus_remote_storage_shards"), Some(1.0));
    assert_eq!(gauge(port, "prometheus_remote_storage_shards_desired"), Some(1.0));

    let up = wait_for("a reshard up", Duration::from_secs(30), || {
        reshards(&log).first().copied()
    });
    assert!(up > 1, "first reshard went to {up} shards, from 1");
    let shown = gauge(port, "prometheus_remote_storage_shards").unwrap();
    assert_eq!(shown, f64::from(up), "gauge after resharding to {up}");
    // Now the receiver keeps up easily: the desired count must fall.
    receiver.delay_ms.store(0, Ordering::SeqCst);
    let down = wait_for("a reshard down", Duration::from_secs(45), || {
        reshards(&log).into_iter().skip(1).find(|&n| n < up)
    });
    assert!(down >= 1);
    let shown = gauge(port, "prometheus_remote_storage_shards").unwrap();
    assert!(
        shown <= f64::from(up) && shown >= 1.0,
        "gauge {shown} after resharding down"
    );
    assert!(
        receiver.connections.load(Ordering::SeqCst) >= u64::from(up),
        "fewer receiver connections than the {up} shards"
    );

    // Everything served up to now must arrive: once, in order per series.
    let served = target.served();
    wait_for("the backlog to drain", Duration::from_secs(15), || {
        let values = receiver.values_of("rt_scrape");
        (values.len() == SERIES && values.values().all(|v| v.len() as u64 >= served)).then_some(())
    });
    eprintln!("reshards: {:?}, scrapes served: {served}", reshards(&log));
    let values = receiver.values_of("rt_scrape");
    let least = assert_each_scrape_once_in_order(&values, SERIES);
    assert!(least >= served, "{least} scrapes arrived of {served} served");
    assert!(
        target.served() >= least,
        "more scrapes arrived than the target served"
    );
}
