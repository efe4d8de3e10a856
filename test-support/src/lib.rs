//! What outpost's tests share, in one place instead of a copy per test file:
//!
//! - [`plan`]: [`PlanBuilder`], the plans tests run on, built and validated
//!   through the one plan format of outpost-core; golden plans read and
//!   pointed at loopback;
//! - [`relabel`]: relabel rules as a spec writes them, and the relabel
//!   tests' programs and label sets;
//! - [`process`]: child processes killed on drop, bounded waits, logs;
//! - [`peers`]: the real Prometheus, node_exporter and VictoriaMetrics, and
//!   the `outpost` binary under test;
//! - [`servers`]: loopback scrape targets and remote-write receivers;
//! - [`kube_api`]: a Kubernetes API server stand-in serving list and watch;
//! - [`http`]: one `free_port`, a minimal HTTP client, `/metrics` readers;
//! - [`repo`]: the repository's files (examples, golden plans and manifests);
//! - [`wire`]: remote-write messages decoded by prost, independently of
//!   the encoder under test;
//! - [`alloc`]: the counting global allocator of the allocation tests.
//!
//! Only integration tests (`tests/*.rs`) and benches use it: a unit test
//! inside outpost-core would see this crate's outpost-core as a second,
//! different copy of its own types.

#![deny(unsafe_code)]

pub mod alloc;
pub mod http;
pub mod kube_api;
pub mod peers;
pub mod plan;
pub mod process;
pub mod relabel;
pub mod repo;
pub mod servers;
pub mod wire;

pub use alloc::{
    allocation_stacks, count_allocations, live_heap_bytes, peak_heap_bytes, reset_heap_bytes,
    CountingAllocator,
};
pub use http::{free_port, get_metrics, http_get, http_request, metric_sum, metric_value, urlencode};
pub use peers::{
    cannot_unshare_mounts, NodeExporter, Outpost, Prometheus, VictoriaMetrics, VmAgent, NODE_EXPORTER,
    PROMETHEUS, VMAGENT,
};
pub use plan::{
    describe, golden_plan, intern, intern_rules, to_loopback, write_plan, PlanBuilder, LIMITS, QUEUE,
};
pub use process::{log_text, wait_for, ChildGuard, Signal};
pub use relabel::Rule;
pub use repo::{golden_tree, repo_path};
pub use servers::{
    assert_each_scrape_once_in_order, serve_connection, CountingTarget, HttpRequest, LoopbackServer, Policy,
    Received, RecordingReceiver, SlowReceiver, TargetServer,
};
pub use wire::{TimeSeries, WriteRequest};
