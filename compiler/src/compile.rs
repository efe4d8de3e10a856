//! From the parsed spec to checked plans: settings are merged (defaults,
//! cluster, tenant), every value is checked where it was written, and one
//! plan per agent is built. All problems are collected; nothing stops at
//! the first.

use crate::diag::{Diagnostic, Severity};
use crate::spec::*;
use crate::tree::DocPath;
use crate::units::{format_size, parse_cpu, parse_duration, parse_size};
use outpost_core::plan::{self, Plan, Role, StrId};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

pub const DEFAULT_TENANT_HEADER: &str = "THANOS-TENANT";
pub const DEFAULT_SCRAPE_INTERVAL: &str = "30s";
pub const DEFAULT_SCRAPE_TIMEOUT: &str = "10s";
pub const DEFAULT_REMOTE_TIMEOUT: &str = "30s";
pub const DEFAULT_CAPACITY: u64 = 2500;
pub const DEFAULT_MIN_SHARDS: u64 = 1;
pub const DEFAULT_MAX_SHARDS: u64 = 4;
pub const DEFAULT_MAX_SAMPLES_PER_SEND: u64 = 2000;
pub const DEFAULT_BATCH_SEND_DEADLINE: &str = "5s";
pub const DEFAULT_MIN_BACKOFF: &str = "30ms";
pub const DEFAULT_MAX_BACKOFF: &str = "5s";
pub const DEFAULT_MAX_SAMPLE_AGE: &str = "2h";
/// Bytes budgeted per queued sample when `max_batch_size` is not given: a
/// sample with a dozen typical labels, uncompressed.
pub const DEFAULT_SAMPLE_BYTES: u64 = 200;
pub const DEFAULT_WAL_DIR: &str = "/var/lib/outpost/wal";
pub const DEFAULT_WAL_MAX: &str = "1Gi";
pub const DEFAULT_NODE_WAL_DIR: &str = "/var/lib/outpost/node-wal";
pub const DEFAULT_NODE_WAL_MAX: &str = "512Mi";
pub const DEFAULT_SEGMENT: &str = "8Mi";
pub const DEFAULT_FSYNC: &str = "1s";
pub const DEFAULT_BODY_SIZE: &str = "10Mi";
pub const DEFAULT_SAMPLES: u64 = 100_000;
pub const DEFAULT_LABEL_COUNT: u64 = 64;
pub const DEFAULT_LABEL_NAME_LENGTH: u64 = 128;
pub const DEFAULT_LABEL_VALUE_LENGTH: u64 = 2048;
/// The card's budget for an edge agent.
pub const DEFAULT_CPU: &str = "200m";
pub const DEFAULT_MEMORY: &str = "256Mi";
pub const DEFAULT_NODE_JOB: &str = "node-exporter";
pub const SELF_JOB: &str = "outpost";
pub const NODE_VARS: [&str; 2] = ["${NODE_NAME}", "${NODE_IP}"];

/// One agent's plan and where it goes: `<cluster>/[<tenant>/]<role>.plan`.
#[derive(Debug, Clone)]
pub struct AgentPlan {
    pub cluster: String,
    pub tenant: Option<String>,
    pub role: Role,
    pub plan: Plan,
}

impl AgentPlan {
    pub fn rel_path(&self) -> PathBuf {
        let mut p = PathBuf::from(&self.cluster);
        if let Some(t) = &self.tenant {
            p.push(t);
        }
        p.push(format!("{}.plan", self.role.as_str()));
        p
    }
}

/// Builds every agent's plan and collects every problem in the spec.
/// Plans are returned even when there are errors (for `explain`-style
/// tooling); callers must not write them unless no diagnostic is an error.
pub fn build_plans(fleet: &Fleet) -> (Vec<AgentPlan>, Vec<Diagnostic>) {
    let mut cx = Cx::default();
    let root = DocPath::root();
    check_receiver(&mut cx, fleet);
    check_fleet_names(&mut cx, fleet);
    let mut plans = Vec::new();
    let mut label_sets: HashMap<Vec<(String, String)>, DocPath> = HashMap::new();
    for (ci, cluster) in fleet.clusters.iter().enumerate() {
        let cpath = root.at("clusters").at(ci);
        check_tenants(&mut cx, cluster, &cpath);
        let units: Vec<Option<usize>> = if cluster.tenants.is_empty() {
            vec![None]
        } else {
            (0..cluster.tenants.len()).map(Some).collect()
        };
        for ti in units {
            let mut layers = vec![(&fleet.defaults, root.at("defaults"))];
            layers.push((&cluster.overrides, cpath.at("overrides")));
            let tenant = ti.map(|i| &cluster.tenants[i]);
            let unit_path = match ti {
                Some(i) => cpath.at("tenants").at(i),
                None => cpath.clone(),
            };
            if let Some(t) = tenant {
                layers.push((&t.overrides, unit_path.at("overrides")));
            }
            let unit = Unit {
                fleet,
                cluster,
                tenant,
                unit_path: unit_path.clone(),
                layers,
            };
            let labels = unit.external_labels(&mut cx);
            if let Some(first) = label_sets.get(&labels) {
                cx.push(
                    Diagnostic::error(
                        "duplicate-external-labels",
                        unit_path.at("name"),
                        format!(
                            "agents here have the same external labels as the agents at `{first}`: {}",
                            render_labels(&labels)
                        ),
                    )
                    .label("second writer with these labels")
                    .help("two writers with one label set overwrite each other at the receiver; give each cluster and tenant a unique name"),
                );
            } else {
                label_sets.insert(labels.clone(), unit_path.clone());
            }
            for role in [Role::Node, Role::Cluster] {
                if let Some(plan) = unit.build(&mut cx, role, &labels) {
                    plans.push(AgentPlan {
                        cluster: cluster.name.clone(),
                        tenant: tenant.map(|t| t.name.clone()),
                        role,
                        plan,
                    });
                }
            }
        }
    }
    (plans, cx.finish())
}

#[derive(Default)]
struct Cx {
    diags: Vec<Diagnostic>,
}

impl Cx {
    fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// Settings shared by several agents are checked once per agent; the
    /// user wants to hear about each place once.
    fn finish(self) -> Vec<Diagnostic> {
        let mut seen = BTreeSet::new();
        self.diags
            .into_iter()
            .filter(|d| seen.insert((d.path.clone(), d.code, d.message.clone())))
            .collect()
    }

    fn duration(&mut self, text: &str, path: &DocPath) -> Option<u64> {
        parse_duration(text)
            .map_err(|m| {
                self.push(
                    Diagnostic::error("bad-duration", path.clone(), m)
                        .label("not a duration")
                        .help("units: ms, s, m, h, d, w, y, largest first (`1m30s`)"),
                )
            })
            .ok()
    }

    fn size(&mut self, text: &str, path: &DocPath) -> Option<u64> {
        parse_size(text)
            .map_err(|m| {
                self.push(
                    Diagnostic::error("bad-size", path.clone(), m)
                        .label("not a size")
                        .help("binary suffixes Ki, Mi, Gi, Ti or decimal k, M, G, T"),
                )
            })
            .ok()
    }

    fn cpu(&mut self, text: &str, path: &DocPath) -> Option<u32> {
        parse_cpu(text)
            .map_err(|m| {
                self.push(
                    Diagnostic::error("bad-cpu", path.clone(), m)
                        .label("not a CPU quantity")
                        .help("millicores with `m` (`200m`) or cores with up to 3 decimals (`0.5`)"),
                )
            })
            .ok()
    }

    fn range(&mut self, value: u64, min: u64, max: u64, path: &DocPath, what: &str) -> Option<u64> {
        if value < min || value > max {
            self.push(
                Diagnostic::error(
                    "out-of-range",
                    path.clone(),
                    format!("{what} is {value}, outside {min}..={max}"),
                )
                .label("out of range")
                .help(format!("use a value between {min} and {max}")),
            );
            return None;
        }
        Some(value)
    }

    fn label_name(&mut self, name: &str, path: &DocPath, on_key: bool) -> bool {
        if is_label_name(name) {
            return true;
        }
        let mut d = Diagnostic::error(
            "bad-label-name",
            path.clone(),
            format!("`{name}` is not a valid Prometheus label name"),
        )
        .label("invalid label name")
        .help("label names match [a-zA-Z_][a-zA-Z0-9_]*");
        if on_key {
            d = d.on_key();
        }
        self.push(d);
        false
    }

    fn dns_label(&mut self, name: &str, path: &DocPath, what: &str) -> bool {
        if is_dns_label(name) {
            return true;
        }
        self.push(
            Diagnostic::error("bad-name", path.clone(), format!("{what} `{name}` is not a valid DNS-1123 label"))
                .label("invalid name")
                .help("use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit"),
        );
        false
    }

    fn file_path(&mut self, value: &str, path: &DocPath) {
        if !value.starts_with('/') {
            self.push(
                Diagnostic::error(
                    "relative-path",
                    path.clone(),
                    format!("`{value}` is not an absolute path"),
                )
                .label("relative path")
                .help(
                    "agents start in an unspecified directory; give the full path, e.g. `/etc/outpost/token`",
                ),
            );
        }
    }
}

pub fn is_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

pub fn is_dns_label(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn render_labels(labels: &[(String, String)]) -> String {
    let inner: Vec<String> = labels.iter().map(|(n, v)| format!("{n}=\"{v}\"")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// Host part of a URL's authority, without port or brackets.
fn url_host(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    Some((scheme, host))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host == "::1" || host.starts_with("127.")
}

fn check_receiver(cx: &mut Cx, fleet: &Fleet) {
    let r = &fleet.receiver;
    let path = DocPath::root().at("receiver");
    match url_host(&r.url) {
        Some((scheme, host)) if (scheme == "http" || scheme == "https") && !host.is_empty() => {
            if scheme == "http" && !is_loopback(host) {
                cx.push(
                    Diagnostic::warning(
                        "plaintext-receiver",
                        path.at("url"),
                        format!("samples and tenant headers to `{host}` travel unencrypted and unauthenticated"),
                    )
                    .label("plain http:// to a remote host")
                    .help("use https:// with `tls.ca_file` (and `cert_file`/`key_file` for mTLS) so no site can write as another tenant"),
                );
            }
        }
        _ => cx.push(
            Diagnostic::error(
                "bad-url",
                path.at("url"),
                format!("`{}` is not an http:// or https:// URL with a host", r.url),
            )
            .label("not a receiver URL")
            .help("e.g. `https://thanos-receive.example.net:19291/api/v1/receive`"),
        ),
    }
    if let Some(h) = &r.tenant_header {
        if !h.is_empty() && !is_header_name(h) {
            cx.push(
                Diagnostic::error(
                    "bad-header-name",
                    path.at("tenant_header"),
                    format!("`{h}` is not a valid HTTP header name"),
                )
                .label("invalid header name")
                .help("Thanos Receive reads `THANOS-TENANT`; Mimir and Cortex read `X-Scope-OrgID`"),
            );
        }
    }
    if let Some(t) = &r.remote_timeout {
        if cx.duration(t, &path.at("remote_timeout")) == Some(0) {
            cx.push(
                Diagnostic::error(
                    "zero-duration",
                    path.at("remote_timeout"),
                    "remote_timeout must be more than 0",
                )
                .label("zero"),
            );
        }
    }
    if let Some(tls) = &r.tls {
        check_tls(cx, tls, &path.at("tls"));
    }
    if let Some(auth) = &r.auth {
        let apath = path.at("auth");
        if auth.bearer_token.is_some() {
            cx.push(inline_secret(apath.at("bearer_token"), "bearer_token_file"));
        }
        if let Some(f) = &auth.bearer_token_file {
            cx.file_path(f, &apath.at("bearer_token_file"));
        }
        if let Some(b) = &auth.basic {
            let bpath = apath.at("basic");
            if b.password.is_some() {
                cx.push(inline_secret(bpath.at("password"), "password_file"));
            }
            match &b.password_file {
                Some(f) => cx.file_path(f, &bpath.at("password_file")),
                None if b.password.is_none() => cx.push(
                    Diagnostic::error("missing-key", bpath.clone(), "basic auth needs `password_file`")
                        .on_key()
                        .label("no password file")
                        .help("add `password_file: /etc/outpost/receiver-password`"),
                ),
                None => {}
            }
            if auth.bearer_token_file.is_some() || auth.bearer_token.is_some() {
                cx.push(
                    Diagnostic::error(
                        "conflicting-auth",
                        bpath,
                        "both a bearer token and basic auth are set",
                    )
                    .on_key()
                    .label("second credential")
                    .help("keep one of `bearer_token_file` and `basic`"),
                );
            }
        }
    }
}

fn inline_secret(path: DocPath, file_key: &str) -> Diagnostic {
    Diagnostic::error(
        "inline-secret",
        path,
        "secrets are never written into the spec or the plan",
    )
    .on_key()
    .label("inline secret")
    .help(format!(
        "put the secret in a file mounted on the agent and set `{file_key}` to its path"
    ))
}

fn check_tls(cx: &mut Cx, tls: &TlsSpec, path: &DocPath) {
    for (key, value) in [
        ("ca_file", &tls.ca_file),
        ("cert_file", &tls.cert_file),
        ("key_file", &tls.key_file),
    ] {
        if let Some(v) = value {
            cx.file_path(v, &path.at(key));
        }
    }
    match (&tls.cert_file, &tls.key_file) {
        (Some(_), None) => cx.push(
            Diagnostic::error(
                "incomplete-mtls",
                path.at("cert_file"),
                "`cert_file` is set without `key_file`",
            )
            .on_key()
            .label("client certificate without its key")
            .help("mTLS needs both; add `key_file` with the client key's path"),
        ),
        (None, Some(_)) => cx.push(
            Diagnostic::error(
                "incomplete-mtls",
                path.at("key_file"),
                "`key_file` is set without `cert_file`",
            )
            .on_key()
            .label("client key without its certificate")
            .help("mTLS needs both; add `cert_file` with the client certificate's path"),
        ),
        _ => {}
    }
    if tls.insecure_skip_verify {
        cx.push(
            Diagnostic::warning(
                "insecure-tls",
                path.at("insecure_skip_verify"),
                "server certificates are not verified",
            )
            .label("verification off")
            .help("set `ca_file` to the CA that signed the server's certificate instead"),
        );
    }
}

fn check_fleet_names(cx: &mut Cx, fleet: &Fleet) {
    let root = DocPath::root();
    if fleet.clusters.is_empty() {
        cx.push(
            Diagnostic::error("no-clusters", root.at("clusters"), "the fleet has no clusters")
                .on_key()
                .label("empty")
                .help("add at least one cluster with a `name` and a `role`"),
        );
    }
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (ci, c) in fleet.clusters.iter().enumerate() {
        let path = root.at("clusters").at(ci);
        cx.dns_label(&c.name, &path.at("name"), "cluster name");
        if let Some(first) = names.insert(&c.name, ci) {
            cx.push(
                Diagnostic::error(
                    "duplicate-name",
                    path.at("name"),
                    format!("cluster `{}` is already defined at clusters[{first}]", c.name),
                )
                .label("duplicate")
                .help("cluster names must be unique across the fleet"),
            );
        }
        if c.role.is_empty() {
            cx.push(
                Diagnostic::error("empty-value", path.at("role"), "role must not be empty")
                    .label("empty")
                    .help("e.g. `edge`"),
            );
        }
    }
    let mut jobs: HashMap<&str, usize> = HashMap::new();
    for (ji, j) in fleet.scrape_jobs.iter().enumerate() {
        let path = root.at("scrape_jobs").at(ji);
        if j.name.is_empty() {
            cx.push(
                Diagnostic::error("empty-value", path.at("name"), "job name must not be empty")
                    .label("empty"),
            );
        }
        if let Some(first) = jobs.insert(&j.name, ji) {
            cx.push(
                Diagnostic::error(
                    "duplicate-name",
                    path.at("name"),
                    format!("job `{}` is already defined at scrape_jobs[{first}]", j.name),
                )
                .label("duplicate")
                .help("job names must be unique; they become the `job` label"),
            );
        }
        if fleet
            .node
            .as_ref()
            .is_some_and(|n| n.job.as_deref().unwrap_or(DEFAULT_NODE_JOB) == j.name)
        {
            cx.push(
                Diagnostic::error(
                    "duplicate-name",
                    path.at("name"),
                    format!("job `{}` is also the node collectors' job", j.name),
                )
                .label("duplicate")
                .help("rename the job or set `node.job`"),
            );
        }
    }
    if let Some(node) = &fleet.node {
        let npath = root.at("node");
        for (i, c) in node.collectors.iter().enumerate() {
            if plan::Collector::from_name(c).is_none() {
                let known: Vec<&str> = plan::Collector::ALL.iter().map(|c| c.name()).collect();
                cx.push(
                    Diagnostic::error(
                        "unknown-collector",
                        npath.at("collectors").at(i),
                        format!("`{c}` is not a node collector"),
                    )
                    .label("unknown collector")
                    .help(format!("known collectors: {}", known.join(", "))),
                );
            }
        }
    }
}

fn check_tenants(cx: &mut Cx, cluster: &ClusterSpec, cpath: &DocPath) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut namespaces: HashMap<&str, (usize, usize)> = HashMap::new();
    for (ti, t) in cluster.tenants.iter().enumerate() {
        let tpath = cpath.at("tenants").at(ti);
        cx.dns_label(&t.name, &tpath.at("name"), "tenant name");
        if let Some(first) = names.insert(&t.name, ti) {
            cx.push(
                Diagnostic::error(
                    "duplicate-name",
                    tpath.at("name"),
                    format!("tenant `{}` is already defined at tenants[{first}]", t.name),
                )
                .label("duplicate")
                .help("tenant names must be unique within a cluster"),
            );
        }
        if t.node_selector.is_empty() {
            cx.push(
                Diagnostic::error(
                    "empty-selector",
                    tpath.at("node_selector"),
                    "a tenant needs a node selector",
                )
                .on_key()
                .label("selects every node")
                .help("e.g. `node_selector: {tenant: tenant-a}`, matching the label on the tenant's nodes"),
            );
        }
        for key in t.node_selector.keys() {
            if !is_selector_key(key) {
                cx.push(
                    Diagnostic::error(
                        "bad-selector-key",
                        tpath.at("node_selector").at(key.as_str()),
                        format!("`{key}` is not a valid Kubernetes label key"),
                    )
                    .on_key()
                    .label("invalid label key")
                    .help("use an optional DNS prefix and `/`, then alphanumerics, '-', '_' or '.'"),
                );
            }
        }
        if t.namespaces.is_empty() {
            cx.push(
                Diagnostic::error(
                    "no-namespaces",
                    tpath.at("namespaces"),
                    "a tenant must own at least one namespace",
                )
                .on_key()
                .label("empty")
                .help("list the namespaces whose series belong to this tenant, e.g. `[monitoring-tenant-a]`"),
            );
        }
        for (ni, ns) in t.namespaces.iter().enumerate() {
            let npath = tpath.at("namespaces").at(ni);
            if !cx.dns_label(ns, &npath, "namespace") {
                continue;
            }
            match namespaces.insert(ns, (ti, ni)) {
                Some((other, _)) if other != ti => cx.push(
                    Diagnostic::error(
                        "overlapping-namespaces",
                        npath,
                        format!(
                            "namespace `{ns}` is also owned by tenant `{}`",
                            cluster.tenants[other].name
                        ),
                    )
                    .label("owned twice")
                    .help("each namespace belongs to one tenant; otherwise both receive its series"),
                ),
                _ => {}
            }
        }
        for (oi, other) in cluster.tenants.iter().enumerate().take(ti) {
            if selectors_overlap(&t.node_selector, &other.node_selector) {
                cx.push(
                    Diagnostic::error(
                        "overlapping-selectors",
                        tpath.at("node_selector"),
                        format!("this node selector can match the same nodes as tenant `{}`'s (tenants[{oi}])", other.name),
                    )
                    .on_key()
                    .label("not disjoint")
                    .help("give both selectors a common key with different values, e.g. `tenant: tenant-a` and `tenant: tenant-b`"),
                );
            }
        }
    }
}

/// Two equality selectors are disjoint only when some key they share has different values.
fn selectors_overlap(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> bool {
    !a.iter().any(|(k, v)| b.get(k).is_some_and(|w| w != v))
}

fn is_selector_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    let prefix_ok = prefix.is_none_or(|p| !p.is_empty() && p.len() <= 253 && p.split('.').all(is_dns_label));
    name_ok && prefix_ok
}

/// KSM's spelling of a Kubernetes label as a Prometheus label: `label_` plus
/// the key with every character outside [a-zA-Z0-9_] turned into `_`.
pub fn ksm_label_name(key: &str) -> String {
    let mut out = String::from("label_");
    out.extend(key.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    out
}

/// The settings one cluster or tenant sees, layer by layer.
struct Unit<'a> {
    fleet: &'a Fleet,
    cluster: &'a ClusterSpec,
    tenant: Option<&'a TenantSpec>,
    unit_path: DocPath,
    /// defaults, cluster overrides, tenant overrides: the last one that sets a value wins.
    layers: Vec<(&'a Settings, DocPath)>,
}

impl<'a> Unit<'a> {
    fn pick<T: ?Sized>(
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

    fn name(&self) -> String {
        match self.tenant {
            Some(t) => format!("{}/{}", self.cluster.name, t.name),
            None => self.cluster.name.clone(),
        }
    }

    fn external_labels(&self, cx: &mut Cx) -> Vec<(String, String)> {
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

    fn duration_or(
        &self,
        cx: &mut Cx,
        value: Option<(&String, DocPath)>,
        default: &str,
    ) -> (u64, Option<DocPath>) {
        match value {
            // A bad value is reported once; the default stands in so it causes no follow-up errors.
            Some((text, path)) => match cx.duration(text, &path) {
                Some(v) => (v, Some(path)),
                None => (parse_duration(default).unwrap_or(1), None),
            },
            None => (parse_duration(default).unwrap_or(1), None),
        }
    }

    fn size_or(
        &self,
        cx: &mut Cx,
        value: Option<(&String, DocPath)>,
        default: &str,
    ) -> (u64, Option<DocPath>) {
        match value {
            Some((text, path)) => match cx.size(text, &path) {
                Some(v) => (v, Some(path)),
                None => (parse_size(default).unwrap_or(1 << 20), None),
            },
            None => (parse_size(default).unwrap_or(1 << 20), None),
        }
    }

    fn build(&self, cx: &mut Cx, role: Role, labels: &[(String, String)]) -> Option<Plan> {
        let fleet = self.fleet;
        let jobs: Vec<(usize, &JobSpec)> = fleet
            .scrape_jobs
            .iter()
            .enumerate()
            .filter(|(_, j)| {
                matches!(
                    (role, j.scope),
                    (Role::Node, Scope::Node) | (Role::Cluster, Scope::Cluster)
                )
            })
            .collect();
        let node = if role == Role::Node {
            fleet.node.as_ref()
        } else {
            None
        };
        if jobs.is_empty() && node.is_none() {
            return None;
        }
        let mut s = Interner::default();
        let agent = plan::Agent {
            cluster: s.id(&self.cluster.name),
            tenant: self.tenant.map(|t| s.id(&t.name)),
            role,
        };
        let external_labels = labels
            .iter()
            .map(|(n, v)| plan::LabelPair {
                name: s.id(n),
                value: s.id(v),
            })
            .collect();
        let receiver = self.receiver(cx, &mut s);
        let (queue, queue_paths) = self.queue(cx);
        let wal = self.wal(cx, &mut s, role, queue.max_batch_bytes);
        let (interval_ms, interval_path) = self.duration_or(
            cx,
            self.pick(|x| x.scrape_interval.as_ref(), &["scrape_interval"]),
            DEFAULT_SCRAPE_INTERVAL,
        );
        let (timeout_ms, timeout_path) = self.duration_or(
            cx,
            self.pick(|x| x.scrape_timeout.as_ref(), &["scrape_timeout"]),
            DEFAULT_SCRAPE_TIMEOUT,
        );
        if interval_ms == 0 {
            if let Some(p) = &interval_path {
                cx.push(
                    Diagnostic::error("zero-duration", p.clone(), "scrape_interval must be more than 0")
                        .label("zero"),
                );
            }
        }
        if timeout_ms > interval_ms {
            if let Some(p) = timeout_path.clone().or(interval_path.clone()) {
                cx.push(
                    Diagnostic::error("timeout-exceeds-interval", p, format!("scrape timeout {timeout_ms}ms is longer than the scrape interval {interval_ms}ms"))
                        .label("timeout > interval")
                        .help("a scrape must finish before the next one starts; lower the timeout or raise the interval"),
                );
            }
        }
        let shared_metric_relabel = self.pick(|x| x.metric_relabel.as_ref(), &["metric_relabel"]);
        let default_limits = self.limits_layered(cx);
        let node_plan = node.map(|n| {
            let npath = DocPath::root().at("node");
            let mut collectors: Vec<plan::Collector> = n
                .collectors
                .iter()
                .filter_map(|c| plan::Collector::from_name(c))
                .collect();
            collectors.sort();
            collectors.dedup();
            let interval = match &n.interval {
                Some(t) => cx.duration(t, &npath.at("interval")).unwrap_or(interval_ms),
                None => interval_ms,
            };
            let limits = match &n.limits {
                Some(l) => limits_from(cx, l, &npath.at("limits"), default_limits),
                None => default_limits,
            };
            let mut rules = relabel_rules(cx, &mut s, &n.metric_relabel, &npath.at("metric_relabel"));
            if let Some((list, p)) = shared_metric_relabel.clone() {
                rules.extend(relabel_rules(cx, &mut s, list, &p));
            }
            plan::NodeCollectors {
                collectors,
                interval_ms: interval.max(1) as u32,
                job: s.id(n.job.as_deref().unwrap_or(DEFAULT_NODE_JOB)),
                limits,
                metric_relabel: rules,
                options: Default::default(),
            }
        });
        let mut scrape_jobs = Vec::new();
        for (ji, j) in jobs {
            let jpath = DocPath::root().at("scrape_jobs").at(ji);
            scrape_jobs.push(self.job(
                cx,
                &mut s,
                j,
                &jpath,
                interval_ms,
                timeout_ms,
                default_limits,
                shared_metric_relabel.clone(),
            ));
        }
        let self_scrape = plan::SelfScrape {
            interval_ms: interval_ms.max(1) as u32,
            job: s.id(SELF_JOB),
        };
        let budget = self.budget(cx, role);
        let plan = Plan {
            strings: Vec::new(),
            agent,
            external_labels,
            receiver,
            queue,
            wal,
            node: node_plan,
            scrape_jobs,
            self_scrape,
            budget,
        };
        let mut plan = plan;
        plan.strings = s.into_strings();
        self.check_memory(cx, &plan, role, &queue_paths);
        self.check_agent_accepts_rules(cx, &plan);
        Some(plan)
    }

    fn receiver(&self, cx: &mut Cx, s: &mut Interner) -> plan::Receiver {
        let r = &self.fleet.receiver;
        let url = s.id(&r.url);
        let header = match &r.tenant_header {
            None => Some(DEFAULT_TENANT_HEADER),
            Some(h) if h.is_empty() => None,
            Some(h) => Some(h.as_str()),
        };
        let tenant_header = match (self.tenant, header) {
            (Some(t), Some(h)) => Some(plan::LabelPair {
                name: s.id(h),
                value: s.id(&t.name),
            }),
            (Some(_), None) => {
                cx.push(
                    Diagnostic::error(
                        "no-tenant-header",
                        DocPath::root().at("receiver").at("tenant_header"),
                        format!("cluster `{}` has tenants but the receiver has no tenant header", self.cluster.name),
                    )
                    .label("empty tenant header")
                    .help("Thanos Receive reads `THANOS-TENANT` (its --receive.tenant-header); Mimir/Cortex read `X-Scope-OrgID`"),
                );
                None
            }
            _ => None,
        };
        let tls = r.tls.as_ref().map(|t| tls_plan(s, t));
        let auth = match &r.auth {
            Some(AuthSpec {
                bearer_token_file: Some(f),
                ..
            }) => plan::Auth::BearerTokenFile(s.id(f)),
            Some(AuthSpec {
                basic:
                    Some(BasicAuthSpec {
                        username,
                        password_file: Some(p),
                        ..
                    }),
                ..
            }) => plan::Auth::Basic {
                username: s.id(username),
                password_file: s.id(p),
            },
            _ => plan::Auth::None,
        };
        let timeout = r
            .remote_timeout
            .as_deref()
            .and_then(|t| parse_duration(t).ok())
            .unwrap_or_else(|| parse_duration(DEFAULT_REMOTE_TIMEOUT).unwrap_or(30_000));
        let write_relabel = match self.pick(|x| x.write_relabel.as_ref(), &["write_relabel"]) {
            Some((list, p)) => relabel_rules(cx, s, list, &p),
            None => Vec::new(),
        };
        plan::Receiver {
            url,
            tenant_header,
            tls,
            auth,
            remote_timeout_ms: timeout.clamp(1, u64::from(u32::MAX)) as u32,
            write_relabel,
        }
    }

    fn queue(&self, cx: &mut Cx) -> (plan::Queue, QueuePaths) {
        let num = |key: &'static str, get: fn(&QueueSpec) -> Option<&u64>| {
            self.pick(move |x| x.queue.as_ref().and_then(get), &["queue", key])
        };
        let mut paths = QueuePaths::default();
        let int = |cx: &mut Cx,
                   v: Option<(&u64, DocPath)>,
                   default: u64,
                   min: u64,
                   max: u64,
                   what: &str,
                   slot: &mut Option<DocPath>| match v {
            Some((n, p)) => {
                *slot = Some(p.clone());
                cx.range(*n, min, max, &p, what)
                    .unwrap_or(default.clamp(min, max))
            }
            None => default,
        };
        let capacity = int(
            cx,
            num("capacity", |q| q.capacity.as_ref()),
            DEFAULT_CAPACITY,
            1,
            u64::from(u32::MAX),
            "capacity",
            &mut paths.capacity,
        );
        let min_shards = int(
            cx,
            num("min_shards", |q| q.min_shards.as_ref()),
            DEFAULT_MIN_SHARDS,
            1,
            u64::from(u16::MAX),
            "min_shards",
            &mut paths.min_shards,
        );
        let max_shards = int(
            cx,
            num("max_shards", |q| q.max_shards.as_ref()),
            DEFAULT_MAX_SHARDS,
            1,
            u64::from(u16::MAX),
            "max_shards",
            &mut paths.max_shards,
        );
        let per_send = int(
            cx,
            num("max_samples_per_send", |q| q.max_samples_per_send.as_ref()),
            DEFAULT_MAX_SAMPLES_PER_SEND,
            1,
            1_000_000,
            "max_samples_per_send",
            &mut paths.max_samples_per_send,
        );
        if min_shards > max_shards {
            let p = paths
                .min_shards
                .clone()
                .or(paths.max_shards.clone())
                .unwrap_or_else(|| self.unit_path.clone());
            cx.push(
                Diagnostic::error(
                    "min-over-max",
                    p,
                    format!("min_shards {min_shards} is more than max_shards {max_shards}"),
                )
                .label("min > max")
                .help(format!("set min_shards to at most {max_shards}")),
            );
        }
        let dur = |key: &'static str, get: fn(&QueueSpec) -> Option<&String>| {
            self.pick(move |x| x.queue.as_ref().and_then(get), &["queue", key])
        };
        let (deadline, _) = self.duration_or(
            cx,
            dur("batch_send_deadline", |q| q.batch_send_deadline.as_ref()),
            DEFAULT_BATCH_SEND_DEADLINE,
        );
        let (min_backoff, min_backoff_path) = self.duration_or(
            cx,
            dur("min_backoff", |q| q.min_backoff.as_ref()),
            DEFAULT_MIN_BACKOFF,
        );
        let (max_backoff, _) = self.duration_or(
            cx,
            dur("max_backoff", |q| q.max_backoff.as_ref()),
            DEFAULT_MAX_BACKOFF,
        );
        if min_backoff > max_backoff {
            let p = min_backoff_path.unwrap_or_else(|| self.unit_path.clone());
            cx.push(
                Diagnostic::error(
                    "min-over-max",
                    p,
                    format!("min_backoff {min_backoff}ms is more than max_backoff {max_backoff}ms"),
                )
                .label("min > max")
                .help("the backoff doubles from min_backoff up to max_backoff"),
            );
        }
        let (max_age, _) = self.duration_or(
            cx,
            dur("max_sample_age", |q| q.max_sample_age.as_ref()),
            DEFAULT_MAX_SAMPLE_AGE,
        );
        let batch_bytes = match dur("max_batch_size", |q| q.max_batch_size.as_ref()) {
            Some((text, p)) => {
                paths.max_batch_size = Some(p.clone());
                let v = cx.size(text, &p).unwrap_or(per_send * DEFAULT_SAMPLE_BYTES);
                if !(1024..=u64::from(u32::MAX)).contains(&v) {
                    cx.push(
                        Diagnostic::error(
                            "out-of-range",
                            p,
                            format!("max_batch_size is {v} bytes, outside 1Ki..4Gi"),
                        )
                        .label("out of range")
                        .help(format!(
                            "about {} B per sample fits most series: `{}`",
                            DEFAULT_SAMPLE_BYTES,
                            format_size(per_send * DEFAULT_SAMPLE_BYTES)
                        )),
                    );
                }
                v
            }
            None => per_send * DEFAULT_SAMPLE_BYTES,
        };
        let clamp32 = |v: u64| v.clamp(1, u64::from(u32::MAX)) as u32;
        (
            plan::Queue {
                capacity: clamp32(capacity),
                min_shards: min_shards.min(max_shards) as u16,
                max_shards: max_shards as u16,
                max_samples_per_send: clamp32(per_send),
                batch_send_deadline_ms: clamp32(deadline),
                min_backoff_ms: min_backoff.min(max_backoff).min(u64::from(u32::MAX)) as u32,
                max_backoff_ms: clamp32(max_backoff),
                max_batch_bytes: batch_bytes.clamp(1024, u64::from(u32::MAX)) as u32,
                max_sample_age_ms: max_age.max(1),
            },
            paths,
        )
    }

    fn wal(&self, cx: &mut Cx, s: &mut Interner, role: Role, batch_bytes: u32) -> plan::Wal {
        let (key, dir_default, max_default) = match role {
            Role::Node => ("node_wal", DEFAULT_NODE_WAL_DIR, DEFAULT_NODE_WAL_MAX),
            Role::Cluster => ("wal", DEFAULT_WAL_DIR, DEFAULT_WAL_MAX),
        };
        let get = |x: &'a Settings| -> Option<&'a WalSpec> {
            match role {
                Role::Node => x.node_wal.as_ref(),
                Role::Cluster => x.wal.as_ref(),
            }
        };
        let dir = match self.pick(|x| get(x).and_then(|w| w.dir.as_ref()), &[key, "dir"]) {
            Some((d, p)) => {
                cx.file_path(d, &p);
                d.as_str()
            }
            None => dir_default,
        };
        let (max_bytes, max_path) = self.size_or(
            cx,
            self.pick(|x| get(x).and_then(|w| w.max_size.as_ref()), &[key, "max_size"]),
            max_default,
        );
        let (segment, seg_path) = self.size_or(
            cx,
            self.pick(
                |x| get(x).and_then(|w| w.segment_size.as_ref()),
                &[key, "segment_size"],
            ),
            DEFAULT_SEGMENT,
        );
        // A segment holds at least one whole batch.
        let segment = if seg_path.is_none() {
            segment.max(u64::from(batch_bytes))
        } else {
            segment
        };
        if segment < u64::from(batch_bytes) || segment > max_bytes || segment > u64::from(u32::MAX) {
            let p = seg_path.or(max_path).unwrap_or_else(|| self.unit_path.clone());
            cx.push(
                Diagnostic::error(
                    "bad-wal-segment",
                    p,
                    format!(
                        "WAL segment size {} must hold one batch ({}) and fit in the WAL's max_size ({})",
                        format_size(segment),
                        format_size(u64::from(batch_bytes)),
                        format_size(max_bytes)
                    ),
                )
                .label("segment does not fit")
                .help("segments are the unit the WAL drops when full; keep them between the batch size and a fraction of max_size"),
            );
        }
        let fsync = match self.pick(|x| get(x).and_then(|w| w.fsync.as_ref()), &[key, "fsync"]) {
            Some((f, _)) if f == "always" => plan::Fsync::Always,
            Some((f, _)) if f == "never" => plan::Fsync::Never,
            Some((f, p)) => match parse_duration(f) {
                Ok(ms) => plan::Fsync::IntervalMs(ms.clamp(1, u64::from(u32::MAX)) as u32),
                Err(_) => {
                    cx.push(
                        Diagnostic::error("bad-fsync", p, format!("`{f}` is not an fsync policy"))
                            .label("unknown policy")
                            .help("use `always`, `never`, or an interval such as `1s`"),
                    );
                    plan::Fsync::Always
                }
            },
            None => plan::Fsync::IntervalMs(parse_duration(DEFAULT_FSYNC).unwrap_or(1000) as u32),
        };
        plan::Wal {
            dir: s.id(dir),
            max_bytes: max_bytes.max(1),
            segment_bytes: segment.clamp(1, u64::from(u32::MAX)) as u32,
            fsync,
        }
    }

    fn limits_layered(&self, cx: &mut Cx) -> plan::Limits {
        let mut limits = default_limits();
        for (s, p) in self.layers.clone() {
            if let Some(l) = &s.limits {
                limits = limits_from(cx, l, &p.at("limits"), limits);
            }
        }
        limits
    }

    #[allow(clippy::too_many_arguments)]
    fn job(
        &self,
        cx: &mut Cx,
        s: &mut Interner,
        j: &JobSpec,
        jpath: &DocPath,
        interval_ms: u64,
        timeout_ms: u64,
        default_limits: plan::Limits,
        shared_metric_relabel: Option<(&Vec<RelabelSpec>, DocPath)>,
    ) -> plan::ScrapeJob {
        let name = s.id(&j.name);
        let interval = match &j.interval {
            Some(t) => cx.duration(t, &jpath.at("interval")).unwrap_or(interval_ms),
            None => interval_ms,
        };
        let timeout = match &j.timeout {
            Some(t) => cx.duration(t, &jpath.at("timeout")).unwrap_or(timeout_ms),
            None => timeout_ms.min(interval),
        };
        if timeout > interval && (j.timeout.is_some() || j.interval.is_some()) {
            let p = if j.timeout.is_some() {
                jpath.at("timeout")
            } else {
                jpath.at("interval")
            };
            cx.push(
                Diagnostic::error("timeout-exceeds-interval", p, format!("job `{}`: timeout {timeout}ms is longer than its interval {interval}ms", j.name))
                    .label("timeout > interval")
                    .help("a scrape must finish before the next one starts; lower the timeout or raise the interval"),
            );
        }
        if interval == 0 || timeout == 0 {
            cx.push(
                Diagnostic::error(
                    "zero-duration",
                    jpath.at("interval"),
                    "job interval and timeout must be more than 0",
                )
                .on_key()
                .label("zero"),
            );
        }
        let scheme = match j.scheme {
            Some(SchemeSpec::Https) => plan::Scheme::Https,
            _ => plan::Scheme::Http,
        };
        let path = j.path.as_deref().unwrap_or("/metrics");
        if !path.starts_with('/') {
            cx.push(
                Diagnostic::error(
                    "bad-path",
                    jpath.at("path"),
                    format!("metrics path `{path}` does not start with `/`"),
                )
                .label("relative path")
                .help("e.g. `/metrics` or `/metrics/cadvisor`"),
            );
        }
        let path = s.id(path);
        if j.targets.is_empty() {
            cx.push(
                Diagnostic::error(
                    "no-targets",
                    jpath.at("targets"),
                    format!("job `{}` has no targets", j.name),
                )
                .on_key()
                .label("empty")
                .help("list `host:port` targets; `${NODE_IP}` and `${NODE_NAME}` are filled in on each node"),
            );
        }
        let targets = j
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| {
                check_target(cx, t, &jpath.at("targets").at(i), j.scope);
                s.id(t)
            })
            .collect();
        let labels = j
            .labels
            .iter()
            .filter(|(k, _)| cx.label_name(k, &jpath.at("labels").at(k.as_str()), true))
            .map(|(k, v)| plan::LabelPair {
                name: s.id(k),
                value: s.id(v),
            })
            .collect();
        if j.bearer_token.is_some() {
            cx.push(inline_secret(jpath.at("bearer_token"), "bearer_token_file"));
        }
        if let Some(f) = &j.bearer_token_file {
            cx.file_path(f, &jpath.at("bearer_token_file"));
        }
        let bearer_token_file = j.bearer_token_file.as_ref().map(|f| s.id(f));
        if let Some(tls) = &j.tls {
            check_tls(cx, tls, &jpath.at("tls"));
            if scheme == plan::Scheme::Http {
                cx.push(
                    Diagnostic::warning(
                        "tls-on-http",
                        jpath.at("tls"),
                        format!("job `{}` has TLS settings but scrapes over http", j.name),
                    )
                    .on_key()
                    .label("unused")
                    .help("set `scheme: https`"),
                );
            }
        }
        let tls = j.tls.as_ref().map(|t| tls_plan(s, t));
        let limits = match &j.limits {
            Some(l) => limits_from(cx, l, &jpath.at("limits"), default_limits),
            None => default_limits,
        };
        let mut metric_relabel = Vec::new();
        if let (Some(t), Scope::Cluster) = (self.tenant, j.scope) {
            if j.tenant_filter.unwrap_or(TenantFilter::Namespace) == TenantFilter::Namespace {
                metric_relabel.push(tenant_filter_rule(s, t));
            }
        }
        metric_relabel.extend(relabel_rules(
            cx,
            s,
            &j.metric_relabel,
            &jpath.at("metric_relabel"),
        ));
        if let Some((list, p)) = shared_metric_relabel {
            metric_relabel.extend(relabel_rules(cx, s, list, &p));
        }
        plan::ScrapeJob {
            name,
            interval_ms: interval.clamp(1, u64::from(u32::MAX)) as u32,
            timeout_ms: timeout.clamp(1, interval.clamp(1, u64::from(u32::MAX))) as u32,
            scheme,
            path,
            targets,
            labels,
            honor_labels: j.honor_labels,
            bearer_token_file,
            tls,
            limits,
            metric_relabel,
        }
    }

    fn budget(&self, cx: &mut Cx, role: Role) -> plan::Budget {
        let key = match role {
            Role::Node => "node_resources",
            Role::Cluster => "resources",
        };
        let get = move |x: &'a Settings| -> Option<&'a ResourcesSpec> {
            match role {
                Role::Node => x.node_resources.as_ref(),
                Role::Cluster => x.resources.as_ref(),
            }
        };
        let cpu = |cx: &mut Cx,
                   which: &str,
                   pick: fn(&ResourcesSpec) -> Option<&String>|
         -> (u32, Option<DocPath>) {
            match self.pick(|x| get(x).and_then(pick), &[key, which, "cpu"]) {
                Some((t, p)) => match cx.cpu(t, &p) {
                    Some(v) => (v, Some(p)),
                    None => (parse_cpu(DEFAULT_CPU).unwrap_or(200), None),
                },
                None => (parse_cpu(DEFAULT_CPU).unwrap_or(200), None),
            }
        };
        let (cpu_req, _) = cpu(cx, "requests", |r| r.requests.as_ref()?.cpu.as_ref());
        let (cpu_lim, cpu_lim_path) = cpu(cx, "limits", |r| r.limits.as_ref()?.cpu.as_ref());
        let mem = |cx: &mut Cx,
                   which: &str,
                   pick: fn(&ResourcesSpec) -> Option<&String>|
         -> (u64, Option<DocPath>) {
            match self.pick(|x| get(x).and_then(pick), &[key, which, "memory"]) {
                Some((t, p)) => match cx.size(t, &p) {
                    Some(v) => (v, Some(p)),
                    None => (parse_size(DEFAULT_MEMORY).unwrap_or(256 << 20), None),
                },
                None => (parse_size(DEFAULT_MEMORY).unwrap_or(256 << 20), None),
            }
        };
        let (mem_req, _) = mem(cx, "requests", |r| r.requests.as_ref()?.memory.as_ref());
        let (mem_lim, mem_lim_path) = mem(cx, "limits", |r| r.limits.as_ref()?.memory.as_ref());
        if cpu_req > cpu_lim {
            cx.push(
                Diagnostic::error("request-over-limit", cpu_lim_path.unwrap_or_else(|| self.unit_path.clone()), format!("CPU limit {cpu_lim}m is below the request {cpu_req}m"))
                    .label("limit < request")
                    .help("Kubernetes refuses a pod whose request exceeds its limit; raise the limit or lower the request"),
            );
        }
        if mem_req > mem_lim {
            cx.push(
                Diagnostic::error(
                    "request-over-limit",
                    mem_lim_path.unwrap_or_else(|| self.unit_path.clone()),
                    format!("memory limit {} is below the request {}", format_size(mem_lim), format_size(mem_req)),
                )
                .label("limit < request")
                .help("Kubernetes refuses a pod whose request exceeds its limit; raise the limit or lower the request"),
            );
        }
        plan::Budget {
            cpu_request_millis: cpu_req,
            cpu_limit_millis: cpu_lim,
            memory_request_bytes: mem_req,
            memory_limit_bytes: mem_lim,
        }
    }

    /// The agent compiles every rule list at start; run its own builder so
    /// a rule it would refuse is a compile error here, not a crash loop on
    /// the node. The checks above should already have caught each case.
    fn check_agent_accepts_rules(&self, cx: &mut Cx, plan: &Plan) {
        let root = DocPath::root();
        let mut lists: Vec<(&[plan::RelabelRule], DocPath, plan::Limits)> = vec![(
            &plan.receiver.write_relabel,
            self.pick(|x| x.write_relabel.as_ref(), &["write_relabel"])
                .map(|(_, p)| p)
                .unwrap_or_else(|| self.unit_path.clone()),
            default_limits(),
        )];
        if let Some(n) = &plan.node {
            lists.push((&n.metric_relabel, root.at("node"), n.limits));
        }
        for j in &plan.scrape_jobs {
            let path = self
                .fleet
                .scrape_jobs
                .iter()
                .position(|s| s.name == plan.str(j.name))
                .map(|i| root.at("scrape_jobs").at(i))
                .unwrap_or_else(|| self.unit_path.clone());
            lists.push((&j.metric_relabel, path, j.limits));
        }
        for (rules, path, limits) in lists {
            let label_bytes = usize::from(limits.label_count)
                * (usize::from(limits.label_name_bytes) + limits.label_value_bytes as usize);
            if let Err(e) = outpost_core::relabel::RelabelProgram::build(plan, rules, label_bytes) {
                cx.push(
                    Diagnostic::error("agent-refuses-rule", path, format!("the agent would refuse this plan: {e}"))
                        .on_key()
                        .label("rules the agent cannot load")
                        .help("fix the rule named above; please also report it, outpostc should have caught it earlier"),
                );
            }
        }
    }

    /// The plan's worst case must fit the memory limit; when the queue is
    /// what overflows it, say by how much and which settings would fit.
    fn check_memory(&self, cx: &mut Cx, plan: &Plan, role: Role, paths: &QueuePaths) {
        let mem = plan.worst_case_memory();
        let limit = plan.budget.memory_limit_bytes;
        let total = mem.total();
        if total <= limit {
            return;
        }
        let q = &plan.queue;
        let per_sample =
            (u64::from(q.max_batch_bytes) / u64::from(q.max_samples_per_send)).max(plan::MIN_SAMPLE_BYTES);
        let per_shard = (u64::from(q.capacity) + u64::from(q.max_samples_per_send)) * per_sample
            + plan::snappy_max_len(u64::from(q.max_batch_bytes))
            + plan::CONNECTION_BYTES;
        let shards = u64::from(q.max_shards);
        let rest = total - mem.queue - shards * plan::CONNECTION_BYTES;
        let room = limit.saturating_sub(rest);
        let fitting_shards = room / per_shard;
        let agent = format!("{}/{}.plan", self.name(), role.as_str());
        let mut message = format!(
            "worst-case memory of {agent} is {}, over its memory limit of {}: the queue alone holds {} shards x ({} + {}) samples x {} B = {}",
            format_size(total),
            format_size(limit),
            shards,
            q.capacity,
            q.max_samples_per_send,
            per_sample,
            format_size(mem.queue)
        );
        let help = if fitting_shards >= 1 {
            format!(
                "keep capacity {} and max_samples_per_send {} with max_shards <= {} (worst case {}), or raise the memory limit to at least {}",
                q.capacity,
                q.max_samples_per_send,
                fitting_shards.min(u64::from(u16::MAX)),
                format_size(rest + fitting_shards * per_shard),
                format_size(total)
            )
        } else if rest < limit {
            let per_send = u64::from(q.max_samples_per_send).min(2000);
            let cap = (room / per_sample)
                .saturating_sub(per_send + plan::snappy_max_len(per_send * per_sample) / per_sample + 1024);
            format!(
                "with max_shards 1 the queue fits with max_samples_per_send {per_send} and capacity <= {cap}; or raise the memory limit to at least {}",
                format_size(total)
            )
        } else {
            message = format!(
                "worst-case memory of {agent} is {}, over its memory limit of {} even without the queue ({} for scrape buffers)",
                format_size(total),
                format_size(limit),
                format_size(rest)
            );
            format!(
                "lower the targets' limits (body_size, samples) or raise the memory limit to at least {}",
                format_size(total)
            )
        };
        let path = paths
            .max_shards
            .clone()
            .or(paths.capacity.clone())
            .or(paths.max_samples_per_send.clone())
            .or(paths.max_batch_size.clone())
            .unwrap_or_else(|| self.unit_path.at("name"));
        cx.push(
            Diagnostic::error("memory-budget", path, message)
                .label("this queue cannot fit the memory limit")
                .help(help),
        );
    }
}

#[derive(Default)]
struct QueuePaths {
    capacity: Option<DocPath>,
    min_shards: Option<DocPath>,
    max_shards: Option<DocPath>,
    max_samples_per_send: Option<DocPath>,
    max_batch_size: Option<DocPath>,
}

pub fn default_limits() -> plan::Limits {
    plan::Limits {
        body_bytes: parse_size(DEFAULT_BODY_SIZE).unwrap_or(10 << 20) as u32,
        samples: DEFAULT_SAMPLES as u32,
        label_count: DEFAULT_LABEL_COUNT as u16,
        label_name_bytes: DEFAULT_LABEL_NAME_LENGTH as u16,
        label_value_bytes: DEFAULT_LABEL_VALUE_LENGTH as u32,
    }
}

fn limits_from(cx: &mut Cx, l: &LimitsSpec, path: &DocPath, base: plan::Limits) -> plan::Limits {
    let mut out = base;
    if let Some(b) = &l.body_size {
        if let Some(v) = cx.size(b, &path.at("body_size")) {
            if let Some(v) = cx.range(
                v,
                1024,
                u64::from(u32::MAX),
                &path.at("body_size"),
                "body_size in bytes",
            ) {
                out.body_bytes = v as u32;
            }
        }
    }
    if let Some(v) = l.samples {
        if let Some(v) = cx.range(v, 1, u64::from(u32::MAX), &path.at("samples"), "samples") {
            out.samples = v as u32;
        }
    }
    if let Some(v) = l.label_count {
        if let Some(v) = cx.range(v, 1, u64::from(u16::MAX), &path.at("label_count"), "label_count") {
            out.label_count = v as u16;
        }
    }
    if let Some(v) = l.label_name_length {
        if let Some(v) = cx.range(
            v,
            1,
            u64::from(u16::MAX),
            &path.at("label_name_length"),
            "label_name_length",
        ) {
            out.label_name_bytes = v as u16;
        }
    }
    if let Some(v) = l.label_value_length {
        if let Some(v) = cx.range(
            v,
            1,
            u64::from(u32::MAX),
            &path.at("label_value_length"),
            "label_value_length",
        ) {
            out.label_value_bytes = v as u32;
        }
    }
    out
}

fn tls_plan(s: &mut Interner, t: &TlsSpec) -> plan::Tls {
    plan::Tls {
        ca_file: t.ca_file.as_ref().map(|v| s.id(v)),
        cert_file: t.cert_file.as_ref().map(|v| s.id(v)),
        key_file: t.key_file.as_ref().map(|v| s.id(v)),
        server_name: t.server_name.as_ref().map(|v| s.id(v)),
        insecure_skip_verify: t.insecure_skip_verify,
    }
}

fn check_target(cx: &mut Cx, target: &str, path: &DocPath, scope: Scope) {
    let mut rest = target.to_string();
    for var in NODE_VARS {
        if rest.contains(var) {
            if scope == Scope::Cluster {
                cx.push(
                    Diagnostic::error("node-var-in-cluster-job", path.clone(), format!("`{var}` has no value in a cluster-scope job"))
                        .label("no node here")
                        .help("the cluster-role agent does not run on a chosen node; use `scope: node` or a Service name"),
                );
            }
            rest = rest.replace(var, "node");
        }
    }
    let ok = match rest.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && !host.contains(['/', ' ', '$', '{', '}'])
                && port.parse::<u16>().is_ok_and(|p| p > 0)
        }
        None => false,
    };
    if !ok {
        cx.push(
            Diagnostic::error("bad-target", path.clone(), format!("`{target}` is not a `host:port` target"))
                .label("not host:port")
                .help("write targets as `host:port` without scheme or path (those are the job's `scheme` and `path`); only ${NODE_NAME} and ${NODE_IP} are substituted"),
        );
    }
}

/// The rule that keeps a tenant's own series out of a shared cluster-wide
/// source (kube-state-metrics): series of its namespaces, and the node-label
/// series of its nodes. Everything else is dropped. One `keep` rule on
/// `namespace;__name__;label_<selector key>...`.
pub fn tenant_filter_regex(tenant: &TenantSpec) -> (Vec<String>, String) {
    let mut sources = vec!["namespace".to_string(), "__name__".to_string()];
    sources.extend(tenant.node_selector.keys().map(|k| ksm_label_name(k)));
    let namespaces: Vec<String> = tenant
        .namespaces
        .iter()
        .map(|n| regex_syntax::escape(n))
        .collect();
    let values: Vec<String> = tenant
        .node_selector
        .values()
        .map(|v| regex_syntax::escape(v))
        .collect();
    let regex = format!(
        "(?:{});.*|;kube_node_labels;{}",
        namespaces.join("|"),
        values.join(";")
    );
    (sources, regex)
}

fn tenant_filter_rule(s: &mut Interner, tenant: &TenantSpec) -> plan::RelabelRule {
    let (sources, regex) = tenant_filter_regex(tenant);
    plan::RelabelRule {
        action: plan::RelabelAction::Keep,
        source_labels: sources.iter().map(|l| s.id(l)).collect(),
        separator: s.id(";"),
        regex: s.id(&regex),
        modulus: 0,
        target_label: s.id(""),
        replacement: s.id("$1"),
    }
}

/// Checks a pattern with the agent's own rule builder, so the compiler and
/// the agent agree on RE2 syntax, its translation, and the anchoring
/// (`^(?s:RE)$`, as Prometheus).
pub fn check_regex(pattern: &str) -> Result<(), String> {
    let probe = probe_plan(vec![
        pattern.to_string(),
        ";".to_string(),
        String::new(),
        "$1".to_string(),
    ]);
    let rule = plan::RelabelRule {
        action: plan::RelabelAction::Keep,
        source_labels: Vec::new(),
        separator: StrId(1),
        regex: StrId(0),
        modulus: 0,
        target_label: StrId(2),
        replacement: StrId(3),
    };
    match outpost_core::relabel::RelabelProgram::build(&probe, std::slice::from_ref(&rule), 1024) {
        Ok(_) => Ok(()),
        // The builder's reason is terse ("error parsing pattern 0"); the
        // parser says what is wrong with the pattern itself.
        Err(outpost_core::relabel::RelabelBuildError::BadRegex { reason, .. }) => {
            match regex_syntax::ast::parse::Parser::new().parse(pattern) {
                Err(e) => Err(e.kind().to_string()),
                Ok(_) => match regex_syntax::Parser::new().parse(pattern) {
                    Err(regex_syntax::Error::Translate(e)) => Err(e.kind().to_string()),
                    _ => Err(reason),
                },
            }
        }
        Err(e) => Err(e.to_string()),
    }
}

/// A plan that only carries `strings`: enough for the rule builder, which
/// reads nothing else.
fn probe_plan(strings: Vec<String>) -> Plan {
    let limits = default_limits();
    Plan {
        strings,
        agent: plan::Agent {
            cluster: StrId(0),
            tenant: None,
            role: Role::Cluster,
        },
        external_labels: Vec::new(),
        receiver: plan::Receiver {
            url: StrId(0),
            tenant_header: None,
            tls: None,
            auth: plan::Auth::None,
            remote_timeout_ms: 1,
            write_relabel: Vec::new(),
        },
        queue: plan::Queue {
            capacity: 1,
            min_shards: 1,
            max_shards: 1,
            max_samples_per_send: 1,
            batch_send_deadline_ms: 1,
            min_backoff_ms: 1,
            max_backoff_ms: 1,
            max_batch_bytes: 1024,
            max_sample_age_ms: 1,
        },
        wal: plan::Wal {
            dir: StrId(0),
            max_bytes: 1024,
            segment_bytes: 1024,
            fsync: plan::Fsync::Never,
        },
        node: None,
        scrape_jobs: Vec::new(),
        self_scrape: plan::SelfScrape {
            interval_ms: 1,
            job: StrId(0),
        },
        budget: plan::Budget {
            cpu_request_millis: 0,
            cpu_limit_millis: 0,
            memory_request_bytes: 0,
            memory_limit_bytes: limits.body_bytes.into(),
        },
    }
}

fn relabel_rules(
    cx: &mut Cx,
    s: &mut Interner,
    rules: &[RelabelSpec],
    path: &DocPath,
) -> Vec<plan::RelabelRule> {
    rules
        .iter()
        .enumerate()
        .filter_map(|(i, r)| relabel_rule(cx, s, r, &path.at(i)))
        .collect()
}

fn relabel_rule(cx: &mut Cx, s: &mut Interner, r: &RelabelSpec, path: &DocPath) -> Option<plan::RelabelRule> {
    use plan::RelabelAction as A;
    let action = match r.action.as_deref() {
        None => A::Replace,
        Some(name) => match A::from_name(name) {
            Some(a) => a,
            None => {
                let known: Vec<&str> = A::ALL.iter().map(|a| a.name()).collect();
                cx.push(
                    Diagnostic::error(
                        "unknown-action",
                        path.at("action"),
                        format!("`{name}` is not a relabel action"),
                    )
                    .label("unknown action")
                    .help(format!("Prometheus's actions: {}", known.join(", "))),
                );
                return None;
            }
        },
    };
    let mut ok = true;
    for (i, l) in r.source_labels.iter().enumerate() {
        ok &= cx.label_name(l, &path.at("source_labels").at(i), false);
    }
    if let Some(re) = &r.regex {
        if let Err(e) = check_regex(re) {
            ok = false;
            cx.push(
                Diagnostic::error("bad-regex", path.at("regex"), format!("regex does not compile: {e}"))
                    .label("invalid regex")
                    .help("RE2 syntax, as in Prometheus; the pattern is anchored on both ends (`^(?s:...)$`) for you"),
            );
        }
    }
    let needs_target = matches!(
        action,
        A::Replace | A::HashMod | A::Lowercase | A::Uppercase | A::KeepEqual | A::DropEqual
    );
    let target_ok = |t: &str| is_label_name(t) || (action == A::Replace && t.contains('$'));
    match &r.target_label {
        None if needs_target => {
            ok = false;
            cx.push(
                Diagnostic::error(
                    "missing-key",
                    path.clone(),
                    format!("relabel action `{}` needs `target_label`", action.name()),
                )
                .on_key()
                .label("no target_label")
                .help("name the label the rule writes, e.g. `target_label: instance`"),
            );
        }
        Some(t) if !target_ok(t) => {
            ok = false;
            cx.label_name(t, &path.at("target_label"), false);
        }
        _ => {}
    }
    let mut extra = |key: &str, present: bool| {
        if present {
            cx.push(
                Diagnostic::error(
                    "extra-relabel-field",
                    path.at(key),
                    format!("`{key}` has no effect with action `{}`", action.name()),
                )
                .on_key()
                .label("not used by this action")
                .help(match action {
                    A::LabelDrop | A::LabelKeep => {
                        "labeldrop and labelkeep take only `regex` (matched against label names)"
                    }
                    A::KeepEqual | A::DropEqual => {
                        "keepequal and dropequal take only `source_labels` and `target_label`"
                    }
                    _ => "remove it",
                }),
            );
            false
        } else {
            true
        }
    };
    match action {
        A::LabelDrop | A::LabelKeep => {
            ok &= extra("source_labels", !r.source_labels.is_empty());
            ok &= extra("target_label", r.target_label.is_some());
            ok &= extra("replacement", r.replacement.is_some());
        }
        A::KeepEqual | A::DropEqual => {
            ok &= extra("regex", r.regex.is_some());
            ok &= extra("replacement", r.replacement.is_some());
        }
        _ => {}
    }
    if !matches!(action, A::HashMod) {
        ok &= extra("modulus", r.modulus.is_some());
    }
    if action == A::HashMod && r.modulus.unwrap_or(0) == 0 {
        ok = false;
        cx.push(
            Diagnostic::error(
                "missing-modulus",
                if r.modulus.is_some() {
                    path.at("modulus")
                } else {
                    path.clone()
                },
                "hashmod needs a `modulus` greater than 0",
            )
            .on_key()
            .label("no modulus")
            .help("e.g. `modulus: 4` to spread series over 4 buckets"),
        );
    }
    if matches!(
        action,
        A::Keep | A::Drop | A::Replace | A::HashMod | A::Lowercase | A::Uppercase
    ) && r.source_labels.is_empty()
        && action != A::Replace
    {
        ok = false;
        cx.push(
            Diagnostic::error(
                "missing-key",
                path.clone(),
                format!("relabel action `{}` needs `source_labels`", action.name()),
            )
            .on_key()
            .label("no source_labels")
            .help("e.g. `source_labels: [__name__]`"),
        );
    }
    if !ok {
        return None;
    }
    Some(plan::RelabelRule {
        action,
        source_labels: r.source_labels.iter().map(|l| s.id(l)).collect(),
        separator: s.id(r.separator.as_deref().unwrap_or(";")),
        regex: s.id(r.regex.as_deref().unwrap_or("(.*)")),
        modulus: r.modulus.unwrap_or(0),
        target_label: s.id(r.target_label.as_deref().unwrap_or("")),
        replacement: s.id(r.replacement.as_deref().unwrap_or("$1")),
    })
}

/// Strings numbered in first-use order; the builder walks the spec in a
/// fixed order, so the table is the same on every run.
#[derive(Default)]
struct Interner {
    ids: HashMap<String, u32>,
    strings: Vec<String>,
}

impl Interner {
    fn id(&mut self, s: &str) -> StrId {
        if let Some(id) = self.ids.get(s) {
            return StrId(*id);
        }
        let id = self.strings.len() as u32;
        self.strings.push(s.to_string());
        self.ids.insert(s.to_string(), id);
        StrId(id)
    }

    fn into_strings(self) -> Vec<String> {
        self.strings
    }
}

/// Counts errors and warnings.
pub fn counts(diags: &[Diagnostic]) -> (usize, usize) {
    let errors = diags.iter().filter(|d| d.severity == Severity::Error).count();
    (errors, diags.len() - errors)
}
