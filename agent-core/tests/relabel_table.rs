//! Table tests: one or more cases per action, with Prometheus's expected
//! outcome worked out by hand from its documented semantics.

use outpost_core::labels::LabelError;
use outpost_core::plan::RelabelAction as A;
use outpost_core::relabel::RelabelBuildError;
use outpost_test_support::relabel::{self, labels, pairs, program, sorted, Rule};

/// Runs `rules` on `input`; `None` when the series is dropped.
fn run(rules: &[Rule], input: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
    let mut p = program(rules).expect("rules compile");
    let mut l = labels(input);
    p.apply(&mut l).then(|| sorted(&l))
}

fn seed_drop() -> Rule {
    Rule::new(A::Drop)
        .sources(&["__name__"])
        .regex("go_gc_.*|go_memstats_.*")
}

#[test]
fn seed_write_relabel_drops_go_gc_and_memstats_only() {
    for name in ["go_gc_duration_seconds", "go_memstats_alloc_bytes", "go_gc_"] {
        assert_eq!(
            run(&[seed_drop()], &[("__name__", name), ("job", "node")]),
            None,
            "{name}"
        );
    }
    for name in [
        "go_goroutines",
        "node_cpu_seconds_total",
        "xgo_gc_duration",
        "go_gc",
    ] {
        let input = [("__name__", name), ("job", "node")];
        assert_eq!(run(&[seed_drop()], &input), Some(pairs(&input)), "{name}");
    }
}

#[test]
fn seed_tenant_rule_always_sets_the_label() {
    let rule = Rule::new(A::Replace).target("tenant").replacement("tenant-a");
    assert_eq!(
        run(std::slice::from_ref(&rule), &[("__name__", "up")]),
        Some(pairs(&[("__name__", "up"), ("tenant", "tenant-a")]))
    );
    assert_eq!(
        run(&[rule], &[("__name__", "up"), ("tenant", "other")]),
        Some(pairs(&[("__name__", "up"), ("tenant", "tenant-a")]))
    );
}

#[test]
fn replace_expands_captures_in_all_spellings() {
    let base = [("__name__", "up"), ("__address__", "10.0.0.1:9100")];
    let rule = |replacement: &str| {
        Rule::new(A::Replace)
            .sources(&["__address__"])
            .regex(r"(?P<host>[^:]+):(\d+)")
            .target("out")
            .replacement(replacement)
    };
    for (replacement, expected) in [
        ("$1", "10.0.0.1"),
        ("${2}x", "9100x"),
        ("$host-$2", "10.0.0.1-9100"),
        ("${host}", "10.0.0.1"),
        ("$$1", "$1"),
        ("${1", "${1"),
        ("$0", "10.0.0.1:9100"),
        ("a$1x", "a"), // `$1x` names a group that does not exist
    ] {
        let mut want = base.to_vec();
        want.push(("out", expected));
        assert_eq!(
            run(&[rule(replacement)], &base),
            Some(pairs(&want)),
            "{replacement}"
        );
    }
}

#[test]
fn replace_without_match_changes_nothing_and_empty_result_removes() {
    let input = [("__name__", "up"), ("instance", "a:1"), ("out", "keep-me")];
    let no_match = Rule::new(A::Replace)
        .sources(&["instance"])
        .regex("b.*")
        .target("out");
    assert_eq!(run(&[no_match], &input), Some(pairs(&input)));
    // The regex must match the whole value, not a substring.
    let partial = Rule::new(A::Replace)
        .sources(&["instance"])
        .regex("a")
        .target("out");
    assert_eq!(run(&[partial], &input), Some(pairs(&input)));
    let empty = Rule::new(A::Replace)
        .sources(&["instance"])
        .regex("a:(x?).*")
        .target("out");
    assert_eq!(
        run(&[empty], &input),
        Some(pairs(&[("__name__", "up"), ("instance", "a:1")]))
    );
}

#[test]
fn replace_target_label_is_a_template() {
    let rule = Rule::new(A::Replace)
        .sources(&["__name__"])
        .regex("(.+)_total")
        .target("${1}_count")
        .replacement("yes");
    assert_eq!(
        run(
            std::slice::from_ref(&rule),
            &[("__name__", "http_requests_total")]
        ),
        Some(pairs(&[
            ("__name__", "http_requests_total"),
            ("http_requests_count", "yes")
        ]))
    );
    // An empty target name skips the rule.
    let skip = Rule::new(A::Replace)
        .sources(&["a"])
        .regex("(x?).*")
        .target("$1")
        .replacement("v");
    assert_eq!(run(&[skip], &[("a", "b")]), Some(pairs(&[("a", "b")])));
}

#[test]
fn sources_join_with_separator_and_absent_labels_are_empty() {
    let rule = Rule::new(A::Replace)
        .sources(&["a", "missing", "b"])
        .separator(",")
        .regex("(.*),,(.*)")
        .target("joined")
        .replacement("$2/$1");
    assert_eq!(
        run(&[rule], &[("a", "x"), ("b", "y")]),
        Some(pairs(&[("a", "x"), ("b", "y"), ("joined", "y/x")]))
    );
    let default_sep = Rule::new(A::Keep).sources(&["a", "b"]).regex("x;y");
    assert!(run(&[default_sep], &[("a", "x"), ("b", "y")]).is_some());
}

#[test]
fn keep_and_drop() {
    let keep = Rule::new(A::Keep).sources(&["job"]).regex("node|kubelet");
    assert!(run(std::slice::from_ref(&keep), &[("job", "node")]).is_some());
    assert!(run(std::slice::from_ref(&keep), &[("job", "nodes")]).is_none());
    assert!(run(&[keep], &[("other", "x")]).is_none());
    // An absent label is "", which `.*` matches.
    let drop_all = Rule::new(A::Drop).sources(&["missing"]).regex(".*");
    assert!(run(&[drop_all], &[("a", "b")]).is_none());
}

#[test]
fn dot_matches_newline_and_perl_classes_are_ascii() {
    let keep = Rule::new(A::Keep).sources(&["v"]).regex("a.b");
    assert!(run(&[keep], &[("v", "a\nb")]).is_some());
    let digits = Rule::new(A::Keep).sources(&["v"]).regex(r"\d+");
    assert!(run(std::slice::from_ref(&digits), &[("v", "123")]).is_some());
    assert!(run(&[digits], &[("v", "١٢")]).is_none(), "Go's \\d is ASCII only");
}

#[test]
fn keepequal_and_dropequal_compare_with_target_label() {
    let keq = Rule::new(A::KeepEqual).sources(&["a", "b"]).target("c");
    assert!(run(
        std::slice::from_ref(&keq),
        &[("a", "1"), ("b", "2"), ("c", "1;2")]
    )
    .is_some());
    assert!(run(std::slice::from_ref(&keq), &[("a", "1"), ("b", "2"), ("c", "1")]).is_none());
    assert!(
        run(&[keq], &[("x", "1")]).is_none(),
        "\";\" differs from absent \"\""
    );
    let deq = Rule::new(A::DropEqual).sources(&["a"]).target("c");
    assert!(run(std::slice::from_ref(&deq), &[("a", "1"), ("c", "1")]).is_none());
    assert!(run(std::slice::from_ref(&deq), &[("a", "1"), ("c", "2")]).is_some());
    assert!(run(&[deq], &[("x", "1")]).is_none(), "absent equals absent");
}

/// MD5 from the system's `md5sum`, an implementation independent of ours.
fn md5sum(data: &str) -> [u8; 16] {
    use std::io::Write;
    let mut child = std::process::Command::new("md5sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("md5sum runs");
    child.stdin.take().unwrap().write_all(data.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let hex = std::str::from_utf8(&out.stdout).unwrap();
    let mut d = [0u8; 16];
    for (i, b) in d.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    d
}

#[test]
fn hashmod_is_md5_tail_big_endian_modulo() {
    for (a, b, modulus) in [
        ("10.0.0.1:9100", "node", 8u64),
        ("x", "", 3),
        ("", "", 1000),
        ("é", "ü", 7),
    ] {
        let d = md5sum(&format!("{a};{b}"));
        let expected = u64::from_be_bytes(d[8..].try_into().unwrap()) % modulus;
        let rule = Rule::new(A::HashMod)
            .sources(&["a", "b"])
            .modulus(modulus)
            .target("shard");
        let got = run(&[rule], &[("a", a), ("b", b), ("n", "1")]).unwrap();
        let shard = got.iter().find(|(n, _)| n == "shard").map(|(_, v)| v.clone());
        assert_eq!(shard, Some(expected.to_string()), "{a};{b} % {modulus}");
    }
}

/// Values that end on either side of MD5's 56- and 64-byte padding
/// boundaries; with the largest modulus the bucket is almost the whole
/// digest tail, so a wrong digest cannot pass by landing in the same bucket.
#[test]
fn hashmod_matches_md5sum_across_block_boundaries() {
    for len in [0usize, 1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000] {
        let data: String = (0..len).map(|i| char::from(b'a' + (i * 7 % 26) as u8)).collect();
        let d = md5sum(&data);
        let expected = u64::from_be_bytes(d[8..].try_into().unwrap()) % u64::MAX;
        let rule = Rule::new(A::HashMod)
            .sources(&["a"])
            .modulus(u64::MAX)
            .target("shard");
        let got = run(&[rule], &[("a", &data)]).unwrap();
        let shard = got.iter().find(|(n, _)| n == "shard").map(|(_, v)| v.clone());
        assert_eq!(shard, Some(expected.to_string()), "len {len}");
    }
}

#[test]
fn labelmap_copies_matching_names_from_the_labels_before_the_rule() {
    let meta = Rule::new(A::LabelMap).regex("__meta_kubernetes_(.+)");
    assert_eq!(
        run(
            &[meta],
            &[
                ("__meta_kubernetes_pod", "p1"),
                ("__meta_other", "x"),
                ("job", "j")
            ]
        ),
        Some(pairs(&[
            ("__meta_kubernetes_pod", "p1"),
            ("__meta_other", "x"),
            ("job", "j"),
            ("pod", "p1")
        ]))
    );
    // `a` maps to `ab` and `ab` to `abb`; `abb` must get ab's value from
    // before the rule, not the one the rule just wrote.
    let chain = Rule::new(A::LabelMap).regex("a(b?)").replacement("a${1}b");
    assert_eq!(
        run(&[chain], &[("a", "1"), ("ab", "2")]),
        Some(pairs(&[("a", "1"), ("ab", "1"), ("abb", "2")]))
    );
}

#[test]
fn labeldrop_and_labelkeep_match_names() {
    let input = [
        ("__name__", "m"),
        ("pod", "p"),
        ("pod_uid", "u"),
        ("namespace", "n"),
    ];
    let drop = Rule::new(A::LabelDrop).regex("pod.*");
    assert_eq!(
        run(&[drop], &input),
        Some(pairs(&[("__name__", "m"), ("namespace", "n")]))
    );
    let keep = Rule::new(A::LabelKeep).regex("__name__|pod");
    assert_eq!(
        run(&[keep], &input),
        Some(pairs(&[("__name__", "m"), ("pod", "p")]))
    );
    // A series left without labels is dropped.
    let keep_none = Rule::new(A::LabelKeep).regex("nothing");
    assert_eq!(run(&[keep_none], &input), None);
}

#[test]
fn lowercase_and_uppercase_write_the_target() {
    let lower = Rule::new(A::Lowercase).sources(&["a", "b"]).target("low");
    assert_eq!(
        run(&[lower], &[("a", "MiXeD"), ("b", "ÄÖ")]),
        Some(pairs(&[("a", "MiXeD"), ("b", "ÄÖ"), ("low", "mixed;äö")]))
    );
    let upper = Rule::new(A::Uppercase).sources(&["a"]).target("a");
    assert_eq!(
        run(std::slice::from_ref(&upper), &[("a", "node-1é")]),
        Some(pairs(&[("a", "NODE-1É")]))
    );
    // Empty source value: the target is removed, as setting "" does.
    assert_eq!(run(&[upper], &[("x", "1")]), Some(pairs(&[("x", "1")])));
}

#[test]
fn rules_run_in_order() {
    let rules = [
        Rule::new(A::Replace)
            .sources(&["__name__"])
            .regex("(.*)_seconds")
            .target("unit")
            .replacement("s"),
        Rule::new(A::Keep).sources(&["unit"]).regex("s"),
        seed_drop(),
    ];
    assert!(run(&rules, &[("__name__", "x_seconds")]).is_some());
    assert!(run(&rules, &[("__name__", "x_bytes")]).is_none());
    assert!(run(&rules, &[("__name__", "go_gc_duration_seconds")]).is_none());
}

#[test]
fn build_errors_name_the_rule_and_field() {
    let err = program(&[seed_drop(), Rule::new(A::Keep).sources(&["a"]).regex("(unclosed")]).unwrap_err();
    assert!(
        matches!(err, RelabelBuildError::BadRegex { rule: 1, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("rule 1") && text.contains("regex") && text.contains("(unclosed"),
        "{text}"
    );
    let err = program(&[Rule::new(A::Replace).sources(&["a"])]).unwrap_err();
    assert_eq!(
        err,
        RelabelBuildError::MissingTargetLabel {
            rule: 0,
            action: "replace"
        }
    );
    assert!(err.to_string().contains("target_label"));
    let err = program(&[Rule::new(A::HashMod).sources(&["a"]).target("t")]).unwrap_err();
    assert_eq!(err, RelabelBuildError::ZeroModulus { rule: 0 });
    // Go syntax that regex-automata lacks is refused at build time, not at run time.
    assert!(program(&[Rule::new(A::Keep).regex(r"\Qa.b\E")]).is_err());
}

#[test]
fn a_rewrite_past_the_label_bound_drops_and_counts() {
    let long = "v".repeat(relabel::MAX_LABEL_BYTES / 2);
    let rule = Rule::new(A::Replace)
        .sources(&["a"])
        .target("b")
        .replacement("$1$1$1");
    let mut p = program(&[rule]).unwrap();
    let mut l = labels(&[("a", &long)]);
    assert_eq!(
        p.try_apply(&mut l),
        Err(LabelError::TooManyBytes {
            limit: relabel::MAX_LABEL_BYTES
        })
    );
    let mut l = labels(&[("a", &long)]);
    assert!(!p.apply(&mut l));
    assert_eq!(p.dropped_at_limit(), 1);
}

#[test]
fn empty_program_keeps_everything() {
    let mut p = program(&[]).unwrap();
    assert!(p.is_empty());
    let mut l = labels(&[("a", "1")]);
    assert!(p.apply(&mut l));
    assert_eq!(sorted(&l), pairs(&[("a", "1")]));
}
