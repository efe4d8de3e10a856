//! The plan's scrape jobs, with what they and the node collectors (`node.rs`)
//! inherit from the layers (interval, timeout, limits and the shared
//! `metric_relabel`, which runs after their own rules).

use super::{clamp_u32, tls_plan};
use crate::compile::checks::{check_bearer_token, check_target, check_tls};
use crate::compile::context::Cx;
use crate::compile::intern::Interner;
use crate::compile::layers::{limits_from, Unit};
use crate::compile::relabel::relabel_rules;
use crate::compile::tenants::tenant_filter_rule;
use crate::diag::Diagnostic;
use crate::spec::{JobSpec, RelabelSpec, SchemeSpec, Scope, TenantFilter};
use crate::tree::DocPath;
use outpost_core::plan;

pub(super) const TIMEOUT_OVER_INTERVAL_HELP: &str =
    "a scrape must finish before the next one starts; lower the timeout or raise the interval";

/// What the node collectors and every job of one agent inherit from the layers.
pub(super) struct Inherited<'a> {
    pub(super) interval_ms: u64,
    pub(super) timeout_ms: u64,
    pub(super) limits: plan::Limits,
    /// The layers' `metric_relabel` and where it was set.
    pub(super) metric_relabel: Option<(&'a Vec<RelabelSpec>, DocPath)>,
}

impl Unit<'_> {
    pub(super) fn job(
        &self,
        cx: &mut Cx,
        s: &mut Interner,
        j: &JobSpec,
        jpath: &DocPath,
        inherited: &Inherited,
    ) -> Option<plan::ScrapeJob> {
        let name = s.id(&j.name);
        let interval = match &j.interval {
            Some(t) => cx
                .duration(t, &jpath.at("interval"))
                .unwrap_or(inherited.interval_ms),
            None => inherited.interval_ms,
        };
        let timeout = match &j.timeout {
            Some(t) => cx
                .duration(t, &jpath.at("timeout"))
                .unwrap_or(inherited.timeout_ms),
            None => inherited.timeout_ms.min(interval),
        };
        if timeout > interval && (j.timeout.is_some() || j.interval.is_some()) {
            let p = if j.timeout.is_some() {
                jpath.at("timeout")
            } else {
                jpath.at("interval")
            };
            cx.push(
                Diagnostic::error(
                    "timeout-exceeds-interval",
                    p,
                    format!(
                        "job `{}`: timeout {timeout}ms is longer than its interval {interval}ms",
                        j.name
                    ),
                )
                .label("timeout > interval")
                .help(TIMEOUT_OVER_INTERVAL_HELP),
            );
        }
        if interval == 0 || timeout == 0 {
            cx.push(
                Diagnostic::error(
                    "zero-duration",
                    jpath.at("interval"),
                    "job interval and timeout must be more than 0",
                )
                .on_key()
                .label("zero"),
            );
        }
        let scheme = match j.scheme {
            Some(SchemeSpec::Https) => plan::Scheme::Https,
            _ => plan::Scheme::Http,
        };
        let path = j.path.as_deref().unwrap_or("/metrics");
        if !path.starts_with('/') {
            cx.push(
                Diagnostic::error(
                    "bad-path",
                    jpath.at("path"),
                    format!("metrics path `{path}` does not start with `/`"),
                )
                .label("relative path")
                .help("e.g. `/metrics` or `/metrics/cadvisor`"),
            );
        }
        let path = s.id(path);
        if j.targets.is_empty() && j.discovery.is_none() {
            cx.push(
                Diagnostic::error(
                    "no-targets",
                    jpath.at("targets"),
                    format!("job `{}` has no targets", j.name),
                )
                .on_key()
                .label("empty")
                .help("list `host:port` targets (`${NODE_IP}` and `${NODE_NAME}` are filled in on each node), or find them with `discovery`"),
            );
        }
        let targets = j
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| {
                check_target(cx, t, &jpath.at("targets").at(i), j.scope);
                s.id(t)
            })
            .collect();
        let labels = j
            .labels
            .iter()
            .filter(|(k, _)| cx.label_name(k, &jpath.at("labels").at(k.as_str()), true))
            .map(|(k, v)| plan::LabelPair {
                name: s.id(k),
                value: s.id(v),
            })
            .collect();
        check_bearer_token(cx, &j.bearer_token, &j.bearer_token_file, jpath);
        let bearer_token_file = j.bearer_token_file.as_ref().map(|f| s.id(f));
        if let Some(tls) = &j.tls {
            check_tls(cx, tls, &jpath.at("tls"));
            if scheme == plan::Scheme::Http {
                cx.push(
                    Diagnostic::warning(
                        "tls-on-http",
                        jpath.at("tls"),
                        format!("job `{}` has TLS settings but scrapes over http", j.name),
                    )
                    .on_key()
                    .label("unused")
                    .help("set `scheme: https`"),
                );
            }
        }
        let tls = j.tls.as_ref().map(|t| tls_plan(s, t));
        let limits = match &j.limits {
            Some(l) => limits_from(cx, l, &jpath.at("limits"), inherited.limits),
            None => inherited.limits,
        };
        let mut metric_relabel = Vec::new();
        // A discovery job of a tenant finds only the tenant's own targets: nothing to filter.
        if let (Some(t), Scope::Cluster, None) = (self.tenant, j.scope, &j.discovery) {
            if j.tenant_filter.unwrap_or(TenantFilter::Namespace) == TenantFilter::Namespace {
                metric_relabel.push(tenant_filter_rule(s, t));
            }
        }
        metric_relabel.extend(relabel_rules(
            cx,
            s,
            &j.metric_relabel,
            &jpath.at("metric_relabel"),
        ));
        if let Some((list, p)) = &inherited.metric_relabel {
            metric_relabel.extend(relabel_rules(cx, s, list, p));
        }
        // Interned last, so that a job without them keeps its plan's strings as before.
        let discovery = match &j.discovery {
            Some(d) => {
                let found = self.discovery(cx, s, j, d, &jpath.at("discovery"));
                if found.is_none() && j.targets.is_empty() {
                    return None;
                }
                found
            }
            None => None,
        };
        let mut relabel = Vec::new();
        if let Some(preset) = &j.relabel_preset {
            let role = discovery.as_ref().map(|d| d.role);
            relabel.extend(self.preset_rules(cx, s, preset, role, &jpath.at("relabel_preset")));
        }
        relabel.extend(relabel_rules(cx, s, &j.relabel, &jpath.at("relabel")));
        if !relabel.is_empty() && !j.targets.is_empty() {
            // Said at compile time so nobody learns it from a node that will not start.
            cx.push(
                Diagnostic::warning(
                    "static-target-relabel-not-run",
                    jpath.at("targets"),
                    format!(
                        "this version of `outpost` runs target relabeling on discovered targets only: it refuses a plan whose job `{}` relabels static targets",
                        j.name
                    ),
                )
                .on_key()
                .label("static targets with target relabeling")
                .help("move the static targets to a job without `relabel`/`relabel_preset`, or give the labels with `labels`"),
            );
        }
        Some(plan::ScrapeJob {
            name,
            interval_ms: clamp_u32(interval),
            timeout_ms: timeout.clamp(1, u64::from(clamp_u32(interval))) as u32,
            scheme,
            path,
            targets,
            labels,
            honor_labels: j.honor_labels,
            bearer_token_file,
            tls,
            limits,
            metric_relabel,
            targeting: plan::Targeting { relabel, discovery },
        })
    }
}
