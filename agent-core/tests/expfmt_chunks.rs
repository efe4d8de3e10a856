//! Every fixture parses to the same samples whether it arrives whole, one
//! byte at a time, or in random chunk sizes; and the fixtures' samples are
//! what the bodies say.

mod expfmt_support;

use expfmt_support::{parse_chunked, parse_whole, roomy_limits, Owned, Rng};
use outpost_core::expfmt::{ExpositionFormat, Parser};

const FIXTURES: [(&str, &[u8], ExpositionFormat); 5] = [
    (
        "node_exporter.txt",
        include_bytes!("../src/testdata/exposition/node_exporter.txt"),
        ExpositionFormat::PrometheusText,
    ),
    (
        "prometheus_agent.txt",
        include_bytes!("../src/testdata/exposition/prometheus_agent.txt"),
        ExpositionFormat::PrometheusText,
    ),
    (
        "kube_state_metrics.txt",
        include_bytes!("../src/testdata/exposition/kube_state_metrics.txt"),
        ExpositionFormat::PrometheusText,
    ),
    (
        "escapes_crlf.txt",
        include_bytes!("../src/testdata/exposition/escapes_crlf.txt"),
        ExpositionFormat::PrometheusText,
    ),
    (
        "openmetrics.om.txt",
        include_bytes!("../src/testdata/exposition/openmetrics.om.txt"),
        ExpositionFormat::OpenMetrics,
    ),
];

/// Lines that are neither blank nor comments: one sample each.
fn sample_lines(body: &[u8]) -> usize {
    body.split(|&b| b == b'\n')
        .map(|l| l.trim_ascii())
        .filter(|l| !l.is_empty() && !l.starts_with(b"#"))
        .count()
}

#[test]
fn every_fixture_parses_to_one_sample_per_sample_line() {
    for (name, body, format) in FIXTURES {
        let samples = parse_whole(&roomy_limits(), format, body).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(samples.len(), sample_lines(body), "{name}");
        assert!(!samples.is_empty(), "{name}");
    }
}

#[test]
fn one_byte_at_a_time_matches_whole() {
    let mut parser = Parser::new(&roomy_limits());
    for (name, body, format) in FIXTURES {
        let whole = parse_whole(&roomy_limits(), format, body).unwrap();
        let bytewise = parse_chunked(&mut parser, format, body, &mut || 1).unwrap();
        assert_eq!(bytewise, whole, "{name}");
    }
}

#[test]
fn random_chunk_sizes_match_whole() {
    let mut parser = Parser::new(&roomy_limits());
    for (name, body, format) in FIXTURES {
        let whole = parse_whole(&roomy_limits(), format, body).unwrap();
        for seed in 1..=20u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            // Mostly small chunks, now and then a big one, as sockets deliver.
            let mut next = || {
                if rng.below(8) == 0 {
                    rng.below(20_000) as usize
                } else {
                    1 + rng.below(300) as usize
                }
            };
            let got = parse_chunked(&mut parser, format, body, &mut next).unwrap();
            assert_eq!(got, whole, "{name} seed {seed}");
        }
    }
}

fn find<'a>(samples: &'a [Owned], name: &str, label: (&str, &str)) -> &'a Owned {
    samples
        .iter()
        .find(|s| s.name == name && s.labels.iter().any(|(n, v)| n == label.0 && v == label.1))
        .unwrap_or_else(|| panic!("no {name} with {label:?}"))
}

#[test]
fn node_exporter_capture_has_its_known_series() {
    let body = FIXTURES[0].1;
    let samples = parse_whole(&roomy_limits(), ExpositionFormat::PrometheusText, body).unwrap();
    let build = find(&samples, "node_exporter_build_info", ("version", "1.5.0"));
    assert_eq!(build.value(), 1.0);
    assert_eq!(build.labels.len(), 6);
    let idle = find(&samples, "node_cpu_seconds_total", ("mode", "idle"));
    assert!(idle.value() > 0.0);
    assert!(samples.iter().all(|s| s.timestamp_ms.is_none()));
    // Summary quantiles keep their label.
    assert!(samples
        .iter()
        .any(|s| s.name == "go_gc_duration_seconds" && s.labels[0].0 == "quantile"));
}

#[test]
fn hand_written_fixtures_decode_every_construct() {
    let crlf = parse_whole(&roomy_limits(), ExpositionFormat::PrometheusText, FIXTURES[3].1).unwrap();
    let odd = &crlf[0];
    assert_eq!(odd.name, "odd_spacing");
    assert_eq!(odd.labels, [("a".into(), "1".into()), ("b".into(), "2".into())]);
    assert_eq!((odd.value(), odd.timestamp_ms), (3.25, Some(1_700_000_000_000)));
    let odd = &crlf[1];
    assert_eq!(
        odd.labels,
        [("a".into(), "x\\y".into()), ("b".into(), "say \"hi\"".into())]
    );
    assert_eq!((odd.value(), odd.timestamp_ms), (-7.0, Some(-1)));
    let escapes = find(&crlf, "escapes", ("u", "日本語"));
    assert_eq!(escapes.labels[0].1, "a\nb");
    assert_eq!(escapes.labels[1].1, "\\t\\x");
    assert!(find(&crlf, "special", ("v", "nan")).value().is_nan());
    assert_eq!(find(&crlf, "special", ("v", "inf")).value(), f64::INFINITY);
    assert_eq!(crlf.last().unwrap().name, "last_without_newline");

    let om = parse_whole(&roomy_limits(), ExpositionFormat::OpenMetrics, FIXTURES[4].1).unwrap();
    let bucket = find(&om, "rpc_duration_seconds_bucket", ("le", "1.0"));
    assert_eq!(
        (bucket.value(), bucket.timestamp_ms),
        (56.0, Some(1_605_281_330_250))
    );
    let first = find(&om, "rpc_duration_seconds_bucket", ("le", "0.005"));
    assert_eq!(first.timestamp_ms, None);
    let temp = find(&om, "temperature_celsius", ("sensor", "cpu\\0"));
    assert_eq!(temp.labels[1].1, "lab \"B\"");
    assert_eq!(find(&om, "errors_total", ("kind", "multi\nline")).value(), 3.0);
    assert_eq!(
        find(&om, "temperature_celsius", ("sensor", "fan")).value(),
        f64::NEG_INFINITY
    );
}

/// The KSM fixture's pods carry 10 labels; a target limited to 8 fails on the
/// first of them, naming the line, however the body is cut.
#[test]
fn label_limit_hits_the_same_line_whole_or_bytewise() {
    let mut limits = roomy_limits();
    limits.label_count = 8;
    let body = FIXTURES[2].1;
    let mut parser = Parser::new(&limits);
    let want = Err(outpost_core::error::ScrapeError::LabelLimit { line: 3, limit: 8 });
    assert_eq!(
        parse_chunked(&mut parser, ExpositionFormat::PrometheusText, body, &mut || body
            .len()),
        want
    );
    assert_eq!(
        parse_chunked(&mut parser, ExpositionFormat::PrometheusText, body, &mut || 1),
        want
    );
}
