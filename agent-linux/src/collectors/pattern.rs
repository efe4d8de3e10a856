//! Patterns a plan gives for node_exporter's `--collector.*` filter flags.
//!
//! Go's regexps match unanchored (`MatchString`), so these do too: node_exporter's patterns
//! anchor themselves with `^...$` where they mean to. Compiled once, when the plan loads;
//! matching reuses one cache and does not allocate.

use regex_automata::meta::{Cache, Regex};
use regex_automata::Input;

pub(super) struct Pattern {
    regex: Regex,
    cache: Cache,
}

impl Pattern {
    /// `what` names the option in the error.
    pub(super) fn new(what: &str, pattern: &str) -> Result<Pattern, String> {
        let regex =
            Regex::new(pattern).map_err(|e| format!("node option {what}: pattern {pattern:?}: {e}"))?;
        let cache = regex.create_cache();
        Ok(Pattern { regex, cache })
    }

    pub(super) fn is_match(&mut self, text: &str) -> bool {
        self.regex
            .search_half_with(&mut self.cache, &Input::new(text).earliest(true))
            .is_some()
    }
}
