//! From the parsed spec to checked plans: settings are merged (defaults,
//! cluster, tenant), every value is checked where it was written, and one
//! plan per agent is built. All problems are collected; nothing stops at
//! the first.
//!
//! In the order a spec goes through them:
//! - `checks`, `tenants`: what is the same for every agent (receiver, names,
//!   targets, tenants' namespaces and nodes);
//! - `layers`: the settings one cluster or tenant sees;
//! - `build/`: its plans, one file per plan section, with `relabel` for the
//!   rule lists and `intern` for the string table;
//! - `verify`: the built plan fits its memory limit and the agent loads it;
//! - `node_mixin`: the node metrics that common alerts and dashboards need
//!   are still delivered (warnings).
//!
//! `context` carries the diagnostics through all of them; `defaults` and
//! `names` are what a left-out key means and what a valid name looks like.

mod build;
mod checks;
mod context;
pub mod defaults;
mod intern;
mod layers;
mod names;
pub mod node_mixin;
mod relabel;
mod tenants;
mod verify;

pub use names::{is_dns_label, is_label_name, ksm_label_name};
pub use relabel::{apply_rules, check_regex};
pub use tenants::tenant_filter_regex;

use crate::diag::Diagnostic;
use crate::explain::labels_text;
use crate::spec::Fleet;
use crate::tree::DocPath;
use context::Cx;
use layers::Unit;
use outpost_core::plan::{Plan, Role};
use std::collections::HashMap;
use std::path::PathBuf;

/// One agent's plan and where it goes: `<cluster>/[<tenant>/]<role>.plan`.
#[derive(Debug, Clone)]
pub struct AgentPlan {
    pub cluster: String,
    pub tenant: Option<String>,
    pub role: Role,
    pub plan: Plan,
}

impl AgentPlan {
    pub fn rel_path(&self) -> PathBuf {
        let mut p = PathBuf::from(&self.cluster);
        if let Some(t) = &self.tenant {
            p.push(t);
        }
        p.push(format!("{}.plan", self.role.as_str()));
        p
    }
}

/// Builds every agent's plan and collects every problem in the spec.
/// Plans are returned even when there are errors (for `explain`-style
/// tooling); callers must not write them unless no diagnostic is an error.
pub fn build_plans(fleet: &Fleet) -> (Vec<AgentPlan>, Vec<Diagnostic>) {
    let mut cx = Cx::default();
    let root = DocPath::root();
    checks::check_receiver(&mut cx, fleet);
    if let Some(d) = crate::manifests::image::check_spec(fleet) {
        cx.push(d);
    }
    checks::check_fleet_names(&mut cx, fleet);
    let mut plans = Vec::new();
    let mut label_sets: HashMap<Vec<(String, String)>, DocPath> = HashMap::new();
    for (ci, cluster) in fleet.clusters.iter().enumerate() {
        let cpath = root.at("clusters").at(ci);
        tenants::check_tenants(&mut cx, cluster, &cpath);
        let units: Vec<Option<usize>> = if cluster.tenants.is_empty() {
            vec![None]
        } else {
            (0..cluster.tenants.len()).map(Some).collect()
        };
        for ti in units {
            let mut layers = vec![(&fleet.defaults, root.at("defaults"))];
            layers.push((&cluster.overrides, cpath.at("overrides")));
            let tenant = ti.map(|i| &cluster.tenants[i]);
            let unit_path = match ti {
                Some(i) => cpath.at("tenants").at(i),
                None => cpath.clone(),
            };
            if let Some(t) = tenant {
                layers.push((&t.overrides, unit_path.at("overrides")));
            }
            let unit = Unit {
                fleet,
                cluster,
                tenant,
                unit_path: unit_path.clone(),
                layers,
            };
            let labels = unit.external_labels(&mut cx);
            if let Some(first) = label_sets.get(&labels) {
                cx.push(
                    Diagnostic::error(
                        "duplicate-external-labels",
                        unit_path.at("name"),
                        format!(
                            "agents here have the same external labels as the agents at `{first}`: {}",
                            labels_text(labels.iter().map(|(n, v)| (n.as_str(), v.as_str())))
                        ),
                    )
                    .label("second writer with these labels")
                    .help("two writers with one label set overwrite each other at the receiver; give each cluster and tenant a unique name"),
                );
            } else {
                label_sets.insert(labels.clone(), unit_path.clone());
            }
            for role in [Role::Node, Role::Cluster] {
                if let Some(plan) = unit.build(&mut cx, role, &labels) {
                    plans.push(AgentPlan {
                        cluster: cluster.name.clone(),
                        tenant: tenant.map(|t| t.name.clone()),
                        role,
                        plan,
                    });
                }
            }
        }
    }
    (plans, cx.finish())
}
