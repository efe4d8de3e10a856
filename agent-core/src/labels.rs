//! A bounded, reusable label set.
//!
//! Both storage vectors are allocated once, at their final capacity, when a
//! target is set up; [`LabelSet::clear`] keeps them. Nothing here grows past
//! the capacity it was built with: a push that would is refused with
//! [`LabelError`], which the caller turns into a failed scrape.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelError {
    /// More labels than the set was sized for.
    TooManyLabels { limit: usize },
    /// The names and values together exceed the set's byte arena.
    TooManyBytes { limit: usize },
}

impl fmt::Display for LabelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelError::TooManyLabels { limit } => write!(f, "more than {limit} labels on one series"),
            LabelError::TooManyBytes { limit } => write!(f, "labels of one series exceed {limit} bytes"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Span {
    name_at: u32,
    name_len: u32,
    value_at: u32,
    value_len: u32,
}

#[derive(Debug, Clone)]
pub struct LabelSet {
    /// A `String` rather than bytes so that reading a label is a slice, not
    /// a UTF-8 validation: only `&str` ever enters it.
    arena: String,
    spans: Vec<Span>,
    /// Compaction target, same capacity as `arena`.
    spare: String,
}

impl LabelSet {
    /// Allocates the set's storage, once: `max_labels` pairs whose names and
    /// values add up to at most `max_bytes`.
    pub fn with_capacity(max_labels: usize, max_bytes: usize) -> Self {
        LabelSet {
            arena: String::with_capacity(max_bytes),
            spans: Vec::with_capacity(max_labels),
            spare: String::with_capacity(max_bytes),
        }
    }

    pub fn clear(&mut self) {
        self.arena.clear();
        self.spans.clear();
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn max_labels(&self) -> usize {
        self.spans.capacity()
    }

    fn text(&self, at: u32, len: u32) -> &str {
        &self.arena[at as usize..(at + len) as usize]
    }

    /// Name and value of the `i`-th label, in the set's current order.
    pub fn at(&self, i: usize) -> (&str, &str) {
        let s = self.spans[i];
        (
            self.text(s.name_at, s.name_len),
            self.text(s.value_at, s.value_len),
        )
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        (0..self.spans.len()).map(move |i| self.at(i))
    }

    fn position(&self, name: &str) -> Option<usize> {
        (0..self.spans.len()).find(|&i| self.at(i).0 == name)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.position(name).map(|i| self.at(i).1)
    }

    /// Makes room for `need` more bytes, compacting once if that helps.
    fn reserve(&mut self, need: usize) -> Result<(), LabelError> {
        if self.arena.len() + need > self.arena.capacity() {
            self.compact();
            if self.arena.len() + need > self.arena.capacity() {
                return Err(LabelError::TooManyBytes {
                    limit: self.arena.capacity(),
                });
            }
        }
        Ok(())
    }

    /// Appends `s` to the arena; the caller has reserved room for it.
    fn store(&mut self, s: &str) -> (u32, u32) {
        let at = self.arena.len() as u32;
        self.arena.push_str(s);
        (at, s.len() as u32)
    }

    /// Rewrites the arena without the bytes of removed or replaced labels.
    fn compact(&mut self) {
        self.spare.clear();
        for span in self.spans.iter_mut() {
            let name = &self.arena[span.name_at as usize..(span.name_at + span.name_len) as usize];
            span.name_at = self.spare.len() as u32;
            self.spare.push_str(name);
            let value = &self.arena[span.value_at as usize..(span.value_at + span.value_len) as usize];
            span.value_at = self.spare.len() as u32;
            self.spare.push_str(value);
        }
        core::mem::swap(&mut self.arena, &mut self.spare);
    }

    /// Appends a pair without looking for an existing one of the same name.
    pub fn push(&mut self, name: &str, value: &str) -> Result<(), LabelError> {
        if self.spans.len() == self.spans.capacity() {
            return Err(LabelError::TooManyLabels {
                limit: self.spans.capacity(),
            });
        }
        self.reserve(name.len() + value.len())?;
        let (name_at, name_len) = self.store(name);
        let (value_at, value_len) = self.store(value);
        self.spans.push(Span {
            name_at,
            name_len,
            value_at,
            value_len,
        });
        Ok(())
    }

    /// Sets `name` to `value`, replacing an existing value. As in Prometheus,
    /// an empty value removes the label.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), LabelError> {
        if value.is_empty() {
            self.remove(name);
            return Ok(());
        }
        match self.position(name) {
            Some(i) => {
                self.reserve(value.len())?;
                let (value_at, value_len) = self.store(value);
                let span = &mut self.spans[i];
                span.value_at = value_at;
                span.value_len = value_len;
                Ok(())
            }
            None => self.push(name, value),
        }
    }

    pub fn remove(&mut self, name: &str) {
        if let Some(i) = self.position(name) {
            self.spans.remove(i);
        }
    }

    /// Keeps the labels for which `keep(name, value)` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        let mut i = 0;
        while i < self.spans.len() {
            let (n, v) = self.at(i);
            if keep(n, v) {
                i += 1;
            } else {
                self.spans.remove(i);
            }
        }
    }

    /// Sorts by name, in place (no allocation).
    pub fn sort(&mut self) {
        let arena = &self.arena;
        let name = |s: &Span| &arena.as_bytes()[s.name_at as usize..(s.name_at + s.name_len) as usize];
        self.spans.sort_unstable_by(|a, b| name(a).cmp(name(b)));
    }

    /// Copies `other` into `self`, reusing `self`'s storage.
    pub fn copy_from(&mut self, other: &LabelSet) -> Result<(), LabelError> {
        self.clear();
        other.iter().try_for_each(|(n, v)| self.push(n, v))
    }

    /// A stable 64-bit identity of the set in its current order (sort first
    /// for an order-independent identity). FNV-1a with separators that
    /// cannot occur inside UTF-8 text, so `a="bc"` and `ab="c"` differ.
    pub fn hash(&self) -> u64 {
        let mut h = Fnv64::new();
        for (n, v) in self.iter() {
            h.write(n.as_bytes());
            h.write(&[0xff]);
            h.write(v.as_bytes());
            h.write(&[0xfe]);
        }
        h.finish()
    }
}

impl PartialEq for LabelSet {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().zip(other.iter()).all(|(a, b)| a == b)
    }
}

/// FNV-1a, 64 bit: small, stable across platforms and versions.
#[derive(Debug, Clone, Copy)]
pub struct Fnv64(u64);

impl Fnv64 {
    pub const fn new() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }

    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64::new()
    }
}

/// A 64-bit hash that takes 8 bytes per multiply (FNV-1a takes one), for
/// the per-sample key. Each string's length is mixed in with its last word,
/// so `("ab", "c")` and `("a", "bc")` differ. The 128-bit multiply folded to
/// 64 bits spreads every input bit over the whole result.
pub struct WordHash(u64);

impl WordHash {
    const SEED: u64 = 0x243f_6a88_85a3_08d3;
    const MUL: u64 = 0x9e37_79b9_7f4a_7c15;

    pub fn new() -> Self {
        WordHash(Self::SEED)
    }

    fn mix(&mut self, word: u64, salt: u64) {
        let product = u128::from(self.0 ^ word) * u128::from(Self::MUL ^ salt);
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }

    pub fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            self.mix(u64::from_le_bytes(b), 0);
        }
        let rest = words.remainder();
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        // The salt carries the length, so a string and its zero-padded
        // prefix hash apart.
        self.mix(u64::from_le_bytes(b), ((bytes.len() as u64) << 1) | 1);
    }

    pub fn finish(&self) -> u64 {
        let mut h = WordHash(self.0);
        h.mix(Self::SEED, 0x55);
        h.0
    }
}

impl Default for WordHash {
    fn default() -> Self {
        WordHash::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_replaces_and_empty_removes() {
        let mut l = LabelSet::with_capacity(4, 64);
        l.push("job", "node").unwrap();
        l.push("instance", "a:9100").unwrap();
        l.set("job", "kubelet").unwrap();
        assert_eq!(l.get("job"), Some("kubelet"));
        l.set("instance", "").unwrap();
        assert_eq!(l.get("instance"), None);
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn bounds_are_enforced_without_growing() {
        let mut l = LabelSet::with_capacity(2, 10);
        l.push("a", "1").unwrap();
        l.push("b", "2").unwrap();
        assert_eq!(l.push("c", "3"), Err(LabelError::TooManyLabels { limit: 2 }));
        let mut l = LabelSet::with_capacity(4, 10);
        assert_eq!(
            l.push("name", "value-long"),
            Err(LabelError::TooManyBytes { limit: 10 })
        );
        assert!(l.is_empty());
        assert_eq!(l.arena.capacity(), 10);
    }

    #[test]
    fn replacing_values_compacts_instead_of_failing() {
        let mut l = LabelSet::with_capacity(2, 12);
        l.push("a", "11111").unwrap();
        for v in ["22222", "33333", "44444", "55555"] {
            l.set("a", v).unwrap();
        }
        assert_eq!(l.get("a"), Some("55555"));
    }

    #[test]
    fn sort_and_hash_are_order_independent_after_sort() {
        let mut x = LabelSet::with_capacity(4, 64);
        let mut y = LabelSet::with_capacity(4, 64);
        x.push("b", "2").unwrap();
        x.push("a", "1").unwrap();
        y.push("a", "1").unwrap();
        y.push("b", "2").unwrap();
        x.sort();
        assert_eq!(x, y);
        assert_eq!(x.hash(), y.hash());
        let mut z = LabelSet::with_capacity(4, 64);
        z.push("a", "12").unwrap();
        let mut w = LabelSet::with_capacity(4, 64);
        w.push("a1", "2").unwrap();
        assert_ne!(z.hash(), w.hash());
    }
}
