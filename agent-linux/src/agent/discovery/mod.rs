//! Kubernetes discovery run by the agent: for every scrape job with a
//! `discovery` section, agent-core's sans-IO [`KubeDiscovery`] says what to
//! list and watch, and this module sends it on one connection per watch
//! ([`watches`]), on the loop like every other socket, feeding each response
//! body to the core as it arrives. The API server and credentials are
//! [`access`]'s.
//!
//! Once a job's resources have all been listed, its discovered target set
//! is what gets scraped: whenever it changes, targets no longer in it are
//! retired through [`Scraping::retire_target`] (their series get staleness
//! markers, as on a reload) and new ones start through
//! [`Scraping::add_discovered`]; a target whose labels and address did not
//! change keeps scraping undisturbed, with its series table. A failed list or
//! watch changes nothing: the last good set goes on being scraped while the
//! core backs off, and the failure is counted by reason.
//!
//! Memory: the core holds what the plan's discovery bounds allow; each watch
//! has one connection with fixed buffers, and response bodies are streamed,
//! never held whole. Discovery churn allocates (a new target's pipeline);
//! an idle watch does not.

mod access;
mod metrics;
mod watches;

use std::sync::Arc;

use mio::Registry;
use outpost_core::discovery::targets::ResolvedTarget;
use outpost_core::discovery::KubeDiscovery;
use outpost_core::plan::{Plan, Scheme};
use rustls::ClientConfig;

use super::endpoint::tls_config;
use super::resolver::{Answer, ResolverThread};
use super::scraping::Scraping;
use super::shipping::Shipping;
use crate::cli::RunArgs;
use crate::log;
use access::ApiAccess;
use watches::WatchConn;

/// What a scrape target found by discovery remembers of where it came from.
#[derive(Debug)]
pub(super) struct Discovered {
    /// Index of its job in [`Discovering::jobs`].
    pub job: usize,
    pub target: ResolvedTarget,
}

/// One scrape job's discovery.
pub(super) struct JobDiscovery {
    /// The job's name: its scrape pool.
    pub name: String,
    /// Index of the job in the plan's `scrape_jobs`.
    pub plan_job: usize,
    pub kube: KubeDiscovery,
    access: ApiAccess,
    /// One per watch of `kube`, in its order.
    conns: Vec<WatchConn>,
    /// The TLS configuration of the job's `https` targets.
    target_tls: Option<Arc<ClientConfig>>,
    /// Failed lists and watches, by reason.
    pub failures: Vec<(&'static str, u64)>,
}

/// Every discovery job of the plan.
pub(super) struct Discovering {
    pub jobs: Vec<JobDiscovery>,
}

impl Discovering {
    /// The plan's discovery jobs, ready to list; nothing is sent before the
    /// first [`Discovering::tick`].
    pub(super) fn build(plan: &Plan, args: &RunArgs) -> Result<Discovering, String> {
        let mut jobs = Vec::new();
        let mut watches = 0;
        for (plan_job, job) in plan.scrape_jobs.iter().enumerate() {
            let Some(d) = &job.targeting.discovery else {
                continue;
            };
            let name = plan.str(job.name).to_string();
            let in_job = |e: String| format!("job {name} discovery: {e}");
            let seed = 0x9e37_79b9_7f4a_7c15 ^ (plan_job as u64 + 1);
            let kube = KubeDiscovery::new(plan, job, &args.node_name, seed)?;
            let access = ApiAccess::build(plan, d, args).map_err(in_job)?;
            let mut conns = Vec::with_capacity(kube.watches.len());
            for _ in &kube.watches {
                conns.push(WatchConn::new(&access, watches).map_err(in_job)?);
                watches += 1;
            }
            // A relabeled `__scheme__` may make any target https.
            let target_tls = tls_config(plan, &job.tls).map_err(in_job)?;
            log::info(
                "discovery configured",
                &[
                    ("job", &name),
                    ("role", &d.role.name()),
                    ("api_server", &access.url),
                    ("watches", &conns.len()),
                    ("max_targets", &d.max_targets),
                ],
            );
            jobs.push(JobDiscovery {
                name,
                plan_job,
                kube,
                access,
                conns,
                target_tls,
                failures: Vec::new(),
            });
        }
        Ok(Discovering { jobs })
    }

    /// The job and watch behind the loop's watch number `i`.
    fn watch(&self, mut i: usize) -> Option<(usize, usize)> {
        for (j, job) in self.jobs.iter().enumerate() {
            if i < job.conns.len() {
                return Some((j, i));
            }
            i -= job.conns.len();
        }
        None
    }

    /// Sends the API servers' names that are due to the resolver.
    pub(super) fn ask_names_if_due(&mut self, now: u64, resolver: &ResolverThread) {
        for job in &mut self.jobs {
            job.access.endpoint.name.ask_if_due(now, resolver);
        }
    }

    pub(super) fn take_answer(&mut self, answer: &Answer, now: u64, refresh_ms: u64) {
        for job in &mut self.jobs {
            job.access
                .endpoint
                .name
                .apply(answer, now, refresh_ms, "api_server");
        }
    }

    /// Works the watches' deadlines and sends the requests that are due.
    pub(super) fn tick(&mut self, registry: &Registry, now: u64) {
        for job in &mut self.jobs {
            for w in 0..job.conns.len() {
                if job.conns[w].deadline_ms().is_some_and(|d| now >= d) {
                    job.drive(registry, w, now);
                }
            }
            while let Some((w, request)) = job.kube.poll_request(now) {
                job.send(registry, w, &request, now);
            }
        }
    }

    /// An event on watch connection `i`.
    pub(super) fn handle_event(&mut self, registry: &Registry, i: usize, now: u64) {
        if let Some((j, w)) = self.watch(i) {
            self.jobs[j].drive(registry, w, now);
        }
    }

    /// When the loop must come back: a request due or a deadline.
    pub(super) fn next_deadline(&self) -> Option<u64> {
        self.jobs
            .iter()
            .flat_map(|job| {
                let conns = job.conns.iter().filter_map(WatchConn::deadline_ms);
                conns.chain(job.kube.poll_timeout())
            })
            .min()
    }

    /// Makes the scraped targets follow the discovered ones, for every job
    /// whose resources have all been listed and whose set changed.
    pub(super) fn apply(
        &mut self,
        plan: &Plan,
        scraping: &mut Scraping,
        registry: &Registry,
        ship: &mut Shipping,
        wall_ms: i64,
        now: u64,
    ) {
        for (j, job) in self.jobs.iter_mut().enumerate() {
            if !job.kube.synced() || !job.kube.targets.take_changed() {
                continue;
            }
            let found = || job.kube.targets.slots.iter().filter_map(|s| s.found.as_deref());
            let mut retired = 0;
            let mut i = scraping.targets.len();
            // Backwards: a retired target's place is taken by the last one,
            // which has been looked at already.
            while i > 0 {
                i -= 1;
                let gone = scraping.targets[i]
                    .discovered
                    .as_ref()
                    .is_some_and(|d| d.job == j && !found().any(|f| f.target == d.target));
                if gone {
                    scraping.retire_target(i, wall_ms, registry, ship);
                    retired += 1;
                }
            }
            let mut added = 0;
            for f in found() {
                let present = scraping.targets.iter().any(|t| {
                    t.discovered
                        .as_ref()
                        .is_some_and(|d| d.job == j && d.target == f.target)
                });
                if present {
                    continue;
                }
                let tls = match f.target.scheme {
                    Scheme::Https => job.target_tls.clone(),
                    Scheme::Http => None,
                };
                let discovered = Discovered {
                    job: j,
                    target: f.target.clone(),
                };
                let job_plan = &plan.scrape_jobs[job.plan_job];
                match scraping.add_discovered(plan, job_plan, &tls, discovered, now) {
                    Ok(()) => added += 1,
                    Err(e) => log::warn(
                        "discovered target not scraped",
                        &[("job", &job.name), ("err", &e)],
                    ),
                }
            }
            log::info(
                "discovered targets changed",
                &[
                    ("job", &job.name),
                    ("added", &added),
                    ("retired", &retired),
                    ("targets", &job.kube.targets.kept()),
                    ("dropped_by_relabeling", &job.kube.targets.dropped.len()),
                ],
            );
        }
    }

    /// The labels a discovered target was found with, as `/api/v1/targets`
    /// shows them; `None` for static targets and when they were not stored.
    pub(super) fn discovered_labels(&self, d: &Discovered) -> Option<&[(String, String)]> {
        let job = self.jobs.get(d.job)?;
        let found = job
            .kube
            .targets
            .slots
            .iter()
            .filter_map(|s| s.found.as_deref())
            .find(|f| f.target == d.target)?;
        (!found.discovered.is_empty()).then_some(found.discovered.as_slice())
    }

    /// Targets relabeling dropped: their scrape pool and discovered labels.
    pub(super) fn dropped(&self) -> impl Iterator<Item = (&str, &[(String, String)])> {
        self.jobs.iter().flat_map(|job| {
            job.kube
                .targets
                .dropped
                .iter()
                .map(|d| (job.name.as_str(), d.discovered.as_slice()))
        })
    }

    /// A reload's fresh discovery starts with the targets `old` found for
    /// the jobs that still discover under the same name, added to `new`
    /// (the reload then carries their series over as for any target that
    /// stays); its own first lists replace them. Their counters go on from
    /// where they were.
    pub(super) fn carry_over(&mut self, old: &Discovering, plan: &Plan, new: &mut Scraping, now: u64) {
        for (j, job) in self.jobs.iter_mut().enumerate() {
            let Some(was) = old.jobs.iter().find(|o| o.name == job.name) else {
                continue;
            };
            job.kube.counters = was.kube.counters;
            job.kube.targets.counters = was.kube.targets.counters;
            job.failures.clone_from(&was.failures);
            for f in was.kube.targets.slots.iter().filter_map(|s| s.found.as_deref()) {
                let tls = match f.target.scheme {
                    Scheme::Https => job.target_tls.clone(),
                    Scheme::Http => None,
                };
                let found = Discovered {
                    job: j,
                    target: f.target.clone(),
                };
                let job_plan = &plan.scrape_jobs[job.plan_job];
                if let Err(e) = new.add_discovered(plan, job_plan, &tls, found, now) {
                    log::warn(
                        "discovered target not scraped",
                        &[("job", &job.name), ("err", &e)],
                    );
                }
            }
        }
    }

    /// Closes every watch connection (shutdown, reload).
    pub(super) fn close(&mut self, registry: &Registry) {
        for job in &mut self.jobs {
            for c in &mut job.conns {
                c.close(registry);
            }
        }
    }
}
