//! The sender state machine under simulated time: outages of hours run in
//! milliseconds because time is only ever an argument. Records stand for
//! WAL records (one scrape's samples of one shard); the sender batches them
//! into runs at send time.

use outpost_core::plan::Queue;
use outpost_core::queue::{DropReason, Outcome, RecordMeta, Run, Sender, Window, RECORDS_PER_SHARD};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

const HOUR_MS: u64 = 3_600_000;
const T0: u64 = 1_700_000_000_000;
const DEADLINE_MS: u64 = 10_000;

fn queue() -> Queue {
    Queue {
        capacity: 2_000,
        min_shards: 1,
        max_shards: 4,
        max_samples_per_send: 1_000,
        batch_send_deadline_ms: DEADLINE_MS as u32,
        min_backoff_ms: 30,
        max_backoff_ms: 5_000,
        max_batch_bytes: 1 << 20,
        max_sample_age_ms: 0,
    }
}

/// A record of 100 samples scraped at `at_ms` (500 ms of timestamps).
fn record(seq: u64, shard: u16, at_ms: u64) -> RecordMeta {
    RecordMeta {
        seq,
        shard,
        samples: 100,
        oldest_timestamp_ms: at_ms as i64,
        newest_timestamp_ms: at_ms as i64 + 500,
        bytes: 2_000,
        raw_bytes: 8_000,
    }
}

/// The sender's answer to `poll_transmit` with the records of the run.
fn poll(s: &mut Sender, now: u64) -> Option<(Run, Vec<u64>)> {
    poll_wall(s, now, now as i64)
}

fn poll_wall(s: &mut Sender, now: u64, wall: i64) -> Option<(Run, Vec<u64>)> {
    let mut records = Vec::with_capacity(RECORDS_PER_SHARD);
    let run = s.poll_transmit(now, wall, &mut records)?;
    assert!(!records.is_empty());
    assert!(records.iter().all(|r| r.shard == run.shard));
    assert_eq!(run.id, records[0].seq);
    Some((run, records.iter().map(|r| r.seq).collect()))
}

/// Polls and marks the run built, as the shell does before sending.
fn send(s: &mut Sender, now: u64) -> Option<(Run, Vec<u64>)> {
    let (run, seqs) = poll(s, now)?;
    assert!(s.handle_built(run.id, 1_000, now));
    Some((run, seqs))
}

#[test]
fn runs_join_a_shards_consecutive_records_up_to_max_samples_per_send() {
    let mut s = Sender::new(&queue());
    assert_eq!(s.ack_floor(), None);
    // Shard 0 gets 13 records, shard 1 gets 12, interleaved in seq order.
    for seq in 0..25 {
        s.handle_enqueued(record(seq, (seq % 2) as u16, T0), T0).unwrap();
    }
    // Ten records of 100 samples fill max_samples_per_send: full runs go at once.
    let (a, seqs_a) = send(&mut s, T0).unwrap();
    assert_eq!((a.shard, seqs_a), (0, (0..20).step_by(2).collect::<Vec<_>>()));
    let (b, seqs_b) = send(&mut s, T0).unwrap();
    assert_eq!((b.shard, seqs_b), (1, (1..20).step_by(2).collect::<Vec<_>>()));
    assert_eq!(poll(&mut s, T0), None, "one run in flight per shard");
    assert_eq!(
        s.handle_response(b.id, 200, None, T0 + 5),
        Outcome::Acked { run: 1 }
    );
    assert_eq!(s.ack_floor(), Some(0), "shard 0's run is still in flight");
    // What is left of shard 1 (two records) is not full: it waits for the
    // deadline of its oldest record.
    assert_eq!(poll(&mut s, T0 + 5), None);
    assert_eq!(s.poll_timeout(), Some(T0 + DEADLINE_MS));
    assert_eq!(
        s.handle_response(a.id, 204, None, T0 + 6),
        Outcome::Acked { run: 0 }
    );
    assert_eq!(s.ack_floor(), Some(20));
    assert_eq!(
        s.handle_response(a.id, 200, None, T0 + 6),
        Outcome::Unknown { run: 0 }
    );
    assert_eq!(poll(&mut s, T0 + DEADLINE_MS - 1), None);
    let (c, seqs_c) = send(&mut s, T0 + DEADLINE_MS).unwrap();
    assert_eq!((c.shard, seqs_c), (0, vec![20, 22, 24]));
    let (d, seqs_d) = send(&mut s, T0 + DEADLINE_MS).unwrap();
    assert_eq!((d.shard, seqs_d), (1, vec![21, 23]));
    for run in [c, d] {
        s.handle_response(run.id, 200, None, T0 + DEADLINE_MS);
    }
    assert_eq!(s.ack_floor(), Some(25));
    assert_eq!(s.counters.succeeded_samples_total, 2_500);
    assert_eq!(s.counters.samples_total, 2_500);
    assert_eq!(s.counters.sent_batches, 4, "25 records went out in 4 requests");
    assert_eq!(s.counters.sent_bytes_total, 4_000);
    assert_eq!(s.counters.highest_sent_timestamp_ms, T0 as i64 + 500);
}

#[test]
fn runs_stay_within_the_byte_bounds_and_an_unknown_size_goes_alone() {
    let mut q = queue();
    q.max_batch_bytes = 20_000;
    let mut s = Sender::new(&q);
    // 8,000 uncompressed bytes each: two fit in 20,000, three do not.
    for seq in 0..3 {
        s.handle_enqueued(record(seq, 0, T0), T0).unwrap();
    }
    // A record from an older WAL whose size is unknown goes on its own.
    s.handle_enqueued(
        RecordMeta {
            raw_bytes: 0,
            ..record(3, 0, T0)
        },
        T0,
    )
    .unwrap();
    s.handle_enqueued(record(4, 0, T0), T0).unwrap();
    let mut runs = Vec::new();
    while let Some((run, seqs)) = send(&mut s, T0 + DEADLINE_MS) {
        runs.push(seqs);
        s.handle_response(run.id, 200, None, T0 + DEADLINE_MS);
    }
    assert_eq!(runs, vec![vec![0, 1], vec![2], vec![3], vec![4]]);

    // The compressed bound: the snappy bound of max_batch_bytes.
    let mut s = Sender::new(&q);
    for seq in 0..3 {
        let r = RecordMeta {
            bytes: 10_000,
            raw_bytes: 1_000,
            ..record(seq, 0, T0)
        };
        s.handle_enqueued(r, T0).unwrap();
    }
    let (_, seqs) = poll(&mut s, T0).unwrap();
    assert_eq!(
        seqs,
        vec![0, 1],
        "23,365 compressed bytes hold two records of 10,000"
    );
}

/// Prometheus's batch deadline: a shard waits for more samples only until
/// its oldest one has waited `batch_send_deadline`.
#[test]
fn a_run_waits_until_its_oldest_record_has_waited_the_deadline() {
    let mut s = Sender::new(&queue());
    let mut sent = Vec::new();
    let mut now = T0;
    let mut seq = 0;
    while now < T0 + 5 * DEADLINE_MS {
        // A 50-sample scrape per second: 20 of them would fill a request.
        let r = RecordMeta {
            samples: 50,
            ..record(seq, 0, now)
        };
        s.handle_enqueued(r, now).unwrap();
        seq += 1;
        while let Some((run, seqs)) = send(&mut s, now) {
            sent.push((now, seqs));
            s.handle_response(run.id, 200, None, now);
        }
        now += 1_000;
    }
    // Each run went exactly when its first record had waited 10 s, with
    // the eleven records enqueued by then.
    assert_eq!(sent.len(), 4);
    for (i, (at, seqs)) in sent.iter().enumerate() {
        let first = 11 * i as u64;
        assert_eq!(*seqs, (first..first + 11).collect::<Vec<_>>());
        assert_eq!(*at, T0 + first * 1_000 + DEADLINE_MS);
    }
}

#[test]
fn hour_long_outage_backs_off_exponentially_capped_at_max() {
    let mut s = Sender::new(&queue());
    s.handle_enqueued(record(0, 0, T0), T0).unwrap();
    let mut now = T0 + DEADLINE_MS;
    let mut delays = Vec::new();
    let (mut run, _) = send(&mut s, now).unwrap();
    while now < T0 + HOUR_MS {
        let at = match s.handle_response(run.id, 503, None, now) {
            Outcome::Retry { at_ms, .. } => at_ms,
            other => panic!("503 must retry, got {other:?}"),
        };
        delays.push(at - now);
        assert_eq!(poll(&mut s, now), None, "nothing is due during backoff");
        // Wake-ups for the shard-count timer may come first; the run goes
        // exactly when its backoff ends.
        run = loop {
            now = s.poll_timeout().unwrap();
            assert!(now <= at);
            if let Some((run, _)) = send(&mut s, now) {
                break run;
            }
        };
        assert_eq!(now, at);
    }
    assert_eq!(&delays[..9], &[30, 60, 120, 240, 480, 960, 1920, 3840, 5000]);
    assert!(delays[8..].iter().all(|&d| d == 5000));
    assert_eq!(s.counters.retried_samples_total, 100 * delays.len() as u64);
    assert_eq!(s.counters.failed_samples_total, 0);
    assert_eq!(
        s.handle_response(run.id, 200, None, now),
        Outcome::Acked { run: 0 }
    );
    assert_eq!(s.counters.samples_total, 100 * (delays.len() as u64 + 1));
    assert_eq!(s.ack_floor(), Some(1));
}

#[test]
fn retry_after_is_honoured_when_longer_than_backoff() {
    let mut s = Sender::new(&queue());
    s.handle_enqueued(record(0, 0, T0), T0).unwrap();
    let t = T0 + DEADLINE_MS;
    send(&mut s, t).unwrap();
    assert_eq!(
        s.handle_response(0, 429, Some(60_000), t),
        Outcome::Retry {
            run: 0,
            at_ms: t + 60_000
        }
    );
    assert_eq!(poll(&mut s, t + 59_999), None);
    assert_eq!(send(&mut s, t + 60_000).map(|r| r.1), Some(vec![0]));
    // A shorter Retry-After than the backoff does not shorten it.
    assert_eq!(
        s.handle_response(0, 429, Some(1), t + 60_000),
        Outcome::Retry {
            run: 0,
            at_ms: t + 60_060
        }
    );
    assert_eq!(send(&mut s, t + 60_060).map(|r| r.1), Some(vec![0]));
    assert_eq!(
        s.handle_transport_error(0, t + 60_070),
        Outcome::Retry {
            run: 0,
            at_ms: t + 60_190
        }
    );
}

#[test]
fn a_retry_takes_the_records_that_arrived_meanwhile() {
    let mut s = Sender::new(&queue());
    s.handle_enqueued(record(0, 0, T0), T0).unwrap();
    let t = T0 + DEADLINE_MS;
    let (run, _) = send(&mut s, t).unwrap();
    s.handle_response(run.id, 503, None, t);
    s.handle_enqueued(record(1, 0, t), t).unwrap();
    s.handle_enqueued(record(2, 1, t), t).unwrap();
    // The retry goes when the backoff ends, without waiting for the new
    // record's deadline, and carries it along; shard 1 waits for its own.
    let (retry, seqs) = send(&mut s, t + 30).unwrap();
    assert_eq!((retry.id, seqs), (0, vec![0, 1]));
    assert_eq!(poll(&mut s, t + 30), None);
    assert_eq!(s.handle_response(0, 200, None, t + 40), Outcome::Acked { run: 0 });
    assert_eq!(s.ack_floor(), Some(2));
    assert_eq!(s.counters.retried_samples_total, 100);
    assert_eq!(s.counters.succeeded_samples_total, 200);
}

#[test]
fn out_of_bounds_409_is_dropped_and_does_not_block_the_shard() {
    let mut q = queue();
    q.max_samples_per_send = 100;
    let mut s = Sender::new(&q);
    for seq in 0..3 {
        s.handle_enqueued(record(seq, 0, T0), T0).unwrap();
    }
    assert_eq!(send(&mut s, T0).map(|r| r.1), Some(vec![0]));
    assert_eq!(
        s.handle_response(0, 409, None, T0),
        Outcome::Dropped {
            run: 0,
            reason: DropReason::Http4xx
        }
    );
    assert_eq!(
        send(&mut s, T0).map(|r| r.1),
        Some(vec![1]),
        "next run goes at once"
    );
    assert_eq!(
        s.handle_response(1, 400, None, T0),
        Outcome::Dropped {
            run: 1,
            reason: DropReason::Http4xx
        }
    );
    assert_eq!(send(&mut s, T0).map(|r| r.1), Some(vec![2]));
    assert_eq!(s.handle_response(2, 200, None, T0), Outcome::Acked { run: 2 });
    assert_eq!(s.counters.dropped_http_4xx, 200);
    assert_eq!(s.counters.failed_samples_total, 200);
    assert_eq!(s.counters.succeeded_samples_total, 100);
    assert_eq!(s.ack_floor(), Some(3));
}

/// Age is judged per record at the moment a run forms, against the wall
/// clock: a record wholly older than the cutoff is dropped, one that
/// straddles it is sent with the cutoff so the shell filters its samples.
#[test]
fn age_is_judged_per_record_and_sample_at_send_time() {
    let mut q = queue();
    q.max_sample_age_ms = HOUR_MS;
    let mut s = Sender::new(&q);
    let wall = (T0 + 2 * HOUR_MS) as i64;
    let cutoff = wall - HOUR_MS as i64;
    let span = |seq, oldest: i64, newest: i64| RecordMeta {
        oldest_timestamp_ms: oldest,
        newest_timestamp_ms: newest,
        ..record(seq, 0, T0)
    };
    // Wholly too old; straddling (a target exposing old explicit timestamps
    // next to fresh ones); fresh; wholly too old; exactly at the cutoff.
    let records = [
        span(0, cutoff - 10_000, cutoff - 1),
        span(1, 0, wall),
        span(2, cutoff + 1, wall),
        span(3, cutoff - 5, cutoff - 5),
        span(4, cutoff, cutoff),
    ];
    // The monotonic clock says the records waited; the wall clock is what
    // ages them (it may have jumped).
    for r in records {
        s.handle_enqueued(r, 50).unwrap();
    }
    let (run, seqs) = poll_wall(&mut s, 50 + DEADLINE_MS, wall).unwrap();
    assert_eq!(seqs, vec![1, 2, 4]);
    assert_eq!(run.cutoff_ms, Some(cutoff));
    assert_eq!(s.counters.dropped_too_old, 200, "records 0 and 3, whole");
    // The shell filtered record 1 and found 37 of its samples too old;
    // reporting it again (a rebuilt retry) counts nothing twice.
    s.handle_aged_out(1, 37);
    s.handle_aged_out(1, 37);
    assert!(s.handle_built(run.id, 1_000, 50 + DEADLINE_MS));
    assert_eq!(s.counters.dropped_too_old, 237);
    assert_eq!(s.counters.samples_total, 263);
    assert_eq!(s.pending_samples(), 263);
    s.handle_response(run.id, 503, None, 50 + DEADLINE_MS);
    // An hour later record 1 is filtered again: 60 old now, 23 more.
    let wall = wall + HOUR_MS as i64;
    let later = 50 + DEADLINE_MS + HOUR_MS;
    let (retry, seqs) = poll_wall(&mut s, later, wall).unwrap();
    assert_eq!(seqs, vec![1, 2], "record 4 aged out whole");
    s.handle_aged_out(1, 60);
    assert!(s.handle_built(retry.id, 900, later));
    assert_eq!(
        s.handle_response(retry.id, 200, None, later),
        Outcome::Acked { run: 1 }
    );
    let c = s.counters;
    assert_eq!(c.dropped_too_old, 200 + 60 + 100);
    assert_eq!(c.succeeded_samples_total, 40 + 100);
    assert_eq!(
        c.succeeded_samples_total + c.dropped_too_old,
        500,
        "every sample once"
    );
    assert_eq!(c.failed_samples_total, 0, "age drops are not receiver failures");
    assert_eq!(s.ack_floor(), Some(5));
}

#[test]
fn lost_records_are_counted_once_under_their_reason() {
    let mut q = queue();
    q.max_samples_per_send = 300;
    let mut s = Sender::new(&q);
    for seq in 0..6 {
        s.handle_enqueued(record(seq, 0, T0), T0).unwrap();
    }
    // Pending: given up at once.
    assert!(s.handle_lost(5, DropReason::WalFull));
    assert!(!s.handle_lost(5, DropReason::WalFull), "only once");
    assert!(!s.handle_lost(77, DropReason::WalFull), "never enqueued");
    // In a run being built: leaves the run, the rest goes.
    let (run, seqs) = poll(&mut s, T0).unwrap();
    assert_eq!(seqs, vec![0, 1, 2]);
    assert!(s.handle_lost(1, DropReason::WalCorrupt));
    assert!(s.handle_built(run.id, 500, T0));
    assert_eq!(s.counters.samples_total, 200);
    // On the wire: the answer decides.
    assert!(!s.handle_lost(2, DropReason::WalFull));
    s.handle_response(run.id, 200, None, T0);
    assert_eq!(s.counters.succeeded_samples_total, 200);
    // A run whose every record is lost sends nothing and frees the shard.
    let t = T0 + DEADLINE_MS;
    let (run, seqs) = poll(&mut s, t).unwrap();
    assert_eq!(seqs, vec![3, 4]);
    assert!(s.handle_lost(3, DropReason::WalFull));
    assert!(s.handle_lost(4, DropReason::WalFull));
    assert!(!s.handle_built(run.id, 0, t));
    assert_eq!(
        s.handle_response(run.id, 200, None, t),
        Outcome::Unknown { run: 3 }
    );
    let c = s.counters;
    assert_eq!((c.dropped_wal_full, c.dropped_wal_corrupt), (300, 100));
    assert_eq!(c.failed_samples_total, 0);
    assert_eq!(c.sent_batches, 1);
    assert_eq!(s.ack_floor(), Some(6));
    assert_eq!(s.pending_records(), 0);
}

#[test]
fn the_window_is_bounded_in_records_and_in_samples() {
    let q = queue();
    assert_eq!(
        Window::of(&q),
        Window {
            records: 4 * RECORDS_PER_SHARD,
            samples: 4 * 3_000
        }
    );
    let mut s = Sender::with_window(
        &q,
        Window {
            records: 3,
            samples: 250,
        },
    );
    s.handle_enqueued(record(0, 0, T0), T0).unwrap();
    s.handle_enqueued(record(1, 0, T0), T0).unwrap();
    assert!(s.has_room(), "200 of 250 samples");
    assert!(
        s.handle_enqueued(record(2, 0, T0), T0).is_err(),
        "300 would cross 250"
    );
    let mut s = Sender::with_window(
        &q,
        Window {
            records: 2,
            samples: 10_000,
        },
    );
    s.handle_enqueued(record(0, 0, T0), T0).unwrap();
    s.handle_enqueued(record(1, 0, T0), T0).unwrap();
    assert!(!s.has_room());
    assert!(s.handle_enqueued(record(2, 0, T0), T0).is_err());
    // A record larger than the whole sample bound still goes, alone.
    let mut s = Sender::with_window(
        &q,
        Window {
            records: 4,
            samples: 50,
        },
    );
    s.handle_enqueued(record(0, 0, T0), T0).unwrap();
    assert!(s.handle_enqueued(record(1, 0, T0), T0).is_err());
}

/// Three hours of outage while a scrape writes a record every 30 s. The
/// sender's window is small; the rest waits in a WAL stand-in. When the
/// receiver comes back, what is older than the age limit is dropped as
/// `too_old` and fresh data is delivered, instead of the backlog being
/// replayed into 409s.
#[test]
fn three_hour_outage_drops_too_old_and_delivers_fresh_data() {
    let mut q = queue();
    q.max_sample_age_ms = HOUR_MS;
    let mut s = Sender::with_window(
        &q,
        Window {
            records: 16,
            samples: 10_000,
        },
    );
    let mut wal: VecDeque<RecordMeta> = VecDeque::new();
    let mut next_seq = 0u64;
    let mut next_scrape = T0;
    let outage_end = T0 + 3 * HOUR_MS;
    let end = outage_end + HOUR_MS;
    let mut now = T0;
    let mut acked = BTreeSet::new();
    let mut fresh_acked_after_recovery = 0;
    while now <= end {
        if now >= next_scrape {
            wal.push_back(record(next_seq, (next_seq % 2) as u16, now));
            next_seq += 1;
            next_scrape += 30_000;
        }
        while s.has_room() {
            let Some(b) = wal.pop_front() else { break };
            s.handle_enqueued(b, now).unwrap();
        }
        let mut records = Vec::with_capacity(RECORDS_PER_SHARD);
        while let Some(run) = s.poll_transmit(now, now as i64, &mut records) {
            assert!(records
                .iter()
                .all(|r| r.newest_timestamp_ms >= now as i64 - HOUR_MS as i64));
            s.handle_built(run.id, 100, now);
            let status = if now < outage_end { 503 } else { 200 };
            match s.handle_response(run.id, status, None, now + 20) {
                Outcome::Acked { .. } => {
                    for r in &records {
                        assert!(acked.insert(r.seq));
                        if now - (r.oldest_timestamp_ms as u64) < 60_000 {
                            fresh_acked_after_recovery += 1;
                        }
                    }
                }
                Outcome::Retry { .. } => {}
                other => panic!("{other:?}"),
            }
        }
        let wake = s.poll_timeout().unwrap_or(u64::MAX).min(next_scrape);
        now = wake.max(now + 1);
    }
    assert!(wal.is_empty(), "backlog drained, {} left", wal.len());
    // The newest records still wait for their batch deadline.
    let total = s.ack_floor().unwrap();
    assert!(next_seq - total <= 1, "{} pending", next_seq - total);
    let too_old = total as usize - acked.len();
    assert_eq!(s.counters.dropped_too_old, 100 * too_old as u64);
    // Everything queued for more than an hour of the 3 h outage is given up:
    // about two hours' worth of 30 s records.
    assert!(
        (2 * 3600 / 30 - 20..=2 * 3600 / 30 + 20).contains(&too_old),
        "too old {too_old}"
    );
    assert!(
        fresh_acked_after_recovery >= 100,
        "fresh {fresh_acked_after_recovery}"
    );
    assert_eq!(s.counters.succeeded_samples_total, 100 * acked.len() as u64);
    assert_eq!(s.ack_floor(), Some(total));
}

#[test]
fn shards_grow_when_sending_falls_behind_and_reshard_keeps_order() {
    let mut q = queue();
    q.max_shards = 8;
    q.max_samples_per_send = 100;
    let mut s = Sender::with_window(
        &q,
        Window {
            records: 1000,
            samples: 1_000_000,
        },
    );
    let mut seq = 0;
    let mut now = T0;
    // Slow receiver: each request takes 2 s, 1 shard, while 4 records arrive
    // per second: the backlog grows.
    for _ in 0..60 {
        for _ in 0..4 {
            if s.has_room() {
                s.handle_enqueued(record(seq, 0, now), now).unwrap();
                seq += 1;
            }
        }
        if let Some((run, _)) = send(&mut s, now) {
            s.handle_response(run.id, 200, None, now + 2_000);
        }
        now += 1_000;
    }
    assert_eq!(s.shards(), 1);
    assert!(s.desired_shards() > 1, "desired {}", s.desired_shards());
    assert!(s.desired_shards() <= 8);
    // Records of the new layout wait until the old layout drained.
    let old_pending = s.pending_records();
    let new = s.poll_reshard(seq).expect("reshard applies");
    assert_eq!(new, s.desired_shards());
    assert_eq!(s.poll_reshard(seq), None);
    for shard in 0..new {
        s.handle_enqueued(record(seq, shard, now), now).unwrap();
        seq += 1;
    }
    let mut sent_old = 0;
    while let Some((run, seqs)) = send(&mut s, now) {
        for r in seqs {
            if sent_old < old_pending {
                assert!(
                    r < seq - u64::from(new),
                    "new-layout record {r} left before the old drained"
                );
                sent_old += 1;
            }
        }
        s.handle_response(run.id, 200, None, now);
    }
    assert_eq!(s.pending_records(), 0);
}

#[test]
fn reconfigure_keeps_every_record_and_resends_the_unanswered() {
    let mut s = Sender::new(&queue());
    for seq in 0..6 {
        s.handle_enqueued(record(seq, (seq % 4) as u16, T0), T0).unwrap();
    }
    let t = T0 + DEADLINE_MS;
    let (a, _) = send(&mut s, t).unwrap();
    let (b, _) = send(&mut s, t).unwrap();
    assert_eq!(
        s.handle_response(a.id, 200, None, t),
        Outcome::Acked { run: a.id }
    );
    // A reload to two shards while run `b` is unanswered.
    let mut q = queue();
    q.max_shards = 2;
    q.min_shards = 2;
    s.reconfigure(&q, 6);
    assert_eq!(s.shards(), 2);
    assert_eq!(
        s.handle_response(b.id, 200, None, t),
        Outcome::Unknown { run: b.id }
    );
    // New-layout records wait for every old one.
    s.handle_enqueued(record(6, 1, t), t).unwrap();
    let mut order = Vec::new();
    let later = t + DEADLINE_MS;
    while let Some((run, seqs)) = send(&mut s, later) {
        assert!(run.shard < 2);
        order.extend(seqs);
        s.handle_response(run.id, 200, None, later);
    }
    assert_eq!(
        order.iter().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([1, 2, 3, 5, 6]),
        "everything but run a's records 0 and 4"
    );
    assert_eq!(*order.last().unwrap(), 6, "the new layout went last: {order:?}");
    assert_eq!(s.counters.succeeded_samples_total, 700);
    assert_eq!(
        s.counters.retried_samples_total, 200,
        "run b (records 1 and 5) was sent again"
    );
    assert_eq!(s.ack_floor(), Some(7));
}

#[test]
fn metrics_render_with_prometheus_names() {
    let mut q = queue();
    q.max_samples_per_send = 100;
    let mut s = Sender::new(&q);
    s.handle_enqueued(record(0, 0, T0), T0).unwrap();
    s.handle_enqueued(record(1, 0, T0), T0).unwrap();
    let (run, _) = send(&mut s, T0).unwrap();
    s.handle_response(run.id, 200, None, T0);
    let (run, _) = send(&mut s, T0).unwrap();
    s.handle_response(run.id, 409, None, T0);
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
        format!("prometheus_remote_storage_bytes_total{{{l}}} 2000"),
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
    /// The shell could not read one of the run's records back.
    Lost,
}

fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        4 => Just(Reply::Status(200)),
        3 => prop::sample::select(vec![500u16, 502, 503, 429]).prop_map(Reply::Status),
        1 => prop::sample::select(vec![400u16, 404, 409, 413, 301]).prop_map(Reply::Status),
        1 => (1u64..600_000).prop_map(Reply::RetryAfter),
        2 => Just(Reply::Transport),
        1 => Just(Reply::Lost),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(200) })]

    /// Whatever the receiver answers during an outage, every record ends
    /// acked or dropped exactly once after it recovers, and per shard
    /// nothing is sent while an earlier record of that shard is unresolved.
    #[test]
    fn every_record_resolves_once_and_shards_stay_ordered(
        shards in proptest::collection::vec(0u16..4, 1..60),
        sizes in proptest::collection::vec(1u32..400, 60),
        replies in proptest::collection::vec(reply(), 1..300),
        age_limit in prop_oneof![Just(0u64), 60_000u64..4 * HOUR_MS],
        window in 1usize..20,
    ) {
        let mut q = queue();
        q.max_sample_age_ms = age_limit;
        let mut s = Sender::with_window(&q, Window { records: window, samples: 2_000 });
        let mut wal: VecDeque<RecordMeta> = shards
            .iter()
            .enumerate()
            .map(|(i, &shard)| RecordMeta {
                samples: sizes[i],
                ..record(i as u64 * 3, shard, T0 + i as u64 * 1000)
            })
            .collect();
        let samples_of: BTreeMap<u64, u64> = wal.iter().map(|r| (r.seq, u64::from(r.samples))).collect();
        let total = wal.len();
        let mut resolved: BTreeMap<u64, &'static str> = BTreeMap::new();
        let mut now = T0;
        let mut replies = replies.into_iter();
        let mut steps = 0;
        let mut last_sent: BTreeMap<u16, u64> = BTreeMap::new();
        let mut records = Vec::with_capacity(RECORDS_PER_SHARD);
        while resolved.len() < total {
            steps += 1;
            prop_assert!(steps < 100_000, "no progress");
            while let Some(&b) = wal.front() {
                if s.handle_enqueued(b, now).is_err() {
                    break;
                }
                wal.pop_front();
            }
            let mut in_flight: Vec<(Run, Vec<u64>)> = Vec::new();
            while let Some(run) = s.poll_transmit(now, now as i64, &mut records) {
                prop_assert!(in_flight.iter().all(|f| f.0.shard != run.shard), "two in flight on shard {}", run.shard);
                let samples: u64 = records.iter().map(|r| u64::from(r.samples)).sum();
                prop_assert!(records.len() == 1 || samples <= 1_000, "run of {} samples", samples);
                // Per shard, transmissions (retries included) never go back in seq.
                let last = last_sent.entry(run.shard).or_insert(0);
                prop_assert!(records[0].seq >= *last, "shard {}: {} after {}", run.shard, records[0].seq, *last);
                *last = records[0].seq;
                let mut seqs: Vec<u64> = Vec::new();
                for r in &records {
                    prop_assert!(!resolved.contains_key(&r.seq), "{} sent after it was resolved", r.seq);
                    seqs.push(r.seq);
                }
                if let Some(Reply::Lost) = replies.as_slice().first() {
                    replies.next();
                    let lost = seqs.remove(seqs.len() / 2);
                    prop_assert!(s.handle_lost(lost, DropReason::WalFull));
                    resolved.insert(lost, "lost");
                }
                if s.handle_built(run.id, 10, now) {
                    in_flight.push((run, seqs));
                } else {
                    prop_assert!(seqs.is_empty());
                }
            }
            for (run, seqs) in in_flight {
                let outcome = match replies.next().unwrap_or(Reply::Status(200)) {
                    Reply::Status(code) => s.handle_response(run.id, code, None, now + 10),
                    Reply::RetryAfter(ms) => s.handle_response(run.id, 503, Some(ms), now + 10),
                    Reply::Transport | Reply::Lost => s.handle_transport_error(run.id, now + 10),
                };
                match outcome {
                    Outcome::Acked { .. } => {
                        for seq in seqs {
                            prop_assert!(resolved.insert(seq, "acked").is_none());
                        }
                    }
                    Outcome::Dropped { .. } => {
                        for seq in seqs {
                            prop_assert!(resolved.insert(seq, "dropped").is_none());
                        }
                    }
                    Outcome::Retry { .. } => {}
                    Outcome::Unknown { run } => prop_assert!(false, "{} was in flight", run),
                }
            }
            // Records resolved as too old never reach the wire: account for
            // them through the ack floor.
            if let Some(floor) = s.ack_floor() {
                for &seq in samples_of.keys() {
                    if seq < floor && !resolved.contains_key(&seq) {
                        resolved.insert(seq, "too_old");
                    }
                }
            }
            now = s.poll_timeout().map_or(now + 1, |t| t.max(now + 1));
        }
        prop_assert_eq!(s.ack_floor(), Some((total as u64 - 1) * 3 + 1));
        let c = s.counters;
        let sum = |what: &str| -> u64 {
            resolved.iter().filter(|(_, v)| **v == what).map(|(seq, _)| samples_of[seq]).sum()
        };
        prop_assert_eq!(c.succeeded_samples_total, sum("acked"));
        prop_assert_eq!(c.dropped(DropReason::WalFull), sum("lost"));
        prop_assert_eq!(c.dropped(DropReason::TooOld), sum("too_old"));
        let dropped: u64 = DropReason::ALL.iter().map(|r| c.dropped(*r)).sum();
        prop_assert_eq!(c.succeeded_samples_total + dropped, samples_of.values().sum::<u64>());
        prop_assert_eq!(s.pending_records(), 0);
    }
}

/// What spill mode asks before it writes a held record: is it acknowledged
/// (or dropped) already? Shards are acknowledged independently, so a record
/// above the ack floor can be resolved.
#[test]
fn a_record_is_resolved_once_acked_even_above_the_ack_floor() {
    let mut s = Sender::new(&queue());
    for seq in 0..4 {
        s.handle_enqueued(record(seq, (seq % 2) as u16, T0), T0).unwrap();
    }
    let (a, _) = send_deadline(&mut s);
    let (b, _) = send_deadline(&mut s);
    let odd = if a.shard == 1 { a } else { b };
    let even = if a.shard == 1 { b } else { a };
    s.handle_response(odd.id, 200, None, T0 + DEADLINE_MS);
    assert_eq!(s.ack_floor(), Some(0));
    assert!(s.is_resolved(1) && s.is_resolved(3), "shard 1 acknowledged");
    assert!(!s.is_resolved(0) && !s.is_resolved(2), "shard 0 still in flight");
    assert!(!s.is_resolved(4), "not enqueued yet");
    s.handle_response(even.id, 503, None, T0 + DEADLINE_MS);
    assert!(!s.is_resolved(0), "a retry is not a resolution");
}

fn send_deadline(s: &mut Sender) -> (Run, Vec<u64>) {
    send(s, T0 + DEADLINE_MS).expect("a run is due at the deadline")
}
