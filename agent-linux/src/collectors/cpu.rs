//! `cpu`: seconds per CPU and mode from `/proc/stat`, thermal throttles and isolated CPUs from sysfs.

use std::fmt::Write as _;
use std::io;

use super::expo::{Expo, Kind, SmallNumber};
use super::files::{invalid, read_file, read_optional, set_path, Files};
use super::Paths;

/// What the collector keeps between scrapes.
pub(super) struct State {
    /// Indexed by CPU number; outlives scrapes so that counters stay monotonic.
    cpu_ticks: Vec<CpuTicks>,
    /// (package, core, count) and (package, count), deduplicated per scrape.
    core_throttles: Vec<(u64, u64, u64)>,
    package_throttles: Vec<(u64, u64)>,
    clock_ticks: f64,
}

impl State {
    pub(super) fn new() -> Self {
        State {
            cpu_ticks: Vec::new(),
            core_throttles: Vec::with_capacity(16),
            package_throttles: Vec::with_capacity(4),
            clock_ticks: clock_ticks_per_second(),
        }
    }
}

/// node_exporter hard-codes USER_HZ as 100; reading it keeps us right on kernels that differ.
pub(super) fn clock_ticks_per_second() -> f64 {
    match rustix::param::clock_ticks_per_second() {
        0 => 100.0,
        ticks => ticks as f64,
    }
}

/// The last ticks reported for one CPU, so that counters never go backwards.
#[derive(Default, Clone, Copy)]
struct CpuTicks {
    present: bool,
    columns: usize,
    ticks: [u64; 10],
}

/// node_exporter 1.5 treats an idle counter that falls by this much as a CPU hot-plug: the
/// CPU's history restarts. Smaller drops (the kernel's idle/iowait accounting does that) are
/// ignored by keeping the higher value, so `rate()` never sees a counter reset.
const CPU_JUMP_BACK_SECONDS: f64 = 3.0;

pub(super) fn collect(paths: &Paths, s: &mut Files, st: &mut State, expo: &mut Expo<'_>) -> io::Result<()> {
    const SECONDS: &[&str] = &["node_cpu_seconds_total"];
    const GUEST: &[&str] = &["node_cpu_guest_seconds_total"];
    // /proc/stat column order after the cpu name; guest and guest_nice follow at 8 and 9.
    const MODES: [&str; 8] = [
        "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
    ];
    const IDLE: usize = 3;
    const GUEST_MODES: [(usize, &str); 2] = [(8, "user"), (9, "nice")];
    let ticks_per_second = st.clock_ticks;
    let text = read_file(&mut s.path, &paths.procfs, &["stat"], &mut s.data)?;
    for state in &mut st.cpu_ticks {
        state.present = false;
    }
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("cpu") else {
            continue;
        };
        // "cpu " is the all-CPU sum, which node_exporter does not export.
        let Some((id, columns)) = rest.split_once(' ') else {
            continue;
        };
        let Ok(id) = id.parse::<usize>() else { continue };
        let mut fresh = [0u64; 10];
        let mut count = 0;
        for (slot, column) in fresh.iter_mut().zip(columns.split_ascii_whitespace()) {
            *slot = column
                .parse()
                .map_err(|_| invalid("stat", "cpu column not a number"))?;
            count += 1;
        }
        if id >= st.cpu_ticks.len() {
            // Grows once per CPU the node has, on the first scrape.
            st.cpu_ticks.resize(id + 1, CpuTicks::default());
        }
        let state = &mut st.cpu_ticks[id];
        let jump_back = (CPU_JUMP_BACK_SECONDS * ticks_per_second) as u64;
        if state.ticks[IDLE] >= fresh[IDLE].saturating_add(jump_back) {
            state.ticks = [0; 10];
        }
        for (kept, new) in state.ticks.iter_mut().zip(fresh).take(count) {
            *kept = (*kept).max(new);
        }
        state.columns = count;
        state.present = true;
    }
    let samples_before = expo.samples;
    let mark = expo.family(SECONDS, &["Seconds the CPUs spent in each mode."], Kind::Counter);
    for (id, state) in st.cpu_ticks.iter().enumerate().filter(|(_, t)| t.present) {
        let id = SmallNumber::new(id as u64);
        for (mode, ticks) in MODES.iter().zip(state.ticks).take(state.columns) {
            let labels = [("cpu", id.as_str()), ("mode", *mode)];
            expo.sample(SECONDS, &labels, ticks as f64 / ticks_per_second);
        }
    }
    expo.end_family(mark);
    if expo.samples == samples_before {
        return Err(invalid("stat", "no cpuN lines"));
    }
    let mark = expo.family(
        GUEST,
        &["Seconds the CPUs spent in guests (VMs) for each mode."],
        Kind::Counter,
    );
    for (id, state) in st.cpu_ticks.iter().enumerate().filter(|(_, t)| t.present) {
        let id = SmallNumber::new(id as u64);
        for (index, mode) in GUEST_MODES
            .into_iter()
            .filter(|(index, _)| *index < state.columns)
        {
            let labels = [("cpu", id.as_str()), ("mode", mode)];
            expo.sample(GUEST, &labels, state.ticks[index] as f64 / ticks_per_second);
        }
    }
    expo.end_family(mark);
    thermal_throttles(paths, s, st, expo);
    isolated_cpus(paths, s, expo)?;
    Ok(())
}

/// Thermal throttle counters exist on bare metal only; their absence is not an error.
/// Hyperthreads share a core and cores share a package, so each counter is reported once.
fn thermal_throttles(paths: &Paths, s: &mut Files, st: &mut State, expo: &mut Expo<'_>) {
    st.core_throttles.clear();
    st.package_throttles.clear();
    let read_number = |s: &mut Files, cpu: &str, file: &str| -> Option<u64> {
        let rel = ["devices/system/cpu", cpu, file];
        read_optional(&mut s.path, &paths.sysfs, &rel, &mut s.aux)
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    for cpu in 0u64.. {
        s.text.clear();
        let _ = write!(s.text, "cpu{cpu}");
        set_path(
            &mut s.path,
            &paths.sysfs,
            &["devices/system/cpu", s.text.as_str()],
        );
        if std::fs::metadata(&s.path).is_err() {
            break;
        }
        let name = std::mem::take(&mut s.text);
        let package = read_number(s, &name, "topology/physical_package_id");
        let core = read_number(s, &name, "topology/core_id");
        let core_count = read_number(s, &name, "thermal_throttle/core_throttle_count");
        let package_count = read_number(s, &name, "thermal_throttle/package_throttle_count");
        s.text = name;
        let Some(package) = package else { continue };
        if let (Some(core), Some(count)) = (core, core_count) {
            if !st
                .core_throttles
                .iter()
                .any(|&(p, c, _)| (p, c) == (package, core))
            {
                st.core_throttles.push((package, core, count));
            }
        }
        if let Some(count) = package_count {
            if !st.package_throttles.iter().any(|&(p, _)| p == package) {
                st.package_throttles.push((package, count));
            }
        }
    }
    st.core_throttles.sort_unstable();
    st.package_throttles.sort_unstable();
    const CORE: &[&str] = &["node_cpu_core_throttles_total"];
    let mark = expo.family(
        CORE,
        &["Number of times this CPU core has been throttled."],
        Kind::Counter,
    );
    for &(package, core, count) in &st.core_throttles {
        let (package, core) = (SmallNumber::new(package), SmallNumber::new(core));
        expo.sample(
            CORE,
            &[("core", core.as_str()), ("package", package.as_str())],
            count,
        );
    }
    expo.end_family(mark);
    const PACKAGE: &[&str] = &["node_cpu_package_throttles_total"];
    let mark = expo.family(
        PACKAGE,
        &["Number of times this CPU package has been throttled."],
        Kind::Counter,
    );
    for &(package, count) in &st.package_throttles {
        let package = SmallNumber::new(package);
        expo.sample(PACKAGE, &[("package", package.as_str())], count);
    }
    expo.end_family(mark);
}

/// `isolcpus=` CPUs, from a list like `2-3,6`. Usually empty: no series then.
fn isolated_cpus(paths: &Paths, s: &mut Files, expo: &mut Expo<'_>) -> io::Result<()> {
    let rel = ["devices/system/cpu/isolated"];
    let Ok(list) = read_optional(&mut s.path, &paths.sysfs, &rel, &mut s.aux) else {
        return Ok(());
    };
    const ISOLATED: &[&str] = &["node_cpu_isolated"];
    let mark = expo.family(
        ISOLATED,
        &["Whether each core is isolated, information from /sys/devices/system/cpu/isolated."],
        Kind::Gauge,
    );
    for range in list.trim().split(',').filter(|r| !r.is_empty()) {
        let bad = || invalid("devices/system/cpu/isolated", "not a CPU list");
        let (first, last) = range.split_once('-').unwrap_or((range, range));
        let first: u64 = first.trim().parse().map_err(|_| bad())?;
        let last: u64 = last.trim().parse().map_err(|_| bad())?;
        for cpu in first..=last {
            let cpu = SmallNumber::new(cpu);
            expo.sample(ISOLATED, &[("cpu", cpu.as_str())], 1u64);
        }
    }
    expo.end_family(mark);
    Ok(())
}
