//! Joining WAL records into one request: independently compressed snappy
//! streams behind one new preamble are one valid stream of the
//! concatenated data, and concatenated `WriteRequest`s are one
//! `WriteRequest`. Checked with independent decoders (`snap`, `prost`),
//! with streams from our compressor and from `snap`'s own encoder; and the
//! per-sample age filter, against a `WriteRequest` built by `prost`.

use outpost_core::labels::LabelSet;
use outpost_core::queue::RecordMeta;
use outpost_core::remote_write::{self, BatchBuilder, Retained};
use outpost_core::request::{RecordError, RequestBuilder};
use outpost_core::snappy::{self, Compressor, Joiner};
use proptest::prelude::*;

use outpost_test_support::wire;

/// Joins `streams` with our `Joiner` and returns the joined stream.
fn join(streams: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![0xEE; 3]; // whatever the buffer held before stays before the stream
    let mut j = Joiner::begin(&mut out);
    for s in streams {
        j.push_stream(s, &mut out).unwrap();
    }
    let at = j.finish(&mut out);
    assert!(at >= 3);
    out.split_off(at)
}

fn ours(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Compressor::new().compress(data, &mut out);
    out
}

fn theirs(data: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(data).unwrap()
}

/// Data with repeats, so the streams are full of copy elements.
fn data() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        (proptest::collection::vec(any::<u8>(), 1..40), 1usize..3000).prop_map(|(unit, n)| unit
            .iter()
            .copied()
            .cycle()
            .take(n)
            .collect()),
        (1usize..200_000).prop_map(|n| (0..n).map(|i| (i % 251) as u8 ^ (i / 1000) as u8).collect()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(64) })]

    #[test]
    fn joined_streams_decode_as_the_concatenation(
        pieces in proptest::collection::vec((data(), any::<bool>()), 1..6),
    ) {
        let streams: Vec<Vec<u8>> = pieces.iter().map(|(d, snap_made)| if *snap_made { theirs(d) } else { ours(d) }).collect();
        let joined = join(&streams);
        let whole: Vec<u8> = pieces.iter().flat_map(|(d, _)| d.iter().copied()).collect();
        // snap's decoder, which knows nothing of how the stream was made.
        let decoded = snap::raw::Decoder::new().decompress_vec(&joined).unwrap();
        prop_assert_eq!(&decoded, &whole);
        // Ours agrees, and the preamble is the shortest varint.
        let mut back = vec![0u8; whole.len()];
        prop_assert_eq!(snappy::decompress(&joined, &mut back), Ok(whole.len()));
        let (len, preamble) = snappy::decompressed_len(&joined).unwrap();
        prop_assert_eq!(len, whole.len());
        prop_assert_eq!(preamble, snappy::decompressed_len(&theirs(&whole)).unwrap().1, "shortest varint");
        // No bytes but the elements: the joined size is the streams' minus
        // their preambles plus one.
        let elements: usize = streams.iter().map(|s| s.len() - snappy::decompressed_len(s).unwrap().1).sum();
        prop_assert_eq!(joined.len(), preamble + elements);
    }
}

fn series(pairs: &[(&str, &str)]) -> LabelSet {
    let mut l = LabelSet::with_capacity(8, 512);
    for (n, v) in pairs {
        l.push(n, v).unwrap();
    }
    l
}

/// One compressed record of `samples` (name, value, timestamp) the way the
/// pipeline closes it.
fn record(seq: u64, samples: &[(&str, f64, i64)]) -> (RecordMeta, Vec<u8>) {
    let mut b = BatchBuilder::with_bounds(1000, 64 * 1024);
    for (name, v, ts) in samples {
        b.push(&series(&[("__name__", name), ("job", "j")]), *v, *ts)
            .unwrap();
    }
    let raw = b.encoded_len();
    let meta = RecordMeta {
        seq,
        shard: 0,
        samples: b.samples(),
        oldest_timestamp_ms: b.oldest_timestamp_ms().unwrap(),
        newest_timestamp_ms: b.newest_timestamp_ms().unwrap(),
        bytes: 0,
        raw_bytes: raw as u32,
    };
    let mut out = Vec::new();
    let n = b.finish_into(&mut out);
    (
        RecordMeta {
            bytes: n as u32,
            ..meta
        },
        out,
    )
}

fn body(records: &[(RecordMeta, Vec<u8>)], cutoff: Option<i64>) -> (Vec<u8>, Vec<u32>) {
    let mut rb = RequestBuilder::new(64 * 1024);
    let mut out = Vec::with_capacity(RequestBuilder::body_capacity(64 * 1024));
    rb.begin(&mut out);
    let dropped = records
        .iter()
        .map(|(m, p)| rb.push(m, p, cutoff, &mut out).unwrap())
        .collect();
    let at = rb.finish(&mut out);
    (out.split_off(at), dropped)
}

#[test]
fn a_joined_request_is_the_records_series_in_order() {
    let a = record(0, &[("up", 1.0, 1_000), ("cpu", 0.5, 1_000)]);
    let b = record(1, &[("up", 1.0, 2_000)]);
    let c = record(
        2,
        &[("mem", 7.0, 3_000), ("cpu", 0.25, 3_000), ("up", 0.0, 3_000)],
    );
    let (bytes, dropped) = body(&[a, b, c], None);
    assert_eq!(dropped, [0, 0, 0]);
    let req = wire::decode_snappy(&bytes).unwrap();
    let got: Vec<(String, f64, i64)> = req
        .timeseries
        .iter()
        .map(|t| {
            (
                t.labels[0].value.clone(),
                t.samples[0].value,
                t.samples[0].timestamp,
            )
        })
        .collect();
    let want: Vec<(String, f64, i64)> = [
        ("up", 1.0, 1_000),
        ("cpu", 0.5, 1_000),
        ("up", 1.0, 2_000),
        ("mem", 7.0, 3_000),
        ("cpu", 0.25, 3_000),
        ("up", 0.0, 3_000),
    ]
    .iter()
    .map(|(n, v, t)| (n.to_string(), *v, *t))
    .collect();
    assert_eq!(got, want);
}

#[test]
fn a_straddling_record_loses_exactly_its_old_samples() {
    // A target exposing explicit timestamps years old next to fresh ones.
    let old = 1_000_000_000_000i64;
    let fresh = 1_700_000_000_000i64;
    let cutoff = fresh - 3_600_000;
    let straddling = record(
        7,
        &[
            ("a", 1.0, fresh),
            ("stale_ts", 2.0, old),
            ("b", 3.0, fresh + 5),
            ("stale_ts", 4.0, old + 1),
            ("c", 5.0, cutoff),
            ("d", 6.0, cutoff - 1),
        ],
    );
    let fresh_record = record(8, &[("e", 7.0, fresh)]);
    let (bytes, dropped) = body(&[straddling, fresh_record], Some(cutoff));
    assert_eq!(dropped, [3, 0]);
    let req = wire::decode_snappy(&bytes).unwrap();
    let got: Vec<(String, f64, i64)> = req
        .timeseries
        .iter()
        .map(|t| {
            (
                t.labels[0].value.clone(),
                t.samples[0].value,
                t.samples[0].timestamp,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("a".to_string(), 1.0, fresh),
            ("b".to_string(), 3.0, fresh + 5),
            ("c".to_string(), 5.0, cutoff),
            ("e".to_string(), 7.0, fresh),
        ]
    );
    assert!(req.timeseries.iter().all(|t| t.labels[1].value == "j"));
}

#[test]
fn records_that_do_not_decode_are_refused_whole() {
    let (meta, payload) = record(1, &[("a", 1.0, 10), ("b", 1.0, 20)]);
    let mut rb = RequestBuilder::new(64 * 1024);
    let mut out = Vec::new();
    rb.begin(&mut out);
    let before = out.len();
    // A header that counts another number of samples than the payload holds.
    let lying = RecordMeta { samples: 3, ..meta };
    assert_eq!(
        rb.push(&lying, &payload, Some(15), &mut out),
        Err(RecordError::SampleCount {
            header: 3,
            payload: 2
        })
    );
    assert_eq!(out.len(), before);
    // Cut short.
    assert!(matches!(
        rb.push(&meta, &payload[..payload.len() - 3], Some(15), &mut out),
        Err(RecordError::Snappy(_))
    ));
    // Larger than the scratch buffer.
    let mut small = RequestBuilder::new(16);
    small.begin(&mut out);
    assert!(matches!(
        small.push(&meta, &payload, Some(15), &mut out),
        Err(RecordError::TooLarge { limit: 16, .. })
    ));
}

/// A `WriteRequest` as any encoder may write it: several samples per
/// series, a series without samples, fields in any order.
fn prost_request(series: &[(Vec<i64>, bool)]) -> Vec<u8> {
    use prost::Message;
    let req = wire::WriteRequest {
        timeseries: series
            .iter()
            .enumerate()
            .map(|(i, (times, _))| wire::TimeSeries {
                labels: vec![wire::Label {
                    name: "__name__".into(),
                    value: format!("s{i}"),
                }],
                samples: times
                    .iter()
                    .map(|&t| wire::Sample {
                        value: t as f64 / 2.0,
                        timestamp: t,
                    })
                    .collect(),
            })
            .collect(),
    };
    req.encode_to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(256) })]

    /// Whatever the layout, exactly the samples before the cutoff go, the
    /// rest stays in order, and series with none left go too.
    #[test]
    fn the_filter_keeps_exactly_the_samples_since_the_cutoff(
        series in proptest::collection::vec((proptest::collection::vec(-5i64..20, 0..5), any::<bool>()), 0..12),
        cutoff in -6i64..21,
    ) {
        let mut buf = prost_request(&series);
        let retained = remote_write::retain_samples_since(&mut buf, cutoff).unwrap();
        let got = <wire::WriteRequest as prost::Message>::decode(buf.as_slice()).unwrap();
        let mut want = Vec::new();
        let mut counts = Retained::default();
        for (i, (times, _)) in series.iter().enumerate() {
            let kept: Vec<i64> = times.iter().copied().filter(|&t| t >= cutoff).collect();
            counts.kept += kept.len() as u32;
            counts.dropped += (times.len() - kept.len()) as u32;
            // A series that had no samples to begin with is left as it was.
            if !kept.is_empty() || times.is_empty() {
                want.push((format!("s{i}"), kept));
            }
        }
        prop_assert_eq!(retained, counts);
        let got: Vec<(String, Vec<i64>)> = got
            .timeseries
            .iter()
            .map(|t| (t.labels[0].value.clone(), t.samples.iter().map(|s| s.timestamp).collect()))
            .collect();
        prop_assert_eq!(got, want);
    }

    /// No input makes the filter panic or read past the buffer.
    #[test]
    fn the_filter_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), cutoff in any::<i64>()) {
        let mut buf = bytes;
        let _ = remote_write::retain_samples_since(&mut buf, cutoff);
    }
}
