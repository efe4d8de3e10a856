//! The worst-case memory model: what a plan's bounds cost the agent.
//!
//! The agent sizes every buffer once, from the plan, with the functions and
//! constants here ([`Limits::max_line_bytes`], [`Limits::series_table_entries`],
//! ...), and never grows them; [`Plan::worst_case_memory`] adds the same
//! numbers up, so the compiler can refuse a plan that does not fit its
//! memory limit and the agent stays within what was promised. The model
//! charges each part by its own unit: a series-table entry, an index slot,
//! a string's bookkeeping, a record of the sender's window. Where that unit
//! is the size of a type, the type's module asserts it at compile time.
//!
//! The plan format ([`crate::plan`]) knows nothing of this model: the
//! model reads the plan, never the other way round.

use crate::plan::{Limits, Plan, Textfile, WalMode};
use crate::remote_write;
use crate::snappy::{self, max_compressed_len};
use crate::symbols;
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
/// Per series in a target's series table, which holds two scrapes' worth:
/// two entries and, for each, two 4-byte slots in each of its two half-full
/// indexes. Strings and id lists are paid from [`Limits::series_arena_bytes`].
pub const SERIES_SLOT_BYTES: u64 = 2 * SERIES_ENTRY_BYTES + 2 * 2 * 2 * symbols::INDEX_SLOT_BYTES as u64;
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

/// An agent's worst-case memory by what holds it, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct MemoryBreakdown {
    pub fixed: u64,
    pub scrape_bodies: u64,
    pub inflate: u64,
    pub series_state: u64,
    pub batching: u64,
    pub queue: u64,
    pub connections: u64,
    pub strings: u64,
    /// Records held in memory until acknowledged (spill mode); 0 in
    /// append-before-send mode. See [`Plan::held_records_bytes`].
    pub held_records: u64,
}

impl MemoryBreakdown {
    pub fn total(&self) -> u64 {
        self.fixed
            + self.scrape_bodies
            + self.inflate
            + self.series_state
            + self.batching
            + self.queue
            + self.connections
            + self.strings
            + self.held_records
    }

    /// `(name, bytes)` rows, for reports.
    pub fn rows(&self) -> [(&'static str, u64); 9] {
        [
            ("fixed", self.fixed),
            ("scrape_bodies", self.scrape_bodies),
            ("inflate", self.inflate),
            ("series_state", self.series_state),
            ("batching", self.batching),
            ("queue", self.queue),
            ("connections", self.connections),
            ("strings", self.strings),
            ("held_records", self.held_records),
        ]
    }
}

impl Limits {
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
}

impl Plan {
    /// Encoded size of the external labels, which every series carries.
    pub fn external_label_bytes(&self) -> u64 {
        self.external_labels
            .iter()
            .map(|p| remote_write::label_field_len(self.str(p.name), self.str(p.value)) as u64)
            .sum()
    }

    /// The agent's worst-case memory, buffer by buffer. The agent sizes its
    /// buffers from the same numbers, so this is the bound it runs within.
    pub fn worst_case_memory(&self) -> MemoryBreakdown {
        let targets: Vec<Limits> = self.target_limits().collect();
        let mut scrape_bodies = 0u64;
        let mut series_state = 0u64;
        for l in &targets {
            // The body as charged since the first model: the agent never
            // holds it (it parses chunks as they come), but it holds the
            // line buffer and one series' scratch, which fit in it with
            // the default label limits.
            let body = u64::from(l.body_bytes).max(l.series_scratch_bytes());
            scrape_bodies += body + l.max_line_bytes() as u64 + RECV_CHUNK_BYTES;
            // The series table: entries, index slots and encoded labels.
            series_state += l.series_arena_bytes(TARGET_LABEL_BYTES + self.external_label_bytes())
                + l.series_table_entries() as u64 / 2 * SERIES_SLOT_BYTES;
        }
        // The textfile collector reads one file at a time into its own parser.
        if let Some(n) = &self.node {
            if let Some(t) = &n.options.textfile {
                scrape_bodies += t.worst_case_bytes(&n.limits);
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
        let series = targets.iter().map(Limits::series_label_bytes).max().unwrap_or(0) as u64;
        let series = series + SERIES_TARGET_LABEL_BYTES as u64 + self.external_label_bytes();
        let labels = targets.iter().map(Limits::max_labels).max().unwrap_or(0) as u64;
        let batching = 3 * batch
            + max_compressed_len(batch)
            + JOIN_PREAMBLE_BYTES
            + RUN_LIST_BYTES
            + BATCHER_SCRATCH_COPIES * series
            + 2 * 16 * (labels + self.external_labels.len() as u64 + 8);
        let connections = (targets.len() as u64 + shards + 4) * CONNECTION_BYTES;
        let inflate = targets.len() as u64 * INFLATE_STATE_BYTES;
        MemoryBreakdown {
            fixed: FIXED_OVERHEAD_BYTES,
            scrape_bodies,
            inflate,
            series_state,
            batching,
            queue,
            connections,
            strings: self.strings.iter().map(|s| s.len() as u64 + 24).sum(),
            held_records: self.held_records_bytes(),
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
