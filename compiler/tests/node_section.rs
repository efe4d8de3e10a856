//! The spec's node section: `collectors: default` and its exceptions, the
//! per-collector options as the plan carries them, and the warning about
//! node-mixin alerts, rules and dashboards a choice leaves without data.

use outpost_compiler::compile::defaults::DEFAULT_COLLECTORS;
use outpost_compiler::compile::node_mixin::NEEDS;
use outpost_compiler::{analyze, Analysis, Severity};
use outpost_core::plan::{self, Collector, Role};

fn spec(node: &str, defaults: &str) -> String {
    format!(
        "receiver:\n  url: https://receive.example.net/api/v1/receive\n\
         defaults:\n  scrape_interval: 30s\n{defaults}\
         node:\n{node}\
         clusters:\n  - name: edge-1\n    role: edge\n  - name: edge-2\n    role: edge\n"
    )
}

fn node_plan(a: &Analysis) -> &plan::Plan {
    &a.plans.iter().find(|p| p.role == Role::Node).unwrap().plan
}

fn sorted_default() -> Vec<Collector> {
    let mut all = DEFAULT_COLLECTORS.to_vec();
    all.sort();
    all
}

#[test]
fn default_is_node_exporters_default_set_without_a_warning() {
    // The collectors node_exporter 1.5 enables by default on Linux (its --help), less systemd.
    let node_exporter_default = [
        "arp",
        "bcache",
        "bonding",
        "btrfs",
        "conntrack",
        "cpu",
        "cpufreq",
        "diskstats",
        "dmi",
        "edac",
        "entropy",
        "fibrechannel",
        "filefd",
        "filesystem",
        "hwmon",
        "infiniband",
        "ipvs",
        "loadavg",
        "mdadm",
        "meminfo",
        "netclass",
        "netdev",
        "netstat",
        "nfs",
        "nfsd",
        "nvme",
        "os",
        "powersupplyclass",
        "pressure",
        "rapl",
        "schedstat",
        "selinux",
        "sockstat",
        "softnet",
        "stat",
        "systemd",
        "tapestats",
        "textfile",
        "thermal_zone",
        "time",
        "timex",
        "udp_queues",
        "uname",
        "vmstat",
        "xfs",
        "zfs",
    ];
    let mut names: Vec<&str> = DEFAULT_COLLECTORS.iter().map(|c| c.name()).collect();
    names.sort();
    let expected: Vec<&str> = node_exporter_default
        .into_iter()
        .filter(|n| *n != "systemd")
        .collect();
    assert_eq!(names, expected);

    for node in ["  collectors: default\n", "  job: node-exporter\n"] {
        let a = analyze("default.yaml", &spec(node, ""));
        assert!(a.diagnostics.is_empty(), "{}", a.render_text(100));
        let n = node_plan(&a).node.as_ref().unwrap();
        assert_eq!(n.collectors, sorted_default());
        // No option set: the plan leaves them to the agent's defaults.
        assert_eq!(n.options, plan::NodeOptions::default());
    }
    // `node: {}` too.
    let a = analyze(
        "empty.yaml",
        &spec("  {}\n", "").replace("node:\n  {}", "node: {}"),
    );
    assert!(a.diagnostics.is_empty(), "{}", a.render_text(100));
    assert_eq!(node_plan(&a).node.as_ref().unwrap().collectors, sorted_default());
}

#[test]
fn a_dropped_collector_warns_with_the_alerts_it_leaves_without_data() {
    let a = analyze(
        "no-filefd.yaml",
        &spec("  disabled_collectors: [filefd, zfs]\n", ""),
    );
    assert!(!a.has_errors(), "{}", a.render_text(100));
    let n = node_plan(&a).node.as_ref().unwrap();
    assert!(!n.collectors.contains(&Collector::Filefd));
    assert_eq!(n.collectors.len(), DEFAULT_COLLECTORS.len() - 2);
    // zfs feeds no node-mixin metric: only filefd is reported, once for the whole fleet.
    let gaps: Vec<_> = a
        .diagnostics
        .iter()
        .filter(|d| d.code == "node-mixin-gap")
        .collect();
    assert_eq!(gaps.len(), 1, "{}", a.render_text(100));
    let d = gaps[0];
    assert_eq!(d.severity, Severity::Warning);
    assert!(d.message.contains("`filefd`"), "{}", d.message);
    assert!(d.message.contains("NodeFileDescriptorLimit"), "{}", d.message);
    assert!(d.message.contains("node_filefd_allocated"), "{}", d.message);
    assert_eq!(d.path.to_string(), "node.disabled_collectors[0]");

    // An explicit list short of the default set: one warning per collector it leaves out that
    // a mixin metric needs.
    let a = analyze("short.yaml", &spec("  collectors: [cpu, meminfo, loadavg]\n", ""));
    let gaps: Vec<String> = a
        .diagnostics
        .iter()
        .filter(|d| d.code == "node-mixin-gap")
        .map(|d| d.message.clone())
        .collect();
    let mut needed: Vec<Collector> = NEEDS.iter().filter_map(|n| n.collector).collect();
    needed.sort();
    needed.dedup();
    let missing = needed
        .iter()
        .filter(|c| ![Collector::Cpu, Collector::Meminfo, Collector::Loadavg].contains(c))
        .count();
    assert_eq!(gaps.len(), missing, "{gaps:#?}");
    assert!(gaps
        .iter()
        .any(|m| m.contains("`timex`") && m.contains("NodeClockSkewDetected")));
    assert!(gaps
        .iter()
        .any(|m| m.contains("`netclass`") && m.contains("node_network_up")));
}

#[test]
fn relabel_rules_that_drop_needed_metrics_are_reported_where_they_are() {
    let defaults = "  metric_relabel:\n    - source_labels: [__name__]\n      regex: node_(filefd|timex)_.*\n      action: drop\n";
    let a = analyze("relabel.yaml", &spec("  collectors: default\n", defaults));
    assert!(!a.has_errors(), "{}", a.render_text(100));
    let gaps: Vec<_> = a
        .diagnostics
        .iter()
        .filter(|d| d.code == "node-mixin-gap")
        .collect();
    // One per cluster: each one's agents lose them.
    assert_eq!(gaps.len(), 2, "{}", a.render_text(100));
    for d in &gaps {
        assert_eq!(d.path.to_string(), "defaults.metric_relabel");
        assert!(d.message.contains("node_filefd_maximum") && d.message.contains("node_timex_offset_seconds"));
        assert!(!d.message.contains("node_cpu_seconds_total"), "{}", d.message);
    }
    assert!(gaps[0].message.starts_with("edge-1:"));

    // A write_relabel that keeps only some names drops the rest at the receiver's door.
    let defaults = "  write_relabel:\n    - source_labels: [__name__]\n      regex: up|node_cpu_.*\n      action: keep\n";
    let a = analyze("write.yaml", &spec("  collectors: default\n", defaults));
    let d = a.diagnostics.iter().find(|d| d.code == "node-mixin-gap").unwrap();
    assert_eq!(d.path.to_string(), "defaults.write_relabel");
    assert!(d.message.contains("node_load1") && !d.message.contains("node_cpu_seconds_total"));

    // Rules that drop other things leave the mixin alone.
    let defaults = "  metric_relabel:\n    - source_labels: [__name__]\n      regex: node_scrape_collector_.*\n      action: drop\n";
    let a = analyze("fine.yaml", &spec("  collectors: default\n", defaults));
    assert!(a.diagnostics.is_empty(), "{}", a.render_text(100));
}

#[test]
fn options_reach_the_plan_as_node_exporters_flags() {
    let node = "  options:\n\
                \x20   filesystem:\n\
                \x20     mount_points_exclude: ^/(dev|proc|sys|var/lib/kubelet/.+)($|/)\n\
                \x20     fs_types_exclude: ^(tmpfs|overlay)$\n\
                \x20     mount_timeout: 2s\n\
                \x20   netdev: {device_exclude: ^(lo|veth.*)$}\n\
                \x20   diskstats: {device_exclude: ^loop\\d+$}\n\
                \x20   netclass: {ignored_devices: ^cali}\n\
                \x20   netstat: {fields: ^Tcp_.*$}\n\
                \x20   vmstat: {fields: ^pgfault$}\n\
                \x20   textfile:\n\
                \x20     directory: /var/lib/node_exporter/textfile_collector\n\
                \x20     max_files: 8\n\
                \x20     max_file_size: 64Ki\n";
    let a = analyze("options.yaml", &spec(node, ""));
    assert!(a.diagnostics.is_empty(), "{}", a.render_text(100));
    let p = node_plan(&a);
    let o = &p.node.as_ref().unwrap().options;
    let text = |id: Option<plan::StrId>| p.str(id.unwrap()).to_string();
    assert_eq!(
        text(o.filesystem_mount_points_exclude),
        "^/(dev|proc|sys|var/lib/kubelet/.+)($|/)"
    );
    assert_eq!(text(o.filesystem_fs_types_exclude), "^(tmpfs|overlay)$");
    assert_eq!(o.filesystem_mount_timeout_ms, 2000);
    assert_eq!(text(o.netdev_device_exclude), "^(lo|veth.*)$");
    assert_eq!(text(o.diskstats_device_exclude), "^loop\\d+$");
    assert_eq!(text(o.netclass_ignored_devices), "^cali");
    assert_eq!(text(o.netstat_fields), "^Tcp_.*$");
    assert_eq!(text(o.vmstat_fields), "^pgfault$");
    let t = o.textfile.as_ref().unwrap();
    assert_eq!(p.str(t.directory), "/var/lib/node_exporter/textfile_collector");
    assert_eq!((t.max_files, t.max_file_bytes), (8, 64 << 10));
    // Options need plan format version 2 (the node role's default spill-mode WAL, version 3;
    // what the targets share, which the compiler always writes, version 4), and the plan
    // round-trips through the agent's decoder.
    let mut appending = p.clone();
    appending.wal.mode = plan::WalMode::Append;
    appending.sharing = None;
    let bytes = plan::encode(&appending).unwrap();
    assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 2);
    let bytes = plan::encode(p).unwrap();
    assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 4);
    assert_eq!(&plan::decode(&bytes).unwrap(), p);
    // The file buffer and its parser count in the worst case the budget is checked against.
    let mut without = p.clone();
    without.node.as_mut().unwrap().options.textfile = None;
    let extra = p.worst_case_memory().total() - without.worst_case_memory().total();
    assert!(extra >= 64 << 10, "{extra}");
}

#[test]
fn options_of_collectors_that_do_not_run_are_reported() {
    let node = "  collectors: [cpu, meminfo]\n  options:\n    textfile: {directory: /srv/textfiles}\n    netstat: {fields: ^Tcp_}\n";
    let a = analyze("unused.yaml", &spec(node, ""));
    let mut unused: Vec<String> = a
        .diagnostics
        .iter()
        .filter(|d| d.code == "unused-node-option")
        .map(|d| d.path.to_string())
        .collect();
    unused.sort();
    assert_eq!(
        unused,
        ["node.options.netstat.fields", "node.options.textfile.directory"]
    );

    let node = "  collectors: [cpu, cpu]\n  disabled_collectors: [filefd]\n";
    let a = analyze("twice.yaml", &spec(node, ""));
    let codes: Vec<&str> = a.diagnostics.iter().map(|d| d.code).collect();
    assert!(codes.contains(&"duplicate-collector"), "{codes:?}");
    assert!(codes.contains(&"collector-not-enabled"), "{codes:?}");
    assert!(!a.has_errors());

    // A textfile file larger than the node's whole exposition cannot fit in it.
    let node = "  limits: {body_size: 64Ki}\n  options:\n    textfile: {directory: /srv/textfiles, max_file_size: 1Mi}\n";
    let a = analyze("large.yaml", &spec(node, ""));
    let d = a.diagnostics.iter().find(|d| d.code == "out-of-range").unwrap();
    assert_eq!(d.path.to_string(), "node.options.textfile.max_file_size");
}
