//! `stat`: boot time, context switches, forks, interrupts and process counts from `/proc/stat`.

use std::io;

use super::expo::{Expo, Kind};
use super::files::{read_file, Files};
use super::Paths;

pub(super) fn collect(paths: &Paths, s: &mut Files, expo: &mut Expo<'_>) -> io::Result<()> {
    let text = read_file(&mut s.path, &paths.procfs, &["stat"], &mut s.data)?;
    let first_number = |key: &str| -> io::Result<u64> {
        text.lines()
            .find_map(|line| line.strip_prefix(key).and_then(|rest| rest.strip_prefix(' ')))
            .and_then(|rest| rest.split_ascii_whitespace().next())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("stat: no numeric `{key}` line"),
                )
            })
    };
    let (intr, ctxt, btime, forks) = (
        first_number("intr")?,
        first_number("ctxt")?,
        first_number("btime")?,
        first_number("processes")?,
    );
    let (running, blocked) = (first_number("procs_running")?, first_number("procs_blocked")?);
    expo.single(
        &["node_boot_time_seconds"],
        &["Node boot time, in unixtime."],
        Kind::Gauge,
        &[],
        btime,
    );
    expo.single(
        &["node_context_switches_total"],
        &["Total number of context switches."],
        Kind::Counter,
        &[],
        ctxt,
    );
    expo.single(
        &["node_forks_total"],
        &["Total number of forks."],
        Kind::Counter,
        &[],
        forks,
    );
    expo.single(
        &["node_intr_total"],
        &["Total number of interrupts serviced."],
        Kind::Counter,
        &[],
        intr,
    );
    expo.single(
        &["node_procs_blocked"],
        &["Number of processes blocked waiting for I/O to complete."],
        Kind::Gauge,
        &[],
        blocked,
    );
    expo.single(
        &["node_procs_running"],
        &["Number of processes in runnable state."],
        Kind::Gauge,
        &[],
        running,
    );
    Ok(())
}
