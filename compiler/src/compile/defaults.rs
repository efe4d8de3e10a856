//! What a spec gets when it leaves a key out. Durations, sizes and CPU are
//! written the way a user writes them in the spec, so docs/spec-reference.md
//! and these lines read the same.

use crate::units::{parse_cpu, parse_duration, parse_size};
use outpost_core::plan;

pub const DEFAULT_TENANT_HEADER: &str = "THANOS-TENANT";
pub const DEFAULT_SCRAPE_INTERVAL: &str = "30s";
pub const DEFAULT_SCRAPE_TIMEOUT: &str = "10s";
pub const DEFAULT_REMOTE_TIMEOUT: &str = "30s";
pub const DEFAULT_CAPACITY: u64 = 2500;
pub const DEFAULT_MIN_SHARDS: u64 = 1;
pub const DEFAULT_MAX_SHARDS: u64 = 4;
pub const DEFAULT_MAX_SAMPLES_PER_SEND: u64 = 2000;
pub const DEFAULT_BATCH_SEND_DEADLINE: &str = "5s";
pub const DEFAULT_MIN_BACKOFF: &str = "30ms";
pub const DEFAULT_MAX_BACKOFF: &str = "5s";
pub const DEFAULT_MAX_SAMPLE_AGE: &str = "2h";
/// Bytes budgeted per queued sample when `max_batch_size` is not given: a
/// sample with a dozen typical labels, uncompressed.
pub const DEFAULT_SAMPLE_BYTES: u64 = 200;
pub const DEFAULT_WAL_DIR: &str = "/var/lib/outpost/wal";
pub const DEFAULT_WAL_MAX: &str = "1Gi";
pub const DEFAULT_NODE_WAL_DIR: &str = "/var/lib/outpost/node-wal";
pub const DEFAULT_NODE_WAL_MAX: &str = "512Mi";
pub const DEFAULT_SEGMENT: &str = "8Mi";
pub const DEFAULT_FSYNC: &str = "1s";
/// The node role's WAL is on the board's own flash (SD card, eMMC): it
/// writes only what the receiver has not taken in time.
pub const DEFAULT_NODE_WAL_MODE: &str = "spill";
/// The cluster role's WAL is on its PVC, as the seed's Prometheus agent's
/// was: every record is appended before it is sent.
pub const DEFAULT_WAL_MODE: &str = "append";
/// A record not acknowledged this long after its scrape ended is written:
/// well past the batch deadline (5s by default, 10s in the seed) plus a
/// healthy receiver's answer, so a healthy receiver's records never are.
/// It is also what a process crash can lose in spill mode.
pub const DEFAULT_SPILL_AFTER: &str = "30s";
/// A node agent's records (node collectors, kubelet) are tens of KiB
/// compressed; this holds a spill window of them with room to spare, and
/// keeps a node agent with two scrape jobs at the default limits within the
/// default 256Mi (compiler/tests/memory_budget.rs). Raised to one compressed
/// batch (`queue.max_batch_bytes`' snappy bound) when that is larger.
pub const DEFAULT_NODE_MAX_HELD: &str = "2Mi";
/// A cluster agent in spill mode holds kube-state-metrics scrapes: 50,000
/// series take about 2.7 MB compressed.
pub const DEFAULT_MAX_HELD: &str = "32Mi";
pub const DEFAULT_BODY_SIZE: &str = "10Mi";
pub const DEFAULT_SAMPLES: u64 = 100_000;
// Prometheus has no label limits by default. Names and values have none
// here either (the largest the plan holds): what bounds their bytes is the
// series' line, at most a sixteenth of body_size (Limits::max_line_bytes).
// The label count keeps a bound far above any exporter's, because work on a
// label set grows with the square of its labels.
pub const DEFAULT_LABEL_COUNT: u64 = 1024;
pub const DEFAULT_LABEL_NAME_LENGTH: u64 = u16::MAX as u64;
pub const DEFAULT_LABEL_VALUE_LENGTH: u64 = u32::MAX as u64;
/// The card's budget for an edge agent.
pub const DEFAULT_CPU: &str = "200m";
pub const DEFAULT_MEMORY: &str = "256Mi";
pub const DEFAULT_NODE_JOB: &str = "node-exporter";
/// Kubernetes discovery: targets kept per job (the pods of a node: Kubernetes's default
/// `maxPods` is 110, most run no metrics endpoint).
pub const DEFAULT_MAX_TARGETS: u64 = 100;
/// Largest object decoded: a pod with a few KiB of annotations is far below it.
pub const DEFAULT_MAX_OBJECT_SIZE: &str = "256Ki";
/// What discovery keeps between events per job.
pub const DEFAULT_MAX_STORE_SIZE: &str = "2Mi";
/// Target relabeling presets a job can name.
pub const RELABEL_PRESETS: [&str; 1] = ["prometheus.io"];
/// `collectors: default`, the node section's default: node_exporter 1.5's default Linux
/// collectors (`prometheus-node-exporter --help`, those marked "default: enabled"), all but
/// `systemd`, which asks systemd over D-Bus (docs/node-exporter-compat.md says why outpost does
/// not). Upstream node_exporter leaves `systemd` off by default too.
pub const DEFAULT_COLLECTORS: [plan::Collector; 45] = [
    plan::Collector::Arp,
    plan::Collector::Bcache,
    plan::Collector::Bonding,
    plan::Collector::Btrfs,
    plan::Collector::Conntrack,
    plan::Collector::Cpu,
    plan::Collector::Cpufreq,
    plan::Collector::Diskstats,
    plan::Collector::Dmi,
    plan::Collector::Edac,
    plan::Collector::Entropy,
    plan::Collector::Fibrechannel,
    plan::Collector::Filefd,
    plan::Collector::Filesystem,
    plan::Collector::Hwmon,
    plan::Collector::Infiniband,
    plan::Collector::Ipvs,
    plan::Collector::Loadavg,
    plan::Collector::Mdadm,
    plan::Collector::Meminfo,
    plan::Collector::Netclass,
    plan::Collector::Netdev,
    plan::Collector::Netstat,
    plan::Collector::Nfs,
    plan::Collector::Nfsd,
    plan::Collector::Nvme,
    plan::Collector::Os,
    plan::Collector::Powersupplyclass,
    plan::Collector::Pressure,
    plan::Collector::Rapl,
    plan::Collector::Schedstat,
    plan::Collector::Selinux,
    plan::Collector::Sockstat,
    plan::Collector::Softnet,
    plan::Collector::Stat,
    plan::Collector::Tapestats,
    plan::Collector::Textfile,
    plan::Collector::ThermalZone,
    plan::Collector::Time,
    plan::Collector::Timex,
    plan::Collector::UdpQueues,
    plan::Collector::Uname,
    plan::Collector::Vmstat,
    plan::Collector::Xfs,
    plan::Collector::Zfs,
];
// What the agent does when a node option is left out: node_exporter 1.5's defaults, as the
// Debian build that the compatibility test runs against has them (upstream's mount-point
// default lacks `run`, `mnt` and `media` and has `run/credentials/.+`; its netdev default
// excludes nothing). The plan leaves these out (`None`); they are here for the spec reference
// and for the agent's test that its built-in filters behave as these patterns do.
pub const DEFAULT_MOUNT_POINTS_EXCLUDE: &str =
    "^/(dev|proc|run|sys|mnt|media|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";
pub const DEFAULT_FS_TYPES_EXCLUDE: &str = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$";
pub const DEFAULT_NETDEV_DEVICE_EXCLUDE: &str = "^lo$";
pub const DEFAULT_DISKSTATS_DEVICE_EXCLUDE: &str = "^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\\d+n\\d+p)\\d+$";
pub const DEFAULT_NETCLASS_IGNORED_DEVICES: &str = "^$";
pub const DEFAULT_NETSTAT_FIELDS: &str = "^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$";
pub const DEFAULT_VMSTAT_FIELDS: &str = "^(oom_kill|pgpg|pswp|pg.*fault).*";
/// How long a scrape waits for a mount's statvfs (node_exporter: 5 s; the agent's scrape runs
/// on its event loop, so it waits less).
pub const DEFAULT_MOUNT_TIMEOUT: &str = "1s";
/// The longest `mount_timeout`: node_exporter's default. A scrape may wait this long for each
/// mount that newly stops answering, on the agent's event loop.
pub const MAX_MOUNT_TIMEOUT: &str = "5s";
pub const DEFAULT_TEXTFILE_MAX_FILES: u64 = 64;
pub const DEFAULT_TEXTFILE_MAX_FILE_SIZE: &str = "1Mi";
pub const SELF_JOB: &str = "outpost";
pub const NODE_VARS: [&str; 2] = ["${NODE_NAME}", "${NODE_IP}"];

pub fn default_limits() -> plan::Limits {
    plan::Limits {
        body_bytes: default_bytes(DEFAULT_BODY_SIZE) as u32,
        samples: DEFAULT_SAMPLES as u32,
        label_count: DEFAULT_LABEL_COUNT as u16,
        label_name_bytes: DEFAULT_LABEL_NAME_LENGTH as u16,
        label_value_bytes: DEFAULT_LABEL_VALUE_LENGTH as u32,
    }
}

/// A default duration in milliseconds. Every default parses (the test below
/// reads each one), so this never panics in a build that passed its tests.
pub(crate) fn default_ms(text: &str) -> u64 {
    parse_duration(text).expect("a built-in default duration")
}

/// A default size in bytes; see [`default_ms`].
pub(crate) fn default_bytes(text: &str) -> u64 {
    parse_size(text).expect("a built-in default size")
}

/// A default CPU quantity in millicores; see [`default_ms`].
pub(crate) fn default_millicores(text: &str) -> u32 {
    parse_cpu(text).expect("a built-in default CPU quantity")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_parses() {
        for d in [
            DEFAULT_SCRAPE_INTERVAL,
            DEFAULT_SCRAPE_TIMEOUT,
            DEFAULT_REMOTE_TIMEOUT,
            DEFAULT_BATCH_SEND_DEADLINE,
            DEFAULT_MIN_BACKOFF,
            DEFAULT_MAX_BACKOFF,
            DEFAULT_MAX_SAMPLE_AGE,
            DEFAULT_FSYNC,
            DEFAULT_SPILL_AFTER,
            DEFAULT_MOUNT_TIMEOUT,
            MAX_MOUNT_TIMEOUT,
        ] {
            assert!(parse_duration(d).is_ok_and(|ms| ms > 0), "{d}");
        }
        for s in [
            DEFAULT_WAL_MAX,
            DEFAULT_NODE_WAL_MAX,
            DEFAULT_SEGMENT,
            DEFAULT_NODE_MAX_HELD,
            DEFAULT_MAX_HELD,
            DEFAULT_BODY_SIZE,
            DEFAULT_MEMORY,
            DEFAULT_TEXTFILE_MAX_FILE_SIZE,
        ] {
            assert!(parse_size(s).is_ok_and(|b| b > 0), "{s}");
        }
        assert!(parse_cpu(DEFAULT_CPU).is_ok_and(|m| m > 0));
    }
}
