//! The fleet spec as it is written in YAML. Values that need parsing
//! (durations, sizes, CPU quantities, regexes) stay strings here, so the
//! checker can report every bad one with its place instead of stopping at
//! the first. `import` writes specs through the same types: keys left
//! unset are left out.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Fleet {
    pub receiver: ReceiverSpec,
    /// The outpost image the generated manifests run, pinned by digest:
    /// `registry.example.net/outpost:0.1.0@sha256:…` (see `manifests::image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Settings::is_unset")]
    pub defaults: Settings,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scrape_jobs: Vec<JobSpec>,
    pub clusters: Vec<ClusterSpec>,
}

#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReceiverSpec {
    pub url: String,
    /// Absent: Thanos Receive's `THANOS-TENANT`. Empty: no tenant header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,
}

#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_verify: bool,
}

/// Secrets are file paths; the inline keys exist only to be refused with a
/// clear message instead of a generic "unknown key".
#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<BasicAuthSpec>,
}

#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthSpec {
    pub username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl Settings {
    /// Nothing set: an `overrides` that needs no writing.
    pub fn is_unset(&self) -> bool {
        *self == Settings::default()
    }
}

/// Everything a cluster or tenant inherits from `defaults` and may override.
#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_timeout: Option<String>,
    /// Merged key by key: defaults, then cluster, then tenant.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub external_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueSpec>,
    /// Applied to every scrape job and the node collectors, after the job's own rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_relabel: Option<Vec<RelabelSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_relabel: Option<Vec<RelabelSpec>>,
    /// WAL of the cluster-role agent (the seed's 50Gi PVC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal: Option<WalSpec>,
    /// WAL of the node-role agents, on each node's local disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_wal: Option<WalSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsSpec>,
    /// Budget of the cluster-role agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourcesSpec>,
    /// Budget of each node-role agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_resources: Option<ResourcesSpec>,
    /// Scrapes whose bodies an agent parses at once (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_concurrency: Option<u64>,
    /// What an agent's series tables may hold together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series_pool: Option<SeriesPoolSpec>,
}

#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SeriesPoolSpec {
    /// Series entries, all targets together (default 200000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_series: Option<u64>,
    /// Bytes, all targets together (default 64Mi).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<String>,
}

#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QueueSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_shards: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_shards: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_samples_per_send: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_send_deadline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_backoff: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backoff: Option<String>,
    /// Bytes of one uncompressed batch; default `max_samples_per_send` x 200 B.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_batch_size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sample_age: Option<String>,
}

#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WalSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_size: Option<String>,
    /// `always`, `never`, or a duration such as `1s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fsync: Option<String>,
    /// `spill` (hold records in memory, write only what the receiver has not taken in time)
    /// or `append` (append every record before it is sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Spill mode: a record not acknowledged within this long is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spill_after: Option<String>,
    /// Spill mode: compressed bytes held in memory at most; past it the oldest are written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_held_size: Option<String>,
}

#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_name_length: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_value_length: Option<u64>,
}

#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResourcesSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<Quantities>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Quantities>,
}

#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Quantities {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// Absent or `default`: node_exporter 1.5's default Linux collectors that outpost has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collectors: Option<CollectorsSpec>,
    /// Taken out of `collectors`, as node_exporter's `--no-collector.<name>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disabled_collectors: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metric_relabel: Vec<RelabelSpec>,
    /// node_exporter's `--collector.<collector>.<option>` flags that users rely on.
    #[serde(default, skip_serializing_if = "NodeOptionsSpec::is_unset")]
    pub options: NodeOptionsSpec,
}

/// `default`, or the collectors by node_exporter's names.
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
#[serde(untagged)]
pub enum CollectorsSpec {
    /// Only `default` is a valid set name; anything else is reported with its place.
    Set(String),
    List(Vec<String>),
}

/// Per-collector options, grouped by collector as node_exporter's flags are. Patterns are
/// regular expressions matched unanchored, as node_exporter's are.
#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeOptionsSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<FilesystemOptionsSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netdev: Option<DeviceExcludeSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diskstats: Option<DeviceExcludeSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netclass: Option<NetclassOptionsSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netstat: Option<FieldsSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmstat: Option<FieldsSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub textfile: Option<TextfileSpec>,
}

impl NodeOptionsSpec {
    pub fn is_unset(&self) -> bool {
        *self == NodeOptionsSpec::default()
    }
}

#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FilesystemOptionsSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_points_exclude: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_types_exclude: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_timeout: Option<String>,
}

#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeviceExcludeSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_exclude: Option<String>,
}

#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetclassOptionsSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored_devices: Option<String>,
}

#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FieldsSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<String>,
}

#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TextfileSpec {
    /// A directory on the host, mounted read-only into the node-role agents at the same path.
    pub directory: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_files: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_file_size: Option<String>,
}

#[derive(Deserialize, Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Node,
    Cluster,
}

#[derive(Deserialize, Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SchemeSpec {
    Http,
    Https,
}

#[derive(Deserialize, Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum TenantFilter {
    /// Keep series of the tenant's namespaces and nodes (kube-state-metrics shape).
    Namespace,
    /// Send the job's series to every tenant unchanged.
    None,
}

#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub name: String,
    pub scope: Scope,
    /// Static `host:port` targets; may be left out when `discovery` finds the targets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// Targets found in the Kubernetes API (Prometheus's `kubernetes_sd_configs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<DiscoverySpec>,
    /// Ready-made target relabeling run before `relabel`: `prometheus.io` keeps the
    /// pods or Services annotated `prometheus.io/scrape: "true"` and honours their
    /// `prometheus.io/scheme`, `/path` and `/port` annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relabel_preset: Option<String>,
    /// Target relabeling (Prometheus's `relabel_configs`): runs on each target's labels
    /// before it is scraped; a target a rule drops is not scraped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relabel: Vec<RelabelSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<SchemeSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub honor_labels: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metric_relabel: Vec<RelabelSpec>,
    /// Only for cluster-scope jobs in multi-tenant clusters; default `namespace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_filter: Option<TenantFilter>,
}

/// Kubernetes discovery of a job's targets, in Prometheus's terms.
#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DiscoverySpec {
    /// `pod` (the only role of a node-scope job: each agent watches its own node's pods),
    /// `endpointslice`, `service` or `node`.
    pub role: String,
    /// Namespaces to watch; absent: all (a tenant's agents: the tenant's namespaces).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Targets kept after relabeling; each is charged a scrape's worst case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_targets: Option<u64>,
    /// Largest Kubernetes object decoded (a larger one is skipped and counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_object_size: Option<String>,
    /// What discovery keeps between events (discovered labels, Services and pods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_store_size: Option<String>,
    /// `http(s)://host:port` of an API server to use instead of the in-cluster one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
}

#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RelabelSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_labels: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modulus: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
}

#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    pub name: String,
    /// Value of the `role` external label (`edge`, `edge-multi-tenant`).
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Settings::is_unset")]
    pub overrides: Settings,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<TenantSpec>,
}

#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TenantSpec {
    pub name: String,
    pub node_selector: BTreeMap<String, String>,
    pub namespaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Settings::is_unset")]
    pub overrides: Settings,
}

/// One file of a spec split over a directory. Top-level sections may sit in
/// any file; `receiver`, `image`, `defaults` and `node` in one file only, jobs and
/// clusters concatenated in file-name order.
#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FleetPart {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<ReceiverSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<Settings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scrape_jobs: Vec<JobSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<ClusterSpec>,
}
