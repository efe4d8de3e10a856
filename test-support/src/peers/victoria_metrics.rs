use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::http::{free_port, http_get};
use crate::process::{wait_for, ChildGuard};

/// Debian's single-node VictoriaMetrics, 1.79.
pub const VICTORIA_METRICS: &str = "/usr/bin/victoria-metrics";

pub struct VictoriaMetrics {
    pub port: u16,
    _child: ChildGuard,
}

impl VictoriaMetrics {
    /// Stores under `dir/vm`; ready when `/health` answers 200.
    pub fn start(dir: &Path) -> Option<VictoriaMetrics> {
        if !super::installed(VICTORIA_METRICS, "victoria-metrics") {
            return None;
        }
        let port = free_port();
        let child = ChildGuard::spawn(
            Command::new(VICTORIA_METRICS)
                .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
                .arg(format!("-storageDataPath={}", dir.join("vm").display()))
                .arg("-retentionPeriod=1d")
                // Without it the newest minute is hidden from queries.
                .arg("-search.latencyOffset=0s")
                .arg("-loggerLevel=ERROR"),
        );
        let vm = VictoriaMetrics { port, _child: child };
        wait_for("victoria-metrics healthy", Duration::from_secs(30), || {
            http_get(port, "/health").filter(|(s, _)| *s == 200)
        });
        Some(vm)
    }

    pub fn write_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1/write", self.port)
    }
}

/// Debian's vmagent, 1.79 (the same package). Debian builds Prometheus 2.42 without
/// Kubernetes discovery, so vmagent's `kubernetes_sd_configs`, which follows Prometheus's
/// meta labels, is the peer the discovery tests compare with.
pub const VMAGENT: &str = "/usr/bin/vmagent";

/// A vmagent scraping by `config` (its `-promscrape.config`); it sends to `write_url`.
pub struct VmAgent {
    pub port: u16,
    _child: ChildGuard,
}

impl VmAgent {
    /// Ready when `/health` answers 200; its queue lives under `dir/vmagent`.
    pub fn start_with_config(dir: &Path, config: &str, write_url: &str) -> Option<VmAgent> {
        if !super::installed(VMAGENT, "victoria-metrics") {
            return None;
        }
        std::fs::create_dir_all(dir).unwrap();
        let config_file = dir.join("vmagent.yml");
        std::fs::write(&config_file, config).unwrap();
        let port = free_port();
        let child = ChildGuard::spawn(
            Command::new(VMAGENT)
                .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
                .arg(format!("-promscrape.config={}", config_file.display()))
                .arg(format!("-remoteWrite.url={write_url}"))
                .arg(format!(
                    "-remoteWrite.tmpDataPath={}",
                    dir.join("vmagent").display()
                ))
                .arg("-loggerLevel=ERROR"),
        );
        let agent = VmAgent { port, _child: child };
        wait_for("vmagent healthy", Duration::from_secs(30), || {
            http_get(port, "/health").filter(|(s, _)| *s == 200)
        });
        Some(agent)
    }
}
