//! The agent's two clocks, and what it can tell about the wall clock.
//!
//! Every deadline and duration (the scrape schedule, request timeouts,
//! backoff, the batch deadline, fsync, resharding, DNS refresh, the status
//! server) follows [`Clock::now_ms`], a monotonic clock: NTP may slew it but
//! nothing steps it, so a wall clock set back an hour or forward ten years
//! changes no deadline. Its milliseconds start at the wall time of start, so
//! they read like epoch milliseconds in the core's `now_ms` arguments.
//!
//! The wall clock, [`Clock::wall_ms`], is read only to stamp samples and to
//! judge their age against `queue.max_sample_age`; both follow a step at once.
//!
//! Edge boards often have no real-time clock: they boot in the past and jump
//! when NTP first answers. Two signals tell the operator whether the wall
//! clock can be trusted: the kernel's synchronisation state ([`adjtimex`],
//! what node_exporter's `node_timex_sync_status` reports) and the offset
//! from the receiver's clock, read from its HTTP `Date` header
//! ([`ReceiverOffset`]).

use std::io;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::log;

/// Where the two clocks are read. Tests supply one whose wall clock steps.
pub trait TimeSource: Send + Sync {
    /// Milliseconds of a clock that never steps, from any origin.
    fn monotonic_ms(&self) -> u64;
    /// Milliseconds since the Unix epoch as the system clock says now
    /// (negative before 1970).
    fn wall_ms(&self) -> i64;
}

/// `CLOCK_MONOTONIC` (through [`Instant`]) and `CLOCK_REALTIME`.
pub struct SystemClocks {
    origin: Instant,
}

impl TimeSource for SystemClocks {
    fn monotonic_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    fn wall_ms(&self) -> i64 {
        system_wall_ms()
    }
}

/// The system's wall clock in Unix milliseconds.
pub fn system_wall_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(before) => -(before.duration().as_millis() as i64),
    }
}

#[derive(Clone)]
pub struct Clock {
    source: Arc<dyn TimeSource>,
    /// The wall time at start, where [`Clock::now_ms`] begins.
    anchor_ms: u64,
    monotonic_at_start: u64,
}

impl Clock {
    pub fn system() -> Clock {
        Clock::new(Arc::new(SystemClocks {
            origin: Instant::now(),
        }))
    }

    pub fn new(source: Arc<dyn TimeSource>) -> Clock {
        Clock {
            anchor_ms: source.wall_ms().max(0) as u64,
            monotonic_at_start: source.monotonic_ms(),
            source,
        }
    }

    /// Monotonic milliseconds, starting at the wall time of start: for
    /// every deadline and duration, never for a sample's timestamp.
    pub fn now_ms(&self) -> u64 {
        self.anchor_ms + self.source.monotonic_ms().saturating_sub(self.monotonic_at_start)
    }

    /// The wall clock now: for sample timestamps and sample age only.
    pub fn wall_ms(&self) -> i64 {
        self.source.wall_ms()
    }
}

/// adjtimex(2) in read-only mode (`modes` 0, allowed without privileges):
/// the clock state it returns (`TIME_OK` .. `TIME_ERROR`) and the kernel's
/// timekeeping variables.
pub fn adjtimex() -> io::Result<(libc::c_int, libc::timex)> {
    // SAFETY: `timex` is plain old data, for which all zeroes is a valid
    // value; adjtimex(2) gets an exclusive pointer to it, and `modes` 0
    // asks the kernel to read, not to set.
    let (state, tx) = unsafe {
        let mut tx: libc::timex = std::mem::zeroed();
        (libc::adjtimex(&mut tx), tx)
    };
    if state < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((state, tx))
}

/// Whether the kernel says its clock is synchronised, as node_exporter's
/// `node_timex_sync_status` does: yes unless adjtimex returns `TIME_ERROR`
/// (which it does while `STA_UNSYNC` is set, e.g. before NTP's first
/// answer). `None` when adjtimex itself fails (a seccomp profile).
pub fn kernel_clock_synchronised() -> Option<bool> {
    adjtimex().ok().map(|(state, _)| state != libc::TIME_ERROR)
}

/// Past this the offset from the receiver's clock is logged as a warning.
/// `Date` has a resolution of one second, so smaller offsets are noise.
pub const RECEIVER_OFFSET_WARN_MS: i64 = 10_000;
/// While the offset stays past the threshold, the warning repeats this often.
const RECEIVER_OFFSET_REPEAT_MS: u64 = 600_000;

/// The offset of the local wall clock from the receiver's, from the `Date`
/// header of its answers: positive when the local clock is ahead.
#[derive(Debug, Default)]
pub struct ReceiverOffset {
    offset_ms: Option<i64>,
    /// Monotonic time of the last warning while the offset is too large.
    warned_at_ms: Option<u64>,
}

impl ReceiverOffset {
    /// Takes an answer's `Date` (whole Unix seconds) read at local wall time
    /// `wall_ms`; `now_ms` is monotonic, for the warning's rate limit.
    pub fn observe(&mut self, date_s: i64, wall_ms: i64, now_ms: u64, url: &str) {
        // The receiver's clock was somewhere in [date, date + 1 s).
        let offset = wall_ms.saturating_sub(date_s.saturating_mul(1000).saturating_add(500));
        self.offset_ms = Some(offset);
        if offset.abs() > RECEIVER_OFFSET_WARN_MS {
            if self
                .warned_at_ms
                .is_none_or(|t| now_ms >= t + RECEIVER_OFFSET_REPEAT_MS)
            {
                log::warn(
                    "the local clock disagrees with the receiver's Date header; samples carry the local time",
                    &[
                        ("url", &url),
                        ("offset_seconds", &(offset as f64 / 1000.0)),
                        ("local_is", &if offset > 0 { "ahead" } else { "behind" }),
                    ],
                );
                self.warned_at_ms = Some(now_ms);
            }
        } else if self.warned_at_ms.take().is_some() {
            log::info(
                "the local clock agrees with the receiver's again",
                &[("url", &url), ("offset_seconds", &(offset as f64 / 1000.0))],
            );
        }
    }

    /// The last offset seen, in seconds.
    pub fn seconds(&self) -> Option<f64> {
        self.offset_ms.map(|ms| ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

    struct Manual {
        mono: AtomicU64,
        wall: AtomicI64,
    }

    impl TimeSource for Manual {
        fn monotonic_ms(&self) -> u64 {
            self.mono.load(Ordering::SeqCst)
        }
        fn wall_ms(&self) -> i64 {
            self.wall.load(Ordering::SeqCst)
        }
    }

    #[test]
    fn deadlines_ignore_steps_of_the_wall_clock() {
        let source = Arc::new(Manual {
            mono: AtomicU64::new(5),
            wall: AtomicI64::new(1_700_000_000_000),
        });
        let clock = Clock::new(source.clone());
        assert_eq!(clock.now_ms(), 1_700_000_000_000, "starts at the wall time");
        source.mono.store(1_005, Ordering::SeqCst);
        source.wall.store(1_700_000_000_000 - 3_600_000, Ordering::SeqCst);
        assert_eq!(
            clock.now_ms(),
            1_700_000_001_000,
            "a step back changes no deadline"
        );
        assert_eq!(
            clock.wall_ms(),
            1_699_996_400_000,
            "samples carry the new wall time"
        );
        source.wall.store(2_000_000_000_000, Ordering::SeqCst);
        assert_eq!(clock.now_ms(), 1_700_000_001_000);
    }

    #[test]
    fn the_kernel_answers_adjtimex_without_privileges() {
        let (state, tx) = adjtimex().expect("adjtimex in read-only mode");
        assert!((0..=5).contains(&state), "state {state}");
        assert_eq!(tx.modes, 0);
        assert!(kernel_clock_synchronised().is_some());
    }

    #[test]
    fn the_receiver_offset_is_local_minus_remote() {
        let mut o = ReceiverOffset::default();
        assert_eq!(o.seconds(), None);
        o.observe(1_700_000_000, 1_700_000_000_600, 0, "u");
        assert_eq!(o.seconds(), Some(0.1));
        o.observe(1_700_000_000, 1_699_999_940_500, 1, "u");
        assert_eq!(o.seconds(), Some(-60.0));
        assert!(o.warned_at_ms.is_some());
        o.observe(1_700_000_000, 1_700_000_000_500, 2, "u");
        assert_eq!(o.warned_at_ms, None, "back within the threshold");
    }
}
