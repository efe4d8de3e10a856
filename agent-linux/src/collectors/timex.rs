//! `timex`: the kernel clock discipline's state from adjtimex(2): whether the clock is
//! synchronised, its offset, frequency correction, error bounds and PPS counters.

use std::io;

use super::expo::{Expo, Kind};

/// `status` bit: offsets are in nanoseconds, not microseconds.
const STA_NANO: i32 = 0x2000;

pub(super) fn collect(expo: &mut Expo<'_>) -> io::Result<()> {
    let (state, t) = crate::clock::adjtimex()?;
    let divisor = if t.status & STA_NANO != 0 { 1e9 } else { 1e6 };
    // Frequencies are in ppm with a 16-bit fraction.
    const PPM16: f64 = 1_000_000.0 * 65_536.0;
    let families: [(&str, &str, Kind, f64); 17] = [
        (
            "node_timex_sync_status",
            "Is clock synchronized to a reliable server (1 = yes, 0 = no).",
            Kind::Gauge,
            if state == libc::TIME_ERROR { 0.0 } else { 1.0 },
        ),
        (
            "node_timex_offset_seconds",
            "Time offset in between local system and reference clock.",
            Kind::Gauge,
            t.offset as f64 / divisor,
        ),
        (
            "node_timex_frequency_adjustment_ratio",
            "Local clock frequency adjustment.",
            Kind::Gauge,
            1.0 + t.freq as f64 / PPM16,
        ),
        (
            "node_timex_maxerror_seconds",
            "Maximum error in seconds.",
            Kind::Gauge,
            t.maxerror as f64 / 1e6,
        ),
        (
            "node_timex_estimated_error_seconds",
            "Estimated error in seconds.",
            Kind::Gauge,
            t.esterror as f64 / 1e6,
        ),
        (
            "node_timex_status",
            "Value of the status array bits.",
            Kind::Gauge,
            f64::from(t.status),
        ),
        (
            "node_timex_loop_time_constant",
            "Phase-locked loop time constant.",
            Kind::Gauge,
            t.constant as f64,
        ),
        (
            "node_timex_tick_seconds",
            "Seconds between clock ticks.",
            Kind::Gauge,
            t.tick as f64 / 1e6,
        ),
        (
            "node_timex_pps_frequency_hertz",
            "Pulse per second frequency.",
            Kind::Gauge,
            t.ppsfreq as f64 / PPM16,
        ),
        (
            "node_timex_pps_jitter_seconds",
            "Pulse per second jitter.",
            Kind::Gauge,
            t.jitter as f64 / divisor,
        ),
        (
            "node_timex_pps_shift_seconds",
            "Pulse per second interval duration.",
            Kind::Gauge,
            f64::from(t.shift),
        ),
        (
            "node_timex_pps_stability_hertz",
            "Pulse per second stability, average of recent frequency changes.",
            Kind::Gauge,
            t.stabil as f64 / PPM16,
        ),
        (
            "node_timex_pps_jitter_total",
            "Pulse per second count of jitter limit exceeded events.",
            Kind::Counter,
            t.jitcnt as f64,
        ),
        (
            "node_timex_pps_calibration_total",
            "Pulse per second count of calibration intervals.",
            Kind::Counter,
            t.calcnt as f64,
        ),
        (
            "node_timex_pps_error_total",
            "Pulse per second count of calibration errors.",
            Kind::Counter,
            t.errcnt as f64,
        ),
        (
            "node_timex_pps_stability_exceeded_total",
            "Pulse per second count of stability limit exceeded events.",
            Kind::Counter,
            t.stbcnt as f64,
        ),
        (
            "node_timex_tai_offset_seconds",
            "International Atomic Time (TAI) offset.",
            Kind::Gauge,
            f64::from(t.tai),
        ),
    ];
    for (name, help, kind, value) in families {
        expo.single(&[name], &[help], kind, &[], value);
    }
    Ok(())
}
