//! Issue 10, crash faults: `kill -9` of the real agent while it appends to
//! its WAL (the receiver refuses with 503, so the WAL only grows), many
//! times over, with torn segment tails forced in between. Every restart must
//! come up, count the torn tail and keep going; once the receiver accepts,
//! a clean run must drain the WAL, and everything delivered must be intact.
//!
//! Remote write is at-least-once: a batch sent before a crash may be sent
//! again after it, so duplicates are allowed; what is asserted is what holds
//! whatever the crash timing was.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use outpost_test_support::{
    get_metrics, metric_sum, outpost, wait_for, write_plan, CountingTarget, PlanBuilder, RecordingReceiver,
};

const CRASH_ITERATIONS: usize = 15;
/// Iterations after whose kill the newest segment loses its last bytes, as
/// a power cut in the middle of a write would leave it.
const TORN_AFTER: [usize; 3] = [3, 8, 12];

/// `testapp_counter N` where N is the number of the scrape (1, 2, ...), so
/// any delivered value can be checked against what was really served.
fn counter_body(n: u64) -> String {
    format!("# TYPE testapp_counter counter\ntestapp_counter {n}\n")
}

/// xorshift64: the delays only need to differ between iterations; the seed
/// is printed so a failing sequence can be replayed by hand.
struct Delays(u64);

impl Delays {
    fn next_ms(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

/// Cuts `bytes` off the end of the newest non-empty segment; gives its name.
fn tear_newest_segment(wal_dir: &Path, bytes: u64) -> Option<String> {
    let mut segments: Vec<_> = std::fs::read_dir(wal_dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".wal"))
        .filter(|e| e.metadata().map(|m| m.len() > bytes * 4).unwrap_or(false))
        .collect();
    segments.sort_by_key(|e| e.file_name());
    let newest = segments.pop()?;
    let file = std::fs::OpenOptions::new().write(true).open(newest.path()).ok()?;
    let len = file.metadata().ok()?.len();
    file.set_len(len - bytes).ok()?;
    Some(newest.file_name().to_string_lossy().into_owned())
}

#[test]
fn kill_9_during_wal_writes_never_breaks_restart_and_clean_run_drains() {
    let dir = tempfile::tempdir().unwrap();
    let wal_dir = dir.path().join("wal");
    let target = CountingTarget::start(counter_body);
    // Down means 503: retryable, so every batch stays in the WAL until the end.
    let (receiver, receiver_up) = RecordingReceiver::switchable();
    let plan = PlanBuilder::new()
        .receiver_url(&receiver.url())
        .external_labels(&[("cluster", "crash-test")])
        .wal_dir(&wal_dir)
        .scrape_job("testapp", &[format!("127.0.0.1:{}", target.port)])
        .build();
    let plan_path = write_plan(dir.path(), "plan.bin", &plan);

    let seed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("delay seed {seed}");
    let mut delays = Delays(seed);
    let mut appended_before_kill = Vec::new();
    let mut corruptions_seen = 0.0;
    let mut torn_last = None;
    let mut replayed_at_start: Vec<f64> = Vec::new();
    for i in 0..CRASH_ITERATIONS {
        let log = dir.path().join(format!("agent-{i}.log"));
        let (mut agent, port) =
            outpost!().start_ready(&plan_path, "crash-node", &log, &format!("restart {i}"));
        let body = get_metrics(port).unwrap_or_default();
        let corruptions = metric_sum(&body, "outpost_wal_corruptions_total", &[]);
        let replayed = metric_sum(&body, "outpost_wal_replayed_samples_total", &[]);
        // Nothing is acknowledged while the receiver is down and SIGKILL
        // loses no written bytes, so each start finds strictly more than the
        // one before, unless the test tore the tail in between.
        if let (Some(before), None) = (replayed_at_start.last(), &torn_last) {
            assert!(
                replayed > *before,
                "restart {i}: replayed {replayed} samples, the start before found {before}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        replayed_at_start.push(replayed);
        if let Some(segment) = torn_last.take() {
            assert!(
                corruptions >= 1.0,
                "restart {i}: segment {segment} was torn but outpost_wal_corruptions_total is {corruptions}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        corruptions_seen += corruptions;
        // Kill only once this run is itself writing to the WAL.
        let appended = wait_for(
            &format!("run {i} appends to the WAL"),
            Duration::from_secs(20),
            || {
                let body = get_metrics(port)?;
                let n = metric_sum(&body, "outpost_wal_records_appended_total", &[]);
                (n >= 1.0).then_some(n)
            },
        );
        thread::sleep(Duration::from_millis(delays.next_ms(1_500)));
        assert!(
            agent.is_running(),
            "run {i} died on its own\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        agent.kill(); // SIGKILL
        appended_before_kill.push(appended);
        if TORN_AFTER.contains(&i) {
            torn_last = tear_newest_segment(&wal_dir, 5);
            assert!(
                torn_last.is_some(),
                "iteration {i}: no WAL segment to tear in {wal_dir:?}"
            );
        }
    }
    assert!(
        receiver.seen.lock().unwrap().iter().all(|r| r.status == 503),
        "the receiver accepted nothing while down"
    );

    // The clean run: receiver up, the WAL must drain.
    let served_before_final = target.served();
    receiver_up.store(true, Ordering::SeqCst);
    let log = dir.path().join("agent-final.log");
    let (mut agent, port) = outpost!().start_ready(&plan_path, "crash-node", &log, "final run");
    let first = get_metrics(port).unwrap_or_default();
    let replayed = metric_sum(&first, "outpost_wal_replayed_samples_total", &[]);
    if let Some(before) = replayed_at_start.last() {
        assert!(
            replayed > *before,
            "final start replayed {replayed}, the last crashed start {before}"
        );
    }
    let final_corruptions = metric_sum(&first, "outpost_wal_corruptions_total", &[]);
    assert!(replayed > 0.0, "the final run found nothing to replay\n{first}");
    let accepted_samples = |receiver: &RecordingReceiver| -> usize {
        receiver
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.status == 200)
            .filter_map(|r| r.request.as_ref().ok())
            .flat_map(|w| &w.timeseries)
            .map(|t| t.samples.len())
            .sum()
    };
    // The receiver records a batch before answering, so it is ahead of the
    // agent's counter only while an answer is in flight: poll for a quiet moment.
    let (succeeded, received) = wait_for("WAL drained and counts agree", Duration::from_secs(60), || {
        let body = get_metrics(port)?;
        let dropped = metric_sum(&body, "prometheus_remote_storage_samples_dropped_total", &[]);
        assert_eq!(dropped, 0.0, "the final run dropped samples\n{body}");
        let pending = metric_sum(&body, "prometheus_remote_storage_samples_pending", &[]);
        let succeeded = metric_sum(&body, "prometheus_remote_storage_succeeded_samples_total", &[]);
        let received = accepted_samples(&receiver);
        (pending == 0.0 && succeeded >= replayed && succeeded as usize == received)
            .then_some((succeeded, received))
    });
    let status = agent
        .terminate(Duration::from_secs(15))
        .expect("the final run did not exit on SIGTERM");
    assert!(
        status.success(),
        "final run exit status {status:?}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    // Nothing delivered is corrupt: every POST decodes, every counter value
    // was really served, and per series a later scrape never has a smaller
    // number (the WAL kept order) and one timestamp never has two values.
    let seen = receiver.seen.lock().unwrap();
    let served = target.served();
    let mut by_series: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
    let mut delivered = 0usize;
    for r in seen.iter().filter(|r| r.status == 200) {
        let request = r
            .request
            .as_ref()
            .unwrap_or_else(|e| panic!("POST #{} is corrupt: {e}", r.sequence));
        for t in &request.timeseries {
            assert_eq!(t.label("cluster"), Some("crash-test"), "{}", t.key());
            for s in &t.samples {
                delivered += 1;
                let previous = by_series.entry(t.key()).or_default().insert(s.timestamp, s.value);
                if let Some(p) = previous {
                    assert!(
                        p.to_bits() == s.value.to_bits(),
                        "{} at {}: delivered as {p} and as {}",
                        t.key(),
                        s.timestamp,
                        s.value
                    );
                }
            }
        }
    }
    let counter: Vec<(&String, &BTreeMap<i64, f64>)> = by_series
        .iter()
        .filter(|(k, _)| k.contains("\"testapp_counter\""))
        .collect();
    assert_eq!(
        counter.len(),
        1,
        "one testapp_counter series: {:?}",
        by_series.keys().collect::<Vec<_>>()
    );
    let points = counter[0].1;
    let mut previous = 0.0;
    for (ts, v) in points {
        assert!(
            v.fract() == 0.0 && *v >= 1.0 && *v <= served as f64,
            "testapp_counter at {ts} is {v}, never served (served 1..={served})"
        );
        assert!(
            *v > previous,
            "testapp_counter went from {previous} to {v} at {ts}"
        );
        previous = *v;
    }
    // Samples from the crashed runs came back from the WAL: counter values
    // served before the final run started are among those delivered.
    let from_crashed_runs = points
        .values()
        .filter(|v| **v <= served_before_final as f64)
        .count();
    let up_zero = by_series
        .iter()
        .filter(|(k, _)| k.starts_with("__name__=\"up\"") && k.contains("testapp"))
        .flat_map(|(_, p)| p.values())
        .filter(|v| **v == 0.0)
        .count();
    eprintln!(
        "crash runs {CRASH_ITERATIONS}, WAL records appended per run before kill {appended_before_kill:?}, \
         corruptions counted over restarts {corruptions_seen} (+{final_corruptions} at final start), \
         replayed at each start {replayed_at_start:?} then {replayed}, succeeded {succeeded}, received {received}, \
         delivered after SIGTERM {delivered}, distinct counter points {} of {served} served, \
         up==0 points for the target {up_zero}, points from the killed runs {from_crashed_runs} of {served_before_final} served to them",
        points.len()
    );
    assert!(
        corruptions_seen >= TORN_AFTER.len() as f64,
        "each torn tail was counted"
    );
    assert!(
        from_crashed_runs > 0,
        "none of the {served_before_final} scrapes served to the killed runs was delivered"
    );
}
