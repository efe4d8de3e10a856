//! A per-target string table: label names and values stored once, referred
//! to by small ids.
//!
//! A KSM target with 50,000 series repeats a few dozen label names and
//! about 20,000 distinct values across some 600,000 label pairs; its series
//! also all carry the same job, instance and external labels. Keeping each
//! string once and each series as a list of ids is what lets the agent
//! remember a large target in a few MiB.
//!
//! Ids are counted references: a string lives while some series uses it.
//! Freed ids are reused, and the text arena is compacted in place once half
//! of it is dead, so a target whose series churn never grows the table past
//! what its live series need. Every store is allocated up front from the
//! limits, except the hash index, which doubles as the table fills (during
//! warm-up only: it never shrinks).

use crate::labels::WordHash;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

/// One index slot: id + 1, or 0 when free.
type Slot = u32;
/// Bytes of one index slot, as the memory model counts them (through
/// `Index::max_heap_bytes`).
pub const INDEX_SLOT_BYTES: usize = core::mem::size_of::<Slot>();
const _: () = assert!(INDEX_SLOT_BYTES == 4);

/// Open-addressing index of ids by a 64-bit key, with linear probing and
/// backward-shift deletion (no tombstones).
///
/// Every probe loop ends at a free slot, so at most half the slots are ever
/// in use: [`Index::set`] and [`Index::insert`] assert it. The loops are
/// also bounded by the slot count, so a broken invariant panics instead of
/// probing forever.
pub(crate) struct Index {
    slots: Vec<Slot>,
    /// Slots in use, including any a caller left behind (see `set`).
    used: usize,
    max_slots: usize,
}

impl Index {
    const MIN_SLOTS: usize = 256;

    /// An index that can grow to hold `max_ids` ids at half load.
    pub(crate) fn new(max_ids: usize) -> Self {
        assert!(
            max_ids < Slot::MAX as usize,
            "{max_ids} ids do not fit an index slot"
        );
        let max_slots = Self::max_slots(max_ids);
        Index {
            slots: vec![0; Self::MIN_SLOTS.min(max_slots)],
            used: 0,
            max_slots,
        }
    }

    /// Lets the index grow to hold `max_ids` ids (never lowers it).
    pub(crate) fn raise_max(&mut self, max_ids: usize) {
        assert!(
            max_ids < Slot::MAX as usize,
            "{max_ids} ids do not fit an index slot"
        );
        self.max_slots = self.max_slots.max(Self::max_slots(max_ids));
    }

    fn home(&self, key: u64) -> usize {
        // FNV-style hashes keep their entropy in the high bits.
        ((key ^ (key >> 29)) as usize) & (self.slots.len() - 1)
    }

    /// Every slot once, from `key`'s home on, wrapping around.
    fn probe(&self, key: u64) -> impl Iterator<Item = usize> {
        let (home, mask) = (self.home(key), self.slots.len() - 1);
        (0..self.slots.len()).map(move |step| (home + step) & mask)
    }

    /// The id `key_of` maps to `key` and `same` accepts, or the free slot
    /// where it would go.
    pub(crate) fn find(
        &self,
        key: u64,
        key_of: impl Fn(usize) -> u64,
        same: impl Fn(usize) -> bool,
    ) -> Result<usize, usize> {
        for slot in self.probe(key) {
            match self.slots[slot] {
                0 => return Err(slot),
                v => {
                    let id = v as usize - 1;
                    if key_of(id) == key && same(id) {
                        return Ok(id);
                    }
                }
            }
        }
        self.no_free_slot()
    }

    fn max_slots(max_ids: usize) -> usize {
        (2 * max_ids).next_power_of_two().max(Self::MIN_SLOTS)
    }

    /// The most an index for `max_ids` ids holds once grown: its largest
    /// slot array.
    pub(crate) fn max_heap_bytes(max_ids: usize) -> u64 {
        (Self::max_slots(max_ids) * INDEX_SLOT_BYTES) as u64
    }

    /// What it holds beside that while it doubles into it: the half it
    /// grows from. Indexes grow one at a time, on the agent's one thread.
    pub(crate) fn growth_bytes(max_ids: usize) -> u64 {
        Self::max_heap_bytes(max_ids) / 2
    }

    /// What the half-load assertion in `took_slot` rules out.
    #[cold]
    fn no_free_slot(&self) -> ! {
        unreachable!(
            "index without a free slot: {} of {} used",
            self.used,
            self.slots.len()
        )
    }

    pub(crate) fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// Puts `id` into the free `slot` that `find` returned. A caller that
    /// moves an id this way leaves its old slot in use until the next
    /// `reset_for`, and must count that slot towards the load itself.
    pub(crate) fn set(&mut self, slot: usize, id: usize) {
        debug_assert_eq!(self.slots[slot], 0, "set into a slot in use");
        self.slots[slot] = id as Slot + 1;
        self.took_slot();
    }

    fn took_slot(&mut self) {
        self.used += 1;
        assert!(
            2 * self.used <= self.slots.len(),
            "index over half full: {} of {} slots used (a lookup could probe forever)",
            self.used,
            self.slots.len()
        );
    }

    /// Whether `count` ids fit at half load; if not and the index may grow,
    /// it doubles (allocating) and `rehash` must re-insert every id.
    pub(crate) fn needs_growth(&self, count: usize) -> bool {
        2 * count > self.slots.len() && self.slots.len() < self.max_slots
    }

    /// Empties the index, at least `count` ids large (grows, never shrinks).
    pub(crate) fn reset_for(&mut self, count: usize) {
        let want = (2 * count)
            .next_power_of_two()
            .clamp(Self::MIN_SLOTS, self.max_slots);
        if want > self.slots.len() {
            self.slots = vec![0; want];
        } else {
            self.slots.fill(0);
        }
        self.used = 0;
        debug_assert!(self.slots.len() <= self.max_slots, "index grew past its sizing");
    }

    /// Puts `id` into the first free slot from its key's home.
    pub(crate) fn insert(&mut self, key: u64, id: usize) {
        let Some(slot) = self.probe(key).find(|&slot| self.slots[slot] == 0) else {
            self.no_free_slot()
        };
        self.slots[slot] = id as Slot + 1;
        self.took_slot();
    }

    /// Removes `id` (whose key is `key`), shifting later entries of the
    /// probe run back so lookups never stop at a hole too early.
    fn remove(&mut self, key: u64, id: usize, key_of: impl Fn(usize) -> u64) {
        let wanted = id as Slot + 1;
        let Some(mut hole) = self
            .probe(key)
            .find(|&slot| self.slots[slot] == wanted || self.slots[slot] == 0)
        else {
            self.no_free_slot()
        };
        if self.slots[hole] == 0 {
            return;
        }
        let (start, mask) = (hole, self.slots.len() - 1);
        // The run after the removed id ends at a free slot within one round.
        for step in 1..self.slots.len() {
            let j = (start + step) & mask;
            let v = self.slots[j];
            if v == 0 {
                break;
            }
            let home = self.home(key_of(v as usize - 1));
            // The entry at j may fill the hole if the hole lies between its
            // home and j (cyclically).
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots[hole] = v;
                hole = j;
            }
        }
        self.slots[hole] = 0;
        self.used -= 1;
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Span {
    at: u32,
    len: u32,
}

/// Bookkeeping bytes per distinct string: its span, reference count, key,
/// free-list entry and two index slots (the index is at most half full).
/// The series table sizes its string table with it.
pub const BOOKKEEPING_BYTES_PER_SYMBOL: usize = core::mem::size_of::<Span>()
    + core::mem::size_of::<u32>()
    + core::mem::size_of::<u64>()
    + core::mem::size_of::<u32>()
    + 2 * core::mem::size_of::<Slot>();
const _: () = assert!(BOOKKEEPING_BYTES_PER_SYMBOL == 32);

/// The string table of one target.
pub struct Symbols {
    text: String,
    spans: Vec<Span>,
    refs: Vec<u32>,
    keys: Vec<u64>,
    index: Index,
    /// Ids whose count dropped to zero, for reuse.
    free: Vec<u32>,
    /// Bytes of `text` that belong to freed ids.
    dead_bytes: usize,
    /// Compaction target, same capacity as `text` (touched only as far as
    /// the live strings reach).
    spare: String,
    /// The limits every store was sized for; none ever grows past them.
    max_symbols: usize,
    max_bytes: usize,
}

/// The table is full: more distinct strings, or more of their bytes, than
/// its limits allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SymbolsFull;

impl Symbols {
    /// The most a table made by [`Symbols::with_limits`] holds: its text and
    /// the compaction spare, a span, count, key and free-list entry per
    /// string, and its index at its largest.
    pub fn max_heap_bytes(max_symbols: usize, max_bytes: usize) -> u64 {
        let per_symbol = core::mem::size_of::<Span>()
            + core::mem::size_of::<u32>()
            + core::mem::size_of::<u64>()
            + core::mem::size_of::<u32>();
        (2 * max_bytes + max_symbols * per_symbol) as u64 + Index::max_heap_bytes(max_symbols)
    }

    /// What the table's index holds beside that while it grows.
    pub fn growth_bytes(max_symbols: usize) -> u64 {
        Index::growth_bytes(max_symbols)
    }

    /// A table for at most `max_symbols` distinct strings of `max_bytes`
    /// together. Only the index is sized to what is used; the rest is
    /// reserved (and only touched as it fills).
    pub fn with_limits(max_symbols: usize, max_bytes: usize) -> Self {
        Symbols {
            text: String::with_capacity(max_bytes),
            spans: Vec::with_capacity(max_symbols),
            refs: Vec::with_capacity(max_symbols),
            keys: Vec::with_capacity(max_symbols),
            index: Index::new(max_symbols),
            free: Vec::with_capacity(max_symbols),
            dead_bytes: 0,
            spare: String::with_capacity(max_bytes),
            max_symbols,
            max_bytes,
        }
    }

    /// Raises the table's limits to `max_symbols` strings of `max_bytes`,
    /// allocating the stores for them now (the series table does this when
    /// its reservation in the series pool grows). Never lowers them.
    pub fn grow_to(&mut self, max_symbols: usize, max_bytes: usize) {
        if max_symbols > self.max_symbols {
            self.spans.reserve_exact(max_symbols - self.spans.len());
            self.refs.reserve_exact(max_symbols - self.refs.len());
            self.keys.reserve_exact(max_symbols - self.keys.len());
            self.free.reserve_exact(max_symbols - self.free.len());
            self.index.raise_max(max_symbols);
            self.max_symbols = max_symbols;
        }
        if max_bytes > self.max_bytes {
            self.text.reserve_exact(max_bytes - self.text.len());
            // The spare holds nothing between compactions.
            self.spare.clear();
            self.spare.reserve_exact(max_bytes);
            self.max_bytes = max_bytes;
        }
        self.debug_check_capacities();
    }

    /// Nothing grew past its sizing (a push past capacity would have
    /// allocated, which the steady state must never do).
    fn debug_check_capacities(&self) {
        debug_assert!(self.spans.capacity() == self.max_symbols, "spans grew");
        debug_assert!(self.refs.capacity() == self.max_symbols, "counts grew");
        debug_assert!(self.keys.capacity() == self.max_symbols, "keys grew");
        debug_assert!(self.free.capacity() == self.max_symbols, "free list grew");
        debug_assert!(self.text.capacity() == self.max_bytes, "text grew");
        debug_assert!(self.spare.capacity() == self.max_bytes, "compaction text grew");
    }

    pub fn len(&self) -> usize {
        self.spans.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn text_bytes(&self) -> usize {
        self.text.len() - self.dead_bytes
    }

    pub fn get(&self, id: u32) -> &str {
        let s = self.spans[id as usize];
        &self.text[s.at as usize..(s.at + s.len) as usize]
    }

    /// The id of `s`, counting one more reference to it.
    pub fn intern(&mut self, s: &str) -> Result<u32, SymbolsFull> {
        let key = key_of(s.as_bytes());
        let found = {
            let (keys, spans, text) = (&self.keys, &self.spans, &self.text);
            self.index.find(
                key,
                |id| keys[id],
                |id| {
                    let sp = spans[id];
                    &text.as_bytes()[sp.at as usize..(sp.at + sp.len) as usize] == s.as_bytes()
                },
            )
        };
        let slot = match found {
            Ok(id) => {
                self.refs[id] += 1;
                return Ok(id as u32);
            }
            Err(slot) => slot,
        };
        if self.text.len() + s.len() > self.max_bytes {
            self.compact();
            if self.text.len() + s.len() > self.max_bytes {
                return Err(SymbolsFull);
            }
        }
        let span = Span {
            at: self.text.len() as u32,
            len: s.len() as u32,
        };
        let id = match self.free.pop() {
            Some(id) => {
                let i = id as usize;
                self.spans[i] = span;
                self.refs[i] = 1;
                self.keys[i] = key;
                i
            }
            None if self.spans.len() < self.max_symbols => {
                self.spans.push(span);
                self.refs.push(1);
                self.keys.push(key);
                self.spans.len() - 1
            }
            None => return Err(SymbolsFull),
        };
        self.text.push_str(s);
        if self.index.needs_growth(self.len()) {
            self.rehash();
        } else {
            self.index.set(slot, id);
        }
        self.debug_check_capacities();
        Ok(id as u32)
    }

    /// Gives back one reference to `id`; the string goes with the last one.
    pub fn release(&mut self, id: u32) {
        let i = id as usize;
        self.refs[i] -= 1;
        if self.refs[i] > 0 {
            return;
        }
        let keys = &self.keys;
        self.index.remove(keys[i], i, |id| keys[id]);
        self.dead_bytes += self.spans[i].len as usize;
        self.free.push(id);
    }

    /// Rewrites the text without freed strings, once they are half of it.
    pub fn maybe_compact(&mut self) {
        if self.dead_bytes > 4096 && 2 * self.dead_bytes > self.text.len() {
            self.compact();
        }
    }

    fn compact(&mut self) {
        if self.dead_bytes == 0 {
            return;
        }
        self.spare.clear();
        for id in 0..self.spans.len() {
            if self.refs[id] == 0 {
                continue;
            }
            let sp = &mut self.spans[id];
            let at = self.spare.len() as u32;
            self.spare
                .push_str(&self.text[sp.at as usize..(sp.at + sp.len) as usize]);
            sp.at = at;
        }
        core::mem::swap(&mut self.text, &mut self.spare);
        self.dead_bytes = 0;
        self.debug_check_capacities();
    }

    fn rehash(&mut self) {
        self.index.reset_for(self.len() + 1);
        for id in 0..self.spans.len() {
            if self.refs[id] > 0 {
                self.index.insert(self.keys[id], id);
            }
        }
    }

    /// Forgets every string.
    pub fn clear(&mut self) {
        self.text.clear();
        self.spans.clear();
        self.refs.clear();
        self.keys.clear();
        self.free.clear();
        self.dead_bytes = 0;
        self.index.reset_for(0);
    }
}

/// The hash strings are indexed by.
fn key_of(bytes: &[u8]) -> u64 {
    let mut h = WordHash::new();
    h.write(bytes);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::vec::Vec;

    #[test]
    fn strings_are_stored_once_and_freed_with_their_last_reference() {
        let mut s = Symbols::with_limits(16, 256);
        let a = s.intern("namespace").unwrap();
        let b = s.intern("kube-system").unwrap();
        assert_eq!(s.intern("namespace"), Ok(a));
        assert_eq!((s.len(), s.text_bytes()), (2, 20));
        s.release(a);
        assert_eq!(s.get(a), "namespace");
        s.release(a);
        assert_eq!((s.len(), s.text_bytes()), (1, 11));
        // The freed id is reused, the live one is untouched.
        let c = s.intern("pod").unwrap();
        assert_eq!(c, a);
        assert_eq!(s.get(b), "kube-system");
        assert_eq!(s.get(c), "pod");
    }

    #[test]
    fn churn_never_outgrows_the_limits() {
        // 64 live strings at a time, 10,000 distinct ones over the run.
        let mut s = Symbols::with_limits(128, 64 * 16);
        let mut live: Vec<(u32, alloc::string::String)> = Vec::new();
        for i in 0..10_000 {
            let text = format!("pod-{i:08}");
            let id = s.intern(&text).expect("room for the live strings");
            live.push((id, text));
            if live.len() > 64 {
                let (id, _) = live.remove(0);
                s.release(id);
            }
            if i % 97 == 0 {
                s.maybe_compact();
            }
        }
        assert_eq!(s.len(), 64);
        for (id, text) in &live {
            assert_eq!(s.get(*id), text);
            assert_eq!(s.intern(text), Ok(*id));
        }
    }

    #[test]
    fn limits_are_reported_not_exceeded() {
        let mut s = Symbols::with_limits(2, 8);
        s.intern("abcd").unwrap();
        assert_eq!(s.intern("efghi"), Err(SymbolsFull));
        s.intern("efgh").unwrap();
        assert_eq!(s.intern("x"), Err(SymbolsFull));
        assert_eq!(s.len(), 2);
    }

    /// Before the load assertion, `set` filled every slot and the lookup of
    /// an absent key at the end went round the full table forever.
    #[test]
    #[should_panic(expected = "index over half full")]
    fn filling_the_index_past_half_load_fails_instead_of_probing_forever() {
        let mut index = Index::new(128);
        let keys: Vec<u64> = (0..index.slot_count() as u64).collect();
        for id in 0..keys.len() {
            let slot = index.find(keys[id], |i| keys[i], |_| true).unwrap_err();
            index.set(slot, id);
        }
        let _ = index.find(u64::MAX, |i| keys[i], |_| true);
    }

    /// Exactly half full, every key on one home: the longest probe run there
    /// can be. Lookups of absent keys still end, and removals keep the run
    /// whole.
    #[test]
    fn a_half_full_index_with_one_probe_run_still_ends_every_lookup() {
        let mut index = Index::new(128);
        let half = index.slot_count() / 2;
        let same_home = 7u64;
        for id in 0..half {
            index.insert(same_home, id);
        }
        let key_of = |_| same_home;
        assert!(index.find(same_home, key_of, |_| false).is_err());
        assert!(index.find(same_home ^ 1, key_of, |_| false).is_err());
        for id in (0..half).step_by(3) {
            index.remove(same_home, id, key_of);
        }
        for id in 0..half {
            let found = index.find(same_home, key_of, |i| i == id);
            assert_eq!(found.is_ok(), id % 3 != 0, "id {id}");
        }
    }

    #[test]
    fn the_index_grows_and_deletion_keeps_every_probe_run_intact() {
        let mut s = Symbols::with_limits(5000, 1 << 16);
        let ids: Vec<u32> = (0..3000).map(|i| s.intern(&format!("v{i}")).unwrap()).collect();
        for (i, id) in ids.iter().enumerate() {
            if i % 3 == 0 {
                s.release(*id);
            }
        }
        for (i, id) in ids.iter().enumerate() {
            if i % 3 != 0 {
                assert_eq!(s.intern(&format!("v{i}")), Ok(*id), "v{i}");
            }
        }
        assert_eq!(s.len(), 2000);
    }
}
