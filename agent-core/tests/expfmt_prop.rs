//! Rendering random samples as exposition text and parsing the text in
//! random chunks gives the samples back.

mod expfmt_support;

use expfmt_support::{parse_chunked, roomy_limits, Owned};
use outpost_core::expfmt::{ExpositionFormat, Parser};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Generated {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
    timestamp_ms: Option<i64>,
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(-0.0),
        any::<i32>().prop_map(f64::from),
        any::<f64>().prop_filter("finite", |v| v.is_finite()),
    ]
}

/// Any text at all, weighted towards the characters that need escaping.
fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9./:-]{0,20}",
        proptest::collection::vec(
            prop_oneof![
                Just('\\'),
                Just('"'),
                Just('\n'),
                Just('}'),
                Just(','),
                Just(' '),
                Just('#'),
                any::<char>()
            ],
            0..12
        )
        .prop_map(|cs| cs.into_iter().collect()),
    ]
}

fn sample() -> impl Strategy<Value = Generated> {
    (
        "[a-zA-Z_:][a-zA-Z0-9_:]{0,30}",
        proptest::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,20}", label_value(), 0..8),
        value(),
        proptest::option::of(-10_000_000_000_000i64..10_000_000_000_000),
    )
        .prop_map(|(name, labels, value, timestamp_ms)| Generated {
            name,
            // __name__ is never a label; a btree map already keeps names unique.
            labels: labels.into_iter().filter(|(n, _)| n != "__name__").collect(),
            value,
            timestamp_ms,
        })
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn render_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        // `{:e}` is the shortest text that reads back to the same float.
        format!("{v:e}")
    }
}

/// OpenMetrics timestamps are seconds with a fraction.
fn render_seconds(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let abs = ms.unsigned_abs();
    format!("{sign}{}.{:03}", abs / 1000, abs % 1000)
}

fn render(samples: &[Generated], format: ExpositionFormat, spacing: &str) -> String {
    let mut out = String::new();
    for s in samples {
        out.push_str(&s.name);
        if !s.labels.is_empty() {
            out.push('{');
            let pairs: Vec<String> = s
                .labels
                .iter()
                .map(|(n, v)| format!("{n}{spacing}={spacing}\"{}\"", escape(v)))
                .collect();
            out.push_str(&pairs.join(","));
            out.push('}');
        }
        out.push(' ');
        out.push_str(&render_value(s.value));
        match (s.timestamp_ms, format) {
            (Some(ms), ExpositionFormat::PrometheusText) => out.push_str(&format!(" {ms}")),
            (Some(ms), ExpositionFormat::OpenMetrics) => out.push_str(&format!(" {}", render_seconds(ms))),
            (None, _) => {}
        }
        out.push('\n');
    }
    if format == ExpositionFormat::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

fn expected(s: &Generated, format: ExpositionFormat) -> Owned {
    let value = if s.value.is_nan() { f64::NAN } else { s.value };
    Owned {
        name: s.name.clone(),
        labels: s.labels.clone(),
        value_bits: value.to_bits(),
        // Prometheus turns OpenMetrics seconds into ms as int64(seconds*1000).
        timestamp_ms: s.timestamp_ms.map(|ms| match format {
            ExpositionFormat::PrometheusText => ms,
            ExpositionFormat::OpenMetrics => (render_seconds(ms).parse::<f64>().unwrap() * 1000.0) as i64,
        }),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn rendered_samples_parse_back(
        samples in proptest::collection::vec(sample(), 0..40),
        open_metrics in any::<bool>(),
        spaced in any::<bool>(),
        chunk_lens in proptest::collection::vec(1usize..200, 1..20),
    ) {
        let format = if open_metrics { ExpositionFormat::OpenMetrics } else { ExpositionFormat::PrometheusText };
        let body = render(&samples, format, if spaced { " " } else { "" });
        let mut parser = Parser::new(&roomy_limits());
        let mut i = 0;
        let mut next = || {
            i += 1;
            chunk_lens[i % chunk_lens.len()]
        };
        let got = parse_chunked(&mut parser, format, body.as_bytes(), &mut next)
            .map_err(|e| TestCaseError::fail(format!("{e} in {body:?}")))?;
        let want: Vec<Owned> = samples.iter().map(|s| expected(s, format)).collect();
        prop_assert_eq!(got.len(), want.len());
        for ((g, w), s) in got.iter().zip(&want).zip(&samples) {
            prop_assert_eq!(g, w);
            // Truncation loses at most the millisecond the float could not hold.
            if let (Some(g), Some(ms)) = (g.timestamp_ms, s.timestamp_ms) {
                prop_assert!((g - ms).abs() <= 1, "{} ms read back as {}", ms, g);
            }
        }
    }
}

/// Bodies stitched from exposition fragments, valid or not.
fn fragment_soup() -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop_oneof![
        Just(&b"\n"[..]),
        Just(&b"\r\n"[..]),
        Just(&b" "[..]),
        Just(&b"metric_a"[..]),
        Just(&b"{"[..]),
        Just(&b"}"[..]),
        Just(&b"label=\"v\""[..]),
        Just(&b"x=\"\\\\\\\"\\n\""[..]),
        Just(&b","[..]),
        Just(&b"1.5"[..]),
        Just(&b"NaN"[..]),
        Just(&b"+Inf"[..]),
        Just(&b"1700000000"[..]),
        Just(&b"# HELP metric_a text\n"[..]),
        Just(&b"# TYPE metric_a counter\n"[..]),
        Just(&b"# EOF"[..]),
        Just(&b" # {t=\"1\"} 2"[..]),
        Just(&b"\xff"[..]),
        Just(&b"\xc3\xa9"[..]),
    ];
    proptest::collection::vec(fragment, 0..60).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the body, valid or not, and wherever it is cut, the outcome
    /// (samples, or the error with its line) is the same as for one chunk.
    #[test]
    fn any_body_gives_the_same_outcome_however_cut(
        body in fragment_soup(),
        open_metrics in any::<bool>(),
        label_count in 0u16..4,
        label_value_bytes in 1u32..12,
        body_bytes in 16u32..2000,
        chunk_lens in proptest::collection::vec(1usize..40, 1..10),
    ) {
        let format = if open_metrics { ExpositionFormat::OpenMetrics } else { ExpositionFormat::PrometheusText };
        let limits = outpost_core::plan::Limits {
            body_bytes,
            samples: 100,
            label_count,
            label_name_bytes: 8,
            label_value_bytes,
        };
        let mut parser = Parser::new(&limits);
        let whole = parse_chunked(&mut parser, format, &body, &mut || usize::MAX);
        let mut i = 0;
        let mut next = || {
            i += 1;
            chunk_lens[i % chunk_lens.len()]
        };
        let cut = parse_chunked(&mut parser, format, &body, &mut next);
        prop_assert_eq!(cut, whole);
    }
}
