//! With the limits `outpostc` writes by default, targets shaped like
//! kube-state-metrics with annotations and labels allow-listed are ingested
//! as Prometheus ingests them (issue 14, section 4).
//!
//! The plan is the committed golden cluster plan (its job has the default
//! label limits and `body_size`), pointed at a real Prometheus 2.42 and at
//! three targets: one exposing label values of 10 KiB and 300 KiB, one a
//! series with 100 labels, and one a series whose line is longer than the
//! documented bound (a sixteenth of `body_size`), which fails by name and
//! costs the others nothing.

use std::time::Duration;

use outpost_test_support::*;

/// A label value of `len` bytes that no step could shorten unseen.
fn long_value(len: usize) -> String {
    (0..len)
        .map(|i| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789-/."[i * 7 % 39]))
        .collect()
}

fn annotations_body(_: u64) -> String {
    format!(
        "# TYPE kube_pod_annotations gauge\n\
         kube_pod_annotations{{namespace=\"shop\",pod=\"web-0\",annotation_config=\"{}\"}} 1\n\
         kube_pod_annotations{{namespace=\"shop\",pod=\"web-1\",annotation_config=\"{}\"}} 1\n",
        long_value(10 * 1024),
        long_value(300 * 1024)
    )
}

fn wide_body(_: u64) -> String {
    let labels: Vec<String> = (0..100).map(|i| format!("label_k{i}=\"v{i}\"")).collect();
    format!(
        "# TYPE kube_pod_labels gauge\nkube_pod_labels{{{}}} 1\n",
        labels.join(",")
    )
}

fn too_long_body(_: u64) -> String {
    // 1 MiB: longer than 640 KiB, a sixteenth of the default 10 MiB body.
    format!(
        "# TYPE kube_pod_annotations gauge\n\
         kube_pod_annotations{{namespace=\"shop\",pod=\"huge\",annotation_x=\"{}\"}} 1\n",
        long_value(1 << 20)
    )
}

/// The label set of every series `query` returns, as `name -> value`.
fn series_labels(prom: &Prometheus, query: &str) -> Vec<Vec<(String, String)>> {
    let body = prom.query(query);
    body.split("\"metric\":{")
        .skip(1)
        .map(|m| {
            let m = m.split('}').next().unwrap();
            m.split("\",\"")
                .map(|pair| {
                    let (n, v) = pair.split_once("\":\"").unwrap();
                    (n.trim_matches('"').to_string(), v.trim_matches('"').to_string())
                })
                .collect()
        })
        .collect()
}

#[test]
fn default_limits_ingest_long_label_values_and_wide_series() {
    let dir = tempfile::tempdir().unwrap();
    let Some(prom) = Prometheus::start(&dir.path().join("prom")) else {
        return;
    };
    let annotations = CountingTarget::start(annotations_body);
    let wide = CountingTarget::start(wide_body);
    let too_long = CountingTarget::start(too_long_body);

    let mut plan = golden_plan("cluster-03/cluster.plan");
    to_loopback(&mut plan, &prom.write_url(), &dir.path().join("wal"));
    assert_eq!(plan.scrape_jobs.len(), 1, "{}", describe(&plan));
    let targets = [annotations.address(), wide.address(), too_long.address()];
    plan.scrape_jobs[0].targets = targets.iter().map(|t| intern(&mut plan, t)).collect();
    let limits = plan.scrape_jobs[0].limits;
    eprintln!(
        "default limits: {limits:?}, series line bound {} bytes",
        limits.max_line_bytes()
    );
    let plan_path = write_plan(dir.path(), "plan.bin", &plan);
    let port = free_port();
    let mut agent = outpost!().start(&plan_path, port, "limits-node", &dir.path().join("outpost.log"));

    let query = "kube_pod_annotations{namespace=\"shop\"}";
    let annotated = wait_for("annotated series in Prometheus", Duration::from_secs(30), || {
        let found = series_labels(&prom, query);
        (found.len() == 2).then_some(found)
    });
    let wide_series = wait_for("the wide series in Prometheus", Duration::from_secs(30), || {
        series_labels(&prom, "kube_pod_labels").pop()
    });
    let (_, metrics) = http_get(port, "/metrics").expect("agent /metrics");
    agent.terminate(Duration::from_secs(10));

    let external = [
        ("cluster", "cluster-03"),
        ("job", "kube-state-metrics"),
        ("location", "edge-site-1"),
        ("role", "edge"),
    ];
    for (pod, len) in [("web-0", 10 * 1024), ("web-1", 300 * 1024)] {
        let labels = annotated
            .iter()
            .find(|l| l.contains(&("pod".to_string(), pod.to_string())))
            .unwrap_or_else(|| panic!("{pod} missing"));
        let mut want: Vec<(String, String)> = [
            ("__name__", "kube_pod_annotations"),
            ("instance", targets[0].as_str()),
            ("namespace", "shop"),
            ("pod", pod),
        ]
        .iter()
        .chain(&external)
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        want.push(("annotation_config".into(), long_value(len)));
        want.sort();
        let mut got = labels.clone();
        got.sort();
        assert_eq!(got, want, "{pod}: exact labels, the {len}-byte value whole");
    }
    let mut want: Vec<(String, String)> = (0..100)
        .map(|i| (format!("label_k{i}"), format!("v{i}")))
        .chain(
            [("__name__", "kube_pod_labels"), ("instance", targets[1].as_str())]
                .iter()
                .chain(&external)
                .map(|(n, v)| (n.to_string(), v.to_string())),
        )
        .collect();
    want.sort();
    let mut got = wide_series;
    got.sort();
    assert_eq!(got.len(), 106);
    assert_eq!(got, want, "all 100 labels, exact");

    // The line over the bound fails its own target by name, nothing else.
    let too_long_failures = metric_sum(
        &metrics,
        "outpost_target_scrape_failures_total",
        &[
            &format!("instance=\"{}\"", targets[2]),
            "reason=\"line_too_long\"",
        ],
    );
    assert!(too_long_failures >= 1.0, "{metrics}");
    for t in &targets[..2] {
        let failed = metric_sum(
            &metrics,
            "outpost_target_scrape_failures_total",
            &[&format!("instance=\"{t}\"")],
        );
        assert_eq!(failed, 0.0, "{t}");
    }
    assert!(series_labels(&prom, "kube_pod_annotations{pod=\"huge\"}").is_empty());
}
