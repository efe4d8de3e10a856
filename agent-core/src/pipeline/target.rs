//! A target's own labels: what Prometheus attaches to every series it
//! scrapes from it.

use crate::plan::{self, Plan};
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// Label bytes a target adds to every series beyond what its body holds:
/// `job`, `instance`, static labels, and an `exported_` rename or two.
pub(super) const TARGET_LABEL_SLACK: usize = 256;

/// Static identity of a target: the labels Prometheus would attach.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetLabels {
    pub job: String,
    pub instance: String,
    /// The job's static labels, in plan order.
    pub extra: Vec<(String, String)>,
    pub honor_labels: bool,
}

impl TargetLabels {
    pub(super) fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        [("job", self.job.as_str()), ("instance", self.instance.as_str())]
            .into_iter()
            .chain(self.extra.iter().map(|(n, v)| (n.as_str(), v.as_str())))
    }

    pub(super) fn bytes(&self) -> usize {
        self.pairs().map(|(n, v)| n.len() + v.len() + 2).sum()
    }
}

/// Job labels of a plan target, resolved once.
pub fn job_labels(plan: &Plan, job: &plan::ScrapeJob, instance: &str) -> TargetLabels {
    TargetLabels {
        job: plan.str(job.name).to_string(),
        instance: instance.to_string(),
        extra: job
            .labels
            .iter()
            .map(|p| (plan.str(p.name).to_string(), plan.str(p.value).to_string()))
            .collect(),
        honor_labels: job.honor_labels,
    }
}
