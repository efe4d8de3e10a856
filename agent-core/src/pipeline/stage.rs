//! Staging one sample: its series built, relabeled and looked up in the
//! target's table, its value kept until the scrape commits.

use super::batcher::{Batcher, Unsent};
use super::series_table::{
    SeriesEntry, SeriesTable, DROPPED, INVALID, METRIC_DROPPED, OWN_TS, SEEN, TOO_OLD,
};
use super::target::TargetLabels;
use crate::error::ScrapeError;
use crate::expfmt::Sample;
use crate::labels::{LabelSet, WordHash};
use crate::plan::Limits;
use crate::relabel::RelabelProgram;
use crate::remote_write;
use alloc::string::String;

/// What one scrape produced, for the synthetic series, counters and logs.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct ScrapeReport {
    pub samples_scraped: u64,
    pub samples_post_relabel: u64,
    pub series_added: u64,
    pub stale_markers: u64,
    pub duplicates: u64,
    /// Samples refused because their own timestamp was older than
    /// `queue.max_sample_age` (Prometheus: out of bounds).
    pub too_old: u64,
}

/// What staging a sample works on: everything of a target's pipeline but
/// its parser (which calls in here) and its target labels (which staging
/// only reads), so that they can be borrowed apart.
pub(super) struct Stage {
    /// Metric relabeling.
    pub(super) relabel: RelabelProgram,
    pub(super) limits: Limits,
    /// The series being built.
    pub(super) labels: LabelSet,
    /// Scratch for an `exported_` rename.
    pub(super) rename: String,
    pub(super) table: SeriesTable,
    pub(super) report: ScrapeReport,
    /// This scrape passed `limits.samples`: it is parsed to the end for the
    /// counts, as Prometheus does, and then fails.
    pub(super) over_limit: bool,
    /// Samples stamped before this are refused in the scrape being staged.
    pub(super) oldest_allowed_ms: i64,
}

impl Stage {
    /// Builds one sample's series and stages it: `__name__`, the scraped
    /// labels, the target's labels with `honor_labels` semantics, metric
    /// relabeling, then the sample limit. A series seen for the first time
    /// is finalized for sending now, once, and kept as string ids.
    pub(super) fn sample(
        &mut self,
        target: &TargetLabels,
        batcher: &mut Batcher,
        s: &Sample<'_>,
    ) -> Result<(), ScrapeError> {
        self.report.samples_scraped += 1;
        let own_ts = if s.timestamp_ms.is_some() { OWN_TS } else { 0 };
        let too_old = s.timestamp_ms.is_some_and(|t| t < self.oldest_allowed_ms);
        let raw = exposed_hash(s);
        let raw_slot = match self.table.find_raw_in_order(raw) {
            Ok(i) => {
                let e = &mut self.table.entries[i];
                if e.state & METRIC_DROPPED != 0 {
                    e.state |= SEEN;
                    return Ok(());
                }
                return self.stage_known(i, s, own_ts, too_old);
            }
            Err(slot) => slot,
        };
        if !self.build_labels(target, s)? {
            // Dropped by metric relabeling: remember that, if there is room.
            if self.table.entry_room(&mut batcher.series_pool).is_ok() {
                let at = self.table.ids.len() as u32;
                let entry = SeriesEntry {
                    hash: 0,
                    raw,
                    value: 0.0,
                    ts: 0,
                    at,
                    len: 0,
                    wire_len: 0,
                    state: METRIC_DROPPED | SEEN,
                };
                self.table.push(raw_slot, None, entry);
            }
            return Ok(());
        }
        let hash = self.labels.hash();
        let hash_slot = match self.table.find_hash(hash) {
            Ok(i) => {
                // Known series, exposed differently (label order, an empty
                // label), or exposed twice in this body.
                if self.table.entries[i].state & SEEN == 0 {
                    self.table.rekey(i, raw, raw_slot);
                }
                return self.stage_known(i, s, own_ts, too_old);
            }
            Err(slot) => slot,
        };
        if too_old {
            // Prometheus keeps no cache entry for a series whose append
            // failed: neither do we, so it is not counted as added.
            return self.refuse_too_old(None);
        }
        if self.past_sample_limit() {
            return Ok(());
        }
        let table = &mut self.table;
        table.entry_room(&mut batcher.series_pool)?;
        let at = table.ids.len();
        let (state, len, wire_len) = loop {
            let stored = match batcher.finalize(&self.labels) {
                Ok(labels) => table
                    .store_labels(labels)
                    .map(|len| (0, len, remote_write::encoded_labels_len(labels) as u32)),
                Err(Unsent::DroppedByWriteRelabel) => Ok((DROPPED, 0, 0)),
                Err(Unsent::Invalid) => Ok((INVALID, 0, 0)),
            };
            match stored {
                Ok(stored) => break stored,
                // The arena is full: grow it and finalize again.
                Err(()) => table.grow_arena(&mut batcher.series_pool)?,
            }
        };
        let entry = SeriesEntry {
            hash,
            raw,
            value: s.value,
            ts: s.timestamp_ms.unwrap_or(0),
            at: at as u32,
            len,
            wire_len,
            state: state | SEEN | own_ts,
        };
        table.push(raw_slot, Some(hash_slot), entry);
        self.report.samples_post_relabel += 1;
        self.report.series_added += 1;
        Ok(())
    }

    /// Stages this scrape's sample of the known series `i`: its value, or
    /// its refusal when it is too old.
    fn stage_known(
        &mut self,
        i: usize,
        s: &Sample<'_>,
        own_ts: u8,
        too_old: bool,
    ) -> Result<(), ScrapeError> {
        if too_old {
            self.refuse_too_old(Some(i))
        } else {
            self.stage_value(i, s, own_ts)
        }
    }

    /// Stores this scrape's value of a known series; the first one wins
    /// when a body repeats a series, as Prometheus keeps the first too.
    fn stage_value(&mut self, i: usize, s: &Sample<'_>, own_ts: u8) -> Result<(), ScrapeError> {
        if self.table.entries[i].state & SEEN != 0 {
            self.report.duplicates += 1;
            return Ok(());
        }
        if self.past_sample_limit() {
            return Ok(());
        }
        let e = &mut self.table.entries[i];
        e.state = (e.state & !(OWN_TS | TOO_OLD)) | SEEN | own_ts;
        e.value = s.value;
        e.ts = s.timestamp_ms.unwrap_or(0);
        self.report.samples_post_relabel += 1;
        Ok(())
    }

    /// Refuses a sample older than `max_sample_age` (of the known series
    /// `entry`, if any). It counts as Prometheus counts an out-of-bounds
    /// append: in `samples_post_relabel` and towards the sample limit.
    fn refuse_too_old(&mut self, entry: Option<usize>) -> Result<(), ScrapeError> {
        if let Some(i) = entry {
            let e = &mut self.table.entries[i];
            if e.state & SEEN != 0 {
                self.report.duplicates += 1;
                return Ok(());
            }
            e.state = (e.state & !OWN_TS) | SEEN | TOO_OLD;
        }
        if self.past_sample_limit() {
            return Ok(());
        }
        self.report.samples_post_relabel += 1;
        self.report.too_old += 1;
        Ok(())
    }

    /// Prometheus's `sample_limit`: a scrape with more samples fails. Past
    /// the limit a sample is only counted (the body is read to the end, so
    /// the `scrape_*` series tell by how much), and `finish` fails.
    fn past_sample_limit(&mut self) -> bool {
        if self.report.samples_post_relabel < u64::from(self.limits.samples) {
            return false;
        }
        self.over_limit = true;
        self.report.samples_post_relabel += 1;
        true
    }

    /// Builds the series' target-level labels into `self.labels`, sorted:
    /// `__name__`, the scraped labels, the target's labels with
    /// `honor_labels` semantics, then metric relabeling. False when
    /// relabeling drops the series or leaves it without a name.
    fn build_labels(&mut self, target: &TargetLabels, s: &Sample<'_>) -> Result<bool, ScrapeError> {
        let label_limit = ScrapeError::LabelLimit {
            line: 0,
            limit: self.limits.label_count,
        };
        let labels = &mut self.labels;
        labels.clear();
        labels.push("__name__", s.name).map_err(|_| label_limit)?;
        for (n, v) in s.labels.iter() {
            // Prometheus treats an empty label value as an absent label.
            if !v.is_empty() {
                labels.push(n, v).map_err(|_| label_limit)?;
            }
        }
        for (name, value) in target.pairs() {
            if value.is_empty() {
                continue;
            }
            match labels.get(name) {
                None => labels.push(name, value).map_err(|_| label_limit)?,
                Some(_) if target.honor_labels => {}
                Some(scraped) => {
                    // honor_labels=false: the scraped value moves to
                    // exported_<name> (repeatedly prefixed if that is taken too).
                    let rename = &mut self.rename;
                    rename.clear();
                    rename.push_str(scraped);
                    let scraped_len = rename.len();
                    rename.push_str("exported_");
                    rename.push_str(name);
                    while labels.get(&rename[scraped_len..]).is_some() {
                        rename.insert_str(scraped_len, "exported_");
                    }
                    let (scraped, exported) = rename.split_at(scraped_len);
                    labels.push(exported, scraped).map_err(|_| label_limit)?;
                    labels.set(name, value).map_err(|_| label_limit)?;
                }
            }
        }
        if !self.relabel.is_empty() && !self.relabel.apply(labels) {
            return Ok(false);
        }
        if labels.get("__name__").is_none() {
            return Ok(false);
        }
        labels.sort();
        Ok(true)
    }
}

/// Identity of a series as the body exposes it: name and labels in body
/// order, empty values included. Equal bodies give equal keys, so a
/// steady target never rebuilds a label set.
fn exposed_hash(s: &Sample<'_>) -> u64 {
    let mut h = WordHash::new();
    h.write(s.name.as_bytes());
    for (n, v) in s.labels.iter() {
        h.write(n.as_bytes());
        h.write(v.as_bytes());
    }
    h.finish()
}
