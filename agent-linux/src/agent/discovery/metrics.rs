//! Discovery's families on the agent's `/metrics`, per job: what was found
//! and kept, what the API server answered, and what was skipped and why.
//! The counts are agent-core's ([`DiscoveryCounters`], [`TargetCounters`]);
//! failures by reason are the connections'.
//!
//! [`DiscoveryCounters`]: outpost_core::discovery::DiscoveryCounters
//! [`TargetCounters`]: outpost_core::discovery::targets::TargetCounters

use super::{Discovering, JobDiscovery};
use crate::collectors::expo::{Expo, Kind};

type PerJob = (&'static str, &'static str, Kind, fn(&JobDiscovery) -> u64);

const SKIPPED: &[&str] = &["outpost_discovery_skipped_total"];
const FAILURES: &[&str] = &["outpost_discovery_failures_total"];

impl Discovering {
    pub(in crate::agent) fn render_metrics(&self, expo: &mut Expo<'_>) {
        if self.jobs.is_empty() {
            return;
        }
        let per_job: [PerJob; 7] = [
            (
                "outpost_discovery_targets",
                "Discovered targets kept by target relabeling and scraped.",
                Kind::Gauge,
                |j| j.kube.targets.kept() as u64,
            ),
            (
                "outpost_discovery_dropped_targets",
                "Discovered targets target relabeling dropped, as /api/v1/targets lists them.",
                Kind::Gauge,
                |j| j.kube.targets.dropped.len() as u64,
            ),
            (
                "outpost_discovery_synced",
                "Whether every resource of the job has been listed (1) since the agent started.",
                Kind::Gauge,
                |j| u64::from(j.kube.synced()),
            ),
            (
                "outpost_discovery_store_bytes",
                "Bytes discovery keeps between events (bounded by max_store_size).",
                Kind::Gauge,
                |j| j.kube.stored_bytes() as u64,
            ),
            (
                "outpost_discovery_events_total",
                "Watch events applied (added, modified, deleted).",
                Kind::Counter,
                |j| j.kube.counters.events,
            ),
            (
                "outpost_discovery_lists_total",
                "Complete lists of a resource.",
                Kind::Counter,
                |j| j.kube.counters.lists,
            ),
            (
                "outpost_discovery_relists_total",
                "410 Gone answers that made a resource list again.",
                Kind::Counter,
                |j| j.kube.counters.relists,
            ),
        ];
        for (name, help, kind, value) in per_job {
            expo.family(&[name], &[help], kind);
            for j in &self.jobs {
                expo.sample(&[name], &[("job", &j.name)], value(j));
            }
        }
        expo.family(
            FAILURES,
            &["Lists and watches that failed, by reason; the targets found before stay."],
            Kind::Counter,
        );
        for j in &self.jobs {
            for (reason, n) in &j.failures {
                expo.sample(FAILURES, &[("job", &j.name), ("reason", reason)], *n);
            }
        }
        expo.family(
            SKIPPED,
            &["Objects and targets discovery did not keep, by reason."],
            Kind::Counter,
        );
        for j in &self.jobs {
            let (d, t) = (&j.kube.counters, &j.kube.targets.counters);
            let reasons = [
                ("decode_error", d.decode_errors),
                ("object_too_large", d.oversized),
                ("store_full", d.store_full),
                ("max_targets", t.over_limit),
                ("invalid_target", t.failed),
                ("duplicate_target", t.duplicates),
                ("labels_not_stored", t.not_stored),
            ];
            for (reason, n) in reasons {
                expo.sample(SKIPPED, &[("job", &j.name), ("reason", reason)], n);
            }
        }
    }
}
