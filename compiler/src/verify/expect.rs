//! What a healthy deployment looks like at the receiver, read from the
//! plans the spec compiles to: per cluster and tenant, the external labels
//! every series carries, the tenant its agents write as, and per agent role
//! the jobs it scrapes and how fresh their newest sample must be.

use crate::compile::AgentPlan;
use outpost_core::plan::{Plan, Role};
use std::collections::BTreeMap;

/// One cluster, or one tenant of a multi-tenant cluster.
#[derive(Debug, Clone)]
pub struct UnitExpect {
    pub cluster: String,
    pub tenant: Option<String>,
    /// Exactly the external labels its agents add.
    pub labels: BTreeMap<String, String>,
    /// The tenant header value its agents send, if any.
    pub writes_as: Option<String>,
    /// Node role first, as the plans are built.
    pub agents: Vec<AgentExpect>,
}

#[derive(Debug, Clone)]
pub struct AgentExpect {
    pub role: Role,
    /// The job of the agent's own metrics (`outpost`).
    pub self_job: String,
    pub max_age_s: f64,
    /// Node collectors first, then scrape jobs in spec order.
    pub jobs: Vec<JobExpect>,
}

#[derive(Debug, Clone)]
pub struct JobExpect {
    pub name: String,
    pub max_age_s: f64,
}

/// The newest sample of a series scraped every `interval_ms` is at most
/// two intervals, one batch deadline and one send old on a healthy agent.
fn max_age_s(plan: &Plan, interval_ms: u32) -> f64 {
    let ms = 2 * u64::from(interval_ms)
        + u64::from(plan.queue.batch_send_deadline_ms)
        + u64::from(plan.receiver.remote_timeout_ms);
    ms as f64 / 1000.0
}

/// Groups the plans by cluster and tenant, in plan order.
pub fn expected_units(plans: &[AgentPlan]) -> Vec<UnitExpect> {
    let mut units: Vec<UnitExpect> = Vec::new();
    for agent in plans {
        let plan = &agent.plan;
        let index = match units
            .iter()
            .position(|u| u.cluster == agent.cluster && u.tenant == agent.tenant)
        {
            Some(i) => i,
            None => {
                units.push(UnitExpect {
                    cluster: agent.cluster.clone(),
                    tenant: agent.tenant.clone(),
                    labels: plan
                        .external_labels
                        .iter()
                        .map(|l| (plan.str(l.name).to_string(), plan.str(l.value).to_string()))
                        .collect(),
                    writes_as: plan.receiver.tenant_header.map(|h| plan.str(h.value).to_string()),
                    agents: Vec::new(),
                });
                units.len() - 1
            }
        };
        let mut jobs = Vec::new();
        if let Some(node) = &plan.node {
            jobs.push(JobExpect {
                name: plan.str(node.job).to_string(),
                max_age_s: max_age_s(plan, node.interval_ms),
            });
        }
        jobs.extend(plan.scrape_jobs.iter().map(|j| JobExpect {
            name: plan.str(j.name).to_string(),
            max_age_s: max_age_s(plan, j.interval_ms),
        }));
        units[index].agents.push(AgentExpect {
            role: agent.role,
            self_job: plan.str(plan.self_scrape.job).to_string(),
            max_age_s: max_age_s(plan, plan.self_scrape.interval_ms),
            jobs,
        });
    }
    units
}

/// Every external label name any unit uses, sorted: a series belongs to
/// the unit whose values for all of these it carries ("" for absent).
pub fn label_names(units: &[UnitExpect]) -> Vec<String> {
    let mut names: Vec<String> = units.iter().flat_map(|u| u.labels.keys().cloned()).collect();
    names.sort();
    names.dedup();
    names
}

impl UnitExpect {
    /// `cluster-02/tenant-a`, or the cluster alone.
    pub fn name(&self) -> String {
        match &self.tenant {
            Some(t) => format!("{}/{t}", self.cluster),
            None => self.cluster.clone(),
        }
    }

    /// This unit's values for `names`, in that order.
    pub fn key(&self, names: &[String]) -> Vec<String> {
        names
            .iter()
            .map(|n| self.labels.get(n).cloned().unwrap_or_default())
            .collect()
    }
}
