//! From a scrape body to closed remote-write batches, with no I/O.
//!
//! One [`TargetPipeline`] per target (scraped job targets, the node
//! collectors, the agent's own `/metrics`) and one [`Batcher`] shared by all.
//! A scrape is staged first and committed only when the whole body parsed
//! within the target's limits, so a failed scrape (syntax error, sample
//! limit) appends nothing but `up 0` and the staleness markers, as in
//! Prometheus, where the scrape's append is rolled back.
//!
//! Every buffer is sized from the plan when the pipeline is built. Nothing
//! here touches a socket, file or clock: time comes in as `now_ms`, batches
//! leave through [`BatchSink`]. This module can move to `outpost-core` once
//! the core grows a hash map of its own.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use outpost_core::error::ScrapeError;
use outpost_core::expfmt::{Format, Parser, Sample};
use outpost_core::labels::LabelSet;
use outpost_core::plan::{self, Limits, Plan, RelabelRule};
use outpost_core::relabel::RelabelProgram;
use outpost_core::remote_write::{BatchBuilder, PushError, STALE_NAN_BITS};

/// Where closed batches go: the agent appends them to the WAL and hands
/// them to the sender. `batch` is full or due; the sink must empty it
/// (`finish_into`) before returning.
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

/// The shared tail of the pipeline: external labels, write relabeling and
/// one batch builder per shard.
pub struct Batcher {
    shards: Vec<BatchBuilder>,
    opened_at_ms: Vec<Option<u64>>,
    external: Vec<(String, String)>,
    write_relabel: RelabelProgram,
    scratch: LabelSet,
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
        let shards = shards.max(1);
        Ok(Batcher {
            shards: (0..shards).map(|_| BatchBuilder::new(&plan.queue)).collect(),
            opened_at_ms: vec![None; shards as usize],
            scratch: LabelSet::with_capacity(
                max_label_count + external.len() + 4,
                2 * (max_label_bytes + ext_bytes + TARGET_LABEL_SLACK),
            ),
            external,
            write_relabel,
            counters: BatcherCounters::default(),
        })
    }

    pub fn shard_count(&self) -> u16 {
        self.shards.len() as u16
    }

    /// Adds external labels (target labels win), applies write relabeling
    /// and appends the sample to its shard's batch, closing the batch into
    /// `sink` when it is full.
    pub fn push(&mut self, labels: &LabelSet, value: f64, ts_ms: i64, now_ms: u64, sink: &mut dyn BatchSink) {
        self.counters.samples_in += 1;
        if self.scratch.copy_from(labels).is_err() {
            self.counters.dropped_invalid += 1;
            return;
        }
        for (name, value) in &self.external {
            if self.scratch.get(name).is_none() && self.scratch.push(name, value).is_err() {
                self.counters.dropped_invalid += 1;
                return;
            }
        }
        if !self.write_relabel.is_empty() && !self.write_relabel.apply(&mut self.scratch) {
            self.counters.dropped_write_relabel += 1;
            return;
        }
        self.scratch.sort();
        let shard = (self.scratch.hash() % self.shards.len() as u64) as usize;
        let mut result = self.shards[shard].push(&self.scratch, value, ts_ms);
        if result == Err(PushError::BatchFull) {
            self.close(shard, sink);
            result = self.shards[shard].push(&self.scratch, value, ts_ms);
        }
        if result.is_ok() {
            self.opened_at_ms[shard].get_or_insert(now_ms);
            return;
        }
        self.counters.dropped_invalid += 1;
    }

    fn close(&mut self, shard: usize, sink: &mut dyn BatchSink) {
        self.opened_at_ms[shard] = None;
        if self.shards[shard].samples() > 0 {
            sink.batch_closed(shard as u16, &mut self.shards[shard]);
        }
    }

    /// Closes batches that have waited `deadline_ms` (batch_send_deadline).
    pub fn close_due(&mut self, now_ms: u64, deadline_ms: u64, sink: &mut dyn BatchSink) {
        for shard in 0..self.shards.len() {
            if let Some(opened) = self.opened_at_ms[shard] {
                if now_ms.saturating_sub(opened) >= deadline_ms {
                    self.close(shard, sink);
                }
            }
        }
    }

    /// When the oldest open batch falls due.
    pub fn next_due(&self, deadline_ms: u64) -> Option<u64> {
        self.opened_at_ms.iter().flatten().min().map(|t| t + deadline_ms)
    }

    /// Changes the shard count (the sender resharded). Open batches are
    /// closed first so no series changes shard inside a batch.
    pub fn set_shards(&mut self, shards: u16, queue: &plan::Queue, sink: &mut dyn BatchSink) {
        self.close_all(sink);
        let shards = usize::from(shards.max(1));
        self.shards.truncate(shards);
        while self.shards.len() < shards {
            self.shards.push(BatchBuilder::new(queue));
        }
        self.opened_at_ms = vec![None; shards];
    }

    /// Closes every open batch (shutdown, reload).
    pub fn close_all(&mut self, sink: &mut dyn BatchSink) {
        for shard in 0..self.shards.len() {
            self.close(shard, sink);
        }
    }
}

/// Passes the series hashes through: they are FNV-1a already.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    hash: u64,
    at: u32,
    len: u32,
    value: f64,
    /// The exposition's own timestamp; such series get no staleness marker,
    /// as in Prometheus.
    explicit_ts: Option<i64>,
}

/// The series of one scrape: their sorted labels, encoded back to back as
/// `name 0xff value 0xfe` (bytes UTF-8 never contains), and their values.
struct SeriesSet {
    index: HashMap<u64, u32, BuildHasherDefault<IdentityHasher>>,
    entries: Vec<Entry>,
    arena: Vec<u8>,
}

impl SeriesSet {
    fn with_capacity(series: usize, bytes: usize) -> Self {
        SeriesSet {
            index: HashMap::with_capacity_and_hasher(series, BuildHasherDefault::default()),
            entries: Vec::with_capacity(series),
            arena: Vec::with_capacity(bytes),
        }
    }

    fn clear(&mut self) {
        self.index.clear();
        self.entries.clear();
        self.arena.clear();
    }

    fn contains(&self, hash: u64) -> bool {
        self.index.contains_key(&hash)
    }

    /// Stores a sorted label set. `Ok(false)` for a series already staged.
    fn insert(&mut self, labels: &LabelSet, value: f64, explicit_ts: Option<i64>) -> Result<bool, ()> {
        let hash = labels.hash();
        if self.index.contains_key(&hash) {
            return Ok(false);
        }
        let need: usize = labels.iter().map(|(n, v)| n.len() + v.len() + 2).sum();
        if self.entries.len() == self.entries.capacity() || self.arena.len() + need > self.arena.capacity() {
            return Err(());
        }
        let at = self.arena.len() as u32;
        for (n, v) in labels.iter() {
            self.arena.extend_from_slice(n.as_bytes());
            self.arena.push(0xff);
            self.arena.extend_from_slice(v.as_bytes());
            self.arena.push(0xfe);
        }
        self.index.insert(hash, self.entries.len() as u32);
        self.entries.push(Entry {
            hash,
            at,
            len: need as u32,
            value,
            explicit_ts,
        });
        Ok(true)
    }

    fn decode_into(&self, e: &Entry, out: &mut LabelSet) -> bool {
        out.clear();
        let mut rest = &self.arena[e.at as usize..(e.at + e.len) as usize];
        while let Some(sep) = rest.iter().position(|&b| b == 0xff) {
            let end = rest.iter().position(|&b| b == 0xfe).unwrap_or(rest.len());
            let (Ok(name), Ok(value)) = (
                std::str::from_utf8(&rest[..sep]),
                std::str::from_utf8(&rest[sep + 1..end]),
            ) else {
                return false;
            };
            if out.push(name, value).is_err() {
                return false;
            }
            rest = &rest[(end + 1).min(rest.len())..];
        }
        true
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
    staged: SeriesSet,
    previous: SeriesSet,
    report: ScrapeReport,
    scrape_ts_ms: i64,
}

impl TargetPipeline {
    pub fn new(
        plan: &Plan,
        target: TargetLabels,
        limits: Limits,
        rules: &[RelabelRule],
    ) -> Result<Self, String> {
        let label_bytes = limits.label_count as usize
            * (limits.label_name_bytes as usize + limits.label_value_bytes as usize)
            + target.bytes()
            + TARGET_LABEL_SLACK;
        let relabel = RelabelProgram::build(plan, rules, label_bytes)
            .map_err(|e| format!("metric_relabel of job {}: {e}", target.job))?;
        let series = limits.samples as usize + 1;
        let arena = limits.body_bytes as usize + series * (target.bytes() + 16);
        let label_count = limits.label_count as usize + target.pairs().count() + 4;
        Ok(TargetPipeline {
            parser: Parser::new(&limits),
            relabel,
            labels: LabelSet::with_capacity(label_count, label_bytes),
            rename: String::with_capacity(limits.label_name_bytes as usize + 64),
            staged: SeriesSet::with_capacity(series, arena),
            previous: SeriesSet::with_capacity(series, arena),
            report: ScrapeReport::default(),
            scrape_ts_ms: 0,
            limits,
            target,
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Starts a scrape whose samples carry `scrape_ts_ms` unless the body
    /// gives its own timestamps.
    pub fn begin(&mut self, format: Format, scrape_ts_ms: i64) {
        self.parser.reset(format);
        self.staged.clear();
        self.report = ScrapeReport::default();
        self.scrape_ts_ms = scrape_ts_ms;
    }

    pub fn handle_chunk(&mut self, chunk: &[u8]) -> Result<(), ScrapeError> {
        let TargetPipeline {
            target,
            parser,
            relabel,
            limits,
            labels,
            rename,
            staged,
            report,
            ..
        } = self;
        let mut sink =
            |s: &Sample<'_>| stage_sample(s, target, relabel, limits, labels, rename, staged, report);
        parser.handle_chunk(chunk, &mut sink)
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
        let result = {
            let TargetPipeline {
                target,
                parser,
                relabel,
                limits,
                labels,
                rename,
                staged,
                report,
                ..
            } = self;
            let mut stage =
                |s: &Sample<'_>| stage_sample(s, target, relabel, limits, labels, rename, staged, report);
            parser.finish(&mut stage)
        };
        if let Err(e) = result {
            self.fail(self.scrape_ts_ms, duration_s, now_ms, batcher, sink);
            return Err(e);
        }
        let ts = self.scrape_ts_ms;
        for i in 0..self.staged.entries.len() {
            let e = self.staged.entries[i];
            if !self.previous.contains(e.hash) {
                self.report.series_added += 1;
            }
            if self.staged.decode_into(&e, &mut self.labels) {
                batcher.push(&self.labels, e.value, e.explicit_ts.unwrap_or(ts), now_ms, sink);
            }
        }
        self.mark_vanished_stale(true, now_ms, batcher, sink);
        std::mem::swap(&mut self.staged, &mut self.previous);
        self.staged.clear();
        let report = self.report;
        self.push_synthetic(false, 1.0, duration_s, now_ms, batcher, sink);
        Ok(report)
    }

    /// The scrape that started at `scrape_ts_ms` failed (connect error,
    /// timeout, bad body, limit): `up` is 0 and every series of the last
    /// good scrape goes stale. A failure before any body arrived never
    /// called [`TargetPipeline::begin`], hence the explicit timestamp.
    pub fn fail(
        &mut self,
        scrape_ts_ms: i64,
        duration_s: f64,
        now_ms: u64,
        batcher: &mut Batcher,
        sink: &mut dyn BatchSink,
    ) {
        self.scrape_ts_ms = scrape_ts_ms;
        self.staged.clear();
        self.report.samples_post_relabel = 0;
        self.report.series_added = 0;
        self.mark_vanished_stale(false, now_ms, batcher, sink);
        self.previous.clear();
        self.push_synthetic(false, 0.0, duration_s, now_ms, batcher, sink);
    }

    /// The target left the plan (reload): every series it had, the
    /// synthetic ones included, gets a staleness marker, as Prometheus does
    /// when a target disappears.
    pub fn retire(&mut self, now_ms: u64, batcher: &mut Batcher, sink: &mut dyn BatchSink) {
        self.scrape_ts_ms = now_ms as i64;
        self.staged.clear();
        self.mark_vanished_stale(false, now_ms, batcher, sink);
        self.previous.clear();
        self.push_synthetic(true, 0.0, 0.0, now_ms, batcher, sink);
    }

    /// Takes over the last scrape's series of the same target from the
    /// pipeline a reload replaces, so staleness carries across the reload.
    /// Only when both were sized alike; returns whether it happened.
    pub fn adopt_series(&mut self, old: &mut TargetPipeline) -> bool {
        let same = old.target.job == self.target.job
            && old.target.instance == self.target.instance
            && old.previous.entries.capacity() == self.previous.entries.capacity()
            && old.previous.arena.capacity() == self.previous.arena.capacity();
        if same {
            std::mem::swap(&mut self.previous, &mut old.previous);
            old.previous.clear();
        }
        same
    }

    fn mark_vanished_stale(
        &mut self,
        only_vanished: bool,
        now_ms: u64,
        batcher: &mut Batcher,
        sink: &mut dyn BatchSink,
    ) {
        let stale = f64::from_bits(STALE_NAN_BITS);
        for i in 0..self.previous.entries.len() {
            let e = self.previous.entries[i];
            if e.explicit_ts.is_some() || (only_vanished && self.staged.contains(e.hash)) {
                continue;
            }
            if self.previous.decode_into(&e, &mut self.labels) {
                batcher.push(&self.labels, stale, self.scrape_ts_ms, now_ms, sink);
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
                batcher.push(&self.labels, value, self.scrape_ts_ms, now_ms, sink);
            }
        }
    }
}

/// Builds one sample's series and stages it: `__name__`, the scraped
/// labels, the target's labels with `honor_labels` semantics, metric
/// relabeling, then the sample limit.
#[allow(clippy::too_many_arguments)]
fn stage_sample(
    s: &Sample<'_>,
    target: &TargetLabels,
    relabel: &mut RelabelProgram,
    limits: &Limits,
    labels: &mut LabelSet,
    rename: &mut String,
    staged: &mut SeriesSet,
    report: &mut ScrapeReport,
) -> Result<(), ScrapeError> {
    report.samples_scraped += 1;
    let label_limit = ScrapeError::LabelLimit {
        line: 0,
        limit: limits.label_count,
    };
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
    if !relabel.is_empty() && !relabel.apply(labels) {
        return Ok(());
    }
    if labels.get("__name__").is_none() {
        return Ok(());
    }
    labels.sort();
    if staged.entries.len() >= limits.samples as usize {
        return Err(ScrapeError::SampleLimit {
            limit: limits.samples,
        });
    }
    match staged.insert(labels, s.value, s.timestamp_ms) {
        Ok(true) => report.samples_post_relabel += 1,
        Ok(false) => report.duplicates += 1,
        Err(()) => {
            return Err(ScrapeError::BodyTooLarge {
                limit: limits.body_bytes,
            })
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_core::plan::{
        Agent, Auth, Budget, Fsync, LabelPair, Queue, Receiver, RelabelAction, Role, SelfScrape, StrId, Wal,
    };
    use prost::Message;

    #[derive(Clone, PartialEq, prost::Message)]
    struct WriteRequest {
        #[prost(message, repeated, tag = "1")]
        timeseries: Vec<TimeSeries>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct TimeSeries {
        #[prost(message, repeated, tag = "1")]
        labels: Vec<Label>,
        #[prost(message, repeated, tag = "2")]
        samples: Vec<PbSample>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct Label {
        #[prost(string, tag = "1")]
        name: String,
        #[prost(string, tag = "2")]
        value: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct PbSample {
        #[prost(double, tag = "1")]
        value: f64,
        #[prost(int64, tag = "2")]
        timestamp: i64,
    }

    /// Decodes every closed batch into `labels-as-text -> (value bits, ts)`.
    #[derive(Default)]
    struct Collect(Vec<(String, u64, i64)>);

    impl BatchSink for Collect {
        fn batch_closed(&mut self, _shard: u16, batch: &mut BatchBuilder) {
            let req = WriteRequest::decode(batch.encoded()).unwrap();
            for ts in req.timeseries {
                let labels: Vec<String> = ts
                    .labels
                    .iter()
                    .map(|l| format!("{}={}", l.name, l.value))
                    .collect();
                for s in ts.samples {
                    self.0.push((labels.join(","), s.value.to_bits(), s.timestamp));
                }
            }
            batch.clear();
        }
    }

    impl Collect {
        fn value(&self, series: &str) -> Option<f64> {
            self.0
                .iter()
                .rev()
                .find(|(l, _, _)| l == series)
                .map(|(_, v, _)| f64::from_bits(*v))
        }
        fn stale(&self) -> Vec<&str> {
            self.0
                .iter()
                .filter(|(_, v, _)| *v == STALE_NAN_BITS)
                .map(|(l, _, _)| l.as_str())
                .collect()
        }
    }

    struct Fixture {
        plan: Plan,
    }

    impl Fixture {
        fn new(write_relabel_drop: Option<&str>) -> Fixture {
            let mut strings: Vec<String> = ["cluster", "c1", "team", "ext", "__name__", ";", "$1", ""]
                .iter()
                .map(|s| s.to_string())
                .collect();
            let mut write_relabel = Vec::new();
            if let Some(re) = write_relabel_drop {
                strings.push(re.to_string());
                write_relabel.push(RelabelRule {
                    action: RelabelAction::Drop,
                    source_labels: vec![StrId(4)],
                    separator: StrId(5),
                    regex: StrId(8),
                    modulus: 0,
                    target_label: StrId(7),
                    replacement: StrId(6),
                });
            }
            let plan = Plan {
                strings,
                agent: Agent {
                    cluster: StrId(1),
                    tenant: None,
                    role: Role::Node,
                },
                external_labels: vec![
                    LabelPair {
                        name: StrId(0),
                        value: StrId(1),
                    },
                    LabelPair {
                        name: StrId(2),
                        value: StrId(3),
                    },
                ],
                receiver: Receiver {
                    url: StrId(7),
                    tenant_header: None,
                    tls: None,
                    auth: Auth::None,
                    remote_timeout_ms: 1000,
                    write_relabel,
                },
                queue: Queue {
                    capacity: 100,
                    min_shards: 1,
                    max_shards: 1,
                    max_samples_per_send: 1000,
                    batch_send_deadline_ms: 100,
                    min_backoff_ms: 10,
                    max_backoff_ms: 100,
                    max_batch_bytes: 64 * 1024,
                    max_sample_age_ms: 0,
                },
                wal: Wal {
                    dir: StrId(7),
                    max_bytes: 1 << 20,
                    segment_bytes: 1 << 16,
                    fsync: Fsync::Never,
                },
                node: None,
                scrape_jobs: Vec::new(),
                self_scrape: SelfScrape {
                    interval_ms: 1000,
                    job: StrId(7),
                },
                budget: Budget {
                    cpu_request_millis: 1,
                    cpu_limit_millis: 1,
                    memory_request_bytes: 1,
                    memory_limit_bytes: 1,
                },
            };
            Fixture { plan }
        }

        fn target(&self, honor_labels: bool, samples: u32) -> TargetPipeline {
            let limits = Limits {
                body_bytes: 64 * 1024,
                samples,
                label_count: 16,
                label_name_bytes: 64,
                label_value_bytes: 256,
            };
            let labels = TargetLabels {
                job: "app".into(),
                instance: "h:1".into(),
                extra: vec![("team".into(), "core".into())],
                honor_labels,
            };
            TargetPipeline::new(&self.plan, labels, limits, &[]).unwrap()
        }

        fn batcher(&self) -> Batcher {
            Batcher::new(&self.plan, 1, 32, 4096).unwrap()
        }
    }

    fn scrape(
        t: &mut TargetPipeline,
        b: &mut Batcher,
        sink: &mut Collect,
        body: &str,
        ts: i64,
    ) -> Result<ScrapeReport, ScrapeError> {
        t.begin(Format::PrometheusText, ts);
        if let Err(e) = t.handle_chunk(body.as_bytes()) {
            // As the agent does: a body error fails the scrape (up 0, stale markers).
            t.fail(ts, 0.25, ts as u64, b, sink);
            b.close_all(sink);
            return Err(e);
        }
        // finish() turns late errors into a failed scrape itself.
        let result = t.finish(0.25, ts as u64, b, sink);
        b.close_all(sink);
        result
    }

    const UP: &str = "__name__=up,cluster=c1,instance=h:1,job=app,team=core";

    #[test]
    fn target_labels_win_and_scraped_ones_are_exported() {
        let f = Fixture::new(None);
        let (mut t, mut b, mut sink) = (f.target(false, 100), f.batcher(), Collect::default());
        let report = scrape(
            &mut t,
            &mut b,
            &mut sink,
            "m{job=\"x\",team=\"y\",a=\"1\"} 7\n",
            1000,
        )
        .unwrap();
        assert_eq!(report.samples_scraped, 1);
        assert_eq!(
            sink.value(
                "__name__=m,a=1,cluster=c1,exported_job=x,exported_team=y,instance=h:1,job=app,team=core"
            ),
            Some(7.0)
        );
        assert_eq!(sink.value(UP), Some(1.0));

        let (mut t, mut b, mut sink) = (f.target(true, 100), f.batcher(), Collect::default());
        scrape(&mut t, &mut b, &mut sink, "m{job=\"x\",a=\"1\"} 7\n", 1000).unwrap();
        // honor_labels: the scraped job stays; external labels never override a series' own.
        assert_eq!(
            sink.value("__name__=m,a=1,cluster=c1,instance=h:1,job=x,team=core"),
            Some(7.0)
        );
    }

    #[test]
    fn vanished_series_and_failed_scrapes_get_stale_markers() {
        let f = Fixture::new(None);
        let (mut t, mut b, mut sink) = (f.target(false, 100), f.batcher(), Collect::default());
        scrape(&mut t, &mut b, &mut sink, "a 1\nb 2\n", 1000).unwrap();
        assert!(sink.stale().is_empty());
        let report = scrape(&mut t, &mut b, &mut sink, "a 1\nc 3\n", 2000).unwrap();
        assert_eq!(report.series_added, 1);
        assert_eq!(
            sink.stale(),
            vec!["__name__=b,cluster=c1,instance=h:1,job=app,team=core"]
        );
        assert_eq!(
            sink.value("__name__=scrape_series_added,cluster=c1,instance=h:1,job=app,team=core"),
            Some(1.0)
        );

        sink.0.clear();
        assert!(scrape(&mut t, &mut b, &mut sink, "a 1\nthis is not exposition\n", 3000).is_err());
        let mut stale = sink.stale();
        stale.sort();
        assert_eq!(
            stale,
            vec![
                "__name__=a,cluster=c1,instance=h:1,job=app,team=core",
                "__name__=c,cluster=c1,instance=h:1,job=app,team=core"
            ]
        );
        assert_eq!(sink.value(UP), Some(0.0));
        // Nothing of the failed body was committed.
        assert!(sink
            .0
            .iter()
            .all(|(l, v, _)| !l.starts_with("__name__=a,") || *v == STALE_NAN_BITS));
    }

    #[test]
    fn staleness_survives_a_reload_and_retired_targets_go_stale() {
        let f = Fixture::new(None);
        let (mut old, mut b, mut sink) = (f.target(false, 100), f.batcher(), Collect::default());
        scrape(&mut old, &mut b, &mut sink, "a 1\nb 2\n", 1000).unwrap();
        let mut new = f.target(false, 100);
        assert!(new.adopt_series(&mut old));
        sink.0.clear();
        let report = scrape(&mut new, &mut b, &mut sink, "a 1\n", 2000).unwrap();
        assert_eq!(report.series_added, 0);
        assert_eq!(
            sink.stale(),
            vec!["__name__=b,cluster=c1,instance=h:1,job=app,team=core"]
        );

        sink.0.clear();
        new.retire(3000, &mut b, &mut sink);
        b.close_all(&mut sink);
        let mut stale = sink.stale();
        stale.sort();
        assert_eq!(stale.len(), 6, "{stale:?}");
        assert!(stale.contains(&"__name__=a,cluster=c1,instance=h:1,job=app,team=core"));
        assert!(stale.contains(&UP));
    }

    #[test]
    fn a_failure_before_any_body_carries_the_scrape_timestamp() {
        let f = Fixture::new(None);
        let (mut t, mut b, mut sink) = (f.target(false, 100), f.batcher(), Collect::default());
        scrape(&mut t, &mut b, &mut sink, "a 1\n", 1000).unwrap();
        sink.0.clear();
        // Connection refused: no begin(), no body.
        t.fail(5000, 0.001, 5001, &mut b, &mut sink);
        b.close_all(&mut sink);
        assert_eq!(sink.value(UP), Some(0.0));
        assert!(sink.0.iter().all(|(_, _, ts)| *ts == 5000), "{:?}", sink.0);
        assert_eq!(
            sink.stale(),
            vec!["__name__=a,cluster=c1,instance=h:1,job=app,team=core"]
        );
    }

    #[test]
    fn sample_limit_fails_the_whole_scrape() {
        let f = Fixture::new(None);
        let (mut t, mut b, mut sink) = (f.target(false, 2), f.batcher(), Collect::default());
        let err = scrape(&mut t, &mut b, &mut sink, "a 1\nb 2\nc 3\n", 1000).unwrap_err();
        assert_eq!(err, ScrapeError::SampleLimit { limit: 2 });
        assert_eq!(sink.value(UP), Some(0.0));
        assert_eq!(
            sink.value("__name__=a,cluster=c1,instance=h:1,job=app,team=core"),
            None
        );
    }

    #[test]
    fn write_relabel_drops_after_external_labels() {
        let f = Fixture::new(Some("go_gc_.*|go_memstats_.*"));
        let (mut t, mut b, mut sink) = (f.target(false, 100), f.batcher(), Collect::default());
        scrape(
            &mut t,
            &mut b,
            &mut sink,
            "go_gc_duration_seconds 1\ngo_goroutines 5\n",
            1000,
        )
        .unwrap();
        assert_eq!(
            sink.value("__name__=go_goroutines,cluster=c1,instance=h:1,job=app,team=core"),
            Some(5.0)
        );
        assert!(sink.0.iter().all(|(l, _, _)| !l.contains("go_gc_")));
        assert_eq!(b.counters.dropped_write_relabel, 1);
        // The synthetic series carry the scrape's timestamp.
        assert!(sink.0.iter().all(|(_, _, ts)| *ts == 1000));
    }
}
