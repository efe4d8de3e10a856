//! The exposition parser on arbitrary bytes, cut into two chunks at a place
//! the input picks. It must never panic, and the two-chunk outcome must equal
//! the one-chunk outcome. The body lives beside the parser's tests, which
//! replay this target's corpus with it (agent-core/tests/expfmt_fuzz_corpus.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("../../agent-core/tests/expfmt_support/fuzz_check.rs");

fuzz_target!(|data: &[u8]| {
    let _ = fuzz_exposition(data);
});
