//! Issue 10, a really full disk: the WAL directory is a small tmpfs in the
//! agent's own mount namespace and `wal.max_bytes` is far larger than it, so
//! the byte bound never fires and appends hit ENOSPC. The receiver answers
//! 503 meanwhile, so nothing is acknowledged and the disk stays full.
//!
//! What must hold: the agent stays up and keeps scraping, every batch it
//! cannot write is counted with a reason, and once the receiver accepts
//! again the WAL drains, acknowledged segments free the disk and appends
//! resume, with every appended batch delivered.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use outpost_core::plan::Queue;
use outpost_test_support::{
    cannot_unshare_mounts, free_port, get_metrics, http_get, log_text, metric_sum, outpost, wait_for,
    write_plan, ChildGuard, PlanBuilder, RecordingReceiver, TargetServer, WriteRequest, QUEUE,
};

const TMPFS_BYTES: u64 = 256 * 1024;
/// Several segments fit in the tmpfs, so acknowledged ones can be deleted
/// while the newest one is still being appended to.
const SEGMENT_BYTES: u32 = 32 * 1024;
/// Far above the tmpfs: the byte bound (reason `wal_full`) must never fire.
const WAL_MAX_BYTES: u64 = 64 << 20;
const SERIES_PER_TARGET: usize = 800;

/// Runs the real agent with `wal_dir` replaced, for it alone, by a tmpfs of
/// `tmpfs_bytes`; the mount dies with the agent's namespace.
fn start_outpost_on_tmpfs(plan: &Path, listen_port: u16, wal_dir: &Path, log: &Path) -> ChildGuard {
    // unshare and sh both exec, so the guard's pid is the agent's own.
    ChildGuard::spawn_logged(
        Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(r#"mount -t tmpfs -o "size=$1" tmpfs "$2" && exec "$3" run --plan "$4" --listen "$5" --node-name disk-full-node --log-level info"#)
            .arg("sh")
            .arg(TMPFS_BYTES.to_string())
            .arg(wal_dir)
            .arg(outpost!().binary())
            .arg(plan)
            .arg(format!("127.0.0.1:{listen_port}")),
        log,
    )
}

/// Series with distinct hex label values, so snappy cannot shrink a batch
/// much and a few scrapes fill the tmpfs.
fn wide_body(series: usize) -> String {
    let mut body = String::from("# TYPE disk_fill_bytes gauge\n");
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..series {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        body.push_str(&format!(
            "disk_fill_bytes{{shard=\"{i}\",checksum=\"{x:016x}{:016x}\"}} {}\n",
            x.rotate_left(29),
            x % 1_000_003
        ));
    }
    body
}

/// Identity of a delivered batch: its samples' series and timestamps, so a
/// batch sent twice is counted once.
fn batch_identity(w: &WriteRequest) -> String {
    let mut points: Vec<String> = w
        .timeseries
        .iter()
        .flat_map(|t| {
            t.samples
                .iter()
                .map(move |s| format!("{}@{}", t.key(), s.timestamp))
        })
        .collect();
    points.sort_unstable();
    points.join(";")
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

#[test]
fn enospc_in_wal_counts_drops_keeps_scraping_and_recovers_after_acks() {
    if let Some(why) = cannot_unshare_mounts() {
        eprintln!("skipped: {why}");
        return;
    }
    disk_full_then_receiver_back(SEGMENT_BYTES);
}

/// The same disk, filled by one segment that never reaches `segment_bytes`.
/// The agent must move on to a new segment on ENOSPC so that the old one
/// can be deleted (acknowledged) or dropped (oldest data); a WAL that only
/// rolled at `segment_bytes` would fail every append for ever.
#[test]
fn enospc_recovers_when_one_segment_is_larger_than_the_disk() {
    if let Some(why) = cannot_unshare_mounts() {
        eprintln!("skipped: {why}");
        return;
    }
    disk_full_then_receiver_back(1 << 20);
}

fn disk_full_then_receiver_back(segment_bytes: u32) {
    let dir = tempfile::tempdir().unwrap();
    let wal_dir = dir.path().join("wal");
    std::fs::create_dir_all(&wal_dir).unwrap();
    let target = TargetServer::start(wide_body(SERIES_PER_TARGET));
    let (receiver, receiver_up) = RecordingReceiver::switchable();
    // The same target twice (two instance names) doubles the write rate.
    let targets = [target.address(), format!("localhost:{}", target.port)];
    let plan = PlanBuilder::new()
        .receiver_url(&receiver.url())
        .external_labels(&[("cluster", "disk-full")])
        .wal_dir(&wal_dir)
        .wal_bounds(WAL_MAX_BYTES, segment_bytes)
        .queue(Queue {
            max_batch_bytes: SEGMENT_BYTES,
            capacity: 20_000,
            ..QUEUE
        })
        .scrape_job("testapp", &targets)
        .build();
    let plan_path = write_plan(dir.path(), "plan.bin", &plan);
    let log = dir.path().join("agent.log");
    let port = free_port();
    let mut agent = start_outpost_on_tmpfs(&plan_path, port, &wal_dir, &log);
    let check_alive = |agent: &mut ChildGuard, when: &str| {
        assert!(agent.is_running(), "the agent exited {when}\n{}", log_text(&log));
    };
    wait_for("agent /metrics", Duration::from_secs(20), || {
        check_alive(&mut agent, "at start-up");
        get_metrics(port)
    });

    // 1. Fill the disk: a batch that cannot be written is dropped and counted.
    let dropped_total = |body: &str| metric_sum(body, "prometheus_remote_storage_samples_dropped_total", &[]);
    let at_enospc = wait_for(
        "a WAL append to fail with ENOSPC",
        Duration::from_secs(40),
        || {
            check_alive(&mut agent, "while the WAL filled");
            let body = get_metrics(port)?;
            (dropped_total(&body) > 0.0).then_some(body)
        },
    );
    let wal_bytes_at_enospc = metric_sum(&at_enospc, "outpost_wal_bytes", &[]);
    let appended_at_enospc = metric_sum(&at_enospc, "outpost_wal_records_appended_total", &[]);
    // A full disk gets the byte bound's policy: the oldest segment goes,
    // counted as `wal_full`, and the new batch is written.
    let by_reason = |body: &str, reason: &str| {
        metric_sum(
            body,
            "prometheus_remote_storage_samples_dropped_total",
            &[&format!("reason=\"{reason}\"")],
        )
    };
    assert_eq!(
        by_reason(&at_enospc, "wal_full"),
        dropped_total(&at_enospc),
        "every drop while the disk is full is the oldest data, by policy\n{at_enospc}"
    );
    assert_eq!(
        by_reason(&at_enospc, "wal_corrupt"),
        0.0,
        "no batch was lost to a failed write"
    );
    assert!(
        wal_bytes_at_enospc <= TMPFS_BYTES as f64,
        "the WAL claims {wal_bytes_at_enospc} bytes on a {TMPFS_BYTES}-byte tmpfs"
    );
    let log_now = log_text(&log);
    assert!(
        log_now.contains("No space left on device"),
        "the append error names ENOSPC\n{log_now}"
    );

    // 2. While full, the agent is healthy, keeps scraping and keeps counting.
    let scrapes = |body: &str| metric_sum(body, "outpost_target_scrapes_total", &["job=\"testapp\""]);
    let scrapes_at_enospc = scrapes(&at_enospc);
    let dropped_at_enospc = dropped_total(&at_enospc);
    let still_full = wait_for(
        "more scrapes and more drops on the full disk",
        Duration::from_secs(20),
        || {
            check_alive(&mut agent, "on the full disk");
            let body = get_metrics(port)?;
            (scrapes(&body) >= scrapes_at_enospc + 4.0 && dropped_total(&body) > dropped_at_enospc)
                .then_some(body)
        },
    );
    assert_eq!(
        http_get(port, "/-/healthy").map(|(s, _)| s),
        Some(200),
        "/-/healthy on the full disk"
    );
    let up_failures = metric_sum(&still_full, "outpost_target_scrape_failures_total", &[]);
    assert_eq!(up_failures, 0.0, "scrapes themselves do not fail\n{still_full}");
    let dropped_while_full = dropped_total(&still_full);
    assert!(
        metric_sum(&still_full, "outpost_wal_bytes", &[]) <= TMPFS_BYTES as f64,
        "WAL size on the full disk\n{still_full}"
    );
    assert!(
        receiver.seen.lock().unwrap().iter().all(|r| r.status == 503),
        "nothing was accepted while the receiver was down"
    );

    // 3. The receiver comes back: the WAL drains, acks free the disk and
    // appends resume.
    let flip = get_metrics(port).unwrap();
    let appended_at_flip = metric_sum(&flip, "outpost_wal_records_appended_total", &[]);
    let flip_ms = now_ms();
    receiver_up.store(true, Ordering::SeqCst);
    let accepted = |receiver: &RecordingReceiver| -> (usize, usize) {
        let seen = receiver.seen.lock().unwrap();
        let mut batches = HashSet::new();
        let mut samples = 0;
        for r in seen.iter().filter(|r| r.status == 200) {
            let w = r
                .request
                .as_ref()
                .unwrap_or_else(|e| panic!("POST #{} does not decode: {e}", r.sequence));
            if batches.insert(batch_identity(w)) {
                samples += w.timeseries.iter().map(|t| t.samples.len()).sum::<usize>();
            }
        }
        (batches.len(), samples)
    };
    // Drained: everything the WAL took is delivered (each record is one
    // POST), and after the flip more records were appended than filled the
    // tmpfs the first time, which cannot fit unless acknowledged segments
    // were deleted.
    let resume_target = appended_at_flip + appended_at_enospc;
    let mut last_seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(45);
    let (drained, batches, samples) = loop {
        check_alive(&mut agent, "after the receiver came back");
        if let Some(body) = get_metrics(port) {
            let appended = metric_sum(&body, "outpost_wal_records_appended_total", &[]);
            let pending = metric_sum(&body, "prometheus_remote_storage_samples_pending", &[]);
            let (batches, samples) = accepted(&receiver);
            let wal_bytes = metric_sum(&body, "outpost_wal_bytes", &[]);
            if pending == 0.0 && appended >= resume_target && wal_bytes < TMPFS_BYTES as f64 {
                break (body, batches, samples);
            }
            last_seen = format!(
                "records appended {appended} (want {resume_target}), distinct batches accepted {batches}, \
                 samples pending {pending}, WAL bytes {wal_bytes}, samples dropped {}",
                dropped_total(&body)
            );
        }
        assert!(
            Instant::now() < deadline,
            "45 s after the receiver came back the WAL has not drained and resumed: {last_seen}\n{}",
            log_text(&log)
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join("\n")
        );
        thread::sleep(Duration::from_millis(200));
    };
    let appended_final = metric_sum(&drained, "outpost_wal_records_appended_total", &[]);
    let succeeded = metric_sum(&drained, "prometheus_remote_storage_succeeded_samples_total", &[]);
    assert_eq!(
        succeeded as usize, samples,
        "the agent's count of delivered samples"
    );
    // Records dropped by policy while the disk was full never reach the
    // receiver; the ones still in the WAL at the flip all do (pending is 0
    // and nothing was dropped for any other reason, checked below).
    assert!(batches > 0, "the WAL drained to the receiver");
    let before_flip: usize = receiver
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.status == 200)
        .filter_map(|r| r.request.as_ref().ok())
        .flat_map(|w| &w.timeseries)
        .flat_map(|t| &t.samples)
        // Scraped before the receiver came back. The WAL's one segment is
        // larger than the disk, so a full disk drops all but the newest
        // records, and the flip may come right after such a drop: only the
        // newest scrape is certain to be in the WAL then.
        .filter(|s| s.timestamp < flip_ms)
        .count();
    assert!(
        before_flip > 0,
        "samples scraped while the disk was full were delivered"
    );
    for reason in ["wal_corrupt", "http_4xx", "http_other", "too_old"] {
        assert_eq!(
            by_reason(&drained, reason),
            0.0,
            "dropped for {reason}\n{drained}"
        );
    }

    // 4. With room on disk again no further batch is lost.
    let dropped_after_drain = dropped_total(&drained);
    thread::sleep(Duration::from_secs(3));
    let later = get_metrics(port).unwrap();
    check_alive(&mut agent, "at the end");
    assert_eq!(
        dropped_total(&later),
        dropped_after_drain,
        "drops continued after the disk had room\n{}",
        log_text(&log)
    );
    assert!(metric_sum(&later, "outpost_wal_records_appended_total", &[]) > appended_final);
    let status = agent.terminate(Duration::from_secs(15)).expect("exit on SIGTERM");
    assert!(status.success(), "exit status {status:?}\n{}", log_text(&log));
    eprintln!(
        "tmpfs {TMPFS_BYTES} B, segment {segment_bytes} B, wal.max_bytes {WAL_MAX_BYTES} B; \
         at first ENOSPC: WAL {wal_bytes_at_enospc} B, {appended_at_enospc} records appended; \
         dropped (wal_full) {dropped_at_enospc} samples at first sight, {dropped_while_full} before the flip, \
         {dropped_after_drain} in all; records appended at flip {appended_at_flip}, at drain {appended_final}; \
         accepted {batches} distinct batches = {samples} samples (succeeded {succeeded}), \
         of which {before_flip} samples scraped before the flip"
    );
}
