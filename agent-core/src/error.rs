//! Why a scrape failed. Every variant names the limit or the place, and
//! [`ScrapeError::reason`] gives the short name used in counters and logs.

use core::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScrapeError {
    /// The decompressed body passed `limits.body_bytes`.
    BodyTooLarge { limit: u32 },
    /// One exposition line is longer than the parser's line buffer.
    LineTooLong { line: u32, limit: u32 },
    /// More samples than `limits.samples` (Prometheus: `sample_limit`).
    SampleLimit { limit: u32 },
    /// A series has more labels than `limits.label_count` (Prometheus: `label_limit`).
    LabelLimit { line: u32, limit: u16 },
    /// A label name is longer than `limits.label_name_bytes`.
    LabelNameTooLong { line: u32, limit: u16 },
    /// A label value is longer than `limits.label_value_bytes`.
    LabelValueTooLong { line: u32, limit: u32 },
    /// The body is not valid UTF-8 at this line.
    InvalidUtf8 { line: u32 },
    /// The line does not follow the exposition format.
    Syntax { line: u32, what: &'static str },
    /// The same series appears twice in one scrape.
    DuplicateSeries { line: u32 },
    /// The body ended in the middle of a line or before OpenMetrics' `# EOF`.
    Truncated,
    /// The target's series, encoded, outgrew the series table sized from
    /// its limits (long target or relabel-added labels on many series).
    SeriesBytesLimit { limit: u64 },
    /// The agent-wide series pool (`series_pool` in the spec) had no room
    /// for the target's table to grow: the target's new series are refused
    /// this scrape, every other target's are untouched.
    SeriesPoolFull { max_series: u64, max_bytes: u64 },
}

impl ScrapeError {
    /// Short, stable name for counters (`reason="..."`) and log lines.
    pub fn reason(&self) -> &'static str {
        match self {
            ScrapeError::BodyTooLarge { .. } => "body_size_limit",
            ScrapeError::LineTooLong { .. } => "line_too_long",
            ScrapeError::SampleLimit { .. } => "sample_limit",
            ScrapeError::LabelLimit { .. } => "label_limit",
            ScrapeError::LabelNameTooLong { .. } => "label_name_length_limit",
            ScrapeError::LabelValueTooLong { .. } => "label_value_length_limit",
            ScrapeError::InvalidUtf8 { .. } => "invalid_utf8",
            ScrapeError::Syntax { .. } => "parse_error",
            ScrapeError::DuplicateSeries { .. } => "duplicate_series",
            ScrapeError::Truncated => "truncated",
            ScrapeError::SeriesBytesLimit { .. } => "series_bytes_limit",
            ScrapeError::SeriesPoolFull { .. } => "series_pool_full",
        }
    }
}

impl fmt::Display for ScrapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScrapeError::BodyTooLarge { limit } => {
                write!(f, "body exceeds limits.body_bytes ({limit} bytes)")
            }
            ScrapeError::LineTooLong { line, limit } => {
                write!(
                    f,
                    "line {line} is longer than {limit} bytes (one series: from limits.label_*, at most a sixteenth of limits.body_bytes)"
                )
            }
            ScrapeError::SampleLimit { limit } => write!(f, "more than limits.samples ({limit}) samples"),
            ScrapeError::LabelLimit { line, limit } => {
                write!(f, "line {line}: more than limits.label_count ({limit}) labels")
            }
            ScrapeError::LabelNameTooLong { line, limit } => {
                write!(
                    f,
                    "line {line}: label name longer than limits.label_name_bytes ({limit})"
                )
            }
            ScrapeError::LabelValueTooLong { line, limit } => {
                write!(
                    f,
                    "line {line}: label value longer than limits.label_value_bytes ({limit})"
                )
            }
            ScrapeError::InvalidUtf8 { line } => write!(f, "line {line}: invalid UTF-8"),
            ScrapeError::Syntax { line, what } => write!(f, "line {line}: {what}"),
            ScrapeError::DuplicateSeries { line } => write!(f, "line {line}: series repeated in one scrape"),
            ScrapeError::Truncated => write!(f, "body ended in the middle of a line"),
            ScrapeError::SeriesBytesLimit { limit } => write!(
                f,
                "encoded series exceed the series table's {limit} bytes (sized from limits.body_bytes and limits.samples)"
            ),
            ScrapeError::SeriesPoolFull { max_series, max_bytes } => write!(
                f,
                "the shared series pool is full (series_pool.max_series {max_series}, series_pool.max_size {max_bytes} bytes): the target's new series do not fit beside the other targets'"
            ),
        }
    }
}
