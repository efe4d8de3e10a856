//! Receiver URLs and scrape targets are read by agent-core's one parser: a
//! URL the compiler accepts reaches the plan as written and the agent reads
//! it the same way; credentials in the URL are refused without repeating
//! them.

use outpost_compiler::analyze;
use outpost_core::plan::Scheme;
use outpost_core::url::Url;

fn spec(url: &str, target: &str) -> String {
    format!(
        "receiver:\n  url: {url}\nclusters:\n  - name: edge-1\n    role: edge\n\
         scrape_jobs:\n  - name: app\n    scope: cluster\n    targets: [\"{target}\"]\n"
    )
}

fn codes(url: &str, target: &str) -> Vec<&'static str> {
    let a = analyze("url.yaml", &spec(url, target));
    a.diagnostics.iter().map(|d| d.code).collect()
}

#[test]
fn a_query_and_an_ipv6_receiver_reach_the_plan_as_written() {
    let url = "https://[2001:db8::7]/api/v1/write?extra_label=site%3Dedge-1";
    let a = analyze("url.yaml", &spec(url, "app.default.svc:8080"));
    assert!(a.diagnostics.is_empty(), "{:?}", a.diagnostics);
    let plan = &a.plans[0].plan;
    let written = plan.str(plan.receiver.url);
    assert_eq!(written, url);
    let parsed = Url::parse(written).unwrap();
    assert_eq!(
        (parsed.scheme, parsed.host, parsed.port, parsed.authority),
        (Scheme::Https, "2001:db8::7", 443, "[2001:db8::7]")
    );
    assert_eq!(
        parsed.request_target().to_string(),
        "/api/v1/write?extra_label=site%3Dedge-1"
    );
}

#[test]
fn credentials_in_the_url_are_refused_without_repeating_them() {
    for url in [
        "https://edge:hunter2@receive.example.net/api/v1/receive",
        "https://edge@receive.example.net/api/v1/receive",
    ] {
        let a = analyze("url.yaml", &spec(url, "app.default.svc:8080"));
        assert!(a.has_errors());
        let json = a.render_json();
        let list = json["diagnostics"].as_array().unwrap();
        assert_eq!(list.len(), 1, "{json:#}");
        assert_eq!(list[0]["code"], "url-credentials");
        assert_eq!(list[0]["path"], "receiver.url");
        assert_eq!(
            (list[0]["line"].as_u64(), list[0]["column"].as_u64()),
            (Some(2), Some(8))
        );
        assert!(
            !list[0]["message"].as_str().unwrap().contains("hunter2"),
            "{json:#}"
        );
    }
}

#[test]
fn receiver_urls_the_agent_could_not_use_are_refused() {
    for url in [
        "https://receive.example.net:0/api/v1/receive",
        "https://receive.example.net:https/api/v1/receive",
        "https://[::1/api/v1/receive",
        "https://[not-v6]/api/v1/receive",
        "https://receive_example%2Enet/api/v1/receive",
        "ftp://receive.example.net/",
    ] {
        assert_eq!(codes(url, "app.default.svc:8080"), ["bad-url"], "{url}");
    }
}

#[test]
fn targets_are_host_port_as_the_agent_reads_them() {
    let url = "https://receive.example.net/api/v1/receive";
    for ok in [
        "app.default.svc:8080",
        "10.0.0.7:9100",
        "[::1]:9100",
        "[fe80::1]:9100",
    ] {
        assert!(codes(url, ok).is_empty(), "{ok}");
    }
    for bad in [
        "app.default.svc",
        "app.default.svc:0",
        "app:8080/metrics",
        "::1:9100",
        "user@app:8080",
        "${POD_IP}:8080",
    ] {
        assert_eq!(codes(url, bad), ["bad-target"], "{bad}");
    }
}
