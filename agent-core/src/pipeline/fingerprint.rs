//! Fingerprints of what shapes a series on its way out, so that a reload
//! can tell whether a series table it carries over is still valid.

use super::target::TargetLabels;
use crate::labels::Fnv64;
use crate::plan::{Plan, RelabelRule};

/// Hash of the plan's external labels and write relabeling: two batchers
/// with the same fingerprint finalize every series alike.
pub(super) fn output_fingerprint(plan: &Plan) -> u64 {
    let mut h = Fnv64::new();
    for p in &plan.external_labels {
        hash_text(&mut h, plan.str(p.name));
        hash_text(&mut h, plan.str(p.value));
    }
    hash_rules(&mut h, plan, &plan.receiver.write_relabel);
    h.finish()
}

/// Hash of what a target does to its series before the batcher: its
/// labels, `honor_labels` and metric relabeling.
pub(super) fn target_fingerprint(plan: &Plan, target: &TargetLabels, rules: &[RelabelRule]) -> u64 {
    let mut h = Fnv64::new();
    for (n, v) in target.pairs() {
        hash_text(&mut h, n);
        hash_text(&mut h, v);
    }
    h.write(&[u8::from(target.honor_labels)]);
    hash_rules(&mut h, plan, rules);
    h.finish()
}

fn hash_text(h: &mut Fnv64, s: &str) {
    h.write(s.as_bytes());
    h.write(&[0xff]);
}

fn hash_rules(h: &mut Fnv64, plan: &Plan, rules: &[RelabelRule]) {
    for r in rules {
        hash_text(h, r.action.name());
        for s in &r.source_labels {
            hash_text(h, plan.str(*s));
        }
        hash_text(h, plan.str(r.separator));
        hash_text(h, plan.str(r.regex));
        hash_text(h, plan.str(r.target_label));
        hash_text(h, plan.str(r.replacement));
        h.write(&r.modulus.to_le_bytes());
    }
}
