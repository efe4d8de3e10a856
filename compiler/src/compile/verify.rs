//! Checks of a built plan as the agent will see it: its worst case fits the
//! memory limit, and the agent's own builder accepts every rule list.

use super::build::QueuePaths;
use super::context::Cx;
use super::defaults::default_limits;
use super::layers::Unit;
use crate::diag::Diagnostic;
use crate::tree::DocPath;
use crate::units::format_size;
use outpost_core::plan::{self, Plan, Role};
use outpost_core::sizing::{CONNECTION_BYTES, MIN_SAMPLE_BYTES};
use outpost_core::snappy::max_compressed_len;

impl Unit<'_> {
    /// The agent compiles every rule list at start; run its own builder so
    /// a rule it would refuse is a compile error here, not a crash loop on
    /// the node. The spec checks should already have caught each case.
    pub(super) fn check_agent_accepts_rules(&self, cx: &mut Cx, plan: &Plan) {
        let root = DocPath::root();
        let mut lists: Vec<(&[plan::RelabelRule], DocPath, plan::Limits)> = vec![(
            &plan.receiver.write_relabel,
            self.pick(|x| x.write_relabel.as_ref(), &["write_relabel"])
                .map(|(_, p)| p)
                .unwrap_or_else(|| self.unit_path.clone()),
            default_limits(),
        )];
        if let Some(n) = &plan.node {
            lists.push((&n.metric_relabel, root.at("node"), n.limits));
        }
        for j in &plan.scrape_jobs {
            let path = self
                .fleet
                .scrape_jobs
                .iter()
                .position(|s| s.name == plan.str(j.name))
                .map(|i| root.at("scrape_jobs").at(i))
                .unwrap_or_else(|| self.unit_path.clone());
            lists.push((&j.metric_relabel, path.clone(), j.limits));
            lists.push((&j.targeting.relabel, path, j.limits));
        }
        for (rules, path, limits) in lists {
            if let Err(e) =
                outpost_core::relabel::RelabelProgram::build(plan, rules, limits.series_label_bytes())
            {
                cx.push(
                    Diagnostic::error("agent-refuses-rule", path, format!("the agent would refuse this plan: {e}"))
                        .on_key()
                        .label("rules the agent cannot load")
                        .help("fix the rule named above; please also report it, outpostc should have caught it earlier"),
                );
            }
        }
    }

    /// The plan's worst case must fit the memory limit; when the queue is
    /// what overflows it, say by how much and which settings would fit.
    pub(super) fn check_memory(&self, cx: &mut Cx, plan: &Plan, role: Role, paths: &QueuePaths) {
        let mem = plan.worst_case_memory();
        let limit = plan.budget.memory_limit_bytes;
        let total = mem.total();
        if total <= limit {
            return;
        }
        let q = &plan.queue;
        let per_sample =
            (u64::from(q.max_batch_bytes) / u64::from(q.max_samples_per_send)).max(MIN_SAMPLE_BYTES);
        let per_shard = (u64::from(q.capacity) + u64::from(q.max_samples_per_send)) * per_sample
            + max_compressed_len(u64::from(q.max_batch_bytes))
            + CONNECTION_BYTES;
        let shards = u64::from(q.max_shards);
        let rest = total - mem.queue - shards * CONNECTION_BYTES;
        let room = limit.saturating_sub(rest);
        let fitting_shards = room / per_shard;
        let agent = format!("{}/{}.plan", self.name(), role.as_str());
        let mut message = format!(
            "worst-case memory of {agent} is {}, over its memory limit of {}: the queue alone holds {} shards x ({} + {}) samples x {} B = {}",
            format_size(total),
            format_size(limit),
            shards,
            q.capacity,
            q.max_samples_per_send,
            per_sample,
            format_size(mem.queue)
        );
        let help = if fitting_shards >= 1 {
            format!(
                "keep capacity {} and max_samples_per_send {} with max_shards <= {} (worst case {}), or raise the memory limit to at least {}",
                q.capacity,
                q.max_samples_per_send,
                fitting_shards.min(u64::from(u16::MAX)),
                format_size(rest + fitting_shards * per_shard),
                format_size(total)
            )
        } else if rest < limit {
            let per_send = u64::from(q.max_samples_per_send).min(2000);
            let cap = (room / per_sample)
                .saturating_sub(per_send + max_compressed_len(per_send * per_sample) / per_sample + 1024);
            format!(
                "with max_shards 1 the queue fits with max_samples_per_send {per_send} and capacity <= {cap}; or raise the memory limit to at least {}",
                format_size(total)
            )
        } else {
            message = format!(
                "worst-case memory of {agent} is {}, over its memory limit of {} even without the queue ({} for scrape buffers)",
                format_size(total),
                format_size(limit),
                format_size(rest)
            );
            format!(
                "lower the targets' limits (body_size, samples) or raise the memory limit to at least {}",
                format_size(total)
            )
        };
        let path = paths
            .max_shards
            .clone()
            .or(paths.capacity.clone())
            .or(paths.max_samples_per_send.clone())
            .or(paths.max_batch_size.clone())
            .unwrap_or_else(|| self.unit_path.at("name"));
        cx.push(
            Diagnostic::error("memory-budget", path, message)
                .label("this queue cannot fit the memory limit")
                .help(help),
        );
    }
}
