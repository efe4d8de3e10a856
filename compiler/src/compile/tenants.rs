//! What tenancy adds: each tenant owns its namespaces and its nodes, checked
//! to be disjoint from the other tenants', and a cluster-wide source such as
//! kube-state-metrics is filtered down to the tenant's own series.

use super::context::Cx;
use super::intern::Interner;
use super::names::{is_selector_key, ksm_label_name};
use crate::diag::Diagnostic;
use crate::spec::{ClusterSpec, TenantSpec};
use crate::tree::DocPath;
use outpost_core::plan;
use std::collections::{BTreeMap, HashMap};

pub(super) fn check_tenants(cx: &mut Cx, cluster: &ClusterSpec, cpath: &DocPath) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut namespaces: HashMap<&str, (usize, usize)> = HashMap::new();
    for (ti, t) in cluster.tenants.iter().enumerate() {
        let tpath = cpath.at("tenants").at(ti);
        cx.dns_label(&t.name, &tpath.at("name"), "tenant name");
        if let Some(first) = names.insert(&t.name, ti) {
            cx.push(
                Diagnostic::error(
                    "duplicate-name",
                    tpath.at("name"),
                    format!("tenant `{}` is already defined at tenants[{first}]", t.name),
                )
                .label("duplicate")
                .help("tenant names must be unique within a cluster"),
            );
        }
        if t.node_selector.is_empty() {
            cx.push(
                Diagnostic::error(
                    "empty-selector",
                    tpath.at("node_selector"),
                    "a tenant needs a node selector",
                )
                .on_key()
                .label("selects every node")
                .help("e.g. `node_selector: {tenant: tenant-a}`, matching the label on the tenant's nodes"),
            );
        }
        for key in t.node_selector.keys() {
            if !is_selector_key(key) {
                cx.push(
                    Diagnostic::error(
                        "bad-selector-key",
                        tpath.at("node_selector").at(key.as_str()),
                        format!("`{key}` is not a valid Kubernetes label key"),
                    )
                    .on_key()
                    .label("invalid label key")
                    .help("use an optional DNS prefix and `/`, then alphanumerics, '-', '_' or '.'"),
                );
            }
        }
        if t.namespaces.is_empty() {
            cx.push(
                Diagnostic::error(
                    "no-namespaces",
                    tpath.at("namespaces"),
                    "a tenant must own at least one namespace",
                )
                .on_key()
                .label("empty")
                .help("list the namespaces whose series belong to this tenant, e.g. `[monitoring-tenant-a]`"),
            );
        }
        for (ni, ns) in t.namespaces.iter().enumerate() {
            let npath = tpath.at("namespaces").at(ni);
            if !cx.dns_label(ns, &npath, "namespace") {
                continue;
            }
            match namespaces.insert(ns, (ti, ni)) {
                Some((other, _)) if other != ti => cx.push(
                    Diagnostic::error(
                        "overlapping-namespaces",
                        npath,
                        format!(
                            "namespace `{ns}` is also owned by tenant `{}`",
                            cluster.tenants[other].name
                        ),
                    )
                    .label("owned twice")
                    .help("each namespace belongs to one tenant; otherwise both receive its series"),
                ),
                _ => {}
            }
        }
        for (oi, other) in cluster.tenants.iter().enumerate().take(ti) {
            if selectors_overlap(&t.node_selector, &other.node_selector) {
                cx.push(
                    Diagnostic::error(
                        "overlapping-selectors",
                        tpath.at("node_selector"),
                        format!("this node selector can match the same nodes as tenant `{}`'s (tenants[{oi}])", other.name),
                    )
                    .on_key()
                    .label("not disjoint")
                    .help("give both selectors a common key with different values, e.g. `tenant: tenant-a` and `tenant: tenant-b`"),
                );
            }
        }
    }
}

/// Two equality selectors are disjoint only when some key they share has different values.
fn selectors_overlap(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> bool {
    !a.iter().any(|(k, v)| b.get(k).is_some_and(|w| w != v))
}

/// The rule that keeps a tenant's own series out of a shared cluster-wide
/// source (kube-state-metrics): series of its namespaces, and the node-label
/// series of its nodes. Everything else is dropped. One `keep` rule on
/// `namespace;__name__;label_<selector key>...`.
pub fn tenant_filter_regex(tenant: &TenantSpec) -> (Vec<String>, String) {
    let mut sources = vec!["namespace".to_string(), "__name__".to_string()];
    sources.extend(tenant.node_selector.keys().map(|k| ksm_label_name(k)));
    let namespaces: Vec<String> = tenant
        .namespaces
        .iter()
        .map(|n| regex_syntax::escape(n))
        .collect();
    let values: Vec<String> = tenant
        .node_selector
        .values()
        .map(|v| regex_syntax::escape(v))
        .collect();
    let regex = format!(
        "(?:{});.*|;kube_node_labels;{}",
        namespaces.join("|"),
        values.join(";")
    );
    (sources, regex)
}

pub(super) fn tenant_filter_rule(s: &mut Interner, tenant: &TenantSpec) -> plan::RelabelRule {
    let (sources, regex) = tenant_filter_regex(tenant);
    plan::RelabelRule {
        action: plan::RelabelAction::Keep,
        source_labels: sources.iter().map(|l| s.id(l)).collect(),
        separator: s.id(";"),
        regex: s.id(&regex),
        modulus: 0,
        target_label: s.id(""),
        replacement: s.id("$1"),
    }
}
