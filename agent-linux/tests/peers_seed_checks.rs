//! The seed's own verification steps, run unchanged against outpost: the
//! agent's runtimeinfo endpoint, the WAL directory, and the central PromQL
//! queries on the receiving Prometheus 2.42. Two agents run from the golden
//! node plans of cluster-03 and cluster-02/tenant-a (receiver and WAL dir
//! rewritten to loopback, 1 s intervals; the kubelet/cAdvisor jobs are
//! removed because no kubelet runs here).
//!
//! The node role's WAL defaults to spill mode, which writes nothing while
//! the receiver takes every batch; the seed's step 3 (segment files with
//! content) describes a WAL that appends everything. So cluster-03 runs
//! its golden plan as it is and its WAL directory must hold no segment,
//! and tenant-a runs with `append` mode, where step 3 holds as the seed
//! wrote it.
//!
//! CI runs this test a second and third time against other builds of the
//! agent (`OUTPOST_TEST_COMMAND`, see `outpost_test_support::Outpost::command`): the
//! aarch64 binary under qemu-user and the container image under runc, with
//! `OUTPOST_TEST_ARCH` naming the architecture the agent must report.

use std::time::Duration;

use outpost_core::plan::WalMode;
use outpost_test_support::*;

fn result_count(body: &str) -> usize {
    assert!(body.starts_with("{\"status\":\"success\""), "{body}");
    body.matches("\"metric\":").count()
}

#[test]
fn seed_verification_steps_pass_against_outpost() {
    let dir = tempfile::tempdir().unwrap();
    let Some(prom) = Prometheus::start(&dir.path().join("prom")) else {
        return;
    };
    let mut agents = Vec::new();
    for (name, rel) in [
        ("cluster-03", "cluster-03/node.plan"),
        ("tenant-a", "cluster-02/tenant-a/node.plan"),
    ] {
        let mut plan = golden_plan(rel);
        let wal = dir.path().join(format!("wal-{name}"));
        to_loopback(&mut plan, &prom.write_url(), &wal);
        plan.scrape_jobs.clear();
        assert!(matches!(plan.wal.mode, WalMode::Spill(_)), "{rel}");
        if name == "tenant-a" {
            plan.wal.mode = WalMode::Append;
        }
        let path = write_plan(dir.path(), &format!("{name}.plan"), &plan);
        let listen = free_port();
        let log = dir.path().join(format!("{name}.log"));
        agents.push((
            outpost!().start(&path, listen, &format!("{name}-node"), &log),
            listen,
            wal,
        ));
    }

    // Step 2 of the seed: runtimeinfo answers with status success.
    for (_, listen, _) in &agents {
        let info = wait_for("runtimeinfo", Duration::from_secs(20), || {
            http_get(*listen, "/api/v1/status/runtimeinfo").filter(|(s, _)| *s == 200)
        })
        .1;
        assert!(info.starts_with("{\"status\":\"success\",\"data\":{"), "{info}");
    }
    // The agent that answers is the build under test.
    let arch = std::env::var("OUTPOST_TEST_ARCH").unwrap_or_else(|_| std::env::consts::ARCH.to_string());
    for (_, listen, _) in &agents {
        let (_, metrics) = http_get(*listen, "/metrics").expect("agent /metrics");
        let build = format!("outpost_build_info{{arch=\"{arch}\",");
        assert!(metrics.contains(&build), "no {build} in /metrics:\n{metrics}");
    }

    // Step 4: the central queries, as the seed writes them.
    for q in [
        "up{cluster=\"cluster-03\"}",
        "up{cluster=\"cluster-02\",tenant=\"tenant-a\"}",
    ] {
        let body = wait_for(q, Duration::from_secs(30), || {
            let body = prom.query(q);
            (result_count(&body) > 0).then_some(body)
        });
        assert!(body.contains("\"job\":\"outpost\""), "{q}: {body}");
        assert!(body.contains(",\"1\"]"), "{q} has an up=1 series: {body}");
    }
    // Each agent's self-scraped counter must reach the receiver at least twice for rate().
    for q in [
        "rate(prometheus_remote_storage_succeeded_samples_total[5m])",
        "rate(prometheus_remote_storage_failed_samples_total[5m])",
    ] {
        let body = wait_for(q, Duration::from_secs(30), || {
            let body = prom.query(q);
            (result_count(&body) >= 2).then_some(body)
        });
        assert!(body.contains("\"cluster\":\"cluster-03\""), "{q}: {body}");
        assert!(body.contains("\"tenant\":\"tenant-a\""), "{q}: {body}");
    }
    let positive = prom.query("rate(prometheus_remote_storage_succeeded_samples_total[5m]) > 0");
    assert_eq!(
        result_count(&positive),
        2,
        "both agents deliver samples: {positive}"
    );
    let failing = prom.query("rate(prometheus_remote_storage_failed_samples_total[5m]) > 0");
    assert_eq!(
        result_count(&failing),
        0,
        "nothing fails against a healthy receiver: {failing}"
    );

    // Step 3: the WAL directory holds segment files with content (append mode), none at all
    // (spill mode with a healthy receiver).
    for (agent, _, wal) in agents.iter_mut() {
        let spill = wal.ends_with("wal-cluster-03");
        assert_eq!(
            agent.terminate(Duration::from_secs(5)).and_then(|s| s.code()),
            Some(0)
        );
        let segments: Vec<(String, u64)> = std::fs::read_dir(&*wal)
            .unwrap_or_else(|e| panic!("WAL dir {}: {e}", wal.display()))
            .filter_map(|e| e.ok())
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().unwrap().len(),
                )
            })
            .filter(|(n, _)| n.ends_with(".wal"))
            .collect();
        if spill {
            assert!(
                wal.join("lock").exists(),
                "the WAL directory {} is in use",
                wal.display()
            );
            assert!(segments.is_empty(), "spill mode wrote {segments:?}");
            continue;
        }
        assert!(!segments.is_empty(), "no segments in {}", wal.display());
        assert!(segments.iter().any(|(_, len)| *len > 0), "{segments:?}");
    }
}
