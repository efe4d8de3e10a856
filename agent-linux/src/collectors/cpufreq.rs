//! `cpufreq`: each CPU's current, minimum and maximum frequency, from the hardware and from the
//! scaling governor (`/sys/devices/system/cpu/cpuN/cpufreq/`).

use std::io;

use super::expo::{Expo, Kind};
use super::files::{invalid, read_optional, set_path, Files, Names};
use super::Paths;

/// (file, metric, help) in node_exporter's order.
const FREQUENCIES: [(&str, &str, &str); 6] = [
    (
        "cpuinfo_cur_freq",
        "node_cpu_frequency_hertz",
        "Current cpu thread frequency in hertz.",
    ),
    (
        "cpuinfo_min_freq",
        "node_cpu_frequency_min_hertz",
        "Minimum cpu thread frequency in hertz.",
    ),
    (
        "cpuinfo_max_freq",
        "node_cpu_frequency_max_hertz",
        "Maximum cpu thread frequency in hertz.",
    ),
    (
        "scaling_cur_freq",
        "node_cpu_scaling_frequency_hertz",
        "Current scaled CPU thread frequency in hertz.",
    ),
    (
        "scaling_min_freq",
        "node_cpu_scaling_frequency_min_hertz",
        "Minimum scaled CPU thread frequency in hertz.",
    ),
    (
        "scaling_max_freq",
        "node_cpu_scaling_frequency_max_hertz",
        "Maximum scaled CPU thread frequency in hertz.",
    ),
];

/// Files node_exporter requires of every cpufreq directory, though it exports none of them.
const REQUIRED: [&str; 5] = [
    "scaling_available_governors",
    "scaling_driver",
    "scaling_governor",
    "related_cpus",
    "scaling_setspeed",
];

/// What the collector keeps between scrapes: the CPUs with a cpufreq directory.
#[derive(Default)]
pub(super) struct State {
    cpus: Names,
}

pub(super) fn collect(paths: &Paths, s: &mut Files, st: &mut State, expo: &mut Expo<'_>) -> io::Result<()> {
    set_path(&mut s.path, &paths.sysfs, &["devices/system/cpu"]);
    st.cpus.read(&s.path, |name, _| {
        name.strip_prefix("cpu")
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
    })?;
    let mut with_cpufreq = 0;
    for cpu in st.cpus.iter() {
        set_path(&mut s.path, &paths.sysfs, &["devices/system/cpu", cpu, "cpufreq"]);
        if !s.path.is_dir() {
            continue;
        }
        with_cpufreq += 1;
        for file in REQUIRED {
            read_optional(
                &mut s.path,
                &paths.sysfs,
                &["devices/system/cpu", cpu, "cpufreq", file],
                &mut s.aux,
            )?;
        }
    }
    if with_cpufreq == 0 {
        return Ok(());
    }
    for (file, name, help) in FREQUENCIES {
        let mark = expo.family(&[name], &[help], Kind::Gauge);
        for cpu in st.cpus.iter() {
            let rel = ["devices/system/cpu", cpu, "cpufreq", file];
            let khz: u64 = match read_optional(&mut s.path, &paths.sysfs, &rel, &mut s.aux) {
                Ok(text) => text
                    .trim()
                    .parse()
                    .map_err(|_| invalid("devices/system/cpu", "frequency not a number"))?,
                // Absent (or root-only, like cpuinfo_cur_freq): no series, as in node_exporter.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(e),
            };
            let id = &cpu["cpu".len()..];
            expo.sample(&[name], &[("cpu", id)], khz as f64 * 1000.0);
        }
        expo.end_family(mark);
    }
    Ok(())
}
