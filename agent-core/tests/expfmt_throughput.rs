//! Parse throughput on a KSM-shaped body of 50,000 series (5-7 labels).
//! Ignored by default: run it in release and read the printed number,
//!   cargo test --release -p outpost-core --test expfmt_throughput -- --ignored --nocapture
//! It asserts counts only; the rate is printed, never asserted.

mod expfmt_support;

use std::time::Instant;

use expfmt_support::{ksm_body, roomy_limits};
use outpost_core::expfmt::{ExpositionFormat, Parser, Sample};

#[test]
#[ignore]
fn parse_throughput_on_50k_ksm_series() {
    let body = ksm_body(50_000);
    let mut parser = Parser::new(&roomy_limits());
    let rounds = 20;
    let mut samples = 0u64;
    let mut labels = 0u64;
    let start = Instant::now();
    for _ in 0..rounds {
        parser.reset(ExpositionFormat::PrometheusText);
        let mut sink = |s: &Sample<'_>| {
            samples += 1;
            labels += s.labels.len() as u64;
            Ok(())
        };
        for chunk in body.as_bytes().chunks(16 * 1024) {
            parser.handle_chunk(chunk, &mut sink).unwrap();
        }
        parser.finish(&mut sink).unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(samples, 50_000 * rounds);
    println!(
        "expfmt: {} samples ({} labels, {} MiB) in {secs:.3}s: {:.2} M samples/s, {:.0} MiB/s",
        samples,
        labels,
        body.len() as u64 * rounds / (1 << 20),
        samples as f64 / secs / 1e6,
        (body.len() as u64 * rounds) as f64 / secs / (1 << 20) as f64
    );
}
