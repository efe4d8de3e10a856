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
//! string ids into the target's [`Symbols`](crate::symbols::Symbols). Every
//! later scrape stores just the new value; the commit writes the labels into
//! the batch from the ids.
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
//! comes in only as the scrape's wall-clock timestamp (nothing here waits
//! on a deadline); batches leave through [`BatchSink`]. The caller
//! closes the batches at the end of every scrape ([`Batcher::close_all`]),
//! so a WAL record holds one scrape's samples of one shard and a completed
//! scrape is in the WAL before the next one starts; batching for the wire
//! happens later, in the sender (`queue`), over those records.
//!
//! This file holds a target's scrape from `begin` to commit or failure;
//! beside it, `stage.rs` stages one sample, `series_table.rs` keeps the
//! series across scrapes, `batcher.rs` is the shared tail that fills the
//! batches, `target.rs` holds a target's own labels and `fingerprint.rs`
//! what a reload compares before it carries a table over.

mod batcher;
mod fingerprint;
mod scratch;
mod series_pool;
pub(crate) mod series_table;
mod stage;
mod target;

pub use batcher::{BatchSink, Batcher, BatcherCounters, Unsent};
pub use scratch::{ScrapeScratch, ScratchNeeds};
pub use series_pool::SeriesPool;
pub use stage::ScrapeReport;
pub use target::{job_labels, TargetLabels};

use crate::error::ScrapeError;
use crate::expfmt::{ExpositionFormat, Parser, Sample, SampleSink};
use crate::labels::LabelSet;
use crate::plan::{Limits, Plan, RelabelRule};
use crate::relabel::RelabelProgram;
use crate::remote_write::STALE_NAN_BITS;
use crate::sizing::TARGET_LABEL_BYTES;
use alloc::format;
use alloc::string::String;
use fingerprint::target_fingerprint;
use series_table::{
    SeriesEntry, SeriesTable, DROPPED, INVALID, LIVE, LIVE_OWN_TS, METRIC_DROPPED, OWN_TS, SEEN, TOO_OLD,
};
use stage::Stage;
use target::TARGET_LABEL_SLACK;

/// Series every scrape adds per target: `up` and the four `scrape_*` ones.
pub const SYNTHETIC_SERIES: usize = 5;

/// One target's parse, relabel, limit and staleness state.
pub struct TargetPipeline {
    pub target: TargetLabels,
    parser: Parser,
    stage: Stage,
    /// What [`TargetPipeline::swap_scratch`] needs lent.
    needs: ScratchNeeds,
    /// The synthetic series' labels (`__name__` and the target's), kept
    /// apart from the scrape buffers so that a target retired without a
    /// slot still writes them.
    synthetic: LabelSet,
    /// The [`Batcher`] fingerprint the table's label lists were made with.
    finalized_for: Option<u64>,
    /// What the table's keys and labels depend on: target labels,
    /// `honor_labels`, metric relabeling.
    fingerprint: u64,
    /// Between [`TargetPipeline::begin`] and the scrape's finish or fail.
    staging: bool,
    scrape_ts_ms: i64,
    /// `queue.max_sample_age`; 0 keeps every sample.
    max_sample_age_ms: u64,
}

/// What a scrape of a target of `job` (its `limits` and metric relabeling
/// `rules`, its own labels `target_pairs` pairs taking `target_bytes`) needs
/// of a slot's buffers, with its compiled rules.
fn scratch_needs(
    plan: &Plan,
    job: &str,
    limits: Limits,
    rules: &[RelabelRule],
    target_pairs: usize,
    target_bytes: usize,
) -> Result<(ScratchNeeds, RelabelProgram), String> {
    let label_bytes = limits.series_label_bytes() + target_bytes + TARGET_LABEL_SLACK;
    let relabel = RelabelProgram::build(plan, rules, label_bytes)
        .map_err(|e| format!("metric_relabel of job {job}: {e}"))?;
    let needs = ScratchNeeds {
        limits,
        label_count: limits.max_labels() + target_pairs + 4,
        label_bytes,
        rename_bytes: (limits.label_name_bytes as usize).min(limits.max_line_bytes()) + 64,
        relabel: relabel.scratch_room(),
    };
    Ok((needs, relabel))
}

impl TargetPipeline {
    pub fn new(
        plan: &Plan,
        target: TargetLabels,
        limits: Limits,
        rules: &[RelabelRule],
    ) -> Result<Self, String> {
        let (needs, relabel) = scratch_needs(
            plan,
            &target.job,
            limits,
            rules,
            target.pairs().count(),
            target.bytes(),
        )?;
        let (label_count, label_bytes) = (needs.label_count, needs.label_bytes);
        let arena = limits.series_arena_bytes(TARGET_LABEL_BYTES + plan.external_label_bytes());
        let synthetic = LabelSet::with_capacity(
            target.pairs().count() + 1,
            target.bytes() + "__name__scrape_samples_post_metric_relabeling".len(),
        );
        Ok(TargetPipeline {
            parser: Parser::new(&limits),
            needs,
            synthetic,
            stage: Stage {
                relabel,
                labels: LabelSet::with_capacity(label_count, label_bytes),
                rename: String::with_capacity(needs.rename_bytes),
                table: SeriesTable::with_caps(limits.series_table_entries(), arena as usize),
                report: ScrapeReport::default(),
                over_limit: false,
                oldest_allowed_ms: i64::MIN,
                limits,
            },
            finalized_for: None,
            fingerprint: target_fingerprint(plan, &target, rules),
            staging: false,
            scrape_ts_ms: 0,
            max_sample_age_ms: plan.queue.max_sample_age_ms,
            target,
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.stage.limits
    }

    /// What the target's series table holds in the series pool: entries,
    /// bytes.
    pub fn series_reserved(&self) -> (u64, u64) {
        self.stage.table.reserved()
    }

    /// Series the target had in its last good scrape.
    pub fn live_series(&self) -> usize {
        self.stage
            .table
            .entries
            .iter()
            .filter(|e| e.state & LIVE != 0 && e.state & METRIC_DROPPED == 0)
            .count()
    }

    /// Starts a scrape whose samples carry `scrape_ts_ms`, the wall-clock
    /// time of the scrape, unless the body gives its own timestamps. Own
    /// timestamps older than `scrape_ts_ms - queue.max_sample_age` are refused.
    pub fn begin(&mut self, format: ExpositionFormat, scrape_ts_ms: i64) {
        self.stage.table.cursor = 0;
        if self.staging {
            // The last scrape was abandoned: unstage what it staged.
            for e in self.stage.table.entries.iter_mut() {
                if e.state & (LIVE | TOO_OLD) == 0 {
                    e.state = 0;
                }
                e.state &= !(SEEN | OWN_TS);
                if e.state & LIVE != 0 {
                    e.state &= !TOO_OLD;
                }
            }
            self.stage.table.retain(|e| e.state != 0);
        }
        self.staging = true;
        self.stage.over_limit = false;
        self.parser.reset(format);
        self.stage.report = ScrapeReport::default();
        self.scrape_ts_ms = scrape_ts_ms;
        self.stage.oldest_allowed_ms = match self.max_sample_age_ms {
            0 => i64::MIN,
            age => scrape_ts_ms.saturating_sub(i64::try_from(age).unwrap_or(i64::MAX)),
        };
    }

    /// Parses the next piece of the body. `batcher` finalizes series seen for
    /// the first time; nothing is sent before [`TargetPipeline::finish`].
    pub fn handle_chunk(&mut self, chunk: &[u8], batcher: &mut Batcher) -> Result<(), ScrapeError> {
        self.parse(batcher, |parser, sink| parser.handle_chunk(chunk, sink))
    }

    /// Runs `feed`, a call into the parser, staging every sample it
    /// completes.
    fn parse(
        &mut self,
        batcher: &mut Batcher,
        feed: impl FnOnce(&mut Parser, &mut SampleSink<'_>) -> Result<(), ScrapeError>,
    ) -> Result<(), ScrapeError> {
        self.follow_batcher(batcher);
        let TargetPipeline {
            target,
            parser,
            stage,
            ..
        } = self;
        feed(parser, &mut |s: &Sample<'_>| stage.sample(target, batcher, s))
    }

    /// A table finalized for another batcher (a reload changed external labels
    /// or write relabeling) is forgotten: its series start afresh.
    fn follow_batcher(&mut self, batcher: &Batcher) {
        if self.finalized_for != Some(batcher.fingerprint) {
            if self.finalized_for.is_some() {
                self.stage.table.clear();
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
        batcher: &mut Batcher,
        sink: &mut dyn BatchSink,
    ) -> Result<ScrapeReport, ScrapeError> {
        let result = self.parse(batcher, |parser, sink| parser.finish(sink));
        let result = match (result, self.stage.over_limit) {
            (Ok(()), true) => Err(ScrapeError::SampleLimit {
                limit: self.stage.limits.samples,
            }),
            (result, _) => result,
        };
        if let Err(e) = result {
            self.fail(self.scrape_ts_ms, duration_s, batcher, sink);
            return Err(e);
        }
        self.staging = false;
        let ts = self.scrape_ts_ms;
        let stale = f64::from_bits(STALE_NAN_BITS);
        let table = &mut self.stage.table;
        let (symbols, ids) = (&table.symbols, &table.ids);
        let mut stale_markers = 0;
        let mut emit = |e: &mut SeriesEntry| -> bool {
            if e.state & METRIC_DROPPED != 0 {
                return e.state & SEEN != 0;
            }
            if e.state & SEEN != 0 && e.state & TOO_OLD != 0 {
                // No sample this scrape: a series live without its own
                // timestamps goes stale, as one that vanished.
                if e.state & LIVE != 0 && e.state & (LIVE_OWN_TS | DROPPED | INVALID) == 0 {
                    let labels = &ids[e.at as usize..(e.at + e.len) as usize];
                    batcher.push_ids(e.hash, (symbols, labels, e.wire_len), stale, ts, sink);
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
                    batcher.push_ids(e.hash, (symbols, labels, e.wire_len), e.value, at, sink);
                }
                let own_ts = if e.state & OWN_TS != 0 { LIVE_OWN_TS } else { 0 };
                e.state = (e.state & (DROPPED | INVALID)) | LIVE | own_ts;
                return true;
            }
            if e.state & LIVE != 0 && e.state & (LIVE_OWN_TS | DROPPED | INVALID) == 0 {
                let labels = &ids[e.at as usize..(e.at + e.len) as usize];
                batcher.push_ids(e.hash, (symbols, labels, e.wire_len), stale, ts, sink);
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
        self.stage.report.stale_markers += stale_markers;
        let report = self.stage.report;
        self.push_synthetic(false, 1.0, duration_s, batcher, sink);
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
        batcher: &mut Batcher,
        sink: &mut dyn BatchSink,
    ) {
        if !self.staging {
            self.stage.report = ScrapeReport::default();
        }
        self.scrape_ts_ms = scrape_ts_ms;
        self.staging = false;
        self.mark_live_stale(batcher, sink);
        for e in self.stage.table.entries.iter_mut() {
            e.state &= DROPPED | INVALID | METRIC_DROPPED;
        }
        self.push_synthetic(false, 0.0, duration_s, batcher, sink);
    }

    /// The target left the plan (reload): every series it had, the
    /// synthetic ones included, gets a staleness marker stamped `ts_ms` (the
    /// wall clock now), as Prometheus does when a target disappears.
    pub fn retire(&mut self, ts_ms: i64, batcher: &mut Batcher, sink: &mut dyn BatchSink) {
        self.scrape_ts_ms = ts_ms;
        self.staging = false;
        self.mark_live_stale(batcher, sink);
        self.stage.table.free(&mut batcher.series_pool);
        self.push_synthetic(true, 0.0, 0.0, batcher, sink);
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
        new_batcher: &mut Batcher,
    ) -> bool {
        let (new, was) = (&self.stage.table, &old.stage.table);
        let same = old.fingerprint == self.fingerprint
            && old_batcher.fingerprint == new_batcher.fingerprint
            && (was.max_entries, was.max_bytes) == (new.max_entries, new.max_bytes)
            && was.charge_to(&mut new_batcher.series_pool).is_ok();
        if same {
            core::mem::swap(&mut self.stage.table, &mut old.stage.table);
            self.finalized_for = old.finalized_for;
            // The old table, now this one's empty one, held nothing in the
            // new pool.
            old.stage.table.clear();
        }
        same
    }

    /// Staleness markers for every series of the last good scrape.
    fn mark_live_stale(&mut self, batcher: &mut Batcher, sink: &mut dyn BatchSink) {
        let stale = f64::from_bits(STALE_NAN_BITS);
        let table = &self.stage.table;
        for e in &table.entries {
            if e.state & LIVE != 0 && e.state & (LIVE_OWN_TS | DROPPED | INVALID | METRIC_DROPPED) == 0 {
                let ids = table.labels(e);
                batcher.push_ids(
                    e.hash,
                    (&table.symbols, ids, e.wire_len),
                    stale,
                    self.scrape_ts_ms,
                    sink,
                );
                self.stage.report.stale_markers += 1;
            }
        }
    }

    fn push_synthetic(
        &mut self,
        retiring: bool,
        up: f64,
        duration_s: f64,
        batcher: &mut Batcher,
        sink: &mut dyn BatchSink,
    ) {
        let r = self.stage.report;
        let series: [(&str, f64); SYNTHETIC_SERIES] = [
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
            let labels = &mut self.synthetic;
            labels.clear();
            let ok = labels.push("__name__", name).is_ok()
                && self
                    .target
                    .pairs()
                    .all(|(n, v)| v.is_empty() || labels.push(n, v).is_ok());
            if ok {
                labels.sort();
                batcher.push(labels, value, self.scrape_ts_ms, sink);
            }
        }
    }
}
