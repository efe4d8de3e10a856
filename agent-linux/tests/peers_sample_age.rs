//! One target exposing samples with explicit timestamps years in the past
//! must not cost any other sample its delivery (issue 14, section 1).
//!
//! Ten fresh targets and one mixed target are scraped every second by the
//! `outpost` binary, which writes to a real Prometheus 2.42. The mixed
//! target exposes, next to fresh series, three series stamped 2019-01-01:
//! far older than `queue.max_sample_age`. Every fresh sample the targets
//! served is queried back from Prometheus with its exact labels and value;
//! the old ones are counted exactly, once per target and once among the
//! agent's dropped samples (`too_old`), and never reach the receiver.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use outpost_core::plan::Queue;
use outpost_test_support::*;

const FRESH_TARGETS: usize = 10;
/// 2019-01-01T00:00:00Z, years older than the plan's one-hour max_sample_age.
const OLD_TS_MS: i64 = 1_546_300_800_000;
const OLD_SERIES: u64 = 3;

fn wall_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// What a fresh target serves on its n-th scrape.
fn fresh_body(n: u64) -> String {
    format!(
        "# TYPE age_fresh gauge\n\
         age_fresh{{series=\"a\"}} {n}\n\
         age_fresh{{series=\"b\"}} {}\n",
        n * 2
    )
}

/// What the mixed target serves on its n-th scrape: fresh series, one with
/// an explicit timestamp of now, and old ones around them.
fn mixed_body(n: u64) -> String {
    let now = wall_ms();
    let mut body = format!("# TYPE age_mixed gauge\nage_mixed{{kind=\"plain\"}} {n}\n");
    for k in 0..OLD_SERIES {
        body.push_str(&format!("age_old{{k=\"{k}\"}} {n} {OLD_TS_MS}\n"));
        if k == 0 {
            body.push_str(&format!("age_mixed{{kind=\"stamped_now\"}} {n} {now}\n"));
        }
    }
    body.push_str(&format!("age_mixed{{kind=\"after\"}} {n}\n"));
    body
}

/// The values of the one series `selector` names over the last ten
/// minutes, and its label set as Prometheus renders it.
fn range_values(prom: &Prometheus, selector: &str) -> (String, Vec<f64>) {
    let body = prom.query(&format!("{selector}[10m]"));
    let result = body
        .split_once("\"result\":[")
        .map(|(_, r)| r)
        .unwrap_or_else(|| panic!("{selector}: {body}"));
    if result.starts_with(']') {
        return (String::new(), Vec::new());
    }
    assert_eq!(
        result.matches("\"metric\":").count(),
        1,
        "{selector} names one series: {body}"
    );
    let metric = result
        .split_once("\"metric\":")
        .and_then(|(_, r)| r.split_once('}'))
        .map(|(m, _)| format!("{m}}}"))
        .unwrap();
    let values = result
        .split_once("\"values\":[")
        .map(|(_, r)| r)
        .unwrap()
        .split("],[")
        .map(|pair| {
            let v = pair.rsplit_once(",\"").unwrap().1;
            let v = v.split('"').next().unwrap();
            v.parse::<f64>()
                .unwrap_or_else(|_| panic!("{selector}: value {v:?}"))
        })
        .collect();
    (metric, values)
}

#[test]
fn old_explicit_timestamps_never_cost_a_fresh_sample() {
    let dir = tempfile::tempdir().unwrap();
    let Some(prom) = Prometheus::start(&dir.path().join("prom")) else {
        return;
    };
    let fresh: Vec<CountingTarget> = (0..FRESH_TARGETS)
        .map(|_| CountingTarget::start(fresh_body))
        .collect();
    let mixed = CountingTarget::start(mixed_body);
    let mut addresses: Vec<String> = fresh.iter().map(CountingTarget::address).collect();
    addresses.push(mixed.address());
    let plan = PlanBuilder::new()
        .receiver_url(&prom.write_url())
        .external_labels(&[("cluster", "age")])
        .wal_dir(&dir.path().join("wal"))
        // Batches that stay open for two scrapes mix every target's samples,
        // as the default five-second deadline does.
        .queue(Queue {
            batch_send_deadline_ms: 2_000,
            ..QUEUE
        })
        .scrape_job("testapp", &addresses)
        .build();
    assert_eq!(plan.queue.max_sample_age_ms, 3_600_000);
    let plan_path = write_plan(dir.path(), "plan.bin", &plan);
    let port = free_port();
    let log = dir.path().join("outpost.log");
    let mut agent = outpost!().start(&plan_path, port, "age-node", &log);

    std::thread::sleep(Duration::from_secs(8));
    // Served counts are final once the targets are gone; the agent's next
    // scrapes fail and it ships what it has.
    let (fresh_addrs, mixed_addr) = (addresses[..FRESH_TARGETS].to_vec(), mixed.address());
    let served: Vec<u64> = fresh.into_iter().map(CountingTarget::stop).collect();
    let mixed_served = mixed.stop();
    std::thread::sleep(Duration::from_secs(3));
    let (_, metrics) = http_get(port, "/metrics").expect("agent /metrics");
    assert_eq!(
        agent.terminate(Duration::from_secs(10)).map(|s| s.code()),
        Some(Some(0))
    );
    let log_text = std::fs::read_to_string(&log).unwrap();

    let expect_series = |name: &str, instance: &str, label: (&str, &str), n: u64, scale: f64| {
        let selector = format!(
            "{name}{{cluster=\"age\",job=\"testapp\",instance=\"{instance}\",{}=\"{}\"}}",
            label.0, label.1
        );
        let (metric, values) = range_values(&prom, &selector);
        let wanted: Vec<f64> = (1..=n).map(|i| i as f64 * scale).collect();
        let delivered = values.iter().filter(|v| wanted.contains(v)).count() as u64;
        if !values.is_empty() {
            assert_eq!(
                metric,
                format!(
                    "{{\"__name__\":\"{name}\",\"cluster\":\"age\",\"instance\":\"{instance}\",\"job\":\"testapp\",\"{}\":\"{}\"}}",
                    label.0, label.1
                ),
                "exact labels"
            );
        }
        (delivered, values == wanted, selector, values)
    };

    let mut expected = 0u64;
    let mut delivered = 0u64;
    let mut wrong = Vec::new();
    for (addr, &n) in fresh_addrs.iter().zip(&served) {
        for (series, scale) in [("a", 1.0), ("b", 2.0)] {
            let (got, exact, selector, values) =
                expect_series("age_fresh", addr, ("series", series), n, scale);
            expected += n;
            delivered += got;
            if !exact {
                wrong.push(format!("{selector}: {values:?} (served {n})"));
            }
        }
    }
    for kind in ["plain", "stamped_now", "after"] {
        let (got, exact, selector, values) =
            expect_series("age_mixed", &mixed_addr, ("kind", kind), mixed_served, 1.0);
        expected += mixed_served;
        delivered += got;
        if !exact {
            wrong.push(format!("{selector}: {values:?} (served {mixed_served})"));
        }
    }
    // `up` of every good scrape is a fresh sample too, of every target.
    for (addr, &n) in fresh_addrs
        .iter()
        .zip(&served)
        .chain([(&mixed_addr, &mixed_served)])
    {
        let selector = format!("up{{cluster=\"age\",job=\"testapp\",instance=\"{addr}\"}}");
        let (_, values) = range_values(&prom, &selector);
        let ups = values.iter().filter(|&&v| v == 1.0).count() as u64;
        expected += n;
        delivered += ups.min(n);
        if ups != n {
            wrong.push(format!("{selector}: {ups} samples of 1 (served {n})"));
        }
    }
    let too_old_dropped = metric_sum(
        &metrics,
        "prometheus_remote_storage_samples_dropped_total",
        &["reason=\"too_old\""],
    );
    let out_of_bounds = metric_sum(
        &metrics,
        "prometheus_target_scrapes_sample_out_of_bounds_total",
        &[&format!("instance=\"{mixed_addr}\"")],
    );
    let out_of_bounds_all = metric_sum(
        &metrics,
        "prometheus_target_scrapes_sample_out_of_bounds_total",
        &[],
    );
    eprintln!(
        "fresh samples served {expected}, delivered {delivered}; old samples served {}; \
         dropped too_old {too_old_dropped}; out of bounds (mixed target) {out_of_bounds}, all targets {out_of_bounds_all}",
        OLD_SERIES * mixed_served
    );
    assert!(served.iter().all(|&n| n >= 4), "every target scraped: {served:?}");
    assert!(mixed_served >= 4);
    assert!(
        wrong.is_empty(),
        "fresh samples lost or changed:\n{}",
        wrong.join("\n")
    );
    assert_eq!(delivered, expected);

    // The old samples: counted exactly, once per target and among the drops.
    let old = (OLD_SERIES * mixed_served) as f64;
    assert_eq!(out_of_bounds, old, "{metrics}");
    assert_eq!(out_of_bounds_all, old, "only the mixed target refused samples");
    assert_eq!(too_old_dropped, old, "too_old counts exactly the old samples");
    // Never sent: the receiver refused nothing (it would answer 400 "out of
    // bounds" to a 2019 sample).
    assert_eq!(
        metric_sum(&metrics, "prometheus_remote_storage_samples_failed_total", &[]),
        0.0
    );
    let warnings = log_text
        .lines()
        .filter(|l| l.contains("older than queue.max_sample_age"))
        .collect::<Vec<_>>();
    assert_eq!(warnings.len(), 1, "logged once for the target: {warnings:#?}");
    assert!(warnings[0].contains(&mixed_addr), "{}", warnings[0]);
}
