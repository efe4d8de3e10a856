//! Any bytes handed to the agent as a plan: decode must return a plan or a
//! PlanError, never panic, and a plan it accepts must survive re-encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost_core::plan;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = plan::decode(data) {
        let bytes = plan::encode(&p).expect("a decoded plan encodes");
        assert_eq!(
            plan::decode(&bytes).as_ref(),
            Ok(&p),
            "re-encoded plan decodes differently"
        );
        // Sizing from the bounds must not overflow or panic either.
        let _ = p.worst_case_memory().total();
    }
});
