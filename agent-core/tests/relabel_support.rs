//! Shared helpers of the relabel tests, included by each with `#[path]`:
//! a plan holding just the strings the rules need, and label-set builders.
#![allow(dead_code)]

use outpost_core::labels::LabelSet;
use outpost_core::plan::{
    Agent, Auth, Budget, Fsync, Plan, Queue, Receiver, RelabelAction, RelabelRule, Role, SelfScrape, StrId,
    Wal,
};
use outpost_core::relabel::{RelabelBuildError, RelabelProgram};

/// A relabel rule as the spec writes it, with Prometheus's defaults.
#[derive(Debug, Clone)]
pub struct Spec {
    pub action: RelabelAction,
    pub source_labels: Vec<String>,
    pub separator: String,
    pub regex: String,
    pub modulus: u64,
    pub target_label: String,
    pub replacement: String,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            action: RelabelAction::Replace,
            source_labels: Vec::new(),
            separator: ";".into(),
            regex: "(.*)".into(),
            modulus: 0,
            target_label: String::new(),
            replacement: "$1".into(),
        }
    }
}

impl Spec {
    pub fn new(action: RelabelAction) -> Spec {
        Spec {
            action,
            ..Spec::default()
        }
    }
    pub fn sources(mut self, s: &[&str]) -> Spec {
        self.source_labels = s.iter().map(|x| x.to_string()).collect();
        self
    }
    pub fn regex(mut self, r: &str) -> Spec {
        self.regex = r.into();
        self
    }
    pub fn target(mut self, t: &str) -> Spec {
        self.target_label = t.into();
        self
    }
    pub fn replacement(mut self, r: &str) -> Spec {
        self.replacement = r.into();
        self
    }
    pub fn separator(mut self, s: &str) -> Spec {
        self.separator = s.into();
        self
    }
    pub fn modulus(mut self, m: u64) -> Spec {
        self.modulus = m;
        self
    }
}

fn intern(strings: &mut Vec<String>, s: &str) -> StrId {
    match strings.iter().position(|x| x == s) {
        Some(i) => StrId(i as u32),
        None => {
            strings.push(s.to_string());
            StrId(strings.len() as u32 - 1)
        }
    }
}

/// A valid plan whose string table holds the rules' strings; the rules
/// themselves are returned beside it, as a pipeline would pass them.
pub fn plan_with(specs: &[Spec]) -> (Plan, Vec<RelabelRule>) {
    let mut strings = Vec::new();
    let empty = intern(&mut strings, "");
    let rules = specs
        .iter()
        .map(|s| RelabelRule {
            action: s.action,
            source_labels: s.source_labels.iter().map(|l| intern(&mut strings, l)).collect(),
            separator: intern(&mut strings, &s.separator),
            regex: intern(&mut strings, &s.regex),
            modulus: s.modulus,
            target_label: intern(&mut strings, &s.target_label),
            replacement: intern(&mut strings, &s.replacement),
        })
        .collect();
    let plan = Plan {
        strings,
        agent: Agent {
            cluster: empty,
            tenant: None,
            role: Role::Node,
        },
        external_labels: Vec::new(),
        receiver: Receiver {
            url: empty,
            tenant_header: None,
            tls: None,
            auth: Auth::None,
            remote_timeout_ms: 30_000,
            write_relabel: Vec::new(),
        },
        queue: Queue {
            capacity: 1000,
            min_shards: 1,
            max_shards: 1,
            max_samples_per_send: 100,
            batch_send_deadline_ms: 5000,
            min_backoff_ms: 30,
            max_backoff_ms: 5000,
            max_batch_bytes: 1 << 20,
            max_sample_age_ms: 3_600_000,
        },
        wal: Wal {
            dir: empty,
            max_bytes: 1 << 30,
            segment_bytes: 1 << 24,
            fsync: Fsync::Never,
        },
        node: None,
        scrape_jobs: Vec::new(),
        self_scrape: SelfScrape {
            interval_ms: 30_000,
            job: empty,
        },
        budget: Budget {
            cpu_request_millis: 100,
            cpu_limit_millis: 200,
            memory_request_bytes: 1 << 26,
            memory_limit_bytes: 1 << 28,
        },
    };
    (plan, rules)
}

pub const MAX_LABELS: usize = 32;
pub const MAX_LABEL_BYTES: usize = 4096;

pub fn program(specs: &[Spec]) -> Result<RelabelProgram, RelabelBuildError> {
    let (plan, rules) = plan_with(specs);
    let mut p = RelabelProgram::build(&plan, &rules, MAX_LABEL_BYTES)?;
    p.reserve_labels(MAX_LABELS);
    Ok(p)
}

pub fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    let mut l = LabelSet::with_capacity(MAX_LABELS, MAX_LABEL_BYTES);
    for (n, v) in pairs {
        l.push(n, v).unwrap();
    }
    l
}

/// Sorted pairs: relabeling defines the set, not its order.
pub fn sorted(l: &LabelSet) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = l.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    v.sort();
    v
}

pub fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = p.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    v.sort();
    v
}
