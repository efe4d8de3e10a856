//! kube-state-metrics, as upstream ships it, with the RBAC it needs.
//!
//! The seed's KSM had no ServiceAccount and no ClusterRole, so it could list
//! nothing. Here one table drives both the `--resources` flag and the
//! ClusterRole, so KSM is granted exactly what it exposes. Secrets are left
//! out on purpose: listing them hands KSM every secret's data in the
//! cluster, for a handful of metadata series.

use super::{labels_map, meta, quantity_cpu, quantity_memory, restricted_container_context, to_doc};
use crate::budget::{
    KSM_CPU_LIMIT_MILLIS, KSM_CPU_REQUEST_MILLIS, KSM_MEMORY_LIMIT_BYTES, KSM_MEMORY_REQUEST_BYTES,
};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, HTTPGetAction, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, Service, ServiceAccount, ServicePort, ServiceSpec,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;
use std::collections::BTreeMap;

/// Upstream KSM release built against client-go 1.32, the Kubernetes
/// version the manifests are validated for.
pub const KSM_VERSION: &str = "v2.15.0";
/// Pinned by the digest of the release's multi-arch image index, like the
/// outpost image: a moved tag cannot change what the cluster runs.
pub const KSM_IMAGE: &str = "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.15.0\
@sha256:db384bf43222b066c378e77027a675d4cd9911107adba46c2922b3a55e10d6fb";
pub const KSM_NAME: &str = "kube-state-metrics";
pub const KSM_METRICS_PORT: i32 = 8080;
pub const KSM_TELEMETRY_PORT: i32 = 8081;

/// (KSM resource name, API group). KSM's default set without `secrets`.
pub const KSM_RESOURCES: [(&str, &str); 27] = [
    ("certificatesigningrequests", "certificates.k8s.io"),
    ("configmaps", ""),
    ("cronjobs", "batch"),
    ("daemonsets", "apps"),
    ("deployments", "apps"),
    ("endpoints", ""),
    ("horizontalpodautoscalers", "autoscaling"),
    ("ingresses", "networking.k8s.io"),
    ("jobs", "batch"),
    ("leases", "coordination.k8s.io"),
    ("limitranges", ""),
    ("mutatingwebhookconfigurations", "admissionregistration.k8s.io"),
    ("namespaces", ""),
    ("networkpolicies", "networking.k8s.io"),
    ("nodes", ""),
    ("persistentvolumeclaims", ""),
    ("persistentvolumes", ""),
    ("poddisruptionbudgets", "policy"),
    ("pods", ""),
    ("replicasets", "apps"),
    ("replicationcontrollers", ""),
    ("resourcequotas", ""),
    ("services", ""),
    ("statefulsets", "apps"),
    ("storageclasses", "storage.k8s.io"),
    ("validatingwebhookconfigurations", "admissionregistration.k8s.io"),
    ("volumeattachments", "storage.k8s.io"),
];

fn ksm_labels() -> BTreeMap<String, String> {
    labels_map(&[
        ("app.kubernetes.io/name", KSM_NAME),
        ("app.kubernetes.io/version", KSM_VERSION),
        ("app.kubernetes.io/part-of", "outpost"),
        ("app.kubernetes.io/managed-by", "outpostc"),
    ])
}

fn ksm_selector() -> BTreeMap<String, String> {
    labels_map(&[("app.kubernetes.io/name", KSM_NAME)])
}

/// ServiceAccount, ClusterRole, ClusterRoleBinding, Deployment and Service,
/// in that order, all in `namespace` (the role objects are cluster-wide).
/// With `only_from` (a multi-tenant cluster), a NetworkPolicy follows that
/// lets only the cluster-role agents of those namespaces reach KSM: the
/// per-tenant filter lives in those agents, so a tenant's own pods must not
/// read the unfiltered series from KSM directly. `node_label_keys` are the
/// tenants' node-selector keys: KSM exports them on `kube_node_labels` (as
/// `label_<key>`) only when allow-listed, and the tenant filter needs them.
pub fn objects(namespace: &str, only_from: Option<&[String]>, node_label_keys: &[String]) -> Vec<Value> {
    let labels = ksm_labels();
    let account = ServiceAccount {
        metadata: meta(KSM_NAME, Some(namespace), &labels),
        ..Default::default()
    };
    let role = ClusterRole {
        metadata: meta(KSM_NAME, None, &labels),
        rules: Some(rules()),
        ..Default::default()
    };
    let binding = ClusterRoleBinding {
        metadata: meta(KSM_NAME, None, &labels),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: KSM_NAME.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: KSM_NAME.into(),
            namespace: Some(namespace.into()),
            ..Default::default()
        }]),
    };
    let mut docs = vec![
        to_doc(&account),
        to_doc(&role),
        to_doc(&binding),
        to_doc(&deployment(namespace, &labels, node_label_keys)),
        to_doc(&service(namespace, &labels)),
    ];
    if let Some(namespaces) = only_from {
        docs.push(to_doc(&network_policy(namespace, &labels, namespaces)));
    }
    docs
}

fn network_policy(namespace: &str, labels: &BTreeMap<String, String>, from: &[String]) -> NetworkPolicy {
    NetworkPolicy {
        metadata: meta(KSM_NAME, Some(namespace), labels),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(ksm_selector()),
                ..Default::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![NetworkPolicyPeer {
                    namespace_selector: Some(LabelSelector {
                        match_expressions: Some(vec![LabelSelectorRequirement {
                            key: "kubernetes.io/metadata.name".into(),
                            operator: "In".into(),
                            values: Some(from.to_vec()),
                        }]),
                        ..Default::default()
                    }),
                    pod_selector: Some(LabelSelector {
                        match_labels: Some(labels_map(&[
                            ("app.kubernetes.io/name", "outpost"),
                            ("app.kubernetes.io/component", "cluster-agent"),
                        ])),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ports: Some(vec![NetworkPolicyPort {
                    port: Some(IntOrString::Int(KSM_METRICS_PORT)),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
            }]),
            ..Default::default()
        }),
    }
}

/// One rule per API group, groups and resources sorted, list and watch only.
fn rules() -> Vec<PolicyRule> {
    let mut by_group: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (resource, group) in KSM_RESOURCES {
        by_group.entry(group).or_default().push(resource.to_string());
    }
    by_group
        .into_iter()
        .map(|(group, mut resources)| {
            resources.sort();
            PolicyRule {
                api_groups: Some(vec![group.to_string()]),
                resources: Some(resources),
                verbs: vec!["list".into(), "watch".into()],
                ..Default::default()
            }
        })
        .collect()
}

fn deployment(namespace: &str, labels: &BTreeMap<String, String>, node_label_keys: &[String]) -> Deployment {
    let resources: Vec<&str> = KSM_RESOURCES.iter().map(|(r, _)| *r).collect();
    let mut args = vec![
        format!("--port={KSM_METRICS_PORT}"),
        format!("--telemetry-port={KSM_TELEMETRY_PORT}"),
        format!("--resources={}", resources.join(",")),
    ];
    if !node_label_keys.is_empty() {
        args.push(format!(
            "--metric-labels-allowlist=nodes=[{}]",
            node_label_keys.join(",")
        ));
    }
    let container = Container {
        name: KSM_NAME.into(),
        image: Some(KSM_IMAGE.into()),
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(args),
        ports: Some(vec![
            ContainerPort {
                name: Some("http-metrics".into()),
                container_port: KSM_METRICS_PORT,
                protocol: Some("TCP".into()),
                ..Default::default()
            },
            ContainerPort {
                name: Some("telemetry".into()),
                container_port: KSM_TELEMETRY_PORT,
                protocol: Some("TCP".into()),
                ..Default::default()
            },
        ]),
        liveness_probe: Some(http_probe("/livez", "http-metrics")),
        readiness_probe: Some(http_probe("/readyz", "telemetry")),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity(quantity_cpu(KSM_CPU_REQUEST_MILLIS))),
                (
                    "memory".to_string(),
                    Quantity(quantity_memory(KSM_MEMORY_REQUEST_BYTES)),
                ),
            ])),
            limits: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity(quantity_cpu(KSM_CPU_LIMIT_MILLIS))),
                (
                    "memory".to_string(),
                    Quantity(quantity_memory(KSM_MEMORY_LIMIT_BYTES)),
                ),
            ])),
            ..Default::default()
        }),
        security_context: Some(restricted_container_context()),
        ..Default::default()
    };
    Deployment {
        metadata: meta(KSM_NAME, Some(namespace), labels),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(ksm_selector()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                    labels: Some(labels.clone()),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(KSM_NAME.into()),
                    automount_service_account_token: Some(true),
                    node_selector: Some(labels_map(&[("kubernetes.io/os", "linux")])),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(super::AGENT_UID),
                        run_as_group: Some(super::AGENT_UID),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    containers: vec![container],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn http_probe(path: &str, port: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(port.into()),
            ..Default::default()
        }),
        initial_delay_seconds: Some(5),
        timeout_seconds: Some(5),
        ..Default::default()
    }
}

fn service(namespace: &str, labels: &BTreeMap<String, String>) -> Service {
    Service {
        metadata: meta(KSM_NAME, Some(namespace), labels),
        spec: Some(ServiceSpec {
            selector: Some(ksm_selector()),
            ports: Some(vec![
                ServicePort {
                    name: Some("http-metrics".into()),
                    port: KSM_METRICS_PORT,
                    target_port: Some(IntOrString::String("http-metrics".into())),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                },
                ServicePort {
                    name: Some("telemetry".into()),
                    port: KSM_TELEMETRY_PORT,
                    target_port: Some(IntOrString::String("telemetry".into())),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}
