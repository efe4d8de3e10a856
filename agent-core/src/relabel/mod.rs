//! Relabeling with Prometheus's semantics, compiled once from the plan.
//!
//! [`RelabelProgram::build`] turns a list of [`RelabelRule`]s into compiled
//! regexes, parsed replacement templates and scratch buffers sized from the
//! label bound. [`RelabelProgram::apply`] then runs on every series without
//! compiling or allocating: the joined source values, the expanded target and
//! value, and the capture slots all live in those buffers.
//!
//! Semantics follow Prometheus 3 (`model/relabel`):
//! - source values are joined with the separator, absent labels count as "";
//! - the regex is anchored on both ends and `.` matches `\n` (`^(?s:RE)$`);
//! - `replace` with no match leaves the labels alone; the target name is
//!   itself a template; an empty target name skips the rule; an empty value
//!   removes the target label;
//! - templates follow Go's `Regexp.Expand`: `$1`, `${1}`, `$name`, `${name}`,
//!   `$$` for a dollar, the longest run of letters, digits and `_` names the
//!   group (so `$1x` is group `1x`, which is empty), a malformed reference is
//!   kept as text;
//! - `hashmod` is the big-endian `u64` of bytes 8..16 of the MD5 of the joined
//!   value, modulo `modulus`;
//! - `labelmap` reads the labels as they were before the rule, so one mapping
//!   cannot feed another within the same rule;
//! - a series whose label set ends up empty is dropped, as the scrape loop does.
//!
//! Known differences, kept on purpose or for lack of tables:
//! - Go's RE2 syntax is translated to regex-automata's: `\d \w \s \b` (and
//!   negations) become their ASCII forms as in Go, a `[` inside a class and
//!   the class operators `&&`/`~~` become literals. `\Q...\E` is not
//!   supported and is reported as a bad regex.
//! - `lowercase`/`uppercase` use per-character mappings; the few characters
//!   whose full uppercase expands to several characters (`ß`, Greek with
//!   iota subscript, ligatures) are kept unchanged, where Go maps a handful of
//!   them to a titlecase form.
//! - `labelmap` skips a mapping whose resulting name is empty (Prometheus
//!   would write a label with an empty name, which later fails the series).
//! - `labelmap` visits labels in the set's order, not name order; this only
//!   matters when two labels map to the same name.
//!
//! This file holds the program, its rules and their scratch; beside it,
//! `regex.rs` matches a rule's regex and `template.rs` expands its templates.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::fmt::Write as _;
use md5::{Digest, Md5};

use regex_automata::util::primitives::NonMaxUsize;

mod regex;
mod template;

use crate::labels::{LabelError, LabelSet};
use crate::plan::{Plan, RelabelAction, RelabelRule};
use regex::{compile_regex, Matcher};
use template::{NameChars, Template};

/// Prometheus's default regex; compiled to nothing, it always matches and
/// captures the whole value as group 1.
const MATCH_ALL: &str = "(.*)";

/// Lazy DFA cache per regex. The cache grows only as states are discovered and
/// is cleared, not grown, past this; relabel patterns need a few KiB.
pub const DFA_CACHE_BYTES: usize = 256 * 1024;

/// Room for a `u64` in decimal, whatever the label bound.
const MIN_SCRATCH_BYTES: usize = 32;

/// Why a rule could not be compiled. `rule` is the index in the slice given
/// to [`RelabelProgram::build`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelabelBuildError {
    BadRegex {
        rule: usize,
        pattern: String,
        reason: String,
    },
    /// `replace`, `hashmod`, `lowercase`, `uppercase`, `keepequal` and
    /// `dropequal` write or read `target_label`; it must be set.
    MissingTargetLabel {
        rule: usize,
        action: &'static str,
    },
    ZeroModulus {
        rule: usize,
    },
}

impl fmt::Display for RelabelBuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RelabelBuildError::BadRegex {
                rule,
                pattern,
                reason,
            } => {
                write!(
                    f,
                    "relabel rule {rule}: field `regex` `{pattern}` does not compile: {reason}"
                )
            }
            RelabelBuildError::MissingTargetLabel { rule, action } => write!(
                f,
                "relabel rule {rule}: action `{action}` needs field `target_label`"
            ),
            RelabelBuildError::ZeroModulus { rule } => {
                write!(
                    f,
                    "relabel rule {rule}: action `hashmod` needs field `modulus` > 0"
                )
            }
        }
    }
}

/// Compiled rules plus the buffers `apply` works in.
pub struct RelabelProgram {
    rules: Vec<Rule>,
    scratch: RelabelScratch,
    dropped_at_limit: u64,
}

impl fmt::Debug for RelabelProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelabelProgram")
            .field("rules", &self.rules.len())
            .field("max_label_bytes", &self.scratch.max_label_bytes)
            .finish()
    }
}

struct Rule {
    action: RelabelAction,
    sources: Vec<String>,
    separator: String,
    matcher: Matcher,
    modulus: u64,
    target: Template,
    replacement: Template,
}

/// The buffers [`RelabelProgram::apply`] works in. A program owns one, sized
/// for its rules; a target's metric relabeling borrows one from the scrape
/// slot it runs in instead (see [`RelabelProgram::lend_scratch`]).
pub struct RelabelScratch {
    joined: String,
    value: String,
    target: String,
    slots: Vec<Option<NonMaxUsize>>,
    /// Labels as they were before a `labelmap` rule.
    snapshot: LabelSet,
    max_label_bytes: usize,
}

impl RelabelProgram {
    /// Compiles `rules` (strings resolved through `plan`). `max_label_bytes`
    /// bounds the names and values of one series together, as the caller's
    /// [`LabelSet`] does; scratch buffers are sized from it.
    pub fn build(
        plan: &Plan,
        rules: &[RelabelRule],
        max_label_bytes: usize,
    ) -> Result<RelabelProgram, RelabelBuildError> {
        let mut name_chars = NameChars::default();
        let mut compiled = Vec::with_capacity(rules.len());
        let mut joined_cap = 0;
        let mut slots_len = 0;
        let mut needs_snapshot = false;
        for (index, rule) in rules.iter().enumerate() {
            let compiled_rule = compile_rule(plan, index, rule, &mut name_chars)?;
            joined_cap = joined_cap.max(joined_bound(&compiled_rule, max_label_bytes));
            slots_len = slots_len.max(compiled_rule.matcher.slot_len());
            needs_snapshot |= compiled_rule.action == RelabelAction::LabelMap;
            compiled.push(compiled_rule);
        }
        let value_cap = max_label_bytes.max(MIN_SCRATCH_BYTES);
        let snapshot = if needs_snapshot {
            // Label count is unknown here; `reserve_labels` or the first
            // labelmap run sizes it.
            LabelSet::with_capacity(0, max_label_bytes)
        } else {
            LabelSet::with_capacity(0, 0)
        };
        Ok(RelabelProgram {
            rules: compiled,
            scratch: RelabelScratch {
                joined: String::with_capacity(joined_cap.max(MIN_SCRATCH_BYTES)),
                value: String::with_capacity(value_cap),
                target: String::with_capacity(value_cap),
                slots: alloc::vec![None; slots_len.max(4)],
                snapshot,
                max_label_bytes,
            },
            dropped_at_limit: 0,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Sizes the `labelmap` snapshot for label sets of up to `max_labels`
    /// pairs, so the first series does not allocate it.
    pub fn reserve_labels(&mut self, max_labels: usize) {
        let needs_snapshot = self.rules.iter().any(|r| r.action == RelabelAction::LabelMap);
        if needs_snapshot && self.scratch.snapshot.max_labels() < max_labels {
            self.scratch.snapshot = LabelSet::with_capacity(max_labels, self.scratch.max_label_bytes);
        }
    }

    /// Heap bytes held now: compiled regexes, their caches and the scratch
    /// buffers. Each regex cache may grow to [`DFA_CACHE_BYTES`] on inputs
    /// that visit many DFA states; [`RelabelProgram::regex_count`] gives the
    /// multiplier for a worst-case figure.
    pub fn heap_bytes(&self) -> usize {
        let s = &self.scratch;
        let label_set = |l: &LabelSet| l.max_labels() * 16 + 2 * s.max_label_bytes.min(usize::MAX / 4);
        let snapshot = if s.snapshot.max_labels() > 0 {
            label_set(&s.snapshot)
        } else {
            0
        };
        let rules: usize = self
            .rules
            .iter()
            .map(|r| {
                let strings: usize =
                    r.sources.iter().map(String::capacity).sum::<usize>() + r.separator.capacity();
                core::mem::size_of::<Rule>() + strings + r.matcher.heap_bytes()
            })
            .sum();
        rules
            + s.joined.capacity()
            + s.value.capacity()
            + s.target.capacity()
            + s.slots.len() * core::mem::size_of::<Option<NonMaxUsize>>()
            + snapshot
    }

    /// What this program's scratch needs, to size a shared one that fits
    /// several programs (see [`RelabelScratch::with_room`]).
    pub fn scratch_room(&self) -> ScratchRoom {
        let s = &self.scratch;
        ScratchRoom {
            joined: s.joined.capacity(),
            value: s.value.capacity().max(s.target.capacity()),
            slots: s.slots.len(),
            snapshot_labels: s.snapshot.max_labels(),
            snapshot_bytes: if s.snapshot.max_labels() > 0 || self.needs_snapshot() {
                s.max_label_bytes
            } else {
                0
            },
            max_label_bytes: s.max_label_bytes,
        }
    }

    fn needs_snapshot(&self) -> bool {
        self.rules.iter().any(|r| r.action == RelabelAction::LabelMap)
    }

    /// Gives up the program's own scratch: from now on it runs only in a
    /// scratch lent to it with [`RelabelProgram::lend_scratch`].
    pub fn drop_scratch(&mut self) {
        self.scratch = RelabelScratch::with_room(&ScratchRoom::default());
    }

    /// Swaps the program's scratch with `other`: lending a shared scratch
    /// in, and taking it back out after the work, each without allocating.
    pub fn lend_scratch(&mut self, other: &mut RelabelScratch) {
        core::mem::swap(&mut self.scratch, other);
    }

    /// Rules that run the regex engine (each with its own lazy DFA cache).
    pub fn regex_count(&self) -> usize {
        self.rules
            .iter()
            .filter(|r| matches!(r.matcher, Matcher::Regex(_)))
            .count()
    }

    /// Series dropped by [`RelabelProgram::apply`] because a rewritten label
    /// did not fit the label bounds.
    pub fn dropped_at_limit(&self) -> u64 {
        self.dropped_at_limit
    }

    /// Applies all rules in order to `labels` (which include `__name__`).
    /// Returns false when the series is dropped: by a `keep`/`drop` style
    /// rule, because no label is left, or because a rewrite hit a label bound
    /// (counted in [`RelabelProgram::dropped_at_limit`]).
    pub fn apply(&mut self, labels: &mut LabelSet) -> bool {
        match self.try_apply(labels) {
            Ok(keep) => keep,
            Err(_) => {
                self.dropped_at_limit += 1;
                false
            }
        }
    }

    /// Like [`RelabelProgram::apply`], but hands a label-bound error to the
    /// caller, who may fail the scrape instead (Prometheus's `label_limit`).
    /// On error `labels` holds the rules' work up to the failing rule.
    pub fn try_apply(&mut self, labels: &mut LabelSet) -> Result<bool, LabelError> {
        let RelabelProgram { rules, scratch, .. } = self;
        for rule in rules.iter_mut() {
            if !run_rule(rule, scratch, labels)? {
                return Ok(false);
            }
        }
        Ok(!labels.is_empty())
    }
}

/// Sizes of a [`RelabelScratch`]; [`ScratchRoom::max`] of several programs'
/// sizes one scratch that serves any of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScratchRoom {
    pub joined: usize,
    pub value: usize,
    pub slots: usize,
    pub snapshot_labels: usize,
    pub snapshot_bytes: usize,
    pub max_label_bytes: usize,
}

impl ScratchRoom {
    pub fn max(self, o: ScratchRoom) -> ScratchRoom {
        ScratchRoom {
            joined: self.joined.max(o.joined),
            value: self.value.max(o.value),
            slots: self.slots.max(o.slots),
            snapshot_labels: self.snapshot_labels.max(o.snapshot_labels),
            snapshot_bytes: self.snapshot_bytes.max(o.snapshot_bytes),
            max_label_bytes: self.max_label_bytes.max(o.max_label_bytes),
        }
    }
}

impl RelabelScratch {
    /// A scratch of the given sizes (all zero: one that holds nothing).
    pub fn with_room(room: &ScratchRoom) -> RelabelScratch {
        RelabelScratch {
            joined: String::with_capacity(room.joined),
            value: String::with_capacity(room.value),
            target: String::with_capacity(room.value),
            slots: alloc::vec![None; room.slots],
            snapshot: LabelSet::with_capacity(room.snapshot_labels, room.snapshot_bytes),
            max_label_bytes: room.max_label_bytes,
        }
    }
}

fn compile_rule(
    plan: &Plan,
    index: usize,
    rule: &RelabelRule,
    name_chars: &mut NameChars,
) -> Result<Rule, RelabelBuildError> {
    use RelabelAction as A;
    let action = rule.action;
    let target_text = plan.str(rule.target_label);
    let needs_target = matches!(
        action,
        A::Replace | A::HashMod | A::Lowercase | A::Uppercase | A::KeepEqual | A::DropEqual
    );
    if needs_target && target_text.is_empty() {
        return Err(RelabelBuildError::MissingTargetLabel {
            rule: index,
            action: action.name(),
        });
    }
    if action == A::HashMod && rule.modulus == 0 {
        return Err(RelabelBuildError::ZeroModulus { rule: index });
    }
    let uses_regex = matches!(
        action,
        A::Replace | A::Keep | A::Drop | A::LabelMap | A::LabelDrop | A::LabelKeep
    );
    let pattern = plan.str(rule.regex);
    let matcher = if !uses_regex {
        Matcher::Unused
    } else if pattern == MATCH_ALL {
        Matcher::All
    } else {
        compile_regex(pattern).map_err(|reason| RelabelBuildError::BadRegex {
            rule: index,
            pattern: String::from(pattern),
            reason,
        })?
    };
    let replacement_text = plan.str(rule.replacement);
    let (target, replacement) = match action {
        A::Replace => (
            Template::parse(target_text, &matcher, name_chars),
            Template::parse(replacement_text, &matcher, name_chars),
        ),
        A::LabelMap => (
            Template::literal(""),
            Template::parse(replacement_text, &matcher, name_chars),
        ),
        _ => (Template::literal(target_text), Template::literal("")),
    };
    Ok(Rule {
        action,
        sources: rule
            .source_labels
            .iter()
            .map(|&id| String::from(plan.str(id)))
            .collect(),
        separator: String::from(plan.str(rule.separator)),
        matcher,
        modulus: rule.modulus,
        target,
        replacement,
    })
}

/// Longest joined value a rule can build from labels of `max_label_bytes`.
/// A label listed twice is counted twice.
fn joined_bound(rule: &Rule, max_label_bytes: usize) -> usize {
    let n = rule.sources.len();
    if n == 0 {
        return 0;
    }
    let most_repeats = rule
        .sources
        .iter()
        .map(|s| rule.sources.iter().filter(|t| *t == s).count())
        .max()
        .unwrap_or(1);
    most_repeats * max_label_bytes + (n - 1) * rule.separator.len()
}

pub(super) fn push_bounded(out: &mut String, part: &str, limit: usize) -> Result<(), LabelError> {
    if out.len() + part.len() > out.capacity() {
        return Err(LabelError::TooManyBytes { limit });
    }
    out.push_str(part);
    Ok(())
}

fn join_sources(rule: &Rule, labels: &LabelSet, out: &mut String, limit: usize) -> Result<(), LabelError> {
    out.clear();
    for (i, name) in rule.sources.iter().enumerate() {
        if i > 0 {
            push_bounded(out, &rule.separator, limit)?;
        }
        push_bounded(out, labels.get(name).unwrap_or(""), limit)?;
    }
    Ok(())
}

/// Runs one rule; false means the series is dropped.
fn run_rule(rule: &mut Rule, s: &mut RelabelScratch, labels: &mut LabelSet) -> Result<bool, LabelError> {
    use RelabelAction as A;
    let limit = s.max_label_bytes;
    match rule.action {
        A::Keep | A::Drop => {
            join_sources(rule, labels, &mut s.joined, limit)?;
            let matched = rule.matcher.is_match(&s.joined);
            Ok(matched == (rule.action == A::Keep))
        }
        A::KeepEqual | A::DropEqual => {
            join_sources(rule, labels, &mut s.joined, limit)?;
            let target = rule.target.literal_text();
            let equal = labels.get(target).unwrap_or("") == s.joined;
            Ok(equal == (rule.action == A::KeepEqual))
        }
        A::Replace => {
            join_sources(rule, labels, &mut s.joined, limit)?;
            if rule.matcher.captures(&s.joined, &mut s.slots).is_none() {
                return Ok(true);
            }
            rule.target.expand(&s.joined, &s.slots, &mut s.target, limit)?;
            if s.target.is_empty() {
                return Ok(true);
            }
            rule.replacement
                .expand(&s.joined, &s.slots, &mut s.value, limit)?;
            labels.set(&s.target, &s.value)?;
            Ok(true)
        }
        A::Lowercase | A::Uppercase => {
            join_sources(rule, labels, &mut s.joined, limit)?;
            s.value.clear();
            let upper = rule.action == A::Uppercase;
            for c in s.joined.chars() {
                let mapped = if upper { upper_char(c) } else { lower_char(c) };
                let mut buf = [0u8; 4];
                push_bounded(&mut s.value, mapped.encode_utf8(&mut buf), limit)?;
            }
            labels.set(rule.target.literal_text(), &s.value)?;
            Ok(true)
        }
        A::HashMod => {
            join_sources(rule, labels, &mut s.joined, limit)?;
            let digest = Md5::digest(s.joined.as_bytes());
            let mut tail = [0u8; 8];
            tail.copy_from_slice(&digest[8..]);
            let bucket = u64::from_be_bytes(tail) % rule.modulus;
            s.value.clear();
            // The scratch holds at least MIN_SCRATCH_BYTES, enough for any u64.
            let _ = write!(s.value, "{bucket}");
            labels.set(rule.target.literal_text(), &s.value)?;
            Ok(true)
        }
        A::LabelMap => {
            if s.snapshot.max_labels() < labels.len() {
                // Only when `reserve_labels` was not told the label bound.
                s.snapshot = LabelSet::with_capacity(labels.max_labels(), limit);
            }
            s.snapshot.copy_from(labels)?;
            for i in 0..s.snapshot.len() {
                let (name, value) = s.snapshot.at(i);
                if rule.matcher.captures(name, &mut s.slots).is_none() {
                    continue;
                }
                rule.replacement.expand(name, &s.slots, &mut s.target, limit)?;
                if !s.target.is_empty() {
                    labels.set(&s.target, value)?;
                }
            }
            Ok(true)
        }
        A::LabelDrop | A::LabelKeep => {
            let keep_matching = rule.action == A::LabelKeep;
            let matcher = &mut rule.matcher;
            labels.retain(|name, _| matcher.is_match(name) == keep_matching);
            Ok(true)
        }
    }
}

/// Go's `unicode.ToLower` is a one-to-one mapping; Rust's full mapping only
/// expands `İ`, whose simple lowercase is the first character, `i`.
fn lower_char(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    c.to_lowercase().next().unwrap_or(c)
}

/// One-to-one uppercase; characters whose full mapping expands are kept.
fn upper_char(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_uppercase();
    }
    let mut mapped = c.to_uppercase();
    match (mapped.next(), mapped.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

#[cfg(test)]
mod tests {
    use super::regex::translate_go_syntax;
    use super::template::{go_group_number, Piece};
    use super::*;
    use std::string::ToString;
    use std::vec;

    #[test]
    fn go_numbers_follow_expand_rules() {
        assert_eq!(go_group_number("1"), Some(1));
        assert_eq!(go_group_number("0"), Some(0));
        assert_eq!(go_group_number("01"), None);
        assert_eq!(go_group_number("1x"), None);
        assert_eq!(go_group_number("123456789"), Some(123_456_789));
        assert_eq!(go_group_number("1234567890"), None);
    }

    #[test]
    fn translation_keeps_go_meaning() {
        assert_eq!(translate_go_syntax(r"a\d+"), "a[0-9]+");
        assert_eq!(translate_go_syntax(r"[\d_]"), "[0-9_]");
        assert_eq!(translate_go_syntax(r"[^\S]"), r"[^[^\t\n\f\r ]]");
        assert_eq!(translate_go_syntax(r"[[]"), r"[\[]");
        assert_eq!(translate_go_syntax(r"[]a]"), "[]a]");
        assert_eq!(translate_go_syntax(r"[[:alpha:]x]"), "[[:alpha:]x]");
        assert_eq!(translate_go_syntax(r"\bx\.y"), r"(?-u:\b)x\.y");
        assert_eq!(translate_go_syntax(r"[a&&b]"), r"[a\&\&b]");
        for p in [
            r"a\d+",
            r"[\d_]",
            r"[^\S]",
            r"[[]",
            r"[]a]",
            r"[[:alpha:]x]",
            r"\bx\.y",
            r"[a&&b]",
        ] {
            assert!(compile_regex(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn literal_patterns_skip_the_regex_engine() {
        let literal = |p: &str| matches!(compile_regex(p), Ok(Matcher::Literals(_)));
        assert!(literal("go_gc_.*|go_memstats_.*"));
        assert!(literal("uid"));
        assert!(literal(".*"));
        assert!(!literal("a.b"));
        assert!(!literal(r"team-\d+"));
        assert!(!literal("a.*.*"));
        assert!(!literal("(a)"));
        let mut m = compile_regex("go_gc_.*|up").ok().unwrap();
        assert!(m.is_match("go_gc_x") && m.is_match("up") && !m.is_match("upx") && !m.is_match("go_gc"));
    }

    #[test]
    fn template_parse_follows_go_expand() {
        let m = compile_regex("(?P<first>a)(b)").ok().unwrap();
        let mut nc = NameChars::default();
        let t = |s: &str, nc: &mut NameChars| Template::parse(s, &m, nc).pieces;
        assert_eq!(t("$1", &mut nc), vec![Piece::Group(1)]);
        assert_eq!(
            t("${2}x", &mut nc),
            vec![Piece::Group(2), Piece::Text("x".to_string())]
        );
        // `$1x` names group "1x", which does not exist.
        assert_eq!(t("$1x-", &mut nc), vec![Piece::Text("-".to_string())]);
        assert_eq!(t("$first", &mut nc), vec![Piece::Group(1)]);
        assert_eq!(t("$$1", &mut nc), vec![Piece::Text("$1".to_string())]);
        assert_eq!(t("${1", &mut nc), vec![Piece::Text("${1".to_string())]);
        assert_eq!(t("a$", &mut nc), vec![Piece::Text("a$".to_string())]);
        assert_eq!(t("$9", &mut nc), vec![]);
        assert_eq!(t("$é", &mut nc), vec![]);
        assert_eq!(t("$-", &mut nc), vec![Piece::Text("$-".to_string())]);
    }
}
