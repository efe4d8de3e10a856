//! Segment files: `DIR/NNNNNNNN.wal` (at least eight digits), and the
//! summary the WAL keeps of each.

use std::fmt;
use std::path::{Path, PathBuf};

/// What the WAL remembers of a segment without reading it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Segment {
    pub index: u32,
    pub bytes: u64,
    pub last_seq: Option<u64>,
}

/// A segment's file name, built on the stack: reads and error messages
/// name segments in the hot path.
#[derive(Clone, Copy)]
pub struct SegmentName {
    bytes: [u8; SegmentName::MAX_LEN],
    len: usize,
}

impl SegmentName {
    /// Ten digits for `u32::MAX`, then `.wal`.
    pub(super) const MAX_LEN: usize = 10 + 4;

    pub(super) fn of(index: u32) -> SegmentName {
        let mut digits = [b'0'; 10];
        let mut rest = index;
        let mut used = 0;
        while rest > 0 {
            digits[digits.len() - 1 - used] = b'0' + (rest % 10) as u8;
            rest /= 10;
            used += 1;
        }
        let shown = used.max(8);
        let mut name = SegmentName {
            bytes: [0; SegmentName::MAX_LEN],
            len: shown + 4,
        };
        name.bytes[..shown].copy_from_slice(&digits[digits.len() - shown..]);
        name.bytes[shown..shown + 4].copy_from_slice(b".wal");
        name
    }

    /// The index a file name stands for, if it is a segment's name.
    pub(super) fn parse(file_name: &str) -> Option<u32> {
        let stem = file_name.strip_suffix(".wal")?;
        (stem.len() == 8).then(|| stem.parse::<u32>().ok()).flatten()
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).expect("ASCII digits and .wal")
    }
}

impl fmt::Display for SegmentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for SegmentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `dir/NNNNNNNN.wal` in `buf`, whose capacity is reserved at open.
pub(super) fn segment_path<'b>(buf: &'b mut PathBuf, dir: &Path, index: u32) -> &'b Path {
    buf.as_mut_os_string().clear();
    buf.push(dir);
    buf.push(SegmentName::of(index).as_str());
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_built_names_match_the_on_disk_format() {
        for index in [0, 1, 42, 99_999_999, 123_456_789, u32::MAX] {
            assert_eq!(SegmentName::of(index).as_str(), format!("{index:08}.wal"));
        }
        let mut path = PathBuf::new();
        assert_eq!(
            segment_path(&mut path, Path::new("/var/wal"), 3),
            Path::new("/var/wal/00000003.wal")
        );
        assert_eq!(
            segment_path(&mut path, Path::new("/w"), 12),
            Path::new("/w/00000012.wal"),
            "the previous path is replaced, not extended"
        );
    }
}
