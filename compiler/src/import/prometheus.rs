//! prometheus.yml: `global`, `scrape_configs` and `remote_write`.

use super::keys::Keys;
use super::read::{Findings, MapView};
use super::remote_write::remote_write;
use super::scrape::{scrape_job, Inherited};
use super::Draft;
use std::path::Path;

/// Prometheus's defaults for what `global` leaves out.
const PROMETHEUS_SCRAPE_INTERVAL: &str = "1m";
const PROMETHEUS_SCRAPE_TIMEOUT: &str = "10s";

pub fn config(mut root: MapView, base_dir: &Path, f: &mut Findings) -> Draft {
    let mut draft = Draft::default();
    let mut inherited = Inherited {
        interval: PROMETHEUS_SCRAPE_INTERVAL.into(),
        timeout: PROMETHEUS_SCRAPE_TIMEOUT.into(),
    };
    if let Some(mut g) = root.map("global", f) {
        if let Some(i) = g.text("scrape_interval", f) {
            inherited.interval = i;
        }
        if let Some(t) = g.text("scrape_timeout", f) {
            inherited.timeout = t;
        }
        draft.external_labels(g.string_map("external_labels", f), f);
        g.rest(f, |key| match key {
            "evaluation_interval" | "rule_query_offset" => "outpost evaluates no rules".into(),
            _ => "outpost has no such global setting".into(),
        });
    }
    draft.defaults.scrape_interval = Some(inherited.interval.clone());
    draft.defaults.scrape_timeout = Some(inherited.timeout.clone());
    for (node, path) in root.list("scrape_configs", f) {
        if let Some(m) = MapView::of(node, path, f) {
            draft.jobs.extend(scrape_job(m, base_dir, &inherited, f));
        }
    }
    for (i, (node, path)) in root.list("remote_write", f).into_iter().enumerate() {
        if i > 0 {
            f.not_imported(
                path,
                "a fleet has one receiver; the first remote_write is imported",
            );
            continue;
        }
        if let Some(m) = MapView::of(node, path, f) {
            draft.remote_write = remote_write(m, Keys::Snake, f);
        }
    }
    root.rest(f, |key| match key {
        "rule_files" | "alerting" => "outpost evaluates no rules and sends no alerts".into(),
        "remote_read" => "outpost keeps no data to read back".into(),
        "scrape_config_files" => {
            "import the scrape config files' contents: add them to scrape_configs".into()
        }
        _ => "not a part of Prometheus that outpost runs".into(),
    });
    draft
}
