//! Settings in layers: `defaults`, a cluster's `overrides`, a tenant's
//! `overrides`. The last layer that sets a value wins, and the value keeps
//! the place it was written so a problem with it is reported there.

use super::context::Cx;
use super::defaults::default_limits;
use crate::diag::Diagnostic;
use crate::spec::{ClusterSpec, Fleet, LimitsSpec, Settings, TenantSpec};
use crate::tree::DocPath;
use outpost_core::plan;
use std::collections::BTreeMap;

/// The settings one cluster or tenant sees, layer by layer.
pub(super) struct Unit<'a> {
    pub(super) fleet: &'a Fleet,
    pub(super) cluster: &'a ClusterSpec,
    pub(super) tenant: Option<&'a TenantSpec>,
    pub(super) unit_path: DocPath,
    /// defaults, cluster overrides, tenant overrides: the last one that sets a value wins.
    pub(super) layers: Vec<(&'a Settings, DocPath)>,
}

impl<'a> Unit<'a> {
    /// The value of the last layer that sets it, and its place: the
    /// layer's path followed by `keys`.
    pub(super) fn pick<T: ?Sized>(
        &self,
        get: impl Fn(&'a Settings) -> Option<&'a T>,
        keys: &[&str],
    ) -> Option<(&'a T, DocPath)> {
        self.layers.iter().rev().find_map(|(s, p)| {
            get(s).map(|v| {
                let mut path = p.clone();
                for k in keys {
                    path = path.at(*k);
                }
                (v, path)
            })
        })
    }

    /// `cluster` or `cluster/tenant`, for messages.
    pub(super) fn name(&self) -> String {
        match self.tenant {
            Some(t) => format!("{}/{}", self.cluster.name, t.name),
            None => self.cluster.name.clone(),
        }
    }

    /// Every layer's `external_labels` merged, then the ones the compiler
    /// sets: `cluster`, `role`, `location`, `tenant`. Sorted by name.
    pub(super) fn external_labels(&self, cx: &mut Cx) -> Vec<(String, String)> {
        let mut labels: BTreeMap<String, String> = BTreeMap::new();
        for (s, p) in &self.layers {
            for (k, v) in &s.external_labels {
                let lpath = p.at("external_labels").at(k.as_str());
                if ["cluster", "role", "location", "tenant"].contains(&k.as_str()) {
                    cx.push(
                        Diagnostic::error("reserved-external-label", lpath.clone(), format!("external label `{k}` is set by the compiler"))
                            .on_key()
                            .label("reserved")
                            .help("`cluster`, `tenant`, `role` and `location` come from the cluster's and tenant's `name`, `role` and `location`"),
                    );
                    continue;
                }
                if !cx.label_name(k, &lpath, true) {
                    continue;
                }
                if v.is_empty() {
                    cx.push(
                        Diagnostic::error(
                            "empty-value",
                            lpath,
                            format!("external label `{k}` has an empty value"),
                        )
                        .label("empty")
                        .help("an empty value removes the label in Prometheus; leave the key out instead"),
                    );
                    continue;
                }
                labels.insert(k.clone(), v.clone());
            }
        }
        labels.insert("cluster".into(), self.cluster.name.clone());
        labels.insert("role".into(), self.cluster.role.clone());
        if let Some(l) = &self.cluster.location {
            labels.insert("location".into(), l.clone());
        }
        if let Some(t) = self.tenant {
            labels.insert("tenant".into(), t.name.clone());
        }
        labels.into_iter().filter(|(_, v)| !v.is_empty()).collect()
    }

    /// The scrape limits every layer's `limits` sets, over the defaults.
    pub(super) fn limits_layered(&self, cx: &mut Cx) -> plan::Limits {
        let mut limits = default_limits();
        for (s, p) in self.layers.clone() {
            if let Some(l) = &s.limits {
                limits = limits_from(cx, l, &p.at("limits"), limits);
            }
        }
        limits
    }
}

/// `l` over `base`: each key that is set and in range replaces the base's value.
pub(super) fn limits_from(cx: &mut Cx, l: &LimitsSpec, path: &DocPath, base: plan::Limits) -> plan::Limits {
    let mut out = base;
    let body_size = l
        .body_size
        .as_ref()
        .and_then(|b| cx.size(b, &path.at("body_size")));
    let mut within = |value: Option<u64>, key: &str, min: u64, max: u64, what: &str| {
        value.and_then(|v| cx.range(v, min, max, &path.at(key), what))
    };
    let (max_u16, max_u32) = (u64::from(u16::MAX), u64::from(u32::MAX));
    if let Some(v) = within(body_size, "body_size", 1024, max_u32, "body_size in bytes") {
        out.body_bytes = v as u32;
    }
    if let Some(v) = within(l.samples, "samples", 1, max_u32, "samples") {
        out.samples = v as u32;
    }
    if let Some(v) = within(l.label_count, "label_count", 1, max_u16, "label_count") {
        out.label_count = v as u16;
    }
    if let Some(v) = within(
        l.label_name_length,
        "label_name_length",
        1,
        max_u16,
        "label_name_length",
    ) {
        out.label_name_bytes = v as u16;
    }
    if let Some(v) = within(
        l.label_value_length,
        "label_value_length",
        1,
        max_u32,
        "label_value_length",
    ) {
        out.label_value_bytes = v as u32;
    }
    out
}
