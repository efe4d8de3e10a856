//! The agent's own process metrics (Prometheus client names) from `/proc/self`.

use std::io;
use std::path::{Path, PathBuf};

use rustix::process::{getrlimit, Resource};

use super::cpu::clock_ticks_per_second;
use super::expo::{Expo, Kind};
use super::files::{for_each_entry, invalid, read_file, set_path};

/// Buffers of the process self-metrics, kept across calls: the loop reads `/proc/self` on every
/// self-scrape and every `/metrics` request, and must not allocate once warm.
pub(super) struct Scratch {
    path: PathBuf,
    /// Grows once to the size of `/proc/stat`, the larger of the two files read.
    data: Vec<u8>,
    clock_ticks: f64,
    page_size: u64,
}

impl Scratch {
    pub(super) fn new() -> Self {
        Scratch {
            path: PathBuf::with_capacity(256),
            data: Vec::with_capacity(4 * 1024),
            clock_ticks: clock_ticks_per_second(),
            page_size: rustix::param::page_size().max(1) as u64,
        }
    }
}

pub(super) fn collect(procfs: &Path, s: &mut Scratch, expo: &mut Expo<'_>) -> io::Result<()> {
    let (path, buf) = (&mut s.path, &mut s.data);
    let boot_time: u64 = {
        let text = read_file(path, procfs, &["stat"], buf)?;
        text.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| invalid("stat", "no btime line"))?
    };
    let text = read_file(path, procfs, &["self/stat"], buf)?;
    // The command name may contain spaces and parentheses; the fields start after the last ')'.
    let after_name = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .ok_or_else(|| invalid("self/stat", "no ')'"))?;
    let field = |n: usize| -> io::Result<u64> {
        // `n` is the 1-based field number of proc(5); field 3 is the first after the name.
        after_name
            .split_ascii_whitespace()
            .nth(n - 3)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("self/stat: field {n} missing"),
                )
            })
    };
    let (utime, stime, start_ticks, vsize, rss_pages) =
        (field(14)?, field(15)?, field(22)?, field(23)?, field(24)?);
    let (ticks, page_size) = (s.clock_ticks, s.page_size);
    expo.single(
        &["process_cpu_seconds_total"],
        &["Total user and system CPU time spent in seconds."],
        Kind::Counter,
        &[],
        (utime + stime) as f64 / ticks,
    );
    // An unlimited limit is RLIM_INFINITY (u64::MAX) to the kernel and to the Go client.
    let max_fds = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    expo.single(
        &["process_max_fds"],
        &["Maximum number of open file descriptors."],
        Kind::Gauge,
        &[],
        max_fds,
    );
    if let Some(open) = count_open_fds(&mut s.path, procfs) {
        expo.single(
            &["process_open_fds"],
            &["Number of open file descriptors."],
            Kind::Gauge,
            &[],
            open,
        );
    }
    expo.single(
        &["process_resident_memory_bytes"],
        &["Resident memory size in bytes."],
        Kind::Gauge,
        &[],
        rss_pages.saturating_mul(page_size),
    );
    expo.single(
        &["process_start_time_seconds"],
        &["Start time of the process since unix epoch in seconds."],
        Kind::Gauge,
        &[],
        boot_time as f64 + start_ticks as f64 / ticks,
    );
    // Unlimited is reported as 1.8446744073709552e+19, as the Go client does.
    let max_bytes = getrlimit(Resource::As).current.unwrap_or(u64::MAX);
    expo.single(
        &["process_virtual_memory_max_bytes"],
        &["Maximum amount of virtual memory available in bytes."],
        Kind::Gauge,
        &[],
        max_bytes as f64,
    );
    expo.single(
        &["process_virtual_memory_bytes"],
        &["Virtual memory size in bytes."],
        Kind::Gauge,
        &[],
        vsize,
    );
    Ok(())
}

/// Counts `/proc/self/fd` entries without allocating (see [`for_each_entry`]).
fn count_open_fds(path: &mut PathBuf, procfs: &Path) -> Option<u64> {
    set_path(path, procfs, &["self/fd"]);
    let mut count = 0u64;
    for_each_entry(path, |_, _| count += 1).ok()?;
    // The count included the descriptor of the directory being read.
    Some(count.saturating_sub(1))
}
