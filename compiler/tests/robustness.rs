//! The loader never panics on damaged specs: truncated, with bytes
//! replaced, or with lines dropped. (The cargo-fuzz target `spec_loader`
//! explores further; this keeps the property in every `cargo test`.)

use outpost_compiler::analyze;
use outpost_test_support::repo_path;
use proptest::prelude::*;

fn fleet() -> String {
    std::fs::read_to_string(repo_path("examples/fleet.yaml")).unwrap()
}

fn check(text: &str) {
    let a = analyze("damaged.yaml", text);
    let _ = a.render_text(80);
    let _ = a.render_json();
    if !a.has_errors() {
        for p in &a.plans {
            let bytes = outpost_core::plan::encode(&p.plan).unwrap();
            assert_eq!(outpost_core::plan::decode(&bytes).unwrap(), p.plan);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn truncated_specs_do_not_panic(cut in 0usize..4000) {
        let text = fleet();
        let mut cut = cut.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        check(&text[..cut]);
    }

    #[test]
    fn edited_specs_do_not_panic(at in 0usize..4000, byte in prop::sample::select(b"\t :-[]{}\"'#&*!|>%@`0aZ\n".to_vec())) {
        let mut bytes = fleet().into_bytes();
        let at = at % bytes.len();
        bytes[at] = byte;
        check(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn specs_with_a_line_dropped_do_not_panic(line in 0usize..200) {
        let text = fleet();
        let kept: Vec<&str> = text.lines().enumerate().filter(|(i, _)| *i != line).map(|(_, l)| l).collect();
        check(&kept.join("\n"));
    }
}

fn golden_plan() -> Vec<u8> {
    std::fs::read(repo_path("examples/plans/cluster-02/tenant-a/cluster.plan")).unwrap()
}

/// What the `plan_loader` fuzz target checks, on damaged golden plans.
fn load_plan(bytes: &[u8]) {
    if let Ok(p) = outpost_core::plan::decode(bytes) {
        let again = outpost_core::plan::encode(&p).unwrap();
        assert_eq!(outpost_core::plan::decode(&again).as_ref(), Ok(&p));
        let _ = p.worst_case_memory().total();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn damaged_plans_are_refused_without_panic(at in 0usize..1000, byte: u8, cut in 0usize..1000) {
        let mut bytes = golden_plan();
        let at = at % bytes.len();
        bytes[at] = byte;
        load_plan(&bytes);
        bytes.truncate(cut);
        load_plan(&bytes);
    }

    /// With the checksum fixed up, damage reaches the postcard decoder and
    /// the cross-reference checks.
    #[test]
    fn damaged_payloads_with_valid_checksum_do_not_panic(at in 20usize..1000, byte: u8) {
        let mut bytes = golden_plan();
        let at = 20 + (at - 20) % (bytes.len() - 20);
        bytes[at] = byte;
        let crc = crc32(&bytes[20..]);
        bytes[16..20].copy_from_slice(&crc.to_le_bytes());
        load_plan(&bytes);
    }
}

/// CRC-32 (IEEE), bit by bit: the test needs no extra dependency.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn the_test_crc_matches_the_plan_header() {
    let bytes = golden_plan();
    assert_eq!(crc32(&bytes[20..]).to_le_bytes(), bytes[16..20]);
}
