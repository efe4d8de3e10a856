// The body of the `exposition` fuzz target, shared with the corpus replay
// test so the code the fuzzer runs is also built and run by `cargo test`.
// Included with `include!`, hence no inner attributes or doc comments.

/// Small limits, so that every limit is within the fuzzer's reach.
pub const FUZZ_LIMITS: outpost_core::plan::Limits = outpost_core::plan::Limits {
    body_bytes: 4096,
    samples: 100,
    label_count: 4,
    label_name_bytes: 16,
    label_value_bytes: 32,
};

/// Samples reduced to a count and a digest: no allocation per sample.
fn fuzz_run(
    parser: &mut outpost_core::expfmt::Parser,
    format: outpost_core::expfmt::ExpositionFormat,
    chunks: &[&[u8]],
) -> Result<(u64, u64), outpost_core::error::ScrapeError> {
    parser.reset(format);
    let (mut count, mut digest) = (0u64, 0u64);
    let mut sink = |s: &outpost_core::expfmt::Sample<'_>| {
        count += 1;
        digest = digest.rotate_left(5) ^ s.labels.hash() ^ s.value.to_bits() ^ s.name.len() as u64;
        digest ^= s.timestamp_ms.unwrap_or(0) as u64;
        Ok(())
    };
    for chunk in chunks {
        parser.handle_chunk(chunk, &mut sink)?;
    }
    parser.finish(&mut sink)?;
    Ok((count, digest))
}

/// The first byte picks where the rest is cut into two chunks, the second
/// picks the format. Must not panic, and both cuts must agree. Returns the
/// outcome for the replay test to look at.
pub fn fuzz_exposition(data: &[u8]) -> Option<Result<(u64, u64), outpost_core::error::ScrapeError>> {
    let [cut, format, body @ ..] = data else {
        return None;
    };
    let format = if format & 1 == 1 {
        outpost_core::expfmt::ExpositionFormat::OpenMetrics
    } else {
        outpost_core::expfmt::ExpositionFormat::PrometheusText
    };
    let cut = usize::from(*cut).min(body.len());
    let (first, second) = body.split_at(cut);
    let mut parser = outpost_core::expfmt::Parser::new(&FUZZ_LIMITS);
    let split = fuzz_run(&mut parser, format, &[first, second]);
    let whole = fuzz_run(&mut parser, format, &[body]);
    assert_eq!(split, whole, "cut at {cut}");
    Some(whole)
}
