//! Steps of the wall clock change no deadline (issue 14, section 2).
//!
//! The agent runs in this process on a clock whose monotonic half is the
//! machine's and whose wall half the test steps: back one hour, forward one
//! hour (to the true time again) and forward ten years, five seconds apart.
//! A real target serves the true time at which it answers; a recording
//! receiver, which answers with a true `Date` header, keeps every sample.
//!
//! Must hold around every step: the target is scraped once a second (no
//! stall, no burst), each sample carries the wall time the agent had when it
//! scraped, the age rule (`queue.max_sample_age`) judges explicit
//! timestamps against that wall time, and the receiver's clock offset
//! follows the step.

mod in_process;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use in_process::run_args;
use outpost_agent::agent::Agent;
use outpost_agent::clock::{system_wall_ms, Clock, TimeSource};
use outpost_agent::log;

use outpost_core::plan::Queue;
use outpost_test_support::{
    http_get, metric_sum, write_plan, CountingTarget, PlanBuilder, RecordingReceiver, QUEUE,
};

const HOUR_MS: i64 = 3_600_000;
const TEN_YEARS_MS: i64 = 3_652 * 86_400_000;
/// The wall clock's offset from the true time in each phase.
const PHASES: [(&str, i64); 4] = [
    ("true time", 0),
    ("stepped back 1 h", -HOUR_MS),
    ("stepped forward 1 h", 0),
    ("stepped forward 10 years", TEN_YEARS_MS),
];
const PHASE_MS: u64 = 5_000;

/// The machine's monotonic clock, and its wall clock plus an offset the
/// test changes.
struct SteppedWall {
    origin: Instant,
    offset_ms: AtomicI64,
}

impl TimeSource for SteppedWall {
    fn monotonic_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    fn wall_ms(&self) -> i64 {
        system_wall_ms() + self.offset_ms.load(Ordering::SeqCst)
    }
}

/// The true time the target answered (a plain sample, stamped by the
/// agent) and the same time as an explicit timestamp.
fn body(n: u64) -> String {
    let now = system_wall_ms();
    format!(
        "# TYPE clock_served_at_ms gauge\nclock_served_at_ms {now}\n\
         # TYPE clock_stamped_true gauge\nclock_stamped_true {n} {now}\n"
    )
}

/// The agent's `/metrics`, fetched while the loop runs for a second.
fn agent_metrics(agent: &mut Agent) -> String {
    let port = agent.listen_addr().unwrap().port();
    let get = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        http_get(port, "/metrics")
    });
    assert!(agent.run_for(Duration::from_millis(1_000)).is_none());
    get.join().unwrap().expect("agent /metrics").1
}

/// `(value, timestamp)` of every sample of `name` the receiver got.
fn samples_of(receiver: &RecordingReceiver, name: &str) -> Vec<(f64, i64)> {
    let seen = receiver.seen.lock().unwrap();
    let mut out = Vec::new();
    for r in seen.iter() {
        let req = r.request.as_ref().expect("remote-write body decodes");
        for ts in req
            .timeseries
            .iter()
            .filter(|t| t.label("__name__") == Some(name))
        {
            out.extend(ts.samples.iter().map(|s| (s.value, s.timestamp)));
        }
    }
    out
}

#[test]
fn wall_clock_steps_change_no_deadline_and_stamp_every_sample() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = RecordingReceiver::start(Box::new(|_| (200, Vec::new())));
    let target = CountingTarget::start(body);
    let plan = PlanBuilder::new()
        .receiver_url(&receiver.url())
        .external_labels(&[("cluster", "clock")])
        .wal_dir(&dir.path().join("wal"))
        .queue(Queue {
            max_sample_age_ms: 2 * HOUR_MS as u64,
            ..QUEUE
        })
        .scrape_job("testapp", &[target.address()])
        .build();
    let plan_path = write_plan(dir.path(), "plan.bin", &plan);
    log::init(log::Format::Logfmt, log::Level::Info);
    let source = Arc::new(SteppedWall {
        origin: Instant::now(),
        offset_ms: AtomicI64::new(0),
    });
    let mut agent = Agent::start_with_clock(
        run_args(plan_path, "clock-node", log::Level::Info),
        plan,
        Default::default(),
        Clock::new(source.clone()),
    )
    .expect("agent starts");

    // Per phase: the true time it began, and the agent's /metrics at its end.
    let mut began = Vec::new();
    let mut metrics = Vec::new();
    for (_, offset) in PHASES {
        source.offset_ms.store(offset, Ordering::SeqCst);
        began.push(system_wall_ms());
        assert!(agent.run_for(Duration::from_millis(PHASE_MS)).is_none());
        metrics.push(agent_metrics(&mut agent));
    }
    let served = target.stop();
    // The scrapes now fail; what was scraped is shipped and counted.
    assert!(agent.run_for(Duration::from_millis(1_500)).is_none());
    let final_metrics = agent_metrics(&mut agent);
    assert_eq!(agent.stop(), 0);

    // Each scrape as the receiver got it: the true time the target answered
    // and the agent's stamp, which must be that time plus the phase's offset.
    // (The failed scrapes after the target stopped sent a staleness marker.)
    let mut scrapes: Vec<(f64, i64)> = samples_of(&receiver, "clock_served_at_ms")
        .into_iter()
        .filter(|s| !s.0.is_nan())
        .collect();
    scrapes.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(
        scrapes.len() as u64,
        served,
        "every scrape the target served arrived once: {scrapes:?}"
    );
    let mut per_phase = [0u64; PHASES.len()];
    for &(served_at, stamp) in &scrapes {
        let served_at = served_at as i64;
        let phase = began.iter().rposition(|&t| t <= served_at).unwrap_or(0);
        let offset = stamp - served_at;
        // A scrape sent just before a step may be answered just after it.
        let matches = |k: usize| (offset - PHASES[k].1).abs() < 1_000;
        assert!(
            matches(phase) || (phase > 0 && matches(phase - 1) && served_at - began[phase] < 1_000),
            "a scrape answered at {served_at} in phase '{}' is stamped {stamp} ({offset} ms off)",
            PHASES[phase].0
        );
        per_phase[phase] += 1;
    }
    let gaps: Vec<i64> = scrapes.windows(2).map(|w| (w[1].0 - w[0].0) as i64).collect();
    eprintln!(
        "scrapes per phase {:?} ({}); gaps between scrapes {}..{} ms",
        per_phase,
        PHASES.map(|p| p.0).join(", "),
        gaps.iter().min().unwrap(),
        gaps.iter().max().unwrap()
    );
    // Phases last 5 s (and 1 s of /metrics) of a 1 s interval.
    for (k, &n) in per_phase.iter().enumerate() {
        assert!((5..=7).contains(&n), "phase '{}': {n} scrapes", PHASES[k].0);
    }
    assert!(
        gaps.iter().all(|&g| (300..=2_500).contains(&g)),
        "a scrape a second, no stall, no burst: {gaps:?}"
    );

    // The age rule follows the wall clock: the explicit true-time stamps are
    // in the future after the step back, and ten years old after the step
    // forward, where each of them is refused and counted.
    let stamped = samples_of(&receiver, "clock_stamped_true");
    assert!(
        stamped.iter().all(|s| !s.0.is_nan()),
        "own timestamps: never marked stale"
    );
    let refused = metric_sum(
        &final_metrics,
        "prometheus_target_scrapes_sample_out_of_bounds_total",
        &[],
    ) as u64;
    let before_last_step = per_phase[..3].iter().sum::<u64>();
    eprintln!(
        "explicitly stamped samples delivered {}, refused as too old {refused}",
        stamped.len()
    );
    assert!(
        stamped.iter().all(|&(_, ts)| ts < began[3]),
        "none of the last phase arrived"
    );
    assert_eq!(stamped.len() as u64 + refused, served);
    assert!(
        (stamped.len() as u64).abs_diff(before_last_step) <= 1,
        "all before the ten-year step arrived: {} of {before_last_step}",
        stamped.len()
    );
    for m in &metrics[..3] {
        assert_eq!(
            metric_sum(m, "prometheus_target_scrapes_sample_out_of_bounds_total", &[]),
            0.0
        );
    }

    // The receiver's Date tells the operator how far off the clock is.
    let offset = |m: &str| metric_sum(m, "outpost_receiver_clock_offset_seconds", &[]);
    for (k, m) in metrics.iter().enumerate() {
        let want = PHASES[k].1 as f64 / 1000.0;
        assert!(
            (offset(m) - want).abs() < 3.0,
            "phase '{}': offset {} s, want {want}",
            PHASES[k].0,
            offset(m)
        );
    }
    assert!(metrics[0].contains("\noutpost_clock_sync_status "));
}
