//! `outpostc manifests`: per cluster, a kustomize-ready directory that runs
//! the plans built from the same spec, so plans and manifests never drift.
//!
//! Objects are typed (k8s-openapi, Kubernetes 1.32) and written by
//! serde-saphyr with sorted keys, so the same spec gives the same bytes.
//! Per cluster:
//! - `namespaces.yaml`: `monitoring`, and `monitoring-<tenant>` per tenant;
//! - `kube-state-metrics.yaml`: upstream KSM with its ServiceAccount,
//!   ClusterRole, ClusterRoleBinding and Service (see [`ksm`]);
//! - `outpost-rbac.yaml`: read access to the kubelet's metrics, bound to the
//!   agents whose plans scrape the kubelet with their ServiceAccount token;
//! - `outpost-<namespace>.yaml`, one per cluster or tenant: ServiceAccount,
//!   the plans as ConfigMaps (`binaryData`), the node-role DaemonSet, and
//!   the cluster-role StatefulSet with its headless Service, and the RBAC
//!   their Kubernetes discovery needs (see [`discovery`]);
//! - `kustomization.yaml` listing them.
//!
//! Secrets (TLS material, tokens, passwords) are never generated: every
//! file path in a plan outside the ServiceAccount directory is mounted from
//! a Secret named after its directory, which the operator creates (see
//! [`secret_name_for_dir`]). Every image is pinned by digest: outpost's
//! comes from the spec or the command line ([`image`]), and it is the only
//! image besides kube-state-metrics: the node agent's WAL directory is handed
//! to the agent's user by the same image (`outpost chown-wal`).

mod discovery;
pub mod image;
pub mod ksm;
mod pod;
mod yaml;

use pod::{pod_template, restricted_container_context, wal_claim};

pub use yaml::{to_yaml, to_yaml_documents};

use crate::compile::AgentPlan;
use crate::manifests::image::PinnedImage;
use crate::spec::{ClusterSpec, Fleet, TenantSpec};
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec, StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource,
    HTTPGetAction, HostPathVolumeSource, KeyToPath, Namespace, NodeAffinity, NodeSelector,
    NodeSelectorRequirement, NodeSelectorTerm, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements,
    SeccompProfile, SecretVolumeSource, SecurityContext, Service, ServiceAccount, ServicePort, ServiceSpec,
    Toleration, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::ByteString;
use outpost_core::plan::{Auth, Plan, Role, Tls};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub const MONITORING_NAMESPACE: &str = "monitoring";
/// The seed's storage class for the cluster-role agent's WAL.
pub const WAL_STORAGE_CLASS: &str = "longhorn";
pub const AGENT_PORT: i32 = 9090;
/// `nobody`: the agent needs no identity of its own on the node.
pub const AGENT_UID: i64 = 65534;
pub const PLAN_DIR: &str = "/etc/outpost";
/// Node-local WAL directories live under this host path, one per namespace,
/// so two DaemonSets can never share one.
pub const HOST_WAL_ROOT: &str = "/var/lib/outpost";
pub const PLAN_CHECKSUM_ANNOTATION: &str = "checksum/plan";
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
pub const AGENT_SERVICE_ACCOUNT: &str = "outpost";
pub const KUBELET_READER_ROLE: &str = "outpost-kubelet-metrics";
/// The API server refuses a ConfigMap whose data passes 1MiB.
pub const CONFIG_MAP_MAX_BYTES: usize = 1 << 20;
/// Secret files are readable by the agent's group (fsGroup) and no one else.
const SECRET_FILE_MODE: i32 = 0o440;

/// One file of the output, relative to the output directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFile {
    /// `<cluster>/<file>.yaml`
    pub path: PathBuf,
    pub contents: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("plan {plan}: cannot encode it for its ConfigMap: {reason}")]
    Encode { plan: String, reason: String },
    #[error("{what} `{name}` is not a valid Kubernetes name: {reason}")]
    BadName {
        what: &'static str,
        name: String,
        reason: String,
    },
    #[error("plan {plan}: {bytes} bytes do not fit a ConfigMap, which holds at most {limit} bytes")]
    PlanTooLarge {
        plan: String,
        bytes: usize,
        limit: usize,
    },
    #[error("plan {plan}: file `{path}` cannot be mounted from a Secret: {reason}")]
    BadSecretPath {
        plan: String,
        path: String,
        reason: String,
    },
}

/// Renders every cluster's directory, the agents running `image` (see
/// [`image::resolve`]). `plans` must come from [`crate::build_plans`] on
/// `fleet` without errors; a cluster or tenant without plans gets its
/// namespace and KSM only.
pub fn render(
    fleet: &Fleet,
    plans: &[AgentPlan],
    image: &PinnedImage,
) -> Result<Vec<ManifestFile>, ManifestError> {
    let mut files = Vec::new();
    for cluster in &fleet.clusters {
        files.extend(render_cluster(cluster, plans, image)?);
    }
    Ok(files)
}

/// Writes `files` under `dir`, creating directories as needed.
pub fn write_files(files: &[ManifestFile], dir: &Path) -> std::io::Result<()> {
    for f in files {
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, &f.contents)?;
    }
    Ok(())
}

/// One cluster or one tenant of a cluster: the agents of one namespace.
struct Unit<'a> {
    cluster: &'a ClusterSpec,
    tenant: Option<&'a TenantSpec>,
    namespace: String,
}

impl Unit<'_> {
    /// `app.kubernetes.io/instance`: unique per writer in the fleet.
    fn instance(&self) -> String {
        match self.tenant {
            Some(t) => format!("{}-{}", self.cluster.name, t.name),
            None => self.cluster.name.clone(),
        }
    }

    fn plan<'p>(&self, plans: &'p [AgentPlan], role: Role) -> Option<&'p AgentPlan> {
        plans.iter().find(|p| {
            p.cluster == self.cluster.name
                && p.tenant.as_deref() == self.tenant.map(|t| t.name.as_str())
                && p.role == role
        })
    }
}

fn units(cluster: &ClusterSpec) -> Result<Vec<Unit<'_>>, ManifestError> {
    if cluster.tenants.is_empty() {
        return Ok(vec![Unit {
            cluster,
            tenant: None,
            namespace: MONITORING_NAMESPACE.to_string(),
        }]);
    }
    cluster
        .tenants
        .iter()
        .map(|t| {
            let namespace = format!("{MONITORING_NAMESPACE}-{}", t.name);
            check_dns_label("namespace", &namespace)?;
            Ok(Unit {
                cluster,
                tenant: Some(t),
                namespace,
            })
        })
        .collect()
}

fn render_cluster(
    cluster: &ClusterSpec,
    plans: &[AgentPlan],
    image: &PinnedImage,
) -> Result<Vec<ManifestFile>, ManifestError> {
    let units = units(cluster)?;
    let dir = PathBuf::from(&cluster.name);
    let mut files: Vec<(String, Vec<Value>)> = Vec::new();

    let mut namespaces: BTreeSet<&str> = BTreeSet::from([MONITORING_NAMESPACE]);
    namespaces.extend(units.iter().map(|u| u.namespace.as_str()));
    let namespace_docs = namespaces
        .iter()
        .map(|ns| {
            to_doc(&Namespace {
                metadata: meta(ns, None, &labels_map(&[("app.kubernetes.io/part-of", "outpost")])),
                ..Default::default()
            })
        })
        .collect();
    files.push(("namespaces.yaml".into(), namespace_docs));
    // In a multi-tenant cluster only the tenants' cluster agents may read KSM.
    let tenant_namespaces: Vec<String> = units
        .iter()
        .filter(|u| u.tenant.is_some())
        .map(|u| u.namespace.clone())
        .collect();
    let ksm_clients = (!tenant_namespaces.is_empty()).then_some(tenant_namespaces.as_slice());
    let node_label_keys: Vec<String> = cluster
        .tenants
        .iter()
        .flat_map(|t| t.node_selector.keys().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    files.push((
        "kube-state-metrics.yaml".into(),
        ksm::objects(MONITORING_NAMESPACE, ksm_clients, &node_label_keys),
    ));

    let mut kubelet_readers = Vec::new();
    let mut unit_files = Vec::new();
    for unit in &units {
        let mut docs = vec![to_doc(&ServiceAccount {
            metadata: meta(
                AGENT_SERVICE_ACCOUNT,
                Some(&unit.namespace),
                &unit_labels(unit, None),
            ),
            automount_service_account_token: Some(false),
            ..Default::default()
        })];
        let mut needs_token = false;
        for role in [Role::Node, Role::Cluster] {
            if let Some(agent) = unit.plan(plans, role) {
                needs_token |= uses_service_account(&agent.plan);
                docs.extend(agent_objects(unit, agent, image)?);
            }
        }
        let unit_plans = [Role::Node, Role::Cluster]
            .into_iter()
            .filter_map(|role| unit.plan(plans, role))
            .map(|a| &a.plan);
        docs.extend(discovery::rbac(&unit.namespace, unit_plans));
        if needs_token {
            kubelet_readers.push(unit.namespace.clone());
        }
        unit_files.push((format!("outpost-{}.yaml", unit.namespace), docs));
    }
    if !kubelet_readers.is_empty() {
        files.push(("outpost-rbac.yaml".into(), kubelet_rbac(&kubelet_readers)));
    }
    files.extend(unit_files);

    let mut out: Vec<ManifestFile> = Vec::new();
    let kustomization = serde_json::json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": files.iter().map(|(name, _)| name.clone()).collect::<Vec<_>>(),
    });
    out.push(ManifestFile {
        path: dir.join("kustomization.yaml"),
        contents: to_yaml(&kustomization),
    });
    for (name, docs) in files {
        out.push(ManifestFile {
            path: dir.join(name),
            contents: to_yaml_documents(&docs),
        });
    }
    Ok(out)
}

/// The kubelet authorizes `/metrics` and `/metrics/cadvisor` as `nodes/metrics`.
fn kubelet_rbac(namespaces: &[String]) -> Vec<Value> {
    let labels = labels_map(&[
        ("app.kubernetes.io/name", "outpost"),
        ("app.kubernetes.io/part-of", "outpost"),
        ("app.kubernetes.io/managed-by", "outpostc"),
    ]);
    let role = ClusterRole {
        metadata: meta(KUBELET_READER_ROLE, None, &labels),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["nodes/metrics".into()]),
            verbs: vec!["get".into()],
            ..Default::default()
        }]),
        ..Default::default()
    };
    let binding = ClusterRoleBinding {
        metadata: meta(KUBELET_READER_ROLE, None, &labels),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: KUBELET_READER_ROLE.into(),
        },
        subjects: Some(
            namespaces
                .iter()
                .map(|ns| Subject {
                    kind: "ServiceAccount".into(),
                    name: AGENT_SERVICE_ACCOUNT.into(),
                    namespace: Some(ns.clone()),
                    ..Default::default()
                })
                .collect(),
        ),
    };
    vec![to_doc(&role), to_doc(&binding)]
}

fn role_component(role: Role) -> &'static str {
    match role {
        Role::Node => "node-agent",
        Role::Cluster => "cluster-agent",
    }
}

/// Labels that select one workload; they never change for its lifetime.
fn selector_labels(unit: &Unit, role: Role) -> BTreeMap<String, String> {
    labels_map(&[
        ("app.kubernetes.io/name", "outpost"),
        ("app.kubernetes.io/instance", &unit.instance()),
        ("app.kubernetes.io/component", role_component(role)),
    ])
}

fn unit_labels(unit: &Unit, role: Option<Role>) -> BTreeMap<String, String> {
    let mut labels = labels_map(&[
        ("app.kubernetes.io/name", "outpost"),
        ("app.kubernetes.io/instance", &unit.instance()),
        ("app.kubernetes.io/part-of", "outpost"),
        ("app.kubernetes.io/managed-by", "outpostc"),
    ]);
    if let Some(role) = role {
        labels.insert("app.kubernetes.io/component".into(), role_component(role).into());
    }
    labels
}

/// ConfigMap, then the DaemonSet (node) or the headless Service and the
/// StatefulSet (cluster).
fn agent_objects(unit: &Unit, agent: &AgentPlan, image: &PinnedImage) -> Result<Vec<Value>, ManifestError> {
    let plan_name = agent.rel_path().display().to_string();
    let bytes = outpost_core::plan::encode(&agent.plan).map_err(|e| ManifestError::Encode {
        plan: plan_name.clone(),
        reason: e.to_string(),
    })?;
    if bytes.len() > CONFIG_MAP_MAX_BYTES {
        return Err(ManifestError::PlanTooLarge {
            plan: plan_name,
            bytes: bytes.len(),
            limit: CONFIG_MAP_MAX_BYTES,
        });
    }
    let role = agent.role;
    let labels = unit_labels(unit, Some(role));
    let plan_key = format!("{}.plan", role.as_str());
    let config_map_name = format!("outpost-{}-plan", role.as_str());
    let config_map = ConfigMap {
        metadata: meta(&config_map_name, Some(&unit.namespace), &labels),
        binary_data: Some(BTreeMap::from([(plan_key.clone(), ByteString(bytes.clone()))])),
        ..Default::default()
    };
    let secrets = secret_mounts(&agent.plan, &plan_name)?;
    let template = pod_template(unit, agent, image, &bytes, &config_map_name, &plan_key, &secrets);
    let workload_name = format!("outpost-{}", role.as_str());
    let selector = LabelSelector {
        match_labels: Some(selector_labels(unit, role)),
        ..Default::default()
    };
    let mut docs = vec![to_doc(&config_map)];
    match role {
        Role::Node => docs.push(to_doc(&DaemonSet {
            metadata: meta(&workload_name, Some(&unit.namespace), &labels),
            spec: Some(DaemonSetSpec {
                selector,
                template,
                ..Default::default()
            }),
            ..Default::default()
        })),
        Role::Cluster => {
            docs.push(to_doc(&Service {
                metadata: meta(&workload_name, Some(&unit.namespace), &labels),
                spec: Some(ServiceSpec {
                    cluster_ip: Some("None".into()),
                    selector: Some(selector_labels(unit, role)),
                    ports: Some(vec![ServicePort {
                        name: Some("http".into()),
                        port: AGENT_PORT,
                        target_port: Some(IntOrString::String("http".into())),
                        protocol: Some("TCP".into()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                ..Default::default()
            }));
            docs.push(to_doc(&StatefulSet {
                metadata: meta(&workload_name, Some(&unit.namespace), &labels),
                spec: Some(StatefulSetSpec {
                    replicas: Some(1),
                    service_name: Some(workload_name.clone()),
                    selector,
                    template,
                    volume_claim_templates: Some(vec![wal_claim(&agent.plan)]),
                    ..Default::default()
                }),
                ..Default::default()
            }));
        }
    }
    Ok(docs)
}

/// Files of one Secret, mounted as one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMount {
    pub secret: String,
    pub dir: String,
    /// Secret keys, which are also the file names.
    pub files: BTreeSet<String>,
}

/// Every credential file the plan reads, except the ServiceAccount's own
/// token and CA, grouped by directory.
pub fn secret_mounts(plan: &Plan, plan_name: &str) -> Result<Vec<SecretMount>, ManifestError> {
    let mut paths: Vec<&str> = Vec::new();
    fn tls_paths<'p>(plan: &'p Plan, tls: &Option<Tls>, out: &mut Vec<&'p str>) {
        if let Some(t) = tls {
            for id in [t.ca_file, t.cert_file, t.key_file].into_iter().flatten() {
                out.push(plan.str(id));
            }
        }
    }
    tls_paths(plan, &plan.receiver.tls, &mut paths);
    match &plan.receiver.auth {
        Auth::None => {}
        Auth::BearerTokenFile(f) => paths.push(plan.str(*f)),
        Auth::Basic { password_file, .. } => paths.push(plan.str(*password_file)),
    }
    for job in &plan.scrape_jobs {
        tls_paths(plan, &job.tls, &mut paths);
        if let Some(f) = job.bearer_token_file {
            paths.push(plan.str(f));
        }
    }
    let wal_dir = plan.str(plan.wal.dir);
    let mut by_dir: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in paths {
        if is_within(path, SERVICE_ACCOUNT_DIR) {
            continue;
        }
        let bad = |reason: String| ManifestError::BadSecretPath {
            plan: plan_name.to_string(),
            path: path.to_string(),
            reason,
        };
        let (dir, file) = match path.rsplit_once('/') {
            Some((dir, file)) if path.starts_with('/') && !dir.is_empty() && !file.is_empty() => (dir, file),
            _ => {
                return Err(bad(
                    "it must be an absolute path below a directory, like /etc/outpost/tls/ca.crt".into(),
                ))
            }
        };
        if !file
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(bad(format!(
                "the file name `{file}` is used as the Secret key, which allows only letters, digits, `-`, `_` and `.`"
            )));
        }
        if dir == PLAN_DIR || is_within(PLAN_DIR, dir) {
            return Err(bad(format!(
                "its directory would hide the plan in {PLAN_DIR}; put it in a subdirectory such as {PLAN_DIR}/tls"
            )));
        }
        if is_within(dir, wal_dir) || is_within(wal_dir, dir) {
            return Err(bad(format!("its directory overlaps the WAL directory {wal_dir}")));
        }
        by_dir
            .entry(dir.to_string())
            .or_default()
            .insert(file.to_string());
    }
    let dirs: Vec<&String> = by_dir.keys().collect();
    for (i, a) in dirs.iter().enumerate() {
        if let Some(b) = dirs[i + 1..].iter().find(|b| is_within(b, a)) {
            return Err(ManifestError::BadSecretPath {
                plan: plan_name.to_string(),
                path: b.to_string(),
                reason: format!("it is inside {a}, which is mounted from another Secret"),
            });
        }
    }
    by_dir
        .into_iter()
        .map(|(dir, files)| {
            let secret = secret_name_for_dir(&dir);
            check_dns_label("Secret (named after its directory)", &secret)?;
            Ok(SecretMount { secret, dir, files })
        })
        .collect()
}

/// `/etc/outpost/tls` → `outpost-tls`; any other directory → `outpost-`
/// plus its components, e.g. `/etc/ssl/kafka` → `outpost-etc-ssl-kafka`.
pub fn secret_name_for_dir(dir: &str) -> String {
    let rest = dir
        .strip_prefix(PLAN_DIR)
        .filter(|r| r.starts_with('/'))
        .unwrap_or(dir);
    let mut name = String::from("outpost");
    for component in rest.split('/').filter(|c| !c.is_empty()) {
        name.push('-');
        name.extend(component.chars().map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() {
                c
            } else {
                '-'
            }
        }));
    }
    name
}

/// `path` is `dir` or below it.
fn is_within(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    path == dir || path.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
}

/// The plan reads the pod's own ServiceAccount token or CA (kubelet scrapes).
pub fn uses_service_account(plan: &Plan) -> bool {
    let in_sa = |id| is_within(plan.str(id), SERVICE_ACCOUNT_DIR);
    plan.scrape_jobs.iter().any(|j| {
        j.bearer_token_file.is_some_and(in_sa)
            || j.tls.as_ref().is_some_and(|t| {
                [t.ca_file, t.cert_file, t.key_file]
                    .into_iter()
                    .flatten()
                    .any(in_sa)
            })
    })
}

fn check_dns_label(what: &'static str, name: &str) -> Result<(), ManifestError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ManifestError::BadName {
            what,
            name: name.to_string(),
            reason: "at most 63 lowercase letters, digits and `-`, starting and ending alphanumeric".into(),
        })
    }
}

/// `200m`, or whole cores as `2`.
pub fn quantity_cpu(millis: u32) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// The largest binary suffix that divides exactly, else plain bytes.
pub fn quantity_memory(bytes: u64) -> String {
    for (suffix, factor) in [
        ("Ti", 1u64 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ] {
        if bytes >= factor && bytes.is_multiple_of(factor) {
            return format!("{}{suffix}", bytes / factor);
        }
    }
    bytes.to_string()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest.iter() {
        write!(out, "{b:02x}").expect("writing to a String");
    }
    out
}

pub(crate) fn labels_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(crate) fn meta(name: &str, namespace: Option<&str>, labels: &BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(Into::into),
        labels: Some(labels.clone()),
        ..Default::default()
    }
}

/// k8s-openapi adds `apiVersion` and `kind` to top-level objects.
pub(crate) fn to_doc<T: Serialize>(object: &T) -> Value {
    serde_json::to_value(object).expect("k8s-openapi objects always serialize to JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_use_exact_binary_suffixes() {
        assert_eq!(quantity_memory(256 << 20), "256Mi");
        assert_eq!(quantity_memory(50 << 30), "50Gi");
        assert_eq!(quantity_memory(1536 << 20), "1536Mi");
        assert_eq!(quantity_memory(1000), "1000");
        assert_eq!(quantity_memory(0), "0");
        assert_eq!(quantity_cpu(200), "200m");
        assert_eq!(quantity_cpu(2000), "2");
        assert_eq!(quantity_cpu(1500), "1500m");
    }

    #[test]
    fn secret_names_follow_directories() {
        assert_eq!(secret_name_for_dir("/etc/outpost/tls"), "outpost-tls");
        assert_eq!(
            secret_name_for_dir("/etc/outpost/tls/tenant_A"),
            "outpost-tls-tenant-a"
        );
        assert_eq!(secret_name_for_dir("/etc/ssl/kafka"), "outpost-etc-ssl-kafka");
        assert_eq!(secret_name_for_dir("/etc/outposts"), "outpost-etc-outposts");
    }

    #[test]
    fn within_means_equal_or_below() {
        assert!(is_within("/a/b", "/a"));
        assert!(is_within("/a", "/a/"));
        assert!(!is_within("/ab", "/a"));
        assert!(!is_within("/a", "/a/b"));
    }

    #[test]
    fn sha256_of_empty_input_is_the_known_digest() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
