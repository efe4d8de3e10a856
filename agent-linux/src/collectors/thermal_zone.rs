//! `thermal_zone`: temperatures of the kernel's thermal zones and the throttle states of its
//! cooling devices (`/sys/class/thermal`).

use std::io;

use super::expo::{Expo, Kind};
use super::files::{invalid, numbered, read_file, set_path, Files, Names};
use super::Paths;

/// What the collector keeps between scrapes: the directory's entries.
#[derive(Default)]
pub(super) struct State {
    names: Names,
}

pub(super) fn collect(paths: &Paths, s: &mut Files, st: &mut State, expo: &mut Expo<'_>) -> io::Result<()> {
    set_path(&mut s.path, &paths.sysfs, &["class/thermal"]);
    // No thermal class at all (a VM): nothing to report, and nothing wrong.
    if st
        .names
        .read(&s.path, |name, _| {
            numbered(name, "thermal_zone") || numbered(name, "cooling_device")
        })
        .is_err()
    {
        return Ok(());
    }
    let zones = || {
        st.names
            .iter()
            .filter_map(|n| Some((n, n.strip_prefix("thermal_zone")?)))
    };
    // Every zone needs a type, a policy and a temperature, as node_exporter requires; a zone
    // whose sensor has no data (ENODATA) is left out.
    const TEMP: &[&str] = &["node_thermal_zone_temp"];
    let mark = expo.family(TEMP, &["Zone temperature in Celsius"], Kind::Gauge);
    for (dir, zone) in zones() {
        read_file(
            &mut s.path,
            &paths.sysfs,
            &["class/thermal", dir, "policy"],
            &mut s.aux,
        )?;
        let temp = match read_file(
            &mut s.path,
            &paths.sysfs,
            &["class/thermal", dir, "temp"],
            &mut s.aux,
        ) {
            Ok(text) => text
                .trim()
                .parse::<i64>()
                .map_err(|_| invalid("class/thermal", "temp not a number"))?,
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NODATA.raw_os_error()) => continue,
            Err(e) => return Err(e),
        };
        let kind = read_file(
            &mut s.path,
            &paths.sysfs,
            &["class/thermal", dir, "type"],
            &mut s.aux,
        )?
        .trim();
        expo.sample(TEMP, &[("type", kind), ("zone", zone)], temp as f64 / 1000.0);
    }
    expo.end_family(mark);
    let devices = || {
        st.names
            .iter()
            .filter_map(|n| Some((n, n.strip_prefix("cooling_device")?)))
    };
    for (file, name, help) in [
        (
            "cur_state",
            "node_cooling_device_cur_state",
            "Current throttle state of the cooling device",
        ),
        (
            "max_state",
            "node_cooling_device_max_state",
            "Maximum throttle state of the cooling device",
        ),
    ] {
        let mark = expo.family(&[name], &[help], Kind::Gauge);
        for (dir, device) in devices() {
            let state: i64 = read_file(
                &mut s.path,
                &paths.sysfs,
                &["class/thermal", dir, file],
                &mut s.aux,
            )?
            .trim()
            .parse()
            .map_err(|_| invalid("class/thermal", "state not a number"))?;
            let kind = read_file(
                &mut s.path,
                &paths.sysfs,
                &["class/thermal", dir, "type"],
                &mut s.aux,
            )?
            .trim();
            expo.sample(&[name], &[("name", device), ("type", kind)], state as f64);
        }
        expo.end_family(mark);
    }
    Ok(())
}
