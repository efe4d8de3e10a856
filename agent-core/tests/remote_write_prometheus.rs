//! Against the real peer: Debian's Prometheus 2.42 with its remote-write
//! receiver. Batches built by `BatchBuilder` are POSTed with `HEADERS`, read
//! back through PromQL, and a refused (out-of-bounds) batch is classified by
//! the sender as a drop that does not block the next one. Bodies joined from
//! separately compressed records (one of them filtered for age) are taken
//! as one request.

use outpost_core::labels::LabelSet;
use outpost_core::plan::Queue;
use outpost_core::queue::{DropReason, Outcome, RecordMeta, Sender};
use outpost_core::remote_write::{BatchBuilder, HEADERS, STALE_NAN_BITS};
use outpost_core::request::RequestBuilder;
use outpost_test_support::{http_request, Prometheus};
use std::time::{SystemTime, UNIX_EPOCH};

/// An instant query evaluated at `at_ms`; the raw JSON answer.
fn query(prometheus: &Prometheus, promql: &str, at_ms: u64) -> String {
    prometheus.query_at(promql, Some(at_ms as f64 / 1000.0))
}

fn series(pairs: &[(&str, &str)]) -> LabelSet {
    let mut l = LabelSet::with_capacity(8, 256);
    for (n, v) in pairs {
        l.push(n, v).unwrap();
    }
    l
}

fn post(port: u16, body: &[u8]) -> u16 {
    let (status, _) = http_request(port, "POST", "/api/v1/write", &HEADERS, body).unwrap();
    status
}

#[test]
fn prometheus_receives_what_we_encode_and_refuses_out_of_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = Prometheus::start(dir.path()) else {
        return;
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let mut b = BatchBuilder::with_bounds(1000, 1 << 20);
    let mut out = Vec::with_capacity(b.max_compressed_len());

    // 100 series of one metric, plus a value whose bits must survive.
    for i in 0..100 {
        let l = series(&[
            ("__name__", "outpost_rw_test"),
            ("i", &format!("{i:03}")),
            ("job", "rw"),
            ("zone", "東京"),
        ]);
        b.push(&l, i as f64 + 0.5, now as i64 - 1000).unwrap();
    }
    let n = b.finish_into(&mut out);
    assert!(n > 0);
    assert_eq!(post(server.port, &out), 204);

    let body = query(&server, "count(outpost_rw_test{job=\"rw\",zone=\"東京\"})", now);
    assert!(body.contains("\"100\""), "{body}");
    let body = query(&server, "sum(outpost_rw_test)", now);
    println!("prometheus answered: {body}");
    // 0.5 + 1.5 + ... + 99.5 = 5000
    assert!(body.contains("\"5000\""), "{body}");
    let body = query(&server, "outpost_rw_test{i=\"042\"}", now);
    assert!(body.contains("\"42.5\""), "{body}");

    // A staleness marker ends the series: an instant query after it finds nothing.
    let l = series(&[
        ("__name__", "outpost_rw_test"),
        ("i", "042"),
        ("job", "rw"),
        ("zone", "東京"),
    ]);
    b.push(&l, f64::from_bits(STALE_NAN_BITS), now as i64 - 500)
        .unwrap();
    b.finish_into(&mut out);
    assert_eq!(post(server.port, &out), 204);
    let body = query(&server, "count(outpost_rw_test)", now);
    assert!(body.contains("\"99\""), "stale marker not honoured: {body}");

    // Samples far older than the head are refused with a 4xx; the sender
    // drops that request and sends the next one at once.
    let q = Queue {
        capacity: 100,
        min_shards: 1,
        max_shards: 1,
        max_samples_per_send: 1,
        batch_send_deadline_ms: 5000,
        min_backoff_ms: 30,
        max_backoff_ms: 5000,
        max_batch_bytes: 1 << 20,
        max_sample_age_ms: 0,
    };
    let mut sender = Sender::new(&q);
    let old = series(&[("__name__", "outpost_rw_old"), ("job", "rw")]);
    let fresh = series(&[("__name__", "outpost_rw_fresh"), ("job", "rw")]);
    let mut bodies = Vec::new();
    for (seq, (l, ts)) in [
        (&old, now as i64 - 30 * 24 * 3_600_000),
        (&fresh, now as i64 - 200),
    ]
    .into_iter()
    .enumerate()
    {
        b.push(l, 1.0, ts).unwrap();
        let raw_bytes = b.encoded_len() as u32;
        let n = b.finish_into(&mut out);
        bodies.push(out.clone());
        let meta = RecordMeta {
            seq: seq as u64,
            shard: 0,
            samples: 1,
            oldest_timestamp_ms: ts,
            newest_timestamp_ms: ts,
            bytes: n as u32,
            raw_bytes,
        };
        sender.handle_enqueued(meta, now).unwrap();
    }
    let mut records = Vec::new();
    let first = sender.poll_transmit(now, now as i64, &mut records).unwrap();
    assert!(sender.handle_built(first.id, bodies[0].len() as u64, now));
    let status = post(server.port, &bodies[first.id as usize]);
    assert!((400..500).contains(&status), "old sample got {status}");
    assert_eq!(
        sender.handle_response(first.id, status, None, now),
        Outcome::Dropped {
            run: 0,
            reason: DropReason::Http4xx
        }
    );
    let second = sender
        .poll_transmit(now, now as i64, &mut records)
        .expect("the next request is not blocked");
    assert!(sender.handle_built(second.id, bodies[1].len() as u64, now));
    let status = post(server.port, &bodies[second.id as usize]);
    assert_eq!(
        sender.handle_response(second.id, status, None, now),
        Outcome::Acked { run: 1 }
    );
    let body = query(&server, "outpost_rw_fresh", now);
    assert!(body.contains("\"1\""), "{body}");
    assert_eq!(sender.ack_floor(), Some(2));
}

/// Records are compressed one by one when they are written and joined at
/// send time behind one preamble; Prometheus must take the joined body as
/// the one request it is, every sample with its labels and value, and a
/// record filtered for age loses only its old samples.
#[test]
fn prometheus_takes_a_body_joined_from_separately_compressed_records() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = Prometheus::start(dir.path()) else {
        return;
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let mut b = BatchBuilder::with_bounds(10_000, 1 << 20);
    let mut records = Vec::new();
    // Three scrapes' records of 1, 300 and 2,000 series (the last one
    // crosses snappy's 64 KiB blocks); the middle one also carries samples
    // a day old, as a target with explicit timestamps would.
    for (scrape, count) in [(0usize, 1usize), (1, 300), (2, 2_000)] {
        for i in 0..count {
            let l = series(&[
                ("__name__", "outpost_rw_joined"),
                ("i", &format!("{i:05}")),
                ("scrape", &scrape.to_string()),
            ]);
            b.push(&l, (scrape * 100_000 + i) as f64, now - 1000).unwrap();
            if scrape == 1 && i % 3 == 0 {
                let o = series(&[("__name__", "outpost_rw_aged"), ("i", &format!("{i:05}"))]);
                b.push(&o, 1.0, now - 86_400_000).unwrap();
            }
        }
        let meta = RecordMeta {
            seq: scrape as u64,
            shard: 0,
            samples: b.samples(),
            oldest_timestamp_ms: b.oldest_timestamp_ms().unwrap(),
            newest_timestamp_ms: b.newest_timestamp_ms().unwrap(),
            bytes: 0,
            raw_bytes: b.encoded_len() as u32,
        };
        let mut payload = Vec::new();
        b.finish_into(&mut payload);
        records.push((meta, payload));
    }
    let mut request = RequestBuilder::new(1 << 20);
    let mut body = Vec::new();
    request.begin(&mut body);
    let cutoff = Some(now - 3_600_000);
    let left_out: Vec<u32> = records
        .iter()
        .map(|(meta, payload)| request.push(meta, payload, cutoff, &mut body).unwrap())
        .collect();
    assert_eq!(left_out, [0, 100, 0]);
    let at = request.finish(&mut body);
    assert_eq!(post(server.port, &body[at..]), 204);
    let at_ms = now as u64;
    let count = query(&server, "count(outpost_rw_joined)", at_ms);
    assert!(count.contains("\"2301\""), "{count}");
    let by_scrape = query(&server, "count by (scrape) (outpost_rw_joined)", at_ms);
    for (scrape, n) in [("0", "1"), ("1", "300"), ("2", "2000")] {
        let key = format!("{{\"scrape\":\"{scrape}\"}},\"value\":[");
        let value = by_scrape
            .split_once(&key)
            .and_then(|(_, rest)| rest.split_once(']'))
            .map(|(v, _)| v);
        assert!(
            value.is_some_and(|v| v.ends_with(&format!(",\"{n}\""))),
            "scrape {scrape} should have {n} series: {by_scrape}"
        );
    }
    let value = query(&server, "outpost_rw_joined{scrape=\"2\",i=\"01999\"}", at_ms);
    assert!(value.contains("\"201999\""), "{value}");
    let aged = query(&server, "count(outpost_rw_aged)", at_ms);
    assert!(
        aged.contains("\"result\":[]"),
        "the day-old samples were left out: {aged}"
    );
}
