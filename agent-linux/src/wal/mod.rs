//! The on-disk WAL: segment files of ready-to-send compressed records.
//!
//! `DIR/00000001.wal`, `DIR/00000002.wal`, ... each hold records back to
//! back in `outpost_core::wal_record`'s format (header with CRC, then the snappy
//! `WriteRequest`). Each record is what one scrape put into one shard; the
//! sender joins records into requests without rewriting them. A segment is
//! deleted only once every record in it is acknowledged or dropped: the
//! sender's `ack_floor` passes the segment's last sequence number.
//!
//! When a record is written depends on `wal.mode`:
//! - `append` (append before send): when its scrape ends, before anything
//!   of it is sent;
//! - `spill`: it is held in memory ([`held`]) and sent from there, and
//!   written only if the receiver has not acknowledged it within
//!   `spill.after_ms`, when the held bytes are full, while the receiver
//!   fails, or when the agent stops
//!   ([`spill`]). An acknowledged held record never touches the disk.
//!   Written records keep their sequence numbers and go to disk in
//!   sequence order, so a restart replays them as in `append` mode.
//!
//! `DIR/lock` is held (`flock`) for as long as a [`DiskWal`] is open, so two
//! agents never share a directory (see [`lock`]).
//!
//! The parts: [`segment`] (file names), [`scan`] (reading a segment from an
//! offset), [`window`] (the records in memory, reading payloads back),
//! [`append`] (append, roll, drop when full, fsync), [`held`] and [`spill`]
//! (spill mode's memory and when it is written), [`ack`] (the ack floor,
//! deleting what is sent), [`chown`] (`outpost chown-wal`).
//!
//! Memory stays bounded whatever the WAL's size. The agent keeps a small
//! summary per segment and a *window* of at most `max_window_records`
//! record locations holding at most `max_window_samples` samples: the
//! records the sender holds plus a short look-ahead.
//! Records past the window stay on disk behind a cursor and are read, one
//! at a time through one reused buffer, as the window drains. Start-up
//! checks every segment with the same two-record read buffer, so a 50 GiB
//! WAL replays in the memory of an empty one (the Prometheus agent loads
//! its whole WAL at start and runs out of memory there).
//!
//! `DIR/ack_floor` remembers how far the receiver has acknowledged, so a
//! restart does not resend the acknowledged head of the oldest segment. It is
//! written with rename, and losing it only means sending some batches twice
//! (remote write is at-least-once anyway).

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use outpost_core::plan::{Fsync, WalMode};
use outpost_core::wal_record::{Record, RecordKind, HEADER_LEN};

use crate::log;

mod ack;
mod append;
mod chown;
mod error;
mod held;
pub mod lock;
mod scan;
mod segment;
mod spill;
mod window;

pub use chown::chown_dir;
pub use error::DiskWalError;
use held::Held;
pub use lock::{LockError, WalLock};
use scan::Scanner;
pub use segment::SegmentName;
use segment::{segment_path, Segment};
pub use spill::SpillReason;
use window::Window;

#[derive(Debug, Clone)]
pub struct WalConfig {
    pub dir: PathBuf,
    pub segment_bytes: u64,
    pub max_bytes: u64,
    pub fsync: Fsync,
    /// Which records are written (see the module doc).
    pub mode: WalMode,
    /// Largest payload a record may have: the snappy bound of one full
    /// batch (`snappy::max_compressed_len(queue.max_batch_bytes)`).
    pub max_payload_bytes: usize,
    /// Record locations kept in memory: at least the sender's window.
    pub max_window_records: usize,
    /// Samples of the records in memory: at least the sender's window.
    pub max_window_samples: u64,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct WalCounters {
    pub records_appended: u64,
    pub bytes_appended: u64,
    /// Samples of unsent records deleted because the WAL hit `wal.max_bytes`.
    pub samples_dropped_wal_full: u64,
    pub segments_deleted_wal_full: u64,
    /// Torn or corrupt tails cut off at start-up.
    pub corruptions: u64,
    pub bytes_truncated: u64,
    pub fsyncs: u64,
    /// Unacknowledged records found at start-up.
    pub replayed_records: u64,
    pub replayed_samples: u64,
    /// Spill mode: records written to disk, by why (indexed by
    /// [`SpillReason`]).
    pub spilled_records: [u64; SpillReason::ALL.len()],
}

pub struct DiskWal {
    cfg: WalConfig,
    segments: VecDeque<Segment>,
    /// Open for append: the last segment.
    current: Option<File>,
    /// Unacknowledged records loaded from disk or just appended, in
    /// sequence order, at most `max_window_records` holding at most
    /// `max_window_samples` samples.
    window: Window,
    /// Spill mode: payloads of the records held in memory.
    held: Held,
    /// Spill mode: records go straight to disk (the receiver fails). Off at
    /// the start: a healthy receiver's records never touch the disk, and a
    /// failing one turns it on with its first failed send.
    write_through: bool,
    /// The next record on disk that is not in the window; `None` when the
    /// window holds everything up to the last append.
    cursor: Option<(u32, u64)>,
    next_seq: u64,
    ack_floor: u64,
    persisted_floor: u64,
    encode_buf: Vec<u8>,
    scanner: Scanner,
    read_file: Option<(u32, File)>,
    /// Reused for every segment path: sends, rolls and deletes happen in
    /// the steady-state loop, which must not allocate.
    segment_path: PathBuf,
    ack_floor_path: PathBuf,
    ack_floor_tmp_path: PathBuf,
    last_fsync_ms: u64,
    unsynced: bool,
    _lock: WalLock,
    pub counters: WalCounters,
}

impl DiskWal {
    /// Opens (or creates) the WAL directory, whose `lock` the caller holds,
    /// and checks every segment in order, cutting off a torn or corrupt
    /// tail. Unsent records are then offered through [`DiskWal::peek_from`].
    pub fn open(cfg: WalConfig, lock: WalLock) -> Result<DiskWal, DiskWalError> {
        fs::create_dir_all(&cfg.dir).map_err(DiskWalError::io("cannot create", &cfg.dir))?;
        let mut indices: Vec<u32> = fs::read_dir(&cfg.dir)
            .map_err(DiskWalError::io("cannot list", &cfg.dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| SegmentName::parse(e.file_name().to_str()?))
            .collect();
        indices.sort_unstable();
        let ack_floor_path = cfg.dir.join("ack_floor");
        let ack_floor_tmp_path = cfg.dir.join("ack_floor.tmp");
        let mut segment_path = PathBuf::with_capacity(cfg.dir.as_os_str().len() + 1 + SegmentName::MAX_LEN);
        segment_path.push(&cfg.dir);
        let ack_floor = fs::read_to_string(&ack_floor_path)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let held = match cfg.mode {
            WalMode::Append => Held::new(0, 0),
            WalMode::Spill(spill) => Held::new(spill.max_held_bytes as usize, cfg.max_window_records),
        };
        let mut wal = DiskWal {
            encode_buf: Vec::with_capacity(HEADER_LEN + cfg.max_payload_bytes),
            scanner: Scanner::new(cfg.max_payload_bytes),
            window: Window::new(cfg.max_window_records, cfg.max_window_samples),
            held,
            write_through: false,
            cfg,
            segments: VecDeque::new(),
            current: None,
            cursor: None,
            next_seq: ack_floor,
            ack_floor,
            persisted_floor: ack_floor,
            read_file: None,
            segment_path,
            ack_floor_path,
            ack_floor_tmp_path,
            last_fsync_ms: 0,
            unsynced: false,
            _lock: lock,
            counters: WalCounters::default(),
        };
        for index in indices {
            wal.check_segment(index)?;
        }
        wal.cursor = wal.segments.front().map(|s| (s.index, 0));
        // Segments wholly below the floor are leftovers of a crash between
        // acknowledging and deleting.
        let floor = wal.ack_floor;
        wal.ack(floor);
        wal.fill()?;
        Ok(wal)
    }

    /// Start-up: reads a whole segment, counts its unsent records, takes
    /// the ack floor records it holds and cuts off a damaged tail.
    fn check_segment(&mut self, index: u32) -> Result<(), DiskWalError> {
        let path = segment_path(&mut self.segment_path, &self.cfg.dir, index);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(DiskWalError::io("cannot open", path))?;
        let file_len = file
            .metadata()
            .map_err(DiskWalError::io("cannot stat", path))?
            .len();
        let mut last_seq = None;
        let (floor, mut records, mut samples, mut new_floor) = (self.ack_floor, 0u64, 0u64, self.ack_floor);
        let mut take = |r: &Record<'_>, _: u64, _: u32| {
            match r.kind {
                RecordKind::AckFloor => new_floor = new_floor.max(r.meta.seq),
                RecordKind::Batch => {
                    last_seq = Some(r.meta.seq);
                    if r.meta.seq >= floor {
                        records += 1;
                        samples += u64::from(r.meta.samples);
                    }
                }
            }
            true
        };
        let end = self
            .scanner
            .scan(&mut file, 0, &mut take)
            .map_err(DiskWalError::io("cannot read", path))?;
        self.ack_floor = new_floor;
        self.counters.replayed_records += records;
        self.counters.replayed_samples += samples;
        if let Some(last) = last_seq {
            self.next_seq = self.next_seq.max(last + 1);
        }
        if end.next_offset < file_len {
            self.counters.corruptions += 1;
            self.counters.bytes_truncated += file_len - end.next_offset;
            log::warn(
                "wal: truncating torn or corrupt segment tail",
                &[
                    ("segment", &path.display()),
                    ("offset", &end.next_offset),
                    ("bytes", &(file_len - end.next_offset)),
                    ("reason", end.damage_reason()),
                ],
            );
            file.set_len(end.next_offset)
                .map_err(DiskWalError::io("cannot truncate", path))?;
            let _ = file.sync_all();
        }
        self.segments.push_back(Segment {
            index,
            bytes: end.next_offset,
            last_seq,
        });
        Ok(())
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn total_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    pub fn dir(&self) -> &Path {
        &self.cfg.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_core::queue::RecordMeta;

    fn cfg(dir: &Path, segment_bytes: u64, max_bytes: u64) -> WalConfig {
        WalConfig {
            dir: dir.to_path_buf(),
            segment_bytes,
            max_bytes,
            fsync: Fsync::Always,
            mode: WalMode::Append,
            max_payload_bytes: 1024,
            max_window_records: 64,
            max_window_samples: 1 << 20,
        }
    }

    /// Opens the WAL as the agent does, holding the directory's lock.
    fn open(cfg: WalConfig) -> DiskWal {
        let lock = WalLock::acquire(&cfg.dir, std::time::Duration::ZERO).unwrap();
        DiskWal::open(cfg, lock).unwrap()
    }

    /// Sequence numbers of every unsent record, walked the way the agent
    /// feeds its sender.
    fn unsent(wal: &mut DiskWal) -> Vec<u64> {
        let mut seqs = Vec::new();
        let mut next = 0;
        while let Some(m) = wal.peek_from(next).unwrap() {
            seqs.push(m.seq);
            next = m.seq + 1;
        }
        seqs
    }

    fn append(wal: &mut DiskWal, fill: u8, len: usize, dropped: &mut Vec<RecordMeta>) -> RecordMeta {
        let batch = RecordMeta {
            seq: 0,
            shard: 0,
            samples: 10,
            oldest_timestamp_ms: 1_000,
            newest_timestamp_ms: 2_000,
            bytes: 0,
            raw_bytes: 0,
        };
        wal.append(batch, &vec![fill; len], 0, dropped).unwrap()
    }

    #[test]
    fn records_survive_reopen_and_acked_segments_go() {
        let dir = tempfile::tempdir().unwrap();
        let mut dropped = Vec::new();
        let mut wal = open(cfg(dir.path(), 300, 10_000));
        // 44-byte header + 100 bytes: two records per 300-byte segment.
        let metas: Vec<RecordMeta> = (0..5).map(|i| append(&mut wal, i, 100, &mut dropped)).collect();
        assert_eq!(
            metas.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4]
        );
        assert_eq!(wal.segment_count(), 3);
        assert_eq!(wal.read_payload(3).unwrap(), Some(&[3u8; 100][..]));

        wal.ack(2);
        wal.persist_ack_floor();
        assert_eq!(wal.segment_count(), 2, "segment holding seq 0 and 1 is deleted");
        drop(wal);

        let mut wal = open(cfg(dir.path(), 300, 10_000));
        assert_eq!(unsent(&mut wal), vec![2, 3, 4]);
        assert_eq!(wal.next_seq(), 5);
        assert_eq!(wal.counters.replayed_samples, 30);
        assert_eq!(append(&mut wal, 9, 10, &mut dropped).seq, 5);
        assert!(dropped.is_empty());
    }

    #[test]
    fn torn_tail_is_truncated_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut dropped = Vec::new();
        let mut wal = open(cfg(dir.path(), 10_000, 100_000));
        for i in 0..3 {
            append(&mut wal, i, 100, &mut dropped);
        }
        drop(wal);
        let seg = dir.path().join("00000001.wal");
        let len = fs::metadata(&seg).unwrap().len();
        // Cut the last record in half, as a crash mid-write would.
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 50)
            .unwrap();
        let mut wal = open(cfg(dir.path(), 10_000, 100_000));
        assert_eq!(unsent(&mut wal).len(), 2);
        assert_eq!(wal.counters.corruptions, 1);
        assert_eq!(wal.counters.bytes_truncated, 94);
        assert_eq!(fs::metadata(&seg).unwrap().len(), 2 * 144);
        assert_eq!(append(&mut wal, 7, 100, &mut dropped).seq, 2);

        // A restart always appends to a fresh segment.
        assert_eq!(wal.segment_count(), 2);
        // A flipped bit in the middle record: it and everything after it in
        // that segment go; the next segment is untouched.
        drop(wal);
        let mut bytes = fs::read(&seg).unwrap();
        bytes[144 + 60] ^= 1;
        fs::write(&seg, &bytes).unwrap();
        let mut wal = open(cfg(dir.path(), 10_000, 100_000));
        assert_eq!(unsent(&mut wal), vec![0, 2]);
        assert_eq!(wal.counters.corruptions, 1);
    }

    #[test]
    fn full_wal_drops_the_oldest_segment_and_counts_samples() {
        let dir = tempfile::tempdir().unwrap();
        let mut dropped = Vec::new();
        // Two 144-byte records per segment, at most 3 segments' worth.
        let mut wal = open(cfg(dir.path(), 300, 900));
        for i in 0..6 {
            append(&mut wal, i, 100, &mut dropped);
        }
        assert!(dropped.is_empty());
        append(&mut wal, 6, 100, &mut dropped);
        assert_eq!(dropped.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(wal.counters.samples_dropped_wal_full, 20);
        assert!(wal.total_bytes() <= 900);
        assert!(!dir.path().join("00000001.wal").exists());
        assert_eq!(wal.read_payload(0).unwrap(), None);
    }

    #[test]
    fn replay_of_a_large_wal_uses_a_bounded_window() {
        let dir = tempfile::tempdir().unwrap();
        let mut dropped = Vec::new();
        let small = |dir: &Path| WalConfig {
            max_window_records: 16,
            ..cfg(dir, 1 << 20, 1 << 30)
        };
        let mut wal = open(small(dir.path()));
        // 2,000 records over several segments; the window holds 16.
        for i in 0..2000u32 {
            append(&mut wal, i as u8, 1000, &mut dropped);
        }
        assert!(wal.window_len() <= 16);
        drop(wal);
        let mut wal = open(small(dir.path()));
        assert_eq!(wal.counters.replayed_records, 2000);
        assert_eq!(wal.counters.corruptions, 0);
        // Replay as the sender would: take, send, acknowledge.
        let mut next = 0;
        while let Some(m) = wal.peek_from(next).unwrap() {
            assert_eq!(m.seq, next, "in order, none skipped");
            assert!(wal.window_len() <= 16);
            let payload = wal.read_payload(m.seq).unwrap().unwrap();
            assert_eq!(payload, &[(m.seq % 256) as u8; 1000][..]);
            next = m.seq + 1;
            wal.ack(next);
        }
        assert_eq!(next, 2000);
        assert_eq!(wal.segment_count(), 1, "acknowledged segments are deleted");
        // New appends after a full replay go straight into the window.
        assert_eq!(append(&mut wal, 1, 10, &mut dropped).seq, 2000);
        assert_eq!(wal.peek_from(2000).unwrap().map(|m| m.seq), Some(2000));
    }

    #[test]
    fn wal_full_counts_records_that_were_still_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut dropped = Vec::new();
        // Two 144-byte records per segment, window of 1.
        let mut wal = open(WalConfig {
            max_window_records: 1,
            ..cfg(dir.path(), 300, 900)
        });
        for i in 0..7 {
            append(&mut wal, i, 100, &mut dropped);
        }
        assert_eq!(dropped.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(wal.counters.samples_dropped_wal_full, 20);
        // With a window of one, the rest is read as acknowledgements free it.
        let mut seqs = Vec::new();
        while let Some(m) = wal.peek_from(0).unwrap() {
            assert_eq!(wal.window_len(), 1);
            seqs.push(m.seq);
            wal.ack(m.seq + 1);
        }
        assert_eq!(seqs, vec![2, 3, 4, 5, 6]);
    }

    #[test]
    fn the_window_is_bounded_in_samples_too() {
        let dir = tempfile::tempdir().unwrap();
        let mut dropped = Vec::new();
        // Records of 10 samples, at most 25 samples in memory.
        let mut wal = open(WalConfig {
            max_window_samples: 25,
            ..cfg(dir.path(), 1 << 20, 1 << 30)
        });
        for i in 0..6 {
            append(&mut wal, i, 100, &mut dropped);
        }
        assert_eq!((wal.window_len(), wal.window_samples()), (2, 20));
        drop(wal);
        let mut wal = open(WalConfig {
            max_window_samples: 25,
            ..cfg(dir.path(), 1 << 20, 1 << 30)
        });
        assert_eq!((wal.window_len(), wal.window_samples()), (2, 20), "replay too");
        let mut seqs = Vec::new();
        while let Some(m) = wal.peek_from(0).unwrap() {
            assert!(wal.window_samples() <= 25);
            seqs.push(m.seq);
            wal.ack(m.seq + 1);
        }
        assert_eq!(seqs, (0..6).collect::<Vec<_>>());
    }

    #[test]
    fn a_second_open_of_a_locked_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let wal = open(cfg(dir.path(), 1 << 20, 1 << 30));
        let err = WalLock::acquire(dir.path(), std::time::Duration::ZERO).unwrap_err();
        assert!(matches!(err, LockError::Held { .. }), "{err}");
        drop(wal);
        WalLock::acquire(dir.path(), std::time::Duration::ZERO).expect("released with the WAL");
    }

    fn spill_cfg(dir: &Path, max_held_bytes: u32) -> WalConfig {
        WalConfig {
            mode: WalMode::Spill(outpost_core::plan::Spill {
                after_ms: 1_000,
                max_held_bytes,
            }),
            ..cfg(dir, 10_000, 100_000)
        }
    }

    /// The segment files in `dir`, and the bytes they hold.
    fn on_disk(dir: &Path) -> (usize, u64) {
        fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_str().is_some_and(|n| n.ends_with(".wal")))
            .fold((0, 0), |(n, b), e| (n + 1, b + e.metadata().unwrap().len()))
    }

    #[test]
    fn spill_mode_holds_records_and_acknowledged_ones_never_reach_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut dropped = Vec::new();
        let mut wal = open(spill_cfg(dir.path(), 1024));
        for i in 0..3 {
            append(&mut wal, i, 100, &mut dropped);
        }
        assert_eq!((wal.held_records(), wal.held_bytes()), (3, 300));
        assert_eq!(
            wal.read_payload(1).unwrap(),
            Some(&[1u8; 100][..]),
            "sent from memory"
        );
        assert_eq!(unsent(&mut wal), vec![0, 1, 2]);
        // Shard order: 1 is acknowledged before 0.
        wal.release_held(|seq| seq == 1);
        assert_eq!(wal.held_records(), 2);
        assert_eq!(wal.read_payload(1).unwrap(), None);
        wal.ack(3);
        wal.persist_ack_floor();
        assert_eq!((wal.held_records(), wal.held_bytes()), (0, 0));
        assert_eq!(on_disk(dir.path()), (0, 0));
        assert_eq!(wal.counters.bytes_appended, 0);
        assert_eq!(wal.counters.fsyncs, 0);
        assert!(
            !dir.path().join("ack_floor").exists(),
            "nothing on disk needs the floor"
        );
    }

    #[test]
    fn a_held_record_not_acknowledged_in_time_is_written_then_deleted_once_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let mut dropped = Vec::new();
        let mut wal = open(spill_cfg(dir.path(), 1024));
        let batch = RecordMeta {
            seq: 0,
            shard: 0,
            samples: 10,
            oldest_timestamp_ms: 1_000,
            newest_timestamp_ms: 2_000,
            bytes: 0,
            raw_bytes: 0,
        };
        wal.append(batch, &[7; 100], 0, &mut dropped).unwrap();
        wal.append(batch, &[8; 100], 600, &mut dropped).unwrap();
        assert_eq!(wal.next_spill_ms(), Some(1_000));
        wal.spill_due(999, &mut dropped).unwrap();
        assert_eq!(on_disk(dir.path()).0, 0);
        wal.spill_due(1_000, &mut dropped).unwrap();
        // Only the record that waited 1 s; the other is held.
        assert_eq!(on_disk(dir.path()), (1, 144));
        assert_eq!(wal.counters.spilled_records[SpillReason::Age as usize], 1);
        assert_eq!((wal.held_records(), wal.next_spill_ms()), (1, Some(1_600)));
        assert_eq!(
            wal.read_payload(0).unwrap(),
            Some(&[7u8; 100][..]),
            "read back from disk"
        );
        wal.ack(2);
        assert_eq!(on_disk(dir.path()), (0, 0), "truncated once acknowledged");
        assert_eq!(wal.held_records(), 0);
    }

    #[test]
    fn full_held_memory_writes_the_oldest_and_the_disk_keeps_sequence_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut dropped = Vec::new();
        // Room for two 100-byte payloads.
        let mut wal = open(spill_cfg(dir.path(), 250));
        for i in 0..5 {
            append(&mut wal, i, 100, &mut dropped);
        }
        assert_eq!(wal.counters.spilled_records[SpillReason::Memory as usize], 3);
        assert_eq!(wal.held_records(), 2);
        // Record 3 was acknowledged before it had to go: it never is written.
        wal.release_held(|seq| seq == 3);
        wal.spill_for_shutdown(0, &mut dropped).unwrap();
        assert_eq!(wal.counters.spilled_records[SpillReason::Shutdown as usize], 1);
        drop(wal);
        let mut wal = open(spill_cfg(dir.path(), 250));
        assert_eq!(unsent(&mut wal), vec![0, 1, 2, 4]);
        for seq in [0, 1, 2, 4] {
            assert_eq!(wal.read_payload(seq).unwrap(), Some(&[seq as u8; 100][..]));
        }
    }

    #[test]
    fn a_failing_receiver_writes_what_is_held_and_every_record_until_it_answers() {
        let dir = tempfile::tempdir().unwrap();
        let mut dropped = Vec::new();
        let mut wal = open(spill_cfg(dir.path(), 1024));
        // The receiver fails: every record is written.
        wal.set_write_through(true, 0, &mut dropped).unwrap();
        append(&mut wal, 0, 100, &mut dropped);
        assert_eq!((wal.held_records(), on_disk(dir.path()).0), (0, 1));
        wal.set_write_through(false, 0, &mut dropped).unwrap();
        append(&mut wal, 1, 100, &mut dropped);
        append(&mut wal, 2, 100, &mut dropped);
        assert_eq!(wal.held_records(), 2);
        wal.set_write_through(true, 0, &mut dropped).unwrap();
        assert_eq!(wal.held_records(), 0);
        append(&mut wal, 3, 100, &mut dropped);
        assert_eq!(wal.counters.spilled_records[SpillReason::Receiver as usize], 4);
        wal.set_write_through(false, 0, &mut dropped).unwrap();
        append(&mut wal, 4, 100, &mut dropped);
        assert_eq!(wal.held_records(), 1);
        // Sent in order from disk, then memory.
        assert_eq!(unsent(&mut wal), vec![0, 1, 2, 3, 4]);
        assert_eq!(wal.read_payload(4).unwrap(), Some(&[4u8; 100][..]));
        drop(wal);
        let mut wal = open(spill_cfg(dir.path(), 1024));
        assert_eq!(
            unsent(&mut wal),
            vec![0, 1, 2, 3],
            "a crash takes only the held one"
        );
    }

    #[test]
    fn a_record_larger_than_the_held_memory_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut dropped = Vec::new();
        let mut wal = open(spill_cfg(dir.path(), 150));
        append(&mut wal, 0, 100, &mut dropped);
        append(&mut wal, 1, 200, &mut dropped);
        // The held one goes first, so the disk stays in order.
        assert_eq!(wal.counters.spilled_records[SpillReason::Memory as usize], 2);
        assert_eq!(unsent(&mut wal), vec![0, 1]);
    }

    #[test]
    fn a_record_held_in_memory_costs_what_the_memory_model_says() {
        let held = std::mem::size_of::<window::Located>() + outpost_core::queue::ENTRY_BYTES;
        assert!(
            held as u64 <= outpost_core::sizing::RECORD_INDEX_BYTES,
            "{held} bytes per record, the model says {}",
            outpost_core::sizing::RECORD_INDEX_BYTES
        );
    }
}
