//! Spill mode's memory: the payloads of records held until the receiver
//! acknowledges them, in one buffer of `max_held_bytes` allocated at start.
//!
//! Records come and go in any order (shards are acknowledged independently),
//! so the buffer is not a ring: a record takes the lowest gap it fits in.
//! That keeps the bytes in use at the bottom of the buffer, and the pages
//! the process touches (its RSS) at the most it ever held at once rather
//! than the whole buffer.

/// One held record: where its payload sits and since when it is held.
#[derive(Debug, Clone, Copy)]
pub(super) struct HeldSpan {
    pub seq: u64,
    pub start: u32,
    pub len: u32,
    pub held_at_ms: u64,
}

/// Held payloads and where each one sits.
pub(super) struct Held {
    bytes: Vec<u8>,
    /// Sorted by `start`; never more than the WAL's window holds.
    spans: Vec<HeldSpan>,
    used: usize,
}

impl Held {
    /// Room for `max_bytes` of payloads and `max_records` records, allocated
    /// now (zeroed pages the kernel maps only once they are written).
    pub(super) fn new(max_bytes: usize, max_records: usize) -> Held {
        Held {
            bytes: vec![0; max_bytes],
            spans: Vec::with_capacity(max_records),
            used: 0,
        }
    }

    pub(super) fn capacity(&self) -> usize {
        self.bytes.len()
    }

    /// Payload bytes held now.
    pub(super) fn used(&self) -> usize {
        self.used
    }

    pub(super) fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether a payload of `len` bytes fits somewhere now.
    pub(super) fn fits(&self, len: usize) -> bool {
        self.spans.len() < self.spans.capacity() && self.gap(len).is_some()
    }

    /// The lowest gap of `len` bytes: (its offset, the span index it goes
    /// before).
    fn gap(&self, len: usize) -> Option<(usize, usize)> {
        let mut end = 0;
        for (i, s) in self.spans.iter().enumerate() {
            if s.start as usize - end >= len {
                return Some((end, i));
            }
            end = (s.start + s.len) as usize;
        }
        (self.bytes.len() - end >= len).then_some((end, self.spans.len()))
    }

    /// Copies `payload` in for record `seq`; its offset, or `None` when it
    /// does not fit (see [`Held::fits`]).
    pub(super) fn push(&mut self, seq: u64, payload: &[u8], now_ms: u64) -> Option<u32> {
        if self.spans.len() == self.spans.capacity() {
            return None;
        }
        let (start, index) = self.gap(payload.len())?;
        self.bytes[start..start + payload.len()].copy_from_slice(payload);
        self.spans.insert(
            index,
            HeldSpan {
                seq,
                start: start as u32,
                len: payload.len() as u32,
                held_at_ms: now_ms,
            },
        );
        self.used += payload.len();
        Some(start as u32)
    }

    fn index_of(&self, start: u32) -> Option<usize> {
        self.spans.binary_search_by_key(&start, |s| s.start).ok()
    }

    /// The record held at `start`.
    pub(super) fn span(&self, start: u32) -> Option<HeldSpan> {
        self.index_of(start).map(|i| self.spans[i])
    }

    pub(super) fn payload(&self, start: u32) -> Option<&[u8]> {
        let s = self.span(start)?;
        Some(&self.bytes[s.start as usize..(s.start + s.len) as usize])
    }

    /// Frees the record held at `start`.
    pub(super) fn free(&mut self, start: u32) {
        if let Some(i) = self.index_of(start) {
            self.used -= self.spans[i].len as usize;
            self.spans.remove(i);
        }
    }

    /// The held records, in no particular order.
    pub(super) fn spans(&self) -> &[HeldSpan] {
        &self.spans
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_take_the_lowest_gap_and_free_in_any_order() {
        let mut h = Held::new(100, 8);
        let a = h.push(1, &[1; 30], 0).unwrap();
        let b = h.push(2, &[2; 30], 0).unwrap();
        let c = h.push(3, &[3; 30], 0).unwrap();
        assert_eq!((a, b, c), (0, 30, 60));
        assert!(!h.fits(11), "10 bytes left at the top");
        h.free(b);
        // The middle gap is reused before the top.
        assert_eq!(h.push(4, &[4; 20], 0), Some(30));
        assert_eq!(h.push(5, &[5; 10], 0), Some(50));
        assert_eq!(h.push(6, &[6; 10], 0), Some(90));
        assert_eq!(h.push(7, &[7; 1], 0), None);
        assert_eq!(h.payload(a), Some(&[1u8; 30][..]));
        assert_eq!(h.payload(30), Some(&[4u8; 20][..]));
        assert_eq!(h.used(), 100);
        for start in [a, 30, 50, c, 90] {
            h.free(start);
        }
        assert_eq!((h.used(), h.len()), (0, 0));
        assert_eq!(h.push(8, &[8; 100], 0), Some(0), "all of it is free again");
    }

    #[test]
    fn no_more_records_than_the_window_holds() {
        let mut h = Held::new(100, 2);
        assert!(h.push(1, &[0; 1], 0).is_some());
        assert!(h.push(2, &[0; 1], 0).is_some());
        assert!(!h.fits(1));
        assert_eq!(h.push(3, &[0; 1], 0), None);
    }

    #[test]
    fn a_span_costs_what_the_memory_model_says() {
        assert_eq!(
            std::mem::size_of::<HeldSpan>() as u64,
            outpost_core::sizing::HELD_SPAN_BYTES
        );
    }
}
