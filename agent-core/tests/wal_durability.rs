//! What a plan's WAL promises (`outpost_core::durability`): the loss windows
//! follow the mode and the fsync policy, and the outage covered is the WAL's
//! size over the worst-case ingest, which grows with every target.

use outpost_core::plan::{Fsync, Spill, WalMode};
use outpost_test_support::{PlanBuilder, LIMITS};

fn builder() -> PlanBuilder {
    PlanBuilder::new()
        .receiver_url("http://127.0.0.1:9/api/v1/write")
        .wal_dir(std::path::Path::new("/tmp/wal"))
}

const SPILL: WalMode = WalMode::Spill(Spill {
    after_ms: 30_000,
    max_held_bytes: 4 << 20,
});

#[test]
fn loss_windows_follow_the_mode_and_the_fsync_policy() {
    let window = |mode, fsync| {
        let w = builder().wal_mode(mode).fsync(fsync).build().loss_window();
        (w.crash_ms, w.power_ms)
    };
    // Append before send: a crash takes no completed scrape; a power loss what was not synced.
    assert_eq!(window(WalMode::Append, Fsync::Always), (0, Some(0)));
    assert_eq!(
        window(WalMode::Append, Fsync::IntervalMs(1_000)),
        (0, Some(1_000))
    );
    assert_eq!(window(WalMode::Append, Fsync::Never), (0, None));
    // Spill: what is held, up to the spill window, then as in append mode.
    assert_eq!(window(SPILL, Fsync::Always), (30_000, Some(30_000)));
    assert_eq!(window(SPILL, Fsync::IntervalMs(1_000)), (30_000, Some(31_000)));
    assert_eq!(window(SPILL, Fsync::Never), (30_000, None));
}

#[test]
fn the_outage_covered_is_the_wal_over_the_worst_case_ingest() {
    let alone = builder().wal_bounds(64 << 20, 1 << 20).build();
    let with_job = builder()
        .wal_bounds(64 << 20, 1 << 20)
        .scrape_job("app", &["127.0.0.1:1"])
        .job_timing(1_000, 500)
        .build();
    // The job at its sample limit every second: its series, the previous scrape's as staleness
    // markers, and up plus the four scrape_* series.
    let added = with_job.worst_case_ingest().samples_per_s - alone.worst_case_ingest().samples_per_s;
    assert_eq!(added, 2 * LIMITS.samples as u64 + 5);
    let ingest = with_job.worst_case_ingest();
    assert!(ingest.bytes_per_sample() >= 1);
    // The WAL holds its size less one segment (a full WAL drops a whole one) at that rate.
    let covered = with_job.outage_covered_ms();
    let held = (64u64 << 20) - (1 << 20);
    assert_eq!(covered, held * 1_000 / ingest.wal_bytes_per_s);
    // Twice the WAL, twice the outage (to the millisecond's rounding).
    let bigger = builder()
        .wal_bounds(2 * (64 << 20) - (1 << 20), 1 << 20)
        .scrape_job("app", &["127.0.0.1:1"])
        .job_timing(1_000, 500)
        .build();
    assert!(bigger.outage_covered_ms().abs_diff(2 * covered) <= 1);
    // More targets, shorter outage.
    let two_targets = builder()
        .wal_bounds(64 << 20, 1 << 20)
        .scrape_job("app", &["127.0.0.1:1", "127.0.0.1:2"])
        .job_timing(1_000, 500)
        .build();
    assert!(two_targets.outage_covered_ms() < covered);
}
