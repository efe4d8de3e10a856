//! The shared tail of the pipeline: external labels, write relabeling, and
//! one remote-write batch per shard that closes into a [`BatchSink`].

use super::fingerprint::output_fingerprint;
use super::series_pool::SeriesPool;
use super::series_table::id_pairs;
use super::target::TARGET_LABEL_SLACK;
use crate::labels::LabelSet;
use crate::plan::{self, Plan};
use crate::relabel::RelabelProgram;
use crate::remote_write::{self, BatchBuilder, PushError};
use crate::symbols::Symbols;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// Where closed batches go: the agent appends them to the WAL and hands
/// them to the sender. `batch` is full or its scrape ended; the sink must
/// empty it (`finish_into`) before returning.
pub trait BatchSink {
    fn batch_closed(&mut self, shard: u16, batch: &mut BatchBuilder);
}

/// Counters of samples that never reached a batch, by reason.
#[derive(Debug, Default, Clone, Copy)]
pub struct BatcherCounters {
    pub samples_in: u64,
    pub dropped_write_relabel: u64,
    /// Labels that remote write refuses (no `__name__` after write relabeling,
    /// duplicate names) or a single series larger than a whole batch.
    pub dropped_invalid: u64,
}

/// Why a series handed to [`Batcher::finalize`] is not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsent {
    /// Write relabeling dropped it.
    DroppedByWriteRelabel,
    /// Remote write cannot carry it (no `__name__`, duplicate names, more
    /// labels than the scratch set holds).
    Invalid,
}

/// The shared tail of the pipeline: external labels, write relabeling and
/// one batch builder per shard.
pub struct Batcher {
    shards: Vec<BatchBuilder>,
    external: Vec<(String, String)>,
    write_relabel: RelabelProgram,
    scratch: LabelSet,
    /// Identity of what [`Batcher::finalize`] does to labels; label lists kept
    /// in series tables are valid only for the same fingerprint.
    pub(super) fingerprint: u64,
    pub counters: BatcherCounters,
    /// The agent-wide ledger of series-table memory. It rides here because
    /// every target's scrape already borrows the batcher mutably; see
    /// [`SeriesPool`].
    pub series_pool: SeriesPool,
}

impl Batcher {
    pub fn new(
        plan: &Plan,
        shards: u16,
        max_label_count: usize,
        max_label_bytes: usize,
    ) -> Result<Self, String> {
        let external: Vec<(String, String)> = plan
            .external_labels
            .iter()
            .map(|p| (plan.str(p.name).to_string(), plan.str(p.value).to_string()))
            .collect();
        let ext_bytes: usize = external.iter().map(|(n, v)| n.len() + v.len()).sum();
        let write_relabel =
            RelabelProgram::build(plan, &plan.receiver.write_relabel, max_label_bytes + ext_bytes)
                .map_err(|e| format!("receiver.write_relabel: {e}"))?;
        let max_labels = max_label_count + external.len() + 4;
        let scratch_bytes = 2 * (max_label_bytes + ext_bytes + TARGET_LABEL_SLACK);
        let shards = shards.max(1);
        Ok(Batcher {
            shards: (0..shards).map(|_| BatchBuilder::new(&plan.queue)).collect(),
            scratch: LabelSet::with_capacity(max_labels, scratch_bytes),
            fingerprint: output_fingerprint(plan),
            external,
            write_relabel,
            counters: BatcherCounters::default(),
            series_pool: {
                let sharing = plan.sharing_bounds();
                SeriesPool::new(sharing.max_series, sharing.max_series_bytes)
            },
        })
    }

    /// Turns a target's series into what is sent: external labels added
    /// (a series' own labels win), write relabeling applied, sorted and
    /// checked against remote write's rules. The result lives in the
    /// batcher's scratch set until the next call.
    pub fn finalize(&mut self, labels: &LabelSet) -> Result<&LabelSet, Unsent> {
        if self.scratch.copy_from(labels).is_err() {
            return Err(Unsent::Invalid);
        }
        for (name, value) in &self.external {
            if self.scratch.get(name).is_none() && self.scratch.push(name, value).is_err() {
                return Err(Unsent::Invalid);
            }
        }
        if !self.write_relabel.is_empty() && !self.write_relabel.apply(&mut self.scratch) {
            return Err(Unsent::DroppedByWriteRelabel);
        }
        self.scratch.sort();
        if remote_write::check_labels(&self.scratch).is_err() {
            return Err(Unsent::Invalid);
        }
        Ok(&self.scratch)
    }

    /// Counts a sample that will never be sent, by why.
    pub fn count_dropped(&mut self, why: Unsent) {
        self.counters.samples_in += 1;
        match why {
            Unsent::DroppedByWriteRelabel => self.counters.dropped_write_relabel += 1,
            _ => self.counters.dropped_invalid += 1,
        }
    }

    /// Appends one sample of a series kept as string ids (see
    /// [`Batcher::finalize`]) to the batch of the shard `series_hash` falls
    /// on, closing that batch into `sink` when it is full.
    pub(super) fn push_ids(
        &mut self,
        series_hash: u64,
        (symbols, ids, labels_len): (&Symbols, &[u8], u32),
        value: f64,
        ts_ms: i64,
        sink: &mut dyn BatchSink,
    ) {
        let labels_len = labels_len as usize;
        let write = |buf: &mut Vec<u8>| {
            for (n, v) in id_pairs(symbols, ids) {
                remote_write::put_label(buf, n, v);
            }
        };
        self.append(series_hash, labels_len, write, value, ts_ms, sink);
    }

    fn append(
        &mut self,
        series_hash: u64,
        labels_len: usize,
        write: impl Fn(&mut Vec<u8>),
        value: f64,
        ts_ms: i64,
        sink: &mut dyn BatchSink,
    ) {
        self.counters.samples_in += 1;
        let shard = (series_hash % self.shards.len() as u64) as usize;
        let mut result = self.shards[shard].push_with(labels_len, value, ts_ms, &write);
        if result == Err(PushError::BatchFull) {
            self.close(shard, sink);
            result = self.shards[shard].push_with(labels_len, value, ts_ms, &write);
        }
        if result.is_err() {
            self.counters.dropped_invalid += 1;
        }
    }

    /// Finalizes and appends one sample of a series that no table keeps
    /// (the synthetic `up` and `scrape_*` series, one-off pushes).
    pub fn push(&mut self, labels: &LabelSet, value: f64, ts_ms: i64, sink: &mut dyn BatchSink) {
        if let Err(why) = self.finalize(labels) {
            return self.count_dropped(why);
        }
        // Moved out for the call (an empty set allocates nothing).
        let scratch = core::mem::replace(&mut self.scratch, LabelSet::with_capacity(0, 0));
        let labels_len = remote_write::encoded_labels_len(&scratch);
        let write = |buf: &mut Vec<u8>| remote_write::put_labels(&scratch, buf);
        self.append(scratch.hash(), labels_len, write, value, ts_ms, sink);
        self.scratch = scratch;
    }

    fn close(&mut self, shard: usize, sink: &mut dyn BatchSink) {
        if self.shards[shard].samples() > 0 {
            sink.batch_closed(shard as u16, &mut self.shards[shard]);
        }
    }

    /// Changes the shard count (the sender resharded), at a scrape
    /// boundary. Open batches are closed first so no series changes shard
    /// inside a batch.
    pub fn set_shards(&mut self, shards: u16, queue: &plan::Queue, sink: &mut dyn BatchSink) {
        self.close_all(sink);
        let shards = usize::from(shards.max(1));
        self.shards.truncate(shards);
        while self.shards.len() < shards {
            self.shards.push(BatchBuilder::new(queue));
        }
    }

    /// Closes every open batch. The caller does it at the end of every
    /// scrape (after [`TargetPipeline::finish`](super::TargetPipeline::finish),
    /// `fail` or `retire`), so the
    /// scrape is in the WAL before the next one starts.
    pub fn close_all(&mut self, sink: &mut dyn BatchSink) {
        for shard in 0..self.shards.len() {
            self.close(shard, sink);
        }
    }
}
