//! Every spec under tests/broken/ has one deliberate mistake, named in its
//! first line (`# expect: <code>`). The checker must report that code, and
//! the rendered diagnostics are pinned by snapshots.

use outpost_compiler::{analyze, Severity};
use std::path::Path;

fn broken_specs() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/broken");
    let mut specs: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    specs.sort();
    specs
}

fn expected_code(text: &str) -> &str {
    text.lines()
        .next()
        .and_then(|l| l.strip_prefix("# expect: "))
        .expect("first line names the expected diagnostic code")
        .trim()
}

#[test]
fn there_are_at_least_25_distinct_mistakes() {
    let specs = broken_specs();
    assert!(specs.len() >= 25, "only {} broken specs", specs.len());
    let mut texts: Vec<&String> = specs.iter().map(|(_, t)| t).collect();
    texts.dedup();
    assert_eq!(texts.len(), specs.len());
}

#[test]
fn each_broken_spec_reports_its_mistake_with_a_place() {
    for (name, text) in broken_specs() {
        let a = analyze(&format!("{name}.yaml"), &text);
        let code = expected_code(&text);
        let hit = a
            .diagnostics
            .iter()
            .find(|d| d.code == code)
            .unwrap_or_else(|| panic!("{name}: expected `{code}`, got {:?}", a.diagnostics));
        assert!(hit.resolve(&a.files).is_some(), "{name}: `{code}` has no place");
        assert!(hit.help.is_some(), "{name}: `{code}` offers no fix");
        // Mistakes that are only warnings: the plan is still written.
        if [
            "plaintext-receiver",
            "node-mixin-gap",
            "wal-spill-unused",
            "static-target-relabel-not-run",
        ]
        .contains(&code)
        {
            assert_eq!(hit.severity, Severity::Warning);
            assert!(!a.has_errors(), "{name}: {:?}", a.diagnostics);
        } else {
            assert!(a.has_errors(), "{name}: no error");
        }
    }
}

#[test]
fn rendered_diagnostics_snapshots() {
    for (name, text) in broken_specs() {
        let a = analyze(&format!("tests/broken/{name}.yaml"), &text);
        insta::assert_snapshot!(name.clone(), a.render_text(100));
    }
}

#[test]
fn json_has_the_same_diagnostics_with_line_and_column() {
    let (_, text) = broken_specs()
        .into_iter()
        .find(|(n, _)| n == "many-mistakes")
        .unwrap();
    let a = analyze("many-mistakes.yaml", &text);
    let json = a.render_json();
    let list = json["diagnostics"].as_array().unwrap();
    assert_eq!(list.len(), a.diagnostics.len());
    assert!(list.len() >= 4, "{json:#}");
    assert_eq!(json["errors"].as_u64().unwrap() as usize, list.len());
    for (j, d) in list.iter().zip(&a.diagnostics) {
        assert_eq!(j["code"], d.code);
        assert_eq!(j["file"], "many-mistakes.yaml");
        assert!(j["line"].as_u64().unwrap() > 1);
        assert!(j["column"].as_u64().unwrap() >= 1);
    }
    let bad_duration = list.iter().find(|d| d["code"] == "bad-duration").unwrap();
    assert_eq!(bad_duration["path"], "defaults.scrape_interval");
    assert_eq!(bad_duration["line"], 7);
    assert_eq!(bad_duration["column"], 20);
}

#[test]
fn seed_queue_is_refused_with_numbers_and_a_fitting_suggestion() {
    let (_, text) = broken_specs()
        .into_iter()
        .find(|(n, _)| n == "seed-queue-over-budget")
        .unwrap();
    let a = analyze("seed.yaml", &text);
    let d = a.diagnostics.iter().find(|d| d.code == "memory-budget").unwrap();
    assert!(
        d.message.contains("100 shards x (20000 + 10000) samples"),
        "{}",
        d.message
    );
    let help = d.help.as_deref().unwrap();
    let shards: u64 = help
        .split("max_shards <= ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no shard count in {help}"));
    // The suggestion must really fit: recompile with it.
    let fixed = text.replace("max_shards: 100", &format!("max_shards: {shards}"));
    let b = analyze("seed-fixed.yaml", &fixed);
    assert!(!b.has_errors(), "{:?}", b.diagnostics);
    let worst = b.plans[0].plan.worst_case_memory().total();
    assert!(worst <= 512 << 20);
    // One more shard would not have fitted: the suggestion is the largest.
    let over = text.replace("max_shards: 100", &format!("max_shards: {}", shards + 1));
    assert!(analyze("seed-over.yaml", &over)
        .diagnostics
        .iter()
        .any(|d| d.code == "memory-budget"));
}
