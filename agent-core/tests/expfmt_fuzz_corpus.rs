//! Replays the `exposition` fuzz target's committed corpus through the
//! target's own body, and checks each seed reaches the outcome it was
//! written for.

mod expfmt_support;

use expfmt_support::fuzz_check::{fuzz_exposition, FUZZ_LIMITS};
use outpost_core::error::ScrapeError;
use outpost_test_support::repo_path;

fn seed(name: &str) -> Vec<u8> {
    let path = repo_path("fuzz/corpus/exposition").join(name);
    std::fs::read(path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_seed_runs_and_the_cut_does_not_matter() {
    let dir = repo_path("fuzz/corpus/exposition");
    let mut seeds = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        // Every possible cut, not only the seed's own.
        for cut in 0..=data.len().min(255) {
            let mut d = data.clone();
            d[0] = cut as u8;
            assert!(fuzz_exposition(&d).is_some());
        }
        seeds += 1;
    }
    assert!(seeds >= 10, "only {seeds} seeds");
}

#[test]
fn seeds_reach_what_they_were_written_for() {
    let outcome = |name: &str| fuzz_exposition(&seed(name)).unwrap();
    assert_eq!(outcome("text_basic").map(|r| r.0), Ok(2));
    assert_eq!(outcome("text_specials").map(|r| r.0), Ok(5));
    assert_eq!(outcome("om_exemplar").map(|r| r.0), Ok(3));
    assert_eq!(outcome("om_units_states").map(|r| r.0), Ok(2));
    assert_eq!(outcome("om_truncated"), Err(ScrapeError::Truncated));
    assert_eq!(
        outcome("om_after_eof"),
        Err(ScrapeError::Syntax {
            line: 3,
            what: "data after # EOF"
        })
    );
    assert_eq!(
        outcome("text_too_many_labels"),
        Err(ScrapeError::LabelLimit {
            line: 1,
            limit: FUZZ_LIMITS.label_count
        })
    );
    assert_eq!(
        outcome("text_long_value"),
        Err(ScrapeError::LabelValueTooLong {
            line: 1,
            limit: FUZZ_LIMITS.label_value_bytes
        })
    );
    assert_eq!(
        outcome("text_bad_utf8"),
        Err(ScrapeError::InvalidUtf8 { line: 1 })
    );
}
