use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use crate::http::{free_port, http_get_within};
use crate::process::{wait_for, ChildGuard};

/// Debian's node_exporter, 1.5.
pub const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";

pub struct NodeExporter {
    pub port: u16,
    _child: ChildGuard,
}

impl NodeExporter {
    /// With `args` beside the listen address; ready once it accepts connections.
    pub fn start(args: &[String]) -> Option<NodeExporter> {
        if !super::installed(NODE_EXPORTER, "prometheus-node-exporter") {
            return None;
        }
        let port = free_port();
        let child = ChildGuard::spawn(
            Command::new(NODE_EXPORTER)
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .args(args),
        );
        wait_for("node_exporter listening", Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Some(NodeExporter { port, _child: child })
    }

    /// Its `/metrics` page; panics unless it answers 200. A scrape reads
    /// every collector, so it may take a while on a busy machine.
    pub fn metrics(&self) -> String {
        let (status, body) = http_get_within(self.port, "/metrics", Duration::from_secs(30))
            .expect("node_exporter answers /metrics");
        assert_eq!(status, 200, "node_exporter /metrics: {body}");
        body
    }
}
