//! Spill mode: which records are held in memory, and when a held one is
//! written after all.
//!
//! A record is held when its scrape ends, unless the receiver fails
//! (`write_through`), records wait on disk
//! ahead of it, or it is larger than all the held bytes. A held record is
//! written once it has waited `spill.after_ms` without an acknowledgement,
//! when a new one needs its room, when the receiver fails, and when the
//! agent stops. Held records are always newer than every record on disk,
//! and are written oldest first, so the disk keeps sequence order.
//!
//! The WAL does not know what the sender has acknowledged; the shell tells
//! it with [`DiskWal::release_held`] before it spills, so an acknowledged
//! record is never written.

use std::fmt;

use outpost_core::plan::WalMode;
use outpost_core::queue::RecordMeta;
use outpost_core::wal_record::encode_record;

use super::error::DiskWalError;
use super::window::{Located, Place};
use super::DiskWal;

/// Why spill mode wrote a record to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpillReason {
    /// Not acknowledged within `spill.after_ms`.
    Age,
    /// The held bytes were full, or the record is larger than all of them.
    Memory,
    /// The receiver fails.
    Receiver,
    /// Records wait on disk ahead of it (a backlog not loaded yet).
    Backlog,
    /// The agent stops.
    Shutdown,
}

impl SpillReason {
    pub const ALL: [SpillReason; 5] = [
        SpillReason::Age,
        SpillReason::Memory,
        SpillReason::Receiver,
        SpillReason::Backlog,
        SpillReason::Shutdown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SpillReason::Age => "age",
            SpillReason::Memory => "memory",
            SpillReason::Receiver => "receiver",
            SpillReason::Backlog => "backlog",
            SpillReason::Shutdown => "shutdown",
        }
    }
}

impl fmt::Display for SpillReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens to a new record.
pub(super) enum Disposition {
    Hold,
    /// `append` mode: written, as every record is.
    Write,
    Spill(SpillReason),
}

impl DiskWal {
    pub(super) fn disposition(&self, meta: &RecordMeta) -> Disposition {
        let WalMode::Spill(_) = self.cfg.mode else {
            return Disposition::Write;
        };
        if self.write_through {
            Disposition::Spill(SpillReason::Receiver)
        } else if self.cursor.is_some() || !self.window.fits(meta.samples) {
            Disposition::Spill(SpillReason::Backlog)
        } else if meta.bytes as usize > self.held.capacity() {
            Disposition::Spill(SpillReason::Memory)
        } else {
            Disposition::Hold
        }
    }

    /// Holds a new record, writing the oldest held ones first until it fits.
    pub(super) fn hold(
        &mut self,
        meta: RecordMeta,
        payload: &[u8],
        now_ms: u64,
        dropped: &mut Vec<RecordMeta>,
    ) -> Result<(), DiskWalError> {
        let mut spilled = false;
        while !self.held.fits(payload.len()) && self.spill_oldest(SpillReason::Memory, dropped)? {
            spilled = true;
        }
        if spilled {
            self.sync_by_policy(now_ms);
        }
        let start = self
            .held
            .push(meta.seq, payload, now_ms)
            .expect("with every held record written, one record always fits");
        self.window.push(Located {
            meta,
            place: Place::Held { start },
        });
        Ok(())
    }

    /// Writes the oldest held record; false when nothing is held.
    fn spill_oldest(
        &mut self,
        reason: SpillReason,
        dropped: &mut Vec<RecordMeta>,
    ) -> Result<bool, DiskWalError> {
        let Some(seq) = self.held.spans().iter().map(|s| s.seq).min() else {
            return Ok(false);
        };
        self.spill(seq, reason, dropped)?;
        Ok(true)
    }

    /// Writes held record `seq` to disk; it is read from there from now on.
    fn spill(
        &mut self,
        seq: u64,
        reason: SpillReason,
        dropped: &mut Vec<RecordMeta>,
    ) -> Result<(), DiskWalError> {
        let index = self.window.index_of(seq).expect("a held record is in the window");
        let located = *self.window.get(index);
        let Place::Held { start } = located.place else {
            return Ok(());
        };
        let payload = self.held.payload(start).expect("held");
        self.encode_buf.clear();
        encode_record(&located.meta, payload, &mut self.encode_buf);
        let (segment, offset, len) = self.write_encoded(seq, dropped)?;
        self.held.free(start);
        // Writing may have dropped old segments, and their window entries.
        let index = self
            .window
            .index_of(seq)
            .expect("held records are newer than any segment");
        self.window.set_place(index, Place::Disk { segment, offset, len });
        self.counters.spilled_records[reason as usize] += 1;
        Ok(())
    }

    /// Writes every held record, oldest first.
    pub(super) fn spill_all(
        &mut self,
        reason: SpillReason,
        now_ms: u64,
        dropped: &mut Vec<RecordMeta>,
    ) -> Result<(), DiskWalError> {
        let mut spilled = false;
        while self.spill_oldest(reason, dropped)? {
            spilled = true;
        }
        if spilled {
            self.sync_by_policy(now_ms);
        }
        Ok(())
    }

    /// Frees the held records `resolved` says the sender acknowledged or
    /// gave up: they are never written.
    pub fn release_held(&mut self, mut resolved: impl FnMut(u64) -> bool) {
        let mut i = 0;
        while let Some(span) = self.held.spans().get(i).copied() {
            if !resolved(span.seq) {
                i += 1;
                continue;
            }
            self.held.free(span.start);
            if let Some(index) = self.window.index_of(span.seq) {
                self.window.set_place(index, Place::Sent);
            }
        }
    }

    /// Writes the held records that waited `spill.after_ms` by `now_ms`
    /// (call [`DiskWal::release_held`] first).
    pub fn spill_due(&mut self, now_ms: u64, dropped: &mut Vec<RecordMeta>) -> Result<(), DiskWalError> {
        let WalMode::Spill(spill) = self.cfg.mode else {
            return Ok(());
        };
        let after = u64::from(spill.after_ms);
        let mut spilled = false;
        loop {
            let oldest = self.held.spans().iter().min_by_key(|s| s.seq).copied();
            match oldest {
                Some(s) if now_ms >= s.held_at_ms + after => {
                    self.spill(s.seq, SpillReason::Age, dropped)?;
                    spilled = true;
                }
                _ => break,
            }
        }
        if spilled {
            self.sync_by_policy(now_ms);
        }
        Ok(())
    }

    /// When the oldest held record is due to be written.
    pub fn next_spill_ms(&self) -> Option<u64> {
        let WalMode::Spill(spill) = self.cfg.mode else {
            return None;
        };
        let oldest = self.held.spans().iter().map(|s| s.held_at_ms).min()?;
        Some(oldest + u64::from(spill.after_ms))
    }

    /// Spill mode: while `on`, new records go straight to disk; turning it
    /// on writes every held record now (call [`DiskWal::release_held`]
    /// first). The WAL starts with it off, so a healthy receiver's records
    /// never touch the disk; the first failed send turns it on.
    pub fn set_write_through(
        &mut self,
        on: bool,
        now_ms: u64,
        dropped: &mut Vec<RecordMeta>,
    ) -> Result<(), DiskWalError> {
        if on && !self.write_through {
            self.write_through = true;
            return self.spill_all(SpillReason::Receiver, now_ms, dropped);
        }
        self.write_through = on;
        Ok(())
    }

    pub fn mode(&self) -> WalMode {
        self.cfg.mode
    }

    /// Whether new records go straight to disk (see
    /// [`DiskWal::set_write_through`]).
    pub fn writes_through(&self) -> bool {
        self.write_through
    }

    /// Spill mode: every held record to disk, as the agent stops (call
    /// [`DiskWal::release_held`] first).
    pub fn spill_for_shutdown(
        &mut self,
        now_ms: u64,
        dropped: &mut Vec<RecordMeta>,
    ) -> Result<(), DiskWalError> {
        self.spill_all(SpillReason::Shutdown, now_ms, dropped)
    }

    /// Payload bytes held in memory now.
    pub fn held_bytes(&self) -> usize {
        self.held.used()
    }

    /// Records held in memory now.
    pub fn held_records(&self) -> usize {
        self.held.len()
    }
}
