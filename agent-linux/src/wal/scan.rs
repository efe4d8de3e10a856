//! Reading a segment file record by record from an offset, with one
//! reused buffer of two records whatever the segment's size.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use outpost_core::wal_record::{Record, RecordReader, WalError, HEADER_LEN};

use super::error::DiskWalError;

/// How a pass over a segment file ended.
pub(super) struct ScanEnd {
    /// File offset after the last record taken.
    pub next_offset: u64,
    /// The callback declined a record (the window is full).
    pub stopped: bool,
    /// The data ended cleanly at `next_offset`.
    pub clean_eof: bool,
    /// Why the data stopped being readable, if it did.
    pub damage: Option<Damage>,
}

impl ScanEnd {
    /// The damage for a log line, `unknown` when there is none.
    pub(super) fn damage_reason(&self) -> &dyn fmt::Display {
        match &self.damage {
            Some(d) => d,
            None => &"unknown",
        }
    }
}

/// Why a segment's data stopped being readable.
#[derive(Debug, Clone, Copy)]
pub(super) enum Damage {
    Record(WalError),
    /// The file ends inside the record at this offset.
    Torn {
        offset: u64,
    },
    /// A record claims more bytes than the read buffer holds.
    TooLarge {
        buffer_bytes: usize,
    },
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::Record(e) => e.fmt(f),
            Damage::Torn { offset } => write!(f, "WAL record at byte {offset} is cut short (torn write)"),
            Damage::TooLarge { buffer_bytes } => {
                write!(f, "record larger than the {buffer_bytes}-byte read buffer")
            }
        }
    }
}

/// The callback of a scan: each record with its file offset and length;
/// false stops before taking it.
pub(super) type Take<'a> = dyn FnMut(&Record<'_>, u64, u32) -> bool + 'a;

/// The read buffer every scan shares.
pub(super) struct Scanner {
    buf: Vec<u8>,
    max_payload: usize,
}

impl Scanner {
    /// A buffer for two of the largest records plus slack.
    pub(super) fn new(max_payload: usize) -> Scanner {
        Scanner {
            buf: vec![0u8; 2 * (HEADER_LEN + max_payload) + 64 * 1024],
            max_payload,
        }
    }

    /// Opens the segment at `path` for reading and scans it from `start`.
    pub(super) fn scan_path(
        &mut self,
        path: &Path,
        start: u64,
        take: &mut Take<'_>,
    ) -> Result<ScanEnd, DiskWalError> {
        let mut file = File::open(path).map_err(DiskWalError::io("cannot open", path))?;
        self.scan(&mut file, start, take)
            .map_err(DiskWalError::io("cannot read", path))
    }

    /// Reads records of `file` from `start` on.
    pub(super) fn scan(&mut self, file: &mut File, start: u64, take: &mut Take<'_>) -> io::Result<ScanEnd> {
        let buf = &mut self.buf;
        file.seek(SeekFrom::Start(start))?;
        let mut base = start;
        let mut filled = 0usize;
        let mut eof = false;
        loop {
            while !eof && filled < buf.len() {
                let n = file.read(&mut buf[filled..])?;
                eof = n == 0;
                filled += n;
            }
            let mut reader = RecordReader::new(&buf[..filled], self.max_payload);
            let mut consumed = 0usize;
            let mut torn = false;
            let mut damage = None;
            for item in reader.by_ref() {
                match item {
                    Ok(record) => {
                        let len = HEADER_LEN + record.payload.len();
                        if !take(&record, base + consumed as u64, len as u32) {
                            return Ok(ScanEnd {
                                next_offset: base + consumed as u64,
                                stopped: true,
                                clean_eof: false,
                                damage: None,
                            });
                        }
                        consumed += len;
                    }
                    Err(WalError::Torn { .. }) => torn = true,
                    Err(e) => damage = Some(Damage::Record(e)),
                }
            }
            let next_offset = base + consumed as u64;
            if damage.is_some() {
                return Ok(ScanEnd {
                    next_offset,
                    stopped: false,
                    clean_eof: false,
                    damage,
                });
            }
            if eof {
                let clean = consumed == filled && !torn;
                return Ok(ScanEnd {
                    next_offset,
                    stopped: false,
                    clean_eof: clean,
                    damage: (!clean).then_some(Damage::Torn { offset: next_offset }),
                });
            }
            if consumed == 0 {
                return Ok(ScanEnd {
                    next_offset,
                    stopped: false,
                    clean_eof: false,
                    damage: Some(Damage::TooLarge {
                        buffer_bytes: buf.len(),
                    }),
                });
            }
            buf.copy_within(consumed..filled, 0);
            filled -= consumed;
            base = next_offset;
        }
    }
}
