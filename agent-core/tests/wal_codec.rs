//! WAL record codec: round trips, torn and corrupt tails found at the right
//! offset, and no panic on any input.

use outpost_core::queue::RecordMeta;
use outpost_core::snappy::Compressor;
use outpost_core::wal_record::{
    encode_ack_floor, encode_header, encode_record, raw_len, record_len, RecordKind, RecordReader, WalError,
    HEADER_LEN,
};
use proptest::prelude::*;

const MAX_PAYLOAD: usize = 4096;

fn meta(seq: u64, bytes: u32) -> RecordMeta {
    RecordMeta {
        seq,
        shard: (seq % 7) as u16,
        samples: 1000 + seq as u32,
        oldest_timestamp_ms: -5 + seq as i64,
        newest_timestamp_ms: 1_700_000_000_000 + seq as i64,
        bytes,
        raw_bytes: 0,
    }
}

fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u64 * 31 + seq) as u8).collect()
}

fn segment(n: u64) -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::new();
    let mut starts = Vec::new();
    for seq in 0..n {
        starts.push(out.len());
        let p = payload(seq, (seq as usize * 37) % 500);
        encode_record(&meta(seq, 0), &p, &mut out);
    }
    (out, starts)
}

#[test]
fn records_round_trip_with_offsets() {
    let (seg, starts) = segment(20);
    let mut reader = RecordReader::new(&seg, MAX_PAYLOAD);
    for seq in 0..20u64 {
        let r = reader.next().unwrap().unwrap();
        let p = payload(seq, (seq as usize * 37) % 500);
        assert_eq!(r.kind, RecordKind::Batch);
        let want = RecordMeta {
            raw_bytes: raw_len(&p),
            ..meta(seq, p.len() as u32)
        };
        assert_eq!(r.meta, want);
        assert_eq!(r.payload, &p[..]);
        assert_eq!(r.offset, starts[seq as usize]);
    }
    assert!(reader.next().is_none());
    assert_eq!(reader.offset(), seg.len());
}

#[test]
fn the_uncompressed_length_comes_from_the_payloads_preamble() {
    let request = [42u8; 70_000];
    let mut payload = Vec::new();
    Compressor::new().compress(&request, &mut payload);
    let mut seg = Vec::new();
    encode_record(&meta(9, 0), &payload, &mut seg);
    let r = RecordReader::new(&seg, 1 << 20).next().unwrap().unwrap();
    assert_eq!((r.meta.bytes, r.meta.raw_bytes), (payload.len() as u32, 70_000));
    // A payload that is not a snappy stream has no known length.
    assert_eq!(raw_len(&[0xff; 8]), 0);
    assert_eq!(raw_len(&[]), 0);
}

#[test]
fn header_plus_payload_equals_record() {
    let p = payload(3, 100);
    let mut whole = Vec::new();
    encode_record(&meta(3, 0), &p, &mut whole);
    let h = encode_header(RecordKind::Batch, &meta(3, 0), &p);
    assert_eq!(&whole[..HEADER_LEN], &h);
    assert_eq!(whole.len(), record_len(100));
}

#[test]
fn ack_floor_records_read_back() {
    let mut seg = Vec::new();
    encode_record(&meta(1, 0), b"abc", &mut seg);
    encode_ack_floor(2, &mut seg);
    let kinds: Vec<(RecordKind, u64)> = RecordReader::new(&seg, MAX_PAYLOAD)
        .map(|r| r.map(|r| (r.kind, r.meta.seq)).unwrap())
        .collect();
    assert_eq!(kinds, vec![(RecordKind::Batch, 1), (RecordKind::AckFloor, 2)]);
}

#[test]
fn every_truncation_is_torn_at_the_last_record_start() {
    let (seg, starts) = segment(5);
    for cut in 0..seg.len() {
        let mut reader = RecordReader::new(&seg[..cut], MAX_PAYLOAD);
        let good = reader.by_ref().take_while(|r| r.is_ok()).count();
        let last_start = *starts.iter().rev().find(|&&s| s <= cut).unwrap();
        if starts.contains(&cut) {
            assert_eq!(reader.offset(), cut, "cut {cut} on a boundary");
            assert_eq!(good, starts.iter().position(|&s| s == cut).unwrap());
        } else {
            assert_eq!(reader.offset(), last_start, "cut {cut}");
            let mut again = RecordReader::new(&seg[..cut], MAX_PAYLOAD);
            let err = again.find_map(|r| r.err()).unwrap();
            assert_eq!(err, WalError::Torn { offset: last_start }, "cut {cut}");
        }
    }
}

#[test]
fn every_bit_flip_is_caught_at_its_record() {
    let (seg, starts) = segment(4);
    for byte in 0..seg.len() {
        for bit in 0..8 {
            let mut bad = seg.clone();
            bad[byte] ^= 1 << bit;
            let record = starts.iter().rposition(|&s| s <= byte).unwrap();
            let results: Vec<_> = RecordReader::new(&bad, MAX_PAYLOAD).collect();
            // Records before the damaged one are intact.
            for (i, r) in results.iter().enumerate().take(record) {
                assert_eq!(r.as_ref().unwrap().meta.seq, i as u64);
            }
            let err = results[record].unwrap_err();
            assert_eq!(err.offset(), starts[record], "byte {byte} bit {bit}: {err}");
            assert_eq!(results.len(), record + 1, "reader stops at the first error");
        }
    }
}

#[test]
fn oversized_length_is_corrupt_not_torn() {
    let mut seg = Vec::new();
    encode_record(&meta(0, 0), &[7u8; 100], &mut seg);
    let mut reader = RecordReader::new(&seg, 99);
    assert_eq!(
        reader.next(),
        Some(Err(WalError::Corrupt {
            offset: 0,
            reason: "payload length over the batch limit"
        }))
    );
    assert_eq!(reader.next(), None);
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(2000) })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut reader = RecordReader::new(&data, MAX_PAYLOAD);
        let mut n = 0;
        for r in reader.by_ref() {
            n += 1;
            prop_assert!(n < 100);
            if let Err(e) = r {
                prop_assert!(e.offset() <= data.len());
            }
        }
        prop_assert!(reader.offset() <= data.len());
    }

    #[test]
    fn damaged_segments_never_panic_and_keep_the_good_prefix(
        records in 1u64..8,
        cut in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..8), 0..4),
    ) {
        let (mut seg, starts) = segment(records);
        let cut = cut.index(seg.len() + 1);
        for (at, bit) in &flips {
            let i = at.index(seg.len());
            seg[i] ^= 1 << bit;
        }
        seg.truncate(cut);
        let mut reader = RecordReader::new(&seg, MAX_PAYLOAD);
        let mut seqs = Vec::new();
        for r in reader.by_ref() {
            match r {
                Ok(r) => seqs.push(r.meta.seq),
                Err(e) => prop_assert!(starts.contains(&e.offset())),
            }
        }
        // Whatever decodes is a prefix of what was written, in order.
        prop_assert_eq!(seqs.clone(), (0..seqs.len() as u64).collect::<Vec<_>>());
        prop_assert!(starts.contains(&reader.offset()) || reader.offset() == seg.len());
    }
}
