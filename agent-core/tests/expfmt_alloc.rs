//! After the parser is built, parsing a body allocates nothing: the second
//! parse of a 10,000-series KSM-shaped body is counted by a global
//! allocator and must be zero.

mod expfmt_support;

use expfmt_support::{ksm_body, roomy_limits};
use outpost_core::expfmt::{ExpositionFormat, Parser, Sample};
use outpost_test_support::{count_allocations, CountingAllocator};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Feeds `body` in socket-sized chunks; returns (samples, labels, non-negative values).
fn parse(parser: &mut Parser, body: &[u8], chunk: usize) -> (u64, u64, u64) {
    parser.reset(ExpositionFormat::PrometheusText);
    let (mut samples, mut labels, mut non_negative) = (0u64, 0u64, 0u64);
    let mut sink = |s: &Sample<'_>| {
        samples += 1;
        labels += s.labels.len() as u64;
        non_negative += u64::from(s.value >= 0.0);
        Ok(())
    };
    for piece in body.chunks(chunk) {
        parser.handle_chunk(piece, &mut sink).unwrap();
    }
    parser.finish(&mut sink).unwrap();
    (samples, labels, non_negative)
}

#[test]
fn second_parse_of_10k_series_allocates_nothing() {
    // The counter sees allocations at all.
    let (v, allocations) = count_allocations(|| Vec::<u8>::with_capacity(10));
    assert_eq!((v.capacity(), allocations), (10, 1));
    let body = ksm_body(10_000);
    let mut parser = Parser::new(&roomy_limits());
    // 16 KiB like the agent's socket reads, and an odd size so that many
    // lines straddle chunks and go through the line buffer.
    for chunk in [16 * 1024, 997] {
        let warm = parse(&mut parser, body.as_bytes(), chunk);
        assert_eq!(warm.0, 10_000);
        let (steady, allocations) = count_allocations(|| parse(&mut parser, body.as_bytes(), chunk));
        assert_eq!(steady, warm);
        assert_eq!(allocations, 0, "allocations with {chunk}-byte chunks");
    }
}

#[test]
fn escaped_values_and_errors_allocate_nothing_either() {
    let body = "a{x=\"esc\\\\aped \\\"value\\\"\\n\"} 1\n".repeat(1000);
    let mut parser = Parser::new(&roomy_limits());
    let warm = parse(&mut parser, body.as_bytes(), 333);
    assert_eq!(warm, (1000, 1000, 1000));
    let ((steady, failed), allocations) = count_allocations(|| {
        let steady = parse(&mut parser, body.as_bytes(), 333);
        parser.reset(ExpositionFormat::OpenMetrics);
        (steady, parser.handle_chunk(b"bad line\n", &mut |_| Ok(())))
    });
    assert_eq!(steady, warm);
    assert!(failed.is_err());
    assert_eq!(allocations, 0);
}
