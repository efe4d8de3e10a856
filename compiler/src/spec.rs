//! The fleet spec as it is written in YAML. Values that need parsing
//! (durations, sizes, CPU quantities, regexes) stay strings here, so the
//! checker can report every bad one with its place instead of stopping at
//! the first.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Fleet {
    pub receiver: ReceiverSpec,
    /// The outpost image the generated manifests run, pinned by digest:
    /// `registry.example.net/outpost:0.1.0@sha256:…` (see `manifests::image`).
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub defaults: Settings,
    #[serde(default)]
    pub node: Option<NodeSpec>,
    #[serde(default)]
    pub scrape_jobs: Vec<JobSpec>,
    pub clusters: Vec<ClusterSpec>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct ReceiverSpec {
    pub url: String,
    /// Absent: Thanos Receive's `THANOS-TENANT`. Empty: no tenant header.
    #[serde(default)]
    pub tenant_header: Option<String>,
    #[serde(default)]
    pub remote_timeout: Option<String>,
    #[serde(default)]
    pub tls: Option<TlsSpec>,
    #[serde(default)]
    pub auth: Option<AuthSpec>,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct TlsSpec {
    #[serde(default)]
    pub ca_file: Option<String>,
    #[serde(default)]
    pub cert_file: Option<String>,
    #[serde(default)]
    pub key_file: Option<String>,
    #[serde(default)]
    pub server_name: Option<String>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// Secrets are file paths; the inline keys exist only to be refused with a
/// clear message instead of a generic "unknown key".
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct AuthSpec {
    #[serde(default)]
    pub bearer_token_file: Option<String>,
    #[serde(default)]
    pub bearer_token: Option<String>,
    #[serde(default)]
    pub basic: Option<BasicAuthSpec>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthSpec {
    pub username: String,
    #[serde(default)]
    pub password_file: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

/// Everything a cluster or tenant inherits from `defaults` and may override.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub scrape_interval: Option<String>,
    #[serde(default)]
    pub scrape_timeout: Option<String>,
    /// Merged key by key: defaults, then cluster, then tenant.
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub queue: Option<QueueSpec>,
    /// Applied to every scrape job and the node collectors, after the job's own rules.
    #[serde(default)]
    pub metric_relabel: Option<Vec<RelabelSpec>>,
    #[serde(default)]
    pub write_relabel: Option<Vec<RelabelSpec>>,
    /// WAL of the cluster-role agent (the seed's 50Gi PVC).
    #[serde(default)]
    pub wal: Option<WalSpec>,
    /// WAL of the node-role agents, on each node's local disk.
    #[serde(default)]
    pub node_wal: Option<WalSpec>,
    #[serde(default)]
    pub limits: Option<LimitsSpec>,
    /// Budget of the cluster-role agent.
    #[serde(default)]
    pub resources: Option<ResourcesSpec>,
    /// Budget of each node-role agent.
    #[serde(default)]
    pub node_resources: Option<ResourcesSpec>,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct QueueSpec {
    #[serde(default)]
    pub capacity: Option<u64>,
    #[serde(default)]
    pub min_shards: Option<u64>,
    #[serde(default)]
    pub max_shards: Option<u64>,
    #[serde(default)]
    pub max_samples_per_send: Option<u64>,
    #[serde(default)]
    pub batch_send_deadline: Option<String>,
    #[serde(default)]
    pub min_backoff: Option<String>,
    #[serde(default)]
    pub max_backoff: Option<String>,
    /// Bytes of one uncompressed batch; default `max_samples_per_send` x 200 B.
    #[serde(default)]
    pub max_batch_size: Option<String>,
    #[serde(default)]
    pub max_sample_age: Option<String>,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct WalSpec {
    #[serde(default)]
    pub dir: Option<String>,
    #[serde(default)]
    pub max_size: Option<String>,
    #[serde(default)]
    pub segment_size: Option<String>,
    /// `always`, `never`, or a duration such as `1s`.
    #[serde(default)]
    pub fsync: Option<String>,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    #[serde(default)]
    pub body_size: Option<String>,
    #[serde(default)]
    pub samples: Option<u64>,
    #[serde(default)]
    pub label_count: Option<u64>,
    #[serde(default)]
    pub label_name_length: Option<u64>,
    #[serde(default)]
    pub label_value_length: Option<u64>,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct ResourcesSpec {
    #[serde(default)]
    pub requests: Option<Quantities>,
    #[serde(default)]
    pub limits: Option<Quantities>,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct Quantities {
    #[serde(default)]
    pub cpu: Option<String>,
    #[serde(default)]
    pub memory: Option<String>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    pub collectors: Vec<String>,
    #[serde(default)]
    pub job: Option<String>,
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub limits: Option<LimitsSpec>,
    #[serde(default)]
    pub metric_relabel: Vec<RelabelSpec>,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Node,
    Cluster,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SchemeSpec {
    Http,
    Https,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum TenantFilter {
    /// Keep series of the tenant's namespaces and nodes (kube-state-metrics shape).
    Namespace,
    /// Send the job's series to every tenant unchanged.
    None,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub name: String,
    pub scope: Scope,
    pub targets: Vec<String>,
    #[serde(default)]
    pub scheme: Option<SchemeSpec>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub bearer_token_file: Option<String>,
    #[serde(default)]
    pub bearer_token: Option<String>,
    #[serde(default)]
    pub tls: Option<TlsSpec>,
    #[serde(default)]
    pub honor_labels: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub limits: Option<LimitsSpec>,
    #[serde(default)]
    pub metric_relabel: Vec<RelabelSpec>,
    /// Only for cluster-scope jobs in multi-tenant clusters; default `namespace`.
    #[serde(default)]
    pub tenant_filter: Option<TenantFilter>,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct RelabelSpec {
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub source_labels: Vec<String>,
    #[serde(default)]
    pub separator: Option<String>,
    #[serde(default)]
    pub regex: Option<String>,
    #[serde(default)]
    pub modulus: Option<u64>,
    #[serde(default)]
    pub target_label: Option<String>,
    #[serde(default)]
    pub replacement: Option<String>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    pub name: String,
    /// Value of the `role` external label (`edge`, `edge-multi-tenant`).
    pub role: String,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub overrides: Settings,
    #[serde(default)]
    pub tenants: Vec<TenantSpec>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct TenantSpec {
    pub name: String,
    pub node_selector: BTreeMap<String, String>,
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub overrides: Settings,
}

/// One file of a spec split over a directory. Top-level sections may sit in
/// any file; `receiver`, `image`, `defaults` and `node` in one file only, jobs and
/// clusters concatenated in file-name order.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct FleetPart {
    #[serde(default)]
    pub receiver: Option<ReceiverSpec>,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub defaults: Option<Settings>,
    #[serde(default)]
    pub node: Option<NodeSpec>,
    #[serde(default)]
    pub scrape_jobs: Vec<JobSpec>,
    #[serde(default)]
    pub clusters: Vec<ClusterSpec>,
}
