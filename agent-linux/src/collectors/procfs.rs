//! The collectors proper: each reads its kernel files into reused buffers and writes families.
//!
//! node_exporter 1.5 is the reference for every name, label, type, unit and default filter here.

use std::ffi::CStr;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read as _};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::io::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use outpost_core::plan::Collector;

use super::expo::{Expo, Kind, Value};
use super::Paths;

/// node_exporter hard-codes USER_HZ as 100; reading it keeps us right on kernels that differ.
fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// A mount kept for rendering: ranges into `Scratch::mount_text`, then its statvfs result.
struct Mount {
    device: (usize, usize),
    mountpoint: (usize, usize),
    fstype: (usize, usize),
    readonly: bool,
    stats: Option<FsStats>,
}

impl Mount {
    fn key<'t>(&self, text: &'t str) -> (&'t str, &'t str, &'t str) {
        let range = |(start, end): (usize, usize)| &text[start..end];
        (range(self.device), range(self.mountpoint), range(self.fstype))
    }
}

#[derive(Clone, Copy)]
struct FsStats {
    size: u64,
    free: u64,
    avail: u64,
    files: u64,
    files_free: u64,
}

/// Buffers reused across scrapes; they grow to the node's largest file and stay there.
pub(super) struct Scratch {
    path: PathBuf,
    data: Vec<u8>,
    aux: Vec<u8>,
    text: String,
    mount_text: String,
    mounts: Vec<Mount>,
    udev_text: String,
    udev_ranges: Vec<(usize, usize)>,
    /// (package, core, count) and (package, count), deduplicated per scrape.
    core_throttles: Vec<(u64, u64, u64)>,
    package_throttles: Vec<(u64, u64)>,
    /// Indexed by CPU number; outlives scrapes so that counters stay monotonic.
    cpu_ticks: Vec<CpuTicks>,
    clock_ticks: f64,
    tz_ready: bool,
}

impl Scratch {
    pub(super) fn new() -> Self {
        Scratch {
            path: PathBuf::with_capacity(256),
            data: Vec::with_capacity(16 * 1024),
            aux: Vec::with_capacity(1024),
            text: String::with_capacity(256),
            mount_text: String::with_capacity(1024),
            mounts: Vec::with_capacity(16),
            udev_text: String::with_capacity(4096),
            udev_ranges: Vec::with_capacity(16),
            core_throttles: Vec::with_capacity(16),
            cpu_ticks: Vec::new(),
            package_throttles: Vec::with_capacity(4),
            clock_ticks: clock_ticks_per_second(),
            tz_ready: false,
        }
    }

    /// The path of the last file a collector opened.
    pub(super) fn last_path(&self) -> &Path {
        &self.path
    }
}

/// Reads `root/rel...`, a file the collector needs, into `buf`.
///
/// The error is the bare OS error (no payload, so no allocation: a collector that fails on every
/// scrape, like pressure on a kernel without PSI, must not allocate every time) and `path` keeps
/// the file's path. A collector returns such an error at once, before touching `path` again, so
/// that [`super::NodeCollector`] can name the file; errors about a file's content carry their
/// own message instead.
fn read_file<'b>(path: &mut PathBuf, root: &Path, rel: &[&str], buf: &'b mut Vec<u8>) -> io::Result<&'b str> {
    read_optional(path, root, rel, buf)
}

/// Like [`read_file`], for files that may legitimately be absent: callers skip on error.
fn read_optional<'b>(
    path: &mut PathBuf,
    root: &Path,
    rel: &[&str],
    buf: &'b mut Vec<u8>,
) -> io::Result<&'b str> {
    set_path(path, root, rel);
    buf.clear();
    File::open(&*path).and_then(|mut f| f.read_to_end(buf))?;
    std::str::from_utf8(buf).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
}

fn set_path(path: &mut PathBuf, root: &Path, rel: &[&str]) {
    path.as_mut_os_string().clear();
    path.push(root);
    for part in rel {
        path.push(part);
    }
}

fn invalid(file: &str, what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{file}: {what}"))
}

pub(super) fn run(
    collector: Collector,
    paths: &Paths,
    s: &mut Scratch,
    expo: &mut Expo<'_>,
) -> io::Result<()> {
    match collector {
        Collector::Cpu => cpu(paths, s, expo),
        Collector::Meminfo => meminfo(paths, s, expo),
        Collector::Loadavg => loadavg(paths, s, expo),
        Collector::Diskstats => diskstats(paths, s, expo),
        Collector::Filesystem => filesystem(paths, s, expo),
        Collector::Netdev => netdev(paths, s, expo),
        Collector::Stat => stat(paths, s, expo),
        Collector::Uname => uname(expo),
        Collector::Time => time(paths, s, expo),
        Collector::Vmstat => vmstat(paths, s, expo),
        Collector::Pressure => pressure(paths, s, expo),
    }
}

// ---------------------------------------------------------------- cpu

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

fn cpu(paths: &Paths, s: &mut Scratch, expo: &mut Expo<'_>) -> io::Result<()> {
    const SECONDS: &[&str] = &["node_cpu_seconds_total"];
    const GUEST: &[&str] = &["node_cpu_guest_seconds_total"];
    // /proc/stat column order after the cpu name; guest and guest_nice follow at 8 and 9.
    const MODES: [&str; 8] = [
        "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
    ];
    const IDLE: usize = 3;
    const GUEST_MODES: [(usize, &str); 2] = [(8, "user"), (9, "nice")];
    let ticks_per_second = s.clock_ticks;
    let text = read_file(&mut s.path, &paths.procfs, &["stat"], &mut s.data)?;
    for state in &mut s.cpu_ticks {
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
        if id >= s.cpu_ticks.len() {
            // Grows once per CPU the node has, on the first scrape.
            s.cpu_ticks.resize(id + 1, CpuTicks::default());
        }
        let state = &mut s.cpu_ticks[id];
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
    for (id, state) in s.cpu_ticks.iter().enumerate().filter(|(_, t)| t.present) {
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
    for (id, state) in s.cpu_ticks.iter().enumerate().filter(|(_, t)| t.present) {
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
    thermal_throttles(paths, s, expo);
    isolated_cpus(paths, s, expo)?;
    Ok(())
}

/// Thermal throttle counters exist on bare metal only; their absence is not an error.
/// Hyperthreads share a core and cores share a package, so each counter is reported once.
fn thermal_throttles(paths: &Paths, s: &mut Scratch, expo: &mut Expo<'_>) {
    s.core_throttles.clear();
    s.package_throttles.clear();
    let read_number = |s: &mut Scratch, cpu: &str, file: &str| -> Option<u64> {
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
            if !s
                .core_throttles
                .iter()
                .any(|&(p, c, _)| (p, c) == (package, core))
            {
                s.core_throttles.push((package, core, count));
            }
        }
        if let Some(count) = package_count {
            if !s.package_throttles.iter().any(|&(p, _)| p == package) {
                s.package_throttles.push((package, count));
            }
        }
    }
    s.core_throttles.sort_unstable();
    s.package_throttles.sort_unstable();
    const CORE: &[&str] = &["node_cpu_core_throttles_total"];
    let mark = expo.family(
        CORE,
        &["Number of times this CPU core has been throttled."],
        Kind::Counter,
    );
    for &(package, core, count) in &s.core_throttles {
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
    for &(package, count) in &s.package_throttles {
        let package = SmallNumber::new(package);
        expo.sample(PACKAGE, &[("package", package.as_str())], count);
    }
    expo.end_family(mark);
}

/// `isolcpus=` CPUs, from a list like `2-3,6`. Usually empty: no series then.
fn isolated_cpus(paths: &Paths, s: &mut Scratch, expo: &mut Expo<'_>) -> io::Result<()> {
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

// ---------------------------------------------------------------- stat

fn stat(paths: &Paths, s: &mut Scratch, expo: &mut Expo<'_>) -> io::Result<()> {
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

// ---------------------------------------------------------------- meminfo

fn meminfo(paths: &Paths, s: &mut Scratch, expo: &mut Expo<'_>) -> io::Result<()> {
    let text = read_file(&mut s.path, &paths.procfs, &["meminfo"], &mut s.data)?;
    let samples_before = expo.samples;
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let mut words = rest.split_ascii_whitespace();
        let Some(number) = words.next() else { continue };
        let value: u64 = number
            .parse()
            .map_err(|_| invalid("meminfo", "value not a number"))?;
        let in_kib = words.next() == Some("kB");
        let value = if in_kib { value.saturating_mul(1024) } else { value };
        let suffix = if in_kib { "_bytes" } else { "" };
        // "Active(anon)" becomes "Active_anon", as node_exporter does.
        let (stem, inner) = match key.split_once('(') {
            Some((stem, inner)) => (stem, inner.trim_end_matches(')')),
            None => (key, ""),
        };
        let sep = if inner.is_empty() { "" } else { "_" };
        let name = ["node_memory_", stem, sep, inner, suffix];
        expo.single(
            &name,
            &["Memory information field ", stem, sep, inner, suffix, "."],
            Kind::Gauge,
            &[],
            value,
        );
    }
    if expo.samples == samples_before {
        return Err(invalid("meminfo", "no fields"));
    }
    Ok(())
}

// ---------------------------------------------------------------- loadavg

fn loadavg(paths: &Paths, s: &mut Scratch, expo: &mut Expo<'_>) -> io::Result<()> {
    let text = read_file(&mut s.path, &paths.procfs, &["loadavg"], &mut s.data)?;
    let mut words = text.split_ascii_whitespace();
    for (name, help) in [
        ("node_load1", "1m load average."),
        ("node_load5", "5m load average."),
        ("node_load15", "15m load average."),
    ] {
        let value: f64 = words
            .next()
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| invalid("loadavg", "fewer than 3 load averages"))?;
        expo.single(&[name], &[help], Kind::Gauge, &[], value);
    }
    Ok(())
}

// ---------------------------------------------------------------- vmstat

/// node_exporter's default `--collector.vmstat.fields`: `^(oom_kill|pgpg|pswp|pg.*fault).*`.
fn vmstat_field_selected(field: &str) -> bool {
    field.starts_with("oom_kill")
        || field.starts_with("pgpg")
        || field.starts_with("pswp")
        || field
            .strip_prefix("pg")
            .is_some_and(|rest| rest.contains("fault"))
}

fn vmstat(paths: &Paths, s: &mut Scratch, expo: &mut Expo<'_>) -> io::Result<()> {
    let text = read_file(&mut s.path, &paths.procfs, &["vmstat"], &mut s.data)?;
    for line in text.lines() {
        let Some((field, number)) = line.split_once(' ') else {
            continue;
        };
        if !vmstat_field_selected(field) {
            continue;
        }
        let value = match number.trim().parse::<u64>() {
            Ok(v) => Value::Int(v),
            Err(_) => Value::Float(
                number
                    .trim()
                    .parse()
                    .map_err(|_| invalid("vmstat", "value not a number"))?,
            ),
        };
        let name = ["node_vmstat_", field];
        expo.single(
            &name,
            &["/proc/vmstat information field ", field, "."],
            Kind::Untyped,
            &[],
            value,
        );
    }
    Ok(())
}

// ---------------------------------------------------------------- pressure

fn pressure(paths: &Paths, s: &mut Scratch, expo: &mut Expo<'_>) -> io::Result<()> {
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

// ---------------------------------------------------------------- uname

fn uname(expo: &mut Expo<'_>) -> io::Result<()> {
    // SAFETY: utsname is plain old data; uname fills it or fails.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut uts) } != 0 {
        return Err(io::Error::other(format!(
            "uname(2): {}",
            io::Error::last_os_error()
        )));
    }
    fn field(chars: &[libc::c_char]) -> &str {
        // SAFETY: the kernel NUL-terminates each field within its array, and zeroed() covers a
        // field it left untouched.
        let bytes = unsafe { CStr::from_ptr(chars.as_ptr()) }.to_bytes();
        std::str::from_utf8(bytes).unwrap_or("")
    }
    expo.single(
        &["node_uname_info"],
        &["Labeled system information as provided by the uname system call."],
        Kind::Gauge,
        &[
            ("domainname", field(&uts.domainname)),
            ("machine", field(&uts.machine)),
            ("nodename", field(&uts.nodename)),
            ("release", field(&uts.release)),
            ("sysname", field(&uts.sysname)),
            ("version", field(&uts.version)),
        ],
        1u64,
    );
    Ok(())
}

// ---------------------------------------------------------------- time

extern "C" {
    // Not bound by the libc crate; POSIX, present in glibc and musl.
    fn tzset();
}

fn time(paths: &Paths, s: &mut Scratch, expo: &mut Expo<'_>) -> io::Result<()> {
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
    if !s.tz_ready {
        // SAFETY: tzset only reads TZ and /etc/localtime; called before any localtime_r here.
        unsafe { tzset() };
        s.tz_ready = true;
    }
    let seconds = now.as_secs() as libc::time_t;
    // SAFETY: localtime_r writes into our tm only; tm_zone then points at static tz storage.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&seconds, &mut tm) }.is_null() {
        return Err(io::Error::other("localtime_r failed"));
    }
    let zone = if tm.tm_zone.is_null() {
        ""
    } else {
        unsafe { CStr::from_ptr(tm.tm_zone) }.to_str().unwrap_or("")
    };
    expo.single(
        &["node_time_zone_offset_seconds"],
        &["System time zone offset in seconds."],
        Kind::Gauge,
        &[("time_zone", zone)],
        Value::Float(tm.tm_gmtoff as f64),
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

/// A number as text without a heap `String`.
struct SmallNumber {
    bytes: [u8; 20],
    start: usize,
}

impl SmallNumber {
    fn new(mut v: u64) -> Self {
        let mut n = SmallNumber {
            bytes: [0; 20],
            start: 20,
        };
        loop {
            n.start -= 1;
            n.bytes[n.start] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                return n;
            }
        }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[self.start..]).unwrap_or("")
    }
}

// ---------------------------------------------------------------- diskstats

/// node_exporter 1.5's default `--collector.diskstats.device-exclude`:
/// `^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$` (partitions and pseudo devices).
pub(super) fn disk_excluded(device: &str) -> bool {
    fn digits_only(s: &str) -> bool {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
    }
    fn letter_then_digits(s: &str) -> bool {
        s.as_bytes().first().is_some_and(u8::is_ascii_lowercase) && digits_only(&s[1..])
    }
    for prefix in ["ram", "loop", "fd"] {
        if device.strip_prefix(prefix).is_some_and(digits_only) {
            return true;
        }
    }
    for prefix in ["hd", "sd", "vd", "xvd"] {
        if device.strip_prefix(prefix).is_some_and(letter_then_digits) {
            return true;
        }
    }
    // nvme\d+n\d+p\d+
    if let Some(rest) = device.strip_prefix("nvme") {
        let mut parts = rest.splitn(2, 'n');
        let (ctrl, rest) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if let Some((ns, part)) = rest.split_once('p') {
            return digits_only(ctrl) && digits_only(ns) && digits_only(part);
        }
    }
    false
}

fn diskstats(paths: &Paths, s: &mut Scratch, expo: &mut Expo<'_>) -> io::Result<()> {
    /// (column after major/minor/name, metric, help, type, scale)
    const STATS: [(usize, &str, &str, Kind, Scale); 17] = [
        (
            0,
            "node_disk_reads_completed_total",
            "The total number of reads completed successfully.",
            Kind::Counter,
            Scale::One,
        ),
        (
            1,
            "node_disk_reads_merged_total",
            "The total number of reads merged.",
            Kind::Counter,
            Scale::One,
        ),
        (
            2,
            "node_disk_read_bytes_total",
            "The total number of bytes read successfully.",
            Kind::Counter,
            Scale::Sectors,
        ),
        (
            3,
            "node_disk_read_time_seconds_total",
            "The total number of seconds spent by all reads.",
            Kind::Counter,
            Scale::Millis,
        ),
        (
            4,
            "node_disk_writes_completed_total",
            "The total number of writes completed successfully.",
            Kind::Counter,
            Scale::One,
        ),
        (
            5,
            "node_disk_writes_merged_total",
            "The number of writes merged.",
            Kind::Counter,
            Scale::One,
        ),
        (
            6,
            "node_disk_written_bytes_total",
            "The total number of bytes written successfully.",
            Kind::Counter,
            Scale::Sectors,
        ),
        (
            7,
            "node_disk_write_time_seconds_total",
            "This is the total number of seconds spent by all writes.",
            Kind::Counter,
            Scale::Millis,
        ),
        (
            8,
            "node_disk_io_now",
            "The number of I/Os currently in progress.",
            Kind::Gauge,
            Scale::One,
        ),
        (
            9,
            "node_disk_io_time_seconds_total",
            "Total seconds spent doing I/Os.",
            Kind::Counter,
            Scale::Millis,
        ),
        (
            10,
            "node_disk_io_time_weighted_seconds_total",
            "The weighted # of seconds spent doing I/Os.",
            Kind::Counter,
            Scale::Millis,
        ),
        (
            11,
            "node_disk_discards_completed_total",
            "The total number of discards completed successfully.",
            Kind::Counter,
            Scale::One,
        ),
        (
            12,
            "node_disk_discards_merged_total",
            "The total number of discards merged.",
            Kind::Counter,
            Scale::One,
        ),
        (
            13,
            "node_disk_discarded_sectors_total",
            "The total number of sectors discarded successfully.",
            Kind::Counter,
            Scale::One,
        ),
        (
            14,
            "node_disk_discard_time_seconds_total",
            "This is the total number of seconds spent by all discards.",
            Kind::Counter,
            Scale::Millis,
        ),
        (
            15,
            "node_disk_flush_requests_total",
            "The total number of flush requests completed successfully",
            Kind::Counter,
            Scale::One,
        ),
        (
            16,
            "node_disk_flush_requests_time_seconds_total",
            "This is the total number of seconds spent by all flush requests.",
            Kind::Counter,
            Scale::Millis,
        ),
    ];
    let text = read_file(&mut s.path, &paths.procfs, &["diskstats"], &mut s.data)?;
    let disks = || {
        text.lines().filter_map(|line| {
            let mut words = line.split_ascii_whitespace();
            let (major, minor, device) = (words.next()?, words.next()?, words.next()?);
            (!disk_excluded(device)).then_some((major, minor, device, words))
        })
    };
    // udev's database is optional (containers, minimal hosts): empty labels then, as in
    // node_exporter. Each disk's entry is read once and kept for the four udev-based families.
    s.udev_text.clear();
    s.udev_ranges.clear();
    for (major, minor, _, _) in disks() {
        s.text.clear();
        let _ = write!(s.text, "b{major}:{minor}");
        let start = s.udev_text.len();
        let rel = ["run/udev/data", s.text.as_str()];
        if let Ok(udev) = read_optional(&mut s.path, &paths.rootfs, &rel, &mut s.aux) {
            s.udev_text.push_str(udev);
        }
        s.udev_ranges.push((start, s.udev_text.len()));
    }
    let udev_of = |index: usize| &s.udev_text[s.udev_ranges[index].0..s.udev_ranges[index].1];
    const INFO: &[&str] = &["node_disk_info"];
    let mark = expo.family(INFO, &["Info of /sys/block/<block_device>."], Kind::Gauge);
    for (index, (major, minor, device, _)) in disks().enumerate() {
        let udev = udev_of(index);
        let property = |key| udev_property(udev, key).unwrap_or("");
        expo.sample(
            INFO,
            &[
                ("device", device),
                ("major", major),
                ("minor", minor),
                ("model", property("ID_MODEL")),
                ("path", property("ID_PATH")),
                ("revision", property("ID_REVISION")),
                ("serial", property("ID_SERIAL_SHORT")),
                ("wwn", property("ID_WWN")),
            ],
            1u64,
        );
    }
    expo.end_family(mark);
    const FS_INFO: &[&str] = &["node_disk_filesystem_info"];
    let mark = expo.family(FS_INFO, &["Info about disk filesystem."], Kind::Gauge);
    for (index, (_, _, device, _)) in disks().enumerate() {
        let udev = udev_of(index);
        let property = |key| udev_property(udev, key).unwrap_or("");
        if !property("ID_FS_TYPE").is_empty() {
            let labels = [
                ("device", device),
                ("type", property("ID_FS_TYPE")),
                ("usage", property("ID_FS_USAGE")),
                ("uuid", property("ID_FS_UUID")),
                ("version", property("ID_FS_VERSION")),
            ];
            expo.sample(FS_INFO, &labels, 1u64);
        }
    }
    expo.end_family(mark);
    const DM_INFO: &[&str] = &["node_disk_device_mapper_info"];
    let mark = expo.family(DM_INFO, &["Info about disk device mapper."], Kind::Gauge);
    for (index, (_, _, device, _)) in disks().enumerate() {
        let udev = udev_of(index);
        let property = |key| udev_property(udev, key).unwrap_or("");
        if !property("DM_NAME").is_empty() {
            let labels = [
                ("device", device),
                ("lv_layer", property("DM_LV_LAYER")),
                ("lv_name", property("DM_LV_NAME")),
                ("name", property("DM_NAME")),
                ("uuid", property("DM_UUID")),
                ("vg_name", property("DM_VG_NAME")),
            ];
            expo.sample(DM_INFO, &labels, 1u64);
        }
    }
    expo.end_family(mark);
    for (key, name, help) in [
        (
            "ID_ATA_ROTATION_RATE_RPM",
            "node_disk_ata_rotation_rate_rpm",
            "ATA disk rotation rate in RPMs (0 for SSDs).",
        ),
        (
            "ID_ATA_WRITE_CACHE",
            "node_disk_ata_write_cache",
            "ATA disk has a write cache.",
        ),
        (
            "ID_ATA_WRITE_CACHE_ENABLED",
            "node_disk_ata_write_cache_enabled",
            "ATA disk has its write cache enabled.",
        ),
    ] {
        let mark = expo.family(&[name], &[help], Kind::Gauge);
        for (index, (_, _, device, _)) in disks().enumerate() {
            let udev = udev_of(index);
            if udev_property(udev, "ID_ATA").is_none_or(str::is_empty) {
                continue;
            }
            if let Some(value) = udev_property(udev, key).and_then(|v| v.parse::<f64>().ok()) {
                expo.sample(&[name], &[("device", device)], value);
            }
        }
        expo.end_family(mark);
    }
    for (column, name, help, kind, scale) in STATS {
        let mark = expo.family(&[name], &[help], kind);
        for (_, _, device, mut columns) in disks() {
            // Older kernels have fewer columns (no discard/flush); those series are simply absent.
            let Some(raw) = columns.nth(column) else { continue };
            let raw: u64 = raw
                .parse()
                .map_err(|_| invalid("diskstats", "column not a number"))?;
            let value = match scale {
                Scale::One => Value::Int(raw),
                Scale::Sectors => Value::Int(raw.saturating_mul(512)),
                Scale::Millis => Value::Float(raw as f64 / 1000.0),
            };
            expo.sample(&[name], &[("device", device)], value);
        }
        expo.end_family(mark);
    }
    Ok(())
}

/// An `E:KEY=value` property of a udev database entry.
fn udev_property<'u>(udev: &'u str, key: &str) -> Option<&'u str> {
    udev.lines()
        .find_map(|line| line.strip_prefix("E:")?.strip_prefix(key)?.strip_prefix('='))
}

#[derive(Clone, Copy)]
enum Scale {
    One,
    /// The kernel counts 512-byte sectors whatever the device's sector size.
    Sectors,
    Millis,
}

// ---------------------------------------------------------------- netdev

fn netdev(paths: &Paths, s: &mut Scratch, expo: &mut Expo<'_>) -> io::Result<()> {
    let text = read_file(&mut s.path, &paths.procfs, &["net/dev"], &mut s.data)?;
    let mut lines = text.lines();
    let _title = lines.next();
    let header = lines
        .next()
        .ok_or_else(|| invalid("net/dev", "no column header"))?;
    let mut groups = header.split('|').skip(1);
    let receive = groups
        .next()
        .ok_or_else(|| invalid("net/dev", "no receive columns"))?;
    let transmit = groups
        .next()
        .ok_or_else(|| invalid("net/dev", "no transmit columns"))?;
    let devices = || {
        text.lines().skip(2).filter_map(|line| {
            let (device, columns) = line.split_once(':')?;
            let device = device.trim();
            // node_exporter's default `--collector.netdev.device-exclude=^lo$`.
            (device != "lo").then_some((device, columns))
        })
    };
    let columns = receive
        .split_ascii_whitespace()
        .map(|c| ("receive_", c))
        .chain(transmit.split_ascii_whitespace().map(|c| ("transmit_", c)));
    for (index, (direction, column)) in columns.enumerate() {
        let name = ["node_network_", direction, column, "_total"];
        let mark = expo.family(
            &name,
            &["Network device statistic ", direction, column, "."],
            Kind::Counter,
        );
        for (device, values) in devices() {
            let Some(raw) = values.split_ascii_whitespace().nth(index) else {
                continue;
            };
            let value: u64 = raw
                .parse()
                .map_err(|_| invalid("net/dev", "column not a number"))?;
            expo.sample(&name, &[("device", device)], value);
        }
        expo.end_family(mark);
    }
    // node_exporter 1.5 reads netlink, which also carries rx_nohandler; /proc/net/dev does not,
    // sysfs does.
    const NOHANDLER: &[&str] = &["node_network_receive_nohandler_total"];
    let mark = expo.family(
        NOHANDLER,
        &["Network device statistic receive_nohandler."],
        Kind::Counter,
    );
    for (device, _) in devices() {
        let rel = ["class/net", device, "statistics/rx_nohandler"];
        let Ok(raw) = read_optional(&mut s.path, &paths.sysfs, &rel, &mut s.aux) else {
            continue;
        };
        if let Ok(value) = raw.trim().parse::<u64>() {
            expo.sample(NOHANDLER, &[("device", device)], value);
        }
    }
    expo.end_family(mark);
    Ok(())
}

// ---------------------------------------------------------------- filesystem

/// node_exporter 1.5's default `--collector.filesystem.mount-points-exclude`:
/// `^/(dev|proc|run|sys|mnt|media|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)`.
pub(super) fn mount_point_excluded(mount_point: &str) -> bool {
    let Some(rest) = mount_point.strip_prefix('/') else {
        return false;
    };
    for dir in ["dev", "proc", "run", "sys", "mnt", "media"] {
        if rest
            .strip_prefix(dir)
            .is_some_and(|tail| tail.is_empty() || tail.starts_with('/'))
        {
            return true;
        }
    }
    // `.+` then `($|/)` holds for any non-empty tail.
    ["var/lib/docker/", "var/lib/containers/storage/"]
        .iter()
        .any(|dir| rest.strip_prefix(dir).is_some_and(|tail| !tail.is_empty()))
}

/// node_exporter 1.5's default `--collector.filesystem.fs-types-exclude`.
pub(super) fn fs_type_excluded(fs_type: &str) -> bool {
    const EXCLUDED: [&str; 24] = [
        "autofs",
        "binfmt_misc",
        "bpf",
        "cgroup",
        "cgroup2",
        "configfs",
        "debugfs",
        "devpts",
        "devtmpfs",
        "fusectl",
        "hugetlbfs",
        "iso9660",
        "mqueue",
        "nsfs",
        "overlay",
        "proc",
        "procfs",
        "pstore",
        "rpc_pipefs",
        "securityfs",
        "selinuxfs",
        "squashfs",
        "sysfs",
        "tracefs",
    ];
    EXCLUDED.contains(&fs_type)
}

/// Appends a mounts-file field with its octal escapes (`\040` for space, ...) decoded.
fn push_unescaped(out: &mut String, field: &str) -> (usize, usize) {
    let start = out.len();
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let digits = rest
            .as_bytes()
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match digits {
            Some(d) => {
                let code = u32::from(d[0] - b'0') * 64 + u32::from(d[1] - b'0') * 8 + u32::from(d[2] - b'0');
                out.push(char::from_u32(code).unwrap_or('?'));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    (start, out.len())
}

/// node_exporter strips the rootfs prefix from mount points so that labels name the host's paths.
fn strip_rootfs<'m>(rootfs: &Path, mount_point: &'m str) -> &'m str {
    let root = rootfs.as_os_str().to_str().unwrap_or("/").trim_end_matches('/');
    if root.is_empty() {
        return mount_point;
    }
    match mount_point.strip_prefix(root) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => mount_point,
    }
}

fn statvfs(path: &mut PathBuf, c_path: &mut Vec<u8>, rootfs: &Path, mount_point: &str) -> Option<FsStats> {
    set_path(path, rootfs, &[mount_point.trim_start_matches('/')]);
    c_path.clear();
    c_path.extend_from_slice(path.as_os_str().as_bytes());
    if c_path.contains(&0) {
        return None;
    }
    c_path.push(0);
    // SAFETY: c_path is NUL-terminated; statvfs writes only into `st`.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr().cast(), &mut st) } != 0 {
        return None;
    }
    let fragment = st.f_frsize as u64;
    Some(FsStats {
        size: (st.f_blocks as u64).saturating_mul(fragment),
        free: (st.f_bfree as u64).saturating_mul(fragment),
        avail: (st.f_bavail as u64).saturating_mul(fragment),
        files: st.f_files as u64,
        files_free: st.f_ffree as u64,
    })
}

fn filesystem(paths: &Paths, s: &mut Scratch, expo: &mut Expo<'_>) -> io::Result<()> {
    // PID 1's view is the host's when procfs is the host's /proc; node_exporter falls back the same way.
    let text = match read_file(&mut s.path, &paths.procfs, &["1/mounts"], &mut s.data) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            read_file(&mut s.path, &paths.procfs, &["mounts"], &mut s.data)?
        }
        Err(e) => return Err(e),
    };
    s.mount_text.clear();
    s.mounts.clear();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(device), Some(raw_mount_point), Some(fs_type), options) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next().unwrap_or(""),
        ) else {
            continue;
        };
        if fs_type_excluded(fs_type) {
            continue;
        }
        let mark = s.mount_text.len();
        let decoded = push_unescaped(&mut s.mount_text, raw_mount_point);
        let stripped = strip_rootfs(&paths.rootfs, &s.mount_text[decoded.0..decoded.1]);
        if mount_point_excluded(stripped) {
            s.mount_text.truncate(mark);
            continue;
        }
        let offset = s.mount_text[decoded.0..decoded.1].len() - stripped.len();
        let mount_point = (decoded.0 + offset, decoded.1);
        let device_range = push_unescaped(&mut s.mount_text, device);
        let fs_type_range = push_unescaped(&mut s.mount_text, fs_type);
        let candidate = Mount {
            device: device_range,
            mountpoint: mount_point,
            fstype: fs_type_range,
            readonly: options.split(',').any(|o| o == "ro"),
            stats: None,
        };
        // A mount stacked on the same path with the same device and type would repeat a series.
        if s.mounts
            .iter()
            .any(|m| m.key(&s.mount_text) == candidate.key(&s.mount_text))
        {
            s.mount_text.truncate(mark);
            continue;
        }
        s.mounts.push(candidate);
    }
    for i in 0..s.mounts.len() {
        let (start, end) = s.mounts[i].mountpoint;
        let mount_point = &s.mount_text[start..end];
        s.mounts[i].stats = statvfs(&mut s.path, &mut s.aux, &paths.rootfs, mount_point);
    }

    type Field = fn(&FsStats) -> u64;
    let families: [(&str, &str, Field); 5] = [
        ("node_filesystem_size_bytes", "Filesystem size in bytes.", |f| {
            f.size
        }),
        (
            "node_filesystem_free_bytes",
            "Filesystem free space in bytes.",
            |f| f.free,
        ),
        (
            "node_filesystem_avail_bytes",
            "Filesystem space available to non-root users in bytes.",
            |f| f.avail,
        ),
        ("node_filesystem_files", "Filesystem total file nodes.", |f| {
            f.files
        }),
        (
            "node_filesystem_files_free",
            "Filesystem total free file nodes.",
            |f| f.files_free,
        ),
    ];
    let text = &s.mount_text;
    let labels = |m: &Mount| {
        [
            ("device", &text[m.device.0..m.device.1]),
            ("fstype", &text[m.fstype.0..m.fstype.1]),
            ("mountpoint", &text[m.mountpoint.0..m.mountpoint.1]),
        ]
    };
    for (name, help, field) in families {
        let mark = expo.family(&[name], &[help], Kind::Gauge);
        for m in &s.mounts {
            if let Some(stats) = &m.stats {
                expo.sample(&[name], &labels(m), field(stats));
            }
        }
        expo.end_family(mark);
    }
    const READONLY: &[&str] = &["node_filesystem_readonly"];
    let mark = expo.family(READONLY, &["Filesystem read-only status."], Kind::Gauge);
    for m in s.mounts.iter().filter(|m| m.stats.is_some()) {
        expo.sample(READONLY, &labels(m), u64::from(m.readonly));
    }
    expo.end_family(mark);
    const ERROR: &[&str] = &["node_filesystem_device_error"];
    let mark = expo.family(
        ERROR,
        &["Whether an error occurred while getting statistics for the given device."],
        Kind::Gauge,
    );
    for m in &s.mounts {
        expo.sample(ERROR, &labels(m), u64::from(m.stats.is_none()));
    }
    expo.end_family(mark);
    Ok(())
}

// ---------------------------------------------------------------- process self-metrics

/// Buffers of the process self-metrics, kept across calls: the loop reads `/proc/self` on every
/// self-scrape and every `/metrics` request, and must not allocate once warm.
pub(super) struct ProcessScratch {
    path: PathBuf,
    /// Grows once to the size of `/proc/stat`, the larger of the two files read.
    data: Vec<u8>,
    clock_ticks: f64,
    page_size: u64,
}

impl ProcessScratch {
    pub(super) fn new() -> Self {
        ProcessScratch {
            path: PathBuf::with_capacity(256),
            data: Vec::with_capacity(4 * 1024),
            clock_ticks: clock_ticks_per_second(),
            // SAFETY: sysconf has no preconditions.
            page_size: unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64,
        }
    }
}

pub(super) fn process_metrics(procfs: &Path, s: &mut ProcessScratch, expo: &mut Expo<'_>) -> io::Result<()> {
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
    let mut limit: libc::rlimit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only into `limit`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        // rlim_t is 32 bits wide on 32-bit glibc targets.
        #[allow(clippy::unnecessary_cast)]
        let max_fds = limit.rlim_cur as u64;
        expo.single(
            &["process_max_fds"],
            &["Maximum number of open file descriptors."],
            Kind::Gauge,
            &[],
            max_fds,
        );
    }
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
    let mut limit: libc::rlimit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only into `limit`.
    if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut limit) } == 0 {
        // Unlimited is RLIM_INFINITY (u64::MAX), which the Go client reports as 1.8446744073709552e+19.
        #[allow(clippy::unnecessary_cast)]
        let max_bytes = limit.rlim_cur as u64;
        expo.single(
            &["process_virtual_memory_max_bytes"],
            &["Maximum amount of virtual memory available in bytes."],
            Kind::Gauge,
            &[],
            max_bytes as f64,
        );
    }
    expo.single(
        &["process_virtual_memory_bytes"],
        &["Virtual memory size in bytes."],
        Kind::Gauge,
        &[],
        vsize,
    );
    Ok(())
}

/// getdents64's output buffer; the kernel lays `linux_dirent64` records out at 8-byte offsets.
#[repr(align(8))]
struct DirentBuf([u8; 4096]);

/// Counts `/proc/self/fd` entries with getdents64 into a stack buffer: std's `read_dir`
/// allocates per entry, and glibc's opendir mallocs its stream buffer.
fn count_open_fds(path: &mut PathBuf, procfs: &Path) -> Option<u64> {
    // linux_dirent64: d_ino u64, d_off i64, d_reclen u16, d_type u8, then the NUL-terminated name.
    const RECLEN_AT: usize = 16;
    const NAME_AT: usize = 19;
    set_path(path, procfs, &["self/fd"]);
    // Opening a directory read-only is allowed; std builds the C path on the stack.
    let dir = File::open(&*path).ok()?;
    let mut buf = DirentBuf([0; 4096]);
    let mut count = 0u64;
    loop {
        // SAFETY: the kernel writes at most `buf.0.len()` bytes into `buf`, which outlives the
        // call, and `dir` keeps the descriptor open until after the loop.
        let filled = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir.as_raw_fd(),
                buf.0.as_mut_ptr(),
                buf.0.len(),
            )
        };
        let filled = usize::try_from(filled).ok()?.min(buf.0.len());
        if filled == 0 {
            break;
        }
        let mut at = 0;
        while at + NAME_AT < filled {
            let record_len = usize::from(u16::from_ne_bytes([
                buf.0[at + RECLEN_AT],
                buf.0[at + RECLEN_AT + 1],
            ]));
            if record_len <= NAME_AT {
                return None;
            }
            let name = &buf.0[at + NAME_AT..(at + record_len).min(filled)];
            if !name.starts_with(b".\0") && !name.starts_with(b"..\0") {
                count += 1;
            }
            at += record_len;
        }
    }
    // The count included the descriptor of the directory being read.
    Some(count.saturating_sub(1))
}
