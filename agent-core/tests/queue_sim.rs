//! The sender state machine under simulated time: outages of hours run in
//! milliseconds because time is only ever an argument.

use outpost_core::plan::Queue;
use outpost_core::queue::{BatchMeta, DropReason, Outcome, Sender};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

const HOUR_MS: u64 = 3_600_000;
const T0: u64 = 1_700_000_000_000;

fn queue() -> Queue {
    Queue {
        capacity: 2_000,
        min_shards: 1,
        max_shards: 4,
        max_samples_per_send: 1_000,
        batch_send_deadline_ms: 10_000,
        min_backoff_ms: 30,
        max_backoff_ms: 5_000,
        max_batch_bytes: 1 << 20,
        max_sample_age_ms: 0,
    }
}

fn batch(seq: u64, shard: u16, at_ms: u64) -> BatchMeta {
    BatchMeta {
        seq,
        shard,
        samples: 100,
        oldest_timestamp_ms: at_ms as i64,
        newest_timestamp_ms: at_ms as i64 + 500,
        bytes: 2_000,
    }
}

#[test]
fn one_in_flight_per_shard_in_seq_order() {
    let mut s = Sender::new(&queue());
    assert_eq!(s.ack_floor(), None);
    for (seq, shard) in [(10, 0), (11, 1), (12, 0), (13, 1), (14, 0)] {
        s.handle_enqueued(batch(seq, shard, T0)).unwrap();
    }
    assert_eq!(s.poll_transmit(T0).map(|b| b.seq), Some(10));
    assert_eq!(s.poll_transmit(T0).map(|b| b.seq), Some(11));
    assert_eq!(s.poll_transmit(T0), None, "both shards have a batch in flight");
    assert_eq!(s.ack_floor(), Some(10));
    assert_eq!(
        s.handle_response(11, 200, None, T0 + 5),
        Outcome::Acked { seq: 11 }
    );
    assert_eq!(s.ack_floor(), Some(10), "10 is still in flight");
    assert_eq!(s.poll_transmit(T0 + 5).map(|b| b.seq), Some(13));
    assert_eq!(
        s.handle_response(10, 204, None, T0 + 6),
        Outcome::Acked { seq: 10 }
    );
    assert_eq!(s.ack_floor(), Some(12));
    assert_eq!(
        s.handle_response(10, 200, None, T0 + 6),
        Outcome::Unknown { seq: 10 }
    );
    assert_eq!(s.poll_transmit(T0 + 6).map(|b| b.seq), Some(12));
    for seq in [12, 13] {
        s.handle_response(seq, 200, None, T0 + 7);
    }
    assert_eq!(s.poll_transmit(T0 + 7).map(|b| b.seq), Some(14));
    s.handle_response(14, 200, None, T0 + 8);
    assert_eq!(s.ack_floor(), Some(15));
    assert_eq!(s.counters.succeeded_samples_total, 500);
    assert_eq!(s.counters.sent_bytes_total, 10_000);
    assert_eq!(s.counters.highest_sent_timestamp_ms, T0 as i64 + 500);
}

#[test]
fn hour_long_outage_backs_off_exponentially_capped_at_max() {
    let mut s = Sender::new(&queue());
    s.handle_enqueued(batch(0, 0, T0)).unwrap();
    let mut now = T0;
    let mut delays = Vec::new();
    let mut b = s.poll_transmit(now).unwrap();
    while now < T0 + HOUR_MS {
        let at = match s.handle_response(b.seq, 503, None, now) {
            Outcome::Retry { at_ms, .. } => at_ms,
            other => panic!("503 must retry, got {other:?}"),
        };
        delays.push(at - now);
        assert_eq!(s.poll_transmit(now), None, "nothing is due during backoff");
        // Wake-ups for the shard-count timer may come first; the batch goes
        // exactly when its backoff ends.
        b = loop {
            now = s.poll_timeout().unwrap();
            assert!(now <= at);
            if let Some(b) = s.poll_transmit(now) {
                break b;
            }
        };
        assert_eq!(now, at);
    }
    assert_eq!(&delays[..9], &[30, 60, 120, 240, 480, 960, 1920, 3840, 5000]);
    assert!(delays[8..].iter().all(|&d| d == 5000));
    // 8 growing steps, then one try every 5 s for the rest of the hour.
    assert_eq!(delays.len(), 8 + ((HOUR_MS - 7650) as usize).div_ceil(5000));
    assert_eq!(s.counters.retried_samples_total, 100 * delays.len() as u64);
    assert_eq!(s.counters.failed_samples_total, 0);
    assert_eq!(
        s.handle_response(b.seq, 200, None, now),
        Outcome::Acked { seq: 0 }
    );
    assert_eq!(s.counters.samples_total, 100 * (delays.len() as u64 + 1));
    assert_eq!(s.ack_floor(), Some(1));
}

#[test]
fn retry_after_is_honoured_when_longer_than_backoff() {
    let mut s = Sender::new(&queue());
    s.handle_enqueued(batch(0, 0, T0)).unwrap();
    s.poll_transmit(T0).unwrap();
    assert_eq!(
        s.handle_response(0, 429, Some(60_000), T0),
        Outcome::Retry {
            seq: 0,
            at_ms: T0 + 60_000
        }
    );
    assert_eq!(s.poll_transmit(T0 + 59_999), None);
    assert_eq!(s.poll_transmit(T0 + 60_000).map(|b| b.seq), Some(0));
    // A shorter Retry-After than the backoff does not shorten it.
    assert_eq!(
        s.handle_response(0, 429, Some(1), T0 + 60_000),
        Outcome::Retry {
            seq: 0,
            at_ms: T0 + 60_060
        }
    );
    assert_eq!(s.poll_transmit(T0 + 60_060).map(|b| b.seq), Some(0));
    assert_eq!(
        s.handle_transport_error(0, T0 + 60_070),
        Outcome::Retry {
            seq: 0,
            at_ms: T0 + 60_190
        }
    );
}

#[test]
fn out_of_bounds_409_is_dropped_and_does_not_block_the_shard() {
    let mut s = Sender::new(&queue());
    for seq in 0..3 {
        s.handle_enqueued(batch(seq, 0, T0)).unwrap();
    }
    assert_eq!(s.poll_transmit(T0).map(|b| b.seq), Some(0));
    assert_eq!(
        s.handle_response(0, 409, None, T0),
        Outcome::Dropped {
            seq: 0,
            reason: DropReason::Http4xx
        }
    );
    assert_eq!(
        s.poll_transmit(T0).map(|b| b.seq),
        Some(1),
        "next batch goes at once"
    );
    assert_eq!(
        s.handle_response(1, 400, None, T0),
        Outcome::Dropped {
            seq: 1,
            reason: DropReason::Http4xx
        }
    );
    assert_eq!(s.poll_transmit(T0).map(|b| b.seq), Some(2));
    assert_eq!(s.handle_response(2, 200, None, T0), Outcome::Acked { seq: 2 });
    assert_eq!(s.counters.dropped_http_4xx, 200);
    assert_eq!(s.counters.failed_samples_total, 200);
    assert_eq!(s.counters.succeeded_samples_total, 100);
    assert_eq!(s.ack_floor(), Some(3));
}

/// Three hours of outage while a scrape produces a batch every 30 s. The
/// sender's window is small; the rest waits in a WAL stand-in. When the
/// receiver comes back, what is older than the age limit is dropped as
/// `too_old` and fresh data is delivered, instead of the backlog being
/// replayed into 409s.
#[test]
fn three_hour_outage_drops_too_old_and_delivers_fresh_data() {
    let mut q = queue();
    q.max_sample_age_ms = HOUR_MS;
    let mut s = Sender::with_window(&q, 16);
    let mut wal: VecDeque<BatchMeta> = VecDeque::new();
    let mut next_seq = 0u64;
    let mut next_scrape = T0;
    let outage_end = T0 + 3 * HOUR_MS;
    let end = outage_end + HOUR_MS;
    let mut now = T0;
    let mut acked = BTreeSet::new();
    let mut dropped = BTreeMap::new();
    let mut sent = BTreeSet::new();
    let mut fresh_acked_after_recovery = 0;
    while now <= end {
        if now >= next_scrape {
            wal.push_back(BatchMeta {
                shard: (next_seq % 2) as u16,
                ..batch(next_seq, 0, now)
            });
            next_seq += 1;
            next_scrape += 30_000;
        }
        while s.has_room() {
            let Some(b) = wal.pop_front() else { break };
            s.handle_enqueued(b).unwrap();
        }
        while let Some(b) = s.poll_transmit(now) {
            sent.insert(b.seq);
            let outcome = if now < outage_end {
                s.handle_response(b.seq, 503, None, now + 20)
            } else {
                s.handle_response(b.seq, 200, None, now + 20)
            };
            match outcome {
                Outcome::Acked { seq } => {
                    assert!(acked.insert(seq));
                    if now - (b.oldest_timestamp_ms as u64) < 60_000 {
                        fresh_acked_after_recovery += 1;
                    }
                }
                Outcome::Dropped { seq, reason } => {
                    assert!(dropped.insert(seq, reason).is_none());
                }
                Outcome::Retry { .. } => {}
                Outcome::Unknown { seq } => panic!("{seq} was in flight"),
            }
        }
        let wake = s.poll_timeout().unwrap_or(u64::MAX).min(next_scrape);
        now = wake.max(now + 1);
    }
    assert!(wal.len() <= 1, "backlog drained, {} left", wal.len());
    let total = next_seq - wal.len() as u64;
    // No status drop: the receiver only ever said 503 or 200.
    assert!(dropped.is_empty(), "{dropped:?}");
    // Too-old batches are resolved inside poll_transmit; they are the ones
    // below the ack floor that were never acked.
    let too_old = total as usize - acked.len();
    assert_eq!(s.counters.dropped_too_old, 100 * too_old as u64);
    // Everything queued for more than an hour of the 3 h outage is given up:
    // about two hours' worth of 30 s batches.
    assert!(
        (2 * 3600 / 30 - 20..=2 * 3600 / 30 + 20).contains(&too_old),
        "too old {too_old}"
    );
    assert!(
        fresh_acked_after_recovery >= 100,
        "fresh {fresh_acked_after_recovery}"
    );
    // Nothing older than the limit was delivered.
    assert!(acked.iter().all(|&seq| sent.contains(&seq)));
    assert_eq!(s.counters.succeeded_samples_total, 100 * acked.len() as u64);
    assert_eq!(s.ack_floor(), Some(total));
}

#[test]
fn shards_grow_when_sending_falls_behind_and_reshard_keeps_order() {
    let mut q = queue();
    q.max_shards = 8;
    let mut s = Sender::with_window(&q, 1000);
    let mut seq = 0;
    let mut now = T0;
    // Slow receiver: each batch takes 2 s, 1 shard, while 4 batches arrive
    // per second: the backlog grows.
    for _ in 0..60 {
        for _ in 0..4 {
            if s.has_room() {
                s.handle_enqueued(batch(seq, 0, now)).unwrap();
                seq += 1;
            }
        }
        if let Some(b) = s.poll_transmit(now) {
            s.handle_response(b.seq, 200, None, now + 2_000);
        }
        now += 1_000;
    }
    assert_eq!(s.shards(), 1);
    assert!(s.desired_shards() > 1, "desired {}", s.desired_shards());
    assert!(s.desired_shards() <= 8);
    // Batches of the new layout wait until the old layout drained.
    let old_pending = s.pending_batches();
    let new = s.poll_reshard(seq).expect("reshard applies");
    assert_eq!(new, s.desired_shards());
    assert_eq!(s.poll_reshard(seq), None);
    for shard in 0..new {
        s.handle_enqueued(batch(seq, shard, now)).unwrap();
        seq += 1;
    }
    let mut sent_old = 0;
    while let Some(b) = s.poll_transmit(now) {
        if sent_old < old_pending {
            assert!(
                b.seq < seq - u64::from(new),
                "new-layout batch {} left before the old drained",
                b.seq
            );
            sent_old += 1;
        }
        s.handle_response(b.seq, 200, None, now);
    }
    assert_eq!(s.pending_batches(), 0);
}

#[test]
fn metrics_render_with_prometheus_names() {
    let mut s = Sender::new(&queue());
    s.handle_enqueued(batch(0, 0, T0)).unwrap();
    s.handle_enqueued(batch(1, 0, T0)).unwrap();
    s.poll_transmit(T0).unwrap();
    s.handle_response(0, 200, None, T0);
    s.poll_transmit(T0).unwrap();
    s.handle_response(1, 409, None, T0);
    s.counters.record_dropped(DropReason::WalFull, 7);
    let mut text = String::new();
    s.render_metrics(&mut text, "thanos", "http://r:19291/api/v1/receive?a=\"b\"")
        .unwrap();
    let l = r#"remote_name="thanos",url="http://r:19291/api/v1/receive?a=\"b\"""#;
    for line in [
        format!("prometheus_remote_storage_samples_total{{{l}}} 200"),
        format!("prometheus_remote_storage_succeeded_samples_total{{{l}}} 100"),
        format!("prometheus_remote_storage_samples_failed_total{{{l}}} 100"),
        format!("prometheus_remote_storage_failed_samples_total{{{l}}} 100"),
        format!("prometheus_remote_storage_samples_retried_total{{{l}}} 0"),
        format!("prometheus_remote_storage_bytes_total{{{l}}} 4000"),
        format!("prometheus_remote_storage_shards{{{l}}} 1"),
        format!("prometheus_remote_storage_shards_desired{{{l}}} 1"),
        format!("prometheus_remote_storage_samples_pending{{{l}}} 0"),
        format!("prometheus_remote_storage_samples_dropped_total{{reason=\"http_4xx\",{l}}} 100"),
        format!("prometheus_remote_storage_samples_dropped_total{{reason=\"wal_full\",{l}}} 7"),
        format!("prometheus_remote_storage_queue_highest_sent_timestamp_seconds{{{l}}} 1700000000.500"),
        "prometheus_remote_storage_highest_timestamp_in_seconds 1700000000.500".to_string(),
    ] {
        assert!(text.lines().any(|x| x == line), "missing {line}\n{text}");
    }
    // Every sample line parses as name{labels} value.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
}

#[derive(Debug, Clone, Copy)]
enum Reply {
    Status(u16),
    RetryAfter(u64),
    Transport,
}

fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        4 => Just(Reply::Status(200)),
        3 => prop::sample::select(vec![500u16, 502, 503, 429]).prop_map(Reply::Status),
        1 => prop::sample::select(vec![400u16, 404, 409, 413, 301]).prop_map(Reply::Status),
        1 => (1u64..600_000).prop_map(Reply::RetryAfter),
        2 => Just(Reply::Transport),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(200) })]

    /// Whatever the receiver answers during an outage, every batch ends acked
    /// or dropped exactly once after it recovers, and per shard nothing is
    /// sent while an earlier batch of that shard is unresolved.
    #[test]
    fn every_batch_resolves_once_and_shards_stay_ordered(
        shards in proptest::collection::vec(0u16..4, 1..60),
        replies in proptest::collection::vec(reply(), 1..300),
        age_limit in prop_oneof![Just(0u64), 60_000u64..4 * HOUR_MS],
        window in 1usize..20,
    ) {
        let mut q = queue();
        q.max_sample_age_ms = age_limit;
        let mut s = Sender::with_window(&q, window);
        let mut wal: VecDeque<BatchMeta> = shards
            .iter()
            .enumerate()
            .map(|(i, &shard)| batch(i as u64 * 3, shard, T0 + i as u64 * 1000))
            .collect();
        let total = wal.len();
        let mut resolved: BTreeMap<u64, &'static str> = BTreeMap::new();
        let mut now = T0;
        let mut replies = replies.into_iter();
        let mut steps = 0;
        let mut last_sent: BTreeMap<u16, u64> = BTreeMap::new();
        while resolved.len() < total {
            steps += 1;
            prop_assert!(steps < 100_000, "no progress");
            while s.has_room() {
                let Some(b) = wal.pop_front() else { break };
                s.handle_enqueued(b).unwrap();
            }
            let mut in_flight: Vec<BatchMeta> = Vec::new();
            while let Some(b) = s.poll_transmit(now) {
                prop_assert!(in_flight.iter().all(|f| f.shard != b.shard), "two in flight on shard {}", b.shard);
                // Per shard, transmissions (retries included) never go back in seq.
                let last = last_sent.entry(b.shard).or_insert(0);
                prop_assert!(b.seq >= *last, "shard {}: {} after {}", b.shard, b.seq, *last);
                *last = b.seq;
                prop_assert!(!resolved.contains_key(&b.seq), "{} sent after it was resolved", b.seq);
                in_flight.push(b);
            }
            for b in in_flight {
                let outcome = match replies.next().unwrap_or(Reply::Status(200)) {
                    Reply::Status(code) => s.handle_response(b.seq, code, None, now + 10),
                    Reply::RetryAfter(ms) => s.handle_response(b.seq, 503, Some(ms), now + 10),
                    Reply::Transport => s.handle_transport_error(b.seq, now + 10),
                };
                match outcome {
                    Outcome::Acked { seq } => prop_assert!(resolved.insert(seq, "acked").is_none()),
                    Outcome::Dropped { seq, .. } => prop_assert!(resolved.insert(seq, "dropped").is_none()),
                    Outcome::Retry { .. } => {}
                    Outcome::Unknown { seq } => prop_assert!(false, "{} was in flight", seq),
                }
            }
            // Batches resolved as too old never reach the wire: account for
            // them through the ack floor.
            if let Some(floor) = s.ack_floor() {
                for i in 0..total as u64 {
                    let seq = i * 3;
                    if seq < floor && !resolved.contains_key(&seq) {
                        resolved.insert(seq, "too_old");
                    }
                }
            }
            now = s.poll_timeout().map_or(now + 1, |t| t.max(now + 1));
        }
        prop_assert_eq!(s.ack_floor(), Some((total as u64 - 1) * 3 + 1));
        let c = s.counters;
        let acked = resolved.values().filter(|v| **v == "acked").count() as u64;
        prop_assert_eq!(c.succeeded_samples_total, 100 * acked);
        let dropped: u64 = DropReason::ALL.iter().map(|r| c.dropped(*r)).sum();
        prop_assert_eq!(c.succeeded_samples_total + dropped, 100 * total as u64);
        prop_assert_eq!(s.pending_batches(), 0);
    }
}
