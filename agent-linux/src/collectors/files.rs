//! Reading `/proc` and `/sys` into buffers that outlive a scrape.
//!
//! Errors from opening or reading a file are the bare OS error (no payload, so no allocation: a
//! collector that fails on every scrape, like pressure on a kernel without PSI, must not allocate
//! every time) and [`Files::path`] keeps the file's path. A collector returns such an error at
//! once, before opening anything else, so that [`super::NodeCollector`] can name the file; errors
//! about a file's content carry their own message instead ([`invalid`]).

use std::fs::File;
use std::io::{self, Read as _};
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags, RawDir};

/// Buffers shared by the collectors; they grow to the node's largest file and stay there.
pub(super) struct Files {
    /// The path of the last file opened.
    pub(super) path: PathBuf,
    /// The main file a collector reads.
    pub(super) data: Vec<u8>,
    /// Small files read while `data` is still borrowed.
    pub(super) aux: Vec<u8>,
    /// Names built from numbers (`cpu3`, `b8:0`).
    pub(super) text: String,
}

impl Files {
    pub(super) fn new() -> Self {
        Files {
            path: PathBuf::with_capacity(256),
            data: Vec::with_capacity(16 * 1024),
            aux: Vec::with_capacity(1024),
            text: String::with_capacity(256),
        }
    }
}

/// Reads `root/rel...`, a file the collector needs, into `buf`.
pub(super) fn read_file<'b>(
    path: &mut PathBuf,
    root: &Path,
    rel: &[&str],
    buf: &'b mut Vec<u8>,
) -> io::Result<&'b str> {
    read_optional(path, root, rel, buf)
}

/// Like [`read_file`], for files that may legitimately be absent: callers skip on error.
pub(super) fn read_optional<'b>(
    path: &mut PathBuf,
    root: &Path,
    rel: &[&str],
    buf: &'b mut Vec<u8>,
) -> io::Result<&'b str> {
    set_path(path, root, rel);
    buf.clear();
    File::open(&*path).and_then(|mut f| f.read_to_end(buf))?;
    std::str::from_utf8(buf).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
}

pub(super) fn set_path(path: &mut PathBuf, root: &Path, rel: &[&str]) {
    path.as_mut_os_string().clear();
    path.push(root);
    for part in rel {
        path.push(part);
    }
}

/// An error about a file's content: `file` is relative to its root (`stat`, `net/dev`).
pub(super) fn invalid(file: &str, what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{file}: {what}"))
}

/// Calls `each` with the name of every entry of the directory `path`, `.` and `..` left out.
///
/// getdents64 into a stack buffer: std's `read_dir` allocates per entry. The directory's own
/// descriptor is open while it is listed (it shows in `/proc/self/fd`).
pub(super) fn for_each_entry(path: &Path, mut each: impl FnMut(&[u8], FileType)) -> io::Result<()> {
    let dir = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
    let mut entries = RawDir::new(&dir, &mut buf);
    while let Some(entry) = entries.next() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            each(name, entry.file_type());
        }
    }
    Ok(())
}

/// A directory's entry names, sorted, kept in one reused string: what a collector iterates over
/// (`/sys/class/net/*`, `/sys/class/hwmon/*`) without a `String` per name.
#[derive(Default)]
pub(super) struct Names {
    text: String,
    ranges: Vec<(usize, usize)>,
}

impl Names {
    /// Lists `path`, keeping the UTF-8 names `keep` accepts. A missing directory is an error.
    pub(super) fn read(
        &mut self,
        path: &Path,
        mut keep: impl FnMut(&str, FileType) -> bool,
    ) -> io::Result<()> {
        self.text.clear();
        self.ranges.clear();
        let (text, ranges) = (&mut self.text, &mut self.ranges);
        for_each_entry(path, |name, file_type| {
            if let Ok(name) = std::str::from_utf8(name) {
                if keep(name, file_type) {
                    let start = text.len();
                    text.push_str(name);
                    ranges.push((start, text.len()));
                }
            }
        })?;
        let text = &self.text;
        self.ranges
            .sort_unstable_by(|a, b| text[a.0..a.1].cmp(&text[b.0..b.1]));
        Ok(())
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &str> + Clone {
        self.ranges.iter().map(|&(start, end)| &self.text[start..end])
    }
}

/// A file's content without surrounding whitespace, or `None` when it cannot be read (sysfs
/// attributes that a driver does not support fail with EINVAL or EOPNOTSUPP).
pub(super) fn read_trimmed<'b>(
    path: &mut PathBuf,
    root: &Path,
    rel: &[&str],
    buf: &'b mut Vec<u8>,
) -> Option<&'b str> {
    read_optional(path, root, rel, buf).ok().map(str::trim)
}

/// An integer as Go's `strconv.ParseInt(v, 0, 64)` reads it: decimal, `0x` hex, `0` octal.
pub(super) fn parse_int(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let magnitude = if let Some(hex) = digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        i64::from_str_radix(hex, 16).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i64::from_str_radix(&digits[1..], 8).ok()?
    } else {
        digits.parse().ok()?
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// Where a string sits in a collector's reused text buffer, so a scrape's labels point into one
/// `String` instead of owning one each.
pub(super) type Span = (usize, usize);

/// Appends `part` to `text` and says where it went.
pub(super) fn push_span(text: &mut String, part: &str) -> Span {
    let start = text.len();
    text.push_str(part);
    (start, text.len())
}

/// `prefix` followed by a digit, as the glob `prefix[0-9]*` matches sysfs entries
/// (`thermal_zone0`, `mc1`, `bdev0`).
pub(super) fn numbered(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
}
