//! The agent-wide ledger of series-table memory.
//!
//! Series tables start empty and grow (doubling) as their targets expose
//! series, up to the per-target caps their limits give. Every growth is
//! first reserved here, against the plan's `series_pool.max_series` and
//! `series_pool.max_size`; a table that cannot get room fails its scrape
//! with [`ScrapeError::SeriesPoolFull`], and the series other targets
//! already hold are untouched. A growth is charged old + new while both
//! exist, so the ledger never passes `max_size`, even mid-growth, and the
//! memory model charges the pool as exactly `max_size`.
//!
//! The agent has one thread: the ledger is a plain struct, lent by `&mut`
//! (it rides in the [`Batcher`](super::Batcher), which every scrape already
//! borrows).

use crate::error::ScrapeError;

/// What every target's series table together may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesPool {
    max_series: u64,
    max_bytes: u64,
    series: u64,
    bytes: u64,
    peak_bytes: u64,
    /// Growths refused since start.
    pub refused: u64,
}

impl SeriesPool {
    pub fn new(max_series: u64, max_bytes: u64) -> SeriesPool {
        SeriesPool {
            max_series,
            max_bytes,
            series: 0,
            bytes: 0,
            peak_bytes: 0,
            refused: 0,
        }
    }

    /// Takes `series` more entries and `bytes` more bytes, or nothing.
    pub fn reserve(&mut self, series: u64, bytes: u64) -> Result<(), ScrapeError> {
        if self.series + series > self.max_series || self.bytes + bytes > self.max_bytes {
            self.refused += 1;
            return Err(self.full());
        }
        self.series += series;
        self.bytes += bytes;
        self.peak_bytes = self.peak_bytes.max(self.bytes);
        Ok(())
    }

    /// Gives back what a [`SeriesPool::reserve`] took.
    pub fn release(&mut self, series: u64, bytes: u64) {
        debug_assert!(
            series <= self.series && bytes <= self.bytes,
            "released more than reserved"
        );
        self.series -= series.min(self.series);
        self.bytes -= bytes.min(self.bytes);
    }

    /// The error a refused growth fails its scrape with.
    pub fn full(&self) -> ScrapeError {
        ScrapeError::SeriesPoolFull {
            max_series: self.max_series,
            max_bytes: self.max_bytes,
        }
    }

    pub fn series(&self) -> u64 {
        self.series
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The most bytes reserved at once since start.
    pub fn peak_bytes(&self) -> u64 {
        self.peak_bytes
    }

    pub fn max_series(&self) -> u64 {
        self.max_series
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }
}
