//! Steps of the wall clock change no deadline (issue 14, section 2).
//!
//! The agent runs in this process on a clock whose monotonic half is the
//! machine's and whose wall half steps at set true times: back one hour,
//! forward one hour (to the true time again) and forward ten years, six
//! scrapes apart. A real target serves the true time at which it answers; a
//! recording receiver, which answers with a true `Date` header, keeps every
//! sample.
//!
//! Each step falls half an interval after a scrape of the target, when that
//! scrape has been sent and the next is half an interval away, so every scrape
//! is taken and sent within one phase and the counts are exact: six scrapes a
//! phase, each stamped with its phase's wall time.
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
/// The target's scrape interval (the plan builder's).
const INTERVAL_MS: i64 = 1_000;
const SCRAPES_PER_PHASE: u64 = 6;
const PHASE_MS: i64 = SCRAPES_PER_PHASE as i64 * INTERVAL_MS;

/// The machine's monotonic clock, and its wall clock plus the offset of the
/// phase the true time is in.
struct SteppedWall {
    origin: Instant,
    /// The true wall time each phase begins at; `i64::MAX` until known.
    begins_ms: [AtomicI64; PHASES.len()],
}

impl SteppedWall {
    fn phase_at(&self, true_ms: i64) -> usize {
        self.begins_ms
            .iter()
            .rposition(|b| b.load(Ordering::SeqCst) <= true_ms)
            .unwrap_or(0)
    }
}

impl TimeSource for SteppedWall {
    fn monotonic_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    fn wall_ms(&self) -> i64 {
        let now = system_wall_ms();
        now + PHASES[self.phase_at(now)].1
    }
}

/// The true time the target answered its first scrape.
static FIRST_SERVED_MS: AtomicI64 = AtomicI64::new(0);

/// The true time the target answered (a plain sample, stamped by the
/// agent) and the same time as an explicit timestamp, with the scrape's
/// number as its value.
fn body(n: u64) -> String {
    let now = system_wall_ms();
    if n == 1 {
        FIRST_SERVED_MS.store(now, Ordering::SeqCst);
    }
    format!(
        "# TYPE clock_served_at_ms gauge\nclock_served_at_ms {now}\n\
         # TYPE clock_stamped_true gauge\nclock_stamped_true {n} {now}\n"
    )
}

/// Runs the agent's loop until the true time is `true_ms`.
fn run_until(agent: &mut Agent, true_ms: i64) {
    let left = true_ms - system_wall_ms();
    if left > 0 {
        assert!(agent.run_for(Duration::from_millis(left as u64)).is_none());
    }
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
            // A scrape is sent within 20 ms, long before the step half an
            // interval later: none is judged by the next phase's clock.
            batch_send_deadline_ms: 20,
            ..QUEUE
        })
        .scrape_job("testapp", &[target.address()])
        .build();
    let plan_path = write_plan(dir.path(), "plan.bin", &plan);
    log::init(log::Format::Logfmt, log::Level::Info);
    let source = Arc::new(SteppedWall {
        origin: Instant::now(),
        begins_ms: [i64::MIN, i64::MAX, i64::MAX, i64::MAX].map(AtomicI64::new),
    });
    let mut agent = Agent::start_with_clock(
        run_args(plan_path, "clock-node", log::Level::Info),
        plan,
        Default::default(),
        Clock::new(source.clone()),
    )
    .expect("agent starts");

    // The target is scraped at once, then every interval after: the steps
    // go half an interval after its 6th, 12th and 18th scrape.
    let waiting = Instant::now();
    while target.served() == 0 {
        assert!(
            waiting.elapsed() < Duration::from_secs(10),
            "the target was never scraped"
        );
        assert!(agent.run_for(Duration::from_millis(10)).is_none());
    }
    let first = FIRST_SERVED_MS.load(Ordering::SeqCst);
    let began: Vec<i64> = (0..PHASES.len() as i64)
        .map(|k| first + k * PHASE_MS - INTERVAL_MS / 2)
        .collect();
    for (begins, at) in source.begins_ms.iter().zip(&began).skip(1) {
        begins.store(*at, Ordering::SeqCst);
    }
    // The agent's /metrics in each phase, after four of its scrapes.
    let mut metrics = Vec::new();
    for &begins in &began {
        run_until(&mut agent, begins + 4 * INTERVAL_MS);
        metrics.push(agent_metrics(&mut agent));
    }
    // Half an interval after the last phase's 6th scrape.
    run_until(
        &mut agent,
        first + PHASES.len() as i64 * PHASE_MS - INTERVAL_MS / 2,
    );
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
    let too_old = |m: &str| {
        metric_sum(
            m,
            "prometheus_remote_storage_samples_dropped_total",
            &["reason=\"too_old\""],
        )
    };
    assert_eq!(
        scrapes.len() as u64,
        served,
        "every scrape the target served arrived once ({} samples dropped as too old): {scrapes:?}",
        too_old(&final_metrics)
    );
    let mut per_phase = [0u64; PHASES.len()];
    for &(served_at, stamp) in &scrapes {
        let served_at = served_at as i64;
        let phase = source.phase_at(served_at);
        let offset = stamp - served_at;
        assert!(
            (offset - PHASES[phase].1).abs() < 1_000,
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
    assert_eq!(
        per_phase,
        [SCRAPES_PER_PHASE; PHASES.len()],
        "a scrape a second in every phase ({})",
        PHASES.map(|p| p.0).join(", ")
    );
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
    let mut numbers: Vec<u64> = stamped.iter().map(|s| s.0 as u64).collect();
    numbers.sort_unstable();
    let refused = metric_sum(
        &final_metrics,
        "prometheus_target_scrapes_sample_out_of_bounds_total",
        &[],
    );
    eprintln!("explicitly stamped samples delivered: scrapes {numbers:?}; refused as too old {refused}");
    let before_last_step = 3 * SCRAPES_PER_PHASE;
    assert_eq!(
        numbers,
        (1..=before_last_step).collect::<Vec<_>>(),
        "those of every scrape before the ten-year step arrived, none after it"
    );
    assert!(stamped.iter().all(|&(_, ts)| ts < began[3]));
    let last_phase = (served - before_last_step) as f64;
    assert_eq!(refused, last_phase, "each of the last phase refused when scraped");
    assert_eq!(
        too_old(&final_metrics),
        last_phase,
        "and nothing else: no scrape was sent after a step it was taken before"
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
