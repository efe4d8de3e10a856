//! A rule's regex: Prometheus's default and plain alternations of literals
//! matched without an engine, anything else translated from Go's RE2 syntax
//! and compiled anchored (`^(?s:RE)$`) into a lazy DFA with a bounded cache.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use regex_automata::meta;
use regex_automata::util::primitives::NonMaxUsize;
use regex_automata::{Input, PatternID};

use super::DFA_CACHE_BYTES;

pub(super) enum Matcher {
    /// Actions that never look at the regex.
    Unused,
    /// The default `(.*)`: matches anything, group 1 is the whole value.
    All,
    /// `lit`, `lit.*` and alternations of them, the usual shape of
    /// `drop`/`labeldrop` patterns: string compares instead of a regex
    /// search. Only group 0 exists, as in the regex.
    Literals(Vec<Branch>),
    /// Boxed: the regex and its cache are large next to the other variants.
    Regex(Box<CompiledRegex>),
}

pub(super) struct Branch {
    text: String,
    /// The branch ended in `.*`, which under `(?s)` matches any rest.
    any_suffix: bool,
}

impl Branch {
    pub(super) fn matches(&self, hay: &str) -> bool {
        if self.any_suffix {
            hay.starts_with(self.text.as_str())
        } else {
            hay == self.text
        }
    }
}

/// Splits a pattern made only of literal text, `.*` suffixes and `|` into
/// its branches; `None` for anything a regex must handle.
pub(super) fn literal_branches(pattern: &str) -> Option<Vec<Branch>> {
    pattern
        .split('|')
        .map(|branch| {
            let (text, any_suffix) = match branch.strip_suffix(".*") {
                Some(text) => (text, true),
                None => (branch, false),
            };
            if text.chars().any(|c| r"\.+*?()|[]{}^$".contains(c)) {
                return None;
            }
            Some(Branch {
                text: String::from(text),
                any_suffix,
            })
        })
        .collect()
}

pub(super) struct CompiledRegex {
    re: meta::Regex,
    cache: meta::Cache,
}

impl Matcher {
    /// What the compiled matcher holds on the heap.
    pub(super) fn heap_bytes(&self) -> usize {
        match self {
            Matcher::Regex(c) => c.re.memory_usage() + c.cache.memory_usage(),
            Matcher::Literals(b) => b.iter().map(|b| b.text.capacity()).sum(),
            Matcher::Unused | Matcher::All => 0,
        }
    }

    pub(super) fn is_match(&mut self, hay: &str) -> bool {
        match self {
            Matcher::Unused | Matcher::All => true,
            Matcher::Literals(branches) => branches.iter().any(|b| b.matches(hay)),
            Matcher::Regex(c) => {
                c.re.search_half_with(&mut c.cache, &Input::new(hay).earliest(true))
                    .is_some()
            }
        }
    }

    /// Fills `slots` (group `i` at `2i`, `2i+1`) and returns how many it set,
    /// or `None` when the regex does not match.
    pub(super) fn captures(&mut self, hay: &str, slots: &mut [Option<NonMaxUsize>]) -> Option<usize> {
        match self {
            Matcher::Unused => None,
            Matcher::All => {
                let end = NonMaxUsize::new(hay.len());
                let start = NonMaxUsize::new(0);
                slots[..4].copy_from_slice(&[start, end, start, end]);
                Some(4)
            }
            Matcher::Literals(branches) => {
                if !branches.iter().any(|b| b.matches(hay)) {
                    return None;
                }
                slots[0] = NonMaxUsize::new(0);
                slots[1] = NonMaxUsize::new(hay.len());
                Some(2)
            }
            Matcher::Regex(c) => {
                let n = c.re.group_info().slot_len();
                c.re.search_slots_with(&mut c.cache, &Input::new(hay), &mut slots[..n])?;
                Some(n)
            }
        }
    }

    pub(super) fn slot_len(&self) -> usize {
        match self {
            Matcher::Unused => 0,
            Matcher::All => 4,
            Matcher::Literals(_) => 2,
            Matcher::Regex(c) => c.re.group_info().slot_len(),
        }
    }

    /// Group index behind a `$name` reference, as Go resolves it.
    pub(super) fn group_named(&self, name: &str) -> Option<usize> {
        match self {
            Matcher::Regex(c) => c.re.group_info().to_index(PatternID::ZERO, name),
            _ => None,
        }
    }
}

pub(super) fn compile_regex(pattern: &str) -> Result<Matcher, String> {
    if let Some(branches) = literal_branches(pattern) {
        return Ok(Matcher::Literals(branches));
    }
    let translated = translate_go_syntax(pattern);
    let mut anchored = String::with_capacity(translated.len() + 8);
    anchored.push_str("^(?s:");
    anchored.push_str(&translated);
    anchored.push_str(")$");
    let config = meta::Config::new().hybrid_cache_capacity(DFA_CACHE_BYTES);
    let re = meta::Builder::new()
        .configure(config)
        .build(&anchored)
        .map_err(|e| {
            let mut reason = String::new();
            let _ = write!(reason, "{e}");
            reason
        })?;
    let cache = re.create_cache();
    Ok(Matcher::Regex(Box::new(CompiledRegex { re, cache })))
}

/// Rewrites Go RE2 syntax into regex-automata syntax where the two differ in
/// meaning: Perl classes and word boundaries are ASCII in Go, `[` inside a
/// class is literal in Go, and `&&`/`~~` are not class operators in Go.
pub(super) fn translate_go_syntax(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    // A `]` right after `[` or `[^` is a literal in both syntaxes.
    let mut class_start = false;
    while let Some(c) = chars.next() {
        let at_class_start = class_start;
        class_start = false;
        match c {
            '\\' => {
                let Some(e) = chars.next() else {
                    out.push('\\');
                    break;
                };
                let (positive, negated) = match e {
                    'd' | 'D' => ("0-9", e == 'D'),
                    'w' | 'W' => ("0-9A-Za-z_", e == 'W'),
                    's' | 'S' => (r"\t\n\f\r ", e == 'S'),
                    'b' | 'B' if !in_class => {
                        out.push_str(if e == 'b' { r"(?-u:\b)" } else { r"(?-u:\B)" });
                        continue;
                    }
                    _ => {
                        out.push('\\');
                        out.push(e);
                        continue;
                    }
                };
                match (in_class, negated) {
                    (true, false) => out.push_str(positive),
                    _ => {
                        out.push('[');
                        if negated {
                            out.push('^');
                        }
                        out.push_str(positive);
                        out.push(']');
                    }
                }
            }
            '[' if !in_class => {
                out.push('[');
                in_class = true;
                class_start = true;
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
            }
            '[' => {
                if chars.peek() == Some(&':') {
                    // POSIX class `[:alpha:]`: same meaning in both, copy it.
                    out.push('[');
                    for p in chars.by_ref() {
                        out.push(p);
                        if p == ']' {
                            break;
                        }
                    }
                } else {
                    out.push_str(r"\[");
                }
            }
            ']' if in_class && !at_class_start => {
                out.push(']');
                in_class = false;
            }
            '&' | '~' if in_class => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}
