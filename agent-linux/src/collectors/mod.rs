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
//! A collector that fails (file missing, unparsable) emits nothing, reports
//! `node_scrape_collector_success{collector=..} 0`, and keeps its error for the caller to log
//! ([`NodeCollector::failures`]); the other collectors are unaffected.

mod expo;
mod procfs;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use outpost_core::plan::Collector;

use expo::{Expo, Kind};

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
    error: Option<io::Error>,
}

pub struct NodeCollector {
    paths: Paths,
    outcomes: Vec<Outcome>,
    scratch: procfs::Scratch,
}

impl NodeCollector {
    /// `enabled` may be unsorted or repeat a collector; each runs once, in `Collector` order.
    pub fn new(paths: Paths, enabled: &[Collector]) -> NodeCollector {
        let mut collectors = enabled.to_vec();
        collectors.sort();
        collectors.dedup();
        let outcomes = collectors
            .into_iter()
            .map(|collector| Outcome {
                collector,
                seconds: 0.0,
                error: None,
            })
            .collect();
        NodeCollector {
            paths,
            outcomes,
            scratch: procfs::Scratch::new(),
        }
    }

    /// Renders every enabled collector into `out` (cleared first). Returns the number of samples written.
    pub fn collect(&mut self, out: &mut String) -> usize {
        out.clear();
        let mut expo = Expo::new(out);
        for outcome in &mut self.outcomes {
            let (at, samples) = (expo.mark(), expo.samples);
            let started = Instant::now();
            let result = procfs::run(outcome.collector, &self.paths, &mut self.scratch, &mut expo);
            outcome.seconds = started.elapsed().as_secs_f64();
            match result {
                Ok(()) => outcome.error = None,
                Err(error) => {
                    expo.rollback(at, samples);
                    outcome.error = Some(error);
                }
            }
        }
        self.render_scrape_meta(&mut expo);
        expo.samples
    }

    /// Collectors whose last run failed, with the reason (path and what was wrong).
    pub fn failures(&self) -> impl Iterator<Item = (Collector, &io::Error)> {
        self.outcomes
            .iter()
            .filter_map(|o| o.error.as_ref().map(|e| (o.collector, e)))
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
                    u64::from(o.error.is_none()),
                );
            }
        }
        expo.single(
            &["outpost_build_info"],
            &[
                "A metric with a constant '1' value labeled by version, revision, branch, rustversion, os \
               and arch from which outpost was built.",
            ],
            Kind::Gauge,
            &[
                ("arch", std::env::consts::ARCH),
                ("branch", option_env!("OUTPOST_GIT_BRANCH").unwrap_or("unknown")),
                ("os", std::env::consts::OS),
                (
                    "revision",
                    option_env!("OUTPOST_GIT_REVISION").unwrap_or("unknown"),
                ),
                (
                    "rustversion",
                    option_env!("OUTPOST_RUSTC_VERSION").unwrap_or("unknown"),
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
/// Allocates two small buffers per call (it serves an HTTP request, not the scrape loop).
pub fn render_process_metrics(procfs: &Path, out: &mut String) {
    let mut expo = Expo::new(out);
    let (at, samples) = (expo.mark(), expo.samples);
    if procfs::process_metrics(procfs, &mut expo).is_err() {
        expo.rollback(at, samples);
    }
}

#[cfg(test)]
mod tests;
