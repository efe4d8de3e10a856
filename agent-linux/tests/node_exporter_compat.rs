//! outpost's node collectors side by side with the real node_exporter 1.5 on this machine.
//!
//! For every collector outpost implements, each metric name node_exporter exports must exist in
//! outpost with the same type, the same label names and the same series (label sets), unless it
//! is in [`ALLOWED`] with a reason. Values are compared where they must agree (see
//! [`check_values`]). The result is written to `docs/node-exporter-compat.md` with
//! `OUTPOST_WRITE_COMPAT_DOC=1`; otherwise the committed file must match what this run produces.
//!
//! A second test counts heap allocations of a warmed-up scrape of the real `/proc` and `/sys`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use outpost_agent::collectors::{render_process_metrics, NodeCollector, Paths};
use outpost_core::plan::Collector;
use outpost_test_support::{count_allocations, repo_path, CountingAllocator, NodeExporter, NODE_EXPORTER};

mod node_fixtures;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Collectors node_exporter 1.5 runs by default on Linux that outpost does not have, and why.
/// The test fails when node_exporter runs one that is neither here nor in outpost, or when one
/// listed here has become an outpost collector.
const MISSING_COLLECTORS: &[(&str, &str)] = &[(
    "systemd",
    "asks systemd over D-Bus for unit states; outpost has no D-Bus client (a privileged socket into \
         the host's system bus is not something a metrics DaemonSet should hold). Upstream node_exporter \
         disables it by default; Debian's build enables it",
)];

/// Removes node_exporter's scrape-meta series of the collectors outpost does not have (they
/// are reported separately) and returns those collectors' names.
fn split_missing_collectors(theirs: &mut BTreeMap<String, Family>) -> BTreeSet<String> {
    let mut missing = BTreeSet::new();
    for name in [
        "node_scrape_collector_duration_seconds",
        "node_scrape_collector_success",
    ] {
        if let Some(family) = theirs.get_mut(name) {
            family.series.retain(|labels, _| {
                let collector = &labels[0].1;
                let ours = Collector::from_name(collector).is_some();
                if !ours {
                    missing.insert(collector.clone());
                }
                ours
            });
        }
    }
    missing
}

/// Names or prefixes (ending in `_`) node_exporter exports that outpost deliberately does not.
const ALLOWED: &[(&str, &str)] = &[
    (
        "go_",
        "Go runtime metrics of the node_exporter process; outpost is not a Go program",
    ),
    (
        "promhttp_",
        "node_exporter's HTTP handler metrics; outpost's own HTTP self-metrics live on the agent's /metrics",
    ),
];

fn allowed(name: &str) -> Option<(&'static str, &'static str)> {
    ALLOWED
        .iter()
        .find(|(pattern, _)| {
            if pattern.ends_with('_') {
                name.starts_with(pattern)
            } else {
                name == *pattern
            }
        })
        .copied()
}

/// The report's grouping: node_exporter's collector that exports a name.
fn group_of(name: &str) -> &'static str {
    let netdev = (name.starts_with("node_network_receive_") || name.starts_with("node_network_transmit_"))
        && name.ends_with("_total");
    if netdev {
        return "netdev";
    }
    const PREFIXES: [(&str, &str); 53] = [
        ("node_bcache_", "bcache"),
        ("node_btrfs_", "btrfs"),
        ("node_infiniband_", "infiniband"),
        ("node_xfs_", "xfs"),
        ("node_zfs_", "zfs"),
        ("node_tape_", "tapestats"),
        ("node_fibrechannel_", "fibrechannel"),
        ("node_nfsd_", "nfsd"),
        ("node_nfs_", "nfs"),
        ("node_ipvs_", "ipvs"),
        ("node_rapl_", "rapl"),
        ("node_nvme_", "nvme"),
        ("node_schedstat_", "schedstat"),
        ("node_dmi_", "dmi"),
        ("node_edac_", "edac"),
        ("node_cpu_frequency_", "cpufreq"),
        ("node_cpu_scaling_frequency_", "cpufreq"),
        ("node_md_", "mdadm"),
        ("node_bonding_", "bonding"),
        ("node_hwmon_", "hwmon"),
        ("node_thermal_zone_", "thermal_zone"),
        ("node_cooling_device_", "thermal_zone"),
        ("node_power_supply_", "powersupplyclass"),
        ("node_cpu_", "cpu"),
        ("node_memory_", "meminfo"),
        ("node_load", "loadavg"),
        ("node_disk_", "diskstats"),
        ("node_filesystem_", "filesystem"),
        ("node_network_", "netclass"),
        ("node_boot_time_seconds", "stat"),
        ("node_context_switches_total", "stat"),
        ("node_forks_total", "stat"),
        ("node_intr_total", "stat"),
        ("node_procs_", "stat"),
        ("node_uname_", "uname"),
        ("node_timex_", "timex"),
        ("node_time_", "time"),
        ("node_vmstat_", "vmstat"),
        ("node_pressure_", "pressure"),
        ("node_arp_", "arp"),
        ("node_nf_conntrack_", "conntrack"),
        ("node_entropy_", "entropy"),
        ("node_filefd_", "filefd"),
        ("node_netstat_", "netstat"),
        ("node_sockstat_", "sockstat"),
        ("node_softnet_", "softnet"),
        ("node_udp_queues", "udp_queues"),
        ("node_os_", "os"),
        ("node_selinux_", "selinux"),
        ("node_textfile_", "textfile"),
        ("node_scrape_collector_", "scrape meta"),
        ("node_exporter_", "exporter self-metrics"),
        ("process_", "process (agent /metrics)"),
    ];
    PREFIXES
        .iter()
        .find(|(prefix, _)| name.starts_with(prefix))
        .map_or("exporter self-metrics", |(_, group)| group)
}

type LabelSet = Vec<(String, String)>;

#[derive(Default, Debug)]
struct Family {
    kind: String,
    series: BTreeMap<LabelSet, f64>,
}

/// A strict-enough text-format reader: the families, their types and every series.
fn parse(text: &str) -> BTreeMap<String, Family> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line has a type");
            families.entry(name.to_string()).or_default().kind = kind.to_string();
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).expect("sample has a value");
        let name = &line[..name_end];
        let mut labels = LabelSet::new();
        let mut rest = &line[name_end..];
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            loop {
                let start = chars.peek().expect("label set closes").0;
                if body[start..].starts_with('}') {
                    rest = &body[start + 1..];
                    break;
                }
                let eq = body[start..].find("=\"").expect("label has a quoted value") + start;
                let label = body[start..eq].trim_start_matches(',').to_string();
                while chars.peek().is_some_and(|(i, _)| *i <= eq + 1) {
                    chars.next();
                }
                let mut value = String::new();
                loop {
                    match chars.next().expect("label value closes") {
                        (_, '\\') => match chars.next().expect("escape completes").1 {
                            'n' => value.push('\n'),
                            other => value.push(other),
                        },
                        (_, '"') => break,
                        (_, c) => value.push(c),
                    }
                }
                if chars.peek().is_some_and(|(_, c)| *c == ',') {
                    chars.next();
                }
                labels.push((label, value));
            }
        }
        labels.sort();
        let value_text = rest.trim().split(' ').next().unwrap();
        let value: f64 = match value_text {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => other.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let family = families.entry(name.to_string()).or_default();
        assert!(
            family.series.insert(labels, value).is_none(),
            "duplicate series: {line}"
        );
    }
    families
}

fn label_names(family: &Family) -> BTreeSet<Vec<String>> {
    family
        .series
        .keys()
        .map(|labels| labels.iter().map(|(n, _)| n.clone()).collect())
        .collect()
}

fn enabled_collectors() -> Vec<Collector> {
    Collector::ALL.to_vec()
}

/// Values that must agree. `slack_seconds` is how much later outpost read the counters.
fn check_values(
    node_exporter: &BTreeMap<String, Family>,
    outpost: &BTreeMap<String, Family>,
    slack_seconds: f64,
) -> Vec<String> {
    let mut problems = Vec::new();
    let exact = [
        "node_uname_info",
        "node_memory_MemTotal_bytes",
        "node_memory_SwapTotal_bytes",
        "node_memory_VmallocTotal_bytes",
        "node_boot_time_seconds",
        "node_filesystem_size_bytes",
        "node_filesystem_files",
        "node_filesystem_readonly",
        "node_filesystem_device_error",
        "node_disk_info",
        "node_time_zone_offset_seconds",
        "node_time_clocksource_available_info",
        "node_time_clocksource_current_info",
        "node_scrape_collector_success",
        "node_filefd_maximum",
        "node_nf_conntrack_entries_limit",
        "node_entropy_pool_size_bits",
        "node_os_info",
        "node_os_version",
        "node_selinux_enabled",
        "node_network_info",
        "node_network_mtu_bytes",
        "node_network_up",
        "node_timex_tick_seconds",
        "node_timex_status",
    ];
    for name in exact {
        let (Some(theirs), Some(ours)) = (node_exporter.get(name), outpost.get(name)) else {
            continue;
        };
        for (labels, value) in &theirs.series {
            if ours.series.get(labels) != Some(value) {
                problems.push(format!(
                    "{name}{labels:?}: node_exporter {value}, outpost {:?}",
                    ours.series.get(labels)
                ));
            }
        }
    }
    // Counters read from the same file a moment later: never behind, and for CPU time not ahead
    // by more than the CPUs could have run in between.
    let monotonic_groups = [
        "cpu",
        "diskstats",
        "netdev",
        "stat",
        "pressure",
        "vmstat",
        "netstat",
        "softnet",
        "netclass",
    ];
    for (name, theirs) in node_exporter {
        let counter = theirs.kind == "counter"
            || name.starts_with("node_vmstat_")
            || (name.starts_with("node_netstat_")
                && !name.ends_with("CurrEstab")
                && !name.ends_with("Forwarding"));
        if !counter || !monotonic_groups.contains(&group_of(name)) {
            continue;
        }
        let Some(ours) = outpost.get(name) else { continue };
        for (labels, &then) in &theirs.series {
            let Some(&now) = ours.series.get(labels) else {
                continue;
            };
            let mode = labels.iter().find(|(n, _)| n == "mode").map(|(_, v)| v.as_str());
            // The kernel's idle and iowait clocks may step back a little (NO_HZ accounting).
            let behind_allowed = if matches!(mode, Some("idle" | "iowait")) {
                0.1
            } else {
                1e-9 * then.abs()
            };
            if now < then - behind_allowed {
                problems.push(format!(
                    "{name}{labels:?}: outpost {now} behind node_exporter {then}"
                ));
            }
            if name == "node_cpu_seconds_total" && now - then > 2.0 + slack_seconds {
                problems.push(format!(
                    "{name}{labels:?}: outpost {now} ahead of node_exporter {then} by > 2 s"
                ));
            }
        }
    }
    problems
}

/// Names, types, label names and series of node_exporter's families against outpost's.
fn compare(
    theirs: &BTreeMap<String, Family>,
    ours: &BTreeMap<String, Family>,
) -> (Vec<String>, BTreeMap<&'static str, GroupReport>) {
    let mut problems = Vec::new();
    let mut groups: BTreeMap<&'static str, GroupReport> = BTreeMap::new();
    for (name, family) in theirs {
        let report = groups.entry(group_of(name)).or_default();
        if let Some((pattern, reason)) = allowed(name) {
            // A prefix is listed once with its count: the Go runtime's names are not ours to list.
            let shown = if pattern.ends_with('_') {
                format!("{pattern}*")
            } else {
                name.clone()
            };
            match report.allowed.iter_mut().find(|(listed, _, _)| *listed == shown) {
                Some((_, count, _)) => *count += 1,
                None => report.allowed.push((shown, 1, reason)),
            }
            continue;
        }
        let Some(our_family) = ours.get(name) else {
            problems.push(format!("{name}: exported by node_exporter, missing in outpost"));
            continue;
        };
        if our_family.kind != family.kind {
            problems.push(format!(
                "{name}: type {} in node_exporter, {} in outpost",
                family.kind, our_family.kind
            ));
        }
        let names = label_names(family);
        if names != label_names(our_family) {
            problems.push(format!(
                "{name}: label names {names:?} vs outpost {:?}",
                label_names(our_family)
            ));
        }
        // Process metrics describe different processes, and the build info different builds;
        // their presence and shape is what counts.
        if !name.starts_with("process_") && name != "node_exporter_build_info" {
            let their_series: BTreeSet<_> = family.series.keys().collect();
            let our_series: BTreeSet<_> = our_family.series.keys().collect();
            if their_series != our_series {
                problems.push(format!(
                    "{name}: series differ; node_exporter only {:?}, outpost only {:?}",
                    their_series.difference(&our_series).collect::<Vec<_>>(),
                    our_series.difference(&their_series).collect::<Vec<_>>()
                ));
            }
        }
        let labels = names.iter().next().cloned().unwrap_or_default();
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("; labels {}", labels.join(", "))
        };
        report.matched.push(format!("`{name}` ({}{labels})", family.kind));
    }
    for name in ours.keys().filter(|n| !theirs.contains_key(*n)) {
        groups
            .entry(group_of(name))
            .or_default()
            .outpost_only
            .push(name.clone());
    }
    (problems, groups)
}

#[derive(Default)]
struct GroupReport {
    matched: Vec<String>,
    /// (name or `prefix*`, how many node_exporter names, reason)
    allowed: Vec<(String, usize, &'static str)>,
    outpost_only: Vec<String>,
}

fn allowed_count(report: &GroupReport) -> usize {
    report.allowed.iter().map(|(_, count, _)| count).sum()
}

fn render_doc(
    version: &str,
    groups: &BTreeMap<&'static str, GroupReport>,
    (their_collectors, missing): (usize, &BTreeSet<String>),
    fixture: &FixtureResult,
) -> String {
    let mut doc = String::new();
    let _ = writeln!(doc, "# node_exporter compatibility\n");
    let _ = writeln!(
        doc,
        "Generated by `agent-linux/tests/node_exporter_compat.rs`, which runs `{version}` with its default \
         collectors next to outpost's `NodeCollector` with all of its collectors, on the same machine, and \
         compares every series. Regenerate with `OUTPOST_WRITE_COMPAT_DOC=1 cargo test -p outpost-agent \
         --test node_exporter_compat`; without the variable the test fails when this file is stale.\n"
    );
    let node_families = |count: fn(&GroupReport) -> usize| -> usize {
        groups
            .iter()
            .filter(|(group, _)| !matches!(**group, "exporter self-metrics" | "process (agent /metrics)"))
            .map(|(_, report)| count(report))
            .sum()
    };
    let matched = node_families(|r| r.matched.len());
    let total = node_families(|r| r.matched.len() + allowed_count(r));
    let _ = writeln!(
        doc,
        "**Coverage on this machine: {matched} of node_exporter's {total} `node_*` families ({:.1} %)** \
         are matched. Collectors for hardware this machine lacks are compared on fixture trees instead \
         (the fixture-tree paragraph below).\n",
        100.0 * matched as f64 / total.max(1) as f64
    );
    doc.push_str(
        "A name is *matched* when outpost exports it with the same type, the same label names and the \
         same series (label sets). Values that must agree are compared:\n\n\
         - exactly: `node_uname_info` labels, `node_memory_MemTotal_bytes`, `node_memory_SwapTotal_bytes`, \
         `node_memory_VmallocTotal_bytes`, `node_boot_time_seconds`, filesystem size, files, readonly and \
         device_error, `node_disk_info`, the time zone offset and clocksources, `node_scrape_collector_success` \
         (both succeed and fail alike), the file-descriptor, conntrack and entropy limits, `node_os_info`, \
         `node_os_version`, `node_selinux_enabled`, `node_network_info`, `node_network_up`, \
         `node_network_mtu_bytes`, `node_timex_status` and `node_timex_tick_seconds`;\n\
         - counters of cpu, diskstats, netdev, netclass, netstat, softnet, stat, pressure and vmstat (read by \
         outpost just after node_exporter): outpost is never behind node_exporter (idle and iowait CPU time \
         may step back by up to 0.1 s, as the kernel's NO_HZ accounting does), and `node_cpu_seconds_total` \
         is at most 2 s (plus the time between the two reads) ahead per cpu and mode.\n\n\
         The names below are those this machine's kernel exposes; a kernel with more `/proc/meminfo` or \
         `/proc/vmstat` fields yields more names, each handled the same way.\n\n",
    );
    let _ = writeln!(
        doc,
        "**Fixture tree:** for hardware this machine lacks, `agent-linux/tests/node_fixtures/` builds a \
         `/proc` and `/sys` tree written from the kernel's documented file formats (software RAID with a \
         failed and a spare disk, a recovery, a check, raid0 and an inactive array; bonding; three hwmon \
         chips with every unit node_exporter converts; thermal zones and cooling devices; a battery, a \
         mains adapter and a USB-C port; CPU frequency scaling; two bcache sets; a single-device and a \
         RAID5 btrfs; two InfiniBand adapters; XFS of a recent and an older kernel; ZFS kstats, pools \
         and datasets). node_exporter runs on it with \
         `--path.procfs`, `--path.sysfs`, `--path.rootfs` and only the collectors {}; outpost runs on the \
         same tree. **{} families and {} series match exactly, value for value**, including \
         `node_scrape_collector_success`.\n",
        node_fixtures::COLLECTORS.map(|c| format!("`{c}`")).join(", "),
        fixture.families,
        fixture.series
    );
    let _ = writeln!(
        doc,
        "**Node-mixin metrics:** the {} metrics that `outpostc check` requires for the node-mixin's \
         alerts, recording rules and Nodes/USE dashboards (`compiler/src/compile/node_mixin.rs`) are each \
         exported by node_exporter on this machine or on the fixture tree, by the collector the list names, \
         and by outpost wherever node_exporter exports them.\n",
        outpost_compiler::compile::node_mixin::NEEDS.len()
    );
    doc.push_str(
        "**Real btrfs and XFS:** `real_btrfs_and_xfs_match_node_exporter` (opt-in with \
         `OUTPOST_REAL_FS_TEST=1`: it needs root and creates loop devices) makes a two-device btrfs RAID1 \
         and an XFS on loop devices, mounts them in a private mount and PID namespace and compares \
         node_exporter's `btrfs` and `xfs` collectors with outpost's on them: the btrfs devices as the \
         kernel's ioctls report them (sizes, unused bytes, error counters, device UUIDs) and XFS's \
         per-filesystem statistics.\n\n",
    );
    let _ = writeln!(
        doc,
        "Collectors: outpost has {} of the {their_collectors} collectors node_exporter ran here. Those it \
         does not have:\n",
        their_collectors - missing.len()
    );
    for name in missing {
        let reason = MISSING_COLLECTORS
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, reason)| *reason);
        let _ = writeln!(doc, "- `{name}`: {reason}");
    }
    doc.push('\n');
    doc.push_str(
        "Known differences that this comparison cannot show:\n\n\
         - `filesystem`: both run statvfs off the scrape and report a mount that does not answer in time \
         (a dead NFS server) with `node_filesystem_device_error` 1, skipping it until its call returns. \
         node_exporter waits 5 s (`--collector.filesystem.mount-timeout`), outpost 1 s, since its scrape \
         runs on the agent's event loop; at most 4 hung mounts are waited for at once.\n\
         - `netdev`: node_exporter 1.5 reads netlink; outpost reads `/proc/net/dev` and takes \
         `receive_nohandler` from `/sys/class/net/<device>/statistics/rx_nohandler`. Same counters, same \
         names.\n\
         - `diskstats`: udev properties are read from `<rootfs>/run/udev/data` (node_exporter's \
         `--path.udev.data` is not rootfs-relative).\n\
         - Exclusion filters and field selections are node_exporter 1.5's defaults (Debian's build) unless \
         the spec's `node.options` set them (filesystem mount points, types and mount timeout, netdev and \
         diskstats devices, netstat and vmstat fields, netclass devices, the textfile directory; \
         docs/spec-reference.md). Other `--collector.*` flags (powersupply's ignored supplies, bcache's \
         priority stats, netdev's address info, include patterns) have no spec key: their defaults apply.\n\
         - `selinux`: node_exporter reads the host's `/sys/fs/selinux` and `/etc/selinux/config` whatever \
         its path flags say; outpost reads them under `--sysfs` and `--rootfs`.\n\
         - `textfile`: a family spread over two files is merged by node_exporter; outpost skips the second \
         file and reports `node_textfile_scrape_error` 1. Files are bounded in count and size by the plan.\n\
         - `node_exporter_build_info` carries outpost's version, revision and branch (and the Rust \
         compiler's version in `goversion`), because the node-mixin's USE dashboard lists instances by it; \
         `outpost_build_info` says the same in outpost's own label names.\n\
         - HELP texts follow node_exporter's; Prometheus ignores them.\n\n",
    );
    doc.push_str(
        "Allow-list (`ALLOWED` in the test; names node_exporter may export that outpost does not):\n\n",
    );
    for (pattern, reason) in ALLOWED {
        let shown = if pattern.ends_with('_') {
            format!("{pattern}*")
        } else {
            pattern.to_string()
        };
        let _ = writeln!(doc, "- `{shown}`: {reason}");
    }
    doc.push_str("\n| collector | node_exporter names | matched | allow-listed | outpost only |\n");
    doc.push_str("|---|---:|---:|---:|---:|\n");
    for (group, report) in groups {
        let _ = writeln!(
            doc,
            "| {group} | {} | {} | {} | {} |",
            report.matched.len() + allowed_count(report),
            report.matched.len(),
            allowed_count(report),
            report.outpost_only.len()
        );
    }
    for (group, report) in groups {
        let _ = writeln!(doc, "\n## {group}\n");
        if !report.matched.is_empty() {
            doc.push_str("Matched:\n\n");
            for line in &report.matched {
                let _ = writeln!(doc, "- {line}");
            }
        }
        if !report.allowed.is_empty() {
            doc.push_str("\nAllow-listed (node_exporter only):\n\n");
            for (name, count, reason) in &report.allowed {
                if *count == 1 {
                    let _ = writeln!(doc, "- `{name}`: {reason}");
                } else {
                    let _ = writeln!(doc, "- `{name}` ({count} names): {reason}");
                }
            }
        }
        if !report.outpost_only.is_empty() {
            doc.push_str("\noutpost only:\n\n");
            for name in &report.outpost_only {
                let _ = writeln!(doc, "- `{name}`");
            }
        }
    }
    doc
}

fn node_exporter_version() -> String {
    let output = Command::new(NODE_EXPORTER)
        .arg("--version")
        .output()
        .expect("node_exporter --version");
    let text =
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    // "node_exporter, version 1.5.0 (branch: ..., revision: ...)": the version only, so that a
    // Debian rebuild does not make the document stale.
    let version = text
        .split("version ")
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or("unknown");
    format!("node_exporter {version}")
}

#[test]
fn node_exporter_compatibility_report() {
    if !Path::new(NODE_EXPORTER).exists() {
        eprintln!("SKIPPED: {NODE_EXPORTER} is not installed (apt-get install prometheus-node-exporter)");
        return;
    }
    let node_exporter = NodeExporter::start(&[]).expect("node_exporter starts");
    let mut node = NodeCollector::new(Paths::default(), &enabled_collectors());
    let mut out = String::new();
    // One scrape each beforehand, so both sides have warmed up (udev lookups, tz data).
    node_exporter.metrics();
    node.collect(&mut out);

    let their_text = node_exporter.metrics();
    let read_at = Instant::now();
    let samples = node.collect(&mut out);
    let slack = read_at.elapsed().as_secs_f64();
    eprintln!(
        "outpost: {samples} node samples, {} bytes of exposition text",
        out.len()
    );
    render_process_metrics(Path::new("/proc"), &mut out);

    // A collector fails where its hardware is absent (no md arrays, no bonding, no hwmon), as
    // node_exporter's does: `node_scrape_collector_success` is compared exactly below.
    let failures: Vec<String> = node.failures().map(|(c, e)| format!("{c:?}: {e}")).collect();
    eprintln!("outpost collectors failing here, as node_exporter's: {failures:?}");
    let theirs = parse(&their_text);
    let ours = parse(&out);
    let collect_seconds: f64 = ours["node_scrape_collector_duration_seconds"]
        .series
        .values()
        .sum();
    eprintln!(
        "outpost: collectors took {:.3} ms in all (this build's profile)",
        collect_seconds * 1e3
    );
    assert_eq!(
        samples,
        ours.values().map(|f| f.series.len()).sum::<usize>()
            - ours
                .iter()
                .filter(|(n, _)| n.starts_with("process_"))
                .map(|(_, f)| f.series.len())
                .sum::<usize>()
    );

    let mut theirs = theirs;
    let their_collectors = theirs["node_scrape_collector_success"].series.len();
    let missing = split_missing_collectors(&mut theirs);
    let (mut problems, groups) = compare(&theirs, &ours);
    problems.extend(check_values(&theirs, &ours, slack));
    for name in &missing {
        if !MISSING_COLLECTORS.iter().any(|(n, _)| n == name) {
            problems.push(format!(
                "node_exporter runs collector {name}, which is neither in outpost nor in MISSING_COLLECTORS"
            ));
        }
    }
    for (name, _) in MISSING_COLLECTORS {
        if Collector::from_name(name).is_some() {
            problems.push(format!(
                "{name} is an outpost collector now: take it off MISSING_COLLECTORS"
            ));
        }
    }
    let fixture = compare_on_fixture_tree();
    problems.extend(fixture.problems.iter().map(|p| format!("fixture tree: {p}")));
    problems.extend(check_node_mixin_list(&theirs, &fixture.their_names));
    assert!(problems.is_empty(), "incompatibilities:\n{}", problems.join("\n"));

    let doc = render_doc(
        &node_exporter_version(),
        &groups,
        (their_collectors, &missing),
        &fixture,
    );
    let doc_path = repo_path("docs/node-exporter-compat.md");
    if std::env::var("OUTPOST_WRITE_COMPAT_DOC").as_deref() == Ok("1") {
        std::fs::write(&doc_path, &doc).expect("write docs/node-exporter-compat.md");
    } else {
        let committed = std::fs::read_to_string(&doc_path).unwrap_or_default();
        assert!(
            committed == doc,
            "{} is stale; regenerate with OUTPOST_WRITE_COMPAT_DOC=1 cargo test -p outpost-agent --test \
             node_exporter_compat\n--- expected ---\n{doc}",
            doc_path.display()
        );
    }
}

/// The fixture tree's comparison: (families, series) compared, and the problems found.
struct FixtureResult {
    families: usize,
    series: usize,
    problems: Vec<String>,
    /// The families node_exporter exported on the tree.
    their_names: BTreeSet<String>,
}

/// The compiler's list of metrics the node-mixin needs (`outpostc check` warns when a plan
/// leaves one out) names real node_exporter metrics, each by the collector that exports it:
/// node_exporter exports every one here or on the fixture tree. That outpost exports them as
/// well follows from the family-by-family comparisons.
fn check_node_mixin_list(here: &BTreeMap<String, Family>, fixture: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    for need in &outpost_compiler::compile::node_mixin::NEEDS {
        if !here.contains_key(need.metric) && !fixture.contains(need.metric) {
            problems.push(format!(
                "node-mixin list: node_exporter exports {} neither here nor on the fixture tree",
                need.metric
            ));
        }
        let collector = need.collector.map_or("exporter self-metrics", Collector::name);
        if group_of(need.metric) != collector {
            problems.push(format!(
                "node-mixin list: {} is exported by {}, not {collector}",
                need.metric,
                group_of(need.metric)
            ));
        }
    }
    problems
}

/// Runs node_exporter with only the fixture tree's collectors on the tree, and outpost on the
/// same tree, and compares every family, series and value exactly (nothing changes in a tree).
fn compare_on_fixture_tree() -> FixtureResult {
    let tree = node_fixtures::build();
    let mut args = vec![
        format!("--path.procfs={}", tree.procfs().display()),
        format!("--path.sysfs={}", tree.sysfs().display()),
        format!("--path.rootfs={}", tree.rootfs().display()),
        "--collector.disable-defaults".to_string(),
    ];
    args.extend(
        node_fixtures::COLLECTORS
            .iter()
            .map(|c| format!("--collector.{c}")),
    );
    let node_exporter = NodeExporter::start(&args).expect("node_exporter starts");
    let theirs = parse(&node_exporter.metrics());
    let collectors: Vec<Collector> = node_fixtures::COLLECTORS
        .iter()
        .map(|c| Collector::from_name(c).expect("an outpost collector"))
        .collect();
    let paths = Paths {
        procfs: tree.procfs(),
        sysfs: tree.sysfs(),
        rootfs: tree.rootfs(),
    };
    let mut node = NodeCollector::new(paths, &collectors);
    let mut out = String::new();
    node.collect(&mut out);
    let ours = parse(&out);
    let mut problems: Vec<String> = node
        .failures()
        .map(|(c, e)| format!("outpost {c:?} failed: {e}"))
        .collect();
    let node_families = |families: &BTreeMap<String, Family>| -> BTreeSet<String> {
        families
            .keys()
            .filter(|n| {
                n.starts_with("node_")
                    && !n.starts_with("node_exporter_")
                    && *n != "node_scrape_collector_duration_seconds"
            })
            .cloned()
            .collect()
    };
    // Both sides must have really collected: a collector that failed on both would compare
    // equal with nothing to show.
    for (labels, value) in &theirs["node_scrape_collector_success"].series {
        if *value != 1.0 {
            problems.push(format!(
                "node_exporter's collector {labels:?} failed on the fixture tree"
            ));
        }
    }
    let (their_names, our_names) = (node_families(&theirs), node_families(&ours));
    for name in their_names.symmetric_difference(&our_names) {
        let side = if their_names.contains(name) {
            "node_exporter"
        } else {
            "outpost"
        };
        problems.push(format!("{name}: only {side} exports it on the fixture tree"));
    }
    let mut series = 0;
    for name in their_names.intersection(&our_names) {
        let (a, b) = (&theirs[name], &ours[name]);
        if a.kind != b.kind {
            problems.push(format!(
                "{name}: type {} in node_exporter, {} in outpost",
                a.kind, b.kind
            ));
        }
        for (labels, value) in &a.series {
            match b.series.get(labels) {
                Some(ours) if ours == value || (ours.is_nan() && value.is_nan()) => series += 1,
                other => problems.push(format!(
                    "{name}{labels:?}: node_exporter {value}, outpost {other:?}"
                )),
            }
        }
        for labels in b.series.keys().filter(|l| !a.series.contains_key(*l)) {
            problems.push(format!("{name}{labels:?}: only outpost has this series"));
        }
    }
    FixtureResult {
        families: their_names.intersection(&our_names).count(),
        series,
        problems,
        their_names,
    }
}

#[test]
fn fixture_tree_matches_node_exporter_value_for_value() {
    if !Path::new(NODE_EXPORTER).exists() {
        eprintln!("SKIPPED: {NODE_EXPORTER} is not installed (apt-get install prometheus-node-exporter)");
        return;
    }
    let result = compare_on_fixture_tree();
    eprintln!(
        "fixture tree: {} families, {} series compared",
        result.families, result.series
    );
    assert!(
        result.problems.is_empty(),
        "on the fixture tree:\n{}",
        result.problems.join("\n")
    );
    // Every collector of the tree exported something: the comparison compared real series.
    assert!(
        result.families >= 40 && result.series >= 100,
        "{} families, {} series",
        result.families,
        result.series
    );
}

#[test]
fn warm_scrape_of_the_fixture_tree_allocates_nothing() {
    let tree = node_fixtures::build();
    let collectors: Vec<Collector> = node_fixtures::COLLECTORS
        .iter()
        .map(|c| Collector::from_name(c).unwrap())
        .collect();
    let paths = Paths {
        procfs: tree.procfs(),
        sysfs: tree.sysfs(),
        rootfs: tree.rootfs(),
    };
    let mut node = NodeCollector::new(paths, &collectors);
    let mut out = String::new();
    node.collect(&mut out);
    node.collect(&mut out);
    let (samples, allocated) = count_allocations(|| node.collect(&mut out));
    assert_eq!(node.failures().count(), 0, "{out}");
    assert!(samples > 100, "{samples}");
    assert_eq!(
        allocated, 0,
        "a warm scrape of the fixture tree allocated {allocated} times"
    );
    let _ = tree.path();
}

#[test]
fn warm_scrape_of_this_machine_allocates_nothing() {
    let mut node = NodeCollector::new(Paths::default(), &enabled_collectors());
    let mut out = String::new();
    // Two warm-up scrapes let every buffer reach this machine's sizes.
    let first = node.collect(&mut out);
    node.collect(&mut out);
    let (samples, allocated) = count_allocations(|| node.collect(&mut out));
    assert!(
        first > 50 && samples > 50,
        "{first} / {samples} samples: is /proc mounted?"
    );
    // Only collectors whose files are absent on this machine (no md arrays, bonding or hwmon)
    // fail, and they fail on every scrape without allocating.
    let unexpected: Vec<String> = node
        .failures()
        .filter(|(_, e)| e.error().map(std::io::Error::kind) != Some(std::io::ErrorKind::NotFound))
        .map(|(c, e)| format!("{c:?}: {e}"))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
    assert_eq!(
        allocated, 0,
        "a warm scrape of {samples} samples allocated {allocated} times"
    );
}

#[test]
fn comparison_reports_every_kind_of_difference() {
    let theirs = parse(
        "# TYPE node_load1 gauge\nnode_load1 1\n\
         # TYPE node_forks_total counter\nnode_forks_total 100\n\
         # TYPE node_network_receive_bytes_total counter\n\
         node_network_receive_bytes_total{device=\"eth0\"} 5\n\
         node_network_receive_bytes_total{device=\"eth1\"} 5\n\
         # TYPE node_memory_MemTotal_bytes gauge\nnode_memory_MemTotal_bytes 1024\n\
         # TYPE node_uname_info gauge\nnode_uname_info{sysname=\"Linux\",release=\"6.1\"} 1\n\
         # TYPE node_procs_running gauge\nnode_procs_running 1\n\
         # TYPE go_goroutines gauge\ngo_goroutines 7\n\
         # TYPE go_threads gauge\ngo_threads 7\n",
    );
    let ours = parse(
        "# TYPE node_load1 counter\nnode_load1 1\n\
         # TYPE node_forks_total counter\nnode_forks_total 99\n\
         # TYPE node_network_receive_bytes_total counter\n\
         node_network_receive_bytes_total{device=\"eth0\"} 6\n\
         # TYPE node_memory_MemTotal_bytes gauge\nnode_memory_MemTotal_bytes 2048\n\
         # TYPE node_uname_info gauge\nnode_uname_info{sysname=\"Linux\",machine=\"x86_64\"} 1\n\
         # TYPE outpost_build_info gauge\noutpost_build_info{version=\"1\"} 1\n",
    );
    let (problems, groups) = compare(&theirs, &ours);
    let problems_text = problems.join("\n");
    assert!(problems_text.contains("node_load1: type gauge in node_exporter, counter in outpost"));
    assert!(problems_text.contains("node_network_receive_bytes_total: series differ"));
    assert!(problems_text.contains("node_uname_info: label names"));
    assert!(problems_text.contains("node_procs_running: exported by node_exporter, missing in outpost"));
    // uname differs in label names and, with them, in series.
    assert_eq!(problems.len(), 5, "{problems_text}");
    let values = check_values(&theirs, &ours, 0.0);
    assert_eq!(values.len(), 3, "{values:?}");
    assert!(values[0].contains("node_uname_info"), "{values:?}");
    assert!(
        values[1].contains("node_memory_MemTotal_bytes[]: node_exporter 1024, outpost Some(2048.0)"),
        "{values:?}"
    );
    assert!(
        values[2].contains("node_forks_total") && values[2].contains("behind"),
        "{values:?}"
    );
    let exporter = &groups["exporter self-metrics"];
    assert_eq!(exporter.allowed.len(), 1);
    assert_eq!(
        (exporter.allowed[0].0.as_str(), exporter.allowed[0].1),
        ("go_*", 2)
    );
    assert_eq!(exporter.outpost_only, ["outpost_build_info"]);
}

/// Runs a command for the real-filesystem test and returns its standard output.
fn run_tool(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// What the btrfs ioctls and XFS's per-filesystem statistics give on real filesystems, which
/// no fixture tree can stand in for: a two-device btrfs RAID1 and an XFS, each on loop devices
/// of sparse files, mounted in a private mount and PID namespace (so that `/proc/1/mounts`,
/// where both exporters find btrfs mounts, is this test's) and compared with node_exporter's
/// `btrfs` and `xfs` collectors family by family.
///
/// Opt-in (`OUTPOST_REAL_FS_TEST=1`): it needs root, `unshare`, `losetup`, `mkfs.btrfs` and
/// `mkfs.xfs`, and while it runs (a few seconds) its filesystems show in the machine-wide
/// `/sys/fs/btrfs` and `/sys/fs/xfs`, where a node_exporter comparison running at the same time
/// on this machine would see them too.
#[test]
fn real_btrfs_and_xfs_match_node_exporter() {
    if std::env::var("OUTPOST_REAL_FS_TEST").as_deref() != Ok("1") {
        eprintln!("SKIPPED: set OUTPOST_REAL_FS_TEST=1 (root, loop devices, mkfs.btrfs and mkfs.xfs needed)");
        return;
    }
    if std::env::var("OUTPOST_REAL_FS_INNER").as_deref() != Ok("1") {
        let status = Command::new("unshare")
            .args([
                "--mount",
                "--pid",
                "--fork",
                "--mount-proc",
                "--propagation",
                "private",
            ])
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", "real_btrfs_and_xfs_match_node_exporter", "--nocapture"])
            .env("OUTPOST_REAL_FS_INNER", "1")
            .status()
            .expect("unshare");
        assert!(status.success(), "the test in its own namespaces failed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut loops = Vec::new();
    struct Cleanup(Vec<String>, PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            for mount in ["btrfs", "xfs"] {
                let _ = Command::new("umount").arg(self.1.join(mount)).status();
            }
            for device in &self.0 {
                let _ = Command::new("losetup").args(["-d", device]).status();
            }
        }
    }
    for (name, bytes) in [("b1", 256u64 << 20), ("b2", 256 << 20), ("x1", 320 << 20)] {
        let image = dir.path().join(name);
        std::fs::File::create(&image).unwrap().set_len(bytes).unwrap();
        loops.push(run_tool("losetup", &["-f", "--show", image.to_str().unwrap()]));
    }
    let cleanup = Cleanup(loops.clone(), dir.path().to_path_buf());
    run_tool(
        "mkfs.btrfs",
        &[
            "-q",
            "-L",
            "outpost-test",
            "-d",
            "raid1",
            "-m",
            "raid1",
            &loops[0],
            &loops[1],
        ],
    );
    run_tool("mkfs.xfs", &["-q", &loops[2]]);
    for (mount, device) in [("btrfs", &loops[0]), ("xfs", &loops[2])] {
        let point = dir.path().join(mount);
        std::fs::create_dir(&point).unwrap();
        run_tool("mount", &[device, point.to_str().unwrap()]);
        // Some I/O so that the counters are not all zero.
        std::fs::write(point.join("data"), vec![7u8; 4 << 20]).unwrap();
        run_tool("sync", &[]);
        assert_eq!(std::fs::read(point.join("data")).unwrap().len(), 4 << 20);
    }
    let node_exporter = NodeExporter::start(&[
        "--collector.disable-defaults".to_string(),
        "--collector.btrfs".to_string(),
        "--collector.xfs".to_string(),
    ])
    .expect("node_exporter starts");
    let theirs = parse(&node_exporter.metrics());
    let mut node = NodeCollector::new(Paths::default(), &[Collector::Btrfs, Collector::Xfs]);
    let mut out = String::new();
    node.collect(&mut out);
    let ours = parse(&out);
    assert_eq!(node.failures().count(), 0, "{out}");
    let xfs_device = loops[2].trim_start_matches("/dev/");
    let mut compared = 0;
    let mut problems = Vec::new();
    for (name, family) in theirs
        .iter()
        .filter(|(n, _)| n.starts_with("node_btrfs_") || n.starts_with("node_xfs_"))
    {
        let Some(our_family) = ours.get(name) else {
            problems.push(format!("{name}: missing in outpost"));
            continue;
        };
        if our_family.kind != family.kind {
            problems.push(format!("{name}: type {} vs {}", family.kind, our_family.kind));
        }
        for (labels, value) in &family.series {
            let ours = our_family.series.get(labels);
            // XFS counters may move on between the two reads; btrfs sizes and counts may not.
            let agrees = match ours {
                Some(v) if name.starts_with("node_xfs_") => v >= value,
                Some(v) => v == value,
                None => false,
            };
            if agrees {
                compared += 1;
            } else {
                problems.push(format!(
                    "{name}{labels:?}: node_exporter {value}, outpost {ours:?}"
                ));
            }
        }
        for labels in our_family
            .series
            .keys()
            .filter(|l| !family.series.contains_key(*l))
        {
            problems.push(format!("{name}{labels:?}: only outpost has it"));
        }
    }
    for name in ours
        .keys()
        .filter(|n| n.starts_with("node_btrfs_") || n.starts_with("node_xfs_"))
    {
        if !theirs.contains_key(name) {
            problems.push(format!("{name}: only outpost exports it"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The ioctl view was used: device errors and the devices' own UUIDs are there.
    let errors = &ours["node_btrfs_device_errors_total"].series;
    assert_eq!(errors.len(), 10, "{errors:?}");
    assert!(errors
        .keys()
        .all(|l| l.iter().any(|(n, v)| n == "btrfs_dev_uuid" && v.len() == 36)));
    let writes = &ours["node_xfs_write_calls_total"].series;
    assert!(
        writes.iter().any(|(l, v)| l[0].1 == xfs_device && *v > 0.0),
        "{writes:?}"
    );
    eprintln!("real btrfs and xfs: {compared} series agree");
    // The ioctl path allocates nothing once warm either.
    node.collect(&mut out);
    let (_, allocated) = count_allocations(|| node.collect(&mut out));
    assert_eq!(allocated, 0, "a warm scrape of real btrfs and xfs allocated");
    // node_exporter (declared after `cleanup`, so stopped before it) keeps the btrfs mount open.
    let _ = &cleanup;
}
