//! RBAC for Kubernetes discovery: `list` and `watch` on exactly what each agent's jobs read, in
//! the namespaces they watch. A job with namespaces gets a `Role` and `RoleBinding` in each of
//! them; only a job watching every namespace, or nodes, gets a `ClusterRole`. A tenant's jobs
//! always name the tenant's namespaces (the compiler cuts them down and refuses `node`), so a
//! tenant's agents never get a cluster-wide grant. Jobs with their own `api_server` need
//! nothing here.

use super::{labels_map, meta, to_doc, AGENT_SERVICE_ACCOUNT};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use outpost_core::discovery::Resource;
use outpost_core::plan::{KubeRole, Plan};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// `(API group, plural)` pairs an agent reads, by namespace (`None`: cluster-wide).
type Grants = BTreeMap<Option<String>, BTreeSet<(&'static str, &'static str)>>;

/// Whether the plan discovers in its own cluster, with the pod's service account.
pub fn discovers_in_cluster(plan: &Plan) -> bool {
    plan.scrape_jobs
        .iter()
        .filter_map(|j| j.targeting.discovery.as_ref())
        .any(|d| d.api_server.is_none())
}

fn grants<'p>(plans: impl Iterator<Item = &'p Plan>) -> Grants {
    let mut out = Grants::new();
    for plan in plans {
        let found = plan
            .scrape_jobs
            .iter()
            .filter_map(|j| j.targeting.discovery.as_ref());
        for d in found.filter(|d| d.api_server.is_none()) {
            let resources = Resource::of_role(d.role)
                .iter()
                .map(|r| (r.api_group(), r.api().1));
            let namespaces: Vec<Option<String>> = if d.namespaces.is_empty() || d.role == KubeRole::Node {
                vec![None]
            } else {
                d.namespaces
                    .iter()
                    .map(|n| Some(plan.str(*n).to_string()))
                    .collect()
            };
            for ns in namespaces {
                out.entry(ns).or_default().extend(resources.clone());
            }
        }
    }
    out
}

fn rules(resources: &BTreeSet<(&'static str, &'static str)>) -> Vec<PolicyRule> {
    let mut by_group: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (group, plural) in resources {
        by_group.entry(group).or_default().push(plural.to_string());
    }
    by_group
        .into_iter()
        .map(|(group, resources)| PolicyRule {
            api_groups: Some(vec![group.to_string()]),
            resources: Some(resources),
            verbs: vec!["list".into(), "watch".into()],
            ..Default::default()
        })
        .collect()
}

/// The Roles, ClusterRoles and their bindings for the agents of `agent_namespace` running
/// `plans`; empty when none of them discovers in the cluster.
pub fn rbac<'p>(agent_namespace: &str, plans: impl Iterator<Item = &'p Plan>) -> Vec<Value> {
    let labels = labels_map(&[
        ("app.kubernetes.io/name", "outpost"),
        ("app.kubernetes.io/part-of", "outpost"),
        ("app.kubernetes.io/managed-by", "outpostc"),
    ]);
    // One name per agent namespace, so that tenants' grants in a shared namespace never meet.
    let name = format!("outpost-discovery-{agent_namespace}");
    let subjects = Some(vec![Subject {
        kind: "ServiceAccount".into(),
        name: AGENT_SERVICE_ACCOUNT.into(),
        namespace: Some(agent_namespace.to_string()),
        ..Default::default()
    }]);
    let role_ref = |kind: &str| RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: kind.into(),
        name: name.clone(),
    };
    let mut docs = Vec::new();
    for (namespace, resources) in grants(plans) {
        match namespace {
            None => {
                docs.push(to_doc(&ClusterRole {
                    metadata: meta(&name, None, &labels),
                    rules: Some(rules(&resources)),
                    ..Default::default()
                }));
                docs.push(to_doc(&ClusterRoleBinding {
                    metadata: meta(&name, None, &labels),
                    role_ref: role_ref("ClusterRole"),
                    subjects: subjects.clone(),
                }));
            }
            Some(ns) => {
                docs.push(to_doc(&Role {
                    metadata: meta(&name, Some(&ns), &labels),
                    rules: Some(rules(&resources)),
                }));
                docs.push(to_doc(&RoleBinding {
                    metadata: meta(&name, Some(&ns), &labels),
                    role_ref: role_ref("Role"),
                    subjects: subjects.clone(),
                }));
            }
        }
    }
    docs
}
