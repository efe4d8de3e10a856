//! outpost's remote write against receivers other than Prometheus:
//! VictoriaMetrics 1.79 queried back sample-exact, and a loopback receiver
//! written here that checks the remote-write 1.0 MUSTs one by one and
//! answers 5xx, 429 and 400 to see the agent retry what is retryable and
//! drop what is not.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use outpost_test_support::*;

const ROOM: &str = "Küche \"süd\" ☃";

/// Values chosen so a decimal or float32 shortcut in any hop would show:
/// 2^53, a negative fraction, a huge exponent, zero and a plain fraction.
fn target_body() -> String {
    format!(
        "# TYPE peer_bytes_total counter\n\
         peer_bytes_total{{path=\"/a\"}} 9007199254740992\n\
         # TYPE peer_temperature_celsius gauge\n\
         peer_temperature_celsius{{room=\"{}\"}} -273.15\n\
         # TYPE peer_big gauge\n\
         peer_big 1.5e+300\n\
         # TYPE peer_zero gauge\n\
         peer_zero 0\n\
         # TYPE peer_ratio gauge\n\
         peer_ratio 0.125\n",
        ROOM.replace('"', "\\\"")
    )
}

/// Metric name, its own labels, its value.
type Expected = (&'static str, Vec<(&'static str, &'static str)>, f64);

fn expected_values() -> Vec<Expected> {
    vec![
        ("peer_bytes_total", vec![("path", "/a")], 9007199254740992.0),
        ("peer_temperature_celsius", vec![("room", ROOM)], -273.15),
        ("peer_big", vec![], 1.5e300),
        ("peer_zero", vec![], 0.0),
        ("peer_ratio", vec![], 0.125),
    ]
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

// ------------------------------------------------------------ a small JSON reader for VM's answers

#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

fn parse_json(text: &str) -> Json {
    let bytes: Vec<char> = text.chars().collect();
    let mut at = 0;
    let v = json_value(&bytes, &mut at);
    skip_ws(&bytes, &mut at);
    assert_eq!(at, bytes.len(), "trailing text after JSON: {text}");
    v
}

fn skip_ws(s: &[char], at: &mut usize) {
    while *at < s.len() && s[*at].is_whitespace() {
        *at += 1;
    }
}

fn json_value(s: &[char], at: &mut usize) -> Json {
    skip_ws(s, at);
    match s[*at] {
        '{' => {
            *at += 1;
            let mut fields = Vec::new();
            loop {
                skip_ws(s, at);
                if s[*at] == '}' {
                    *at += 1;
                    return Json::Obj(fields);
                }
                let Json::Str(key) = json_value(s, at) else {
                    panic!("object key at {at}")
                };
                skip_ws(s, at);
                assert_eq!(s[*at], ':');
                *at += 1;
                fields.push((key, json_value(s, at)));
                skip_ws(s, at);
                if s[*at] == ',' {
                    *at += 1;
                }
            }
        }
        '[' => {
            *at += 1;
            let mut items = Vec::new();
            loop {
                skip_ws(s, at);
                if s[*at] == ']' {
                    *at += 1;
                    return Json::Arr(items);
                }
                items.push(json_value(s, at));
                skip_ws(s, at);
                if s[*at] == ',' {
                    *at += 1;
                }
            }
        }
        '"' => {
            *at += 1;
            let mut out = String::new();
            loop {
                let c = s[*at];
                *at += 1;
                match c {
                    '"' => return Json::Str(out),
                    '\\' => {
                        let e = s[*at];
                        *at += 1;
                        match e {
                            'n' => out.push('\n'),
                            't' => out.push('\t'),
                            'r' => out.push('\r'),
                            'b' => out.push('\u{8}'),
                            'f' => out.push('\u{c}'),
                            'u' => {
                                let hex: String = s[*at..*at + 4].iter().collect();
                                *at += 4;
                                let mut code = u32::from_str_radix(&hex, 16).unwrap();
                                if (0xD800..0xDC00).contains(&code) {
                                    let low: String = s[*at + 2..*at + 6].iter().collect();
                                    *at += 6;
                                    let low = u32::from_str_radix(&low, 16).unwrap();
                                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                                }
                                out.push(char::from_u32(code).unwrap());
                            }
                            other => out.push(other),
                        }
                    }
                    c => out.push(c),
                }
            }
        }
        't' => {
            *at += 4;
            Json::Bool(true)
        }
        'f' => {
            *at += 5;
            Json::Bool(false)
        }
        'n' => {
            *at += 4;
            Json::Null
        }
        _ => {
            let start = *at;
            while *at < s.len() && matches!(s[*at], '0'..='9' | '-' | '+' | '.' | 'e' | 'E') {
                *at += 1;
            }
            let text: String = s[start..*at].iter().collect();
            Json::Num(text.parse().unwrap_or_else(|_| panic!("number {text:?}")))
        }
    }
}

/// One series of VM's /api/v1/export: labels, values, timestamps.
struct Exported {
    labels: BTreeMap<String, String>,
    values: Vec<f64>,
    timestamps: Vec<i64>,
}

fn vm_export(vm: &VictoriaMetrics, selector: &str) -> Vec<Exported> {
    let (status, body) = http_get(
        vm.port,
        &format!("/api/v1/export?match[]={}", urlencode(selector)),
    )
    .expect("victoria-metrics answers export");
    assert_eq!(status, 200, "{body}");
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let j = parse_json(line);
            let labels = match j.get("metric") {
                Some(Json::Obj(f)) => f
                    .iter()
                    .map(|(k, v)| match v {
                        Json::Str(s) => (k.clone(), s.clone()),
                        other => panic!("label {k} is {other:?}"),
                    })
                    .collect(),
                other => panic!("no metric in {line}: {other:?}"),
            };
            let nums = |key: &str| -> Vec<f64> {
                match j.get(key) {
                    Some(Json::Arr(a)) => a
                        .iter()
                        .map(|v| match v {
                            Json::Num(n) => *n,
                            other => panic!("{key} holds {other:?}"),
                        })
                        .collect(),
                    other => panic!("no {key} in {line}: {other:?}"),
                }
            };
            Exported {
                labels,
                values: nums("values"),
                timestamps: nums("timestamps").into_iter().map(|t| t as i64).collect(),
            }
        })
        .collect()
}

#[test]
fn victoria_metrics_receives_exact_series_values_and_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let Some(vm) = VictoriaMetrics::start(dir.path()) else {
        return;
    };
    let target = TargetServer::start(target_body());
    let external = [
        ("cluster", "cluster-03"),
        ("location", "edge-site-1"),
        ("role", "edge"),
    ];
    let plan = PlanBuilder::new()
        .receiver_url(&vm.write_url())
        .external_labels(&external)
        .wal_dir(&dir.path().join("wal"))
        .scrape_job("testapp", &[target.address()])
        .build();
    let plan = write_plan(dir.path(), "vm.plan", &plan);
    let started_ms = now_ms();
    let listen = free_port();
    let mut agent = outpost!().start(&plan, listen, "vm-node", &dir.path().join("outpost.log"));

    // At least three scrapes of every series, exported raw.
    let selector = "{__name__=~\"peer_.*|up\",job=\"testapp\"}";
    let exported = wait_for(
        "five peer_ series and up with 3 samples each in VM",
        Duration::from_secs(40),
        || {
            let e = vm_export(&vm, selector);
            (e.len() == 6 && e.iter().all(|s| s.values.len() >= 3)).then_some(e)
        },
    );
    assert_eq!(
        agent.terminate(Duration::from_secs(5)).and_then(|s| s.code()),
        Some(0)
    );
    let stopped_ms = now_ms();

    let instance = target.address();
    let mut by_name: HashMap<String, &Exported> = HashMap::new();
    for s in &exported {
        by_name.insert(s.labels["__name__"].clone(), s);
    }
    let base = |name: &str, own: &[(&str, &str)]| -> BTreeMap<String, String> {
        let mut m: BTreeMap<String, String> = external
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        m.insert("__name__".into(), name.into());
        m.insert("job".into(), "testapp".into());
        m.insert("instance".into(), instance.clone());
        for (k, v) in own {
            m.insert(k.to_string(), v.to_string());
        }
        m
    };
    let up = by_name.get("up").expect("up exported");
    assert_eq!(up.labels, base("up", &[]));
    assert!(up.values.iter().all(|v| *v == 1.0), "{:?}", up.values);
    for (name, own, value) in expected_values() {
        let s = by_name
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from {:?}", by_name.keys()));
        assert_eq!(s.labels, base(name, &own), "{name}: exact label set");
        for v in &s.values {
            assert_eq!(v.to_bits(), value.to_bits(), "{name}: {v} != {value}");
        }
        // One scrape gives every series of the target the same timestamp, `up` included.
        assert_eq!(s.timestamps, up.timestamps, "{name}: timestamps differ from up's");
    }
    assert!(
        up.timestamps.windows(2).all(|w| w[0] < w[1]),
        "{:?}",
        up.timestamps
    );
    assert!(
        up.timestamps
            .iter()
            .all(|t| (started_ms - 1_000..=stopped_ms).contains(t)),
        "timestamps {:?} outside the run {started_ms}..{stopped_ms}",
        up.timestamps
    );

    // The query API agrees (the path dashboards use).
    let (status, body) = http_get(
        vm.port,
        &format!(
            "/api/v1/query?query={}",
            urlencode("peer_temperature_celsius{cluster=\"cluster-03\"}")
        ),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let result = parse_json(&body);
    let Some(Json::Arr(series)) = result.get("data").and_then(|d| d.get("result")) else {
        panic!("{body}")
    };
    assert_eq!(series.len(), 1, "{body}");
    assert_eq!(
        series[0].get("metric").and_then(|m| m.get("room")),
        Some(&Json::Str(ROOM.into()))
    );
    let Some(Json::Arr(value)) = series[0].get("value") else {
        panic!("{body}")
    };
    assert_eq!(value[1], Json::Str("-273.15".into()), "{body}");
}

/// A receiver URL's query string is sent with its path: VictoriaMetrics
/// adds the label its `extra_label` parameter names to every series written
/// through that URL.
#[test]
fn victoria_metrics_gets_the_query_string_of_the_receiver_url() {
    let dir = tempfile::tempdir().unwrap();
    let Some(vm) = VictoriaMetrics::start(dir.path()) else {
        return;
    };
    let target = TargetServer::start(target_body());
    let url = format!("{}?extra_label=via=query", vm.write_url());
    let plan = PlanBuilder::new()
        .receiver_url(&url)
        .external_labels(&[("cluster", "cluster-03")])
        .wal_dir(&dir.path().join("wal"))
        .scrape_job("testapp", &[target.address()])
        .build();
    let plan = write_plan(dir.path(), "vm-query.plan", &plan);
    let mut agent = outpost!().start(&plan, free_port(), "vm-node", &dir.path().join("outpost.log"));
    let exported = wait_for("up of testapp in VM", Duration::from_secs(40), || {
        let e = vm_export(&vm, "{__name__=\"up\",job=\"testapp\"}");
        (!e.is_empty()).then_some(e)
    });
    assert_eq!(
        agent.terminate(Duration::from_secs(5)).and_then(|s| s.code()),
        Some(0)
    );
    let labels: Vec<&BTreeMap<String, String>> = exported.iter().map(|s| &s.labels).collect();
    assert_eq!(labels.len(), 1, "{labels:?}");
    assert_eq!(
        labels[0].get("via").map(String::as_str),
        Some("query"),
        "{labels:?}"
    );
    assert_eq!(labels[0]["cluster"], "cluster-03");
}

// ------------------------------------------------------------ the spec-checking receiver

/// Answers to the n-th POST: 500, 503, 429 with Retry-After, then 200, a 400
/// for the sixth, and 200 from then on.
const REJECTED_WITH_400: usize = 5;

fn policy() -> Policy {
    Box::new(|n| match n {
        0 => (500, Vec::new()),
        1 => (503, Vec::new()),
        2 => (429, vec![("Retry-After".to_string(), "1".to_string())]),
        REJECTED_WITH_400 => (400, Vec::new()),
        _ => (200, Vec::new()),
    })
}

type SampleKey = (String, i64, u64);

fn samples_of(req: &WriteRequest) -> Vec<SampleKey> {
    req.timeseries
        .iter()
        .flat_map(|t| {
            t.samples
                .iter()
                .map(move |s| (t.key(), s.timestamp, s.value.to_bits()))
        })
        .collect()
}

#[test]
fn loopback_receiver_sees_remote_write_1_0_musts_and_retry_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let rx = RecordingReceiver::start(policy());
    let target = TargetServer::start(target_body());
    let external = [("cluster", "spec-check"), ("role", "edge")];
    let plan = PlanBuilder::new()
        .receiver_url(&rx.url())
        .external_labels(&external)
        .wal_dir(&dir.path().join("wal"))
        .scrape_job("testapp", &[target.address()])
        .build();
    let plan = write_plan(dir.path(), "spec.plan", &plan);
    let listen = free_port();
    let log = dir.path().join("outpost.log");
    let mut agent = outpost!().start(&plan, listen, "spec-node", &log);

    // Enough accepted requests after the 400 to know later batches still flow.
    wait_for(
        "four accepted requests after the 400",
        Duration::from_secs(40),
        || (rx.count() >= REJECTED_WITH_400 + 5).then_some(()),
    );
    let (status, metrics) = http_get(listen, "/metrics").expect("agent /metrics");
    assert_eq!(status, 200);
    assert_eq!(
        agent.terminate(Duration::from_secs(5)).and_then(|s| s.code()),
        Some(0)
    );
    let log = std::fs::read_to_string(&log).unwrap();

    let seen = rx.seen.lock().unwrap();
    // Wire-level MUSTs, every request.
    for r in seen.iter() {
        let n = r.sequence;
        assert_eq!(r.path, "/api/v1/write");
        assert_eq!(
            r.headers.get("content-encoding").map(String::as_str),
            Some("snappy"),
            "#{n}"
        );
        assert_eq!(
            r.headers.get("content-type").map(String::as_str),
            Some("application/x-protobuf"),
            "#{n}"
        );
        assert_eq!(
            r.headers
                .get("x-prometheus-remote-write-version")
                .map(String::as_str),
            Some("0.1.0"),
            "#{n}"
        );
        assert!(
            r.headers.get("user-agent").is_some_and(|v| !v.is_empty()),
            "#{n}: User-Agent"
        );
        let req = r
            .request
            .as_ref()
            .unwrap_or_else(|e| panic!("#{n} does not decode: {e}"));
        assert!(!req.timeseries.is_empty(), "#{n} is empty");
        for t in &req.timeseries {
            let names: Vec<&str> = t.labels.iter().map(|l| l.name.as_str()).collect();
            assert!(
                names.windows(2).all(|w| w[0] < w[1]),
                "#{n}: labels unsorted or duplicated: {names:?}"
            );
            assert!(
                t.label("__name__").is_some_and(|v| !v.is_empty()),
                "#{n}: no __name__ in {names:?}"
            );
            assert!(
                t.labels.iter().all(|l| !l.value.is_empty()),
                "#{n}: empty label value in {}",
                t.key()
            );
            assert!(!t.samples.is_empty(), "#{n}: series without samples {}", t.key());
            assert!(
                t.samples.windows(2).all(|w| w[0].timestamp < w[1].timestamp),
                "#{n}: {}",
                t.key()
            );
        }
    }

    let accepted: Vec<&Received> = seen.iter().filter(|r| r.status == 200).collect();
    let accepted_samples: BTreeSet<SampleKey> = accepted
        .iter()
        .flat_map(|r| samples_of(r.request.as_ref().unwrap()))
        .collect();

    // 5xx and 429 are retried: every sample they carried arrives later.
    let mut retried = 0usize;
    for r in &seen[..3] {
        let samples = samples_of(r.request.as_ref().unwrap());
        retried += samples.len();
        for s in &samples {
            assert!(
                accepted_samples.contains(s),
                "#{} answered {}: {s:?} never delivered",
                r.sequence,
                r.status
            );
        }
    }
    // The 400 is not retried: none of its samples is ever seen again.
    let rejected = samples_of(seen[REJECTED_WITH_400].request.as_ref().unwrap());
    let rejected_set: BTreeSet<&SampleKey> = rejected.iter().collect();
    for r in &seen[REJECTED_WITH_400 + 1..] {
        for s in samples_of(r.request.as_ref().unwrap()) {
            assert!(
                !rejected_set.contains(&s),
                "#{} resends 400'd sample {s:?}",
                r.sequence
            );
        }
    }
    let rejected_max_ts = rejected.iter().map(|s| s.1).max().unwrap();
    assert!(
        accepted.iter().any(|r| r.sequence > REJECTED_WITH_400
            && samples_of(r.request.as_ref().unwrap())
                .iter()
                .any(|s| s.1 > rejected_max_ts)),
        "fresher batches arrive after the 400"
    );

    // Per series, accepted samples arrive in timestamp order and none twice.
    let mut last_ts: HashMap<String, i64> = HashMap::new();
    let mut delivered = 0usize;
    for r in &accepted {
        for t in &r.request.as_ref().unwrap().timeseries {
            for s in &t.samples {
                delivered += 1;
                if let Some(prev) = last_ts.insert(t.key(), s.timestamp) {
                    assert!(
                        prev < s.timestamp,
                        "#{}: {} went back from {prev} to {}",
                        r.sequence,
                        t.key(),
                        s.timestamp
                    );
                }
            }
        }
    }
    assert_eq!(delivered, accepted_samples.len(), "a sample was delivered twice");

    // The exact target values made it through the accepted requests.
    for (name, own, value) in expected_values() {
        let found = accepted
            .iter()
            .flat_map(|r| &r.request.as_ref().unwrap().timeseries)
            .find(|t| {
                t.label("__name__") == Some(name)
                    && own.iter().all(|(k, v)| t.label(k) == Some(v))
                    && t.label("cluster") == Some("spec-check")
                    && t.label("job") == Some("testapp")
                    && t.label("instance") == Some(target.address().as_str())
            });
        let t = found.unwrap_or_else(|| panic!("{name} not delivered"));
        assert!(
            t.samples.iter().all(|s| s.value.to_bits() == value.to_bits()),
            "{name}"
        );
    }

    // The agent's own counters match what the receiver answered.
    let retried_metric = metric_sum(&metrics, "prometheus_remote_storage_samples_retried_total", &[]);
    let failed_metric = metric_sum(&metrics, "prometheus_remote_storage_samples_failed_total", &[]);
    let dropped_4xx = metric_sum(
        &metrics,
        "prometheus_remote_storage_samples_dropped_total",
        &["reason=\"http_4xx\""],
    );
    let dropped_all = metric_sum(&metrics, "prometheus_remote_storage_samples_dropped_total", &[]);
    assert_eq!(
        retried_metric as usize, retried,
        "retried counter vs samples answered 5xx/429\n{log}"
    );
    assert_eq!(
        failed_metric as usize,
        rejected.len(),
        "failed counter vs the 400'd batch"
    );
    assert_eq!(
        dropped_4xx as usize,
        rejected.len(),
        "dropped{{reason=http_4xx}} vs the 400'd batch"
    );
    assert_eq!(dropped_all, dropped_4xx, "no other drop reason\n{metrics}");
    eprintln!(
        "requests {} (accepted {}), samples retried {retried}, rejected with 400 {}, delivered {delivered}",
        seen.len(),
        accepted.len(),
        rejected.len()
    );
}
