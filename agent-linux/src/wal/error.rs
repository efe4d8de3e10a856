//! What can go wrong with the on-disk WAL, named by the file and, for a
//! record, its sequence number and segment. Built without allocating where
//! the loop may meet it (appends and reads name the segment on the stack).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::segment::SegmentName;

#[derive(Debug)]
pub enum DiskWalError {
    /// A file operation on the WAL directory or a segment failed; `op` says
    /// which (`cannot open`, `cannot list`, ...).
    Io {
        op: &'static str,
        path: PathBuf,
        err: io::Error,
    },
    /// A record could not be appended, even after what the `wal.max_bytes`
    /// policy allows (rolling to a new segment, dropping the oldest).
    Append { segment: SegmentName, err: io::Error },
    /// A record could not be read back.
    Read {
        seq: u64,
        segment: SegmentName,
        err: io::Error,
    },
    /// The record read back fails its checksum or header checks.
    Corrupt {
        seq: u64,
        segment: SegmentName,
        err: outpost_core::wal_record::WalError,
    },
    /// The record read back is another one than the index says.
    Misplaced {
        seq: u64,
        found: u64,
        segment: SegmentName,
    },
    /// Nothing was found where the record should be.
    Missing { seq: u64, segment: SegmentName },
    /// `chown-wal` was pointed at something that is not a directory.
    NotADirectory(PathBuf),
    /// `chown-wal` could not hand the directory over.
    Chown {
        path: PathBuf,
        uid: u32,
        gid: u32,
        err: io::Error,
    },
}

impl DiskWalError {
    /// For `map_err`: the path is copied only when there is an error, so
    /// the loop's own file operations allocate nothing.
    pub(super) fn io<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> DiskWalError + 'p {
        move |err| DiskWalError::Io {
            op,
            path: path.to_path_buf(),
            err,
        }
    }
}

impl fmt::Display for DiskWalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiskWalError::Io { op, path, err } => write!(f, "wal: {op} {}: {err}", path.display()),
            DiskWalError::Append { segment, err } => {
                write!(f, "wal: cannot append to segment {segment}: {err}")
            }
            DiskWalError::Read { seq, segment, err } => {
                write!(f, "wal: cannot read record {seq} of segment {segment}: {err}")
            }
            DiskWalError::Corrupt { seq, segment, err } => {
                write!(f, "wal: record {seq} of segment {segment}: {err}")
            }
            DiskWalError::Misplaced { seq, found, segment } => write!(
                f,
                "wal: index points at record {found} instead of {seq} in segment {segment}"
            ),
            DiskWalError::Missing { seq, segment } => {
                write!(f, "wal: record {seq} of segment {segment} is empty")
            }
            DiskWalError::NotADirectory(path) => write!(f, "wal: {} is not a directory", path.display()),
            DiskWalError::Chown { path, uid, gid, err } => {
                write!(f, "wal: cannot give to {uid}:{gid} {}: {err}", path.display())
            }
        }
    }
}

impl std::error::Error for DiskWalError {}
