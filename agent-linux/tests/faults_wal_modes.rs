//! Issue 17, the WAL's two modes through the real binary: `append` writes
//! every record before it is sent; `spill` holds records in memory and
//! writes only what the receiver has not taken in time, when it fails, and
//! on SIGTERM. Counts, not timings: bytes appended, records spilled by
//! reason, scrapes delivered and lost.
//!
//! The target counts its scrapes and serves the count, so every delivered
//! value names the scrape it came from (see faults_kill_loop.rs for what
//! "served" means at a kill: the last scrape served may not be committed).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use outpost_core::plan::{Fsync, Plan, Spill, WalMode};
use outpost_test_support::{
    assert_each_scrape_once_in_order, get_metrics, log_text, metric_sum, outpost, wait_for, write_plan,
    CountingTarget, PlanBuilder, Prometheus, RecordingReceiver, SlowReceiver,
};

const SCRAPE: &str = "flash_scrape";
const INTERVAL_MS: u32 = 500;

fn counter_body(n: u64) -> String {
    format!("# TYPE {SCRAPE} counter\n{SCRAPE} {n}\n")
}

fn spill(after_ms: u32) -> WalMode {
    WalMode::Spill(Spill {
        after_ms,
        max_held_bytes: 4 << 20,
    })
}

fn plan(receiver_url: &str, wal_dir: &Path, target: &CountingTarget, mode: WalMode, cluster: &str) -> Plan {
    PlanBuilder::new()
        .receiver_url(receiver_url)
        .external_labels(&[("cluster", cluster)])
        .wal_dir(wal_dir)
        .fsync(Fsync::IntervalMs(1_000))
        .wal_mode(mode)
        // A slow or hung receiver is slow, not failing.
        .remote_timeout_ms(120_000)
        .scrape_job("testapp", &[target.address()])
        .job_timing(INTERVAL_MS, 400)
        .build()
}

/// A receiver that accepts connections and never answers.
struct HungReceiver {
    port: u16,
}

impl HungReceiver {
    fn start() -> HungReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        // Detached: it holds the connections open until the test process ends.
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                held.lock().unwrap().push(stream);
            }
        });
        HungReceiver { port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1/write", self.port)
    }
}

/// Scrape number -> times delivered, from every POST the receiver accepted.
fn delivered(receiver: &RecordingReceiver) -> BTreeMap<u64, u32> {
    let mut out = BTreeMap::new();
    for r in receiver.seen.lock().unwrap().iter().filter(|r| r.status == 200) {
        let request = r.request.as_ref().expect("every POST decodes");
        for t in request
            .timeseries
            .iter()
            .filter(|t| t.label("__name__") == Some(SCRAPE))
        {
            for s in &t.samples {
                *out.entry(s.value as u64).or_insert(0) += 1;
            }
        }
    }
    out
}

fn wal_files(dir: &Path) -> (usize, u64) {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".wal"))
                .fold((0, 0), |(n, b), e| (n + 1, b + e.metadata().unwrap().len()))
        })
        .unwrap_or((0, 0))
}

fn metric(port: u16, name: &str, labels: &[&str]) -> f64 {
    metric_sum(&get_metrics(port).unwrap_or_default(), name, labels)
}

fn spilled(port: u16, reason: &str) -> f64 {
    metric(
        port,
        "outpost_wal_spilled_records_total",
        &[&format!("reason=\"{reason}\"")],
    )
}

/// The number in the first result of an instant query's JSON answer.
fn first_value(body: &str) -> Option<f64> {
    let at = body.find("\"value\":[")?;
    let rest = &body[at..];
    let start = rest.find(",\"")? + 2;
    let end = start + rest[start..].find('"')?;
    rest[start..end].parse().ok()
}

struct HealthyRun {
    served: u64,
    bytes_appended: f64,
    records_appended: f64,
    fsyncs: f64,
    samples_sent: f64,
    wal_files_after_stop: usize,
    ack_floor_written: bool,
}

/// Runs the agent in `mode` against a real Prometheus until the target has
/// served a dozen scrapes, checks that Prometheus has every one, and
/// counts what the WAL wrote.
fn healthy_run(prom: &Prometheus, dir: &Path, mode: WalMode, cluster: &str) -> HealthyRun {
    let target = CountingTarget::start(counter_body);
    let wal_dir = dir.join(cluster);
    let plan_path = write_plan(
        dir,
        &format!("{cluster}.plan"),
        &plan(&prom.write_url(), &wal_dir, &target, mode, cluster),
    );
    let log = dir.join(format!("{cluster}.log"));
    let (mut agent, port) = outpost!().start_ready(&plan_path, "flash", &log, cluster);
    wait_for("a dozen scrapes", Duration::from_secs(30), || {
        (target.served() >= 12).then_some(())
    });
    let served = target.stop();
    // Every served scrape, exactly once: as many samples as scrapes, and their
    // values 1..=served add up.
    let selector = format!("{SCRAPE}{{cluster=\"{cluster}\"}}[10m]");
    wait_for("Prometheus has every scrape", Duration::from_secs(30), || {
        let count = first_value(&prom.query(&format!("count_over_time({selector})")))?;
        let sum = first_value(&prom.query(&format!("sum_over_time({selector})")))?;
        (count == served as f64 && sum == (served * (served + 1) / 2) as f64).then_some(())
    });
    let samples_sent = wait_for("nothing pending", Duration::from_secs(10), || {
        let body = get_metrics(port)?;
        (metric_sum(&body, "prometheus_remote_storage_samples_pending", &[]) == 0.0)
            .then(|| metric_sum(&body, "prometheus_remote_storage_succeeded_samples_total", &[]))
    });
    let body = get_metrics(port).unwrap();
    let run = HealthyRun {
        served,
        bytes_appended: metric_sum(&body, "outpost_wal_bytes_appended_total", &[]),
        records_appended: metric_sum(&body, "outpost_wal_records_appended_total", &[]),
        fsyncs: metric_sum(&body, "outpost_wal_fsyncs_total", &[]),
        samples_sent,
        wal_files_after_stop: 0,
        ack_floor_written: false,
    };
    let status = agent.terminate(Duration::from_secs(15)).expect("exit on SIGTERM");
    assert!(status.success(), "{}", log_text(&log));
    HealthyRun {
        wal_files_after_stop: wal_files(&wal_dir).0,
        ack_floor_written: wal_dir.join("ack_floor").exists(),
        ..run
    }
}

#[test]
fn with_a_healthy_receiver_spill_mode_writes_nothing_and_delivers_everything() {
    let dir = tempfile::tempdir().unwrap();
    let Some(prom) = Prometheus::start(&dir.path().join("prom")) else {
        return;
    };
    let s = healthy_run(&prom, dir.path(), spill(30_000), "flash-spill");
    let a = healthy_run(&prom, dir.path(), WalMode::Append, "flash-append");
    for (mode, r) in [("spill", &s), ("append", &a)] {
        eprintln!(
            "{mode}: {} scrapes delivered to Prometheus, {} samples sent, WAL: {} records, {} bytes \
             ({:.2} bytes per sample sent), {} fsyncs",
            r.served,
            r.samples_sent,
            r.records_appended,
            r.bytes_appended,
            r.bytes_appended / r.samples_sent,
            r.fsyncs
        );
    }
    assert_eq!(s.bytes_appended, 0.0, "spill mode wrote to its WAL");
    assert_eq!(s.records_appended, 0.0);
    assert_eq!(s.fsyncs, 0.0, "nothing written, nothing to sync");
    assert_eq!(
        s.wal_files_after_stop, 0,
        "SIGTERM with nothing unacknowledged writes nothing"
    );
    assert!(!s.ack_floor_written, "no record on disk needs an ack floor");
    // The same load in append mode writes every record: the measure works.
    assert!(a.records_appended > 0.0 && a.bytes_appended > 0.0);
    assert!(a.fsyncs > 0.0);
}

#[test]
fn a_slow_receiver_gets_only_its_slow_batches_spilled_then_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let target = CountingTarget::start(counter_body);
    let receiver = SlowReceiver::start(0);
    let wal_dir = dir.path().join("wal");
    let plan_path = write_plan(
        dir.path(),
        "plan.bin",
        &plan(&receiver.url(), &wal_dir, &target, spill(1_500), "flash-slow"),
    );
    let log = dir.path().join("agent.log");
    let (mut agent, port) = outpost!().start_ready(&plan_path, "flash", &log, "slow receiver");
    let appended = |port| metric(port, "outpost_wal_records_appended_total", &[]);

    // Fast: nothing is written.
    wait_for("four scrapes delivered", Duration::from_secs(20), || {
        (receiver.values_of(SCRAPE).values().next().map_or(0, |v| v.len()) >= 4).then_some(())
    });
    assert_eq!(appended(port), 0.0, "{}", log_text(&log));

    // Slow: answers take longer than the spill window; what waits that long is written.
    receiver.delay_ms.store(4_000, Ordering::SeqCst);
    wait_for("a record spilled for its age", Duration::from_secs(30), || {
        (spilled(port, "age") >= 2.0).then_some(())
    });
    receiver.delay_ms.store(0, Ordering::SeqCst);

    // Fast again: the spilled records are delivered and deleted, and nothing more is written.
    let settled = wait_for("the WAL drained", Duration::from_secs(30), || {
        let body = get_metrics(port)?;
        let pending = metric_sum(&body, "prometheus_remote_storage_samples_pending", &[]);
        let wal_bytes = metric_sum(&body, "outpost_wal_bytes", &[]);
        let held = metric_sum(&body, "outpost_wal_held_records", &[]);
        (pending == 0.0 && wal_bytes == 0.0 && held <= 2.0)
            .then(|| metric_sum(&body, "outpost_wal_records_appended_total", &[]))
    });
    let served_then = target.served();
    wait_for("six more scrapes", Duration::from_secs(20), || {
        (target.served() >= served_then + 6).then_some(())
    });
    let body = get_metrics(port).unwrap();
    let appended_end = metric_sum(&body, "outpost_wal_records_appended_total", &[]);
    assert_eq!(
        appended_end, settled,
        "records written once the receiver was fast again"
    );
    let by_reason: Vec<(&str, f64)> = ["age", "memory", "receiver", "backlog", "shutdown"]
        .into_iter()
        .map(|r| {
            let n = metric_sum(
                &body,
                "outpost_wal_spilled_records_total",
                &[&format!("reason=\"{r}\"")],
            );
            (r, n)
        })
        .collect();
    eprintln!("slow receiver: records written {appended_end}, by reason {by_reason:?}");
    // Every record written was a spill, and only for its age: the receiver never failed.
    let total: f64 = by_reason.iter().map(|(_, n)| n).sum();
    assert_eq!(total, appended_end, "{by_reason:?}");
    assert_eq!(total, by_reason[0].1, "{by_reason:?}");
    assert_eq!(
        wal_files(&wal_dir).1,
        0,
        "the spilled records were deleted once acknowledged"
    );

    let status = agent.terminate(Duration::from_secs(15)).expect("exit on SIGTERM");
    assert!(status.success(), "{}", log_text(&log));
    let scrapes = assert_each_scrape_once_in_order(&receiver.values_of(SCRAPE), 1);
    assert!(scrapes >= 12, "{scrapes} scrapes");
}

#[test]
fn an_outage_in_spill_mode_writes_through_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let target = CountingTarget::start(counter_body);
    let (receiver, receiver_up) = RecordingReceiver::switchable();
    let wal_dir = dir.path().join("wal");
    let plan_path = write_plan(
        dir.path(),
        "plan.bin",
        &plan(&receiver.url(), &wal_dir, &target, spill(30_000), "flash-outage"),
    );
    let log = dir.path().join("agent.log");
    let (mut agent, port) = outpost!().start_ready(&plan_path, "flash", &log, "outage");
    wait_for("eight scrapes in the outage", Duration::from_secs(30), || {
        (target.served() >= 8).then_some(())
    });
    let body = get_metrics(port).unwrap();
    assert!(
        metric_sum(
            &body,
            "outpost_wal_spilled_records_total",
            &["reason=\"receiver\""]
        ) >= 4.0,
        "{body}"
    );
    assert!(wal_files(&wal_dir).1 > 0, "the outage's records are on disk");
    receiver_up.store(true, Ordering::SeqCst);
    let checked = target.served();
    wait_for("every scrape delivered", Duration::from_secs(60), || {
        let got = delivered(&receiver);
        (1..checked).all(|n| got.contains_key(&n)).then_some(())
    });
    wait_for("the WAL drained", Duration::from_secs(30), || {
        (metric(port, "outpost_wal_bytes", &[]) == 0.0).then_some(())
    });
    let status = agent.terminate(Duration::from_secs(15)).expect("exit on SIGTERM");
    assert!(status.success(), "{}", log_text(&log));
    let got = delivered(&receiver);
    let twice: Vec<_> = got.iter().filter(|(_, t)| **t > 1).collect();
    assert!(twice.is_empty(), "delivered twice: {twice:?}");
}

#[test]
fn sigterm_in_spill_mode_writes_what_is_unacknowledged_and_a_restart_delivers_it() {
    let dir = tempfile::tempdir().unwrap();
    let target = CountingTarget::start(counter_body);
    let hung = HungReceiver::start();
    let wal_dir = dir.path().join("wal");
    let plan_path = write_plan(
        dir.path(),
        "hung.plan",
        &plan(&hung.url(), &wal_dir, &target, spill(60_000), "flash-term"),
    );
    let log = dir.path().join("first.log");
    let (mut agent, port) = outpost!().start_ready(&plan_path, "flash", &log, "first run");
    wait_for("six scrapes held", Duration::from_secs(30), || {
        (metric(port, "outpost_wal_held_records", &[]) >= 6.0).then_some(())
    });
    assert_eq!(metric(port, "outpost_wal_records_appended_total", &[]), 0.0);
    let served_at_term = target.served();
    let status = agent.terminate(Duration::from_secs(20)).expect("exit on SIGTERM");
    assert!(status.success(), "{}", log_text(&log));
    let (files, bytes) = wal_files(&wal_dir);
    assert!(files >= 1 && bytes > 0, "nothing on disk after SIGTERM");
    assert!(log_text(&log).contains("outpost stopped"));

    let receiver = RecordingReceiver::start(Box::new(|_| (200, Vec::new())));
    let plan_path = write_plan(
        dir.path(),
        "up.plan",
        &plan(&receiver.url(), &wal_dir, &target, spill(60_000), "flash-term"),
    );
    let log = dir.path().join("second.log");
    let (mut agent, port) = outpost!().start_ready(&plan_path, "flash", &log, "second run");
    // The scrape in progress at SIGTERM is abandoned: the last one served may be missing.
    wait_for(
        "every scrape before SIGTERM delivered",
        Duration::from_secs(30),
        || {
            let got = delivered(&receiver);
            (1..served_at_term).all(|n| got.contains_key(&n)).then_some(())
        },
    );
    assert!(metric(port, "outpost_wal_replayed_samples_total", &[]) > 0.0);
    let status = agent.terminate(Duration::from_secs(15)).expect("exit on SIGTERM");
    assert!(status.success(), "{}", log_text(&log));
}

/// Kills the agent with -9 while its receiver hangs (every record is
/// unacknowledged), restarts it against a receiver that answers, and gives
/// the scrapes served before the kill that never arrived.
fn lost_to_kill_9(mode: WalMode, cluster: &str) -> (u64, Vec<u64>) {
    let dir = tempfile::tempdir().unwrap();
    let target = CountingTarget::start(counter_body);
    let hung = HungReceiver::start();
    let wal_dir = dir.path().join("wal");
    let plan_path = write_plan(
        dir.path(),
        "hung.plan",
        &plan(&hung.url(), &wal_dir, &target, mode, cluster),
    );
    let log = dir.path().join("first.log");
    let (mut agent, port) = outpost!().start_ready(&plan_path, "flash", &log, "first run");
    wait_for("sixteen scrapes", Duration::from_secs(30), || {
        (target.served() >= 16).then_some(())
    });
    if let WalMode::Spill(_) = mode {
        assert!(
            spilled(port, "age") >= 1.0,
            "nothing older than the spill window was written"
        );
    }
    agent.kill();
    let served_at_kill = target.served();

    let receiver = RecordingReceiver::start(Box::new(|_| (200, Vec::new())));
    let plan_path = write_plan(
        dir.path(),
        "up.plan",
        &plan(&receiver.url(), &wal_dir, &target, mode, cluster),
    );
    let log = dir.path().join("second.log");
    let (mut agent, _) = outpost!().start_ready(&plan_path, "flash", &log, "second run");
    // The WAL is sent before anything new: once the new run's scrapes arrive, the replay is done.
    let after = target.served();
    wait_for("the new run's scrapes delivered", Duration::from_secs(30), || {
        let got = delivered(&receiver);
        (got.range(after + 2..).count() >= 2).then_some(())
    });
    let status = agent.terminate(Duration::from_secs(15)).expect("exit on SIGTERM");
    assert!(status.success(), "{}", log_text(&log));
    let got = delivered(&receiver);
    let lost: Vec<u64> = (1..=served_at_kill).filter(|n| !got.contains_key(n)).collect();
    (served_at_kill, lost)
}

#[test]
fn kill_9_loses_nothing_in_append_mode_and_at_most_the_spill_window_in_spill_mode() {
    const SPILL_AFTER_MS: u32 = 3_000;
    let (served_a, lost_a) = lost_to_kill_9(WalMode::Append, "flash-kill-append");
    let (served_s, lost_s) = lost_to_kill_9(spill(SPILL_AFTER_MS), "flash-kill-spill");
    eprintln!(
        "kill -9 with the receiver hanging: append mode lost {} of {served_a} scrapes {lost_a:?}; \
         spill mode ({SPILL_AFTER_MS} ms window, a scrape every {INTERVAL_MS} ms) lost {} of {served_s} {lost_s:?}",
        lost_a.len(),
        lost_s.len()
    );
    // Append mode: at most the scrape in progress at the kill.
    assert!(
        lost_a.iter().all(|&n| n == served_a),
        "append mode lost completed scrapes: {lost_a:?} of {served_a}"
    );
    // Spill mode: only the newest scrapes, those held for less than the window (and the one in
    // progress).
    let window = u64::from(SPILL_AFTER_MS / INTERVAL_MS) + 1;
    assert!(
        lost_s.iter().all(|&n| n + window >= served_s),
        "spill mode lost scrapes older than its window: {lost_s:?} of {served_s}"
    );
    let lost_set: BTreeSet<u64> = lost_s.iter().copied().collect();
    assert!(
        lost_set.len() as u64 <= window,
        "{} lost, the window holds {window}",
        lost_set.len()
    );
}
