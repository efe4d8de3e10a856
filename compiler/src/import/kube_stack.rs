//! kube-prometheus-stack values: `prometheus.prometheusSpec`'s
//! `remoteWrite`, `externalLabels`, `additionalScrapeConfigs`,
//! `scrapeInterval`/`scrapeTimeout` and `resources`. Everything else in the
//! values is reported, a top-level section at a time.

use super::keys::Keys;
use super::read::{Findings, MapView};
use super::remote_write::remote_write;
use super::scrape::{scrape_job, Inherited};
use super::Draft;
use crate::spec::{Quantities, ResourcesSpec};
use std::path::Path;

/// The Prometheus Operator's defaults.
const OPERATOR_SCRAPE_INTERVAL: &str = "30s";
const OPERATOR_SCRAPE_TIMEOUT: &str = "10s";

/// Whether a document looks like kube-prometheus-stack values.
pub fn is_values(root: &MapView) -> bool {
    root.has("prometheus") && !root.has("scrape_configs") && !root.has("global")
}

pub fn values(mut root: MapView, base_dir: &Path, f: &mut Findings) -> Draft {
    let mut draft = Draft::default();
    if let Some(mut p) = root.map("prometheus", f) {
        if let Some(spec) = p.map("prometheusSpec", f) {
            prometheus_spec(spec, base_dir, f, &mut draft);
        }
        p.rest(f, |_| {
            "only `prometheus.prometheusSpec` describes what the agent does".into()
        });
    }
    root.rest(f, |key| match key {
        "nodeExporter" | "prometheus-node-exporter" => {
            "outpost's node collectors replace node_exporter: add a `node:` section (`node: {}` runs \
             node_exporter's default collectors; `node.options` takes its filter flags)"
                .into()
        }
        "kubeStateMetrics" | "kube-state-metrics" => {
            "`outpostc manifests` deploys kube-state-metrics; scrape it with a cluster-scope job".into()
        }
        "grafana" | "alertmanager" | "defaultRules" | "additionalPrometheusRulesMap" => {
            "outpost ships metrics; it runs no dashboards, rules or alerts".into()
        }
        _ => "not a part of the stack that outpost replaces".into(),
    });
    draft
}

fn prometheus_spec(mut ps: MapView, base_dir: &Path, f: &mut Findings, draft: &mut Draft) {
    let inherited = Inherited {
        interval: ps
            .text("scrapeInterval", f)
            .unwrap_or_else(|| OPERATOR_SCRAPE_INTERVAL.into()),
        timeout: ps
            .text("scrapeTimeout", f)
            .unwrap_or_else(|| OPERATOR_SCRAPE_TIMEOUT.into()),
    };
    draft.defaults.scrape_interval = Some(inherited.interval.clone());
    draft.defaults.scrape_timeout = Some(inherited.timeout.clone());
    draft.external_labels(ps.string_map("externalLabels", f), f);
    for (i, (node, path)) in ps.list("remoteWrite", f).into_iter().enumerate() {
        if i > 0 {
            f.not_imported(
                path,
                "a fleet has one receiver; the first remoteWrite is imported",
            );
            continue;
        }
        if let Some(m) = MapView::of(node, path, f) {
            draft.remote_write = remote_write(m, Keys::Camel, f);
        }
    }
    for (node, path) in ps.list("additionalScrapeConfigs", f) {
        if let Some(m) = MapView::of(node, path, f) {
            draft.jobs.extend(scrape_job(m, base_dir, &inherited, f));
        }
    }
    if let Some(mut r) = ps.map("resources", f) {
        let mut quantities = |key: &str, f: &mut Findings| {
            r.map(key, f).map(|mut q| {
                let out = Quantities {
                    cpu: q.text("cpu", f),
                    memory: q.text("memory", f),
                };
                q.rest(f, |_| "outpost budgets cpu and memory only".into());
                out
            })
        };
        let requests = quantities("requests", f);
        let limits = quantities("limits", f);
        draft.defaults.resources = Some(ResourcesSpec { requests, limits });
        r.rest(f, |_| "resources have `requests` and `limits`".into());
    }
    ps.rest(f, |key| match key {
        "storageSpec" | "retention" | "retentionSize" | "walCompression" => {
            "the cluster agent's WAL is `defaults.wal` (dir, max_size)".into()
        }
        "replicas" | "shards" => "one cluster-role agent runs per cluster or tenant".into(),
        k if k.ends_with("Selector") || k.ends_with("SelectorNilUsesHelmValues") => {
            "outpost has no ServiceMonitor/PodMonitor discovery yet: targets are static".into()
        }
        _ => "outpost has no such setting".into(),
    });
}
