//! Appending: a record is held (spill mode, see [`super::spill`]) or goes
//! to the end of the newest segment, which rolls over at
//! `wal.segment_bytes`; past `wal.max_bytes` (or when the disk fills first)
//! the oldest segment is dropped and its unsent records reported. fsync
//! follows `wal.fsync`, and only ever follows a write.

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};

use outpost_core::plan::Fsync;
use outpost_core::queue::RecordMeta;
use outpost_core::wal_record::{encode_record, raw_len, Record, RecordKind};

use super::error::DiskWalError;
use super::segment::{segment_path, Segment, SegmentName};
use super::spill::Disposition;
use super::window::{Located, Place};
use super::DiskWal;
use crate::log;

impl DiskWal {
    /// Takes one closed batch and returns its metadata with its new
    /// sequence number (`batch.seq` and `batch.bytes` are filled in here).
    /// In `append` mode it is written now; in spill mode it is held in
    /// memory unless it must be written now ([`SpillReason`]). Records
    /// deleted to stay within `wal.max_bytes` are pushed to `dropped` so
    /// the sender forgets them too.
    pub fn append(
        &mut self,
        batch: RecordMeta,
        payload: &[u8],
        now_ms: u64,
        dropped: &mut Vec<RecordMeta>,
    ) -> Result<RecordMeta, DiskWalError> {
        let meta = RecordMeta {
            seq: self.next_seq,
            bytes: payload.len() as u32,
            raw_bytes: raw_len(payload),
            ..batch
        };
        let reason = match self.disposition(&meta) {
            Disposition::Hold => {
                self.hold(meta, payload, now_ms, dropped)?;
                self.next_seq += 1;
                return Ok(meta);
            }
            Disposition::Write => None,
            Disposition::Spill(reason) => {
                // Held records are older: they go first, so the disk holds
                // records in sequence order.
                self.spill_all(reason, now_ms, dropped)?;
                Some(reason)
            }
        };
        self.encode_buf.clear();
        encode_record(&meta, payload, &mut self.encode_buf);
        let (segment, offset, len) = self.write_encoded(meta.seq, dropped)?;
        if let Some(reason) = reason {
            self.counters.spilled_records[reason as usize] += 1;
        }
        if self.cursor.is_none() {
            if self.window.fits(meta.samples) {
                self.window.push(Located {
                    meta,
                    place: Place::Disk { segment, offset, len },
                });
            } else {
                // The window is full: this record and later ones wait on disk.
                self.cursor = Some((segment, offset));
            }
        }
        self.sync_by_policy(now_ms);
        self.next_seq += 1;
        Ok(meta)
    }

    /// Writes the record encoded in `encode_buf`, whose seq is `seq`, at
    /// the end of the newest segment; gives where it went (segment,
    /// offset, length). Leaves the fsync to the caller
    /// ([`DiskWal::sync_by_policy`]).
    pub(super) fn write_encoded(
        &mut self,
        seq: u64,
        dropped: &mut Vec<RecordMeta>,
    ) -> Result<(u32, u64, u32), DiskWalError> {
        let len = self.encode_buf.len() as u64;
        let floor = self.ack_floor;
        let roll = match self.segments.back() {
            None => true,
            Some(s) => self.current.is_none() || (s.bytes > 0 && s.bytes + len > self.cfg.segment_bytes),
        };
        if roll {
            self.roll()?;
        }
        while self.total_bytes() + len > self.cfg.max_bytes && self.segments.len() > 1 {
            self.drop_oldest_segment(dropped)?;
        }
        let offset = loop {
            let seg = *self.segments.back().expect("roll made a segment");
            let file = self.current.as_mut().expect("roll opened the segment");
            let offset = seg.bytes;
            let Err(err) = file.write_all(&self.encode_buf) else {
                break offset;
            };
            // A partial write leaves a torn tail: cut it so later appends
            // stay readable.
            let _ = file.set_len(offset);
            let _ = file.seek(SeekFrom::Start(offset));
            let segment = SegmentName::of(seg.index);
            if err.raw_os_error() == Some(libc::ENOSPC) {
                // The disk filled up before wal.max_bytes did. Move on to a
                // fresh segment, so that ack() may delete this one if it is
                // all acknowledged, then apply the byte bound's policy:
                // oldest data first.
                log::warn(
                    "wal: disk full before wal.max_bytes",
                    &[("segment", &segment), ("err", &err)],
                );
                if seg.bytes > 0 {
                    self.roll()?;
                    self.ack(floor);
                    continue;
                }
                if self.segments.len() > 1 {
                    self.drop_oldest_segment(dropped)?;
                    continue;
                }
            }
            return Err(DiskWalError::Append { segment, err });
        };
        let seg = self.segments.back_mut().expect("roll made a segment");
        seg.bytes += len;
        seg.last_seq = Some(seq);
        self.counters.records_appended += 1;
        self.counters.bytes_appended += len;
        self.unsynced = true;
        Ok((seg.index, offset, len as u32))
    }

    /// fsyncs after a write when `wal.fsync` calls for it now.
    pub(super) fn sync_by_policy(&mut self, now_ms: u64) {
        match self.cfg.fsync {
            Fsync::Always => self.sync(now_ms),
            Fsync::IntervalMs(ms) if now_ms >= self.last_fsync_ms + u64::from(ms) => self.sync(now_ms),
            _ => {}
        }
    }

    /// fsyncs the open segment if anything was written since the last one.
    pub fn sync(&mut self, now_ms: u64) {
        if let (true, Some(f)) = (self.unsynced, self.current.as_ref()) {
            if let Err(e) = f.sync_data() {
                log::warn(
                    "wal: fsync failed",
                    &[("dir", &self.cfg.dir.display()), ("err", &e)],
                );
            }
            self.counters.fsyncs += 1;
        }
        self.unsynced = false;
        self.last_fsync_ms = now_ms;
    }

    /// When an interval fsync policy next wants a sync.
    pub fn next_sync_ms(&self) -> Option<u64> {
        match self.cfg.fsync {
            Fsync::IntervalMs(ms) if self.unsynced => Some(self.last_fsync_ms + u64::from(ms)),
            _ => None,
        }
    }

    /// Starts the next segment; appends go there from now on.
    pub(super) fn roll(&mut self) -> Result<(), DiskWalError> {
        if self.unsynced && self.cfg.fsync != Fsync::Never {
            if let Some(f) = self.current.as_ref() {
                let _ = f.sync_data();
                self.counters.fsyncs += 1;
            }
            self.unsynced = false;
        }
        let index = self.segments.back().map(|s| s.index + 1).unwrap_or(1);
        let path = segment_path(&mut self.segment_path, &self.cfg.dir, index);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(DiskWalError::io("cannot create segment", path))?;
        // The new name must survive a crash, or its records are lost.
        if self.cfg.fsync != Fsync::Never {
            if let Ok(d) = File::open(&self.cfg.dir) {
                let _ = d.sync_all();
            }
        }
        self.current = Some(file);
        self.segments.push_back(Segment {
            index,
            bytes: 0,
            last_seq: None,
        });
        Ok(())
    }

    /// The `wal.max_bytes` policy: the oldest segment goes, and its unsent
    /// records (in the window or still on disk) are pushed to `dropped`.
    fn drop_oldest_segment(&mut self, dropped: &mut Vec<RecordMeta>) -> Result<(), DiskWalError> {
        let Some(seg) = self.segments.pop_front() else {
            return Ok(());
        };
        let mut samples = 0u64;
        // The segment's records lead the window, with held records that
        // were acknowledged among them (never written, nothing to drop).
        while let Some(r) = self.window.front().copied() {
            match r.place {
                Place::Disk { segment, .. } if segment == seg.index => {
                    samples += u64::from(r.meta.samples);
                    dropped.push(r.meta);
                }
                Place::Sent => {}
                _ => break,
            }
            self.window.pop_front();
        }
        if let Some((index, offset)) = self.cursor.filter(|(i, _)| *i == seg.index) {
            // Records of this segment that never made it into the window.
            let path = segment_path(&mut self.segment_path, &self.cfg.dir, index);
            let floor = self.ack_floor;
            let mut take = |r: &Record<'_>, _: u64, _: u32| {
                if r.kind == RecordKind::Batch && r.meta.seq >= floor {
                    samples += u64::from(r.meta.samples);
                    dropped.push(r.meta);
                }
                true
            };
            self.scanner.scan_path(path, offset, &mut take)?;
            self.cursor = self.segments.front().map(|s| (s.index, 0));
        }
        self.counters.samples_dropped_wal_full += samples;
        self.counters.segments_deleted_wal_full += 1;
        self.remove_segment_file(seg.index);
        log::warn(
            "wal: full, dropped oldest segment",
            &[
                ("segment", &SegmentName::of(seg.index)),
                ("samples", &samples),
                ("max_bytes", &self.cfg.max_bytes),
            ],
        );
        Ok(())
    }

    pub(super) fn remove_segment_file(&mut self, index: u32) {
        if self.read_file.as_ref().is_some_and(|(i, _)| *i == index) {
            self.read_file = None;
        }
        let path = segment_path(&mut self.segment_path, &self.cfg.dir, index);
        if let Err(e) = fs::remove_file(path) {
            log::warn(
                "wal: cannot delete segment",
                &[("segment", &path.display()), ("err", &e)],
            );
        }
    }
}
