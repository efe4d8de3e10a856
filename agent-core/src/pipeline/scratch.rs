//! The buffers a scrape works in only while its body is parsed: the
//! parser with its line buffer, the label set a series is built in, the
//! `exported_` rename buffer and metric relabeling's scratch.
//!
//! A target that owns them holds them between scrapes too, idle. The agent
//! instead makes `scrape_concurrency` of them at start, each sized for the
//! largest needs of any target ([`ScratchNeeds::max`]), and lends one to a
//! target for the duration of a scrape ([`TargetPipeline::swap_scratch`]):
//! a swap of buffers, no allocation. The compiled relabel rules stay with
//! their target; only their scratch moves.

use super::TargetPipeline;
use crate::expfmt::Parser;
use crate::labels::LabelSet;
use crate::plan::{Limits, Plan, RelabelRule};
use crate::relabel::{RelabelScratch, ScratchRoom};
use alloc::string::String;

/// One scrape slot's buffers.
pub struct ScrapeScratch {
    pub(super) parser: Parser,
    pub(super) labels: LabelSet,
    pub(super) rename: String,
    pub(super) relabel: RelabelScratch,
}

/// What a target's scrape needs of a [`ScrapeScratch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScratchNeeds {
    /// The parser's sizing (and, per target, its limits).
    pub limits: Limits,
    pub label_count: usize,
    pub label_bytes: usize,
    pub rename_bytes: usize,
    pub relabel: ScratchRoom,
}

/// Limits that allow nothing: a parser sized for them holds no buffer.
const NO_LIMITS: Limits = Limits {
    body_bytes: 0,
    samples: 0,
    label_count: 0,
    label_name_bytes: 0,
    label_value_bytes: 0,
};

impl ScratchNeeds {
    /// What any target of a job with `limits` and metric relabeling `rules`
    /// needs when its own labels may be as many as `target_pairs` taking
    /// `target_bytes` (names, values, two separators each): how slots are
    /// sized for targets discovery has yet to find.
    pub fn for_job(
        plan: &Plan,
        job: &str,
        limits: Limits,
        rules: &[RelabelRule],
        target_pairs: usize,
        target_bytes: usize,
    ) -> Result<ScratchNeeds, String> {
        super::scratch_needs(plan, job, limits, rules, target_pairs, target_bytes).map(|(needs, _)| needs)
    }

    /// What serves both: every size the larger of the two.
    pub fn max(self, o: ScratchNeeds) -> ScratchNeeds {
        ScratchNeeds {
            limits: self.limits.max_of(&o.limits),
            label_count: self.label_count.max(o.label_count),
            label_bytes: self.label_bytes.max(o.label_bytes),
            rename_bytes: self.rename_bytes.max(o.rename_bytes),
            relabel: self.relabel.max(o.relabel),
        }
    }
}

impl ScrapeScratch {
    /// Buffers for `needs`, allocated now.
    pub fn new(needs: &ScratchNeeds) -> ScrapeScratch {
        ScrapeScratch {
            parser: Parser::new(&needs.limits),
            labels: LabelSet::with_capacity(needs.label_count, needs.label_bytes),
            rename: String::with_capacity(needs.rename_bytes),
            relabel: RelabelScratch::with_room(&needs.relabel),
        }
    }

    /// Buffers that hold nothing (and allocate nothing): what a target
    /// keeps between scrapes when its scratch is lent.
    pub fn empty() -> ScrapeScratch {
        ScrapeScratch {
            parser: Parser::new(&NO_LIMITS),
            labels: LabelSet::with_capacity(0, 0),
            rename: String::new(),
            relabel: RelabelScratch::with_room(&ScratchRoom::default()),
        }
    }
}

impl TargetPipeline {
    /// Swaps the pipeline's scrape buffers with `scratch`: lending a slot's
    /// buffers in before a scrape, giving them back after it (the same
    /// call). Between scrapes a pipeline of the agent holds
    /// [`ScrapeScratch::empty`] ones.
    pub fn swap_scratch(&mut self, scratch: &mut ScrapeScratch) {
        core::mem::swap(&mut self.parser, &mut scratch.parser);
        core::mem::swap(&mut self.stage.labels, &mut scratch.labels);
        core::mem::swap(&mut self.stage.rename, &mut scratch.rename);
        self.stage.relabel.lend_scratch(&mut scratch.relabel);
        self.parser.set_limits(&self.stage.limits);
    }

    /// What this target's scrapes need of a slot's buffers.
    pub fn scratch_needs(&self) -> ScratchNeeds {
        self.needs
    }

    /// Gives up the pipeline's own scrape buffers: it scrapes only with
    /// buffers lent by [`TargetPipeline::swap_scratch`] from now on.
    pub fn drop_scratch(&mut self) {
        let mut none = ScrapeScratch::empty();
        self.swap_scratch(&mut none);
    }
}
