//! A job's Kubernetes discovery and its target relabeling: which role, which namespaces
//! (a tenant's agents see only the tenant's), the bounds that make discovery's memory part
//! of the proof, and the `prometheus.io` annotation preset.

use super::tls_plan;
use crate::compile::checks::{check_bearer_token, check_tls};
use crate::compile::context::Cx;
use crate::compile::defaults::{
    DEFAULT_MAX_OBJECT_SIZE, DEFAULT_MAX_STORE_SIZE, DEFAULT_MAX_TARGETS, RELABEL_PRESETS,
};
use crate::compile::intern::Interner;
use crate::compile::layers::Unit;
use crate::diag::Diagnostic;
use crate::spec::{DiscoverySpec, JobSpec, Scope};
use crate::tree::DocPath;
use outpost_core::plan::{self, KubeRole};
use outpost_core::url::Url;

impl Unit<'_> {
    /// The job's discovery section, or `None` (with a diagnostic when that is an error).
    pub(super) fn discovery(
        &self,
        cx: &mut Cx,
        s: &mut Interner,
        j: &JobSpec,
        d: &DiscoverySpec,
        path: &DocPath,
    ) -> Option<plan::Discovery> {
        let Some(role) = KubeRole::from_name(&d.role) else {
            let known: Vec<&str> = KubeRole::ALL.iter().map(|r| r.name()).collect();
            cx.push(
                Diagnostic::error(
                    "unknown-role",
                    path.at("role"),
                    format!("`{}` is not a discovery role", d.role),
                )
                .label("unknown role")
                .help(format!("outpost discovers the roles {}", known.join(", "))),
            );
            return None;
        };
        if j.scope == Scope::Node && role != KubeRole::Pod {
            cx.push(
                Diagnostic::error(
                    "role-needs-cluster-scope",
                    path.at("role"),
                    format!("role `{}` would be discovered, and its targets scraped, by every node's agent", d.role),
                )
                .label("node-scope job")
                .help("use `scope: cluster` for this role; a node-scope job discovers the pods of its own node (`role: pod`)"),
            );
        }
        if self.tenant.is_some() && role == KubeRole::Node {
            cx.push(
                Diagnostic::error(
                    "cluster-wide-role-for-tenant",
                    path.at("role"),
                    "role `node` lists cluster-wide objects, which a tenant's agent may not read",
                )
                .label("cluster-wide")
                .help("a tenant's agents discover only in the tenant's namespaces: use `pod`, `endpointslice` or `service`"),
            );
        }
        let mut namespaces: Vec<&String> = d.namespaces.iter().collect();
        for (i, ns) in d.namespaces.iter().enumerate() {
            cx.dns_label(ns, &path.at("namespaces").at(i), "namespace");
        }
        if let Some(t) = self.tenant {
            // A tenant's agents see the tenant's own namespaces, and only those.
            namespaces = if d.namespaces.is_empty() {
                t.namespaces.iter().collect()
            } else {
                namespaces
                    .into_iter()
                    .filter(|n| t.namespaces.contains(n))
                    .collect()
            };
            if namespaces.is_empty() {
                cx.push(
                    Diagnostic::warning(
                        "no-tenant-namespace",
                        path.at("namespaces"),
                        format!(
                            "tenant `{}` owns none of these namespaces: its agent discovers nothing for job `{}`",
                            t.name, j.name
                        ),
                    )
                    .on_key()
                    .label("not the tenant's")
                    .help("list a namespace of the tenant, or leave `namespaces` out to discover in all of the tenant's"),
                );
                return None;
            }
        }
        let bound = |cx: &mut Cx, key: &str, text: Option<&String>, default: &str| -> u32 {
            let p = path.at(key);
            let v = match text {
                Some(t) => cx.size(t, &p),
                None => crate::units::parse_size(default).ok(),
            };
            v.and_then(|v| cx.range(v, 1024, u64::from(u32::MAX), &p, key))
                .unwrap_or(1024) as u32
        };
        let max_object_bytes = bound(
            cx,
            "max_object_size",
            d.max_object_size.as_ref(),
            DEFAULT_MAX_OBJECT_SIZE,
        );
        let max_store_bytes = bound(
            cx,
            "max_store_size",
            d.max_store_size.as_ref(),
            DEFAULT_MAX_STORE_SIZE,
        );
        let max_targets = match d.max_targets {
            Some(n) => cx
                .range(n, 1, 100_000, &path.at("max_targets"), "max_targets")
                .unwrap_or(1),
            None => DEFAULT_MAX_TARGETS,
        } as u32;
        let api_server = d.api_server.as_ref().map(|url| {
            let upath = path.at("api_server");
            match Url::parse(url) {
                Ok(u) if u.path == "/" && u.query.is_none() => {}
                Ok(_) => cx.push(
                    Diagnostic::error("bad-api-server", upath.clone(), format!("`{url}` has a path"))
                        .label("path")
                        .help("give the API server as `https://host:port`; discovery adds the API paths"),
                ),
                Err(e) => cx.push(
                    Diagnostic::error("bad-api-server", upath.clone(), format!("`{url}`: {e}"))
                        .label("not an http(s) URL")
                        .help("e.g. `https://10.0.0.1:6443`"),
                ),
            }
            check_bearer_token(cx, &None, &d.bearer_token_file, path);
            if let Some(t) = &d.tls {
                check_tls(cx, t, &path.at("tls"));
            }
            plan::ApiServer {
                url: s.id(url),
                bearer_token_file: d.bearer_token_file.as_ref().map(|f| s.id(f)),
                tls: d.tls.as_ref().map(|t| tls_plan(s, t)),
            }
        });
        if d.api_server.is_none() && (d.bearer_token_file.is_some() || d.tls.is_some()) {
            cx.push(
                Diagnostic::error(
                    "credentials-without-api-server",
                    path.clone(),
                    "`bearer_token_file` and `tls` are for an `api_server` named here; in the cluster the agent uses its service account",
                )
                .on_key()
                .label("no api_server")
                .help("add `api_server`, or remove the credentials"),
            );
        }
        Some(plan::Discovery {
            role,
            namespaces: namespaces.into_iter().map(|n| s.id(n)).collect(),
            own_node: j.scope == Scope::Node,
            max_targets,
            max_object_bytes,
            max_store_bytes,
            api_server,
        })
    }

    /// The rules of a named preset, for `role`.
    pub(super) fn preset_rules(
        &self,
        cx: &mut Cx,
        s: &mut Interner,
        name: &str,
        role: Option<KubeRole>,
        path: &DocPath,
    ) -> Vec<plan::RelabelRule> {
        if !RELABEL_PRESETS.contains(&name) {
            cx.push(
                Diagnostic::error(
                    "unknown-preset",
                    path.clone(),
                    format!("`{name}` is not a relabel preset"),
                )
                .label("unknown preset")
                .help(format!("presets: {}", RELABEL_PRESETS.join(", "))),
            );
            return Vec::new();
        }
        let object = match role {
            Some(KubeRole::Pod) => "pod",
            Some(KubeRole::EndpointSlice | KubeRole::Service) => "service",
            Some(KubeRole::Node) | None => {
                cx.push(
                    Diagnostic::error(
                        "preset-needs-annotations",
                        path.clone(),
                        "the `prometheus.io` preset reads pod or Service annotations",
                    )
                    .label("nothing to read")
                    .help("use it with `discovery.role` pod, endpointslice or service"),
                );
                return Vec::new();
            }
        };
        prometheus_io_rules(s, object, role == Some(KubeRole::EndpointSlice))
    }
}

/// The `prometheus.io/scrape|scheme|path|port` convention, as Prometheus's example
/// configuration writes it, plus `namespace` and `pod` (and `service`) target labels.
fn prometheus_io_rules(s: &mut Interner, object: &str, endpoints: bool) -> Vec<plan::RelabelRule> {
    let annotation = |name: &str| format!("__meta_kubernetes_{object}_annotation_prometheus_io_{name}");
    let mut rule =
        |action: plan::RelabelAction, sources: &[&str], regex: &str, target: &str, replacement: &str| {
            plan::RelabelRule {
                action,
                source_labels: sources.iter().map(|l| s.id(l)).collect(),
                separator: s.id(";"),
                regex: s.id(regex),
                modulus: 0,
                target_label: s.id(target),
                replacement: s.id(replacement),
            }
        };
    use plan::RelabelAction::{Keep, Replace};
    let (scrape, scheme, path, port) = (
        annotation("scrape"),
        annotation("scheme"),
        annotation("path"),
        annotation("port"),
    );
    let mut rules = vec![
        rule(Keep, &[&scrape], "true", "", "$1"),
        rule(Replace, &[&scheme], "(https?)", "__scheme__", "$1"),
        rule(Replace, &[&path], "(.+)", "__metrics_path__", "$1"),
        rule(
            Replace,
            &["__address__", &port],
            r"(.+?)(?::\d+)?;(\d+)",
            "__address__",
            "$1:$2",
        ),
        rule(
            Replace,
            &["__meta_kubernetes_namespace"],
            "(.*)",
            "namespace",
            "$1",
        ),
    ];
    if object == "service" {
        rules.push(rule(
            Replace,
            &["__meta_kubernetes_service_name"],
            "(.*)",
            "service",
            "$1",
        ));
    }
    if object == "pod" || endpoints {
        rules.push(rule(
            Replace,
            &["__meta_kubernetes_pod_name"],
            "(.*)",
            "pod",
            "$1",
        ));
    }
    rules
}
