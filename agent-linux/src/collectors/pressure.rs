//! `pressure`: pressure stall information (PSI) totals from `/proc/pressure/`.

use std::io;

use super::expo::{Expo, Kind};
use super::files::{read_file, Files};
use super::Paths;

pub(super) fn collect(paths: &Paths, s: &mut Files, expo: &mut Expo<'_>) -> io::Result<()> {
    // node_exporter 1.5 exports CPU "some" only; "full" for CPU came later.
    const FAMILIES: [(&str, &str, &str, &str); 5] = [
        (
            "cpu",
            "some",
            "node_pressure_cpu_waiting_seconds_total",
            "Total time in seconds that processes have waited for CPU time",
        ),
        (
            "io",
            "some",
            "node_pressure_io_waiting_seconds_total",
            "Total time in seconds that processes have waited due to IO congestion",
        ),
        (
            "io",
            "full",
            "node_pressure_io_stalled_seconds_total",
            "Total time in seconds no process could make progress due to IO congestion",
        ),
        (
            "memory",
            "some",
            "node_pressure_memory_waiting_seconds_total",
            "Total time in seconds that processes have waited for memory",
        ),
        (
            "memory",
            "full",
            "node_pressure_memory_stalled_seconds_total",
            "Total time in seconds no process could make progress due to memory congestion",
        ),
    ];
    for (resource, kind, name, help) in FAMILIES {
        let text = read_file(&mut s.path, &paths.procfs, &["pressure", resource], &mut s.data)?;
        let micros: u64 = text
            .lines()
            .find_map(|line| line.strip_prefix(kind).filter(|rest| rest.starts_with(' ')))
            .and_then(|rest| {
                rest.split_ascii_whitespace()
                    .find_map(|w| w.strip_prefix("total="))
            })
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("pressure/{resource}: no `{kind} ... total=` line"),
                )
            })?;
        expo.single(&[name], &[help], Kind::Counter, &[], micros as f64 / 1e6);
    }
    Ok(())
}
