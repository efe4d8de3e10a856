//! Relabel rules written in a spec, compiled by outpostc and run by the
//! agent's engine, behave as Prometheus documents relabeling. The reference
//! below is written from that documentation: join the source values with
//! the separator (absent labels as ""), match the regex anchored on both
//! ends with `.` matching newlines, `keep`/`drop` on the match, `replace`
//! expands `$N` in target and replacement (an empty value deletes the
//! label, no match leaves the series alone), `labeldrop` removes labels
//! whose names match, `lowercase` writes the joined value lowercased, and a
//! series without labels is dropped.
//!
//! This covers the subset the compiler fills defaults for; the relabel
//! engine's own tests in agent-core cover every action in depth.

use outpost_compiler::analyze;
use outpost_core::labels::LabelSet;
use outpost_core::relabel::RelabelProgram;
use proptest::prelude::*;
use regex_automata::meta::Regex;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
enum Rule {
    Keep(Vec<&'static str>, &'static str),
    Drop(Vec<&'static str>, &'static str),
    Replace(Vec<&'static str>, &'static str, &'static str),
    LabelDrop(&'static str),
    Lowercase(&'static str),
}

fn yaml_list(items: &[&str]) -> String {
    format!("[{}]", items.join(", "))
}

impl Rule {
    fn yaml(&self) -> String {
        match self {
            Rule::Keep(s, re) => format!("{{action: keep, source_labels: {}, regex: '{re}'}}", yaml_list(s)),
            Rule::Drop(s, re) => format!("{{action: drop, source_labels: {}, regex: '{re}'}}", yaml_list(s)),
            // Separator and action left out: the compiler fills `;` and `replace`.
            Rule::Replace(s, re, rep) => format!(
                "{{source_labels: {}, regex: '{re}', target_label: c, replacement: '{rep}'}}",
                yaml_list(s)
            ),
            Rule::LabelDrop(re) => format!("{{action: labeldrop, regex: '{re}'}}"),
            // Regex and replacement left out: `(.*)` and `$1`.
            Rule::Lowercase(src) => format!("{{action: lowercase, source_labels: [{src}], target_label: d}}"),
        }
    }
}

fn joined(labels: &BTreeMap<String, String>, sources: &[&str]) -> String {
    let values: Vec<&str> = sources
        .iter()
        .map(|s| labels.get(*s).map(String::as_str).unwrap_or(""))
        .collect();
    values.join(";")
}

fn anchored(re: &str) -> Regex {
    Regex::new(&format!("^(?s:{re})$")).unwrap()
}

/// `$N` and `${N}` only: the generated replacements use nothing else.
fn expand(template: &str, groups: &[String]) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        let (digits, skip) = if let Some(inner) = rest.strip_prefix('{') {
            let end = inner.find('}').unwrap();
            (&inner[..end], end + 2)
        } else {
            let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
            (&rest[..end], end)
        };
        let n: usize = digits.parse().unwrap();
        out.push_str(groups.get(n).map(String::as_str).unwrap_or(""));
        rest = &rest[skip..];
    }
    out.push_str(rest);
    out
}

fn reference(rules: &[Rule], mut labels: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    for rule in rules {
        match rule {
            Rule::Keep(s, re) if !anchored(re).is_match(&joined(&labels, s)) => return None,
            Rule::Drop(s, re) if anchored(re).is_match(&joined(&labels, s)) => return None,
            Rule::Keep(..) | Rule::Drop(..) => {}
            Rule::Replace(s, re, rep) => {
                let input = joined(&labels, s);
                let re = anchored(re);
                let mut caps = re.create_captures();
                re.captures(&input, &mut caps);
                if caps.is_match() {
                    let groups: Vec<String> = (0..caps.group_len())
                        .map(|g| {
                            caps.get_group(g)
                                .map(|m| input[m.range()].to_string())
                                .unwrap_or_default()
                        })
                        .collect();
                    let value = expand(rep, &groups);
                    if value.is_empty() {
                        labels.remove("c");
                    } else {
                        labels.insert("c".to_string(), value);
                    }
                }
            }
            Rule::LabelDrop(re) => {
                let re = anchored(re);
                labels.retain(|name, _| !re.is_match(name));
            }
            Rule::Lowercase(src) => {
                let value = joined(&labels, &[src]).to_lowercase();
                if value.is_empty() {
                    labels.remove("d");
                } else {
                    labels.insert("d".to_string(), value);
                }
            }
        }
    }
    (!labels.is_empty()).then_some(labels)
}

fn rule() -> impl Strategy<Value = Rule> {
    let sources = prop::sample::select(vec![vec!["a"], vec!["b"], vec!["a", "b"], vec!["b", "missing"]]);
    let match_re = prop::sample::select(vec!["x", "x|y", "x.*", ".*Y.*", "", "(x|y);(x|Y)?"]);
    prop_oneof![
        (sources.clone(), match_re.clone()).prop_map(|(s, r)| Rule::Keep(s, r)),
        (sources.clone(), match_re).prop_map(|(s, r)| Rule::Drop(s, r)),
        (
            sources,
            prop::sample::select(vec!["(.*);(.*)", "(x)(.*)", "(.*)", "y(.+)"]),
            prop::sample::select(vec!["$2-$1", "${1}z", "fixed", "$1", "$3"]),
        )
            .prop_map(|(s, r, rep)| Rule::Replace(s, r, rep)),
        prop::sample::select(vec!["a|c", "b", "x.*", "[cd]"]).prop_map(Rule::LabelDrop),
        prop::sample::select(vec!["a", "b", "c"]).prop_map(Rule::Lowercase),
    ]
}

fn value() -> impl Strategy<Value = Option<&'static str>> {
    prop::sample::select(vec![
        None,
        Some("x"),
        Some("y"),
        Some("xY"),
        Some("Yx"),
        Some("x\ny"),
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn compiled_rules_follow_prometheus_semantics(
        rules in prop::collection::vec(rule(), 1..4),
        a in value(),
        b in value(),
        c in value(),
    ) {
        let rules_yaml: Vec<String> = rules.iter().map(|r| format!("      - {}", r.yaml())).collect();
        let spec = format!(
            "receiver:\n  url: https://r.example.net/api/v1/receive\nscrape_jobs:\n  - name: app\n    scope: cluster\n    targets: [\"app:80\"]\n    metric_relabel:\n{}\nclusters:\n  - name: one\n    role: edge\n",
            rules_yaml.join("\n")
        );
        let analysis = analyze("prop.yaml", &spec);
        prop_assert!(!analysis.has_errors(), "{}\n{}", spec, analysis.render_text(100));
        let plan = &analysis.plans[0].plan;
        let job = &plan.scrape_jobs[0];
        prop_assert_eq!(job.metric_relabel.len(), rules.len());
        let mut program = RelabelProgram::build(plan, &job.metric_relabel, 1024).unwrap();

        let mut input = BTreeMap::new();
        for (name, v) in [("a", a), ("b", b), ("c", c)] {
            if let Some(v) = v {
                input.insert(name.to_string(), v.to_string());
            }
        }
        let mut labels = LabelSet::with_capacity(16, 1024);
        for (n, v) in &input {
            labels.push(n, v).unwrap();
        }
        let kept = program.apply(&mut labels);
        let got: Option<BTreeMap<String, String>> =
            kept.then(|| labels.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect());
        prop_assert_eq!(got, reference(&rules, input), "rules {:?}", rules);
    }
}
