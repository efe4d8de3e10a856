//! The worst-case memory model: what a plan's bounds cost the agent.
//!
//! The agent sizes its buffers from the plan, with the functions and
//! constants here ([`Limits::max_line_bytes`], [`Limits::series_table_entries`],
//! ...); [`Plan::worst_case_memory`] adds the same numbers up, so the
//! compiler can refuse a plan that does not fit its memory limit and the
//! agent stays within what was promised.
//!
//! What the targets share is charged once, not per target:
//! `scrape_concurrency` scrape slots, each sized for the largest limits of
//! any target (the only buffers a body is parsed in), and the series pool
//! at its `max_size` (every series table grows inside it, a growth charged
//! old + new), and a gzip state per slot (lent to the target's connection
//! for each scrape). Per target only what it holds at rest: its connection
//! with its receive buffers, its labels and its empty table. The model
//! charges each part by its own unit: a series-table entry, an index slot,
//! a string's bookkeeping, a record of the sender's window. Where that unit
//! is the size of a type, the type's module asserts it at compile time.
//!
//! The plan format ([`crate::plan`]) knows nothing of this model: the
//! model reads the plan, never the other way round.

use crate::discovery::targets::MAX_TARGET_LABEL_BYTES;
use crate::discovery::Resource;
use crate::pipeline::series_table;
use crate::plan::{Discovery, Limits, Plan, Sharing, Textfile, WalMode, SELF_SCRAPE_LIMITS};
use crate::remote_write;
use crate::snappy::{self, max_compressed_len};
use crate::wal_record::RecordMeta;
use alloc::vec::Vec;
use serde::Serialize;

/// A series' line takes at most this share of `body_bytes`; see
/// [`Limits::max_line_bytes`].
pub const LINE_SHARE_OF_BODY: usize = 16;
/// ... but lines this long are always allowed, when the body is.
pub const MIN_LINE_BYTES: usize = 64 * 1024;
/// The fewest bytes a label takes in an exposition line: `a="",`.
pub const MIN_LABEL_LINE_BYTES: usize = 5;
/// Copies of one series' labels a target's pipeline holds at most: the
/// parser's label set and its compaction spare (2), the pipeline's (2),
/// relabeling's value and target (2), joined sources (1) and a `labelmap`
/// snapshot with its spare (2), and two for slack.
pub const SERIES_SCRATCH_COPIES: u64 = 11;
/// The batcher's copies: its label set and spare, each sized twice over
/// (2 x 2), and write relabeling's scratch as above (5).
pub const BATCHER_SCRATCH_COPIES: u64 = 9;
/// Per label slot: label-set spans (16 bytes each) in the parser's, the
/// pipeline's and a snapshot set, and the parser's name spans (8).
pub const LABEL_SLOT_BYTES: u64 = 3 * 16 + 8;
/// Target labels (job, instance, static labels, `exported_` renames) a
/// series carries beside its own, in the scratch above.
pub const SERIES_TARGET_LABEL_BYTES: usize = 512;
/// Binary text, stacks, allocator slack, rustls config and root store.
pub const FIXED_OVERHEAD_BYTES: u64 = 6 * 1024 * 1024;
/// Socket read buffer per scrape.
pub const RECV_CHUNK_BYTES: u64 = 16 * 1024;
/// One entry of a target's series table (the table asserts its size).
pub const SERIES_ENTRY_BYTES: u64 = 48;
/// Encoded target labels (job, instance, static labels) of every series:
/// the allowance the series table is sized with.
pub const TARGET_LABEL_BYTES: u64 = 64;
/// A series' list of string ids, beyond the strings themselves.
pub const SERIES_ID_LIST_BYTES: u64 = 16;
/// HTTP request head of a remote-write POST, beside its snappy body.
pub const REQUEST_HEAD_BYTES: u64 = 4 * 1024;
/// Floor for an encoded sample in the queue estimate (value, timestamp, a few labels).
pub const MIN_SAMPLE_BYTES: u64 = 64;
/// One record in the sender's window: the sender's entry and the WAL's
/// location of it (the sender asserts its part, the agent's tests both).
pub const RECORD_INDEX_BYTES: u64 = 128;
/// Records the sender's window holds per shard, and the most records one
/// run joins. A record costs the sender one entry and the WAL one location
/// (together at most [`RECORD_INDEX_BYTES`]); 512 keep that under 64 KiB
/// per shard and still let a run fill `max_samples_per_send` (10,000 in the
/// seed) from records of 20 samples each. Smaller records (a failed scrape
/// sends five synthetic series) only make smaller requests.
pub const RECORDS_PER_SHARD: usize = 512;
/// Room for the preamble of a request body joined from records.
pub const JOIN_PREAMBLE_BYTES: u64 = snappy::PREAMBLE_ROOM as u64;
/// The record list of one run: at most [`RECORDS_PER_SHARD`] records'
/// metadata.
pub const RUN_LIST_BYTES: u64 = (RECORDS_PER_SHARD * core::mem::size_of::<RecordMeta>()) as u64;
/// Records the WAL keeps located in memory ahead of the sender's window, so
/// the sender's next records are at hand when it has room.
pub const WAL_LOOKAHEAD_RECORDS: usize = 64;
/// One record held in memory in spill mode, beside its payload: where it
/// sits in the held bytes, its seq and when it was held (the agent's WAL
/// asserts its span's size).
pub const HELD_SPAN_BYTES: u64 = 24;
/// One client connection: TLS state, request and response buffers.
pub const CONNECTION_BYTES: u64 = 64 * 1024;
/// miniz_oxide's inflate state with its 32 KiB window.
pub const INFLATE_STATE_BYTES: u64 = 48 * 1024;
/// The inflate output buffer of a scrape slot's gzip state: the piece of
/// a gzip body handed to the parser per call. The agent sizes it so.
pub const INFLATE_OUT_BYTES: usize = 32 * 1024;
/// A scrape slot's gzip state, lent with the slot.
pub const SLOT_GZIP_BYTES: u64 = INFLATE_STATE_BYTES + INFLATE_OUT_BYTES as u64;

/// An agent's worst-case memory by what holds it, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct MemoryBreakdown {
    pub fixed: u64,
    /// `scrape_concurrency` slots of [`TargetCost::scrape_slot`] at its
    /// largest, and the textfile collector's own parser.
    pub scrape_slots: u64,
    /// Gzip states: one per scrape slot, lent with it to the connection of
    /// the target that scrapes ([`SLOT_GZIP_BYTES`]), and each remote-write
    /// shard's own (its output buffer is in its connection). Targets hold
    /// none at rest.
    pub inflate: u64,
    /// The series pool's `max_size`.
    pub series_pool: u64,
    /// What every target holds at rest beside its connection.
    pub targets: u64,
    pub batching: u64,
    pub queue: u64,
    pub connections: u64,
    pub strings: u64,
    /// Kubernetes discovery: see [`Discovery::worst_case_bytes`].
    pub discovery: u64,
    /// Records held in memory until acknowledged (spill mode); 0 in
    /// append-before-send mode. See [`Plan::held_records_bytes`].
    pub held_records: u64,
}

impl MemoryBreakdown {
    pub fn total(&self) -> u64 {
        self.fixed
            + self.scrape_slots
            + self.inflate
            + self.series_pool
            + self.targets
            + self.batching
            + self.queue
            + self.connections
            + self.strings
            + self.discovery
            + self.held_records
    }

    /// `(name, bytes)` rows, for reports.
    pub fn rows(&self) -> [(&'static str, u64); 11] {
        [
            ("fixed", self.fixed),
            ("scrape_slots", self.scrape_slots),
            ("inflate", self.inflate),
            ("series_pool", self.series_pool),
            ("targets", self.targets),
            ("batching", self.batching),
            ("queue", self.queue),
            ("connections", self.connections),
            ("strings", self.strings),
            ("discovery", self.discovery),
            ("held_records", self.held_records),
        ]
    }
}

impl Limits {
    /// Every limit the larger of the two: what a buffer that serves targets
    /// of either limits is sized for. Every size below grows with each
    /// limit, so this covers both.
    pub fn max_of(&self, o: &Limits) -> Limits {
        Limits {
            body_bytes: self.body_bytes.max(o.body_bytes),
            samples: self.samples.max(o.samples),
            label_count: self.label_count.max(o.label_count),
            label_name_bytes: self.label_name_bytes.max(o.label_name_bytes),
            label_value_bytes: self.label_value_bytes.max(o.label_value_bytes),
        }
    }

    /// Longest exposition line (one series) a target within these limits
    /// can send: what its label limits allow, and at most a sixteenth of
    /// `body_bytes` (but [`MIN_LINE_BYTES`], or the whole body when it is
    /// smaller). Every buffer that holds one series is sized from it, so
    /// with the label limits at their defaults (none of their own, as in
    /// Prometheus) a target's series buffers stay within the body size the
    /// memory bound charges it (see [`Limits::series_scratch_bytes`]).
    pub fn max_line_bytes(&self) -> usize {
        let per_label = (self.label_value_bytes as usize)
            .saturating_mul(2)
            .saturating_add(self.label_name_bytes as usize + 4);
        let by_labels = per_label
            .saturating_mul(self.label_count as usize + 1)
            .saturating_add(128);
        let body = self.body_bytes as usize;
        let by_body = (body / LINE_SHARE_OF_BODY).max(MIN_LINE_BYTES).min(body);
        by_labels.min(by_body)
    }

    /// Most labels one series can carry: `label_count`, and no more than its
    /// line holds (a label takes at least `a="",`).
    pub fn max_labels(&self) -> usize {
        (self.label_count as usize).min(self.max_line_bytes() / MIN_LABEL_LINE_BYTES + 1)
    }

    /// Bytes of one series' label names and values: what the label limits
    /// allow, and no more than its line holds.
    pub fn series_label_bytes(&self) -> usize {
        let per_label = (self.label_value_bytes as usize).saturating_add(self.label_name_bytes as usize);
        per_label
            .saturating_mul(self.label_count as usize)
            .min(self.max_line_bytes())
    }

    /// What a target's pipeline allocates to work on one series, beside its
    /// line buffer and series table: the parser's label set and unescape
    /// buffer, the pipeline's label set and rename buffer, and the metric
    /// relabeling scratch (values, joined sources, a `labelmap` snapshot),
    /// each holding at most one series' labels plus the target's.
    pub fn series_scratch_bytes(&self) -> u64 {
        let series = (self.series_label_bytes() + SERIES_TARGET_LABEL_BYTES) as u64;
        let line = self.max_line_bytes() as u64;
        let labels = (self.max_labels() + 8) as u64;
        let name = u64::from(self.label_name_bytes).min(line) + 64;
        SERIES_SCRATCH_COPIES * series + line + name + labels * LABEL_SLOT_BYTES
    }

    /// Entries a target's series table holds at most: the last scrape's
    /// series plus this scrape's new ones, for a scrape that replaces them all.
    pub fn series_table_entries(&self) -> usize {
        2 * (self.samples as usize + 1)
    }

    /// Bytes a target's series table may take for its strings and id
    /// lists, for the same two scrapes. A series' scraped strings are
    /// bounded by the body that carried them; `added_label_bytes` (target
    /// and external labels) and the id list's own bytes come on top.
    pub fn series_arena_bytes(&self, added_label_bytes: u64) -> u64 {
        let per_series = added_label_bytes + SERIES_ID_LIST_BYTES;
        2 * (u64::from(self.body_bytes) + u64::from(self.samples) * per_series)
    }

    /// What one target within these limits costs; `added_label_bytes` as
    /// for [`Limits::series_arena_bytes`]. The body itself is not held: the
    /// pipeline parses it chunk by chunk as it arrives, and only a line
    /// that spans chunks is kept, in the line buffer.
    pub fn target_cost(&self, added_label_bytes: u64) -> TargetCost {
        let entries = self.series_table_entries();
        let arena = self.series_arena_bytes(added_label_bytes);
        TargetCost {
            scrape_slot: self.max_line_bytes() as u64 + self.series_scratch_bytes(),
            at_rest: TARGET_AT_REST_BYTES,
            series_cap: series_table::reserved_bytes(entries, arena as usize),
            series_cap_entries: entries as u64,
            connection: CONNECTION_BYTES + RECV_CHUNK_BYTES,
        }
    }
}

/// Bytes of target labels (names, values and the pipeline's two separators
/// each) a discovered target may bring: the core fails a target whose
/// labels take more than [`MAX_TARGET_LABEL_BYTES`] of names and values,
/// and a label takes at least two of those.
pub const DISCOVERED_TARGET_LABEL_BYTES: usize = 2 * MAX_TARGET_LABEL_BYTES;
/// How many labels a discovered target may bring, by the same rule.
pub const DISCOVERED_TARGET_LABELS: usize = MAX_TARGET_LABEL_BYTES / 2;
/// What a discovered target's labels add to [`TARGET_AT_REST_BYTES`]: the
/// same three copies, at [`DISCOVERED_TARGET_LABEL_BYTES`].
pub const DISCOVERED_AT_REST_EXTRA_BYTES: u64 =
    3 * (DISCOVERED_TARGET_LABEL_BYTES - SERIES_TARGET_LABEL_BYTES) as u64;

/// What one target holds at rest, beside its connection: its labels
/// (twice: the pipeline's and the status page's), the synthetic series'
/// label set, its compiled rules' headers, and its empty series table's
/// three smallest indexes.
pub const TARGET_AT_REST_BYTES: u64 = 3 * SERIES_TARGET_LABEL_BYTES as u64 + 3 * 1024 + 1024;

/// What one target costs, by part (the rows of [`MemoryBreakdown`] it adds
/// to, or, for the shared parts, its claim on them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct TargetCost {
    /// The line buffer and one series' scratch: what a scrape slot must
    /// hold for this target (slots are shared, see
    /// [`MemoryBreakdown::scrape_slots`]).
    pub scrape_slot: u64,
    /// Held whether it scrapes or not; see [`TARGET_AT_REST_BYTES`].
    pub at_rest: u64,
    /// The most its series table may reserve in the series pool (the
    /// fairness cap from its limits), and its entries.
    pub series_cap: u64,
    pub series_cap_entries: u64,
    /// Its connection with its receive buffer.
    pub connection: u64,
}

impl TargetCost {
    /// What the target holds of its own, outside the shared slots and pool.
    pub fn own(&self) -> u64 {
        self.at_rest + self.connection
    }
}

/// Where a [`TargetGroup`]'s targets come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetSource {
    Node,
    /// `Plan::scrape_jobs[i]`.
    ScrapeJob(usize),
    SelfScrape,
}

/// Targets that share one job's limits, and so one [`TargetCost`]: the
/// node collectors, each scrape job, the self-scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetGroup<'a> {
    pub job: &'a str,
    pub source: TargetSource,
    /// How many targets the job can have at once.
    pub targets: u64,
    pub limits: Limits,
    pub per_target: TargetCost,
}

impl TargetGroup<'_> {
    /// What the job's targets hold of their own together.
    pub fn total(&self) -> u64 {
        self.targets * self.per_target.own()
    }
}

impl Plan {
    /// Encoded size of the external labels, which every series carries.
    pub fn external_label_bytes(&self) -> u64 {
        self.external_labels
            .iter()
            .map(|p| remote_write::label_field_len(self.str(p.name), self.str(p.value)) as u64)
            .sum()
    }

    /// Each job's targets with what one of them holds, in the order the
    /// agent builds them. A job's cost is its target count times one
    /// target's, so a job whose targets are not fixed in the plan only
    /// needs its most targets here.
    pub fn target_groups(&self) -> Vec<TargetGroup<'_>> {
        let added = TARGET_LABEL_BYTES + self.external_label_bytes();
        let group = |job, source, targets: usize, limits: Limits| TargetGroup {
            job,
            source,
            targets: targets as u64,
            limits,
            per_target: limits.target_cost(added),
        };
        let mut groups = Vec::new();
        if let Some(n) = &self.node {
            groups.push(group(self.str(n.job), TargetSource::Node, 1, n.limits));
        }
        for (i, j) in self.scrape_jobs.iter().enumerate() {
            let mut g = group(
                self.str(j.name),
                TargetSource::ScrapeJob(i),
                j.max_targets(),
                j.limits,
            );
            if j.targeting.discovery.is_some() {
                g.per_target.at_rest += DISCOVERED_AT_REST_EXTRA_BYTES;
            }
            groups.push(g);
        }
        groups.push(group(
            self.str(self.self_scrape.job),
            TargetSource::SelfScrape,
            1,
            SELF_SCRAPE_LIMITS,
        ));
        groups
    }

    /// The agent's worst-case memory, buffer by buffer. The agent sizes its
    /// buffers from the same numbers, so this is the bound it runs within.
    pub fn worst_case_memory(&self) -> MemoryBreakdown {
        let groups = self.target_groups();
        let sum = |part: fn(&TargetCost) -> u64| groups.iter().map(|g| g.targets * part(&g.per_target)).sum();
        let sharing = self.sharing_bounds();
        let mut scrape_slots = u64::from(sharing.scrape_concurrency) * self.scrape_slot_bytes();
        // The textfile collector reads one file at a time into its own parser.
        if let Some(n) = &self.node {
            if let Some(t) = &n.options.textfile {
                scrape_slots += t.worst_case_bytes(&n.limits);
            }
        }
        let q = &self.queue;
        let shards = u64::from(q.max_shards);
        let batch = u64::from(q.max_batch_bytes);
        // Each shard may hold `capacity` samples ahead of the
        // `max_samples_per_send` it is sending (Prometheus's model, by which
        // the seed's queue settings are judged), and its connection holds
        // one request. outpost keeps the samples on disk: what it holds per
        // sample of that allowance is the index of the records in the
        // sender's window, which `queue::Window::of` keeps within it.
        let per_sample = batch / u64::from(q.max_samples_per_send.max(1));
        let queue = shards
            * ((u64::from(q.capacity) + u64::from(q.max_samples_per_send))
                * per_sample.max(MIN_SAMPLE_BYTES)
                + max_compressed_len(batch)
                + REQUEST_HEAD_BYTES);
        // The batch being filled and the record being compressed into the
        // WAL; at send time the scratch a record that aged during an outage
        // is filtered in, the record list of a run and the body joined from
        // its records. Then the batcher's scratch for one series (external
        // labels added, write relabeling applied), sized for the largest
        // target's.
        let series = groups
            .iter()
            .map(|g| g.limits.series_label_bytes())
            .max()
            .unwrap_or(0) as u64;
        let (target_label_bytes, target_labels) = self.widest_target_labels();
        let series = series + target_label_bytes as u64 + self.external_label_bytes();
        let labels = groups.iter().map(|g| g.limits.max_labels()).max().unwrap_or(0) as u64;
        let labels = labels + target_labels as u64;
        let batching = 3 * batch
            + max_compressed_len(batch)
            + JOIN_PREAMBLE_BYTES
            + RUN_LIST_BYTES
            + BATCHER_SCRATCH_COPIES * series
            + 2 * 16 * (labels + self.external_labels.len() as u64 + 8);
        // The receiver's shards, and four for the status server and lookups.
        let connections: u64 = sum(|c| c.connection) + (shards + 4) * CONNECTION_BYTES;
        MemoryBreakdown {
            fixed: FIXED_OVERHEAD_BYTES,
            scrape_slots,
            inflate: u64::from(sharing.scrape_concurrency) * SLOT_GZIP_BYTES + shards * INFLATE_STATE_BYTES,
            series_pool: sharing.max_series_bytes,
            targets: sum(|c| c.at_rest),
            batching,
            queue,
            connections,
            strings: self.strings.iter().map(|s| s.len() as u64 + 24).sum(),
            discovery: self
                .scrape_jobs
                .iter()
                .filter_map(|j| j.targeting.discovery.as_ref())
                .map(Discovery::worst_case_bytes)
                .sum(),
            held_records: self.held_records_bytes(),
        }
    }

    /// The largest limits of any target, field by field: what every scrape
    /// slot is sized for.
    pub fn slot_limits(&self) -> Limits {
        self.target_groups()
            .iter()
            .map(|g| g.limits)
            .reduce(|a, b| a.max_of(&b))
            .unwrap_or(SELF_SCRAPE_LIMITS)
    }

    /// What one scrape slot holds: the line buffer and one series' scratch
    /// at [`Plan::slot_limits`].
    /// With discovery, a slot also holds the widest target labels
    /// ([`Plan::widest_target_labels`]) in each copy of a series' labels.
    pub fn scrape_slot_bytes(&self) -> u64 {
        let l = self.slot_limits();
        let (bytes, labels) = self.widest_target_labels();
        let wider = (bytes - SERIES_TARGET_LABEL_BYTES) as u64;
        l.max_line_bytes() as u64
            + l.series_scratch_bytes()
            + SERIES_SCRATCH_COPIES * wider
            + labels as u64 * LABEL_SLOT_BYTES
    }

    /// The most bytes and the most labels beyond a series' own that a
    /// target's labels may add: [`SERIES_TARGET_LABEL_BYTES`] (already in
    /// the per-series scratch) and none for targets named in the plan; a
    /// discovered target's relabeled labels
    /// ([`DISCOVERED_TARGET_LABEL_BYTES`], [`DISCOVERED_TARGET_LABELS`])
    /// when a job discovers.
    pub fn widest_target_labels(&self) -> (usize, usize) {
        if self.scrape_jobs.iter().any(|j| j.targeting.discovery.is_some()) {
            (DISCOVERED_TARGET_LABEL_BYTES, DISCOVERED_TARGET_LABELS)
        } else {
            (SERIES_TARGET_LABEL_BYTES, 0)
        }
    }

    /// What the agent really makes of [`Plan::sharing_or_legacy`]: no more
    /// slots than targets, and no larger a pool than every target's series
    /// table at its cap (plus one table's growth) could reserve.
    pub fn sharing_bounds(&self) -> Sharing {
        let s = self.sharing_or_legacy();
        let groups = self.target_groups();
        let targets: u64 = groups.iter().map(|g| g.targets).sum();
        let tables: u64 = groups.iter().map(|g| g.targets * g.per_target.series_cap).sum();
        let growth = groups.iter().map(|g| g.per_target.series_cap).max().unwrap_or(0);
        let entries: u64 = groups
            .iter()
            .map(|g| g.targets * g.per_target.series_cap_entries)
            .sum();
        Sharing {
            scrape_concurrency: u64::from(s.scrape_concurrency).min(targets).max(1) as u16,
            max_series: s.max_series.min(entries),
            max_series_bytes: s.max_series_bytes.min(tables + growth),
        }
    }

    /// The plan's [`Sharing`], or for a plan older than format version 4
    /// what its agents did: a slot per target, and a pool that holds every
    /// target's series table at its caps, plus one table's growth.
    pub fn sharing_or_legacy(&self) -> Sharing {
        if let Some(s) = self.sharing {
            return s;
        }
        let groups = self.target_groups();
        let targets: u64 = groups.iter().map(|g| g.targets).sum();
        let tables: u64 = groups.iter().map(|g| g.targets * g.per_target.series_cap).sum();
        let growth = groups.iter().map(|g| g.per_target.series_cap).max().unwrap_or(0);
        Sharing {
            scrape_concurrency: targets.clamp(1, u64::from(u16::MAX)) as u16,
            max_series: groups
                .iter()
                .map(|g| g.targets * g.per_target.series_cap_entries)
                .sum(),
            max_series_bytes: tables + growth,
        }
    }

    /// What spill mode holds in memory: `max_held_bytes` of payloads, and a
    /// span for every record the WAL can locate in memory at once (the
    /// sender's window, at most [`RECORDS_PER_SHARD`] per shard, and the
    /// look-ahead), since each of those may be a held one. Nothing in
    /// append-before-send mode.
    pub fn held_records_bytes(&self) -> u64 {
        match self.wal.mode {
            WalMode::Append => 0,
            WalMode::Spill(spill) => {
                let records = RECORDS_PER_SHARD as u64 * u64::from(self.queue.max_shards.max(1))
                    + WAL_LOOKAHEAD_RECORDS as u64;
                u64::from(spill.max_held_bytes) + records * HELD_SPAN_BYTES
            }
        }
    }
}

impl Textfile {
    /// What reading one file holds: the file, and a parser sized for it under the node's
    /// label limits (its line buffer and one series' scratch).
    pub fn worst_case_bytes(&self, node: &Limits) -> u64 {
        let limits = Limits {
            body_bytes: self.max_file_bytes,
            ..*node
        };
        u64::from(self.max_file_bytes) + limits.max_line_bytes() as u64 + limits.series_scratch_bytes()
    }
}

/// Decoded bytes per JSON byte of a Kubernetes object: a short label `"k":"v"` (7 bytes of
/// JSON) becomes a map entry of two strings and a tree node (about 80 bytes), and its
/// `__meta_kubernetes_*` name is longer than the key. Objects dense in short labels come
/// near 8. Measured: 1,000 ordinary pods hold 1.15 times what the store accounts
/// (agent-core/tests/discovery_memory.rs); EndpointSlices are not measured yet.
pub const DECODED_BYTES_PER_JSON_BYTE: u64 = 8;

impl Discovery {
    /// What one job's discovery holds: per watch (a resource in a namespace) a connection
    /// and the object arriving on it; the one object being decoded; what is kept between
    /// events (`max_store_bytes`, charged by JSON size, so held decoded); and a slot per
    /// target. The scrapes of the targets are charged with the job's other targets.
    pub fn worst_case_bytes(&self) -> u64 {
        let resources = Resource::of_role(self.role).len() as u64;
        let watches = resources * self.namespaces.len().max(1) as u64;
        let object = u64::from(self.max_object_bytes);
        let store = u64::from(self.max_store_bytes);
        watches * (CONNECTION_BYTES + object)
            + DECODED_BYTES_PER_JSON_BYTE * (object + store)
            + u64::from(self.max_targets) * DISCOVERED_TARGET_BYTES
    }
}

/// A discovered target's slot: its labels after relabeling, as the scrape uses them,
/// beside the discovered labels that `max_store_bytes` pays for.
pub const DISCOVERED_TARGET_BYTES: u64 = 1024;
