//! `schedstat`: per-CPU scheduler statistics from `/proc/schedstat` (Documentation/scheduler/
//! sched-stats.rst): time spent running, time spent waiting to run, and timeslices.

use std::io;

use super::expo::{Expo, Kind};
use super::files::{read_file, Files};
use super::Paths;

const FAMILIES: [(usize, &str, &str, f64); 3] = [
    (
        6,
        "node_schedstat_running_seconds_total",
        "Number of seconds CPU spent running a process.",
        1e9,
    ),
    (
        7,
        "node_schedstat_waiting_seconds_total",
        "Number of seconds spent by processing waiting for this CPU.",
        1e9,
    ),
    (
        8,
        "node_schedstat_timeslices_total",
        "Number of timeslices executed by CPU.",
        1.0,
    ),
];

pub(super) fn collect(paths: &Paths, s: &mut Files, expo: &mut Expo<'_>) -> io::Result<()> {
    let text = read_file(&mut s.path, &paths.procfs, &["schedstat"], &mut s.data)?;
    for (column, name, help, divisor) in FAMILIES {
        let mark = expo.family(&[name], &[help], Kind::Counter);
        for (cpu, fields) in text.lines().filter_map(cpu_line) {
            let value = fields[column] as f64;
            let value = if divisor == 1.0 { value } else { value / divisor };
            expo.sample(&[name], &[("cpu", cpu)], value);
        }
        expo.end_family(mark);
    }
    Ok(())
}

/// A `cpuN` line with at least nine numbers after the name, each after one space; other lines
/// (version, timestamp, domains) are skipped, as node_exporter's pattern skips them.
fn cpu_line(line: &str) -> Option<(&str, [u64; 9])> {
    let rest = line.strip_prefix("cpu")?;
    let (cpu, numbers) = rest.split_once(' ')?;
    if cpu.is_empty() || !cpu.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut fields = [0u64; 9];
    let mut parts = numbers.split(' ');
    for slot in &mut fields {
        let part = parts.next()?;
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *slot = part.parse().ok()?;
    }
    Some((cpu, fields))
}
