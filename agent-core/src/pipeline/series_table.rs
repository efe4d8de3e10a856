//! A target's series across scrapes: one entry per series with its state
//! and latest staged value, its final labels as string ids, and two
//! indexes to find it by.

use super::series_pool::SeriesPool;
use crate::error::ScrapeError;
use crate::labels::LabelSet;
use crate::sizing::SERIES_ENTRY_BYTES;
use crate::symbols::{Index, Symbols, BOOKKEEPING_BYTES_PER_SYMBOL};
use crate::varint;
use alloc::vec::Vec;

// Series state bits, in `SeriesEntry::state`.
/// In the last good scrape.
pub(super) const LIVE: u8 = 1;
/// Seen in the scrape being staged.
pub(super) const SEEN: u8 = 2;
/// The last committed sample carried its own timestamp: such series get
/// no staleness marker, as in Prometheus.
pub(super) const LIVE_OWN_TS: u8 = 4;
/// The staged sample carries its own timestamp.
pub(super) const OWN_TS: u8 = 8;
/// Write relabeling drops this series (no labels kept).
pub(super) const DROPPED: u8 = 16;
/// Remote write cannot carry this series (no labels kept).
pub(super) const INVALID: u8 = 32;
/// Metric relabeling drops this exposed series (or leaves it nameless):
/// remembered so that later scrapes skip it without relabeling again.
pub(super) const METRIC_DROPPED: u8 = 64;
/// The series' latest sample was older than `max_sample_age` and refused:
/// staged with [`SEEN`], it is a series known but not live once committed.
pub(super) const TOO_OLD: u8 = 128;

/// One series of a target's table.
#[derive(Debug, Clone, Copy)]
pub(super) struct SeriesEntry {
    /// Hash of the final, sorted target-level labels: the series' identity.
    pub(super) hash: u64,
    /// Hash of the series as exposed, the fast lookup key.
    pub(super) raw: u64,
    pub(super) value: f64,
    pub(super) ts: i64,
    /// Bytes its labels take in a remote-write request, kept so a push
    /// writes them in one pass over the ids.
    pub(super) wire_len: u32,
    /// The series' id list in the table's id arena.
    pub(super) at: u32,
    pub(super) len: u32,
    pub(super) state: u8,
}

// The memory model charges a series-table entry `SERIES_ENTRY_BYTES`.
const _: () = assert!(core::mem::size_of::<SeriesEntry>() as u64 == SERIES_ENTRY_BYTES);

/// A target's series: the entries in first-seen order; their final labels
/// as lists of string ids into the target's [`Symbols`], in an arena in the
/// same order (so dropping vanished series compacts both in one pass
/// without allocating); and two indexes: by the series as exposed, and by
/// its labels, which finds duplicates and series whose exposition changed
/// but whose labels did not.
///
/// The table starts empty and grows by doubling, its entries and its
/// arena (id lists and strings) apart, up to the caps its target's limits
/// give; each growth is reserved first in the agent's [`SeriesPool`]. It
/// never shrinks: a target that once held many series keeps their room.
pub(super) struct SeriesTable {
    by_raw: Index,
    by_hash: Index,
    pub(super) entries: Vec<SeriesEntry>,
    /// Per series, varint (name id, value id) pairs.
    pub(super) ids: Vec<u8>,
    pub(super) symbols: Symbols,
    /// Slots of `by_raw` left behind by re-keyed entries (skipped by
    /// lookups, cleared by the next rebuild). They count towards its load,
    /// so a target that reorders every label every scrape cannot fill it.
    rekeyed: usize,
    /// The entry after the last one a sample matched. Targets expose their
    /// series in the same order scrape after scrape, so this is usually the
    /// next sample's entry: checking it first walks the entries in order
    /// instead of jumping through the index (a cache miss per sample).
    pub(super) cursor: usize,
    /// The fairness caps from the target's limits: entries, arena bytes.
    pub(super) max_entries: usize,
    pub(super) max_bytes: usize,
    /// The arena bytes the table is sized for now.
    arena_bytes: usize,
    /// What the table has reserved in the series pool: entries, bytes.
    reserved: (u64, u64),
}

/// The most a table sized for `entries` entries and `bytes` arena bytes
/// holds: its entries, its two indexes at their largest, the id lists and
/// the string table.
pub(crate) fn max_heap_bytes(entries: usize, bytes: usize) -> u64 {
    entries as u64 * SERIES_ENTRY_BYTES
        + 2 * Index::max_heap_bytes(entries)
        + (bytes / 4) as u64
        + Symbols::max_heap_bytes(max_symbols(bytes), bytes / 4)
}

/// The most one of the table's indexes holds beside that while it grows.
pub(crate) fn growth_bytes(entries: usize, bytes: usize) -> u64 {
    Index::growth_bytes(entries).max(Symbols::growth_bytes(max_symbols(bytes)))
}

/// What a table sized for `entries` and `bytes` reserves in the series
/// pool: all it may hold at that size, an index's growth included.
pub(crate) fn reserved_bytes(entries: usize, bytes: usize) -> u64 {
    if entries == 0 && bytes == 0 {
        return 0;
    }
    max_heap_bytes(entries, bytes) + growth_bytes(entries, bytes)
}

/// Entries and arena bytes a table's first growth reserves.
pub(crate) const FIRST_ENTRIES: usize = 256;
pub(crate) const FIRST_ARENA_BYTES: usize = 32 * 1024;

fn max_symbols(bytes: usize) -> usize {
    bytes / 2 / BOOKKEEPING_BYTES_PER_SYMBOL
}

impl SeriesTable {
    /// An empty table that may grow to `entries` series whose ids and
    /// strings take at most `bytes`: a quarter for id lists, a quarter for
    /// string text, half for the strings' bookkeeping (the text's
    /// compaction spare comes on top, see [`max_heap_bytes`]).
    pub(super) fn with_caps(entries: usize, bytes: usize) -> Self {
        SeriesTable {
            by_raw: Index::new(0),
            by_hash: Index::new(0),
            entries: Vec::new(),
            ids: Vec::new(),
            symbols: Symbols::with_limits(0, 0),
            rekeyed: 0,
            cursor: 0,
            max_entries: entries,
            max_bytes: bytes,
            arena_bytes: 0,
            reserved: (0, 0),
        }
    }

    /// Resizes to `entries` and `arena` bytes, first reserving the new
    /// size beside the old one in `pool`, then giving the old one back.
    fn resize(&mut self, entries: usize, arena: usize, pool: &mut SeriesPool) -> Result<(), ScrapeError> {
        let new = (entries as u64, reserved_bytes(entries, arena));
        pool.reserve(new.0.saturating_sub(self.reserved.0), new.1)?;
        if entries > self.entries.capacity() {
            self.entries.reserve_exact(entries - self.entries.len());
            self.by_raw.raise_max(entries);
            self.by_hash.raise_max(entries);
        }
        if arena > self.arena_bytes {
            self.ids.reserve_exact(arena / 4 - self.ids.len());
            self.symbols.grow_to(max_symbols(arena), arena / 4);
            self.arena_bytes = arena;
        }
        pool.release(0, self.reserved.1);
        self.reserved = new;
        Ok(())
    }

    /// Makes room for one more entry: Ok when there is room (growing if
    /// need be), the pool's refusal, or the target's own cap.
    pub(super) fn entry_room(&mut self, pool: &mut SeriesPool) -> Result<(), ScrapeError> {
        if self.entries.len() < self.entries.capacity() {
            return Ok(());
        }
        if self.entries.capacity() >= self.max_entries {
            return Err(self.bytes_limit());
        }
        let want = (2 * self.entries.capacity())
            .max(FIRST_ENTRIES)
            .min(self.max_entries);
        self.resize(want, self.arena_bytes, pool)
    }

    /// Doubles the arena (id lists and strings) for a series that did not
    /// fit: the pool's refusal, or the target's own cap when it is there.
    pub(super) fn grow_arena(&mut self, pool: &mut SeriesPool) -> Result<(), ScrapeError> {
        if self.arena_bytes >= self.max_bytes {
            return Err(self.bytes_limit());
        }
        let want = (2 * self.arena_bytes).max(FIRST_ARENA_BYTES).min(self.max_bytes);
        self.resize(self.entries.capacity(), want, pool)
    }

    /// The error of a table at its own cap.
    pub(super) fn bytes_limit(&self) -> ScrapeError {
        ScrapeError::SeriesBytesLimit {
            limit: self.max_bytes as u64,
        }
    }

    /// What the table holds in the series pool: entries, bytes.
    pub(super) fn reserved(&self) -> (u64, u64) {
        self.reserved
    }

    /// Charges the table, as it is, to `pool` (a reload hands it to the
    /// new plan's pool); nothing when the pool has no room for it.
    pub(super) fn charge_to(&self, pool: &mut SeriesPool) -> Result<(), ScrapeError> {
        pool.reserve(self.reserved.0, self.reserved.1)
    }

    /// Frees everything the table holds and gives its reservation back.
    pub(super) fn free(&mut self, pool: &mut SeriesPool) {
        pool.release(self.reserved.0, self.reserved.1);
        *self = SeriesTable::with_caps(self.max_entries, self.max_bytes);
    }

    fn find_raw(&self, raw: u64) -> Result<usize, usize> {
        self.by_raw.find(raw, |i| self.entries[i].raw, |_| true)
    }

    /// [`SeriesTable::find_raw`], trying the entry after the last match first.
    pub(super) fn find_raw_in_order(&mut self, raw: u64) -> Result<usize, usize> {
        let found = match self.entries.get(self.cursor) {
            Some(e) if e.raw == raw => Ok(self.cursor),
            _ => self.find_raw(raw),
        };
        if let Ok(i) = found {
            self.cursor = i + 1;
        }
        found
    }

    /// Only series that reach remote write are indexed by hash.
    pub(super) fn find_hash(&self, hash: u64) -> Result<usize, usize> {
        self.by_hash.find(hash, |i| self.entries[i].hash, |_| true)
    }

    pub(super) fn is_full(&self) -> bool {
        self.entries.len() == self.entries.capacity()
    }

    /// Adds `entry` at the slots a failed lookup gave; the caller made room
    /// ([`SeriesTable::entry_room`]).
    pub(super) fn push(&mut self, raw_slot: usize, hash_slot: Option<usize>, entry: SeriesEntry) {
        debug_assert!(
            !self.is_full(),
            "the series table was sized for {} entries",
            self.entries.capacity()
        );
        self.entries.push(entry);
        let i = self.entries.len() - 1;
        if self.by_raw.needs_growth(self.entries.len() + self.rekeyed)
            || self.by_hash.needs_growth(self.entries.len())
            || self.raw_index_crowded()
        {
            self.reindex();
            return;
        }
        self.by_raw.set(raw_slot, i);
        if let Some(slot) = hash_slot {
            self.by_hash.set(slot, i);
        }
    }

    /// Points entry `i`, known by another exposed form, at `raw`.
    pub(super) fn rekey(&mut self, i: usize, raw: u64, raw_slot: usize) {
        self.entries[i].raw = raw;
        self.rekeyed += 1;
        if self.raw_index_crowded() {
            self.reindex();
        } else {
            self.by_raw.set(raw_slot, i);
        }
    }

    /// More than half of `by_raw` taken by entries and left-behind slots.
    fn raw_index_crowded(&self) -> bool {
        2 * (self.entries.len() + self.rekeyed) > self.by_raw.slot_count()
    }

    fn reindex(&mut self) {
        self.rekeyed = 0;
        self.by_raw.reset_for(self.entries.len());
        self.by_hash.reset_for(self.entries.len());
        for (i, e) in self.entries.iter().enumerate() {
            self.by_raw.insert(e.raw, i);
            if e.state & METRIC_DROPPED == 0 {
                self.by_hash.insert(e.hash, i);
            }
        }
    }

    pub(super) fn labels(&self, e: &SeriesEntry) -> &[u8] {
        &self.ids[e.at as usize..(e.at + e.len) as usize]
    }

    /// Stores `labels` as string ids at the end of the id arena and returns
    /// their bytes there; on a full table nothing is kept.
    pub(super) fn store_labels(&mut self, labels: &LabelSet) -> Result<u32, ()> {
        let at = self.ids.len();
        for (name, value) in labels.iter() {
            let stored = self.ids.len() + 2 * varint::MAX_LEN_U32 <= self.ids.capacity()
                && match self.symbols.intern(name) {
                    Ok(n) => match self.symbols.intern(value) {
                        Ok(v) => {
                            varint::put(&mut self.ids, u64::from(n));
                            varint::put(&mut self.ids, u64::from(v));
                            true
                        }
                        Err(_) => {
                            self.symbols.release(n);
                            false
                        }
                    },
                    Err(_) => false,
                };
            if !stored {
                release_ids(&mut self.symbols, &self.ids[at..]);
                self.ids.truncate(at);
                return Err(());
            }
        }
        Ok((self.ids.len() - at) as u32)
    }

    pub(super) fn clear(&mut self) {
        self.by_raw.reset_for(0);
        self.by_hash.reset_for(0);
        self.entries.clear();
        self.ids.clear();
        self.symbols.clear();
        self.rekeyed = 0;
        self.cursor = 0;
    }

    /// Removes the entries `keep` refuses, compacting entries and id arena
    /// in place, giving their strings back, and rebuilds the indexes.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&mut SeriesEntry) -> bool) {
        let mut kept = 0;
        let mut ids_end = 0usize;
        for i in 0..self.entries.len() {
            let mut e = self.entries[i];
            let (at, len) = (e.at as usize, e.len as usize);
            if !keep(&mut e) {
                release_ids(&mut self.symbols, &self.ids[at..at + len]);
                continue;
            }
            if at != ids_end {
                self.ids.copy_within(at..at + len, ids_end);
                e.at = ids_end as u32;
            }
            ids_end += len;
            self.entries[kept] = e;
            kept += 1;
        }
        let removed = kept != self.entries.len();
        self.cursor = 0;
        self.entries.truncate(kept);
        self.ids.truncate(ids_end);
        if removed || self.rekeyed > 0 {
            self.reindex();
        }
        self.symbols.maybe_compact();
    }
}

/// Reads the id at `*at` of an id list this module wrote.
#[inline]
fn next_id(ids: &[u8], at: &mut usize) -> u32 {
    let id = varint::read(ids, at, varint::MAX_LEN_U32);
    debug_assert!(id.is_ok(), "id lists hold whole varints");
    id.unwrap_or(0) as u32
}

/// The (name, value) pairs of a stored id list.
pub(super) fn id_pairs<'a>(
    symbols: &'a Symbols,
    ids: &'a [u8],
) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
    let mut at = 0;
    core::iter::from_fn(move || {
        (at < ids.len()).then(|| {
            let n = next_id(ids, &mut at);
            let v = next_id(ids, &mut at);
            (symbols.get(n), symbols.get(v))
        })
    })
}

fn release_ids(symbols: &mut Symbols, ids: &[u8]) {
    let mut at = 0;
    while at < ids.len() {
        let id = next_id(ids, &mut at);
        symbols.release(id);
    }
}
