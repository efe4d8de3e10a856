//! The real peers the tests run against, as Debian installs them, and the
//! agent under test. Each listens on 127.0.0.1 on a free port and dies with
//! its guard; `start` gives `None`, after saying why, when the peer is not
//! installed, so the test can skip.

mod node_exporter;
mod outpost;
mod prometheus;
mod victoria_metrics;

use std::path::Path;

pub use node_exporter::{NodeExporter, NODE_EXPORTER};
pub use outpost::{cannot_unshare_mounts, Outpost};
pub use prometheus::{Prometheus, PROMETHEUS};
pub use victoria_metrics::{VictoriaMetrics, VmAgent, VICTORIA_METRICS, VMAGENT};

/// Whether `binary` is there; says how to install it when it is not.
fn installed(binary: &str, package: &str) -> bool {
    let there = Path::new(binary).exists();
    if !there {
        eprintln!("skipping: {binary} is not installed (apt-get install {package})");
    }
    there
}
