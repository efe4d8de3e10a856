//! The hand-rolled WriteRequest encoder and snappy compressor, checked
//! against independent implementations: prost decodes the protobuf, the
//! `snap` crate decompresses the snappy.

use outpost_core::labels::LabelSet;
use outpost_core::remote_write::{BatchBuilder, PushError, HEADERS, STALE_NAN_BITS};
use outpost_core::snappy::{self, Compressor};
use proptest::prelude::*;

use outpost_test_support::wire;

fn decode(compressed: &[u8]) -> wire::WriteRequest {
    wire::decode_snappy(compressed).unwrap_or_else(|e| panic!("prost reads the body: {e}"))
}

fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    let mut l = LabelSet::with_capacity(16, 1024);
    for (n, v) in pairs {
        l.push(n, v).unwrap();
    }
    l
}

/// Labels, value, timestamp.
type Case = (Vec<(&'static str, &'static str)>, f64, i64);

#[test]
fn samples_decode_with_prost_bit_for_bit() {
    let cases: Vec<Case> = vec![
        (
            vec![("__name__", "up"), ("instance", "a:9100"), ("job", "node")],
            1.0,
            1_700_000_000_123,
        ),
        (
            vec![("__name__", "node_load1")],
            f64::from_bits(STALE_NAN_BITS),
            1_700_000_000_000,
        ),
        (vec![("__name__", "x"), ("empty", "")], -0.0, -1),
        (
            vec![("__name__", "x"), ("k", "ünïcødé ✓ 東京")],
            f64::NAN,
            i64::MIN,
        ),
        (vec![("__name__", "x")], f64::INFINITY, i64::MAX),
        (
            vec![("__name__", "x"), ("z", "1")],
            f64::from_bits(0x7ff8_dead_beef_0001),
            0,
        ),
        (vec![("__name__", "x")], f64::MIN_POSITIVE / 3.0, 42),
        (vec![("__name__", "x")], f64::NEG_INFINITY, -1_000_000_000_000_000),
    ];
    let mut b = BatchBuilder::with_bounds(100, 64 * 1024);
    for (pairs, v, ts) in &cases {
        b.push(&labels(pairs), *v, *ts).unwrap();
    }
    assert_eq!(b.oldest_timestamp_ms(), Some(i64::MIN));
    assert_eq!(b.newest_timestamp_ms(), Some(i64::MAX));
    let mut out = Vec::with_capacity(b.max_compressed_len());
    let n = b.finish_into(&mut out);
    assert_eq!(n, out.len());
    assert_eq!(b.samples(), 0, "finish clears the builder");
    let req = decode(&out);
    assert_eq!(req.timeseries.len(), cases.len());
    for (ts, (pairs, v, t)) in req.timeseries.iter().zip(&cases) {
        let got: Vec<(&str, &str)> = ts
            .labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(&got, pairs);
        assert_eq!(ts.samples.len(), 1);
        assert_eq!(
            ts.samples[0].value.to_bits(),
            v.to_bits(),
            "value bits of {pairs:?}"
        );
        assert_eq!(ts.samples[0].timestamp, *t);
    }
}

#[test]
fn batch_closes_at_sample_and_byte_bounds() {
    let l = labels(&[
        ("__name__", "kube_pod_info"),
        ("namespace", "monitoring"),
        ("pod", "p-0"),
    ]);
    let mut b = BatchBuilder::with_bounds(3, 4096);
    for i in 0..3 {
        b.push(&l, i as f64, 1000 + i).unwrap();
    }
    assert_eq!(b.push(&l, 9.0, 2000), Err(PushError::BatchFull));
    assert_eq!(b.samples(), 3);

    let mut b = BatchBuilder::with_bounds(1000, 1024);
    let mut pushed = 0;
    while b.push(&l, 1.0, 1_700_000_000_000).is_ok() {
        pushed += 1;
    }
    assert!(b.encoded_len() <= 1024);
    let one = b.encoded_len() / pushed;
    assert!(
        b.encoded_len() + one > 1024,
        "closed before the byte bound was reached"
    );
    let buf_cap_before = b.encoded().as_ptr();
    assert_eq!(b.push(&l, 1.0, 0), Err(PushError::BatchFull));
    assert_eq!(b.encoded().as_ptr(), buf_cap_before);

    let mut tiny = BatchBuilder::with_bounds(10, 16);
    assert!(matches!(
        tiny.push(&l, 1.0, 0),
        Err(PushError::SeriesTooLarge { limit: 16, .. })
    ));
}

#[test]
fn headers_are_the_spec_ones() {
    assert_eq!(
        HEADERS,
        [
            ("Content-Encoding", "snappy"),
            ("Content-Type", "application/x-protobuf"),
            ("X-Prometheus-Remote-Write-Version", "0.1.0"),
        ]
    );
}

/// A kube-state-metrics-shaped WriteRequest: many series sharing long
/// label names and values.
fn ksm_body(series: usize) -> Vec<u8> {
    let mut b = BatchBuilder::with_bounds(series as u32, 64 * 1024 * 1024);
    let mut l = LabelSet::with_capacity(16, 1024);
    let metrics = [
        "kube_pod_info",
        "kube_pod_status_phase",
        "kube_pod_container_status_restarts_total",
    ];
    for i in 0..series {
        l.clear();
        l.push("__name__", metrics[i % 3]).unwrap();
        l.push("cluster", "cluster-03").unwrap();
        l.push("container", &format!("app-{}", i % 7)).unwrap();
        l.push("instance", "kube-state-metrics.monitoring.svc:8080")
            .unwrap();
        l.push("job", "kube-state-metrics").unwrap();
        l.push("namespace", &format!("team-{}", i % 13)).unwrap();
        l.push("pod", &format!("deploy-{}-7f9c{:05x}", i % 97, i))
            .unwrap();
        l.push(
            "uid",
            &format!(
                "{:08x}-0c1d-4e2f-9a8b-{:012x}",
                (i as u64 * 2654435761) % (1 << 32),
                i
            ),
        )
        .unwrap();
        b.push(&l, (i % 5) as f64, 1_700_000_000_000 + (i as i64 % 30) * 1000)
            .unwrap();
    }
    b.encoded().to_vec()
}

#[test]
fn compression_ratio_close_to_snap_on_ksm_body() {
    let body = ksm_body(10_000);
    let mut ours = Vec::new();
    let n = Compressor::new().compress(&body, &mut ours);
    let theirs = snap::raw::Encoder::new().compress_vec(&body).unwrap();
    let back = snap::raw::Decoder::new().decompress_vec(&ours[..n]).unwrap();
    assert_eq!(back, body);
    println!(
        "KSM-like body {} bytes: ours {} ({:.2}x), snap {} ({:.2}x)",
        body.len(),
        n,
        body.len() as f64 / n as f64,
        theirs.len(),
        body.len() as f64 / theirs.len() as f64
    );
    // Same algorithm family: within 15% of the reference encoder's size.
    assert!(
        (n as f64) < theirs.len() as f64 * 1.15,
        "ours {n}, snap {}",
        theirs.len()
    );
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(256) })]

    #[test]
    fn snappy_round_trips_through_snap(
        data in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..5000),
            proptest::collection::vec(0u8..4, 0..70_000),
            (proptest::collection::vec(any::<u8>(), 1..40), 1usize..3000)
                .prop_map(|(chunk, reps)| chunk.repeat(reps)),
        ]
    ) {
        let mut out = Vec::new();
        let n = Compressor::new().compress(&data, &mut out);
        let back = snap::raw::Decoder::new().decompress_vec(&out[..n]).unwrap();
        prop_assert_eq!(&back, &data);
        let mut ours = vec![0u8; data.len()];
        prop_assert_eq!(snappy::decompress(&out[..n], &mut ours), Ok(data.len()));
        prop_assert_eq!(&ours, &data);
        // And our decoder reads what snap writes.
        let theirs = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        prop_assert_eq!(snappy::decompress(&theirs, &mut ours), Ok(data.len()));
        prop_assert_eq!(&ours, &data);
    }

    #[test]
    fn snappy_decompress_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut out = vec![0u8; 4096];
        let _ = snappy::decompress(&data, &mut out);
    }

    #[test]
    fn random_series_decode_with_prost(
        series in proptest::collection::vec(
            (
                proptest::collection::btree_map("[a-z_][a-z0-9_]{0,12}", "\\PC{0,20}", 0..6),
                any::<u64>(),
                any::<i64>(),
            ),
            1..40,
        )
    ) {
        let mut b = BatchBuilder::with_bounds(1000, 256 * 1024);
        let mut expected = Vec::new();
        for (map, bits, ts) in &series {
            let mut l = LabelSet::with_capacity(16, 1024);
            let mut pairs: Vec<(String, String)> = map.iter()
                .filter(|(k, _)| k.as_str() != "__name__")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            pairs.push(("__name__".into(), "m".into()));
            pairs.sort();
            for (k, v) in &pairs {
                l.push(k, v).unwrap();
            }
            b.push(&l, f64::from_bits(*bits), *ts).unwrap();
            expected.push((pairs, *bits, *ts));
        }
        let mut out = Vec::with_capacity(b.max_compressed_len());
        b.finish_into(&mut out);
        let req = decode(&out);
        prop_assert_eq!(req.timeseries.len(), expected.len());
        for (got, (pairs, bits, ts)) in req.timeseries.iter().zip(&expected) {
            let got_pairs: Vec<(String, String)> =
                got.labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect();
            prop_assert_eq!(&got_pairs, pairs);
            prop_assert_eq!(got.samples[0].value.to_bits(), *bits);
            prop_assert_eq!(got.samples[0].timestamp, *ts);
        }
    }
}
