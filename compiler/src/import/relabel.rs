//! Relabel rules: Prometheus's `relabel_config` is the spec's rule shape
//! key for key, so each key maps one to one.

use super::keys::Keys;
use super::read::{Findings, MapView};
use crate::spec::RelabelSpec;
use crate::tree::{DocPath, Node};
use serde_saphyr::Spanned;

/// The rules of one list, each with its path (for errors found later).
pub fn rules(
    items: Vec<(&Spanned<Node>, DocPath)>,
    keys: Keys,
    f: &mut Findings,
) -> Vec<(RelabelSpec, DocPath)> {
    let mut out = Vec::new();
    for (node, path) in items {
        let Some(mut m) = MapView::of(node, path.clone(), f) else {
            continue;
        };
        let k = |s: &str| keys.name(s);
        let rule = RelabelSpec {
            // The operator accepts `Replace` as well as `replace`.
            action: m.text(&k("action"), f).map(|a| a.to_lowercase()),
            source_labels: m.strings(&k("source_labels"), f),
            separator: m.text(&k("separator"), f),
            regex: m.text(&k("regex"), f),
            modulus: m.number(&k("modulus"), f),
            target_label: m.text(&k("target_label"), f),
            replacement: m.text(&k("replacement"), f),
        };
        m.rest(f, |_| "not a key of a relabel rule".into());
        out.push((rule, path));
    }
    out
}
