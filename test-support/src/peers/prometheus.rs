use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::http::{free_port, http_get, urlencode};
use crate::process::{log_text, wait_for, ChildGuard};

/// Debian's Prometheus, 2.42.
pub const PROMETHEUS: &str = "/usr/bin/prometheus";

/// A Prometheus with its remote-write receiver on; its data, configuration
/// and log (`prometheus.log`) live in the directory it was started with.
pub struct Prometheus {
    pub port: u16,
    log: PathBuf,
    _child: ChildGuard,
}

impl Prometheus {
    /// A receiver that scrapes nothing.
    pub fn start(dir: &Path) -> Option<Prometheus> {
        Prometheus::start_on(dir, free_port())
    }

    /// The same on a given port (a test that restarts it on the same address).
    pub fn start_on(dir: &Path, port: u16) -> Option<Prometheus> {
        Prometheus::start_with_config(dir, port, "global:\n  scrape_interval: 1m\n")
    }

    /// With `config` as its `prometheus.yml`; ready when `/-/ready` says so.
    pub fn start_with_config(dir: &Path, port: u16, config: &str) -> Option<Prometheus> {
        if !super::installed(PROMETHEUS, "prometheus") {
            return None;
        }
        std::fs::create_dir_all(dir).unwrap();
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, config).unwrap();
        let log = dir.join("prometheus.log");
        let child = ChildGuard::spawn_logged(
            Command::new(PROMETHEUS)
                .arg("--web.enable-remote-write-receiver")
                .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg(format!("--config.file={}", config_file.display()))
                .arg("--log.level=warn"),
            &log,
        );
        let p = Prometheus {
            port,
            log,
            _child: child,
        };
        wait_for("prometheus ready", Duration::from_secs(30), || {
            http_get(port, "/-/ready").filter(|(s, _)| *s == 200)
        });
        Some(p)
    }

    pub fn write_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1/write", self.port)
    }

    /// Its log so far, for assertion messages.
    pub fn log(&self) -> String {
        log_text(&self.log)
    }

    /// The raw JSON answer of an instant query.
    pub fn query(&self, q: &str) -> String {
        self.query_at(q, None)
    }

    /// The same, evaluated at `time_s` (Unix seconds) when given.
    pub fn query_at(&self, q: &str, time_s: Option<f64>) -> String {
        let mut path = format!("/api/v1/query?query={}", urlencode(q));
        if let Some(t) = time_s {
            path.push_str(&format!("&time={t:.3}"));
        }
        let (status, body) =
            http_get(self.port, &path).unwrap_or_else(|| panic!("prometheus did not answer query {q}"));
        assert_eq!(status, 200, "query {q}: {body}");
        body
    }
}
