//! `outpostc import` on the configs in tests/import/, written here to cover
//! every key it reads and several it cannot translate. Each config passes
//! `promtool check config` (Prometheus 2.42); the import reports every key
//! it does not translate with its place, never writes an inline secret, and
//! writes a spec that passes `outpostc check`. The spec and the findings are
//! snapshots.

use outpost_compiler::import::{import_file, ImportOptions, Imported};
use std::path::{Path, PathBuf};
use std::process::Command;

const PROMTOOL: &str = "/usr/bin/promtool";

fn config(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/import")
        .join(name)
}

/// `promtool check config` on `path`; false (test skips) when promtool is not installed.
fn promtool_accepts(path: &Path) -> bool {
    if !Path::new(PROMTOOL).exists() {
        eprintln!("skipping: {PROMTOOL} is not installed (apt install prometheus)");
        return false;
    }
    let out = Command::new(PROMTOOL)
        .args(["check", "config"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool rejects {}: {}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

/// One line per finding: `file:line:col severity code: message`, the
/// config's directory written as `<dir>`.
fn findings(imported: &Imported) -> String {
    let json = imported.render_json();
    let dir = config("").display().to_string();
    json["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let file = Path::new(d["file"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            format!(
                "{file}:{}:{} {} {}: {}\n",
                d["line"],
                d["column"],
                d["severity"].as_str().unwrap(),
                d["code"].as_str().unwrap(),
                d["message"].as_str().unwrap().replace(&dir, "<dir>/")
            )
        })
        .collect()
}

fn imported_spec(imported: &Imported) -> String {
    let dir = config("").display().to_string();
    imported.yaml.as_ref().expect("a spec").replace(&dir, "<dir>/")
}

#[test]
fn prometheus_yml_imports_to_a_spec_that_checks() {
    let path = config("prometheus.yml");
    if !promtool_accepts(&path) {
        return;
    }
    let imported = import_file(&path, &ImportOptions::default()).unwrap();
    assert!(!imported.has_errors(), "{}", imported.render_text(100));
    let yaml = imported.yaml.clone().unwrap();
    let checked = outpost_compiler::analyze("imported.yaml", &yaml);
    assert!(!checked.has_errors(), "{}", checked.render_text(100));
    assert_eq!(
        checked.plans.len(),
        1,
        "one cluster-role agent scrapes the static targets"
    );
    for secret in ["s3cr3t-scrape-token", "s3cr3t-receiver-password"] {
        assert!(!yaml.contains(secret), "{secret} leaked into the spec");
        assert!(!findings(&imported).contains(secret));
    }
    insta::assert_snapshot!("prometheus_yml_spec", imported_spec(&imported));
    insta::assert_snapshot!("prometheus_yml_findings", findings(&imported));
}

#[test]
fn kube_prometheus_stack_values_import_to_a_spec_that_checks() {
    let path = config("kube-prometheus-stack.yaml");
    // The values' scrape configs are Prometheus's own: promtool checks them as a config.
    let text = std::fs::read_to_string(&path).unwrap();
    let values: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let scrape = &values["prometheus"]["prometheusSpec"]["additionalScrapeConfigs"];
    assert!(scrape.as_array().is_some_and(|a| !a.is_empty()));
    let dir = tempfile::tempdir().unwrap();
    let as_config = dir.path().join("prometheus.yml");
    std::fs::write(
        &as_config,
        serde_json::json!({"scrape_configs": scrape}).to_string(),
    )
    .unwrap();
    if !promtool_accepts(&as_config) {
        return;
    }
    let imported = import_file(&path, &ImportOptions::default()).unwrap();
    assert!(!imported.has_errors(), "{}", imported.render_text(100));
    let checked = outpost_compiler::analyze("imported.yaml", imported.yaml.as_ref().unwrap());
    assert!(!checked.has_errors(), "{}", checked.render_text(100));
    insta::assert_snapshot!("kube_stack_spec", imported_spec(&imported));
    insta::assert_snapshot!("kube_stack_findings", findings(&imported));
}

#[test]
fn a_config_without_cluster_name_or_receiver_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.yml");
    std::fs::write(
        &path,
        "scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: ['a:1']\n",
    )
    .unwrap();
    let imported = import_file(&path, &ImportOptions::default()).unwrap();
    assert!(imported.yaml.is_none());
    let text = findings(&imported);
    assert!(text.contains("error no-receiver"), "{text}");
    std::fs::write(
        &path,
        "remote_write:\n  - url: https://r.example.net/api/v1/write\nscrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: ['a:1']\n",
    )
    .unwrap();
    let imported = import_file(&path, &ImportOptions::default()).unwrap();
    assert!(findings(&imported).contains("error no-cluster-name"));
    let named = ImportOptions {
        cluster: Some("edge-01".into()),
        role: Some("edge".into()),
    };
    let imported = import_file(&path, &named).unwrap();
    assert!(!imported.has_errors(), "{}", imported.render_text(100));
    assert!(imported.yaml.unwrap().contains("- name: edge-01\n  role: edge\n"));
}
