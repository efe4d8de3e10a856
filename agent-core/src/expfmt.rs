//! Streaming parser for the Prometheus text format 0.0.4 and OpenMetrics 1.0
//! text, fed scrape bodies in whatever chunks the socket and the inflater
//! hand over.
//!
//! Lines are parsed in place from the caller's chunk; only a line that
//! straddles two chunks is copied, into a line buffer sized once in
//! [`Parser::new`] from the target's limits. Labels go into one reusable
//! [`LabelSet`], escaped label values into one reusable string. After `new`
//! nothing allocates, whatever the body looks like.
//!
//! What is checked, and how it fails (line numbers are 1-based):
//! - body longer than `limits.body_bytes` -> [`ScrapeError::BodyTooLarge`],
//!   counted over every byte fed since [`Parser::reset`]; the lines before
//!   the limit are still parsed first, so a body fails with the same error
//!   however it is cut into chunks (a property test holds this);
//! - a line longer than [`Limits::max_line_bytes`] -> `LineTooLong`;
//! - more than `limits.label_count` labels on a sample (the metric name is
//!   not counted) -> `LabelLimit`;
//! - a label name over `label_name_bytes` -> `LabelNameTooLong`; a label value
//!   (after unescaping) or the metric name over `label_value_bytes` ->
//!   `LabelValueTooLong` (Prometheus applies `label_value_length_limit` to
//!   `__name__` too);
//! - bytes that are not UTF-8 -> `InvalidUtf8`; anything else that does not
//!   follow the grammar -> `Syntax` with a short phrase.
//!
//! The first error is sticky: every later call returns it until `reset`.
//!
//! HELP, TYPE and UNIT lines are checked (metric name, known type) and then
//! dropped: remote write 1.0 carries samples only. HELP text is not
//! unescaped, since nothing reads it. OpenMetrics exemplars are skipped.
//! Timestamps in OpenMetrics are seconds; they become milliseconds the way
//! Prometheus does it, `(seconds * 1000) as i64`, truncating.
//!
//! The parser is lenient where being strict buys nothing: blanks around
//! names, `=`, `,` and braces, a trailing comma in a label list, `\r\n` line
//! ends, blank lines and free comments are all accepted, in both formats.
//! It is strict where a sample could come out wrong: a repeated label name,
//! `__name__` given as a label, an unknown TYPE, a non-integer text-format
//! timestamp, anything after OpenMetrics' `# EOF`, or a body that ends
//! without it.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::error::ScrapeError;
use crate::labels::{LabelError, LabelSet};
use crate::plan::Limits;

/// The two exposition formats a target may answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpositionFormat {
    PrometheusText,
    OpenMetrics,
}

impl ExpositionFormat {
    /// Picks the format from a response's `Content-Type`. Anything that is not
    /// OpenMetrics is read as the Prometheus text format, as Prometheus does.
    pub fn from_content_type(content_type: &str) -> ExpositionFormat {
        let media_type = content_type.split(';').next().unwrap_or("").trim();
        if media_type.eq_ignore_ascii_case("application/openmetrics-text") {
            ExpositionFormat::OpenMetrics
        } else {
            ExpositionFormat::PrometheusText
        }
    }
}

/// Writes `value` as a label value of the text format: backslash, double
/// quote and newline escaped, the inverse of what the parser unescapes.
pub fn write_label_value(out: &mut (impl fmt::Write + ?Sized), value: &str) -> fmt::Result {
    let mut rest = value;
    while let Some(i) = rest.find(['\\', '"', '\n']) {
        out.write_str(&rest[..i])?;
        out.write_str(match rest.as_bytes()[i] {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            _ => "\\n",
        })?;
        rest = &rest[i + 1..];
    }
    out.write_str(rest)
}

/// One sample, borrowed from the parser until the sink returns.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// Metric name as exposed (for OpenMetrics counters, with `_total`).
    pub name: &'a str,
    /// The sample's own labels in exposition order, without `__name__`.
    pub labels: &'a LabelSet,
    /// `NaN`, `+Inf` and `-Inf` included; a parsed NaN is always the ordinary
    /// quiet NaN, never Prometheus's stale marker.
    pub value: f64,
    /// Milliseconds since the Unix epoch, if the line carried a timestamp.
    pub timestamp_ms: Option<i64>,
}

/// Receives every sample; an error it returns stops the body and sticks.
pub type SampleSink<'s> = dyn FnMut(&Sample<'_>) -> Result<(), ScrapeError> + 's;

pub struct Parser {
    body_limit: u32,
    line_limit: usize,
    /// The start of a line whose end is still to come in a later chunk.
    partial_line: Vec<u8>,
    lines: LineParser,
    bytes_seen: u64,
    error: Option<ScrapeError>,
}

impl Parser {
    /// Sizes every buffer from `limits`; nothing is allocated after this.
    pub fn new(limits: &Limits) -> Parser {
        let line_limit = limits.max_line_bytes();
        let label_count = limits.max_labels();
        let label_bytes = limits.series_label_bytes();
        Parser {
            body_limit: limits.body_bytes,
            line_limit,
            partial_line: Vec::with_capacity(line_limit),
            lines: LineParser {
                format: ExpositionFormat::PrometheusText,
                line: 0,
                eof_seen: false,
                labels: LabelSet::with_capacity(label_count, label_bytes),
                name_spans: Vec::with_capacity(label_count),
                unescaped: String::with_capacity((limits.label_value_bytes as usize).min(line_limit)),
                label_count: limits.label_count,
                label_name_bytes: limits.label_name_bytes,
                label_value_bytes: limits.label_value_bytes,
            },
            bytes_seen: 0,
            error: None,
        }
    }

    /// Enforces `limits` from now on. The buffers stay as they are: a parser
    /// shared by targets is sized for the largest limits of them all
    /// ([`Parser::new`] with those), and holds each target to its own.
    pub fn set_limits(&mut self, limits: &Limits) {
        self.body_limit = limits.body_bytes;
        self.line_limit = limits.max_line_bytes().min(self.partial_line.capacity());
        self.lines.label_count = limits.label_count;
        self.lines.label_name_bytes = limits.label_name_bytes;
        self.lines.label_value_bytes = limits.label_value_bytes;
    }

    /// Starts a new scrape body in `format`, keeping the buffers.
    pub fn reset(&mut self, format: ExpositionFormat) {
        self.partial_line.clear();
        self.lines.format = format;
        self.lines.line = 0;
        self.lines.eof_seen = false;
        self.lines.labels.clear();
        self.bytes_seen = 0;
        self.error = None;
    }

    pub fn format(&self) -> ExpositionFormat {
        self.lines.format
    }

    /// Bytes fed since the last `reset`, including any past the body limit.
    pub fn bytes_seen(&self) -> u64 {
        self.bytes_seen
    }

    /// Feeds the next piece of the body; every line it completes goes to `sink`.
    pub fn handle_chunk(&mut self, chunk: &[u8], sink: &mut SampleSink<'_>) -> Result<(), ScrapeError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let outcome = self.consume(chunk, sink);
        if let Err(e) = outcome {
            self.error = Some(e);
        }
        outcome
    }

    /// Ends the body: a last line without a newline is parsed, and an
    /// OpenMetrics body that never said `# EOF` fails as truncated.
    pub fn finish(&mut self, sink: &mut SampleSink<'_>) -> Result<(), ScrapeError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let mut outcome = Ok(());
        if !self.partial_line.is_empty() {
            outcome = self.lines.handle_line(&self.partial_line, sink);
            self.partial_line.clear();
        }
        if outcome.is_ok() && self.lines.format == ExpositionFormat::OpenMetrics && !self.lines.eof_seen {
            outcome = Err(ScrapeError::Truncated);
        }
        if let Err(e) = outcome {
            self.error = Some(e);
        }
        outcome
    }

    fn consume(&mut self, chunk: &[u8], sink: &mut SampleSink<'_>) -> Result<(), ScrapeError> {
        // Lines before the limit are still parsed, so that a body fails the
        // same way however it was cut into chunks.
        let room = u64::from(self.body_limit).saturating_sub(self.bytes_seen);
        let within = &chunk[..chunk.len().min(usize::try_from(room).unwrap_or(usize::MAX))];
        self.bytes_seen += chunk.len() as u64;
        self.consume_lines(within, sink)?;
        if within.len() < chunk.len() {
            return Err(ScrapeError::BodyTooLarge {
                limit: self.body_limit,
            });
        }
        Ok(())
    }

    fn consume_lines(&mut self, chunk: &[u8], sink: &mut SampleSink<'_>) -> Result<(), ScrapeError> {
        let mut rest = chunk;
        if !self.partial_line.is_empty() {
            match split_line(rest) {
                Some((line_end, after)) => {
                    self.keep_partial(line_end)?;
                    rest = after;
                    let outcome = self.lines.handle_line(&self.partial_line, sink);
                    self.partial_line.clear();
                    outcome?;
                }
                None => return self.keep_partial(rest),
            }
        }
        while let Some((line, after)) = split_line(rest) {
            if line.len() > self.line_limit {
                return Err(self.line_too_long());
            }
            self.lines.handle_line(line, sink)?;
            rest = after;
        }
        self.keep_partial(rest)
    }

    /// Appends to the partial line without ever growing its buffer.
    fn keep_partial(&mut self, bytes: &[u8]) -> Result<(), ScrapeError> {
        if self.partial_line.len() + bytes.len() > self.line_limit {
            return Err(self.line_too_long());
        }
        self.partial_line.extend_from_slice(bytes);
        Ok(())
    }

    fn line_too_long(&self) -> ScrapeError {
        ScrapeError::LineTooLong {
            line: self.lines.line.saturating_add(1),
            limit: u32::try_from(self.line_limit).unwrap_or(u32::MAX),
        }
    }
}

/// `(line without '\n', rest after it)`.
fn split_line(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = memchr::memchr(b'\n', input)?;
    Some((&input[..end], &input[end + 1..]))
}

/// State that lives across lines, apart from the partial-line buffer, so a
/// line borrowed from that buffer can be parsed while this is mutated.
struct LineParser {
    format: ExpositionFormat,
    /// Lines seen so far: the current line's number once it is counted.
    line: u32,
    eof_seen: bool,
    labels: LabelSet,
    /// `(offset, length)` of each label name of the current line, relative to
    /// the text after `{`, for spotting a repeated name.
    name_spans: Vec<(u32, u32)>,
    unescaped: String,
    label_count: u16,
    label_name_bytes: u16,
    label_value_bytes: u32,
}

/// `(rest, taken)` from the start of the input, or `None` if nothing fits.
type Taken<'a> = Option<(&'a str, &'a str)>;

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Byte classes for the hot scanning loops: one table lookup per byte.
const LABEL_NAME_BYTE: u8 = 1;
const METRIC_NAME_BYTE: u8 = 2;
const BLANK_BYTE: u8 = 4;

static BYTE_CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || c == b'_' {
            table[b] |= LABEL_NAME_BYTE | METRIC_NAME_BYTE;
        }
        if c == b':' {
            table[b] |= METRIC_NAME_BYTE;
        }
        if c == b' ' || c == b'\t' {
            table[b] |= BLANK_BYTE;
        }
        b += 1;
    }
    table
};

/// Length of the run of bytes at the start of `input` in `class`. The
/// classes are ASCII, so the run ends on a char boundary.
fn run_of(input: &str, class: u8) -> usize {
    let bytes = input.as_bytes();
    bytes
        .iter()
        .position(|&b| BYTE_CLASS[usize::from(b)] & class == 0)
        .unwrap_or(bytes.len())
}

/// Length of the run of bytes at the start of `input` outside `class`.
fn run_until(input: &str, class: u8) -> usize {
    let bytes = input.as_bytes();
    bytes
        .iter()
        .position(|&b| BYTE_CLASS[usize::from(b)] & class != 0)
        .unwrap_or(bytes.len())
}

fn blanks(input: &str) -> &str {
    &input[run_of(input, BLANK_BYTE)..]
}

fn token(input: &str) -> Taken<'_> {
    match run_until(input, BLANK_BYTE) {
        0 => None,
        n => Some((&input[n..], &input[..n])),
    }
}

/// A name of `class` bytes that does not start with a digit.
fn name_of(input: &str, class: u8) -> Taken<'_> {
    match run_of(input, class) {
        0 => None,
        _ if input.as_bytes()[0].is_ascii_digit() => None,
        n => Some((&input[n..], &input[..n])),
    }
}

fn metric_name(input: &str) -> Taken<'_> {
    name_of(input, METRIC_NAME_BYTE)
}

fn label_name(input: &str) -> Taken<'_> {
    name_of(input, LABEL_NAME_BYTE)
}

fn parse_value(text: &str) -> Option<f64> {
    // Rust's float grammar takes what Go's ParseFloat takes for exposition
    // purposes: decimals, exponents, `NaN`, `Inf`, `+Inf`, `-Inf`, any case.
    let v: f64 = text.parse().ok()?;
    Some(if v.is_nan() { f64::NAN } else { v })
}

const TEXT_TYPES: [&str; 5] = ["counter", "gauge", "histogram", "summary", "untyped"];
const OPENMETRICS_TYPES: [&str; 8] = [
    "counter",
    "gauge",
    "histogram",
    "gaugehistogram",
    "stateset",
    "info",
    "summary",
    "unknown",
];

impl LineParser {
    fn syntax(&self, what: &'static str) -> ScrapeError {
        ScrapeError::Syntax {
            line: self.line,
            what,
        }
    }

    fn handle_line(&mut self, raw: &[u8], sink: &mut SampleSink<'_>) -> Result<(), ScrapeError> {
        self.line = self.line.saturating_add(1);
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = core::str::from_utf8(raw).map_err(|_| ScrapeError::InvalidUtf8 { line: self.line })?;
        if self.eof_seen {
            return Err(self.syntax("data after # EOF"));
        }
        let line = blanks(line);
        if line.is_empty() {
            Ok(())
        } else if let Some(comment) = line.strip_prefix('#') {
            self.comment(comment)
        } else {
            self.sample(line, sink)
        }
    }

    /// `comment` is the line after its `#`.
    fn comment(&mut self, comment: &str) -> Result<(), ScrapeError> {
        let open_metrics = self.format == ExpositionFormat::OpenMetrics;
        if open_metrics && comment == " EOF" {
            self.eof_seen = true;
            return Ok(());
        }
        let after_hash = blanks(comment);
        if after_hash.len() == comment.len() {
            // `#word`: a plain comment in either format.
            return Ok(());
        }
        let Some((rest, keyword)) = token(after_hash) else {
            return Ok(());
        };
        let (what_name, what_after) = match keyword {
            "HELP" => ("invalid metric name in HELP", None),
            "TYPE" => ("invalid metric name in TYPE", Some("unknown metric type in TYPE")),
            "UNIT" if open_metrics => ("invalid metric name in UNIT", None),
            _ => return Ok(()),
        };
        let rest = rest
            .strip_prefix(is_blank)
            .map(blanks)
            .ok_or_else(|| self.syntax(what_name))?;
        let (rest, _) = metric_name(rest).ok_or_else(|| self.syntax(what_name))?;
        if !rest.is_empty() && !rest.starts_with(is_blank) {
            return Err(self.syntax(what_name));
        }
        if let Some(what_type) = what_after {
            let (rest, kind) = token(blanks(rest)).ok_or_else(|| self.syntax(what_type))?;
            let known: &[&str] = if open_metrics {
                &OPENMETRICS_TYPES
            } else {
                &TEXT_TYPES
            };
            if !known.contains(&kind) {
                return Err(self.syntax(what_type));
            }
            if !blanks(rest).is_empty() {
                return Err(self.syntax("unexpected text after the TYPE"));
            }
        }
        Ok(())
    }

    fn sample(&mut self, line: &str, sink: &mut SampleSink<'_>) -> Result<(), ScrapeError> {
        let line_no = self.line;
        let syntax = |what| ScrapeError::Syntax { line: line_no, what };
        let (rest, name) = metric_name(line).ok_or_else(|| syntax("invalid metric name"))?;
        if name.len() > self.label_value_bytes as usize {
            return Err(ScrapeError::LabelValueTooLong {
                line: line_no,
                limit: self.label_value_bytes,
            });
        }
        self.labels.clear();
        let after_name = blanks(rest);
        let rest = match after_name.strip_prefix('{') {
            Some(inside) => blanks(self.labels(inside)?),
            // Name and value need a blank between them: `a-1` is no sample.
            None if rest.is_empty() => return Err(syntax("missing value")),
            None if after_name.len() == rest.len() => return Err(syntax("invalid metric name")),
            None => after_name,
        };
        let (rest, value_text) = token(rest).ok_or_else(|| syntax("missing value"))?;
        let value = parse_value(value_text).ok_or(syntax("invalid value"))?;
        let mut rest = blanks(rest);
        let open_metrics = self.format == ExpositionFormat::OpenMetrics;
        let mut timestamp_ms = None;
        let exemplar_next = open_metrics && rest.starts_with('#');
        if !rest.is_empty() && !exemplar_next {
            let (after, ts_text) = token(rest).ok_or_else(|| syntax("invalid timestamp"))?;
            timestamp_ms = Some(if open_metrics {
                let seconds: f64 = ts_text.parse().map_err(|_| syntax("invalid timestamp"))?;
                if !seconds.is_finite() {
                    return Err(syntax("invalid timestamp"));
                }
                (seconds * 1000.0) as i64
            } else {
                ts_text.parse::<i64>().map_err(|_| syntax("invalid timestamp"))?
            });
            rest = blanks(after);
        }
        if !rest.is_empty() {
            let exemplar = rest.strip_prefix('#').filter(|_| open_metrics).map(blanks);
            match exemplar {
                // The exemplar's labels and value are not kept: remote write 1.0
                // has no place for them.
                Some(e) if e.starts_with('{') => {}
                Some(_) => return Err(syntax("invalid exemplar")),
                None => return Err(syntax("unexpected text after the sample")),
            }
        }
        sink(&Sample {
            name,
            labels: &self.labels,
            value,
            timestamp_ms,
        })
    }

    /// Parses `name="value",...}` (the input starts after `{`) into
    /// `self.labels`; returns the rest of the line after `}`.
    fn labels<'l>(&mut self, inside: &'l str) -> Result<&'l str, ScrapeError> {
        let line = self.line;
        let syntax = |what| ScrapeError::Syntax { line, what };
        self.name_spans.clear();
        let mut rest = blanks(inside);
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                return Ok(after);
            }
            let (after, name) = label_name(rest).ok_or_else(|| syntax("invalid label name"))?;
            if name.len() > usize::from(self.label_name_bytes) {
                return Err(ScrapeError::LabelNameTooLong {
                    line,
                    limit: self.label_name_bytes,
                });
            }
            if name == "__name__" {
                return Err(syntax("__name__ given as a label"));
            }
            let after = blanks(after)
                .strip_prefix('=')
                .ok_or(syntax("expected '=' after a label name"))?;
            let after = blanks(after)
                .strip_prefix('"')
                .ok_or(syntax("expected '\"' to open a label value"))?;
            let (after, value) = label_value(after, &mut self.unescaped, self.label_value_bytes)
                .map_err(|e| e.at(line, self.label_value_bytes))?;
            // Names are compared where they sit in the line: cheaper than
            // asking the label set, which revalidates its text on access.
            let name_at = name.as_ptr() as usize - inside.as_ptr() as usize;
            let repeated = self.name_spans.iter().any(|&(at, len)| {
                len as usize == name.len()
                    && &inside.as_bytes()[at as usize..][..len as usize] == name.as_bytes()
            });
            if repeated {
                return Err(syntax("label name repeated in one series"));
            }
            self.labels.push(name, value).map_err(|e| match e {
                LabelError::TooManyLabels { .. } => ScrapeError::LabelLimit {
                    line,
                    limit: self.label_count,
                },
                // The set holds label_count names and values at their limits,
                // both checked above, so it cannot run out of bytes first.
                LabelError::TooManyBytes { .. } => ScrapeError::LabelValueTooLong {
                    line,
                    limit: self.label_value_bytes,
                },
            })?;
            // Pushed only once the set took the label, so never past label_count.
            debug_assert!(self.name_spans.len() < self.name_spans.capacity());
            self.name_spans.push((name_at as u32, name.len() as u32));
            rest = blanks(after);
            if let Some(after_comma) = rest.strip_prefix(',') {
                rest = blanks(after_comma);
            } else if !rest.starts_with('}') {
                return Err(syntax("expected ',' or '}' after a label value"));
            }
        }
    }
}

enum ValueError {
    Unclosed,
    TooLong,
}

impl ValueError {
    fn at(self, line: u32, limit: u32) -> ScrapeError {
        match self {
            ValueError::Unclosed => ScrapeError::Syntax {
                line,
                what: "label value is not closed",
            },
            ValueError::TooLong => ScrapeError::LabelValueTooLong { line, limit },
        }
    }
}

/// Reads a label value up to its closing quote (the input starts after the
/// opening one). `\\`, `\"` and `\n` are unescaped into `scratch`; any other
/// backslash pair is kept as written, as Prometheus does. Values without a
/// backslash are borrowed from the line.
fn label_value<'i: 'v, 's: 'v, 'v>(
    input: &'i str,
    scratch: &'s mut String,
    limit: u32,
) -> Result<(&'i str, &'v str), ValueError> {
    let limit = limit as usize;
    let (rest, head) = plain_run(input);
    if head.len() > limit {
        return Err(ValueError::TooLong);
    }
    match rest.as_bytes().first() {
        Some(b'"') => return Ok((&rest[1..], head)),
        Some(_) => {}
        None => return Err(ValueError::Unclosed),
    }
    scratch.clear();
    scratch.push_str(head);
    let mut rest = rest;
    loop {
        // `rest` starts at a backslash or the closing quote.
        let mut chars = rest.chars();
        match chars.next() {
            Some('"') => return Ok((chars.as_str(), scratch.as_str())),
            Some('\\') => {
                let escaped = chars.next().ok_or(ValueError::Unclosed)?;
                let (first, second) = match escaped {
                    '\\' => ('\\', None),
                    '"' => ('"', None),
                    'n' => ('\n', None),
                    other => ('\\', Some(other)),
                };
                let added = first.len_utf8() + second.map_or(0, char::len_utf8);
                if scratch.len() + added > limit {
                    return Err(ValueError::TooLong);
                }
                scratch.push(first);
                if let Some(c) = second {
                    scratch.push(c);
                }
            }
            _ => return Err(ValueError::Unclosed),
        }
        let (after, run) = plain_run(chars.as_str());
        if scratch.len() + run.len() > limit {
            return Err(ValueError::TooLong);
        }
        scratch.push_str(run);
        if after.is_empty() {
            return Err(ValueError::Unclosed);
        }
        rest = after;
    }
}

/// `(rest, run)`: the run of a label value before its next quote or backslash.
fn plain_run(input: &str) -> (&str, &str) {
    let n = until_quote_or_backslash(input.as_bytes());
    (&input[n..], &input[..n])
}

/// Index of the first `"` or `\\` in `bytes`, or its length. Label values
/// (UUIDs, pod names) are the longest runs in a typical line, so this looks
/// at eight bytes per step: a byte equal to the sought one becomes zero
/// after the xor, and the classic "has a zero byte" test flags it. The
/// lowest flag is exact, which is the one taken. `memchr::memchr2` does the
/// same job but took 1.6% more of the whole parse's instructions on the KSM
/// body (callgrind): label values are too short for its vector loop.
fn until_quote_or_backslash(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const QUOTES: u64 = ONES * b'"' as u64;
    const BACKSLASHES: u64 = ONES * b'\\' as u64;
    let has_zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(word);
        let v = u64::from_le_bytes(eight);
        let found = has_zero_byte(v ^ QUOTES) | has_zero_byte(v ^ BACKSLASHES);
        if found != 0 {
            return at + (found.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    let tail = words.remainder();
    at + tail
        .iter()
        .position(|&b| b == b'"' || b == b'\\')
        .unwrap_or(tail.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;
    use std::vec;

    type Owned = (String, Vec<(String, String)>, f64, Option<i64>);

    fn limits() -> Limits {
        Limits {
            body_bytes: 1 << 20,
            samples: 1000,
            label_count: 4,
            label_name_bytes: 16,
            label_value_bytes: 32,
        }
    }

    fn parse_with(limits: &Limits, format: ExpositionFormat, body: &str) -> Result<Vec<Owned>, ScrapeError> {
        let mut parser = Parser::new(limits);
        parser.reset(format);
        let mut out = Vec::new();
        let mut sink = |s: &Sample<'_>| {
            out.push(owned(s));
            Ok(())
        };
        parser.handle_chunk(body.as_bytes(), &mut sink)?;
        parser.finish(&mut sink)?;
        Ok(out)
    }

    fn owned(s: &Sample<'_>) -> Owned {
        let labels = s
            .labels
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        (s.name.to_string(), labels, s.value, s.timestamp_ms)
    }

    fn text(body: &str) -> Result<Vec<Owned>, ScrapeError> {
        parse_with(&limits(), ExpositionFormat::PrometheusText, body)
    }

    fn om(body: &str) -> Result<Vec<Owned>, ScrapeError> {
        parse_with(&limits(), ExpositionFormat::OpenMetrics, body)
    }

    #[test]
    fn written_label_values_parse_back() {
        for value in ["plain", "a\\b", "say \"hi\"", "two\nlines", "\\\"\n\\n", "ünï"] {
            let mut body = String::from("m{l=\"");
            write_label_value(&mut body, value).unwrap();
            body.push_str("\"} 1\n");
            assert_eq!(
                text(&body),
                Ok(vec![one("m", &[("l", value)], 1.0, None)]),
                "{body}"
            );
        }
        let mut escaped = String::new();
        write_label_value(&mut escaped, "a\"b\\c\nd").unwrap();
        assert_eq!(escaped, "a\\\"b\\\\c\\nd");
    }

    fn one(name: &str, labels: &[(&str, &str)], value: f64, ts: Option<i64>) -> Owned {
        let labels = labels
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        (name.to_string(), labels, value, ts)
    }

    fn syntax(line: u32, what: &'static str) -> ScrapeError {
        ScrapeError::Syntax { line, what }
    }

    #[test]
    fn word_scan_finds_the_first_quote_or_backslash() {
        let naive = |b: &[u8]| b.iter().position(|&c| c == b'"' || c == b'\\').unwrap_or(b.len());
        for len in 0..40 {
            for at in 0..=len {
                for stop in [b'"', b'\\'] {
                    // Bytes next to the sought ones in value, and non-ASCII.
                    let mut bytes: Vec<u8> = (0..len)
                        .map(|i| [b'!', b'#', b'[', b']', 0xc3, 0x80][i % 6])
                        .collect();
                    if at < len {
                        bytes[at] = stop;
                        if at + 3 < len {
                            bytes[at + 3] = b'"';
                        }
                    }
                    assert_eq!(until_quote_or_backslash(&bytes), naive(&bytes), "{bytes:?}");
                }
            }
        }
    }

    #[test]
    fn content_type_picks_the_format() {
        for (ct, want) in [
            (
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ExpositionFormat::OpenMetrics,
            ),
            ("Application/OpenMetrics-Text", ExpositionFormat::OpenMetrics),
            (
                "text/plain; version=0.0.4; charset=utf-8",
                ExpositionFormat::PrometheusText,
            ),
            ("", ExpositionFormat::PrometheusText),
            ("application/json", ExpositionFormat::PrometheusText),
        ] {
            assert_eq!(ExpositionFormat::from_content_type(ct), want, "{ct}");
        }
    }

    #[test]
    fn text_format_constructs() {
        let cases: Vec<(&str, Vec<Owned>)> = vec![
            ("up 1\n", vec![one("up", &[], 1.0, None)]),
            ("up 1", vec![one("up", &[], 1.0, None)]),
            (
                "up 1 1700000000123\n",
                vec![one("up", &[], 1.0, Some(1_700_000_000_123))],
            ),
            ("up 1 -5\n", vec![one("up", &[], 1.0, Some(-5))]),
            ("up{} 2\n", vec![one("up", &[], 2.0, None)]),
            (
                "http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n",
                vec![one(
                    "http_requests_total",
                    &[("method", "post"), ("code", "200")],
                    1027.0,
                    Some(1_395_066_363_000),
                )],
            ),
            ("a{b=\"c\",} 1\n", vec![one("a", &[("b", "c")], 1.0, None)]),
            (
                "a { b = \"c\" , d=\"e\" } 1\n",
                vec![one("a", &[("b", "c"), ("d", "e")], 1.0, None)],
            ),
            ("a\t3.5e3\t7\n", vec![one("a", &[], 3500.0, Some(7))]),
            ("  a 1  \n", vec![one("a", &[], 1.0, None)]),
            ("a{x=\"\"} 1\n", vec![one("a", &[("x", "")], 1.0, None)]),
            (
                "ns:rule:rate5m 0.25\n",
                vec![one("ns:rule:rate5m", &[], 0.25, None)],
            ),
            ("_x{_y=\"z\"} -0\n", vec![one("_x", &[("_y", "z")], -0.0, None)]),
            (
                "a{path=\"C:\\\\dir\",q=\"say \\\"hi\\\"\",m=\"l1\\nl2\"} 1\n",
                vec![one(
                    "a",
                    &[("path", "C:\\dir"), ("q", "say \"hi\""), ("m", "l1\nl2")],
                    1.0,
                    None,
                )],
            ),
            (
                "a{t=\"tab\\there\"} 1\n",
                vec![one("a", &[("t", "tab\\there")], 1.0, None)],
            ),
            (
                "a{u=\"grüße ✓\"} 1\n",
                vec![one("a", &[("u", "grüße ✓")], 1.0, None)],
            ),
            ("a{b=\"}{,=\"} 1\n", vec![one("a", &[("b", "}{,=")], 1.0, None)]),
            (
                "a 1\r\nb 2\r\n",
                vec![one("a", &[], 1.0, None), one("b", &[], 2.0, None)],
            ),
            ("\n\n  \na 1\n\n", vec![one("a", &[], 1.0, None)]),
            (
                "# HELP a Some \\\\ help\\n with escapes\n# TYPE a counter\na 1\n",
                vec![one("a", &[], 1.0, None)],
            ),
            (
                "# HELP a\n# a free comment\n#no space\n# EOF\na 1\n",
                vec![one("a", &[], 1.0, None)],
            ),
            (
                "# TYPE a untyped\n#  TYPE  b   summary  \na 1\n",
                vec![one("a", &[], 1.0, None)],
            ),
            (
                "# UNIT whatever goes in text\na 1\n",
                vec![one("a", &[], 1.0, None)],
            ),
            ("", vec![]),
        ];
        for (body, want) in cases {
            assert_eq!(text(body).as_ref(), Ok(&want), "{body:?}");
        }
    }

    #[test]
    fn special_values() {
        let body = "a NaN\nb +Inf\nc -Inf\nd Inf\ne nan\nf 1e-3\ng .5\nh -12\n";
        let got = text(body).unwrap();
        let values: Vec<f64> = got.iter().map(|s| s.2).collect();
        assert!(values[0].is_nan());
        assert_eq!(values[0].to_bits(), f64::NAN.to_bits());
        assert_eq!(&values[1..4], &[f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY]);
        assert!(values[4].is_nan());
        assert_eq!(&values[5..], &[0.001, 0.5, -12.0]);
    }

    #[test]
    fn openmetrics_constructs() {
        let body = "# TYPE acme_requests counter\n\
            # UNIT acme_latency seconds\n\
            # HELP acme_requests Requests, \\\"quoted\\\" and \\\\.\n\
            acme_requests_total{path=\"/\"} 10 1520879607.789\n\
            acme_requests_created{path=\"/\"} 1520430000.123\n\
            # TYPE lat histogram\n\
            lat_bucket{le=\"0.1\"} 8 # {trace_id=\"KOO5S4vxi0o\"} 0.067 1520879602.415\n\
            lat_bucket{le=\"+Inf\"} 17 1520879607 # {trace_id=\"oHg5SJYRHA0\"} 9.8\n\
            lat_count 17\n\
            # TYPE st stateset\n\
            st{st=\"a\"} 1\n\
            # EOF\n";
        let got = om(body).unwrap();
        assert_eq!(
            got,
            vec![
                one(
                    "acme_requests_total",
                    &[("path", "/")],
                    10.0,
                    Some(1_520_879_607_789)
                ),
                one("acme_requests_created", &[("path", "/")], 1_520_430_000.123, None),
                one("lat_bucket", &[("le", "0.1")], 8.0, None),
                one("lat_bucket", &[("le", "+Inf")], 17.0, Some(1_520_879_607_000)),
                one("lat_count", &[], 17.0, None),
                one("st", &[("st", "a")], 1.0, None),
            ]
        );
        // Truncating seconds to milliseconds, as Prometheus does.
        assert_eq!(om("a 1 0.0019\n# EOF").unwrap()[0].3, Some(1));
        assert_eq!(om("a 1 -1.5\n# EOF\n").unwrap()[0].3, Some(-1500));
    }

    #[test]
    fn openmetrics_eof_rules() {
        assert_eq!(om("a 1\n"), Err(ScrapeError::Truncated));
        assert_eq!(om(""), Err(ScrapeError::Truncated));
        assert_eq!(om("a 1\n# EOF\r\n").map(|v| v.len()), Ok(1));
        assert_eq!(om("# EOF\na 1\n"), Err(syntax(2, "data after # EOF")));
        assert_eq!(om("# EOF\n\n"), Err(syntax(2, "data after # EOF")));
        // In the text format `# EOF` is only a comment.
        assert_eq!(text("# EOF\na 1\n").map(|v| v.len()), Ok(1));
    }

    #[test]
    fn syntax_errors_name_line_and_problem() {
        let cases = [
            ("ok 1\n1abc 2\n", syntax(2, "invalid metric name")),
            ("a-b 1\n", syntax(1, "invalid metric name")),
            ("a\n", syntax(1, "missing value")),
            ("a \n", syntax(1, "missing value")),
            ("a one\n", syntax(1, "invalid value")),
            ("a 1 2.5\n", syntax(1, "invalid timestamp")),
            ("a 1 2 3\n", syntax(1, "unexpected text after the sample")),
            ("a 1 # {x=\"y\"} 1\n", syntax(1, "invalid timestamp")),
            ("a{1b=\"c\"} 1\n", syntax(1, "invalid label name")),
            ("a{b:c=\"d\"} 1\n", syntax(1, "expected '=' after a label name")),
            ("a{b=c} 1\n", syntax(1, "expected '\"' to open a label value")),
            ("a{b=\"c} 1\n", syntax(1, "label value is not closed")),
            ("a{b=\"c\\\"} 1\n", syntax(1, "label value is not closed")),
            (
                "a{b=\"c\" d=\"e\"} 1\n",
                syntax(1, "expected ',' or '}' after a label value"),
            ),
            (
                "a{b=\"c\",b=\"d\"} 1\n",
                syntax(1, "label name repeated in one series"),
            ),
            (
                "a{bb=\"c\",b=\"d\",b=\"e\"} 1\n",
                syntax(1, "label name repeated in one series"),
            ),
            ("a{__name__=\"b\"} 1\n", syntax(1, "__name__ given as a label")),
            ("a{,} 1\n", syntax(1, "invalid label name")),
            ("# HELP 9bad x\n", syntax(1, "invalid metric name in HELP")),
            ("# HELP\n", syntax(1, "invalid metric name in HELP")),
            ("# TYPE a\n", syntax(1, "unknown metric type in TYPE")),
            ("# TYPE a stateset\n", syntax(1, "unknown metric type in TYPE")),
            (
                "# TYPE a counter extra\n",
                syntax(1, "unexpected text after the TYPE"),
            ),
        ];
        for (body, want) in cases {
            assert_eq!(text(body), Err(want), "{body:?}");
        }
        assert_eq!(text("a{bb=\"c\",b=\"d\"} 1\n").map(|v| v.len()), Ok(1));
        assert_eq!(om("a 1 NaN\n# EOF\n"), Err(syntax(1, "invalid timestamp")));
        assert_eq!(om("a 1 # trace\n# EOF\n"), Err(syntax(1, "invalid exemplar")));
        assert_eq!(
            om("# TYPE a untyped\n# EOF\n"),
            Err(syntax(1, "unknown metric type in TYPE"))
        );
        assert_eq!(
            om("# UNIT 1a s\n# EOF\n"),
            Err(syntax(1, "invalid metric name in UNIT"))
        );
    }

    #[test]
    fn invalid_utf8_is_reported_with_its_line() {
        let mut body = b"a 1\nb{c=\"".to_vec();
        body.extend_from_slice(&[0xff, 0xfe]);
        body.extend_from_slice(b"\"} 1\n");
        let mut parser = Parser::new(&limits());
        parser.reset(ExpositionFormat::PrometheusText);
        let got = parser.handle_chunk(&body, &mut |_| Ok(()));
        assert_eq!(got, Err(ScrapeError::InvalidUtf8 { line: 2 }));
    }

    #[test]
    fn each_limit_fails_with_its_reason() {
        let l = limits();
        // label_count = 4
        assert_eq!(
            text("a{a=\"1\",b=\"2\",c=\"3\",d=\"4\"} 1\nb{a=\"1\",b=\"2\",c=\"3\",d=\"4\",e=\"5\"} 1\n"),
            Err(ScrapeError::LabelLimit { line: 2, limit: 4 })
        );
        // label_name_bytes = 16
        assert!(text("a{abcdefghijklmnop=\"x\"} 1\n").is_ok());
        assert_eq!(
            text("a{abcdefghijklmnopq=\"x\"} 1\n"),
            Err(ScrapeError::LabelNameTooLong { line: 1, limit: 16 })
        );
        // label_value_bytes = 32, counted after unescaping.
        let v32 = "v".repeat(32);
        assert!(text(&std::format!("a{{x=\"{v32}\"}} 1\n")).is_ok());
        assert!(text(&std::format!("a{{x=\"{}\\\\\"}} 1\n", "v".repeat(31))).is_ok());
        assert_eq!(
            text(&std::format!("a{{x=\"{v32}w\"}} 1\n")),
            Err(ScrapeError::LabelValueTooLong { line: 1, limit: 32 })
        );
        assert_eq!(
            text(&std::format!("a{{x=\"\\\\{v32}\"}} 1\n")),
            Err(ScrapeError::LabelValueTooLong { line: 1, limit: 32 })
        );
        // The metric name counts as the value of __name__.
        assert_eq!(
            text(&std::format!("{v32}x 1\n")),
            Err(ScrapeError::LabelValueTooLong { line: 1, limit: 32 })
        );
        // Body bytes, over several chunks.
        let small = Limits { body_bytes: 10, ..l };
        let mut parser = Parser::new(&small);
        parser.reset(ExpositionFormat::PrometheusText);
        assert_eq!(parser.handle_chunk(b"a 1\nb 2\n", &mut |_| Ok(())), Ok(()));
        assert_eq!(
            parser.handle_chunk(b"c 3\n", &mut |_| Ok(())),
            Err(ScrapeError::BodyTooLarge { limit: 10 })
        );
        assert_eq!(parser.bytes_seen(), 12);
        // A bad line before the limit is what the scrape fails with.
        parser.reset(ExpositionFormat::PrometheusText);
        assert_eq!(
            parser.handle_chunk(b"a 1\nb x\nc 3\n", &mut |_| Ok(())),
            Err(syntax(2, "invalid value"))
        );
    }

    #[test]
    fn long_lines_fail_the_same_whole_or_split() {
        let l = limits();
        let max = l.max_line_bytes();
        let fits = std::format!("a{{x=\"1\"}} 1 {}\n", "0".repeat(max - 11));
        assert_eq!(fits.len(), max + 1);
        let too_long = std::format!("a 1\na{{x=\"1\"}} 1 {}\n", "0".repeat(max - 10));
        let want = ScrapeError::LineTooLong {
            line: 2,
            limit: max as u32,
        };
        for step in [1usize, 7, 4096, too_long.len()] {
            let mut parser = Parser::new(&l);
            parser.reset(ExpositionFormat::PrometheusText);
            let fit_outcome = fits
                .as_bytes()
                .chunks(step)
                .try_for_each(|c| parser.handle_chunk(c, &mut |_| Ok(())));
            // A timestamp of many zeros is 0: the longest allowed line parses.
            assert_eq!(fit_outcome, Ok(()), "step {step}");
            parser.reset(ExpositionFormat::PrometheusText);
            let outcome = too_long
                .as_bytes()
                .chunks(step)
                .try_for_each(|c| parser.handle_chunk(c, &mut |_| Ok(())));
            assert_eq!(outcome, Err(want), "step {step}");
        }
    }

    #[test]
    fn errors_stick_until_reset() {
        let mut parser = Parser::new(&limits());
        parser.reset(ExpositionFormat::PrometheusText);
        let mut count = 0;
        let mut sink = |_: &Sample<'_>| {
            count += 1;
            Ok(())
        };
        let bad = syntax(2, "invalid value");
        assert_eq!(parser.handle_chunk(b"a 1\nb x\nc 3\n", &mut sink), Err(bad));
        assert_eq!(parser.handle_chunk(b"d 4\n", &mut sink), Err(bad));
        assert_eq!(parser.finish(&mut sink), Err(bad));
        parser.reset(ExpositionFormat::PrometheusText);
        assert_eq!(parser.handle_chunk(b"d 4\n", &mut sink), Ok(()));
        assert_eq!(parser.finish(&mut sink), Ok(()));
        assert_eq!(count, 2);
    }

    #[test]
    fn sink_errors_stop_the_body_and_stick() {
        let mut parser = Parser::new(&limits());
        parser.reset(ExpositionFormat::PrometheusText);
        let limit = ScrapeError::SampleLimit { limit: 1 };
        let mut seen = 0;
        let mut sink = |_: &Sample<'_>| {
            seen += 1;
            if seen > 1 {
                Err(limit)
            } else {
                Ok(())
            }
        };
        assert_eq!(parser.handle_chunk(b"a 1\nb 2\nc 3\n", &mut sink), Err(limit));
        assert_eq!(parser.handle_chunk(b"d 4\n", &mut sink), Err(limit));
        assert_eq!(seen, 2);
    }

    #[test]
    fn a_line_split_anywhere_parses_the_same() {
        let body = "# HELP x y\nx{a=\"b\\\\c\",d=\"e\\\"f\"} 1.5 123\r\nz 2\n";
        let whole = text(body).unwrap();
        for cut in 0..=body.len() {
            let mut parser = Parser::new(&limits());
            parser.reset(ExpositionFormat::PrometheusText);
            let mut got = Vec::new();
            let mut sink = |s: &Sample<'_>| {
                got.push(owned(s));
                Ok(())
            };
            let (a, b) = body.as_bytes().split_at(cut);
            parser.handle_chunk(a, &mut sink).unwrap();
            parser.handle_chunk(b, &mut sink).unwrap();
            parser.finish(&mut sink).unwrap();
            assert_eq!(got, whole, "cut at {cut}");
        }
    }
}
