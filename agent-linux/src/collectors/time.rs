//! `time`: the system time, the local time zone's offset and the clocksources.

use std::ffi::CStr;
use std::fmt::Write as _;
use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use super::expo::{Expo, Kind, SmallNumber, Value};
use super::files::{read_optional, Files};
use super::Paths;

/// What the collector keeps between scrapes.
#[derive(Default)]
pub(super) struct State {
    tz_ready: bool,
}

extern "C" {
    // Not bound by the libc crate; POSIX, present in glibc and musl.
    fn tzset();
}

/// The local zone's abbreviation and offset from UTC in seconds at `seconds` since the epoch,
/// as Go's `time.Now().Zone()` gives them to node_exporter. rustix has no time zone support.
/// `load_zone` loads TZ and /etc/localtime first; the first call must set it.
fn local_zone(seconds: u64, load_zone: bool) -> Option<(&'static str, i64)> {
    let seconds = libc::time_t::try_from(seconds).ok()?;
    // SAFETY: tzset has no preconditions. localtime_r writes only into `tm`, plain data for
    // which all zeroes is valid; on success `tm_zone` is null or points at the C library's
    // static zone names, which live as long as the process: tzset, which could replace them,
    // runs once, on the first call, before any name is handed out.
    unsafe {
        if load_zone {
            tzset();
        }
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&seconds, &mut tm).is_null() {
            return None;
        }
        let zone = if tm.tm_zone.is_null() {
            ""
        } else {
            CStr::from_ptr(tm.tm_zone).to_str().unwrap_or("")
        };
        // c_long is 32 bits wide on 32-bit targets.
        #[allow(clippy::useless_conversion)]
        Some((zone, i64::from(tm.tm_gmtoff)))
    }
}

pub(super) fn collect(paths: &Paths, s: &mut Files, st: &mut State, expo: &mut Expo<'_>) -> io::Result<()> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| io::Error::other("clock before 1970"))?;
    expo.single(
        &["node_time_seconds"],
        &["System time in seconds since epoch (1970)."],
        Kind::Gauge,
        &[],
        now.as_secs_f64(),
    );
    let (zone, offset) =
        local_zone(now.as_secs(), !st.tz_ready).ok_or_else(|| io::Error::other("localtime_r failed"))?;
    st.tz_ready = true;
    expo.single(
        &["node_time_zone_offset_seconds"],
        &["System time zone offset in seconds."],
        Kind::Gauge,
        &[("time_zone", zone)],
        Value::Float(offset as f64),
    );

    // Clocksources are optional (containers without /sys): the time itself still counts as success.
    for (current, name, help) in [
        (
            false,
            "node_time_clocksource_available_info",
            "Available clocksources read from '/sys/devices/system/clocksource'.",
        ),
        (
            true,
            "node_time_clocksource_current_info",
            "Current clocksource read from '/sys/devices/system/clocksource'.",
        ),
    ] {
        let mark = expo.family(&[name], &[help], Kind::Gauge);
        for device in 0u32.. {
            s.text.clear();
            let _ = write!(s.text, "clocksource{device}");
            let file = if current {
                "current_clocksource"
            } else {
                "available_clocksource"
            };
            let rel = ["devices/system/clocksource", s.text.as_str(), file];
            let Ok(text) = read_optional(&mut s.path, &paths.sysfs, &rel, &mut s.data) else {
                break;
            };
            let id = SmallNumber::new(device.into());
            let id = id.as_str();
            for source in text.split_ascii_whitespace() {
                expo.sample(&[name], &[("clocksource", source), ("device", id)], 1u64);
            }
        }
        expo.end_family(mark);
    }
    Ok(())
}
