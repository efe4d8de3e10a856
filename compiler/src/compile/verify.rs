//! Checks of a built plan as the agent will see it: its worst case fits the
//! memory limit, and the agent's own builder accepts every rule list.

use super::build::{QueuePaths, SharingPaths};
use super::context::Cx;
use super::defaults::default_limits;
use super::layers::Unit;
use crate::diag::Diagnostic;
use crate::tree::DocPath;
use crate::units::format_size;
use outpost_core::plan::{self, Plan, Role};
use outpost_core::sizing::{
    TargetGroup, TargetSource, CONNECTION_BYTES, INFLATE_STATE_BYTES, MIN_SAMPLE_BYTES, SLOT_GZIP_BYTES,
};
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

    /// The plan's worst case must fit the memory limit. When it does not,
    /// the error points at what holds the most (the scrape slots, the
    /// series pool, a job's targets or the queue), says by how much and
    /// which settings would fit.
    pub(super) fn check_memory(
        &self,
        cx: &mut Cx,
        plan: &Plan,
        role: Role,
        paths: &QueuePaths,
        sharing_paths: &SharingPaths,
    ) {
        let mem = plan.worst_case_memory();
        let limit = plan.budget.memory_limit_bytes;
        let total = mem.total();
        if total <= limit {
            return;
        }
        let groups = plan.target_groups();
        let job = groups
            .iter()
            .rev()
            .max_by_key(|g| (g.total(), matches!(g.source, TargetSource::ScrapeJob(_))));
        let job_total = job.map_or(0, |g| g.total());
        let most = mem
            .queue
            .max(mem.scrape_slots)
            .max(mem.series_pool)
            .max(job_total);
        if most == mem.scrape_slots && mem.scrape_slots > mem.queue {
            return self.slots_over_memory(cx, plan, role, total, sharing_paths);
        }
        if most == mem.series_pool && mem.series_pool > mem.queue {
            return self.pool_over_memory(cx, plan, role, total, sharing_paths);
        }
        if let Some(job) = job.filter(|g| g.total() == most && g.total() > mem.queue) {
            return self.job_over_memory(cx, plan, role, job, total);
        }
        let q = &plan.queue;
        let per_sample =
            (u64::from(q.max_batch_bytes) / u64::from(q.max_samples_per_send)).max(MIN_SAMPLE_BYTES);
        let per_shard = (u64::from(q.capacity) + u64::from(q.max_samples_per_send)) * per_sample
            + max_compressed_len(u64::from(q.max_batch_bytes))
            + CONNECTION_BYTES
            + INFLATE_STATE_BYTES;
        let shards = u64::from(q.max_shards);
        let rest = total - mem.queue - shards * (CONNECTION_BYTES + INFLATE_STATE_BYTES);
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
                "worst-case memory of {agent} is {}, over its memory limit of {} even without the queue ({} for scrapes and series)",
                format_size(total),
                format_size(limit),
                format_size(rest)
            );
            format!(
                "lower scrape_concurrency, series_pool.max_size or the targets' limits, or raise the memory limit to at least {}",
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

    /// The memory-budget error for a plan whose largest part is one job's
    /// targets: the job, what one target holds and why, and the limits,
    /// target count or memory limit that would fit.
    fn job_over_memory(&self, cx: &mut Cx, plan: &Plan, role: Role, job: &TargetGroup, total: u64) {
        let limit = plan.budget.memory_limit_bytes;
        let per = job.per_target;
        let agent = format!("{}/{}.plan", self.name(), role.as_str());
        let message = format!(
            "worst-case memory of {agent} is {}, over its memory limit of {}; job {} holds the most: {} target(s) x {} = {} (a target's connection, receive buffers and labels)",
            format_size(total),
            format_size(limit),
            job.job,
            job.targets,
            format_size(per.own()),
            format_size(job.total()),
        );
        let mut ways = Vec::new();
        let rest = total - job.total();
        let targets = limit.saturating_sub(rest) / per.own().max(1);
        if matches!(job.source, TargetSource::ScrapeJob(_)) && targets >= 1 && targets < job.targets {
            ways.push(format!("at most {targets} target(s)"));
        }
        let help = if ways.is_empty() {
            format!("raise the memory limit to at least {}", format_size(total))
        } else {
            format!(
                "give job {} {}; or raise the memory limit to at least {}",
                job.job,
                ways.join(", or "),
                format_size(total)
            )
        };
        let path = self.job_path(job);
        cx.push(
            Diagnostic::error("memory-budget", path, message)
                .label("this job's targets hold the most of the worst case")
                .help(help),
        );
    }

    /// Where a job's limits are set in the spec, or its name.
    fn job_path(&self, job: &TargetGroup) -> DocPath {
        let root = DocPath::root();
        match job.source {
            TargetSource::ScrapeJob(_) => self
                .fleet
                .scrape_jobs
                .iter()
                .position(|s| s.name == job.job)
                .map(|si| {
                    let at = root.at("scrape_jobs").at(si);
                    match self.fleet.scrape_jobs[si].limits {
                        Some(_) => at.at("limits"),
                        None => at.at("name"),
                    }
                })
                .unwrap_or_else(|| self.unit_path.at("name")),
            TargetSource::Node => root.at("node"),
            TargetSource::SelfScrape => self.unit_path.at("name"),
        }
    }

    /// The memory-budget error for a plan whose largest part is its scrape
    /// slots: how many, what one holds and which job's limits size it, and
    /// the concurrency or limits that would fit.
    fn slots_over_memory(&self, cx: &mut Cx, plan: &Plan, role: Role, total: u64, paths: &SharingPaths) {
        let limit = plan.budget.memory_limit_bytes;
        let mem = plan.worst_case_memory();
        let sharing = plan.sharing_bounds();
        let slot = plan.scrape_slot_bytes();
        let groups = plan.target_groups();
        let Some(job) = groups.iter().max_by_key(|g| g.per_target.scrape_slot) else {
            return;
        };
        let l = job.limits;
        let agent = format!("{}/{}.plan", self.name(), role.as_str());
        let message = format!(
            "worst-case memory of {agent} is {}, over its memory limit of {}; its scrape slots hold the most: scrape_concurrency {} x {} = {} (a slot is sized for the largest limits, job {}'s: body_size {}, label limits {} x {} B)",
            format_size(total),
            format_size(limit),
            sharing.scrape_concurrency,
            format_size(slot),
            format_size(mem.scrape_slots),
            job.job,
            format_size(u64::from(l.body_bytes)),
            l.label_count,
            l.label_value_bytes,
        );
        // Each slot brings its gzip state too.
        let gzip = u64::from(sharing.scrape_concurrency) * SLOT_GZIP_BYTES;
        let rest = total - mem.scrape_slots - gzip;
        let fitting = limit.saturating_sub(rest) / (slot + SLOT_GZIP_BYTES);
        let mut ways = Vec::new();
        if fitting >= 1 && fitting < u64::from(sharing.scrape_concurrency) {
            ways.push(format!("scrape_concurrency <= {fitting}"));
        }
        ways.extend(self.fitting_limits(plan, job));
        let help = if ways.is_empty() {
            format!("raise the memory limit to at least {}", format_size(total))
        } else {
            format!(
                "set {}; or raise the memory limit to at least {}",
                ways.join(", or "),
                format_size(total)
            )
        };
        let path = paths
            .scrape_concurrency
            .clone()
            .unwrap_or_else(|| self.job_path(job));
        cx.push(
            Diagnostic::error("memory-budget", path, message)
                .label("these scrape slots hold the most of the worst case")
                .help(help),
        );
    }

    /// The memory-budget error for a plan whose largest part is its series
    /// pool, with the `max_size` that would fit.
    fn pool_over_memory(&self, cx: &mut Cx, plan: &Plan, role: Role, total: u64, paths: &SharingPaths) {
        let limit = plan.budget.memory_limit_bytes;
        let mem = plan.worst_case_memory();
        let agent = format!("{}/{}.plan", self.name(), role.as_str());
        let message = format!(
            "worst-case memory of {agent} is {}, over its memory limit of {}; its series_pool holds the most: max_size {} (every target's series table together)",
            format_size(total),
            format_size(limit),
            format_size(mem.series_pool),
        );
        let rest = total - mem.series_pool;
        let help = if rest < limit {
            format!(
                "set series_pool.max_size <= {}Ki; or raise the memory limit to at least {}",
                (limit - rest) / 1024,
                format_size(total)
            )
        } else {
            format!("raise the memory limit to at least {}", format_size(total))
        };
        let path = paths
            .max_size
            .clone()
            .unwrap_or_else(|| self.unit_path.at("name"));
        cx.push(
            Diagnostic::error("memory-budget", path, message)
                .label("this series pool holds the most of the worst case")
                .help(help),
        );
    }

    /// Limits for `job` (and the jobs that share its limits) that would
    /// make the plan fit, as suggestions: `samples <= N`, `body_size <= S`,
    /// or both.
    fn fitting_limits(&self, plan: &Plan, job: &TargetGroup) -> Vec<String> {
        let limit = plan.budget.memory_limit_bytes;
        let l = job.limits;
        let shared = plan
            .target_groups()
            .iter()
            .filter(|g| g.limits == l && g.source != TargetSource::SelfScrape)
            .count();
        let fits = |limits: plan::Limits| {
            let mut p = plan.clone();
            for j in p.scrape_jobs.iter_mut().filter(|j| j.limits == l) {
                j.limits = limits;
            }
            if let Some(n) = p.node.as_mut().filter(|n| n.limits == l) {
                n.limits = limits;
            }
            p.worst_case_memory().total() <= limit
        };
        // Jobs with the same limits (from the same defaults, usually) are
        // lowered together: one of them alone rarely makes the difference.
        let mut ways = Vec::new();
        if job.source != TargetSource::SelfScrape {
            if let Some(samples) = largest_fitting(l.samples, |v| fits(plan::Limits { samples: v, ..l })) {
                ways.push(format!("samples <= {samples} (body_size kept)"));
            }
            if let Some(body) = largest_fitting(l.body_bytes, |v| fits(plan::Limits { body_bytes: v, ..l })) {
                ways.push(format!("body_size <= {} (samples kept)", whole_kib(body)));
            }
            if ways.is_empty() {
                // Neither alone is enough: both, in the same proportion.
                let scaled = |per_mille: u32| plan::Limits {
                    samples: (u64::from(l.samples) * u64::from(per_mille) / 1000).max(1) as u32,
                    body_bytes: (u64::from(l.body_bytes) * u64::from(per_mille) / 1000).max(1) as u32,
                    ..l
                };
                if let Some(k) = largest_fitting(1000, |k| fits(scaled(k))) {
                    let to = scaled(k);
                    ways.push(format!(
                        "samples <= {} and body_size <= {}",
                        to.samples,
                        whole_kib(to.body_bytes)
                    ));
                }
            }
        }
        let whom = match shared {
            0 | 1 => format!("job {}", job.job),
            n => format!(
                "job {} and the other {} job(s) with the same limits",
                job.job,
                n - 1
            ),
        };
        ways.into_iter().map(|w| format!("{w} for {whom}")).collect()
    }
}

/// `bytes` rounded down to whole KiB, as a spec size (the suggestion must fit).
fn whole_kib(bytes: u32) -> String {
    format!("{}Ki", bytes / 1024)
}

/// The largest value in `1..now` for which `fits` holds, if any; `fits`
/// must hold for every value below one it holds for.
fn largest_fitting(now: u32, fits: impl Fn(u32) -> bool) -> Option<u32> {
    if now <= 1 || !fits(1) {
        return None;
    }
    let (mut lo, mut hi) = (1u32, now - 1);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Some(lo)
}
