//! What the targets share (issue 22), against real peers: a series pool too
//! small for two targets fails the second by name while the first's series
//! reach a real Prometheus 2.42 whole; and with one scrape slot, slow targets
//! delay each other and the scrapes that cannot start within their timeout
//! are skipped and counted, never lost silently; and gzip targets that
//! take turns with the one slot's gzip state are each delivered whole.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use outpost_core::plan::Sharing;
use outpost_test_support::*;

const SMALL: u64 = 500;
const LARGE: u64 = 5_000;

fn series(name: &str, n: u64, scrape: u64) -> String {
    let mut body = format!("# TYPE {name} gauge\n");
    for i in 0..n {
        body.push_str(&format!(
            "{name}{{shard=\"s{}\",item=\"i{i:05}\"}} {}\n",
            i % 8,
            scrape + i
        ));
    }
    body
}

fn small_body(scrape: u64) -> String {
    series("pool_small_series", SMALL, scrape)
}

fn large_body(scrape: u64) -> String {
    series("pool_large_series", LARGE, scrape)
}

#[test]
fn a_full_series_pool_fails_the_target_that_outgrows_it_and_costs_the_other_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let Some(prom) = Prometheus::start(&dir.path().join("prom")) else {
        return;
    };
    let small = CountingTarget::start(small_body);
    let large = CountingTarget::start(large_body);
    // Entries are reserved in doublings from 256: the small target takes
    // 512, the self-scrape 256, and the large one cannot reach 8192.
    let pool = Sharing {
        scrape_concurrency: 4,
        max_series: 2_000,
        max_series_bytes: 64 << 20,
    };
    let plan = PlanBuilder::new()
        .receiver_url(&prom.write_url())
        .wal_dir(&dir.path().join("wal"))
        .sharing(pool)
        .scrape_job("small", &[small.address()])
        .job_timing(1_000, 900)
        .scrape_job("large", &[large.address()])
        .job_timing(1_000, 900)
        .build();
    let plan_path = write_plan(dir.path(), "plan.bin", &plan);
    let port = free_port();
    let mut agent = outpost!().start(&plan_path, port, "pool-node", &dir.path().join("outpost.log"));

    let count = wait_for(
        "the small target's series in Prometheus",
        Duration::from_secs(30),
        || {
            let body = prom.query("count(pool_small_series)");
            body.contains(&format!("\"{SMALL}\"")).then_some(SMALL)
        },
    );
    let one = prom.query("pool_small_series{item=\"i00007\"}");
    let metrics = wait_for("the large target's failures", Duration::from_secs(30), || {
        let (_, m) = http_get(port, "/metrics")?;
        (metric_sum(
            &m,
            "outpost_target_scrape_failures_total",
            &[
                &format!("instance=\"{}\"", large.address()),
                "reason=\"series_pool_full\"",
            ],
        ) >= 2.0)
            .then_some(m)
    });
    let (_, targets) = http_get(port, "/api/v1/targets").expect("targets API");
    let large_up = prom.query("up{job=\"large\"}");
    let large_series = prom.query("count(pool_large_series)");
    agent.terminate(Duration::from_secs(10));

    assert_eq!(count, SMALL);
    for label in [
        "\"__name__\":\"pool_small_series\"",
        "\"item\":\"i00007\"",
        "\"shard\":\"s7\"",
        "\"job\":\"small\"",
        &format!("\"instance\":\"{}\"", small.address()),
    ] {
        assert!(one.contains(label), "{label} in {one}");
    }
    let small_failures = metric_sum(
        &metrics,
        "outpost_target_scrape_failures_total",
        &[&format!("instance=\"{}\"", small.address())],
    );
    assert_eq!(small_failures, 0.0, "{metrics}");
    // The pool says what it holds and what it refused.
    assert!(
        metric_sum(&metrics, "outpost_series_pool_refused_total", &[]) >= 2.0,
        "{metrics}"
    );
    let reserved = metric_sum(&metrics, "outpost_series_pool_series", &[]);
    assert!(
        (768.0..=2_000.0).contains(&reserved),
        "{reserved} series reserved: {metrics}"
    );
    assert!(
        large_up.contains("\"0\"]"),
        "the large target is down: {large_up}"
    );
    assert!(
        !large_series.contains("\"value\""),
        "nothing of the large target: {large_series}"
    );
    assert!(
        targets.contains("series_pool.max_series 2000"),
        "lastError names the pool and its limit: {targets}"
    );
}

/// Each scrape takes 1.2 s to answer.
fn slow_body(scrape: u64) -> String {
    std::thread::sleep(Duration::from_millis(1_200));
    format!("# TYPE slow_series gauge\nslow_series {scrape}\n")
}

#[test]
fn one_scrape_slot_delays_slow_targets_and_counts_every_scrape_it_skips() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, _up) = RecordingReceiver::switchable();
    let slow: Vec<CountingTarget> = (0..3).map(|_| CountingTarget::start(slow_body)).collect();
    let addresses: Vec<String> = slow.iter().map(CountingTarget::address).collect();
    let plan = PlanBuilder::new()
        .receiver_url(&receiver.url())
        .wal_dir(&dir.path().join("wal"))
        .sharing(Sharing {
            scrape_concurrency: 1,
            ..Sharing::DEFAULT
        })
        .scrape_job("slow", &addresses)
        .job_timing(2_000, 1_500)
        .build();
    let plan_path = write_plan(dir.path(), "plan.bin", &plan);
    let port = free_port();
    let started = Instant::now();
    let mut agent = outpost!().start(&plan_path, port, "slot-node", &dir.path().join("outpost.log"));
    std::thread::sleep(Duration::from_secs(12));
    let (_, metrics) = http_get(port, "/metrics").expect("agent /metrics");
    let elapsed = started.elapsed();
    agent.terminate(Duration::from_secs(10));

    // Three targets of 1.2 s each every 2 s through one slot: they cannot
    // all be scraped; every due scrape is either attempted or skipped.
    let intervals = elapsed.as_millis() as f64 / 2_000.0;
    let mut skipped_total = 0.0;
    for a in &addresses {
        let instance = format!("instance=\"{a}\"");
        let attempted = metric_sum(&metrics, "outpost_target_scrapes_total", &[&instance]);
        let skipped = metric_sum(
            &metrics,
            "outpost_target_scrapes_skipped_total",
            &[&instance, "reason=\"concurrency\""],
        );
        eprintln!("{a}: {attempted} attempted, {skipped} skipped in {intervals:.1} intervals");
        assert!(attempted >= 1.0, "{metrics}");
        assert!(
            attempted + skipped >= intervals - 2.0,
            "{a}: {attempted} + {skipped} scrapes in {intervals:.1} intervals"
        );
        skipped_total += skipped;
    }
    assert!(skipped_total >= 1.0, "some scrape was skipped: {metrics}");
    let served: u64 = slow.iter().map(CountingTarget::served).sum();
    // One slot: at most one scrape at a time, each at least 1.2 s.
    assert!(
        (served as f64) <= elapsed.as_secs_f64() / 1.2 + 1.0,
        "{served} scrapes in {elapsed:?} through one slot"
    );
}

/// `plain` as one gzip member (RFC 1952), as a Prometheus exporter sends it.
fn gzip(plain: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    out.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(plain, 6));
    out.extend_from_slice(&crc32fast::hash(plain).to_le_bytes());
    out.extend_from_slice(&(plain.len() as u32).to_le_bytes());
    out
}

const GZIP_SERIES: u64 = 2_000;

/// A target that answers the n-th scrape with `name`'s series at `n + i`,
/// gzip-encoded when the request accepts gzip; counts the gzip answers.
struct GzipTarget {
    gzipped: Arc<AtomicU64>,
    server: LoopbackServer,
}

impl GzipTarget {
    fn start(name: &'static str) -> GzipTarget {
        let gzipped = Arc::new(AtomicU64::new(0));
        let served = Arc::new(AtomicU64::new(0));
        let count = gzipped.clone();
        let server = LoopbackServer::start("127.0.0.1:0", move |s, stop| {
            serve_connection(s, stop, |req| {
                let n = served.fetch_add(1, Ordering::SeqCst) + 1;
                let body = series(name, GZIP_SERIES, n).into_bytes();
                let accepts = req
                    .headers
                    .get("accept-encoding")
                    .is_some_and(|v| v.contains("gzip"));
                if !accepts {
                    return (200, Vec::new(), body);
                }
                count.fetch_add(1, Ordering::SeqCst);
                let headers = vec![("Content-Encoding".to_string(), "gzip".to_string())];
                (200, headers, gzip(&body))
            })
        });
        GzipTarget { gzipped, server }
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.server.port())
    }
}

#[test]
fn gzip_targets_taking_turns_with_one_slots_gzip_state_are_each_delivered_whole() {
    let dir = tempfile::tempdir().unwrap();
    let Some(prom) = Prometheus::start(&dir.path().join("prom")) else {
        return;
    };
    let a = GzipTarget::start("gz_a_series");
    let b = GzipTarget::start("gz_b_series");
    // One slot: both connections (and the self-scrape) scrape with the one
    // gzip state in turn, each giving it back after its scrape.
    let plan = PlanBuilder::new()
        .receiver_url(&prom.write_url())
        .wal_dir(&dir.path().join("wal"))
        .sharing(Sharing {
            scrape_concurrency: 1,
            ..Sharing::DEFAULT
        })
        .scrape_job("gz_a", &[a.address()])
        .job_timing(1_000, 900)
        .scrape_job("gz_b", &[b.address()])
        .job_timing(1_000, 900)
        .build();
    let plan_path = write_plan(dir.path(), "plan.bin", &plan);
    let port = free_port();
    let mut agent = outpost!().start(&plan_path, port, "gzip-node", &dir.path().join("outpost.log"));

    // Each body inflates to more than one inflate output buffer (32 KiB).
    assert!(series("gz_a_series", GZIP_SERIES, 1).len() > 64 * 1024);
    // The first five scrapes of each target, every series at its value, in
    // Prometheus: the last series of each scrape carries `n + 1999`.
    let last = format!("i{:05}", GZIP_SERIES - 1);
    let mut held = Vec::new();
    for name in ["gz_a_series", "gz_b_series"] {
        let q = format!("{name}{{item=\"{last}\"}}[5m]");
        held.push(wait_for(
            &format!("five scrapes of {name}"),
            Duration::from_secs(60),
            || {
                let body = prom.query(&q);
                (1..=5)
                    .all(|n| body.contains(&format!("\"{}\"]", n + GZIP_SERIES - 1)))
                    .then_some(body)
            },
        ));
    }
    let counts: Vec<String> = ["gz_a", "gz_b"]
        .iter()
        .map(|job| prom.query(&format!("count({job}_series{{job=\"{job}\"}})")))
        .collect();
    let (_, metrics) = http_get(port, "/metrics").expect("agent /metrics");
    agent.terminate(Duration::from_secs(10));

    for (target, count) in [&a, &b].iter().zip(&counts) {
        assert!(target.gzipped.load(Ordering::SeqCst) >= 5, "gzip answers");
        assert!(count.contains(&format!("\"{GZIP_SERIES}\"")), "{count}");
        let instance = format!("instance=\"{}\"", target.address());
        let failures = metric_sum(&metrics, "outpost_target_scrape_failures_total", &[&instance]);
        assert_eq!(failures, 0.0, "{metrics}");
    }
    eprintln!("{}", held.join("\n"));
}
