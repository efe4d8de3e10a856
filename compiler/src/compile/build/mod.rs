//! One agent's plan, section by section (`node.rs`: the node collectors and
//! their options). The sections are built in a fixed
//! order because the string table numbers strings in first-use order: the
//! same spec gives the same plan bytes on every run.

mod discovery;
mod node;
mod queue;
mod receiver;
mod resources;
mod scrape;
mod sharing;
mod wal;

use super::context::Cx;
use super::defaults::{DEFAULT_SCRAPE_INTERVAL, DEFAULT_SCRAPE_TIMEOUT, SELF_JOB};
use super::intern::Interner;
use super::layers::Unit;
use crate::diag::Diagnostic;
use crate::spec::{JobSpec, Scope, TlsSpec};
use crate::tree::DocPath;
use outpost_core::plan::{self, Plan, Role};
use scrape::{Inherited, TIMEOUT_OVER_INTERVAL_HELP};

pub(super) use queue::QueuePaths;
pub(super) use sharing::SharingPaths;

/// A bound the plan holds in 32 bits, at least 1.
fn clamp_u32(v: u64) -> u32 {
    v.clamp(1, u64::from(u32::MAX)) as u32
}

/// TLS settings of the receiver or of a job, as the plan holds them.
fn tls_plan(s: &mut Interner, t: &TlsSpec) -> plan::Tls {
    plan::Tls {
        ca_file: t.ca_file.as_ref().map(|v| s.id(v)),
        cert_file: t.cert_file.as_ref().map(|v| s.id(v)),
        key_file: t.key_file.as_ref().map(|v| s.id(v)),
        server_name: t.server_name.as_ref().map(|v| s.id(v)),
        insecure_skip_verify: t.insecure_skip_verify,
    }
}

impl Unit<'_> {
    /// The plan of the agent with `role` in this cluster or tenant, or
    /// `None` when that agent would have nothing to do.
    pub(in crate::compile) fn build(
        &self,
        cx: &mut Cx,
        role: Role,
        labels: &[(String, String)],
    ) -> Option<Plan> {
        let fleet = self.fleet;
        let jobs: Vec<(usize, &JobSpec)> = fleet
            .scrape_jobs
            .iter()
            .enumerate()
            .filter(|(_, j)| {
                matches!(
                    (role, j.scope),
                    (Role::Node, Scope::Node) | (Role::Cluster, Scope::Cluster)
                )
            })
            .collect();
        let node = if role == Role::Node {
            fleet.node.as_ref()
        } else {
            None
        };
        if jobs.is_empty() && node.is_none() {
            return None;
        }
        let mut s = Interner::default();
        let agent = plan::Agent {
            cluster: s.id(&self.cluster.name),
            tenant: self.tenant.map(|t| s.id(&t.name)),
            role,
        };
        let external_labels = labels
            .iter()
            .map(|(n, v)| plan::LabelPair {
                name: s.id(n),
                value: s.id(v),
            })
            .collect();
        let receiver = self.receiver(cx, &mut s);
        let (queue, queue_paths) = self.queue(cx);
        let wal = self.wal(cx, &mut s, role, &queue);
        let (interval_ms, interval_path) = cx.duration_or(
            self.pick(|x| x.scrape_interval.as_ref(), &["scrape_interval"]),
            DEFAULT_SCRAPE_INTERVAL,
        );
        let (timeout_ms, timeout_path) = cx.duration_or(
            self.pick(|x| x.scrape_timeout.as_ref(), &["scrape_timeout"]),
            DEFAULT_SCRAPE_TIMEOUT,
        );
        if interval_ms == 0 {
            if let Some(p) = &interval_path {
                cx.push(
                    Diagnostic::error("zero-duration", p.clone(), "scrape_interval must be more than 0")
                        .label("zero"),
                );
            }
        }
        if timeout_ms > interval_ms {
            if let Some(p) = timeout_path.clone().or(interval_path.clone()) {
                cx.push(
                    Diagnostic::error("timeout-exceeds-interval", p, format!("scrape timeout {timeout_ms}ms is longer than the scrape interval {interval_ms}ms"))
                        .label("timeout > interval")
                        .help(TIMEOUT_OVER_INTERVAL_HELP),
                );
            }
        }
        let inherited = Inherited {
            interval_ms,
            timeout_ms,
            metric_relabel: self.pick(|x| x.metric_relabel.as_ref(), &["metric_relabel"]),
            limits: self.limits_layered(cx),
        };
        let wal_dir = s.get(wal.dir).to_string();
        let node = node.map(|n| self.node(cx, &mut s, n, &inherited, &wal_dir));
        let mut scrape_jobs = Vec::new();
        for (ji, j) in jobs {
            let jpath = DocPath::root().at("scrape_jobs").at(ji);
            scrape_jobs.extend(self.job(cx, &mut s, j, &jpath, &inherited));
        }
        let self_scrape = plan::SelfScrape {
            interval_ms: interval_ms.max(1) as u32,
            job: s.id(SELF_JOB),
        };
        let budget = self.budget(cx, role);
        let (sharing, sharing_paths) = self.sharing(cx);
        let plan = Plan {
            strings: s.into_strings(),
            agent,
            external_labels,
            receiver,
            queue,
            wal,
            node,
            scrape_jobs,
            self_scrape,
            budget,
            sharing: Some(sharing),
        };
        self.check_memory(cx, &plan, role, &queue_paths, &sharing_paths);
        self.check_agent_accepts_rules(cx, &plan);
        self.check_node_mixin(cx, &plan);
        Some(plan)
    }
}
