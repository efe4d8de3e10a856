//! The unsent records held in memory: at most `max_window_records` record
//! locations holding at most `max_window_samples` samples, the records the
//! sender holds plus a short look-ahead. Records past it wait on disk
//! behind the cursor and are loaded as it drains; payloads are read back
//! one at a time through one buffer when a request is built.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;

use outpost_core::queue::RecordMeta;
use outpost_core::wal_record::{Record, RecordKind, RecordReader};

use super::error::DiskWalError;
use super::segment::{segment_path, SegmentName};
use super::DiskWal;
use crate::log;

/// Where an unsent record lives.
#[derive(Debug, Clone, Copy)]
pub(super) struct Located {
    pub meta: RecordMeta,
    pub place: Place,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    /// In a segment file: `len` bytes, header included, at `offset`.
    Disk { segment: u32, offset: u64, len: u32 },
    /// In memory, at `start` of the held bytes (spill mode).
    Held { start: u32 },
    /// Held, then acknowledged or given up: never written, nothing to read.
    Sent,
}

/// The record locations held in memory, bounded in records and in samples.
pub(super) struct Window {
    locations: VecDeque<Located>,
    samples: u64,
    max_records: usize,
    max_samples: u64,
}

impl Window {
    pub(super) fn new(max_records: usize, max_samples: u64) -> Window {
        Window {
            locations: VecDeque::with_capacity(max_records.max(1)),
            samples: 0,
            max_records: max_records.max(1),
            max_samples,
        }
    }

    fn is_full(&self) -> bool {
        self.locations.len() >= self.max_records || self.samples >= self.max_samples
    }

    /// Whether a record of `samples` may come in; one always may into an
    /// empty window.
    pub(super) fn fits(&self, samples: u32) -> bool {
        self.locations.is_empty()
            || (self.locations.len() < self.max_records
                && self.samples + u64::from(samples) <= self.max_samples)
    }

    pub(super) fn push(&mut self, l: Located) {
        self.samples += u64::from(l.meta.samples);
        self.locations.push_back(l);
    }

    pub(super) fn pop_front(&mut self) -> Option<Located> {
        let l = self.locations.pop_front()?;
        self.samples -= u64::from(l.meta.samples);
        Some(l)
    }

    pub(super) fn front(&self) -> Option<&Located> {
        self.locations.front()
    }

    pub(super) fn get(&self, index: usize) -> &Located {
        &self.locations[index]
    }

    pub(super) fn index_of(&self, seq: u64) -> Option<usize> {
        self.locations.binary_search_by_key(&seq, |l| l.meta.seq).ok()
    }

    fn find(&self, seq: u64) -> Option<Located> {
        self.index_of(seq).map(|i| self.locations[i])
    }

    pub(super) fn set_place(&mut self, index: usize, place: Place) {
        self.locations[index].place = place;
    }
}

impl DiskWal {
    /// Loads record locations from the cursor until the window is full or
    /// the cursor reaches the end of the last segment.
    pub(super) fn fill(&mut self) -> Result<(), DiskWalError> {
        while !self.window.is_full() {
            let Some((index, offset)) = self.cursor else {
                return Ok(());
            };
            let path = segment_path(&mut self.segment_path, &self.cfg.dir, index);
            let (floor, window) = (self.ack_floor, &mut self.window);
            let mut take = |r: &Record<'_>, at: u64, len: u32| {
                if r.kind == RecordKind::Batch && r.meta.seq >= floor {
                    if !window.fits(r.meta.samples) {
                        return false;
                    }
                    window.push(Located {
                        meta: r.meta,
                        place: Place::Disk {
                            segment: index,
                            offset: at,
                            len,
                        },
                    });
                }
                true
            };
            let end = self.scanner.scan_path(path, offset, &mut take)?;
            if end.stopped {
                self.cursor = Some((index, end.next_offset));
                return Ok(());
            }
            if !end.clean_eof {
                // Checked at start-up and written by us since: this is damage
                // that happened while running. Skip the rest of the segment.
                log::error(
                    "wal: segment became unreadable; skipping its remaining records",
                    &[("segment", &path.display()), ("reason", end.damage_reason())],
                );
                self.counters.corruptions += 1;
            }
            self.cursor = self
                .segments
                .iter()
                .find(|s| s.index > index)
                .map(|s| (s.index, 0));
        }
        Ok(())
    }

    /// The first unacknowledged record with a sequence number of at least
    /// `seq`, loading more from disk if the window allows.
    pub fn peek_from(&mut self, seq: u64) -> Result<Option<RecordMeta>, DiskWalError> {
        loop {
            let locations = &self.window.locations;
            let start = locations.partition_point(|l| l.meta.seq < seq);
            if let Some(l) = locations.get(start) {
                return Ok(Some(l.meta));
            }
            if self.cursor.is_none() || self.window.is_full() {
                return Ok(None);
            }
            let before = locations.len();
            self.fill()?;
            if self.window.locations.len() == before && self.cursor.is_none() {
                return Ok(None);
            }
        }
    }

    /// Records in memory now (bounded by `max_window_records`).
    pub fn window_len(&self) -> usize {
        self.window.locations.len()
    }

    /// Samples of the records in memory now (bounded by `max_window_samples`).
    pub fn window_samples(&self) -> u64 {
        self.window.samples
    }

    /// The payload of record `seq`: from memory when it is held, else read
    /// back from its segment and checked against its CRC (valid until the
    /// next call). `Ok(None)` when the record is gone (acknowledged, or
    /// dropped because the WAL was full) or not in the window.
    pub fn read_payload(&mut self, seq: u64) -> Result<Option<&[u8]>, DiskWalError> {
        let Some(loc) = self.window.find(seq) else {
            return Ok(None);
        };
        let (segment, offset, len) = match loc.place {
            Place::Disk { segment, offset, len } => (segment, offset, len),
            Place::Held { start } => return Ok(self.held.payload(start)),
            Place::Sent => return Ok(None),
        };
        if self.read_file.as_ref().is_none_or(|(i, _)| *i != segment) {
            let path = segment_path(&mut self.segment_path, &self.cfg.dir, segment);
            let file = File::open(path).map_err(DiskWalError::io("cannot open", path))?;
            self.read_file = Some((segment, file));
        }
        let (_, file) = self.read_file.as_ref().expect("opened above");
        let record = &mut self.encode_buf;
        record.clear();
        record.resize(len as usize, 0);
        let segment = SegmentName::of(segment);
        if let Err(err) = file.read_exact_at(record, offset) {
            return Err(DiskWalError::Read { seq, segment, err });
        }
        match RecordReader::new(record, self.cfg.max_payload_bytes).next() {
            Some(Ok(r)) if r.meta.seq == seq => Ok(Some(r.payload)),
            Some(Ok(r)) => Err(DiskWalError::Misplaced {
                seq,
                found: r.meta.seq,
                segment,
            }),
            Some(Err(err)) => Err(DiskWalError::Corrupt { seq, segment, err }),
            None => Err(DiskWalError::Missing { seq, segment }),
        }
    }
}
