//! `outpostc manifests SPEC -o DIR` end to end: the directories it writes are
//! the committed golden ones, twice the same, and a spec with errors writes
//! nothing.

use std::path::Path;
use std::process::Command;

use outpost_test_support::{golden_tree, repo_path};

fn outpostc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_outpostc"))
}

fn run_manifests(spec: &Path, dir: &Path) -> std::process::Output {
    outpostc()
        .arg("manifests")
        .arg(spec)
        .arg("-o")
        .arg(dir)
        .output()
        .unwrap()
}

#[test]
fn manifests_command_writes_the_golden_directories_the_same_way_twice() {
    let spec = repo_path("examples/fleet.yaml");
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    for dir in [first.path(), second.path()] {
        let out = run_manifests(&spec, dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains("wrote 16 files for 3 clusters"), "{stderr}");
    }
    let written = golden_tree(first.path());
    assert_eq!(written.len(), 16);
    assert_eq!(written, golden_tree(second.path()));
    let golden = golden_tree(&repo_path("examples/manifests"));
    assert_eq!(
        written.keys().collect::<Vec<_>>(),
        golden.keys().collect::<Vec<_>>()
    );
    for (path, bytes) in &written {
        assert!(
            golden[path] == *bytes,
            "{} differs from examples/manifests",
            path.display()
        );
    }
}

#[test]
fn manifests_command_refuses_a_spec_with_errors_and_writes_nothing() {
    let text = std::fs::read_to_string(repo_path("examples/fleet.yaml"))
        .unwrap()
        .replace("scrape_interval: 30s", "scrape_interval: 30 seconds");
    let scratch = tempfile::tempdir().unwrap();
    let spec = scratch.path().join("fleet.yaml");
    std::fs::write(&spec, text).unwrap();
    let out_dir = scratch.path().join("out");
    let out = run_manifests(&spec, &out_dir);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("30 seconds"));
    assert!(!out_dir.exists());
}

#[test]
fn manifests_command_pins_the_image_from_the_digest_file_the_build_writes() {
    let scratch = tempfile::tempdir().unwrap();
    let digest = format!("sha256:{}", "c0ffee00".repeat(8));
    let digest_file = scratch.path().join("image.digest");
    std::fs::write(&digest_file, format!("{digest}\n")).unwrap();
    let out_dir = scratch.path().join("out");
    let out = outpostc()
        .arg("manifests")
        .arg(repo_path("examples/fleet.yaml"))
        .arg("-o")
        .arg(&out_dir)
        .args(["--image", "registry.example.net/outpost:0.2.0", "--image-digest"])
        .arg(&digest_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let written = std::fs::read_to_string(out_dir.join("cluster-03/outpost-monitoring.yaml")).unwrap();
    let pinned = format!("image: registry.example.net/outpost:0.2.0@{digest}");
    assert_eq!(written.matches(&pinned).count(), 3, "{written}");
    assert!(!written.contains("ghcr.io/outpost"));

    // A name without a digest is refused, and nothing is written.
    let refused = scratch.path().join("refused");
    let out = outpostc()
        .arg("manifests")
        .arg(repo_path("examples/fleet.yaml"))
        .arg("-o")
        .arg(&refused)
        .args(["--image", "registry.example.net/outpost:0.2.0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is not pinned by digest"), "{stderr}");
    assert!(stderr.contains("target/image.digest"), "{stderr}");
    assert!(!refused.exists());
}
