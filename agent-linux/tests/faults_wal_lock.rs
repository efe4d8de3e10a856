//! Issue 21, one owner per WAL directory, with the real binary: a second
//! agent on a running agent's WAL directory is refused at once, with exit
//! code 3 and an error naming the directory and the holder's pid; with
//! `--wal-lock-wait` it takes over when the first one stops; and after
//! `kill -9` of the holder a new agent starts at once and replays the WAL.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use outpost_test_support::{
    free_port, get_metrics, log_text, metric_sum, outpost, wait_for, write_plan, ChildGuard, CountingTarget,
    PlanBuilder, RecordingReceiver,
};

/// What the binary promises for a held WAL directory (`outpost --help`).
const EXIT_WAL_LOCKED: i32 = 3;

fn counter_body(n: u64) -> String {
    format!("# TYPE lock_test_counter counter\nlock_test_counter {n}\n")
}

/// Waits until the agent on `port` answers and has written `records` WAL
/// records in this run; its /metrics then.
fn wait_appending(agent: &mut ChildGuard, port: u16, records: f64, log: &Path, what: &str) -> String {
    wait_for(what, Duration::from_secs(20), || {
        assert!(agent.is_running(), "{what}: the agent exited\n{}", log_text(log));
        let body = get_metrics(port)?;
        (metric_sum(&body, "outpost_wal_records_appended_total", &[]) >= records).then_some(body)
    })
}

#[test]
fn one_agent_per_wal_directory() {
    let dir = tempfile::tempdir().unwrap();
    let wal_dir = dir.path().join("wal");
    let target = CountingTarget::start(counter_body);
    // The receiver is down all along: the WAL only grows, so each start
    // has something to replay.
    let (receiver, receiver_up) = RecordingReceiver::switchable();
    let plan = PlanBuilder::new()
        .receiver_url(&receiver.url())
        .external_labels(&[("cluster", "lock-test")])
        .wal_dir(&wal_dir)
        .scrape_job("testapp", &[target.address()])
        .build();
    let plan_path = write_plan(dir.path(), "plan.bin", &plan);

    // 1. The first agent owns the directory.
    let first_log = dir.path().join("first.log");
    let first_port = free_port();
    let mut first = outpost!().start(&plan_path, first_port, "lock-node", &first_log);
    wait_appending(&mut first, first_port, 2.0, &first_log, "the first agent appends");
    let first_pid = first.pid();

    // 2. A second one is refused at once, naming the directory and the holder.
    let second_log = dir.path().join("second.log");
    let mut second = outpost!().start(&plan_path, free_port(), "lock-node", &second_log);
    let code = second.wait_exit(Duration::from_secs(10)).and_then(|s| s.code());
    let err = log_text(&second_log);
    assert_eq!(code, Some(EXIT_WAL_LOCKED), "second agent: {err}");
    assert!(
        err.contains(&wal_dir.display().to_string()),
        "names the directory: {err}"
    );
    assert!(
        err.contains(&format!("pid {first_pid}")),
        "names the holder: {err}"
    );
    assert!(
        first.is_running(),
        "the first agent is untouched\n{}",
        log_text(&first_log)
    );
    let body = get_metrics(first_port).unwrap();
    assert_eq!(
        metric_sum(&body, "outpost_wal_corruptions_total", &[]),
        0.0,
        "{body}"
    );

    // 3. A third one waits for the lock; SIGTERM of the first hands over.
    let third_log = dir.path().join("third.log");
    let third_port = free_port();
    let mut third = outpost!().start_with(
        &plan_path,
        third_port,
        "lock-node",
        &third_log,
        &["--wal-lock-wait", "30s"],
    );
    std::thread::sleep(Duration::from_millis(1_500));
    assert!(
        third.is_running(),
        "the waiting agent gave up\n{}",
        log_text(&third_log)
    );
    assert!(
        get_metrics(third_port).is_none(),
        "the waiting agent must not run yet"
    );
    // Nothing is acknowledged: what the first agent's sender holds is in its WAL.
    let pending = |port: u16| {
        metric_sum(
            &get_metrics(port).unwrap(),
            "prometheus_remote_storage_samples_pending",
            &[],
        )
    };
    let written_by_first = pending(first_port);
    assert!(written_by_first > 0.0);
    let status = first
        .terminate(Duration::from_secs(15))
        .expect("first agent stops");
    assert!(status.success(), "{}", log_text(&first_log));
    let body = wait_appending(
        &mut third,
        third_port,
        1.0,
        &third_log,
        "the waiting agent takes over",
    );
    let replayed = metric_sum(&body, "outpost_wal_replayed_samples_total", &[]);
    assert!(
        replayed >= written_by_first,
        "it replays what the first agent wrote: {replayed} samples of {written_by_first}"
    );

    // 4. kill -9 of the holder: the kernel releases the lock with the
    // process, so a new agent starts at once, with no wait, and replays.
    let before_kill = pending(third_port);
    assert!(before_kill > replayed, "the third agent wrote more");
    third.kill();
    let fourth_log = dir.path().join("fourth.log");
    let fourth_port = free_port();
    let started = Instant::now();
    let mut fourth = outpost!().start(&plan_path, fourth_port, "lock-node", &fourth_log);
    let body = wait_appending(
        &mut fourth,
        fourth_port,
        0.0,
        &fourth_log,
        "a new agent after kill -9",
    );
    let up_after = started.elapsed();
    let replayed = metric_sum(&body, "outpost_wal_replayed_samples_total", &[]);
    assert!(
        replayed >= before_kill,
        "replayed {replayed} samples, {before_kill} were written before the kill"
    );
    assert!(
        !log_text(&fourth_log).contains("in use by another outpost"),
        "{}",
        log_text(&fourth_log)
    );
    eprintln!(
        "second agent refused with exit code {code:?}: {}; after kill -9 a new agent answered in {} ms, \
         replaying {replayed} samples",
        err.trim(),
        up_after.as_millis()
    );

    // Everything written by the four runs still arrives once the receiver is back.
    receiver_up.store(true, Ordering::SeqCst);
    wait_for("the WAL drains", Duration::from_secs(30), || {
        let body = get_metrics(fourth_port)?;
        let pending = metric_sum(&body, "prometheus_remote_storage_samples_pending", &[]);
        let succeeded = metric_sum(&body, "prometheus_remote_storage_succeeded_samples_total", &[]);
        (pending == 0.0 && succeeded > 0.0).then_some(())
    });
    let status = fourth.terminate(Duration::from_secs(15)).expect("stops");
    assert!(status.success(), "{}", log_text(&fourth_log));
}
