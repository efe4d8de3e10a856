//! The `outpostc` binary: exit codes, written files, explain and budget.

use std::path::PathBuf;
use std::process::{Command, Output};

use outpost_test_support::{free_port, repo_path};

fn outpostc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_outpostc"))
        .args(args)
        .env("COLUMNS", "100")
        .output()
        .unwrap()
}

fn repo_file(rel: &str) -> String {
    repo_path(rel).display().to_string()
}

#[test]
fn exit_codes_are_0_1_2() {
    assert_eq!(
        outpostc(&["check", &repo_file("examples/fleet.yaml")])
            .status
            .code(),
        Some(0)
    );
    let broken = repo_file("compiler/tests/broken/bad-duration.yaml");
    let out = outpostc(&["check", &broken]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad-duration.yaml:5:20"), "{stderr}");
    assert_eq!(
        outpostc(&["check", "/nonexistent/fleet.yaml"]).status.code(),
        Some(2)
    );
    assert_eq!(outpostc(&["check"]).status.code(), Some(2));
    assert_eq!(outpostc(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn warnings_fail_only_when_denied() {
    let spec = repo_file("compiler/tests/broken/plaintext-receiver.yaml");
    assert_eq!(outpostc(&["check", &spec]).status.code(), Some(0));
    assert_eq!(
        outpostc(&["check", "--deny-warnings", &spec]).status.code(),
        Some(1)
    );
}

#[test]
fn json_diagnostics_on_stdout() {
    let out = outpostc(&[
        "check",
        "--format",
        "json",
        &repo_file("compiler/tests/broken/unknown-key.yaml"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = &v["diagnostics"][0];
    assert_eq!(d["code"], "spec-shape");
    assert_eq!((d["line"].as_u64(), d["column"].as_u64()), (Some(4), Some(3)));
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn compile_writes_plans_that_explain_and_match_the_golden_ones() {
    let dir = TempDir(tempfile::tempdir().unwrap().keep());
    let out_dir = dir.0.display().to_string();
    let out = outpostc(&["compile", &repo_file("examples/fleet.yaml"), "-o", &out_dir]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan = dir.0.join("cluster-02/tenant-b/cluster.plan");
    let golden = std::fs::read(repo_file("examples/plans/cluster-02/tenant-b/cluster.plan")).unwrap();
    assert_eq!(std::fs::read(&plan).unwrap(), golden);

    let text = outpostc(&["explain", &plan.display().to_string()]);
    assert_eq!(text.status.code(), Some(0));
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("tenant header: THANOS-TENANT: tenant-b"), "{text}");
    assert!(text.contains(&format!("plan: {} bytes", golden.len())), "{text}");
    assert!(
        text.contains("worst-case memory:") && text.contains("queue"),
        "{text}"
    );

    let json = outpostc(&["explain", "--format", "json", &plan.display().to_string()]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["agent"]["tenant"], "tenant-b");
    assert_eq!(v["plan_bytes"].as_u64(), Some(golden.len() as u64));
    let by_buffer = v["worst_case_memory"]["by_buffer"].as_object().unwrap();
    let sum: u64 = by_buffer.values().map(|b| b.as_u64().unwrap()).sum();
    assert_eq!(Some(sum), v["worst_case_memory"]["total"].as_u64());

    // A damaged plan is refused with a reason, not a panic.
    let mut bad = golden.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let bad_path = dir.0.join("bad.plan");
    std::fs::write(&bad_path, bad).unwrap();
    let out = outpostc(&["explain", &bad_path.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("checksum"));
}

#[test]
fn budget_sits_beside_the_seed() {
    let out = outpostc(&["budget", "--format", "json", &repo_file("examples/fleet.yaml")]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v.as_array().unwrap();
    let row = |c: &str| rows.iter().find(|r| r["cluster"] == c).unwrap();
    let mib = 1u64 << 20;
    assert_eq!(row("cluster-03")["seed_cpu_request_millis"], 350);
    assert_eq!(
        row("cluster-03")["seed_memory_request_bytes"].as_u64(),
        Some(384 * mib)
    );
    assert_eq!(row("cluster-02")["seed_cpu_request_millis"], 650);
    assert_eq!(
        row("cluster-02")["seed_memory_request_bytes"].as_u64(),
        Some(704 * mib)
    );
    assert_eq!(row("cluster-02")["agents"], 4);
    for r in rows {
        assert!(r["worst_case_bytes"].as_u64() < r["memory_limit_bytes"].as_u64());
    }
    let text = outpostc(&["budget", &repo_file("examples/fleet.yaml")]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("350m/384Mi") && text.contains("650m/704Mi"),
        "{text}"
    );
}

#[test]
fn verify_exit_codes() {
    let fleet = repo_file("examples/fleet.yaml");
    // Nothing listens on a port just released: the API cannot be asked.
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let out = outpostc(&["verify", &fleet, "--query-url", &url]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: query API: query `up{cluster=~"),
        "{stderr}"
    );
    let out = outpostc(&["verify", &fleet, "--query-url", &url, "--window", "5 minutes"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--window"));
    let out = outpostc(&[
        "verify",
        &fleet,
        "--query-url",
        &url,
        "--ca-file",
        "/nonexistent/ca.crt",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/ca.crt"));
    // A broken spec is reported as `check` does, before any query.
    let broken = repo_file("compiler/tests/broken/bad-duration.yaml");
    let out = outpostc(&["verify", &broken, "--query-url", &url, "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["errors"], 1);
}

#[test]
fn import_writes_a_spec_that_check_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("fleet.yaml");
    let config = repo_file("compiler/tests/import/kube-prometheus-stack.yaml");
    let out = outpostc(&["import", &config, "-o", spec.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("kube-prometheus-stack.yaml:59:1"), "{stderr}");
    assert!(stderr.ends_with("0 error(s), 11 warning(s)\n"), "{stderr}");
    assert_eq!(
        outpostc(&["check", spec.to_str().unwrap()]).status.code(),
        Some(0)
    );
    assert_eq!(
        outpostc(&["import", "--deny-warnings", &config]).status.code(),
        Some(1)
    );
    let out = outpostc(&["import", "--format", "json", &config]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["warnings"], 11);
    assert!(json["spec"].as_str().unwrap().contains("- name: edge-11\n"));
    assert_eq!(
        outpostc(&["import", "/nonexistent/prometheus.yml"]).status.code(),
        Some(2)
    );
}
