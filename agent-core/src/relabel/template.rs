//! Replacement and target templates, parsed once: text and capture-group
//! references as Go's `Regexp.Expand` reads them.

use alloc::string::String;
use alloc::vec::Vec;

use regex_automata::meta;
use regex_automata::util::primitives::NonMaxUsize;

use super::push_bounded;
use super::regex::Matcher;
use crate::labels::LabelError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Piece {
    Text(String),
    Group(usize),
}

/// A replacement or target template, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Template {
    pub(super) pieces: Vec<Piece>,
}

impl Template {
    /// The template as plain text, for actions that take `target_label`
    /// literally.
    pub(super) fn literal_text(&self) -> &str {
        match self.pieces.first() {
            Some(Piece::Text(text)) => text,
            _ => "",
        }
    }

    pub(super) fn literal(text: &str) -> Template {
        let pieces = if text.is_empty() {
            Vec::new()
        } else {
            alloc::vec![Piece::Text(String::from(text))]
        };
        Template { pieces }
    }

    /// Parses Go's `Regexp.Expand` template syntax, resolving names against
    /// `matcher` so that expansion is a plain copy loop.
    pub(super) fn parse(template: &str, matcher: &Matcher, name_chars: &mut NameChars) -> Template {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = template;
        while let Some(dollar) = rest.find('$') {
            text.push_str(&rest[..dollar]);
            rest = &rest[dollar + 1..];
            if let Some(after) = rest.strip_prefix('$') {
                text.push('$');
                rest = after;
                continue;
            }
            let Some((name, after)) = name_chars.reference(rest) else {
                // Malformed reference: Go keeps the dollar as text.
                text.push('$');
                continue;
            };
            rest = after;
            let group = match go_group_number(name) {
                Some(n) => Some(n),
                None => matcher.group_named(name),
            };
            // A group the regex does not have expands to nothing.
            if let Some(g) = group.filter(|g| 2 * g + 1 < matcher.slot_len()) {
                if !text.is_empty() {
                    pieces.push(Piece::Text(core::mem::take(&mut text)));
                }
                pieces.push(Piece::Group(g));
            }
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Template { pieces }
    }

    /// Writes the expansion into `out` (cleared first), never past its
    /// capacity: a result that would not fit could not be stored as a label.
    pub(super) fn expand(
        &self,
        hay: &str,
        slots: &[Option<NonMaxUsize>],
        out: &mut String,
        limit: usize,
    ) -> Result<(), LabelError> {
        out.clear();
        for piece in &self.pieces {
            let part = match piece {
                Piece::Text(t) => t.as_str(),
                Piece::Group(g) => match (slots[2 * g], slots[2 * g + 1]) {
                    (Some(start), Some(end)) => &hay[start.get()..end.get()],
                    _ => "",
                },
            };
            push_bounded(out, part, limit)?;
        }
        Ok(())
    }
}

/// Go's number rule: all ASCII digits, below 1e8, no leading zero.
pub(super) fn go_group_number(name: &str) -> Option<usize> {
    if name.len() > 1 && name.starts_with('0') {
        return None;
    }
    let mut n: usize = 0;
    for b in name.bytes() {
        if !b.is_ascii_digit() || n >= 100_000_000 {
            return None;
        }
        n = n * 10 + usize::from(b - b'0');
    }
    Some(n)
}

/// Classifies name characters of a template reference the way Go does
/// (`unicode.IsLetter`, `unicode.IsDigit`, `_`). ASCII is decided inline; the
/// Unicode classes are compiled only if a template needs them.
#[derive(Default)]
pub(super) struct NameChars {
    unicode: Option<meta::Regex>,
}

impl NameChars {
    pub(super) fn is_name_char(&mut self, c: char) -> bool {
        if c.is_ascii() {
            return c.is_ascii_alphanumeric() || c == '_';
        }
        let re = self.unicode.get_or_insert_with(|| {
            // A fixed, valid pattern: it cannot fail to compile.
            meta::Regex::new(r"^[\p{L}\p{Nd}]$").expect("fixed pattern")
        });
        let mut buf = [0u8; 4];
        re.is_match(c.encode_utf8(&mut buf) as &str)
    }

    /// Splits `$`-less text after a dollar into the referenced name and the
    /// rest, or `None` when the reference is malformed.
    pub(super) fn reference<'t>(&mut self, after_dollar: &'t str) -> Option<(&'t str, &'t str)> {
        let (braced, body) = match after_dollar.strip_prefix('{') {
            Some(b) => (true, b),
            None => (false, after_dollar),
        };
        let end = body
            .char_indices()
            .find(|&(_, c)| !self.is_name_char(c))
            .map_or(body.len(), |(i, _)| i);
        if end == 0 {
            return None;
        }
        let name = &body[..end];
        if braced {
            let rest = body[end..].strip_prefix('}')?;
            Some((name, rest))
        } else {
            Some((name, &body[end..]))
        }
    }
}
