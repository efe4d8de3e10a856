//! Node collectors: node_exporter-compatible metrics read from `/proc` and `/sys`.
//!
//! Names, label names, types and HELP texts follow node_exporter 1.5 (the version the seed's
//! dashboards were built against), checked side by side by `tests/node_exporter_compat.rs`.
//!
//! Memory: every scrape renders into the caller's `String` (cleared, never shrunk) and reads files
//! into buffers owned by the [`NodeCollector`], so once the buffers have grown to the node's size a
//! scrape allocates nothing but what the kernel interfaces force on it (none on the paths used
//! here: files are opened with paths built in a reused `PathBuf`).
//!
//! Blocking: reading `/proc` and `/sys` does not block; statvfs of a network mount can, so it
//! runs on worker threads and a scrape waits for it at most a bounded time (`statfs.rs`).
//!
//! A collector that fails (file missing, unparsable) emits nothing, reports
//! `node_scrape_collector_success{collector=..} 0`, and keeps its error for the caller to log
//! ([`NodeCollector::failures`]); the other collectors are unaffected.

mod arp;
mod bcache;
mod bonding;
mod btrfs;
mod conntrack;
mod cpu;
mod cpufreq;
mod diskstats;
mod dmi;
mod edac;
mod entropy;
pub(crate) mod expo;
mod fibrechannel;
mod filefd;
mod files;
mod filesystem;
mod hwmon;
mod infiniband;
mod ipvs;
mod loadavg;
mod mdadm;
mod meminfo;
mod netclass;
mod netdev;
mod netstat;
mod nfs;
mod nfsd;
mod nvme;
mod os;
mod pattern;
mod powersupplyclass;
mod pressure;
mod process;
mod rapl;
mod schedstat;
mod selinux;
mod sockstat;
mod softnet;
mod stat;
mod statfs;
mod tapestats;
mod textfile;
mod thermal_zone;
mod time;
mod timex;
mod udp_queues;
mod uname;
mod vmstat;
mod xfs;
mod zfs;

use std::cell::RefCell;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use outpost_core::plan::{Collector, NodeCollectors, Plan};

use expo::{Expo, Kind};
use files::Files;
use pattern::Pattern;

pub use filesystem::DEFAULT_MOUNT_TIMEOUT;
pub use statfs::{FsStats, FsStatsSource, Statvfs, MAX_WORKERS as MAX_STATFS_WORKERS};

/// Roots of the host's filesystems, like node_exporter's `--path.procfs`, `--path.sysfs`,
/// `--path.rootfs`. udev's block device database is read from `<rootfs>/run/udev/data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub procfs: PathBuf,
    pub sysfs: PathBuf,
    pub rootfs: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            procfs: PathBuf::from("/proc"),
            sysfs: PathBuf::from("/sys"),
            rootfs: PathBuf::from("/"),
        }
    }
}

struct Outcome {
    collector: Collector,
    seconds: f64,
    failure: CollectorFailure,
}

/// Why a collector's last run failed: the file it could not read, or what was wrong with a file's
/// content. Kept per collector and refilled in place, so that a collector failing on every scrape
/// (pressure on a kernel without PSI) does not allocate on every scrape.
#[derive(Debug)]
pub struct CollectorFailure {
    /// Empty unless reading this file failed.
    path: PathBuf,
    error: Option<io::Error>,
}

impl CollectorFailure {
    /// The file whose read failed; `None` when the failure is about a file's content (the error
    /// then names the file itself).
    pub fn path(&self) -> Option<&Path> {
        (!self.path.as_os_str().is_empty()).then_some(self.path.as_path())
    }

    pub fn error(&self) -> Option<&io::Error> {
        self.error.as_ref()
    }

    fn clear(&mut self) {
        self.path.as_mut_os_string().clear();
        self.error = None;
    }

    /// `last_path` is the path of the last file the collector opened, which names the file when
    /// the error is a bare read error (see [`files`]).
    fn set(&mut self, error: io::Error, last_path: &Path) {
        self.path.as_mut_os_string().clear();
        if error.get_ref().is_none() {
            self.path.push(last_path);
        }
        self.error = Some(error);
    }
}

impl std::fmt::Display for CollectorFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(path) = self.path() {
            write!(f, "{}: ", path.display())?;
        }
        match &self.error {
            Some(error) => write!(f, "{error}"),
            None => f.write_str("no failure"),
        }
    }
}

pub struct NodeCollector {
    paths: Paths,
    outcomes: Vec<Outcome>,
    files: Files,
    state: State,
}

/// What collectors keep between scrapes, besides the shared [`Files`] buffers, and their
/// settings from the plan.
struct State {
    bcache: bcache::State,
    bonding: bonding::State,
    btrfs: btrfs::State,
    cpu: cpu::State,
    cpufreq: cpufreq::State,
    diskstats: diskstats::State,
    dmi: dmi::State,
    edac: edac::State,
    fibrechannel: fibrechannel::State,
    filesystem: filesystem::State,
    hwmon: hwmon::State,
    infiniband: infiniband::State,
    ipvs: ipvs::State,
    netclass: netclass::State,
    netclass_options: netclass::Options,
    netdev: netdev::State,
    netstat: netstat::Options,
    nvme: nvme::State,
    powersupplyclass: powersupplyclass::State,
    rapl: rapl::State,
    tapestats: tapestats::State,
    textfile: textfile::State,
    thermal_zone: thermal_zone::State,
    time: time::State,
    vmstat_fields: Option<Pattern>,
    xfs: xfs::State,
    zfs: zfs::State,
}

impl State {
    fn new(fs_stats: Arc<dyn FsStatsSource>, mount_timeout: Duration) -> Self {
        State {
            bcache: bcache::State::default(),
            bonding: bonding::State::default(),
            btrfs: btrfs::State::default(),
            cpu: cpu::State::new(),
            cpufreq: cpufreq::State::default(),
            diskstats: diskstats::State::default(),
            dmi: dmi::State::default(),
            edac: edac::State::default(),
            fibrechannel: fibrechannel::State::default(),
            filesystem: filesystem::State::new(fs_stats, mount_timeout),
            hwmon: hwmon::State::default(),
            infiniband: infiniband::State::default(),
            ipvs: ipvs::State::default(),
            netclass: netclass::State::default(),
            netclass_options: netclass::Options {
                ignored_devices: None,
            },
            netdev: netdev::State::default(),
            netstat: netstat::Options { fields: None },
            nvme: nvme::State::default(),
            powersupplyclass: powersupplyclass::State::default(),
            rapl: rapl::State::default(),
            tapestats: tapestats::State::default(),
            textfile: textfile::State::disabled(),
            thermal_zone: thermal_zone::State::default(),
            time: time::State::default(),
            vmstat_fields: None,
            xfs: xfs::State::default(),
            zfs: zfs::State::default(),
        }
    }
}

fn run(
    collector: Collector,
    paths: &Paths,
    files: &mut Files,
    state: &mut State,
    expo: &mut Expo<'_>,
) -> io::Result<()> {
    match collector {
        Collector::Cpu => cpu::collect(paths, files, &mut state.cpu, expo),
        Collector::Meminfo => meminfo::collect(paths, files, expo),
        Collector::Loadavg => loadavg::collect(paths, files, expo),
        Collector::Diskstats => diskstats::collect(paths, files, &mut state.diskstats, expo),
        Collector::Filesystem => filesystem::collect(paths, files, &mut state.filesystem, expo),
        Collector::Netdev => netdev::collect(paths, files, &mut state.netdev, expo),
        Collector::Stat => stat::collect(paths, files, expo),
        Collector::Uname => uname::collect(expo),
        Collector::Time => time::collect(paths, files, &mut state.time, expo),
        Collector::Vmstat => vmstat::collect(paths, files, &mut state.vmstat_fields, expo),
        Collector::Pressure => pressure::collect(paths, files, expo),
        Collector::Arp => arp::collect(paths, files, expo),
        Collector::Conntrack => conntrack::collect(paths, files, expo),
        Collector::Entropy => entropy::collect(paths, files, expo),
        Collector::Filefd => filefd::collect(paths, files, expo),
        Collector::Netstat => netstat::collect(paths, files, &mut state.netstat, expo),
        Collector::Sockstat => sockstat::collect(paths, files, expo),
        Collector::Softnet => softnet::collect(paths, files, expo),
        Collector::UdpQueues => udp_queues::collect(paths, files, expo),
        Collector::Os => os::collect(paths, files, expo),
        Collector::Selinux => selinux::collect(paths, files, expo),
        Collector::Timex => timex::collect(expo),
        Collector::Netclass => netclass::collect(
            paths,
            files,
            &mut state.netclass,
            &mut state.netclass_options,
            expo,
        ),
        Collector::Textfile => textfile::collect(files, &mut state.textfile, expo),
        Collector::Mdadm => mdadm::collect(paths, files, expo),
        Collector::Bonding => bonding::collect(paths, files, &mut state.bonding, expo),
        Collector::Hwmon => hwmon::collect(paths, files, &mut state.hwmon, expo),
        Collector::ThermalZone => thermal_zone::collect(paths, files, &mut state.thermal_zone, expo),
        Collector::Powersupplyclass => {
            powersupplyclass::collect(paths, files, &mut state.powersupplyclass, expo)
        }
        Collector::Cpufreq => cpufreq::collect(paths, files, &mut state.cpufreq, expo),
        Collector::Schedstat => schedstat::collect(paths, files, expo),
        Collector::Dmi => dmi::collect(paths, files, &mut state.dmi, expo),
        Collector::Edac => edac::collect(paths, files, &mut state.edac, expo),
        Collector::Rapl => rapl::collect(paths, files, &mut state.rapl, expo),
        Collector::Nvme => nvme::collect(paths, files, &mut state.nvme, expo),
        Collector::Ipvs => ipvs::collect(paths, files, &mut state.ipvs, expo),
        Collector::Nfs => nfs::collect(paths, files, expo),
        Collector::Nfsd => nfsd::collect(paths, files, expo),
        Collector::Tapestats => tapestats::collect(paths, files, &mut state.tapestats, expo),
        Collector::Fibrechannel => fibrechannel::collect(paths, files, &mut state.fibrechannel, expo),
        Collector::Bcache => bcache::collect(paths, files, &mut state.bcache, expo),
        Collector::Btrfs => btrfs::collect(paths, files, &mut state.btrfs, expo),
        Collector::Infiniband => infiniband::collect(paths, files, &mut state.infiniband, expo),
        Collector::Xfs => xfs::collect(paths, files, &mut state.xfs, expo),
        Collector::Zfs => zfs::collect(paths, files, &mut state.zfs, expo),
    }
}

impl NodeCollector {
    /// `enabled` may be unsorted or repeat a collector; each runs once, in `Collector` order.
    pub fn new(paths: Paths, enabled: &[Collector]) -> NodeCollector {
        NodeCollector::with_fs_stats(paths, enabled, Arc::new(Statvfs), DEFAULT_MOUNT_TIMEOUT)
    }

    /// The node collectors of a plan's node section, with its per-collector options. Fails
    /// when an option's pattern does not compile (the compiler has checked it; an agent given a
    /// hand-made plan says which option).
    pub fn from_plan(paths: Paths, plan: &Plan, node: &NodeCollectors) -> Result<NodeCollector, String> {
        let o = &node.options;
        let timeout = match o.filesystem_mount_timeout_ms {
            0 => DEFAULT_MOUNT_TIMEOUT,
            ms => Duration::from_millis(u64::from(ms)),
        };
        let mut collector = NodeCollector::with_fs_stats(paths, &node.collectors, Arc::new(Statvfs), timeout);
        let pattern = |what: &str, id: Option<outpost_core::plan::StrId>| {
            id.map(|id| Pattern::new(what, plan.str(id))).transpose()
        };
        let state = &mut collector.state;
        state.filesystem.mount_points_exclude = pattern(
            "filesystem_mount_points_exclude",
            o.filesystem_mount_points_exclude,
        )?;
        state.filesystem.fs_types_exclude =
            pattern("filesystem_fs_types_exclude", o.filesystem_fs_types_exclude)?;
        state.netdev.device_exclude = pattern("netdev_device_exclude", o.netdev_device_exclude)?;
        state.diskstats.device_exclude = pattern("diskstats_device_exclude", o.diskstats_device_exclude)?;
        state.netstat.fields = pattern("netstat_fields", o.netstat_fields)?;
        state.vmstat_fields = pattern("vmstat_fields", o.vmstat_fields)?;
        state.netclass_options.ignored_devices =
            pattern("netclass_ignored_devices", o.netclass_ignored_devices)?;
        if let Some(t) = &o.textfile {
            let directory = Path::new(plan.str(t.directory));
            state.textfile = textfile::State::new(directory, t.max_files, t.max_file_bytes, &node.limits);
        }
        Ok(collector)
    }

    /// Like [`NodeCollector::new`], with filesystem stats from `fs_stats`; a scrape waits at
    /// most `mount_timeout` for a mount's stats (see `statfs.rs`).
    pub fn with_fs_stats(
        paths: Paths,
        enabled: &[Collector],
        fs_stats: Arc<dyn FsStatsSource>,
        mount_timeout: Duration,
    ) -> NodeCollector {
        let mut collectors = enabled.to_vec();
        collectors.sort();
        collectors.dedup();
        let outcomes = collectors
            .into_iter()
            .map(|collector| Outcome {
                collector,
                seconds: 0.0,
                failure: CollectorFailure {
                    path: PathBuf::new(),
                    error: None,
                },
            })
            .collect();
        NodeCollector {
            paths,
            outcomes,
            files: Files::new(),
            state: State::new(fs_stats, mount_timeout),
        }
    }

    /// Renders every enabled collector into `out` (cleared first). Returns the number of samples written.
    pub fn collect(&mut self, out: &mut String) -> usize {
        out.clear();
        let mut expo = Expo::new(out);
        for outcome in &mut self.outcomes {
            let (at, samples) = (expo.mark(), expo.samples);
            let started = Instant::now();
            let result = run(
                outcome.collector,
                &self.paths,
                &mut self.files,
                &mut self.state,
                &mut expo,
            );
            outcome.seconds = started.elapsed().as_secs_f64();
            match result {
                Ok(()) => outcome.failure.clear(),
                Err(error) => {
                    expo.rollback(at, samples);
                    outcome.failure.set(error, &self.files.path);
                }
            }
        }
        self.render_scrape_meta(&mut expo);
        expo.samples
    }

    /// Collectors whose last run failed, with the reason (path and what was wrong).
    pub fn failures(&self) -> impl Iterator<Item = (Collector, &CollectorFailure)> {
        self.outcomes
            .iter()
            .filter(|o| o.failure.error.is_some())
            .map(|o| (o.collector, &o.failure))
    }

    fn render_scrape_meta(&self, expo: &mut Expo<'_>) {
        const DURATION: &[&str] = &["node_scrape_collector_duration_seconds"];
        const SUCCESS: &[&str] = &["node_scrape_collector_success"];
        if !self.outcomes.is_empty() {
            expo.family(
                DURATION,
                &["node_exporter: Duration of a collector scrape."],
                Kind::Gauge,
            );
            for o in &self.outcomes {
                expo.sample(DURATION, &[("collector", o.collector.name())], o.seconds);
            }
            expo.family(
                SUCCESS,
                &["node_exporter: Whether a collector succeeded."],
                Kind::Gauge,
            );
            for o in &self.outcomes {
                expo.sample(
                    SUCCESS,
                    &[("collector", o.collector.name())],
                    u64::from(o.failure.error.is_none()),
                );
            }
        }
        expo.build_info();
        // The node-mixin's USE dashboard lists instances by this series, so it is exported too,
        // with outpost's build in node_exporter's label names (Go's names for the architecture;
        // `goversion` carries the Rust compiler's version: outpost is not a Go program).
        let goarch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            other => other,
        };
        expo.single(
            &["node_exporter_build_info"],
            &[
                "A metric with a constant '1' value labeled by version, revision, branch, goversion from which \
                 node_exporter was built, and the goos and goarch for the build.",
            ],
            Kind::Gauge,
            &[
                ("branch", option_env!("OUTPOST_GIT_BRANCH").unwrap_or("unknown")),
                ("goarch", goarch),
                ("goos", std::env::consts::OS),
                (
                    "goversion",
                    option_env!("OUTPOST_RUSTC_VERSION").unwrap_or("unknown"),
                ),
                (
                    "revision",
                    option_env!("OUTPOST_GIT_REVISION").unwrap_or("unknown"),
                ),
                ("version", env!("CARGO_PKG_VERSION")),
            ],
            1u64,
        );
    }
}

/// Process self-metrics for the agent's own /metrics: process_cpu_seconds_total, process_resident_memory_bytes,
/// process_virtual_memory_bytes, process_virtual_memory_max_bytes, process_start_time_seconds, process_open_fds,
/// process_max_fds (Prometheus client names, types and HELP).
///
/// Appends to `out` (the agent's /metrics page holds other families too). If `/proc/self/stat`
/// cannot be read, nothing is written: a missing family is honest, a zero would not be.
///
/// Reads through buffers kept per thread, so that once warm a call allocates nothing. A caller
/// that owns its state can hold a [`ProcessMetrics`] instead.
pub fn render_process_metrics(procfs: &Path, out: &mut String) {
    thread_local! {
        static PROCESS_METRICS: RefCell<ProcessMetrics> = RefCell::new(ProcessMetrics::new());
    }
    PROCESS_METRICS.with_borrow_mut(|metrics| metrics.render(procfs, out));
}

/// The buffers [`render_process_metrics`] reads `/proc/self` through, for a caller to own.
pub struct ProcessMetrics {
    scratch: process::Scratch,
}

impl Default for ProcessMetrics {
    fn default() -> Self {
        ProcessMetrics::new()
    }
}

impl ProcessMetrics {
    pub fn new() -> ProcessMetrics {
        ProcessMetrics {
            scratch: process::Scratch::new(),
        }
    }

    /// Appends the process families to `out`, like [`render_process_metrics`].
    pub fn render(&mut self, procfs: &Path, out: &mut String) {
        let mut expo = Expo::new(out);
        let (at, samples) = (expo.mark(), expo.samples);
        if process::collect(procfs, &mut self.scratch, &mut expo).is_err() {
            expo.rollback(at, samples);
        }
    }
}

#[cfg(test)]
mod tests;
