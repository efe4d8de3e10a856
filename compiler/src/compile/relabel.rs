//! Relabel rules from the spec to the plan: each rule is checked the way
//! Prometheus reads it, and every regex is compiled by the agent's own rule
//! builder, so a plan that compiles here loads on the agent.

use super::context::Cx;
use super::defaults::default_limits;
use super::intern::Interner;
use super::names::is_label_name;
use crate::diag::Diagnostic;
use crate::spec::RelabelSpec;
use crate::tree::DocPath;
use outpost_core::labels::{LabelError, LabelSet};
use outpost_core::plan::{self, Plan, Role, StrId};
use outpost_core::relabel::RelabelProgram;

/// Checks a pattern with the agent's own rule builder, so the compiler and
/// the agent agree on RE2 syntax, its translation, and the anchoring
/// (`^(?s:RE)$`, as Prometheus).
pub fn check_regex(pattern: &str) -> Result<(), String> {
    let probe = probe_plan(vec![
        pattern.to_string(),
        ";".to_string(),
        String::new(),
        "$1".to_string(),
    ]);
    let rule = plan::RelabelRule {
        action: plan::RelabelAction::Keep,
        source_labels: Vec::new(),
        separator: StrId(1),
        regex: StrId(0),
        modulus: 0,
        target_label: StrId(2),
        replacement: StrId(3),
    };
    match RelabelProgram::build(&probe, std::slice::from_ref(&rule), 1024) {
        Ok(_) => Ok(()),
        // The builder's reason is terse ("error parsing pattern 0"); the
        // parser says what is wrong with the pattern itself.
        Err(outpost_core::relabel::RelabelBuildError::BadRegex { reason, .. }) => {
            match regex_syntax::ast::parse::Parser::new().parse(pattern) {
                Err(e) => Err(e.kind().to_string()),
                Ok(_) => match regex_syntax::Parser::new().parse(pattern) {
                    Err(regex_syntax::Error::Translate(e)) => Err(e.kind().to_string()),
                    _ => Err(reason),
                },
            }
        }
        Err(e) => Err(e.to_string()),
    }
}

/// A plan that only carries `strings`: enough for the rule builder, which
/// reads nothing else.
fn probe_plan(strings: Vec<String>) -> Plan {
    let limits = default_limits();
    Plan {
        strings,
        agent: plan::Agent {
            cluster: StrId(0),
            tenant: None,
            role: Role::Cluster,
        },
        external_labels: Vec::new(),
        receiver: plan::Receiver {
            url: StrId(0),
            tenant_header: None,
            tls: None,
            auth: plan::Auth::None,
            remote_timeout_ms: 1,
            write_relabel: Vec::new(),
        },
        queue: plan::Queue {
            capacity: 1,
            min_shards: 1,
            max_shards: 1,
            max_samples_per_send: 1,
            batch_send_deadline_ms: 1,
            min_backoff_ms: 1,
            max_backoff_ms: 1,
            max_batch_bytes: 1024,
            max_sample_age_ms: 1,
        },
        wal: plan::Wal {
            dir: StrId(0),
            max_bytes: 1024,
            segment_bytes: 1024,
            fsync: plan::Fsync::Never,
            mode: plan::WalMode::Append,
        },
        node: None,
        scrape_jobs: Vec::new(),
        self_scrape: plan::SelfScrape {
            interval_ms: 1,
            job: StrId(0),
        },
        budget: plan::Budget {
            cpu_request_millis: 0,
            cpu_limit_millis: 0,
            memory_request_bytes: 0,
            memory_limit_bytes: limits.body_bytes.into(),
        },
        sharing: None,
    }
}

pub(super) fn relabel_rules(
    cx: &mut Cx,
    s: &mut Interner,
    rules: &[RelabelSpec],
    path: &DocPath,
) -> Vec<plan::RelabelRule> {
    rules
        .iter()
        .enumerate()
        .filter_map(|(i, r)| relabel_rule(cx, s, r, &path.at(i)))
        .collect()
}

fn relabel_rule(cx: &mut Cx, s: &mut Interner, r: &RelabelSpec, path: &DocPath) -> Option<plan::RelabelRule> {
    use plan::RelabelAction as A;
    let action = match r.action.as_deref() {
        None => A::Replace,
        Some(name) => match A::from_name(name) {
            Some(a) => a,
            None => {
                let known: Vec<&str> = A::ALL.iter().map(|a| a.name()).collect();
                cx.push(
                    Diagnostic::error(
                        "unknown-action",
                        path.at("action"),
                        format!("`{name}` is not a relabel action"),
                    )
                    .label("unknown action")
                    .help(format!("Prometheus's actions: {}", known.join(", "))),
                );
                return None;
            }
        },
    };
    let mut ok = true;
    for (i, l) in r.source_labels.iter().enumerate() {
        ok &= cx.label_name(l, &path.at("source_labels").at(i), false);
    }
    if let Some(re) = &r.regex {
        if let Err(e) = check_regex(re) {
            ok = false;
            cx.push(
                Diagnostic::error("bad-regex", path.at("regex"), format!("regex does not compile: {e}"))
                    .label("invalid regex")
                    .help("RE2 syntax, as in Prometheus; the pattern is anchored on both ends (`^(?s:...)$`) for you"),
            );
        }
    }
    let needs_target = matches!(
        action,
        A::Replace | A::HashMod | A::Lowercase | A::Uppercase | A::KeepEqual | A::DropEqual
    );
    let target_ok = |t: &str| is_label_name(t) || (action == A::Replace && t.contains('$'));
    match &r.target_label {
        None if needs_target => {
            ok = false;
            cx.push(
                Diagnostic::error(
                    "missing-key",
                    path.clone(),
                    format!("relabel action `{}` needs `target_label`", action.name()),
                )
                .on_key()
                .label("no target_label")
                .help("name the label the rule writes, e.g. `target_label: instance`"),
            );
        }
        Some(t) if !target_ok(t) => {
            ok = false;
            cx.label_name(t, &path.at("target_label"), false);
        }
        _ => {}
    }
    let mut extra = |key: &str, present: bool| {
        if present {
            cx.push(
                Diagnostic::error(
                    "extra-relabel-field",
                    path.at(key),
                    format!("`{key}` has no effect with action `{}`", action.name()),
                )
                .on_key()
                .label("not used by this action")
                .help(match action {
                    A::LabelDrop | A::LabelKeep => {
                        "labeldrop and labelkeep take only `regex` (matched against label names)"
                    }
                    A::KeepEqual | A::DropEqual => {
                        "keepequal and dropequal take only `source_labels` and `target_label`"
                    }
                    _ => "remove it",
                }),
            );
            false
        } else {
            true
        }
    };
    match action {
        A::LabelDrop | A::LabelKeep => {
            ok &= extra("source_labels", !r.source_labels.is_empty());
            ok &= extra("target_label", r.target_label.is_some());
            ok &= extra("replacement", r.replacement.is_some());
        }
        A::KeepEqual | A::DropEqual => {
            ok &= extra("regex", r.regex.is_some());
            ok &= extra("replacement", r.replacement.is_some());
        }
        _ => {}
    }
    if !matches!(action, A::HashMod) {
        ok &= extra("modulus", r.modulus.is_some());
    }
    if action == A::HashMod && r.modulus.unwrap_or(0) == 0 {
        ok = false;
        cx.push(
            Diagnostic::error(
                "missing-modulus",
                if r.modulus.is_some() {
                    path.at("modulus")
                } else {
                    path.clone()
                },
                "hashmod needs a `modulus` greater than 0",
            )
            .on_key()
            .label("no modulus")
            .help("e.g. `modulus: 4` to spread series over 4 buckets"),
        );
    }
    if matches!(
        action,
        A::Keep | A::Drop | A::Replace | A::HashMod | A::Lowercase | A::Uppercase
    ) && r.source_labels.is_empty()
        && action != A::Replace
    {
        ok = false;
        cx.push(
            Diagnostic::error(
                "missing-key",
                path.clone(),
                format!("relabel action `{}` needs `source_labels`", action.name()),
            )
            .on_key()
            .label("no source_labels")
            .help("e.g. `source_labels: [__name__]`"),
        );
    }
    if !ok {
        return None;
    }
    Some(plan::RelabelRule {
        action,
        source_labels: r.source_labels.iter().map(|l| s.id(l)).collect(),
        separator: s.id(r.separator.as_deref().unwrap_or(";")),
        regex: s.id(r.regex.as_deref().unwrap_or("(.*)")),
        modulus: r.modulus.unwrap_or(0),
        target_label: s.id(r.target_label.as_deref().unwrap_or("")),
        replacement: s.id(r.replacement.as_deref().unwrap_or("$1")),
    })
}

/// `rules` compiled as the agent compiles them, after checking them as the
/// compiler does, with room for `labels_bytes` of labels. `Err` holds the
/// rules' errors, with paths relative to the list.
pub(super) fn program(rules: &[RelabelSpec], labels_bytes: usize) -> Result<RelabelProgram, Vec<Diagnostic>> {
    let mut cx = Cx::default();
    let mut s = Interner::default();
    let compiled = relabel_rules(&mut cx, &mut s, rules, &DocPath::root());
    let errors: Vec<Diagnostic> = cx.finish().into_iter().filter(Diagnostic::is_error).collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    let probe = probe_plan(s.into_strings());
    // Room for every label the rules may add, with their longest values.
    RelabelProgram::build(&probe, &compiled, 64 * 1024 + labels_bytes)
        .map_err(|e| vec![Diagnostic::error("bad-regex", DocPath::root(), e.to_string())])
}

/// Runs `program` over one label set: the labels that come out (sorted by
/// name), or `None` when it drops the set.
pub(super) fn run(
    program: &mut RelabelProgram,
    labels: &[(&str, &str)],
) -> Result<Option<Vec<(String, String)>>, LabelError> {
    let bytes = 64 * 1024 + labels.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    let mut set = LabelSet::with_capacity(labels.len() + 2 * program.len() + 8, 2 * bytes);
    for (k, v) in labels {
        set.set(k, v)?;
    }
    set.sort();
    let kept = program.try_apply(&mut set)?;
    set.sort();
    Ok(kept.then(|| set.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()))
}

/// Runs `rules` over one label set as the agent would, after checking them
/// as the compiler does: the labels that come out (sorted by name), or
/// `None` when the rules drop the set. `Err` holds the rules' errors, with
/// paths relative to the list. `import` uses it to apply Prometheus's
/// target relabeling to static targets.
pub fn apply_rules(
    rules: &[RelabelSpec],
    labels: &[(String, String)],
) -> Result<Option<Vec<(String, String)>>, Vec<Diagnostic>> {
    let bytes = labels.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    let mut program = program(rules, bytes)?;
    let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    run(&mut program, &labels)
        .map_err(|e| vec![Diagnostic::error("bad-regex", DocPath::root(), e.to_string())])
}
