//! The WAL between the scrapes and the sender: closed batches are appended
//! as records (held in memory in spill mode), records are handed to the
//! sender as its window has room, and the sender's acknowledgements let the
//! WAL delete what is sent, or free what it held without writing it.

use outpost_core::pipeline::BatchSink;
use outpost_core::plan::WalMode;
use outpost_core::queue::{DropReason, RecordMeta};
use outpost_core::remote_write::BatchBuilder;

use super::Shipping;
use crate::log;
use crate::wal::{DiskWal, DiskWalError};

/// The ack floor is written to disk about this often.
pub(in crate::agent) const ACK_FLOOR_PERSIST_MS: u64 = 1_000;

impl BatchSink for Shipping {
    /// A scrape ended (or a batch filled up): its samples of one shard
    /// become a WAL record, written before the next scrape of the target.
    fn batch_closed(&mut self, shard: u16, batch: &mut BatchBuilder) {
        let samples = batch.samples();
        // The WAL fills in seq and sizes.
        let record = RecordMeta {
            seq: 0,
            shard,
            samples,
            oldest_timestamp_ms: batch.oldest_timestamp_ms().unwrap_or(0),
            newest_timestamp_ms: batch.newest_timestamp_ms().unwrap_or(0),
            bytes: 0,
            raw_bytes: 0,
        };
        batch.finish_into(&mut self.batch_buf);
        // What the sender has taken needs no room, and is never written.
        self.release_held();
        let mut dropped = std::mem::take(&mut self.dropped);
        let appended = self
            .wal
            .append(record, &self.batch_buf, self.now_ms, &mut dropped);
        if let Err(e) = appended {
            log::error(
                "samples lost: WAL append failed",
                &[("samples", &samples), ("err", &e)],
            );
            self.sender
                .counters
                .record_dropped(DropReason::WalCorrupt, u64::from(samples));
        }
        self.give_up(&mut dropped);
        self.dropped = dropped;
    }
}

impl Shipping {
    /// Records the WAL deleted to stay within `wal.max_bytes`: the sender
    /// forgets them too.
    fn give_up(&mut self, dropped: &mut Vec<RecordMeta>) {
        for meta in dropped.drain(..) {
            if meta.seq >= self.fed_upto {
                // Never handed to the sender: counted here.
                self.sender
                    .counters
                    .record_dropped(DropReason::WalFull, u64::from(meta.samples));
            } else {
                // The sender gives it up now, or, when its request is on the
                // wire, once that request's answer calls for a retry.
                self.sender.handle_lost(meta.seq, DropReason::WalFull);
            }
        }
    }

    /// Frees the held records the sender has acknowledged or given up.
    fn release_held(&mut self) {
        let sender = &self.sender;
        self.wal.release_held(|seq| sender.is_resolved(seq));
    }

    /// Runs a spill-mode step that may write (`step` gets the WAL and the
    /// list of records it drops), logging a failure: the records stay held.
    fn spill_step(
        &mut self,
        what: &'static str,
        step: impl FnOnce(&mut DiskWal, &mut Vec<RecordMeta>) -> Result<(), DiskWalError>,
    ) {
        self.release_held();
        let mut dropped = std::mem::take(&mut self.dropped);
        if let Err(e) = step(&mut self.wal, &mut dropped) {
            log::error(what, &[("err", &e)]);
        }
        self.give_up(&mut dropped);
        self.dropped = dropped;
    }

    /// Spill mode: whether new records go straight to the WAL, because the
    /// receiver fails (`true`) or answers again (`false`). Turning it on
    /// writes what is held.
    pub(super) fn write_through(&mut self, on: bool) {
        if self.wal.writes_through() == on {
            return;
        }
        let now = self.now_ms;
        if matches!(self.wal.mode(), WalMode::Spill(_)) {
            self.release_held();
            let held = self.wal.held_records();
            match on {
                true => log::info(
                    "wal: the receiver fails; records go to disk until it answers",
                    &[("held_records_written", &held)],
                ),
                false => log::info("wal: the receiver answers; records are held in memory", &[]),
            }
        }
        self.spill_step("wal: cannot write held records", |wal, dropped| {
            wal.set_write_through(on, now, dropped)
        });
    }

    /// SIGTERM: what is held and not acknowledged goes to the WAL.
    pub(in crate::agent) fn spill_for_shutdown(&mut self, now: u64) {
        self.spill_step("wal: cannot write held records at shutdown", |wal, dropped| {
            wal.spill_for_shutdown(now, dropped)
        });
    }

    /// Hands WAL records to the sender as its window has room.
    pub(in crate::agent) fn feed(&mut self, now: u64) {
        // Records built under a reload's new shard layout wait for the
        // sender that knows that layout.
        let barrier = self.pending_rebuild.as_ref().map(|p| p.layout_barrier);
        while self.sender.has_room() {
            let meta = match self.wal.peek_from(self.fed_upto) {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => {
                    log::error("cannot read the WAL", &[("err", &e)]);
                    break;
                }
            };
            if barrier.is_some_and(|b| meta.seq >= b) || self.sender.handle_enqueued(meta, now).is_err() {
                break;
            }
            self.fed_upto = meta.seq + 1;
        }
    }

    /// Passes the sender's ack floor to the WAL (which deletes what is
    /// below it), frees what the sender took from what spill mode holds and
    /// writes what waited too long, persists the floor now and then, and
    /// runs an interval fsync that is due.
    pub(in crate::agent) fn settle(&mut self, now: u64) {
        if let Some(floor) = self.sender.ack_floor() {
            self.wal.ack(floor);
        }
        self.release_held();
        if self.wal.next_spill_ms().is_some_and(|t| now >= t) {
            self.spill_step("wal: cannot write held records", |wal, dropped| {
                wal.spill_due(now, dropped)
            });
        }
        if now >= self.last_persist_ms + ACK_FLOOR_PERSIST_MS {
            self.wal.persist_ack_floor();
            self.last_persist_ms = now;
        }
        if self.wal.next_sync_ms().is_some_and(|t| now >= t) {
            self.wal.sync(now);
        }
    }
}
