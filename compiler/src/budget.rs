//! `outpostc budget`: what each cluster asks of its nodes, next to what the
//! seed deployment asked.

use crate::compile::AgentPlan;
use crate::explain::{crash_loss_text, mode_name, power_loss_text};
use crate::units::{format_duration, format_size};
use outpost_core::plan::Role;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write;

/// kube-state-metrics stays upstream; its resources are the seed's.
pub const KSM_CPU_REQUEST_MILLIS: u32 = 50;
pub const KSM_MEMORY_REQUEST_BYTES: u64 = 64 << 20;
pub const KSM_CPU_LIMIT_MILLIS: u32 = 100;
pub const KSM_MEMORY_LIMIT_BYTES: u64 = 128 << 20;
/// The seed's requests per agent unit: Prometheus agent 200m/256Mi plus
/// node_exporter 100m/64Mi (one node), then one KSM per cluster.
pub const SEED_UNIT_CPU_MILLIS: u32 = 300;
pub const SEED_UNIT_MEMORY_BYTES: u64 = 320 << 20;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterBudget {
    pub cluster: String,
    pub agents: usize,
    pub cpu_request_millis: u32,
    pub cpu_limit_millis: u32,
    pub memory_request_bytes: u64,
    pub memory_limit_bytes: u64,
    pub worst_case_bytes: u64,
    pub seed_cpu_request_millis: u32,
    pub seed_memory_request_bytes: u64,
    /// Each agent's WAL, in plan order.
    pub wals: Vec<AgentWal>,
    /// Each agent's shared scrape parts, in plan order.
    pub shares: Vec<AgentShares>,
}

/// What an agent's targets share, and the largest cap one of them has in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentShares {
    pub agent: String,
    pub worst_case_bytes: u64,
    pub scrape_slots: u16,
    pub slot_bytes: u64,
    pub pool_series: u64,
    pub pool_bytes: u64,
    /// The largest series-table cap of one target, and its job.
    pub largest_cap_bytes: u64,
    pub largest_cap_job: String,
}

/// What an agent's WAL mode promises (see `outpost_core::durability`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentWal {
    /// `node`, `cluster`, or `cluster/tenant-a`.
    pub agent: String,
    pub mode: &'static str,
    pub crash_loss_ms: u64,
    pub power_loss_ms: Option<u64>,
    /// Both loss windows for people.
    pub crash_loss: String,
    pub power_loss: String,
    pub outage_covered_ms: u64,
}

/// Per cluster: every cluster-role agent, one node-role agent per tenant
/// (that is, per node: the DaemonSet's cost on each node) and the KSM.
pub fn cluster_budgets(plans: &[AgentPlan]) -> Vec<ClusterBudget> {
    let mut by_cluster: BTreeMap<&str, ClusterBudget> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for a in plans {
        let e = by_cluster.entry(a.cluster.as_str()).or_insert_with(|| {
            order.push(a.cluster.as_str());
            ClusterBudget {
                cluster: a.cluster.clone(),
                cpu_request_millis: KSM_CPU_REQUEST_MILLIS,
                cpu_limit_millis: KSM_CPU_LIMIT_MILLIS,
                memory_request_bytes: KSM_MEMORY_REQUEST_BYTES,
                memory_limit_bytes: KSM_MEMORY_LIMIT_BYTES,
                seed_cpu_request_millis: KSM_CPU_REQUEST_MILLIS,
                seed_memory_request_bytes: KSM_MEMORY_REQUEST_BYTES,
                ..ClusterBudget::default()
            }
        });
        let b = &a.plan.budget;
        e.agents += 1;
        e.cpu_request_millis += b.cpu_request_millis;
        e.cpu_limit_millis += b.cpu_limit_millis;
        e.memory_request_bytes += b.memory_request_bytes;
        e.memory_limit_bytes += b.memory_limit_bytes;
        e.worst_case_bytes += a.plan.worst_case_memory().total();
        let loss = a.plan.loss_window();
        let agent = match &a.tenant {
            Some(t) => format!("{}/{t}", a.role.as_str()),
            None => a.role.as_str().to_string(),
        };
        let sharing = a.plan.sharing_bounds();
        let groups = a.plan.target_groups();
        let largest = groups.iter().max_by_key(|g| g.per_target.series_cap);
        e.shares.push(AgentShares {
            agent: agent.clone(),
            worst_case_bytes: a.plan.worst_case_memory().total(),
            scrape_slots: sharing.scrape_concurrency,
            slot_bytes: a.plan.scrape_slot_bytes(),
            pool_series: sharing.max_series,
            pool_bytes: sharing.max_series_bytes,
            largest_cap_bytes: largest.map_or(0, |g| g.per_target.series_cap),
            largest_cap_job: largest.map_or(String::new(), |g| g.job.to_string()),
        });
        e.wals.push(AgentWal {
            agent,
            mode: mode_name(a.plan.wal.mode),
            crash_loss_ms: loss.crash_ms,
            power_loss_ms: loss.power_ms,
            crash_loss: crash_loss_text(&a.plan),
            power_loss: power_loss_text(&a.plan),
            outage_covered_ms: a.plan.outage_covered_ms(),
        });
        // The seed ran one Prometheus agent and one node_exporter per unit.
        if a.role == Role::Cluster {
            e.seed_cpu_request_millis += SEED_UNIT_CPU_MILLIS;
            e.seed_memory_request_bytes += SEED_UNIT_MEMORY_BYTES;
        }
    }
    order.into_iter().filter_map(|c| by_cluster.remove(c)).collect()
}

pub fn budget_text(budgets: &[ClusterBudget]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<14} {:>6} {:>10} {:>10} {:>10} {:>10} {:>12}   {:>16}",
        "cluster", "agents", "cpu req", "mem req", "cpu lim", "mem lim", "worst case", "seed requests"
    );
    for b in budgets {
        let _ = writeln!(
            o,
            "{:<14} {:>6} {:>10} {:>10} {:>10} {:>10} {:>12}   {:>16}",
            b.cluster,
            b.agents,
            format!("{}m", b.cpu_request_millis),
            format_size(b.memory_request_bytes),
            format!("{}m", b.cpu_limit_millis),
            format_size(b.memory_limit_bytes),
            format_size(b.worst_case_bytes),
            format!(
                "{}m/{}",
                b.seed_cpu_request_millis,
                format_size(b.seed_memory_request_bytes)
            ),
        );
    }
    let _ = writeln!(
        o,
        "\n{:<14} {:<16} {:>10} {:>16} {:>22}   largest target cap in the pool",
        "cluster", "agent", "worst case", "scrape slots", "series pool"
    );
    for b in budgets {
        for s in &b.shares {
            let _ = writeln!(
                o,
                "{:<14} {:<16} {:>10} {:>16} {:>22}   {} ({})",
                b.cluster,
                s.agent,
                format_size(s.worst_case_bytes),
                format!("{} x {}", s.scrape_slots, format_size(s.slot_bytes)),
                format!("{} / {} series", format_size(s.pool_bytes), s.pool_series),
                format_size(s.largest_cap_bytes),
                s.largest_cap_job
            );
        }
    }
    let _ = writeln!(
        o,
        "\n{:<14} {:<16} {:<7} {:>10} {:>12} {:>16}",
        "cluster", "agent", "wal", "crash loss", "power loss", "outage covered"
    );
    for b in budgets {
        for w in &b.wals {
            let _ = writeln!(
                o,
                "{:<14} {:<16} {:<7} {:>10} {:>12} {:>16}",
                b.cluster,
                w.agent,
                w.mode,
                w.crash_loss,
                w.power_loss,
                format_duration(w.outage_covered_ms)
            );
        }
    }
    o.push_str(
        "\nLoss windows are the scrapes a crash (kill -9, OOM kill) or a power loss can take; the outage\n\
         covered is how long the WAL holds every sample at the plan's worst-case ingest (every target at\n\
         its sample limit) before it drops its oldest segment. Real scrapes compress better: longer.\n",
    );
    o.push_str(
        "\nNode-role agents are counted once (one node); the DaemonSet adds that much per node.\n\
         Totals include kube-state-metrics at the seed's 50m/64Mi requests, 100m/128Mi limits.\n\
         The seed's requests: 350m/384Mi per ordinary cluster, 650m/704Mi for a two-tenant cluster.\n",
    );
    o
}

pub fn budget_json(budgets: &[ClusterBudget]) -> Value {
    Value::Array(
        budgets
            .iter()
            .map(|b| {
                json!({
                    "cluster": b.cluster,
                    "agents": b.agents,
                    "cpu_request_millis": b.cpu_request_millis,
                    "cpu_limit_millis": b.cpu_limit_millis,
                    "memory_request_bytes": b.memory_request_bytes,
                    "memory_limit_bytes": b.memory_limit_bytes,
                    "worst_case_bytes": b.worst_case_bytes,
                    "seed_cpu_request_millis": b.seed_cpu_request_millis,
                    "seed_memory_request_bytes": b.seed_memory_request_bytes,
                    "wal": b.wals.iter().map(|w| json!({
                        "agent": w.agent,
                        "mode": w.mode,
                        "crash_loss_ms": w.crash_loss_ms,
                        "power_loss_ms": w.power_loss_ms,
                        "outage_covered_ms": w.outage_covered_ms,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}
