//! The real peer: Debian's Prometheus scrapes a small KSM-like body through
//! `metric_relabel_configs`, one job per rule set, and its `/federate` output
//! must equal what `RelabelProgram` makes of the same series.
//!
//! Prometheus here is 2.42: its regexes do not let `.` match `\n` and it
//! wants legacy label names as `replace` targets, so the body has no newlines
//! and the rules only write legacy names (the parts where 2.x and 3.x agree).
//! Skipped, with a message, when `/usr/bin/prometheus` is absent.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use outpost_core::plan::RelabelAction as A;
use outpost_test_support::relabel::{labels, program, Rule};
use outpost_test_support::{free_port, http_get, urlencode, Prometheus, TargetServer};

/// The body of `/federate?match[]=<selector>`, if Prometheus answers 200.
fn federate(prometheus: &Prometheus, selector: &str) -> Option<String> {
    http_get(
        prometheus.port,
        &format!("/federate?match[]={}", urlencode(selector)),
    )
    .filter(|(status, _)| *status == 200)
    .map(|(_, body)| body)
}

type Series = BTreeSet<Vec<(String, String)>>;

/// Parses exposition text (as `/federate` writes it) into label sets with
/// `__name__`, skipping comments.
fn parse_exposition(text: &str) -> Series {
    let mut out = Series::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let name_end = line.find(['{', ' ']).unwrap();
        let mut set = vec![("__name__".to_string(), line[..name_end].to_string())];
        let mut rest = &line[name_end..];
        if let Some(r) = rest.strip_prefix('{') {
            rest = r;
            while !rest.starts_with('}') {
                let eq = rest.find('=').unwrap();
                let name = rest[..eq].trim_start_matches(',').to_string();
                let mut chars = rest[eq + 2..].char_indices();
                let mut value = String::new();
                let end = loop {
                    let (i, c) = chars.next().unwrap();
                    match c {
                        '\\' => match chars.next().unwrap().1 {
                            'n' => value.push('\n'),
                            other => value.push(other),
                        },
                        '"' => break eq + 2 + i + 1,
                        c => value.push(c),
                    }
                };
                set.push((name, value));
                rest = rest[end..].trim_start_matches(',');
            }
        }
        set.sort();
        out.insert(set);
    }
    out
}

fn body() -> String {
    let mut b = String::new();
    for i in 0..24 {
        let ns = format!("team-{}", i % 4);
        let pod = format!("api-{:x}-{:05x}", 100 + i % 3, 7 * i);
        let app = ["Billing", "AUTH", "search-é"][i % 3];
        let metric = [
            "kube_pod_status_phase",
            "kube_pod_container_status_restarts_total",
            "go_gc_duration_seconds",
            "go_memstats_alloc_bytes",
            "kube_pod_labels",
            "node_load1",
        ][i % 6];
        b.push_str(&format!(
            "{metric}{{namespace=\"{ns}\",pod=\"{pod}\",uid=\"u-{i}\",label_app=\"{app}\",addr=\"10.0.{i}.1:9100\"}} {i}\n"
        ));
    }
    b
}

fn rule_sets() -> Vec<Vec<Rule>> {
    vec![
        vec![Rule::new(A::Drop)
            .sources(&["__name__"])
            .regex("go_gc_.*|go_memstats_.*")],
        vec![
            Rule::new(A::Replace).target("tenant").replacement("tenant-a"),
            Rule::new(A::Replace)
                .sources(&["pod"])
                .regex("(?P<w>.+)-[0-9a-f]+-[0-9a-f]+")
                .target("workload")
                .replacement("${w}"),
            Rule::new(A::Replace)
                .sources(&["__name__"])
                .regex("(kube_pod)_.*")
                .target("${1}_copy"),
            Rule::new(A::Replace)
                .sources(&["addr"])
                .regex(r"([^:]+):(\d+)")
                .target("port")
                .replacement("p$2"),
            Rule::new(A::Replace)
                .sources(&["uid"])
                .regex("u-1(.*)")
                .target("label_app")
                .replacement("$1"),
        ],
        vec![
            Rule::new(A::HashMod)
                .sources(&["namespace", "pod"])
                .modulus(7)
                .target("shard"),
            Rule::new(A::Lowercase)
                .sources(&["label_app"])
                .target("app_lower"),
            Rule::new(A::Uppercase)
                .sources(&["namespace", "uid"])
                .target("ns_upper"),
        ],
        vec![
            Rule::new(A::LabelMap).regex("label_(.+)"),
            Rule::new(A::LabelDrop).regex("uid|label_.*"),
        ],
        vec![
            Rule::new(A::Keep).sources(&["namespace"]).regex("team-[12]"),
            Rule::new(A::Replace)
                .sources(&["uid"])
                .regex("u-(1.*)")
                .target("twin")
                .replacement("u-$1"),
            Rule::new(A::KeepEqual).sources(&["uid"]).target("twin"),
        ],
        vec![
            Rule::new(A::Replace)
                .sources(&["uid"])
                .regex("u-(2.*)")
                .target("twin")
                .replacement("u-$1"),
            Rule::new(A::DropEqual).sources(&["uid"]).target("twin"),
            Rule::new(A::LabelKeep).regex("__name__|job|instance|pod|twin"),
        ],
    ]
}

fn yaml_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn config(port: u16, sets: &[Vec<Rule>]) -> String {
    let mut c = String::from("global:\n  scrape_interval: 1s\n  scrape_timeout: 500ms\nscrape_configs:\n");
    for (j, rules) in sets.iter().enumerate() {
        c.push_str(&format!(
            "  - job_name: j{j}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n    metric_relabel_configs:\n"
        ));
        for r in rules {
            c.push_str(&format!("      - action: {}\n", r.action.name()));
            if !r.source_labels.is_empty() {
                c.push_str(&format!(
                    "        source_labels: [{}]\n",
                    r.source_labels.join(", ")
                ));
            }
            c.push_str(&format!("        separator: {}\n", yaml_quote(&r.separator)));
            if !matches!(
                r.action,
                A::KeepEqual | A::DropEqual | A::HashMod | A::Lowercase | A::Uppercase
            ) {
                c.push_str(&format!("        regex: {}\n", yaml_quote(&r.regex)));
            }
            if r.action == A::HashMod {
                c.push_str(&format!("        modulus: {}\n", r.modulus));
            }
            if !r.target_label.is_empty() {
                c.push_str(&format!(
                    "        target_label: {}\n",
                    yaml_quote(&r.target_label)
                ));
            }
            if matches!(r.action, A::Replace | A::LabelMap) {
                c.push_str(&format!("        replacement: {}\n", yaml_quote(&r.replacement)));
            }
        }
    }
    c
}

#[test]
fn prometheus_metric_relabel_agrees_with_ours() {
    let body = body();
    let server = TargetServer::start(body.clone());
    let sets = rule_sets();
    let dir = tempfile::tempdir().unwrap();
    let Some(prometheus) =
        Prometheus::start_with_config(dir.path(), free_port(), &config(server.port, &sets))
    else {
        return;
    };

    // Wait until every job has completed a scrape.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = federate(&prometheus, "{__name__=\"up\"}")
            .map(|text| {
                parse_exposition(&text)
                    .iter()
                    .filter(|s| s.iter().any(|(n, _)| n == "job"))
                    .count()
            })
            .unwrap_or(0);
        if ready == sets.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not scrape all jobs within 60s; its log:\n{}",
            prometheus.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    let input = parse_exposition(&body);
    let instance = format!("127.0.0.1:{}", server.port);
    for (j, rules) in sets.iter().enumerate() {
        let job = format!("j{j}");
        let mut ours = Series::new();
        let mut p = program(rules).unwrap();
        for series in &input {
            let mut pairs: Vec<(&str, &str)> = series.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            pairs.push(("instance", &instance));
            pairs.push(("job", &job));
            let mut l = labels(&pairs);
            if p.apply(&mut l) {
                let mut set: Vec<(String, String)> = l.iter().map(|(n, v)| (n.into(), v.into())).collect();
                set.sort();
                ours.insert(set);
            }
        }
        let selector = format!("{{job=\"{job}\",__name__!~\"up|scrape_.*\"}}");
        let theirs = parse_exposition(&federate(&prometheus, &selector).unwrap());
        assert!(!ours.is_empty(), "job {job}: rule set keeps something");
        assert_eq!(ours, theirs, "job {job}: rules {rules:?}");
        eprintln!(
            "job {job}: {} of {} series agree with Prometheus",
            ours.len(),
            input.len()
        );
    }
}
