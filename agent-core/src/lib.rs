//! outpost-core: everything between "these bytes came off a socket" and
//! "these bytes go to the receiver", with no socket, file or clock inside.
//!
//! The crate is `no_std`. It allocates only while a plan is loaded and its
//! buffers are sized; the steady state works in those buffers. Time is always
//! an argument (`now_ms`, milliseconds since the Unix epoch), so the whole
//! pipeline runs deterministically in tests and under a fuzzer.
//!
//! Entry points follow the sans-IO convention: `handle_*` takes input,
//! `poll_*` hands back output or the next deadline.
//!
//! Modules, from the leaves up (each uses only modules listed before it):
//! - codecs and shared types: [`varint`], [`snappy`], [`labels`], [`error`],
//!   [`plan`] (the plan format), [`url`], [`wal_record`], [`remote_write`],
//!   [`symbols`];
//! - [`sizing`]: the worst-case memory model every buffer is sized by;
//! - parsing and relabeling: [`expfmt`], [`relabel`];
//! - sending: [`queue`] (the sender's state machine), [`request`] (request
//!   bodies joined from WAL records);
//! - [`pipeline`]: a scrape body to closed remote-write batches;
//! - [`discovery`]: Kubernetes list and watch, `__meta_kubernetes_*` labels and target
//!   relabeling, to the targets a job scrapes.
//! - [`durability`]: what a plan's WAL promises (loss windows, the outage
//!   it covers).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

#[cfg(test)]
extern crate std;

pub mod discovery;
pub mod durability;
pub mod duration;
pub mod error;
pub mod expfmt;
pub mod labels;
pub mod pipeline;
pub mod plan;
pub mod queue;
pub mod relabel;
pub mod remote_write;
pub mod request;
pub mod sizing;
pub mod snappy;
pub mod symbols;
pub mod url;
pub mod varint;
pub mod wal_record;
