//! The plan format: the one interface between `outpostc` and the agent.
//!
//! A plan file is a fixed 20-byte header followed by a postcard payload:
//!
//! | offset | size | field                                        |
//! |--------|------|----------------------------------------------|
//! | 0      | 8    | magic `OUTPOST\0`                            |
//! | 8      | 2    | format version, little endian                |
//! | 10     | 2    | flags, must be zero in versions 1 to 3       |
//! | 12     | 4    | payload length in bytes, little endian       |
//! | 16     | 4    | CRC-32 (IEEE) of the payload, little endian  |
//!
//! The payload is [`Plan`] encoded with postcard 1.x; version 2 appends the node section's
//! [`NodeOptions`] and may name collectors added after [`Collector::Pressure`]; version 3
//! appends the WAL's [`WalMode`] and each scrape job's [`Targeting`] (target relabeling and
//! Kubernetes discovery). [`encode`] writes the oldest version that holds the plan. Every string in the
//! plan lives once in [`Plan::strings`] and is referenced by [`StrId`], so a
//! label name used by a hundred rules costs its bytes once.
//!
//! [`decode`] never panics: it checks the header, the length, the checksum,
//! the postcard payload and then every cross-reference, and returns a
//! [`PlanError`] that names the field at fault. `docs/plan-format.md` is the
//! prose version of this module.
//!
//! What a plan costs in memory, and the buffer sizes derived from its bounds,
//! are not part of the format: they live in [`crate::sizing`].

use crate::snappy;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

mod codec;
mod error;
mod validate;

pub use codec::{decode, encode};
pub use error::PlanError;

pub const MAGIC: [u8; 8] = *b"OUTPOST\0";
/// The newest format version: what [`encode`] writes for a plan that needs it.
pub const FORMAT_VERSION: u16 = 4;
/// The oldest format version [`decode`] reads.
pub const MIN_FORMAT_VERSION: u16 = 1;
pub const HEADER_LEN: usize = 20;
/// Plans are small (a few KiB); anything past this is not a plan we wrote.
pub const MAX_PLAN_BYTES: usize = 16 * 1024 * 1024;

/// Index into [`Plan::strings`].
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StrId(pub u32);

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Plan {
    /// Interned strings; every [`StrId`] in the plan indexes this table.
    pub strings: Vec<String>,
    pub agent: Agent,
    /// Added to every series last, sorted by name, unique names.
    pub external_labels: Vec<LabelPair>,
    pub receiver: Receiver,
    pub queue: Queue,
    pub wal: Wal,
    /// Built-in node collectors; `None` on cluster-role agents.
    pub node: Option<NodeCollectors>,
    pub scrape_jobs: Vec<ScrapeJob>,
    /// The agent's own `/metrics`, shipped like any target.
    pub self_scrape: SelfScrape,
    pub budget: Budget,
    /// What the targets share: how many scrape at once and the series pool.
    /// Not part of the postcard `Plan`: written last, in version 4 only (see
    /// [`encode`]). `None` in older plans, whose agents gave every target
    /// its own worst case: as many scrapes at once as targets, and a pool
    /// that holds every target's series table at its caps.
    #[serde(skip)]
    pub sharing: Option<Sharing>,
}

/// Scrape resources the targets share (format version 4).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sharing {
    /// Scrapes whose bodies are parsed at once; each holds one scrape slot
    /// (parser, label sets, relabeling scratch) for its duration. A due
    /// scrape waits for a slot, and is skipped (counted) if none frees
    /// before its timeout. At least 1.
    pub scrape_concurrency: u16,
    /// Series entries every target's series table together may reserve.
    pub max_series: u64,
    /// Bytes every target's series table together may reserve.
    pub max_series_bytes: u64,
}

impl Sharing {
    /// The compiler's defaults: four scrapes at once (a node agent's jobs
    /// rarely overlap more), and room for 200,000 series in 64 MiB (about
    /// 335 bytes a series: entry, indexes, id list and strings of a
    /// typical series with room to double).
    pub const DEFAULT: Sharing = Sharing {
        scrape_concurrency: 4,
        max_series: 200_000,
        max_series_bytes: 64 << 20,
    };
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// DaemonSet: node collectors and node-local scrapes.
    Node,
    /// StatefulSet: cluster-wide scrapes such as kube-state-metrics.
    Cluster,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::Cluster => "cluster",
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Agent {
    pub cluster: StrId,
    pub tenant: Option<StrId>,
    pub role: Role,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelPair {
    pub name: StrId,
    pub value: StrId,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Receiver {
    /// Full URL, `http://` or `https://`, with path (for Thanos Receive `/api/v1/receive`).
    pub url: StrId,
    /// Header name and value that carry the tenant, e.g. `THANOS-TENANT: tenant-a`.
    pub tenant_header: Option<LabelPair>,
    pub tls: Option<Tls>,
    pub auth: Auth,
    pub remote_timeout_ms: u32,
    /// Applied after external labels, just before a sample is batched.
    pub write_relabel: Vec<RelabelRule>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Tls {
    pub ca_file: Option<StrId>,
    pub cert_file: Option<StrId>,
    pub key_file: Option<StrId>,
    pub server_name: Option<StrId>,
    /// Only set when the spec says so explicitly; the compiler warns about it.
    pub insecure_skip_verify: bool,
}

/// Credentials are always file paths: a plan never carries a secret.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Auth {
    None,
    BearerTokenFile(StrId),
    Basic { username: StrId, password_file: StrId },
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Queue {
    /// Samples each shard may hold ahead of the batch it is sending.
    pub capacity: u32,
    pub min_shards: u16,
    pub max_shards: u16,
    pub max_samples_per_send: u32,
    pub batch_send_deadline_ms: u32,
    pub min_backoff_ms: u32,
    pub max_backoff_ms: u32,
    /// Upper bound of one uncompressed WriteRequest; a batch closes before it is crossed.
    pub max_batch_bytes: u32,
    /// Samples older than this are dropped (reason `too_old`) instead of retried, so an
    /// outage longer than the receiver's head window cannot starve fresh data.
    pub max_sample_age_ms: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// fsync after every appended batch.
    Always,
    /// fsync at most once per this many milliseconds.
    IntervalMs(u32),
    /// Leave it to the kernel.
    Never,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Wal {
    pub dir: StrId,
    /// When the WAL reaches this size the oldest segment is dropped (reason `wal_full`).
    pub max_bytes: u64,
    pub segment_bytes: u32,
    /// When what is written reaches the disk for sure; see [`WalMode`] for what is written.
    pub fsync: Fsync,
    /// Not part of the postcard `Plan`: written after the node options, in version 3 only (see
    /// [`encode`]). Version-1 and version-2 plans mean [`WalMode::Append`], what agents did
    /// before version 3.
    #[serde(skip)]
    pub mode: WalMode,
}

/// Which records the WAL writes to disk.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WalMode {
    /// Append before send: every record is written when its scrape ends, before it is sent.
    #[default]
    Append,
    /// Records stay in memory until the receiver acknowledges them; only what it has not taken
    /// in time is written (see [`Spill`]).
    Spill(Spill),
}

/// When a record held in memory is written to the WAL after all: it waited `after_ms` without
/// an acknowledgement, the held records reached `max_held_bytes`, the receiver failed, or the
/// agent stops.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spill {
    pub after_ms: u32,
    /// Compressed payload bytes held in memory at most; holds at least one record of
    /// `queue.max_batch_bytes` (its snappy bound).
    pub max_held_bytes: u32,
}

/// Per-target bounds. Hitting one fails the scrape with a named reason, as
/// Prometheus does with `sample_limit`, `label_limit` and friends.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Decompressed body bytes.
    pub body_bytes: u32,
    /// Samples after metric relabeling.
    pub samples: u32,
    pub label_count: u16,
    pub label_name_bytes: u16,
    pub label_value_bytes: u32,
}

/// The node collectors, named as node_exporter names them. Variants are only ever appended:
/// a plan stores the variant's index. Those after [`Collector::Pressure`] need plan version 2.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Collector {
    Cpu,
    Meminfo,
    Loadavg,
    Diskstats,
    Filesystem,
    Netdev,
    Stat,
    Uname,
    Time,
    Vmstat,
    Pressure,
    Arp,
    Conntrack,
    Entropy,
    Filefd,
    Netstat,
    Sockstat,
    Softnet,
    UdpQueues,
    Os,
    Selinux,
    Timex,
    Netclass,
    Textfile,
    Mdadm,
    Bonding,
    Hwmon,
    ThermalZone,
    Powersupplyclass,
    Cpufreq,
    Schedstat,
    Dmi,
    Edac,
    Rapl,
    Nvme,
    Ipvs,
    Nfs,
    Nfsd,
    Tapestats,
    Fibrechannel,
    Bcache,
    Btrfs,
    Infiniband,
    Xfs,
    Zfs,
}

impl Collector {
    pub const ALL: [Collector; 45] = [
        Collector::Cpu,
        Collector::Meminfo,
        Collector::Loadavg,
        Collector::Diskstats,
        Collector::Filesystem,
        Collector::Netdev,
        Collector::Stat,
        Collector::Uname,
        Collector::Time,
        Collector::Vmstat,
        Collector::Pressure,
        Collector::Arp,
        Collector::Conntrack,
        Collector::Entropy,
        Collector::Filefd,
        Collector::Netstat,
        Collector::Sockstat,
        Collector::Softnet,
        Collector::UdpQueues,
        Collector::Os,
        Collector::Selinux,
        Collector::Timex,
        Collector::Netclass,
        Collector::Textfile,
        Collector::Mdadm,
        Collector::Bonding,
        Collector::Hwmon,
        Collector::ThermalZone,
        Collector::Powersupplyclass,
        Collector::Cpufreq,
        Collector::Schedstat,
        Collector::Dmi,
        Collector::Edac,
        Collector::Rapl,
        Collector::Nvme,
        Collector::Ipvs,
        Collector::Nfs,
        Collector::Nfsd,
        Collector::Tapestats,
        Collector::Fibrechannel,
        Collector::Bcache,
        Collector::Btrfs,
        Collector::Infiniband,
        Collector::Xfs,
        Collector::Zfs,
    ];

    /// node_exporter's name for the collector.
    pub fn name(self) -> &'static str {
        match self {
            Collector::Cpu => "cpu",
            Collector::Meminfo => "meminfo",
            Collector::Loadavg => "loadavg",
            Collector::Diskstats => "diskstats",
            Collector::Filesystem => "filesystem",
            Collector::Netdev => "netdev",
            Collector::Stat => "stat",
            Collector::Uname => "uname",
            Collector::Time => "time",
            Collector::Vmstat => "vmstat",
            Collector::Pressure => "pressure",
            Collector::Arp => "arp",
            Collector::Conntrack => "conntrack",
            Collector::Entropy => "entropy",
            Collector::Filefd => "filefd",
            Collector::Netstat => "netstat",
            Collector::Sockstat => "sockstat",
            Collector::Softnet => "softnet",
            Collector::UdpQueues => "udp_queues",
            Collector::Os => "os",
            Collector::Selinux => "selinux",
            Collector::Timex => "timex",
            Collector::Netclass => "netclass",
            Collector::Textfile => "textfile",
            Collector::Mdadm => "mdadm",
            Collector::Bonding => "bonding",
            Collector::Hwmon => "hwmon",
            Collector::ThermalZone => "thermal_zone",
            Collector::Powersupplyclass => "powersupplyclass",
            Collector::Cpufreq => "cpufreq",
            Collector::Schedstat => "schedstat",
            Collector::Dmi => "dmi",
            Collector::Edac => "edac",
            Collector::Rapl => "rapl",
            Collector::Nvme => "nvme",
            Collector::Ipvs => "ipvs",
            Collector::Nfs => "nfs",
            Collector::Nfsd => "nfsd",
            Collector::Tapestats => "tapestats",
            Collector::Fibrechannel => "fibrechannel",
            Collector::Bcache => "bcache",
            Collector::Btrfs => "btrfs",
            Collector::Infiniband => "infiniband",
            Collector::Xfs => "xfs",
            Collector::Zfs => "zfs",
        }
    }

    pub fn from_name(name: &str) -> Option<Collector> {
        Collector::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The first plan format version that can name this collector.
    pub fn since_version(self) -> u16 {
        if self <= Collector::Pressure {
            1
        } else {
            2
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct NodeCollectors {
    /// Sorted, unique.
    pub collectors: Vec<Collector>,
    pub interval_ms: u32,
    /// The job label of node series (node_exporter's usual `node-exporter`).
    pub job: StrId,
    pub limits: Limits,
    pub metric_relabel: Vec<RelabelRule>,
    /// Not part of the postcard `Plan`: written after it, in version 2 only (see [`encode`]).
    /// Version-1 plans mean node_exporter 1.5's defaults, which is what `default()` holds.
    #[serde(skip)]
    pub options: NodeOptions,
}

/// Settings node_exporter takes as `--collector.*` flags, for those its users rely on. `None` or
/// 0 means node_exporter 1.5's default for that flag. Patterns are RE2-syntax regexes matched
/// unanchored, as node_exporter's Go regexps are.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeOptions {
    /// `--collector.filesystem.mount-points-exclude`.
    pub filesystem_mount_points_exclude: Option<StrId>,
    /// `--collector.filesystem.fs-types-exclude`.
    pub filesystem_fs_types_exclude: Option<StrId>,
    /// `--collector.filesystem.mount-timeout`; 0: the agent's default, 1 s (the scrape runs on
    /// the agent's event loop; node_exporter waits 5 s).
    pub filesystem_mount_timeout_ms: u32,
    /// `--collector.netdev.device-exclude` (default `^lo$`).
    pub netdev_device_exclude: Option<StrId>,
    /// `--collector.diskstats.device-exclude`.
    pub diskstats_device_exclude: Option<StrId>,
    /// `--collector.netstat.fields`.
    pub netstat_fields: Option<StrId>,
    /// `--collector.vmstat.fields`.
    pub vmstat_fields: Option<StrId>,
    /// `--collector.netclass.ignored-devices` (default `^$`).
    pub netclass_ignored_devices: Option<StrId>,
    /// `--collector.textfile.directory`; `None`: no directory, as node_exporter's default "".
    pub textfile: Option<Textfile>,
}

impl NodeOptions {
    fn patterns(&self) -> [(&'static str, Option<StrId>); 7] {
        [
            (
                "node.options.filesystem_mount_points_exclude",
                self.filesystem_mount_points_exclude,
            ),
            (
                "node.options.filesystem_fs_types_exclude",
                self.filesystem_fs_types_exclude,
            ),
            ("node.options.netdev_device_exclude", self.netdev_device_exclude),
            (
                "node.options.diskstats_device_exclude",
                self.diskstats_device_exclude,
            ),
            ("node.options.netstat_fields", self.netstat_fields),
            ("node.options.vmstat_fields", self.vmstat_fields),
            (
                "node.options.netclass_ignored_devices",
                self.netclass_ignored_devices,
            ),
        ]
    }
}

/// The textfile collector's directory and the bounds of what it reads from it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Textfile {
    pub directory: StrId,
    /// `*.prom` files read per scrape; the rest are skipped and count as an error.
    pub max_files: u32,
    /// A larger file is skipped and counts as an error.
    pub max_file_bytes: u32,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ScrapeJob {
    pub name: StrId,
    pub interval_ms: u32,
    pub timeout_ms: u32,
    pub scheme: Scheme,
    pub path: StrId,
    /// `host:port`; `${NODE_NAME}` and `${NODE_IP}` are filled in at agent start.
    pub targets: Vec<StrId>,
    /// Added to every series of the job's targets (before `honor_labels` is applied).
    pub labels: Vec<LabelPair>,
    pub honor_labels: bool,
    pub bearer_token_file: Option<StrId>,
    pub tls: Option<Tls>,
    pub limits: Limits,
    pub metric_relabel: Vec<RelabelRule>,
    /// Not part of the postcard `Plan`: written after it, in version 3 only (see [`encode`]).
    /// Version-1 and -2 plans mean static targets without target relabeling, which is what
    /// `default()` holds.
    #[serde(skip)]
    pub targeting: Targeting,
}

/// How a job's targets are found and chosen, as Prometheus's `kubernetes_sd_configs` and
/// `relabel_configs` do it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Targeting {
    /// Target relabeling: runs once per target (static or discovered) on its labels before
    /// any scrape, with the `__address__`, `__scheme__`, `__metrics_path__`,
    /// `__scrape_interval__`, `__scrape_timeout__`, `job` and `__meta_kubernetes_*` labels.
    /// A target whose labels a rule drops is not scraped.
    pub relabel: Vec<RelabelRule>,
    /// Targets found in the Kubernetes API, beside the static `targets`.
    pub discovery: Option<Discovery>,
}

/// What Kubernetes discovery watches, in Prometheus's terms.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeRole {
    /// A target per container port of each pod (or per container without ports).
    Pod,
    /// A target per endpoint address and port of each EndpointSlice, with its Service's and
    /// pod's labels.
    EndpointSlice,
    /// A target per port of each Service, at its cluster DNS name.
    Service,
    /// A target per node, at its kubelet port.
    Node,
}

impl KubeRole {
    pub const ALL: [KubeRole; 4] = [
        KubeRole::Pod,
        KubeRole::EndpointSlice,
        KubeRole::Service,
        KubeRole::Node,
    ];

    /// Prometheus's spelling of the role.
    pub fn name(self) -> &'static str {
        match self {
            KubeRole::Pod => "pod",
            KubeRole::EndpointSlice => "endpointslice",
            KubeRole::Service => "service",
            KubeRole::Node => "node",
        }
    }

    pub fn from_name(name: &str) -> Option<KubeRole> {
        KubeRole::ALL.into_iter().find(|r| r.name() == name)
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Discovery {
    pub role: KubeRole,
    /// Namespaces watched, each with its own list and watch; empty: every namespace (ignored
    /// by the node role, whose objects have none).
    pub namespaces: Vec<StrId>,
    /// Pod role only: watch only the pods on the agent's own node (field selector
    /// `spec.nodeName=<node name>`).
    pub own_node: bool,
    /// Targets kept after target relabeling; a target past it is not scraped, and counted.
    /// Every kept target is charged a scrape's worst case in [`crate::sizing`].
    pub max_targets: u32,
    /// Largest object (one JSON list item or watch event) decoded; a larger one is skipped
    /// and counted, and its old targets stay.
    pub max_object_bytes: u32,
    /// Bytes of what discovery keeps between events: the labels of found targets (kept and a
    /// few dropped, as `/api/v1/targets` shows them) and, for `endpointslice`, the Services
    /// and pods it labels endpoints with. What does not fit is skipped and counted.
    pub max_store_bytes: u32,
    /// `None`: in-cluster, through `KUBERNETES_SERVICE_HOST`/`_PORT` with the pod's
    /// service-account token and CA.
    pub api_server: Option<ApiServer>,
}

/// An API server named in the spec instead of the in-cluster one.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ApiServer {
    /// `http(s)://host[:port]`, without a path.
    pub url: StrId,
    pub bearer_token_file: Option<StrId>,
    pub tls: Option<Tls>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SelfScrape {
    pub interval_ms: u32,
    pub job: StrId,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelabelAction {
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

impl RelabelAction {
    pub const ALL: [RelabelAction; 11] = [
        RelabelAction::Replace,
        RelabelAction::Keep,
        RelabelAction::Drop,
        RelabelAction::KeepEqual,
        RelabelAction::DropEqual,
        RelabelAction::HashMod,
        RelabelAction::LabelMap,
        RelabelAction::LabelDrop,
        RelabelAction::LabelKeep,
        RelabelAction::Lowercase,
        RelabelAction::Uppercase,
    ];

    /// Prometheus's spelling of the action.
    pub fn name(self) -> &'static str {
        match self {
            RelabelAction::Replace => "replace",
            RelabelAction::Keep => "keep",
            RelabelAction::Drop => "drop",
            RelabelAction::KeepEqual => "keepequal",
            RelabelAction::DropEqual => "dropequal",
            RelabelAction::HashMod => "hashmod",
            RelabelAction::LabelMap => "labelmap",
            RelabelAction::LabelDrop => "labeldrop",
            RelabelAction::LabelKeep => "labelkeep",
            RelabelAction::Lowercase => "lowercase",
            RelabelAction::Uppercase => "uppercase",
        }
    }

    pub fn from_name(name: &str) -> Option<RelabelAction> {
        RelabelAction::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// One relabel rule with Prometheus's semantics. Defaults (separator `;`,
/// regex `(.*)`, replacement `$1`) are filled in by the compiler, so the agent
/// never guesses.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RelabelRule {
    pub action: RelabelAction,
    pub source_labels: Vec<StrId>,
    pub separator: StrId,
    /// The pattern as written in the spec, without anchors; the agent anchors
    /// it on both ends, as Prometheus does.
    pub regex: StrId,
    pub modulus: u64,
    pub target_label: StrId,
    pub replacement: StrId,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Budget {
    pub cpu_request_millis: u32,
    pub cpu_limit_millis: u32,
    pub memory_request_bytes: u64,
    pub memory_limit_bytes: u64,
}

impl Plan {
    /// The interned string behind `id`. Only valid on a plan that passed
    /// [`decode`] or [`Plan::validate`]; an out-of-range id yields "".
    pub fn str(&self, id: StrId) -> &str {
        self.strings.get(id.0 as usize).map(String::as_str).unwrap_or("")
    }
}

impl ScrapeJob {
    /// The most targets this job scrapes at once: its static ones and what
    /// its discovery may keep.
    pub fn max_targets(&self) -> usize {
        let discovered = self
            .targeting
            .discovery
            .as_ref()
            .map_or(0, |d| d.max_targets as usize);
        self.targets.len() + discovered
    }
}

/// Limits of the agent's own `/metrics`, which it scrapes in-process.
pub const SELF_SCRAPE_LIMITS: Limits = Limits {
    body_bytes: 256 * 1024,
    samples: 2000,
    label_count: 16,
    label_name_bytes: 64,
    label_value_bytes: 256,
};
