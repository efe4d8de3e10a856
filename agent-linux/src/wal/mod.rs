//! The on-disk WAL: segment files of ready-to-send compressed records.
//!
//! `DIR/00000001.wal`, `DIR/00000002.wal`, ... each hold records back to
//! back in `outpost_core::wal`'s format (header with CRC, then the snappy
//! `WriteRequest`). Each record is what one scrape put into one shard,
//! appended when the scrape ends, before anything of it is sent; the
//! sender joins records into requests without rewriting them. A segment is
//! deleted only once every record in it is acknowledged or dropped: the
//! sender's `ack_floor` passes the segment's last sequence number.
//!
//! `DIR/lock` is held (`flock`) for as long as a [`DiskWal`] is open, so two
//! agents never share a directory (see [`lock`]).
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
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use outpost_core::plan::Fsync;
use outpost_core::queue::RecordMeta;
use outpost_core::wal::{encode_record, raw_len, Record, RecordKind, RecordReader, WalError, HEADER_LEN};

use crate::log;

pub mod lock;

pub use lock::{LockError, WalLock};

#[derive(Debug, Clone)]
pub struct WalConfig {
    pub dir: PathBuf,
    pub segment_bytes: u64,
    pub max_bytes: u64,
    pub fsync: Fsync,
    /// Largest payload a record may have: the snappy bound of one full
    /// batch (`plan::snappy_max_len(queue.max_batch_bytes)`).
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
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    index: u32,
    bytes: u64,
    last_seq: Option<u64>,
}

/// Where an unsent record lives.
#[derive(Debug, Clone, Copy)]
struct Located {
    meta: RecordMeta,
    segment: u32,
    offset: u64,
    len: u32,
}

/// The record locations held in memory, bounded in records and in samples.
struct Window {
    locations: VecDeque<Located>,
    samples: u64,
    max_records: usize,
    max_samples: u64,
}

impl Window {
    fn new(max_records: usize, max_samples: u64) -> Window {
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
    fn fits(&self, samples: u32) -> bool {
        self.locations.is_empty()
            || (self.locations.len() < self.max_records
                && self.samples + u64::from(samples) <= self.max_samples)
    }

    fn push(&mut self, l: Located) {
        self.samples += u64::from(l.meta.samples);
        self.locations.push_back(l);
    }

    fn pop_front(&mut self) -> Option<Located> {
        let l = self.locations.pop_front()?;
        self.samples -= u64::from(l.meta.samples);
        Some(l)
    }

    fn front(&self) -> Option<&Located> {
        self.locations.front()
    }

    fn find(&self, seq: u64) -> Option<Located> {
        let i = self.locations.binary_search_by_key(&seq, |l| l.meta.seq).ok()?;
        Some(self.locations[i])
    }
}

/// How a pass over a segment file ended.
struct ScanEnd {
    /// File offset after the last record taken.
    next_offset: u64,
    /// The callback declined a record (the window is full).
    stopped: bool,
    /// The data ended cleanly at `next_offset`.
    clean_eof: bool,
    /// Why the data stopped being readable, if it did.
    damage: Option<String>,
}

/// Reads records from `start` on with a buffer of two records; `take` gets
/// each record with its file offset and length and returns false to stop
/// before taking it.
fn scan_file(
    file: &mut File,
    start: u64,
    buf: &mut [u8],
    max_payload: usize,
    take: &mut dyn FnMut(&Record<'_>, u64, u32) -> bool,
) -> io::Result<ScanEnd> {
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
        let mut reader = RecordReader::new(&buf[..filled], max_payload);
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
                Err(e) => damage = Some(e.to_string()),
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
                damage: (!clean)
                    .then(|| format!("WAL record at byte {next_offset} is cut short (torn write)")),
            });
        }
        if consumed == 0 {
            return Ok(ScanEnd {
                next_offset,
                stopped: false,
                clean_eof: false,
                damage: Some(format!("record larger than the {}-byte read buffer", buf.len())),
            });
        }
        buf.copy_within(consumed..filled, 0);
        filled -= consumed;
        base = next_offset;
    }
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
    /// The next record on disk that is not in the window; `None` when the
    /// window holds everything up to the last append.
    cursor: Option<(u32, u64)>,
    next_seq: u64,
    ack_floor: u64,
    persisted_floor: u64,
    encode_buf: Vec<u8>,
    scan_buf: Vec<u8>,
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

/// A segment's file name, `NNNNNNNN.wal` (at least 8 digits), built on
/// the stack: reads and error messages name segments in the hot path.
#[derive(Clone, Copy)]
struct SegmentName {
    bytes: [u8; SegmentName::MAX_LEN],
    len: usize,
}

impl SegmentName {
    /// Ten digits for `u32::MAX`, then `.wal`.
    const MAX_LEN: usize = 10 + 4;

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).expect("ASCII digits and .wal")
    }
}

impl std::fmt::Display for SegmentName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn segment_name(index: u32) -> SegmentName {
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

/// `dir/NNNNNNNN.wal` in `buf`, whose capacity is reserved at open.
fn segment_path<'b>(buf: &'b mut PathBuf, dir: &Path, index: u32) -> &'b Path {
    buf.as_mut_os_string().clear();
    buf.push(dir);
    buf.push(segment_name(index).as_str());
    buf
}

/// `value` in decimal with a newline, in `buf`: the ack floor is written
/// about once a second.
fn decimal_line(value: u64, buf: &mut [u8; 21]) -> &[u8] {
    let mut at = buf.len() - 1;
    buf[at] = b'\n';
    let mut rest = value;
    loop {
        at -= 1;
        buf[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    &buf[at..]
}

fn io_err(what: &str, path: &Path, e: io::Error) -> String {
    format!("wal: {what} {}: {e}", path.display())
}

impl DiskWal {
    /// Opens (or creates) the WAL directory, whose `lock` the caller holds,
    /// and checks every segment in order, cutting off a torn or corrupt
    /// tail. Unsent records are then offered through [`DiskWal::peek_from`].
    pub fn open(cfg: WalConfig, lock: WalLock) -> Result<DiskWal, String> {
        fs::create_dir_all(&cfg.dir).map_err(|e| io_err("cannot create", &cfg.dir, e))?;
        let mut indices: Vec<u32> = fs::read_dir(&cfg.dir)
            .map_err(|e| io_err("cannot list", &cfg.dir, e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let stem = name.strip_suffix(".wal")?;
                (stem.len() == 8).then(|| stem.parse::<u32>().ok()).flatten()
            })
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
        let mut wal = DiskWal {
            encode_buf: Vec::with_capacity(HEADER_LEN + cfg.max_payload_bytes),
            scan_buf: vec![0u8; 2 * (HEADER_LEN + cfg.max_payload_bytes) + 64 * 1024],
            window: Window::new(cfg.max_window_records, cfg.max_window_samples),
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

    fn check_segment(&mut self, index: u32) -> Result<(), String> {
        let path = segment_path(&mut self.segment_path, &self.cfg.dir, index);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| io_err("cannot open", path, e))?;
        let file_len = file.metadata().map_err(|e| io_err("cannot stat", path, e))?.len();
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
        let end = scan_file(
            &mut file,
            0,
            &mut self.scan_buf,
            self.cfg.max_payload_bytes,
            &mut take,
        )
        .map_err(|e| io_err("cannot read", path, e))?;
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
                    ("reason", &end.damage.as_deref().unwrap_or("unknown")),
                ],
            );
            file.set_len(end.next_offset)
                .map_err(|e| io_err("cannot truncate", path, e))?;
            let _ = file.sync_all();
        }
        self.segments.push_back(Segment {
            index,
            bytes: end.next_offset,
            last_seq,
        });
        Ok(())
    }

    /// Loads record locations from the cursor until the window is full or
    /// the cursor reaches the end of the last segment.
    fn fill(&mut self) -> Result<(), String> {
        while !self.window.is_full() {
            let Some((index, offset)) = self.cursor else {
                return Ok(());
            };
            let path = segment_path(&mut self.segment_path, &self.cfg.dir, index);
            let mut file = File::open(path).map_err(|e| io_err("cannot open", path, e))?;
            let (floor, window) = (self.ack_floor, &mut self.window);
            let mut take = |r: &Record<'_>, at: u64, len: u32| {
                if r.kind == RecordKind::Batch && r.meta.seq >= floor {
                    if !window.fits(r.meta.samples) {
                        return false;
                    }
                    window.push(Located {
                        meta: r.meta,
                        segment: index,
                        offset: at,
                        len,
                    });
                }
                true
            };
            let end = scan_file(
                &mut file,
                offset,
                &mut self.scan_buf,
                self.cfg.max_payload_bytes,
                &mut take,
            )
            .map_err(|e| io_err("cannot read", path, e))?;
            if end.stopped {
                self.cursor = Some((index, end.next_offset));
                return Ok(());
            }
            if !end.clean_eof {
                // Checked at start-up and written by us since: this is damage
                // that happened while running. Skip the rest of the segment.
                log::error(
                    "wal: segment became unreadable; skipping its remaining records",
                    &[
                        ("segment", &path.display()),
                        ("reason", &end.damage.as_deref().unwrap_or("unknown")),
                    ],
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
    pub fn peek_from(&mut self, seq: u64) -> Result<Option<RecordMeta>, String> {
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

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn ack_floor(&self) -> u64 {
        self.ack_floor
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

    /// Appends one closed batch and returns its metadata with its new
    /// sequence number (`batch.seq` and `batch.bytes` are filled in here).
    /// Records deleted to stay within `wal.max_bytes` are pushed to
    /// `dropped` so the sender forgets them too.
    pub fn append(
        &mut self,
        batch: RecordMeta,
        payload: &[u8],
        now_ms: u64,
        dropped: &mut Vec<RecordMeta>,
    ) -> Result<RecordMeta, String> {
        let meta = RecordMeta {
            seq: self.next_seq,
            bytes: payload.len() as u32,
            raw_bytes: raw_len(payload),
            ..batch
        };
        self.encode_buf.clear();
        encode_record(&meta, payload, &mut self.encode_buf);
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
            let Err(e) = file.write_all(&self.encode_buf) else {
                break offset;
            };
            // A partial write leaves a torn tail: cut it so later appends
            // stay readable.
            let _ = file.set_len(offset);
            let _ = file.seek(SeekFrom::Start(offset));
            if e.raw_os_error() == Some(libc::ENOSPC) {
                // The disk filled up before wal.max_bytes did. Move on to a
                // fresh segment, so that ack() may delete this one if it is
                // all acknowledged, then apply the byte bound's policy:
                // oldest data first.
                log::warn(
                    "wal: disk full before wal.max_bytes",
                    &[("segment", &segment_name(seg.index)), ("err", &e)],
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
            return Err(format!(
                "wal: cannot append to segment {}: {e}",
                segment_name(seg.index)
            ));
        };
        let seg = self.segments.back_mut().expect("roll made a segment");
        seg.bytes += len;
        seg.last_seq = Some(meta.seq);
        let index = seg.index;
        if self.cursor.is_none() {
            if self.window.fits(meta.samples) {
                self.window.push(Located {
                    meta,
                    segment: index,
                    offset,
                    len: len as u32,
                });
            } else {
                // The window is full: this record and later ones wait on disk.
                self.cursor = Some((index, offset));
            }
        }
        self.next_seq += 1;
        self.counters.records_appended += 1;
        self.counters.bytes_appended += len;
        self.unsynced = true;
        match self.cfg.fsync {
            Fsync::Always => self.sync(now_ms),
            Fsync::IntervalMs(ms) if now_ms >= self.last_fsync_ms + u64::from(ms) => self.sync(now_ms),
            _ => {}
        }
        Ok(meta)
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

    fn roll(&mut self) -> Result<(), String> {
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
            .map_err(|e| io_err("cannot create segment", path, e))?;
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

    fn drop_oldest_segment(&mut self, dropped: &mut Vec<RecordMeta>) -> Result<(), String> {
        let Some(seg) = self.segments.pop_front() else {
            return Ok(());
        };
        let mut samples = 0u64;
        while self.window.front().is_some_and(|r| r.segment == seg.index) {
            let r = self.window.pop_front().expect("checked");
            samples += u64::from(r.meta.samples);
            dropped.push(r.meta);
        }
        if let Some((index, offset)) = self.cursor.filter(|(i, _)| *i == seg.index) {
            // Records of this segment that never made it into the window.
            let path = segment_path(&mut self.segment_path, &self.cfg.dir, index);
            let mut file = File::open(path).map_err(|e| io_err("cannot open", path, e))?;
            let floor = self.ack_floor;
            let mut take = |r: &Record<'_>, _: u64, _: u32| {
                if r.kind == RecordKind::Batch && r.meta.seq >= floor {
                    samples += u64::from(r.meta.samples);
                    dropped.push(r.meta);
                }
                true
            };
            scan_file(
                &mut file,
                offset,
                &mut self.scan_buf,
                self.cfg.max_payload_bytes,
                &mut take,
            )
            .map_err(|e| io_err("cannot read", path, e))?;
            self.cursor = self.segments.front().map(|s| (s.index, 0));
        }
        self.counters.samples_dropped_wal_full += samples;
        self.counters.segments_deleted_wal_full += 1;
        self.remove_segment_file(seg.index);
        log::warn(
            "wal: full, dropped oldest segment",
            &[
                ("segment", &segment_name(seg.index)),
                ("samples", &samples),
                ("max_bytes", &self.cfg.max_bytes),
            ],
        );
        Ok(())
    }

    fn remove_segment_file(&mut self, index: u32) {
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

    /// Every sequence number below `floor` is acknowledged or dropped:
    /// forget those records and delete segments that hold nothing else.
    pub fn ack(&mut self, floor: u64) {
        self.ack_floor = self.ack_floor.max(floor);
        while self.window.front().is_some_and(|r| r.meta.seq < self.ack_floor) {
            self.window.pop_front();
        }
        // Never the segment being appended to: it is still growing.
        while self.segments.len() > 1 {
            let first = self.segments[0];
            let done = first.last_seq.is_none_or(|last| last < self.ack_floor);
            if !done {
                break;
            }
            self.segments.pop_front();
            self.remove_segment_file(first.index);
            if self.cursor.is_some_and(|(i, _)| i == first.index) {
                self.cursor = self.segments.front().map(|s| (s.index, 0));
            }
        }
        // A healthy WAL should not hold a whole segment of acknowledged
        // data: once the segment being appended to is all acknowledged and
        // an eighth full, start the next one so this one can go. On a disk
        // smaller than a segment this is what keeps appends from filling it.
        let current_done = self.segments.back().is_some_and(|s| {
            s.bytes >= (self.cfg.segment_bytes / 8).max(1)
                && s.last_seq.is_some_and(|last| last < self.ack_floor)
        });
        if current_done && self.current.is_some() && self.segments.len() == 1 {
            match self.roll() {
                Ok(()) => self.ack(self.ack_floor),
                Err(e) => log::warn("wal: cannot start a new segment", &[("err", &e)]),
            }
        }
    }

    /// Writes the ack floor to `DIR/ack_floor` if it moved.
    pub fn persist_ack_floor(&mut self) {
        if self.ack_floor == self.persisted_floor {
            return;
        }
        let mut digits = [0u8; 21];
        let text = decimal_line(self.ack_floor, &mut digits);
        let done = fs::write(&self.ack_floor_tmp_path, text)
            .and_then(|_| fs::rename(&self.ack_floor_tmp_path, &self.ack_floor_path));
        match done {
            Ok(()) => self.persisted_floor = self.ack_floor,
            Err(e) => log::warn(
                "wal: cannot write ack_floor",
                &[("dir", &self.cfg.dir.display()), ("err", &e)],
            ),
        }
    }

    /// The payload of record `seq`, read back and checked against its CRC
    /// (valid until the next call). `Ok(None)` when the record is gone
    /// (acknowledged, or dropped because the WAL was full) or not in the
    /// window.
    pub fn read_payload(&mut self, seq: u64) -> Result<Option<&[u8]>, String> {
        let Some(loc) = self.window.find(seq) else {
            return Ok(None);
        };
        if self.read_file.as_ref().is_none_or(|(i, _)| *i != loc.segment) {
            let path = segment_path(&mut self.segment_path, &self.cfg.dir, loc.segment);
            let file = File::open(path).map_err(|e| io_err("cannot open", path, e))?;
            self.read_file = Some((loc.segment, file));
        }
        let (_, file) = self.read_file.as_ref().expect("opened above");
        let record = &mut self.encode_buf;
        record.clear();
        record.resize(loc.len as usize, 0);
        let segment = segment_name(loc.segment);
        if let Err(e) = file.read_exact_at(record, loc.offset) {
            return Err(format!("wal: cannot read record {seq} of segment {segment}: {e}"));
        }
        match RecordReader::new(record, self.cfg.max_payload_bytes).next() {
            Some(Ok(r)) if r.meta.seq == seq => Ok(Some(r.payload)),
            Some(Ok(r)) => Err(format!(
                "wal: index points at record {} instead of {seq} in segment {segment}",
                r.meta.seq
            )),
            Some(Err(e)) => Err(format!("wal: record {seq} of segment {segment}: {e}")),
            None => Err(format!("wal: record {seq} of segment {segment} is empty")),
        }
    }
}

/// `outpost chown-wal`: hands a WAL directory that the platform created
/// root-owned (a Kubernetes hostPath) to the agent's user. It runs once, as
/// root with CAP_CHOWN alone, in an init container of the agent's own image,
/// so the agent itself never holds a capability. Only the directory changes
/// owner: whatever is inside was written by the agent already. A symlink is
/// refused rather than followed.
pub fn chown_dir(dir: &Path, uid: u32, gid: u32) -> Result<(), String> {
    let meta = fs::symlink_metadata(dir).map_err(|e| io_err("cannot inspect", dir, e))?;
    if !meta.is_dir() {
        return Err(format!("wal: {} is not a directory", dir.display()));
    }
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid))
        .map_err(|e| io_err(&format!("cannot give to {uid}:{gid}"), dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path, segment_bytes: u64, max_bytes: u64) -> WalConfig {
        WalConfig {
            dir: dir.to_path_buf(),
            segment_bytes,
            max_bytes,
            fsync: Fsync::Always,
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
    fn stack_built_names_match_the_on_disk_format() {
        for index in [0, 1, 42, 99_999_999, 123_456_789, u32::MAX] {
            assert_eq!(segment_name(index).as_str(), format!("{index:08}.wal"));
        }
        let mut buf = [0u8; 21];
        for value in [0, 7, 10, 1_234_567, u64::MAX] {
            assert_eq!(decimal_line(value, &mut buf), format!("{value}\n").as_bytes());
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
    fn chown_dir_hands_the_directory_over_or_says_why_not() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("wal");
        fs::create_dir(&wal).unwrap();
        // SAFETY: geteuid(2) has no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        match chown_dir(&wal, 65534, 65533) {
            Ok(()) => {
                assert!(root, "only root may give a directory away");
                let meta = fs::metadata(&wal).unwrap();
                assert_eq!((meta.uid(), meta.gid()), (65534, 65533));
            }
            Err(e) => {
                assert!(!root, "root could not chown: {e}");
                assert!(
                    e.contains("cannot give to 65534:65533") && e.contains("wal"),
                    "{e}"
                );
            }
        }
        let file = dir.path().join("file");
        fs::write(&file, b"x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&wal, &link).unwrap();
        for (path, what) in [(&file, "file"), (&link, "link")] {
            let e = chown_dir(path, 65534, 65534).unwrap_err();
            assert!(e.contains("is not a directory") && e.contains(what), "{e}");
        }
        let e = chown_dir(&dir.path().join("missing"), 65534, 65534).unwrap_err();
        assert!(e.contains("cannot inspect") && e.contains("missing"), "{e}");
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

    #[test]
    fn a_record_held_in_memory_costs_what_the_memory_model_says() {
        let held = std::mem::size_of::<Located>() + outpost_core::queue::ENTRY_BYTES;
        assert!(
            held as u64 <= outpost_core::plan::RECORD_INDEX_BYTES,
            "{held} bytes per record, the model says {}",
            outpost_core::plan::RECORD_INDEX_BYTES
        );
    }
}
