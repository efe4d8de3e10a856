//! Issue 21, no scraped sample lost to a crash, with the real binary: the
//! receiver is down, the agent is killed with -9 again and again at random
//! moments and restarted at once, then the receiver comes back. The target
//! counts its scrapes and exposes the count, so every delivered value names
//! the scrape it came from.
//!
//! What "served" means, exactly: the target counts a scrape when the
//! request reaches it. A scrape is complete once the agent committed it;
//! every complete scrape is in the WAL (written, before the next one of the
//! target starts), and a kill -9 loses no written byte. So the only scrape
//! a kill can lose is one the target had served but the agent had not
//! committed at that instant: the last one served before the kill, if any.
//! The test asserts exactly that: after recovery every scrape number
//! arrives exactly once and in order, except at most the last number
//! served before each kill, and it reports how many of those were lost.
//!
//! Run in `append` mode (every scrape is appended before it is sent;
//! `wal.fsync` only decides what a power loss can take, which a kill -9
//! does not exercise). `spill` mode holds records in memory while the
//! receiver answers, so a kill can take up to its spill window: that loss
//! is measured by faults_wal_modes.rs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use outpost_core::plan::{Fsync, Queue};
use outpost_test_support::{
    get_metrics, log_text, metric_sum, outpost, wait_for, write_plan, CountingTarget, PlanBuilder,
    RecordingReceiver, QUEUE,
};

const KILLS: usize = 12;

fn counter_body(n: u64) -> String {
    format!("# TYPE kill_loop_scrape counter\nkill_loop_scrape {n}\n")
}

/// xorshift64; the seed is printed so a failing sequence can be replayed.
struct Delays(u64);

impl Delays {
    fn next_ms(&mut self, from: u64, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        from + self.0 % (below - from)
    }
}

/// Scrape number -> (sample timestamp, times delivered), from every POST
/// the receiver accepted.
fn delivered(receiver: &RecordingReceiver) -> BTreeMap<u64, (i64, u32)> {
    let mut out: BTreeMap<u64, (i64, u32)> = BTreeMap::new();
    for r in receiver.seen.lock().unwrap().iter().filter(|r| r.status == 200) {
        let request = r
            .request
            .as_ref()
            .unwrap_or_else(|e| panic!("POST #{} does not decode: {e}", r.sequence));
        for t in request
            .timeseries
            .iter()
            .filter(|t| t.label("__name__") == Some("kill_loop_scrape"))
        {
            for s in &t.samples {
                assert!(s.value.fract() == 0.0 && s.value >= 1.0, "{}", s.value);
                let e = out.entry(s.value as u64).or_insert((s.timestamp, 0));
                e.1 += 1;
            }
        }
    }
    out
}

struct LoopCounts {
    served: u64,
    delivered: usize,
    duplicated: usize,
    lost_in_flight: Vec<u64>,
    last_before_kill: Vec<u64>,
}

fn kill_loop(fsync: Fsync) -> LoopCounts {
    let dir = tempfile::tempdir().unwrap();
    let target = CountingTarget::start(counter_body);
    let (receiver, receiver_up) = RecordingReceiver::switchable();
    let plan = PlanBuilder::new()
        .receiver_url(&receiver.url())
        .external_labels(&[("cluster", "kill-loop")])
        .wal_dir(&dir.path().join("wal"))
        .fsync(fsync)
        // The seed's batch deadline: before records, a kill lost what the open
        // batch held for up to this long.
        .queue(Queue {
            batch_send_deadline_ms: 10_000,
            ..QUEUE
        })
        .scrape_job("testapp", &[target.address()])
        .build();
    let plan_path = write_plan(dir.path(), "plan.bin", &plan);
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("{fsync:?}: delay seed {seed}");
    let mut delays = Delays(seed);

    let mut last_before_kill = Vec::new();
    for i in 0..KILLS {
        let log = dir.path().join(format!("run-{i}.log"));
        let (mut agent, _) = outpost!().start_ready(&plan_path, "kill-loop", &log, &format!("run {i}"));
        // Kills land anywhere in the 1 s scrape cycle, mid-scrape included.
        thread::sleep(Duration::from_millis(delays.next_ms(300, 2_700)));
        assert!(agent.is_running(), "run {i} died on its own\n{}", log_text(&log));
        agent.kill(); // SIGKILL
                      // Nothing serves this agent any more: the last count is the last
                      // scrape that can have been in progress at the kill.
        last_before_kill.push(target.served());
    }
    assert!(
        receiver.seen.lock().unwrap().iter().all(|r| r.status == 503),
        "nothing was accepted while the receiver was down"
    );

    // Recovery: the receiver is back and a last run drains the WAL. Scrapes
    // served up to `checked` must all be there (but the in-flight ones).
    receiver_up.store(true, Ordering::SeqCst);
    let log = dir.path().join("final.log");
    let (mut agent, port) = outpost!().start_ready(&plan_path, "kill-loop", &log, "final run");
    thread::sleep(Duration::from_millis(2_000));
    let checked = target.served();
    let may_be_lost: BTreeSet<u64> = last_before_kill.iter().copied().collect();
    wait_for("every checked scrape delivered", Duration::from_secs(60), || {
        let got = delivered(&receiver);
        (1..=checked)
            .all(|n| got.contains_key(&n) || may_be_lost.contains(&n))
            .then_some(())
    });
    let body = get_metrics(port).unwrap();
    for reason in ["wal_full", "wal_corrupt", "http_4xx", "http_other", "too_old"] {
        let dropped = metric_sum(
            &body,
            "prometheus_remote_storage_samples_dropped_total",
            &[&format!("reason=\"{reason}\"")],
        );
        assert_eq!(dropped, 0.0, "dropped for {reason}\n{body}");
    }
    let status = agent.terminate(Duration::from_secs(15)).expect("exit on SIGTERM");
    assert!(status.success(), "{}", log_text(&log));

    let got = delivered(&receiver);
    let lost_in_flight: Vec<u64> = (1..=checked).filter(|n| !got.contains_key(n)).collect();
    for n in &lost_in_flight {
        assert!(
            may_be_lost.contains(n),
            "scrape {n} was lost, and it was not in progress at a kill (kills after {last_before_kill:?})"
        );
    }
    let duplicated = got.values().filter(|(_, times)| *times > 1).count();
    assert_eq!(
        duplicated,
        0,
        "scrapes delivered twice: {:?}",
        got.iter().filter(|(_, (_, t))| *t > 1).collect::<Vec<_>>()
    );
    // In order: a later scrape never carries an earlier timestamp.
    let mut previous = i64::MIN;
    for (n, (ts, _)) in &got {
        assert!(
            *ts > previous,
            "scrape {n} at {ts} is not after the one before ({previous})"
        );
        previous = *ts;
    }
    assert!(
        got.keys().all(|&n| n <= target.served()),
        "a value no scrape served"
    );
    LoopCounts {
        served: checked,
        delivered: got.keys().filter(|&&n| n <= checked).count(),
        duplicated,
        lost_in_flight,
        last_before_kill,
    }
}

#[test]
fn kill_9_during_an_outage_loses_no_completed_scrape() {
    let c = kill_loop(Fsync::IntervalMs(1_000));
    eprintln!(
        "append-before-send: {KILLS} kills; scrapes served {}, delivered {}, duplicated {}, \
         lost in progress at a kill {} {:?} (last served before each kill {:?})",
        c.served,
        c.delivered,
        c.duplicated,
        c.lost_in_flight.len(),
        c.lost_in_flight,
        c.last_before_kill
    );
    assert_eq!(c.delivered + c.lost_in_flight.len(), c.served as usize);
    assert!(c.lost_in_flight.len() <= KILLS);
}
