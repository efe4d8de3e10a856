//! Relabel rules as a spec writes them ([`Rule`], with Prometheus's
//! defaults), for plans and for the relabel tests, which also build programs
//! and label sets with the helpers here.

use outpost_core::labels::LabelSet;
use outpost_core::plan::{Plan, RelabelAction, RelabelRule};
use outpost_core::relabel::{RelabelBuildError, RelabelProgram};

use crate::plan::PlanBuilder;

/// One rule with owned strings; [`PlanBuilder`] interns them.
#[derive(Debug, Clone)]
pub struct Rule {
    pub action: RelabelAction,
    pub source_labels: Vec<String>,
    pub separator: String,
    pub regex: String,
    pub modulus: u64,
    pub target_label: String,
    pub replacement: String,
}

impl Default for Rule {
    /// A `replace` with separator `;`, regex `(.*)` and replacement `$1`.
    fn default() -> Self {
        Rule {
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

impl Rule {
    pub fn new(action: RelabelAction) -> Rule {
        Rule {
            action,
            ..Rule::default()
        }
    }
    pub fn sources(mut self, s: &[&str]) -> Rule {
        self.source_labels = s.iter().map(|x| x.to_string()).collect();
        self
    }
    pub fn regex(mut self, r: &str) -> Rule {
        self.regex = r.into();
        self
    }
    pub fn target(mut self, t: &str) -> Rule {
        self.target_label = t.into();
        self
    }
    pub fn replacement(mut self, r: &str) -> Rule {
        self.replacement = r.into();
        self
    }
    pub fn separator(mut self, s: &str) -> Rule {
        self.separator = s.into();
        self
    }
    pub fn modulus(mut self, m: u64) -> Rule {
        self.modulus = m;
        self
    }
}

/// A valid plan whose string table holds the rules' strings; the rules
/// themselves are returned beside it, as a pipeline would pass them.
fn plan_with(rules: &[Rule]) -> (Plan, Vec<RelabelRule>) {
    let mut builder = PlanBuilder::new();
    let rules = builder.intern_rules(rules);
    (builder.build(), rules)
}

/// Label sets of the relabel tests hold up to this many labels...
pub const MAX_LABELS: usize = 32;
/// ...of up to this many bytes.
pub const MAX_LABEL_BYTES: usize = 4096;

/// The program the agent would run for `rules`, with room for [`MAX_LABELS`].
pub fn program(rules: &[Rule]) -> Result<RelabelProgram, RelabelBuildError> {
    let (plan, rules) = plan_with(rules);
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
