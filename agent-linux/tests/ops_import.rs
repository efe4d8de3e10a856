//! `outpostc import` against the Prometheus agent on the same config: a
//! prometheus.yml with static targets, target and metric relabeling, static
//! labels, two jobs and write relabeling (it passes `promtool check config`)
//! is run by Prometheus 2.42 in agent mode, and imported, compiled and run
//! by outpost. Each writes to its own Prometheus 2.42 receiver; the series
//! queried back (names, labels and values) must be the same.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use outpost_compiler::import::{import_file, ImportOptions};
use outpost_compiler::verify::{ApiOptions, QueryApi};
use outpost_test_support::*;

const APP_BODY: &str = "# TYPE http_requests_total counter\n\
http_requests_total{path=\"/api/orders\",code=\"200\"} 1027\n\
http_requests_total{path=\"/api/users\",code=\"500\"} 3\n\
# TYPE queue_depth gauge\n\
queue_depth 17\n\
# TYPE debug_internal_state gauge\n\
debug_internal_state 1\n\
# TYPE go_gc_duration_seconds summary\n\
go_gc_duration_seconds{quantile=\"0.5\"} 0.0001\n\
go_gc_duration_seconds_sum 0.01\n\
go_gc_duration_seconds_count 12\n";

fn config(a: &str, b: &str, receiver: &str) -> String {
    format!(
        "global:
  scrape_interval: 1s
  scrape_timeout: 800ms
  external_labels:
    cluster: edge-09
    role: edge
    site: s1
scrape_configs:
  - job_name: app
    sample_limit: 1000
    label_limit: 30
    static_configs:
      - targets: ['{a}', '{b}']
        labels:
          tier: web
    relabel_configs:
      - target_label: env
        replacement: prod
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: debug_.*
        action: drop
      - source_labels: [path]
        regex: /api/(.*)
        target_label: route
        replacement: $1
  - job_name: second
    metrics_path: /other
    honor_labels: true
    static_configs:
      - targets: ['{b}']
remote_write:
  - url: {receiver}
    queue_config:
      batch_send_deadline: 1s
      max_shards: 1
    write_relabel_configs:
      - source_labels: [__name__]
        regex: go_gc_.*
        action: drop
"
    )
}

/// Every series of the two jobs at a receiver, as label sets with their
/// values, read with verify's query client.
fn series(prom: &Prometheus) -> BTreeMap<BTreeMap<String, String>, String> {
    let api = QueryApi::new(&ApiOptions {
        url: format!("http://127.0.0.1:{}", prom.port),
        ..ApiOptions::default()
    })
    .unwrap();
    let vector = api.instant(None, "{job=~\"app|second\"}").unwrap();
    vector
        .series
        .into_iter()
        // Scrape timings and series-added counts differ between any two scrapers.
        .filter(|s| {
            !matches!(
                s.label("__name__"),
                "scrape_duration_seconds" | "scrape_series_added"
            )
        })
        .map(|s| (s.labels, s.value.to_string()))
        .collect()
}

#[test]
fn imported_spec_ships_what_the_prometheus_agent_ships() {
    let dir = tempfile::tempdir().unwrap();
    let Some(for_prometheus) = Prometheus::start(&dir.path().join("receiver-p")) else {
        return;
    };
    let Some(for_outpost) = Prometheus::start(&dir.path().join("receiver-o")) else {
        return;
    };
    let a = TargetServer::start(APP_BODY.to_string());
    let b = TargetServer::start(APP_BODY.to_string());
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(
        &config_path,
        config(&a.address(), &b.address(), &for_prometheus.write_url()),
    )
    .unwrap();
    let promtool = Command::new("/usr/bin/promtool")
        .args(["check", "config"])
        .arg(&config_path)
        .output()
        .unwrap();
    assert!(
        promtool.status.success(),
        "{}",
        String::from_utf8_lossy(&promtool.stdout)
    );

    let agent_port = free_port();
    let _prometheus_agent = ChildGuard::spawn(
        Command::new(PROMETHEUS)
            .arg("--enable-feature=agent")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.agent.path={}",
                dir.path().join("agent-wal").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{agent_port}"))
            .arg("--log.level=warn"),
    );

    let imported = import_file(&config_path, &ImportOptions::default()).unwrap();
    assert!(!imported.has_errors(), "{}", imported.render_text(100));
    assert_eq!(
        imported.counts().1,
        0,
        "nothing to warn about: {}",
        imported.render_text(100)
    );
    let analysis = outpost_compiler::analyze("imported.yaml", imported.yaml.as_ref().unwrap());
    assert!(!analysis.has_errors(), "{}", analysis.render_text(100));
    assert_eq!(analysis.plans.len(), 1);
    let mut plan = analysis.plans[0].plan.clone();
    to_loopback(
        &mut plan,
        &for_outpost.write_url(),
        &dir.path().join("outpost-wal"),
    );
    let plan_path = write_plan(dir.path(), "imported.plan", &plan);
    let _outpost = outpost!().start(
        &plan_path,
        free_port(),
        "outpost-cluster-0",
        &dir.path().join("outpost.log"),
    );

    // Both have scraped both targets of both jobs several times, and the values are constant.
    let ready = |prom: &Prometheus| {
        let s = series(prom);
        let ups = s
            .keys()
            .filter(|l| l.get("__name__").map(String::as_str) == Some("up"))
            .count();
        (ups == 3).then_some(s)
    };
    let from_prometheus = wait_for("the Prometheus agent's series", Duration::from_secs(40), || {
        ready(&for_prometheus)
    });
    let from_outpost = wait_for("outpost's series", Duration::from_secs(40), || {
        ready(&for_outpost)
    });
    let names: std::collections::BTreeSet<&str> = from_prometheus
        .keys()
        .filter_map(|l| l.get("__name__").map(String::as_str))
        .collect();
    assert!(
        names.contains("http_requests_total") && names.contains("queue_depth"),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.starts_with("go_gc_")),
        "write relabeling: {names:?}"
    );
    let debug_in_app = from_prometheus.keys().any(|l| {
        l.get("job").map(String::as_str) == Some("app")
            && l.get("__name__").is_some_and(|n| n.starts_with("debug_"))
    });
    assert!(!debug_in_app, "metric relabeling of job app");
    let routed = from_prometheus.keys().any(|l| {
        l.get("route").map(String::as_str) == Some("orders")
            && l.get("env").map(String::as_str) == Some("prod")
    });
    assert!(
        routed,
        "metric and target relabeling took effect: {from_prometheus:#?}"
    );
    // app: 2 targets x (2 request series, queue_depth, up, 2 scrape_samples_*);
    // second: the same plus debug_internal_state, on 1 target.
    assert_eq!(from_prometheus.len(), 19, "{from_prometheus:#?}");
    assert_eq!(
        from_outpost, from_prometheus,
        "outpost (left) and the Prometheus agent (right) ship the same series and values"
    );
    let log = std::fs::read_to_string(dir.path().join("outpost.log")).unwrap_or_default();
    assert!(!log.contains("level=error"), "{log}");
}
