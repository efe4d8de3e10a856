//! Any bytes as a fleet spec: loading, checking, building plans and
//! rendering the diagnostics must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let analysis = outpost_compiler::analyze("fuzz.yaml", &text);
    let _ = analysis.render_text(100);
    let _ = analysis.render_json();
    if !analysis.has_errors() {
        for agent in &analysis.plans {
            let bytes = outpost_core::plan::encode(&agent.plan).expect("built plans encode");
            outpost_core::plan::decode(&bytes).expect("built plans decode");
        }
    }
});
