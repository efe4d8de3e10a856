//! The node metrics that the alerts, recording rules and dashboards people
//! already run expect, and a check that a node-role plan still delivers them.
//!
//! The list is written from the expressions of node_exporter's node-mixin
//! (`docs/node-mixin`: the `node-exporter` alert group, the
//! `node-exporter.rules` recording rules, the "Nodes" and "USE Method"
//! dashboards), which kube-prometheus-stack ships, plus kube-prometheus's
//! `NodeNetworkInterfaceFlapping`, which the stack ships next to it. The
//! mixin's `NodeSystemdServiceFailed` and `NodeSystemdServiceCrashlooping`
//! need node_exporter's `systemd` collector, which node_exporter leaves off by
//! default and outpost does not have; they are not listed.
//!
//! A plan falls short in two ways, each a warning (`node-mixin-gap`): a
//! collector that exports a listed metric does not run, or the node's
//! `metric_relabel` or the receiver's `write_relabel` drops a series by that
//! name.

use super::context::Cx;
use super::layers::Unit;
use super::relabel;
use crate::diag::Diagnostic;
use crate::tree::DocPath;
use outpost_core::plan::{Collector, Plan};

/// One metric: its name, the collector that exports it (`None`: every node-role agent
/// exports it), and what uses it.
pub struct Need {
    pub metric: &'static str,
    pub collector: Option<Collector>,
    pub used_by: &'static [&'static str],
}

const fn need(metric: &'static str, collector: Option<Collector>, used_by: &'static [&'static str]) -> Need {
    Need {
        metric,
        collector,
        used_by,
    }
}

const FILESYSTEM_ALERTS: &[&str] = &[
    "alert NodeFilesystemSpaceFillingUp",
    "alert NodeFilesystemAlmostOutOfSpace",
    "alert NodeFilesystemFilesFillingUp",
    "alert NodeFilesystemAlmostOutOfFiles",
];
const FILESYSTEM_SPACE: &[&str] = &[
    "alert NodeFilesystemSpaceFillingUp",
    "alert NodeFilesystemAlmostOutOfSpace",
    "dashboard Nodes",
    "dashboard USE Method",
];
const FILESYSTEM_FILES: &[&str] = &[
    "alert NodeFilesystemFilesFillingUp",
    "alert NodeFilesystemAlmostOutOfFiles",
];
const CPU_SECONDS: &[&str] = &[
    "alert NodeCPUHighUsage",
    "alert NodeSystemSaturation",
    "rule instance:node_num_cpu:sum",
    "rule instance:node_cpu_utilisation:rate5m",
    "dashboard Nodes",
];
const MEMORY_UTILISATION: &[&str] = &["rule instance:node_memory_utilisation:ratio", "dashboard Nodes"];
const MEMORY_HIGH: &[&str] = &[
    "alert NodeMemoryHighUtilization",
    "rule instance:node_memory_utilisation:ratio",
    "dashboard Nodes",
];
const NETWORK_BYTES: &[&str] = &[
    "rule instance:node_network_*_bytes_excluding_lo:rate5m",
    "rule instance:node_network_*_bytes_physical:rate5m",
    "dashboard Nodes",
];
const NETWORK_DROPS: &[&str] = &[
    "rule instance:node_network_*_drop_excluding_lo:rate5m",
    "rule instance:node_network_*_drop_physical:rate5m",
];

/// Every metric the node-mixin and its companions need, by collector.
pub const NEEDS: [Need; 44] = [
    need(
        "node_filesystem_avail_bytes",
        Some(Collector::Filesystem),
        FILESYSTEM_SPACE,
    ),
    need(
        "node_filesystem_size_bytes",
        Some(Collector::Filesystem),
        FILESYSTEM_SPACE,
    ),
    need(
        "node_filesystem_readonly",
        Some(Collector::Filesystem),
        FILESYSTEM_ALERTS,
    ),
    need(
        "node_filesystem_files_free",
        Some(Collector::Filesystem),
        FILESYSTEM_FILES,
    ),
    need(
        "node_filesystem_files",
        Some(Collector::Filesystem),
        FILESYSTEM_FILES,
    ),
    need(
        "node_network_receive_errs_total",
        Some(Collector::Netdev),
        &["alert NodeNetworkReceiveErrs"],
    ),
    need(
        "node_network_receive_packets_total",
        Some(Collector::Netdev),
        &["alert NodeNetworkReceiveErrs"],
    ),
    need(
        "node_network_transmit_errs_total",
        Some(Collector::Netdev),
        &["alert NodeNetworkTransmitErrs"],
    ),
    need(
        "node_network_transmit_packets_total",
        Some(Collector::Netdev),
        &["alert NodeNetworkTransmitErrs"],
    ),
    need(
        "node_network_receive_bytes_total",
        Some(Collector::Netdev),
        NETWORK_BYTES,
    ),
    need(
        "node_network_transmit_bytes_total",
        Some(Collector::Netdev),
        NETWORK_BYTES,
    ),
    need(
        "node_network_receive_drop_total",
        Some(Collector::Netdev),
        NETWORK_DROPS,
    ),
    need(
        "node_network_transmit_drop_total",
        Some(Collector::Netdev),
        NETWORK_DROPS,
    ),
    need(
        "node_network_up",
        Some(Collector::Netclass),
        &["alert NodeNetworkInterfaceFlapping (kube-prometheus)"],
    ),
    need(
        "node_nf_conntrack_entries",
        Some(Collector::Conntrack),
        &["alert NodeHighNumberConntrackEntriesUsed"],
    ),
    need(
        "node_nf_conntrack_entries_limit",
        Some(Collector::Conntrack),
        &["alert NodeHighNumberConntrackEntriesUsed"],
    ),
    need(
        "node_textfile_scrape_error",
        Some(Collector::Textfile),
        &["alert NodeTextFileCollectorScrapeError"],
    ),
    need(
        "node_timex_offset_seconds",
        Some(Collector::Timex),
        &["alert NodeClockSkewDetected"],
    ),
    need(
        "node_timex_sync_status",
        Some(Collector::Timex),
        &["alert NodeClockNotSynchronising"],
    ),
    need(
        "node_timex_maxerror_seconds",
        Some(Collector::Timex),
        &["alert NodeClockNotSynchronising"],
    ),
    need(
        "node_md_disks_required",
        Some(Collector::Mdadm),
        &["alert NodeRAIDDegraded"],
    ),
    need(
        "node_md_disks",
        Some(Collector::Mdadm),
        &["alert NodeRAIDDegraded", "alert NodeRAIDDiskFailure"],
    ),
    need(
        "node_filefd_allocated",
        Some(Collector::Filefd),
        &["alert NodeFileDescriptorLimit"],
    ),
    need(
        "node_filefd_maximum",
        Some(Collector::Filefd),
        &["alert NodeFileDescriptorLimit"],
    ),
    need(
        "node_bonding_slaves",
        Some(Collector::Bonding),
        &["alert NodeBondingDegraded"],
    ),
    need(
        "node_bonding_active",
        Some(Collector::Bonding),
        &["alert NodeBondingDegraded"],
    ),
    need("node_cpu_seconds_total", Some(Collector::Cpu), CPU_SECONDS),
    need(
        "node_load1",
        Some(Collector::Loadavg),
        &[
            "alert NodeSystemSaturation",
            "rule instance:node_load1_per_cpu:ratio",
            "dashboard Nodes",
        ],
    ),
    need("node_load5", Some(Collector::Loadavg), &["dashboard Nodes"]),
    need("node_load15", Some(Collector::Loadavg), &["dashboard Nodes"]),
    need(
        "node_vmstat_pgmajfault",
        Some(Collector::Vmstat),
        &[
            "alert NodeMemoryMajorPagesFaults",
            "rule instance:node_vmstat_pgmajfault:rate5m",
        ],
    ),
    need(
        "node_memory_MemAvailable_bytes",
        Some(Collector::Meminfo),
        MEMORY_HIGH,
    ),
    need(
        "node_memory_MemTotal_bytes",
        Some(Collector::Meminfo),
        MEMORY_HIGH,
    ),
    need(
        "node_memory_MemFree_bytes",
        Some(Collector::Meminfo),
        MEMORY_UTILISATION,
    ),
    need(
        "node_memory_Buffers_bytes",
        Some(Collector::Meminfo),
        MEMORY_UTILISATION,
    ),
    need(
        "node_memory_Cached_bytes",
        Some(Collector::Meminfo),
        MEMORY_UTILISATION,
    ),
    need(
        "node_memory_Slab_bytes",
        Some(Collector::Meminfo),
        &["rule instance:node_memory_utilisation:ratio"],
    ),
    need(
        "node_disk_io_time_weighted_seconds_total",
        Some(Collector::Diskstats),
        &[
            "alert NodeDiskIOSaturation",
            "rule instance_device:node_disk_io_time_weighted_seconds:rate5m",
        ],
    ),
    need(
        "node_disk_io_time_seconds_total",
        Some(Collector::Diskstats),
        &[
            "rule instance_device:node_disk_io_time_seconds:rate5m",
            "dashboard Nodes",
        ],
    ),
    need(
        "node_disk_read_bytes_total",
        Some(Collector::Diskstats),
        &["dashboard Nodes"],
    ),
    need(
        "node_disk_written_bytes_total",
        Some(Collector::Diskstats),
        &["dashboard Nodes"],
    ),
    need(
        "node_uname_info",
        Some(Collector::Uname),
        &["dashboard Nodes (its cluster and instance variables)"],
    ),
    need(
        "node_time_seconds",
        Some(Collector::Time),
        &["dashboard USE Method (its cluster variable)"],
    ),
    need(
        "node_exporter_build_info",
        None,
        &["dashboard USE Method (its instance variable)"],
    ),
];

impl Unit<'_> {
    /// Warns when this unit's node-role plan leaves a metric of [`NEEDS`] out.
    pub(super) fn check_node_mixin(&self, cx: &mut Cx, plan: &Plan) {
        let Some(node) = &plan.node else {
            return;
        };
        let npath = DocPath::root().at("node");
        // Collectors that do not run: one warning per collector, on the fleet-wide node section.
        let mut missing: Vec<(Collector, Vec<&Need>)> = Vec::new();
        for need in &NEEDS {
            let Some(c) = need.collector.filter(|c| !node.collectors.contains(c)) else {
                continue;
            };
            match missing.iter_mut().find(|(m, _)| *m == c) {
                Some((_, needs)) => needs.push(need),
                None => missing.push((c, vec![need])),
            }
        }
        let spec = self.fleet.node.as_ref();
        for (collector, needs) in missing {
            let disabled =
                spec.and_then(|n| n.disabled_collectors.iter().position(|d| d == collector.name()));
            let path = match disabled {
                Some(i) => npath.at("disabled_collectors").at(i),
                None => npath.at("collectors"),
            };
            cx.push(
                Diagnostic::warning(
                    "node-mixin-gap",
                    path,
                    format!(
                        "without the `{}` collector there is no {} for {}",
                        collector.name(),
                        metrics(&needs),
                        users(&needs)
                    ),
                )
                .on_key()
                .label(format!("`{}` does not run", collector.name()))
                .help(format!(
                    "enable `{}` (`collectors: default` runs all of node_exporter's default collectors), \
                     or drop those alerts and panels knowingly",
                    collector.name()
                )),
            );
        }
        // Rule lists that drop a series by a needed name: the node's own, the layers' shared
        // `metric_relabel` (run after it), and the receiver's `write_relabel` (run after the
        // external labels are added).
        let kept: Vec<&Need> = NEEDS
            .iter()
            .filter(|n| n.collector.is_none_or(|c| node.collectors.contains(&c)))
            .collect();
        let job = plan.str(node.job);
        let external: Vec<(&str, &str)> = plan
            .external_labels
            .iter()
            .map(|l| (plan.str(l.name), plan.str(l.value)))
            .collect();
        let own = spec
            .filter(|n| !n.metric_relabel.is_empty())
            .map(|n| (&n.metric_relabel, npath.at("metric_relabel")));
        let lists = [
            (own, "node.metric_relabel", false),
            (
                self.pick(|x| x.metric_relabel.as_ref(), &["metric_relabel"]),
                "metric_relabel",
                false,
            ),
            (
                self.pick(|x| x.write_relabel.as_ref(), &["write_relabel"]),
                "write_relabel",
                true,
            ),
        ];
        for (list, what, with_external) in lists {
            let Some((rules, path)) = list else { continue };
            // Rules the agent would refuse are errors already.
            let Ok(mut program) = relabel::program(rules, 1024) else {
                continue;
            };
            let dropped: Vec<&Need> = kept
                .iter()
                .copied()
                .filter(|n| {
                    let mut labels = vec![("__name__", n.metric), ("instance", "node:9100"), ("job", job)];
                    if with_external {
                        labels.extend(external.iter().copied());
                    }
                    matches!(relabel::run(&mut program, &labels), Ok(None))
                })
                .collect();
            if dropped.is_empty() {
                continue;
            }
            cx.push(
                Diagnostic::warning(
                    "node-mixin-gap",
                    path,
                    format!(
                        "{}: `{what}` drops {}, needed by {}",
                        self.name(),
                        metrics(&dropped),
                        users(&dropped)
                    ),
                )
                .on_key()
                .label("drops node-mixin metrics")
                .help("keep these names (match on more than `__name__`), or drop those alerts and panels knowingly"),
            );
        }
    }
}

fn metrics(needs: &[&Need]) -> String {
    let names: Vec<String> = needs.iter().map(|n| format!("`{}`", n.metric)).collect();
    names.join(", ")
}

/// The alerts, rules and dashboards that use `needs`, each once.
fn users(needs: &[&Need]) -> String {
    let mut users: Vec<&str> = Vec::new();
    for user in needs.iter().flat_map(|n| n.used_by.iter().copied()) {
        if !users.contains(&user) {
            users.push(user);
        }
    }
    format!("the node-mixin's {}", users.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::defaults::DEFAULT_COLLECTORS;

    #[test]
    fn every_need_is_unique_and_in_the_default_set() {
        for (i, n) in NEEDS.iter().enumerate() {
            assert!(n.metric.starts_with("node_"), "{}", n.metric);
            assert!(!n.used_by.is_empty(), "{}", n.metric);
            assert!(
                NEEDS[..i].iter().all(|m| m.metric != n.metric),
                "{} twice",
                n.metric
            );
            if let Some(c) = n.collector {
                assert!(DEFAULT_COLLECTORS.contains(&c), "{c:?}");
            }
        }
    }
}
