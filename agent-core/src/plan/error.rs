//! Why a plan was refused: each error names the field or the header part at fault.

use super::{HEADER_LEN, MIN_FORMAT_VERSION};
use core::fmt;

/// Why a plan was refused. Every variant names where the problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    TooShort {
        len: usize,
    },
    TooLong {
        len: usize,
        max: usize,
    },
    BadMagic,
    UnsupportedVersion {
        found: u16,
        supported: u16,
    },
    UnknownFlags(u16),
    LengthMismatch {
        header: u32,
        actual: usize,
    },
    Checksum {
        header: u32,
        actual: u32,
    },
    Payload(postcard::Error),
    TrailingBytes(usize),
    /// A [`StrId`] at `field` points past the string table.
    BadString {
        field: &'static str,
        id: u32,
        strings: usize,
    },
    /// A value at `field` is outside what the agent accepts.
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::TooShort { len } => {
                write!(f, "plan is {len} bytes, shorter than its {HEADER_LEN}-byte header")
            }
            PlanError::TooLong { len, max } => {
                write!(f, "plan is {len} bytes, larger than the {max}-byte limit")
            }
            PlanError::BadMagic => write!(f, "not an outpost plan (magic bytes do not match)"),
            PlanError::UnsupportedVersion { found, supported } => write!(
                f,
                "plan format version {found} is not supported by this agent (it reads versions {MIN_FORMAT_VERSION} to {supported}); use an outpostc that matches the agent"
            ),
            PlanError::UnknownFlags(flags) => write!(f, "plan header has unknown flags {flags:#06x}"),
            PlanError::LengthMismatch { header, actual } => write!(
                f,
                "plan header says {header} payload bytes but {actual} follow (truncated or padded file)"
            ),
            PlanError::Checksum { header, actual } => write!(
                f,
                "plan checksum mismatch: header {header:#010x}, payload {actual:#010x} (corrupt file)"
            ),
            PlanError::Payload(e) => write!(f, "plan payload does not decode: {e}"),
            PlanError::TrailingBytes(n) => write!(f, "plan payload has {n} bytes after the plan"),
            PlanError::BadString { field, id, strings } => write!(
                f,
                "plan field `{field}` references string {id} but the table has {strings}"
            ),
            PlanError::Invalid { field, reason } => write!(f, "plan field `{field}`: {reason}"),
        }
    }
}
