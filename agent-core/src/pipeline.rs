//! From a scrape body to closed remote-write batches.
//!
//! One [`TargetPipeline`] per target (scraped job targets, the node
//! collectors, the agent's own `/metrics`) and one [`Batcher`] shared by all.
//!
//! Each target keeps one series table across scrapes, as Prometheus's scrape
//! cache does. A sample is looked up first by the hash of its series as
//! exposed (name and labels in body order), trying the entry after the last
//! match before the index, since targets list their series in the same order
//! every time. Only a series not seen in the last scrape goes the slow way:
//! target labels, metric relabeling, sorting, then its final labels
//! (external labels added, write relabeling applied) are kept as a list of
//! string ids into the target's [`Symbols`]. Every later scrape stores just
//! the new value; the commit writes the labels into the batch from the ids.
//! One copy of each distinct string and a few bytes of ids per series is
//! what keeps a 50,000-series target in a few MiB, and label building and
//! relabeling stay off the per-sample path.
//!
//! A scrape is staged in the table and committed only when the whole body
//! parsed within the target's limits, so a failed scrape appends nothing
//! but `up 0` and the staleness markers, as in Prometheus, where the
//! scrape's append is rolled back.
//!
//! A sample whose own timestamp is already older than `queue.max_sample_age`
//! when it is scraped is refused there, alone: it never enters a batch (nor
//! the WAL), where it would share the fate of every sample beside it. The
//! rest of the scrape goes on. This is Prometheus's "out of bounds" append
//! error, and it is handled as Prometheus's scrape loop handles it: the
//! sample counts in `scrape_samples_post_metric_relabeling` and towards
//! `sample_limit`; a series seen for the first time is not kept (so it is not
//! counted in `scrape_series_added`, now or later when a sample of it is
//! accepted); a known series stays known; and a series whose last sample
//! carried no timestamp goes stale, since it has no sample in this scrape.
//!
//! Every buffer is sized from the plan when the pipeline is built. Time
//! comes in as `now_ms`; batches leave through [`BatchSink`]. The caller
//! closes the batches at the end of every scrape ([`Batcher::close_all`]),
//! so a WAL record holds one scrape's samples of one shard and a completed
//! scrape is in the WAL before the next one starts; batching for the wire
//! happens later, in the sender (`queue`), over those records.

use crate::error::ScrapeError;
use crate::expfmt::{Format, Parser, Sample};
use crate::labels::{Fnv64, LabelSet, WordHash};
use crate::plan::{self, Limits, Plan, RelabelRule, TARGET_LABEL_BYTES};
use crate::relabel::RelabelProgram;
use crate::remote_write::{self, BatchBuilder, PushError, STALE_NAN_BITS};
use crate::symbols::{Index, Symbols};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// Where closed batches go: the agent appends them to the WAL and hands
/// them to the sender. `batch` is full or its scrape ended; the sink must
/// empty it (`finish_into`) before returning.
pub trait BatchSink {
    fn batch_closed(&mut self, shard: u16, batch: &mut BatchBuilder);
}

/// Label bytes a target adds to every series beyond what its body holds:
/// `job`, `instance`, static labels, and an `exported_` rename or two.
const TARGET_LABEL_SLACK: usize = 256;

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
    fingerprint: u64,
    pub counters: BatcherCounters,
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
        })
    }

    pub fn shard_count(&self) -> u16 {
        self.shards.len() as u16
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
    /// on, closing that batch into `sink` when it is full. `_now_ms` is
    /// left over from when batches closed on a deadline; it goes with the
    /// next change of the pipeline's signatures.
    fn push_ids(
        &mut self,
        series_hash: u64,
        (symbols, ids, labels_len): (&Symbols, &[u8], u32),
        value: f64,
        ts_ms: i64,
        _now_ms: u64,
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
    /// (the synthetic `up` and `scrape_*` series, one-off pushes). `_now_ms`:
    /// see [`Batcher::push_ids`].
    pub fn push(
        &mut self,
        labels: &LabelSet,
        value: f64,
        ts_ms: i64,
        _now_ms: u64,
        sink: &mut dyn BatchSink,
    ) {
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
    /// scrape (after [`TargetPipeline::finish`], `fail` or `retire`), so the
    /// scrape is in the WAL before the next one starts.
    pub fn close_all(&mut self, sink: &mut dyn BatchSink) {
        for shard in 0..self.shards.len() {
            self.close(shard, sink);
        }
    }
}

/// Hash of the plan's external labels and write relabeling: two batchers
/// with the same fingerprint finalize every series alike.
fn output_fingerprint(plan: &Plan) -> u64 {
    let mut h = Fnv64::new();
    for p in &plan.external_labels {
        hash_text(&mut h, plan.str(p.name));
        hash_text(&mut h, plan.str(p.value));
    }
    hash_rules(&mut h, plan, &plan.receiver.write_relabel);
    h.finish()
}

/// Hash of what a target does to its series before the batcher: its
/// labels, `honor_labels` and metric relabeling.
fn target_fingerprint(plan: &Plan, target: &TargetLabels, rules: &[RelabelRule]) -> u64 {
    let mut h = Fnv64::new();
    for (n, v) in target.pairs() {
        hash_text(&mut h, n);
        hash_text(&mut h, v);
    }
    h.write(&[u8::from(target.honor_labels)]);
    hash_rules(&mut h, plan, rules);
    h.finish()
}

fn hash_text(h: &mut Fnv64, s: &str) {
    h.write(s.as_bytes());
    h.write(&[0xff]);
}

fn hash_rules(h: &mut Fnv64, plan: &Plan, rules: &[RelabelRule]) {
    for r in rules {
        hash_text(h, r.action.name());
        for s in &r.source_labels {
            hash_text(h, plan.str(*s));
        }
        hash_text(h, plan.str(r.separator));
        hash_text(h, plan.str(r.regex));
        hash_text(h, plan.str(r.target_label));
        hash_text(h, plan.str(r.replacement));
        h.write(&r.modulus.to_le_bytes());
    }
}

/// Series state bits.
const LIVE: u8 = 1;
/// Seen in the scrape being staged.
const SEEN: u8 = 2;
/// The last committed sample carried its own timestamp: such series get
/// no staleness marker, as in Prometheus.
const LIVE_OWN_TS: u8 = 4;
/// The staged sample carries its own timestamp.
const OWN_TS: u8 = 8;
/// Write relabeling drops this series (no labels kept).
const DROPPED: u8 = 16;
/// Remote write cannot carry this series (no labels kept).
const INVALID: u8 = 32;
/// Metric relabeling drops this exposed series (or leaves it nameless):
/// remembered so that later scrapes skip it without relabeling again.
const METRIC_DROPPED: u8 = 64;
/// The series' latest sample was older than `max_sample_age` and refused:
/// staged with [`SEEN`], it is a series known but not live once committed.
const TOO_OLD: u8 = 128;

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Hash of the final, sorted target-level labels: the series' identity.
    hash: u64,
    /// Hash of the series as exposed, the fast lookup key.
    raw: u64,
    value: f64,
    ts: i64,
    /// Bytes its labels take in a remote-write request, kept so a push
    /// writes them in one pass over the ids.
    wire_len: u32,
    /// The series' id list in the table's id arena.
    at: u32,
    len: u32,
    state: u8,
}

/// A target's series: the entries in first-seen order; their final labels
/// as lists of string ids into the target's [`Symbols`], in an arena in the
/// same order (so dropping vanished series compacts both in one pass
/// without allocating); and two indexes: by the series as exposed, and by
/// its labels, which finds duplicates and series whose exposition changed
/// but whose labels did not.
struct SeriesTable {
    by_raw: Index,
    by_hash: Index,
    entries: Vec<Entry>,
    /// Per series, varint (name id, value id) pairs.
    ids: Vec<u8>,
    symbols: Symbols,
    /// Slots of `by_raw` left behind by re-keyed entries (skipped by
    /// lookups, cleared by the next rebuild). They count towards its load,
    /// so a target that reorders every label every scrape cannot fill it.
    rekeyed: usize,
    /// The entry after the last one a sample matched. Targets expose their
    /// series in the same order scrape after scrape, so this is usually the
    /// next sample's entry: checking it first walks the entries in order
    /// instead of jumping through the index (a cache miss per sample).
    cursor: usize,
}

/// Bytes of string-table bookkeeping per distinct string: span, count,
/// key, free-list slot and two index slots.
const SYMBOL_OVERHEAD_BYTES: usize = 8 + 4 + 8 + 4 + 8;

impl SeriesTable {
    /// A table of at most `entries` series whose ids and strings take at
    /// most `bytes`: a quarter for id lists, a quarter for string text, half
    /// for the strings' bookkeeping.
    fn with_capacity(entries: usize, bytes: usize) -> Self {
        SeriesTable {
            by_raw: Index::new(entries),
            by_hash: Index::new(entries),
            entries: Vec::with_capacity(entries),
            ids: Vec::with_capacity(bytes / 4),
            symbols: Symbols::with_limits(bytes / 2 / SYMBOL_OVERHEAD_BYTES, bytes / 4),
            rekeyed: 0,
            cursor: 0,
        }
    }

    fn find_raw(&self, raw: u64) -> Result<usize, usize> {
        self.by_raw.find(raw, |i| self.entries[i].raw, |_| true)
    }

    /// [`SeriesTable::find_raw`], trying the entry after the last match first.
    fn find_raw_in_order(&mut self, raw: u64) -> Result<usize, usize> {
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
    fn find_hash(&self, hash: u64) -> Result<usize, usize> {
        self.by_hash.find(hash, |i| self.entries[i].hash, |_| true)
    }

    fn is_full(&self) -> bool {
        self.entries.len() == self.entries.capacity()
    }

    fn push(&mut self, raw_slot: usize, hash_slot: Option<usize>, entry: Entry) {
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
    fn rekey(&mut self, i: usize, raw: u64, raw_slot: usize) {
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

    fn labels(&self, e: &Entry) -> &[u8] {
        &self.ids[e.at as usize..(e.at + e.len) as usize]
    }

    /// Stores `labels` as string ids at the end of the id arena and returns
    /// their bytes there; on a full table nothing is kept.
    fn store_labels(&mut self, labels: &LabelSet) -> Result<u32, ()> {
        let at = self.ids.len();
        for (name, value) in labels.iter() {
            let stored = self.ids.len() + 2 * MAX_VARINT_BYTES <= self.ids.capacity()
                && match self.symbols.intern(name) {
                    Ok(n) => match self.symbols.intern(value) {
                        Ok(v) => {
                            put_varint(&mut self.ids, n);
                            put_varint(&mut self.ids, v);
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

    fn clear(&mut self) {
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
    fn retain(&mut self, mut keep: impl FnMut(&mut Entry) -> bool) {
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

const MAX_VARINT_BYTES: usize = 5;

fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads the varint at `*at` of bytes this module wrote.
fn next_varint(bytes: &[u8], at: &mut usize) -> u32 {
    let mut v = 0u32;
    let mut shift = 0;
    while let Some(&b) = bytes.get(*at) {
        *at += 1;
        v |= u32::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    v
}

/// The (name, value) pairs of a stored id list.
fn id_pairs<'a>(symbols: &'a Symbols, ids: &'a [u8]) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
    let mut at = 0;
    core::iter::from_fn(move || {
        (at < ids.len()).then(|| {
            let n = next_varint(ids, &mut at);
            let v = next_varint(ids, &mut at);
            (symbols.get(n), symbols.get(v))
        })
    })
}

fn release_ids(symbols: &mut Symbols, ids: &[u8]) {
    let mut at = 0;
    while at < ids.len() {
        let id = next_varint(ids, &mut at);
        symbols.release(id);
    }
}

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

/// Static identity of a target: the labels Prometheus would attach.
#[derive(Debug, Clone)]
pub struct TargetLabels {
    pub job: String,
    pub instance: String,
    /// The job's static labels, in plan order.
    pub extra: Vec<(String, String)>,
    pub honor_labels: bool,
}

impl TargetLabels {
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        [("job", self.job.as_str()), ("instance", self.instance.as_str())]
            .into_iter()
            .chain(self.extra.iter().map(|(n, v)| (n.as_str(), v.as_str())))
    }

    fn bytes(&self) -> usize {
        self.pairs().map(|(n, v)| n.len() + v.len() + 2).sum()
    }
}

/// One target's parse, relabel, limit and staleness state.
pub struct TargetPipeline {
    pub target: TargetLabels,
    parser: Parser,
    relabel: RelabelProgram,
    limits: Limits,
    labels: LabelSet,
    rename: String,
    table: SeriesTable,
    /// The [`Batcher`] fingerprint the table's label lists were made with.
    finalized_for: Option<u64>,
    /// What the table's keys and labels depend on: target labels,
    /// `honor_labels`, metric relabeling.
    fingerprint: u64,
    /// Between [`TargetPipeline::begin`] and the scrape's finish or fail.
    staging: bool,
    /// This scrape passed `limits.samples`: it is parsed to the end for the
    /// counts, as Prometheus does, and then fails.
    over_limit: bool,
    report: ScrapeReport,
    scrape_ts_ms: i64,
    /// `queue.max_sample_age`; 0 keeps every sample.
    max_sample_age_ms: u64,
    /// Samples stamped before this are refused in the scrape being staged.
    oldest_allowed_ms: i64,
}

impl TargetPipeline {
    pub fn new(
        plan: &Plan,
        target: TargetLabels,
        limits: Limits,
        rules: &[RelabelRule],
    ) -> Result<Self, String> {
        let label_bytes = limits.series_label_bytes() + target.bytes() + TARGET_LABEL_SLACK;
        let relabel = RelabelProgram::build(plan, rules, label_bytes)
            .map_err(|e| format!("metric_relabel of job {}: {e}", target.job))?;
        let arena = limits.series_arena_bytes(TARGET_LABEL_BYTES + plan.external_label_bytes());
        let label_count = limits.max_labels() + target.pairs().count() + 4;
        Ok(TargetPipeline {
            parser: Parser::new(&limits),
            relabel,
            labels: LabelSet::with_capacity(label_count, label_bytes),
            rename: String::with_capacity(
                (limits.label_name_bytes as usize).min(limits.max_line_bytes()) + 64,
            ),
            table: SeriesTable::with_capacity(limits.series_table_entries(), arena as usize),
            finalized_for: None,
            fingerprint: target_fingerprint(plan, &target, rules),
            staging: false,
            over_limit: false,
            report: ScrapeReport::default(),
            scrape_ts_ms: 0,
            max_sample_age_ms: plan.queue.max_sample_age_ms,
            oldest_allowed_ms: i64::MIN,
            limits,
            target,
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Series the target had in its last good scrape.
    pub fn live_series(&self) -> usize {
        self.table
            .entries
            .iter()
            .filter(|e| e.state & LIVE != 0 && e.state & METRIC_DROPPED == 0)
            .count()
    }

    /// Starts a scrape whose samples carry `scrape_ts_ms`, the wall-clock
    /// time of the scrape, unless the body gives its own timestamps. Own
    /// timestamps older than `scrape_ts_ms - queue.max_sample_age` are refused.
    pub fn begin(&mut self, format: Format, scrape_ts_ms: i64) {
        self.table.cursor = 0;
        if self.staging {
            // The last scrape was abandoned: unstage what it staged.
            for e in self.table.entries.iter_mut() {
                if e.state & (LIVE | TOO_OLD) == 0 {
                    e.state = 0;
                }
                e.state &= !(SEEN | OWN_TS);
                if e.state & LIVE != 0 {
                    e.state &= !TOO_OLD;
                }
            }
            self.table.retain(|e| e.state != 0);
        }
        self.staging = true;
        self.over_limit = false;
        self.parser.reset(format);
        self.report = ScrapeReport::default();
        self.scrape_ts_ms = scrape_ts_ms;
        self.oldest_allowed_ms = match self.max_sample_age_ms {
            0 => i64::MIN,
            age => scrape_ts_ms.saturating_sub(i64::try_from(age).unwrap_or(i64::MAX)),
        };
    }

    /// Parses the next piece of the body. `batcher` finalizes series seen for
    /// the first time; nothing is sent before [`TargetPipeline::finish`].
    pub fn handle_chunk(&mut self, chunk: &[u8], batcher: &mut Batcher) -> Result<(), ScrapeError> {
        self.follow_batcher(batcher);
        let (mut stage, parser) = Stage::of(self, batcher);
        parser.handle_chunk(chunk, &mut |s: &Sample<'_>| stage.sample(s))
    }

    /// A table finalized for another batcher (a reload changed external labels
    /// or write relabeling) is forgotten: its series start afresh.
    fn follow_batcher(&mut self, batcher: &Batcher) {
        if self.finalized_for != Some(batcher.fingerprint) {
            if self.finalized_for.is_some() {
                self.table.clear();
            }
            self.finalized_for = Some(batcher.fingerprint);
        }
    }

    /// Ends a body that arrived whole: commits its series, writes staleness
    /// markers for vanished ones and the synthetic series. A late parse
    /// error (truncated body, sample limit) turns into a failed scrape.
    pub fn finish(
        &mut self,
        duration_s: f64,
        now_ms: u64,
        batcher: &mut Batcher,
        sink: &mut dyn BatchSink,
    ) -> Result<ScrapeReport, ScrapeError> {
        self.follow_batcher(batcher);
        let result = {
            let (mut stage, parser) = Stage::of(self, batcher);
            parser.finish(&mut |s: &Sample<'_>| stage.sample(s))
        };
        let result = match (result, self.over_limit) {
            (Ok(()), true) => Err(ScrapeError::SampleLimit {
                limit: self.limits.samples,
            }),
            (result, _) => result,
        };
        if let Err(e) = result {
            self.fail(self.scrape_ts_ms, duration_s, now_ms, batcher, sink);
            return Err(e);
        }
        self.staging = false;
        let ts = self.scrape_ts_ms;
        let stale = f64::from_bits(STALE_NAN_BITS);
        let table = &mut self.table;
        let (symbols, ids) = (&table.symbols, &table.ids);
        let mut stale_markers = 0;
        let mut emit = |e: &mut Entry| -> bool {
            if e.state & METRIC_DROPPED != 0 {
                return e.state & SEEN != 0;
            }
            if e.state & SEEN != 0 && e.state & TOO_OLD != 0 {
                // No sample this scrape: a series live without its own
                // timestamps goes stale, as one that vanished.
                if e.state & LIVE != 0 && e.state & (LIVE_OWN_TS | DROPPED | INVALID) == 0 {
                    let labels = &ids[e.at as usize..(e.at + e.len) as usize];
                    batcher.push_ids(e.hash, (symbols, labels, e.wire_len), stale, ts, now_ms, sink);
                    stale_markers += 1;
                }
                e.state = (e.state & (DROPPED | INVALID)) | TOO_OLD;
                return true;
            }
            if e.state & SEEN != 0 {
                if e.state & (DROPPED | INVALID) != 0 {
                    batcher.count_dropped(if e.state & DROPPED != 0 {
                        Unsent::DroppedByWriteRelabel
                    } else {
                        Unsent::Invalid
                    });
                } else {
                    let labels = &ids[e.at as usize..(e.at + e.len) as usize];
                    let at = if e.state & OWN_TS != 0 { e.ts } else { ts };
                    batcher.push_ids(e.hash, (symbols, labels, e.wire_len), e.value, at, now_ms, sink);
                }
                let own_ts = if e.state & OWN_TS != 0 { LIVE_OWN_TS } else { 0 };
                e.state = (e.state & (DROPPED | INVALID)) | LIVE | own_ts;
                return true;
            }
            if e.state & LIVE != 0 && e.state & (LIVE_OWN_TS | DROPPED | INVALID) == 0 {
                let labels = &ids[e.at as usize..(e.at + e.len) as usize];
                batcher.push_ids(e.hash, (symbols, labels, e.wire_len), stale, ts, now_ms, sink);
                stale_markers += 1;
            }
            false
        };
        // Emitting reads the id lists that retain() compacts: emit first,
        // then compact with the decisions recorded in the states.
        for e in table.entries.iter_mut() {
            if !emit(e) {
                e.state = 0;
            } else if e.state & METRIC_DROPPED != 0 {
                e.state = METRIC_DROPPED | LIVE;
            }
        }
        table.retain(|e| e.state != 0);
        self.report.stale_markers += stale_markers;
        let report = self.report;
        self.push_synthetic(false, 1.0, duration_s, now_ms, batcher, sink);
        Ok(report)
    }

    /// The scrape that started at `scrape_ts_ms` failed (connect error,
    /// timeout, bad body, limit): `up` is 0 and every series of the last
    /// good scrape goes stale. The `scrape_*` series report how far the body
    /// got, as Prometheus's do. A failure before any body arrived never
    /// called [`TargetPipeline::begin`], hence the explicit timestamp.
    ///
    /// The table keeps the series, no longer live, so that the next good
    /// scrape does not count them as added; those it does not see again go
    /// at its commit, without a second staleness marker.
    pub fn fail(
        &mut self,
        scrape_ts_ms: i64,
        duration_s: f64,
        now_ms: u64,
        batcher: &mut Batcher,
        sink: &mut dyn BatchSink,
    ) {
        if !self.staging {
            self.report = ScrapeReport::default();
        }
        self.scrape_ts_ms = scrape_ts_ms;
        self.staging = false;
        self.mark_live_stale(now_ms, batcher, sink);
        for e in self.table.entries.iter_mut() {
            e.state &= DROPPED | INVALID | METRIC_DROPPED;
        }
        self.push_synthetic(false, 0.0, duration_s, now_ms, batcher, sink);
    }

    /// The target left the plan (reload): every series it had, the
    /// synthetic ones included, gets a staleness marker stamped `ts_ms` (the
    /// wall clock now), as Prometheus does when a target disappears.
    pub fn retire(&mut self, ts_ms: i64, now_ms: u64, batcher: &mut Batcher, sink: &mut dyn BatchSink) {
        self.scrape_ts_ms = ts_ms;
        self.staging = false;
        self.mark_live_stale(now_ms, batcher, sink);
        self.table.clear();
        self.push_synthetic(true, 0.0, 0.0, now_ms, batcher, sink);
    }

    /// Takes over the series table of the same target from the pipeline a
    /// reload replaces, so staleness carries across the reload. Only when
    /// both were sized alike and make the same series: same target labels,
    /// metric relabeling, external labels and write relabeling. Returns
    /// whether it happened; when not, the caller retires the old pipeline,
    /// whose series now go stale.
    pub fn adopt_series(
        &mut self,
        old: &mut TargetPipeline,
        old_batcher: &Batcher,
        new_batcher: &Batcher,
    ) -> bool {
        let same = old.fingerprint == self.fingerprint
            && old_batcher.fingerprint == new_batcher.fingerprint
            && old.table.entries.capacity() == self.table.entries.capacity()
            && old.table.ids.capacity() == self.table.ids.capacity();
        if same {
            core::mem::swap(&mut self.table, &mut old.table);
            self.finalized_for = old.finalized_for;
            old.table.clear();
        }
        same
    }

    /// Staleness markers for every series of the last good scrape.
    fn mark_live_stale(&mut self, now_ms: u64, batcher: &mut Batcher, sink: &mut dyn BatchSink) {
        let stale = f64::from_bits(STALE_NAN_BITS);
        let table = &self.table;
        for e in &table.entries {
            if e.state & LIVE != 0 && e.state & (LIVE_OWN_TS | DROPPED | INVALID | METRIC_DROPPED) == 0 {
                let ids = table.labels(e);
                batcher.push_ids(
                    e.hash,
                    (&table.symbols, ids, e.wire_len),
                    stale,
                    self.scrape_ts_ms,
                    now_ms,
                    sink,
                );
                self.report.stale_markers += 1;
            }
        }
    }

    fn push_synthetic(
        &mut self,
        retiring: bool,
        up: f64,
        duration_s: f64,
        now_ms: u64,
        batcher: &mut Batcher,
        sink: &mut dyn BatchSink,
    ) {
        let r = self.report;
        let series = [
            ("up", up),
            ("scrape_duration_seconds", duration_s),
            ("scrape_samples_scraped", r.samples_scraped as f64),
            (
                "scrape_samples_post_metric_relabeling",
                r.samples_post_relabel as f64,
            ),
            ("scrape_series_added", r.series_added as f64),
        ];
        let stale = f64::from_bits(STALE_NAN_BITS);
        for (name, value) in series {
            let value = if retiring { stale } else { value };
            self.labels.clear();
            let ok = self.labels.push("__name__", name).is_ok()
                && self
                    .target
                    .pairs()
                    .all(|(n, v)| v.is_empty() || self.labels.push(n, v).is_ok());
            if ok {
                self.labels.sort();
                batcher.push(&self.labels, value, self.scrape_ts_ms, now_ms, sink);
            }
        }
    }
}

/// The parts of a [`TargetPipeline`] that staging one sample touches,
/// borrowed apart from the parser that calls it.
struct Stage<'a> {
    target: &'a TargetLabels,
    relabel: &'a mut RelabelProgram,
    limits: &'a Limits,
    labels: &'a mut LabelSet,
    rename: &'a mut String,
    table: &'a mut SeriesTable,
    report: &'a mut ScrapeReport,
    over_limit: &'a mut bool,
    oldest_allowed_ms: i64,
    batcher: &'a mut Batcher,
}

impl<'a> Stage<'a> {
    fn of(p: &'a mut TargetPipeline, batcher: &'a mut Batcher) -> (Stage<'a>, &'a mut Parser) {
        let TargetPipeline {
            target,
            parser,
            relabel,
            limits,
            labels,
            rename,
            table,
            report,
            over_limit,
            oldest_allowed_ms,
            ..
        } = p;
        (
            Stage {
                target,
                relabel,
                limits,
                labels,
                rename,
                table,
                report,
                over_limit,
                oldest_allowed_ms: *oldest_allowed_ms,
                batcher,
            },
            parser,
        )
    }

    /// Builds one sample's series and stages it: `__name__`, the scraped
    /// labels, the target's labels with `honor_labels` semantics, metric
    /// relabeling, then the sample limit. A series seen for the first time
    /// is finalized for sending now, once, and kept as string ids.
    fn sample(&mut self, s: &Sample<'_>) -> Result<(), ScrapeError> {
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
                if too_old {
                    return self.refuse_too_old(Some(i));
                }
                return self.stage_value(i, s, own_ts);
            }
            Err(slot) => slot,
        };
        if !self.build_labels(s)? {
            // Dropped by metric relabeling: remember that, if there is room.
            if !self.table.is_full() {
                let at = self.table.ids.len() as u32;
                let entry = Entry {
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
                if too_old {
                    return self.refuse_too_old(Some(i));
                }
                return self.stage_value(i, s, own_ts);
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
        let table = &mut *self.table;
        let series_bytes_limit = ScrapeError::SeriesBytesLimit {
            limit: (table.ids.capacity() * 4) as u64,
        };
        if table.is_full() {
            return Err(series_bytes_limit);
        }
        let at = table.ids.len();
        let (state, len, wire_len) = match self.batcher.finalize(self.labels) {
            Ok(labels) => (
                0,
                table.store_labels(labels).map_err(|()| series_bytes_limit)?,
                remote_write::encoded_labels_len(labels) as u32,
            ),
            Err(Unsent::DroppedByWriteRelabel) => (DROPPED, 0, 0),
            Err(Unsent::Invalid) => (INVALID, 0, 0),
        };
        let entry = Entry {
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
        *self.over_limit = true;
        self.report.samples_post_relabel += 1;
        true
    }

    /// Builds the series' target-level labels into `self.labels`, sorted:
    /// `__name__`, the scraped labels, the target's labels with
    /// `honor_labels` semantics, then metric relabeling. False when
    /// relabeling drops the series or leaves it without a name.
    fn build_labels(&mut self, s: &Sample<'_>) -> Result<bool, ScrapeError> {
        let label_limit = ScrapeError::LabelLimit {
            line: 0,
            limit: self.limits.label_count,
        };
        let labels = &mut *self.labels;
        labels.clear();
        labels.push("__name__", s.name).map_err(|_| label_limit)?;
        for (n, v) in s.labels.iter() {
            // Prometheus treats an empty label value as an absent label.
            if !v.is_empty() {
                labels.push(n, v).map_err(|_| label_limit)?;
            }
        }
        for (name, value) in self.target.pairs() {
            if value.is_empty() {
                continue;
            }
            match labels.get(name) {
                None => labels.push(name, value).map_err(|_| label_limit)?,
                Some(_) if self.target.honor_labels => {}
                Some(scraped) => {
                    // honor_labels=false: the scraped value moves to
                    // exported_<name> (repeatedly prefixed if that is taken too).
                    let rename = &mut *self.rename;
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

/// Job labels of a plan target, resolved once.
pub fn job_labels(plan: &Plan, job: &plan::ScrapeJob, instance: &str) -> TargetLabels {
    TargetLabels {
        job: plan.str(job.name).to_string(),
        instance: instance.to_string(),
        extra: job
            .labels
            .iter()
            .map(|p| (plan.str(p.name).to_string(), plan.str(p.value).to_string()))
            .collect(),
        honor_labels: job.honor_labels,
    }
}
