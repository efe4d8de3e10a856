//! `outpostc import`: a fleet spec from a prometheus.yml or from
//! kube-prometheus-stack values. Every key is either translated or
//! reported with its place and the reason; inline secrets become file
//! paths with a warning; the spec written is checked like any other.
//!
//! - `read`: the document key by key, reporting what is left unread;
//! - `keys`: prometheus.yml's and the operator's spellings of one setting;
//! - `prometheus`, `kube_stack`: the two input shapes;
//! - `scrape`, `remote_write`, `relabel`, `auth`: the sections they share.

mod auth;
mod keys;
mod kube_stack;
mod prometheus;
mod read;
mod relabel;
mod remote_write;
mod scrape;

pub use auth::SECRETS_DIR;

use crate::compile::defaults::{default_bytes, DEFAULT_MEMORY};
use crate::diag::{self, Diagnostic, SourceFile, SpecFile};
use crate::spec::{ClusterSpec, Fleet, JobSpec, Quantities, ResourcesSpec, Settings};
use crate::tree::DocPath;
use crate::units::format_size;
use read::{Findings, MapView};
use remote_write::RemoteWrite;
use std::path::Path;

/// Granularity of a memory limit import sets.
const MEMORY_STEP: u64 = 64 << 20;

/// The `role` label Prometheus configs without one get: outpost always sets it.
pub const DEFAULT_ROLE: &str = "edge";

/// What the spec cannot take from the config and the operator gives on the command line.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The cluster's name, when `external_labels` has no `cluster`.
    pub cluster: Option<String>,
    /// The cluster's role, when `external_labels` has no `role`.
    pub role: Option<String>,
}

/// What the input says, section by section, before it becomes a spec.
#[derive(Default)]
struct Draft {
    remote_write: Option<RemoteWrite>,
    defaults: Settings,
    jobs: Vec<JobSpec>,
    /// `cluster`, `role` and `location` external labels, with their places.
    cluster: Option<String>,
    role: Option<String>,
    location: Option<String>,
}

impl Draft {
    /// External labels: the ones the spec writes itself go to the cluster,
    /// the rest to `defaults.external_labels`.
    fn external_labels(&mut self, pairs: Vec<(String, String, DocPath)>, f: &mut Findings) {
        for (name, value, path) in pairs {
            match name.as_str() {
                "cluster" => self.cluster = Some(value),
                "role" => self.role = Some(value),
                "location" => self.location = Some(value),
                "tenant" => f.not_imported(
                    path,
                    "a tenant is a spec tenant (`clusters[].tenants`, with its node_selector and namespaces), which sets this label and the tenant header",
                ),
                _ => {
                    self.defaults.external_labels.insert(name, value);
                }
            }
        }
    }
}

/// The imported spec and what was said about it.
#[derive(Debug)]
pub struct Imported {
    /// The input, then (when one was written) the spec, as its own file.
    pub files: Vec<SpecFile>,
    /// The input's findings, then `outpostc check`'s on the spec.
    pub diagnostics: Vec<Diagnostic>,
    pub fleet: Option<Fleet>,
    /// The spec as YAML, when the input gave enough for one.
    pub yaml: Option<String>,
}

impl Imported {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    pub fn counts(&self) -> (usize, usize) {
        let errors = self.diagnostics.iter().filter(|d| d.is_error()).count();
        (errors, self.diagnostics.len() - errors)
    }

    pub fn render_text(&self, width: usize) -> String {
        diag::render_text(&self.diagnostics, &self.files, width)
    }

    pub fn render_json(&self) -> serde_json::Value {
        let (errors, warnings) = self.counts();
        serde_json::json!({
            "diagnostics": diag::to_json(&self.diagnostics, &self.files),
            "errors": errors,
            "warnings": warnings,
            "spec": self.yaml,
        })
    }
}

/// Reads and imports the config at `path`; file_sd files are found relative to it.
pub fn import_file(path: &Path, o: &ImportOptions) -> std::io::Result<Imported> {
    let text = std::fs::read_to_string(path)?;
    let absolute = std::path::absolute(path)?;
    let base = absolute.parent().unwrap_or(Path::new("/"));
    Ok(import(&path.display().to_string(), &text, base, o))
}

/// Imports one config's text, named `name` in diagnostics. Never panics.
pub fn import(name: &str, text: &str, base_dir: &Path, o: &ImportOptions) -> Imported {
    let source = SourceFile {
        name: name.to_string(),
        text: text.to_string(),
    };
    let mut f = Findings {
        base_dir: base_dir.to_path_buf(),
        ..Findings::default()
    };
    let tree = crate::parse_tree(&source, 0, &mut f.diags);
    let mut imported = Imported {
        files: vec![SpecFile {
            source,
            tree: tree.clone(),
        }],
        diagnostics: Vec::new(),
        fleet: None,
        yaml: None,
    };
    let Some(tree) = tree else {
        imported.diagnostics = f.diags;
        return imported;
    };
    let Some(root) = MapView::of(&tree.root, DocPath::root(), &mut f) else {
        f.error("wrong-type", DocPath::root(), "the config is empty");
        imported.diagnostics = f.diags;
        return imported;
    };
    let draft = if kube_stack::is_values(&root) {
        kube_stack::values(root, base_dir, &mut f)
    } else {
        prometheus::config(root, base_dir, &mut f)
    };
    let fleet = assemble(draft, o, &mut f).map(|fleet| fit_memory(fleet, &mut f));
    imported.diagnostics = f.diags;
    let Some(fleet) = fleet else {
        sort(&mut imported);
        return imported;
    };
    let yaml = match serde_saphyr::to_string(&fleet) {
        Ok(body) => format!("# Imported by `outpostc import` from {name}.\n{body}"),
        Err(e) => {
            imported.diagnostics.push(Diagnostic::error(
                "import-output",
                DocPath::root(),
                format!("the spec could not be written as YAML: {e}"),
            ));
            return imported;
        }
    };
    // The spec must pass `check` as written; its findings point into it.
    let checked = crate::analyze("imported spec", &yaml);
    let mut spec_file = checked.files.into_iter().next();
    if let Some(file) = spec_file.as_mut() {
        file.source.name = format!("{name} (imported spec)");
    }
    imported.files.extend(spec_file);
    sort(&mut imported);
    imported
        .diagnostics
        .extend(checked.diagnostics.into_iter().map(|mut d| {
            d.file = 1;
            d
        }));
    imported.fleet = Some(fleet);
    imported.yaml = Some(yaml);
    imported
}

/// The spec from the draft, or `None` (with an error) when it lacks what a spec needs.
fn assemble(draft: Draft, o: &ImportOptions, f: &mut Findings) -> Option<Fleet> {
    let Some(rw) = draft.remote_write else {
        f.error(
            "no-receiver",
            DocPath::root(),
            "no remote_write with a `url`: the spec needs the receiver's URL",
        );
        return None;
    };
    let Some(cluster) = draft.cluster.or_else(|| o.cluster.clone()) else {
        f.push(
            Diagnostic::error(
                "no-cluster-name",
                DocPath::root(),
                "no `cluster` external label to name the cluster",
            )
            .help("pass --cluster NAME, or add `cluster` to the external labels"),
        );
        return None;
    };
    let role = match draft.role.or_else(|| o.role.clone()) {
        Some(r) => r,
        None => {
            f.push(
                Diagnostic::warning(
                    "role-label-added",
                    DocPath::root(),
                    format!("every series gets the external label role=\"{DEFAULT_ROLE}\", which the config does not set"),
                )
                .help("outpost always labels the cluster's role; pass --role to choose it"),
            );
            DEFAULT_ROLE.to_string()
        }
    };
    if let Some((tenant, path)) = &rw.tenant {
        f.push(
            Diagnostic::warning(
                "tenant-not-imported",
                path.clone(),
                format!("the tenant `{tenant}` is not imported: the agents write without a tenant header until the spec gives the cluster a tenant"),
            )
            .on_key()
            .label("tenant header")
            .help("add `clusters[0].tenants` with the tenant's name, node_selector and namespaces"),
        );
    }
    let mut defaults = draft.defaults;
    defaults.queue = rw.queue;
    if !rw.write_relabel.is_empty() {
        defaults.write_relabel = Some(rw.write_relabel);
    }
    Some(Fleet {
        receiver: rw.receiver,
        // The outpost image is chosen when manifests are made (`--image`), not read from Prometheus.
        image: None,
        defaults,
        node: None,
        scrape_jobs: draft.jobs,
        clusters: vec![ClusterSpec {
            name: cluster,
            role,
            location: draft.location,
            overrides: Settings::default(),
            tenants: Vec::new(),
        }],
    })
}

/// Prometheus configs give the agent no memory limit; outpost needs one
/// its worst case fits. When the input gave none and the default is too
/// small, the limit becomes the plans' worst case, rounded up to 64Mi.
fn fit_memory(mut fleet: Fleet, f: &mut Findings) -> Fleet {
    let given = fleet
        .defaults
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.memory.as_ref())
        .is_some();
    if given {
        return fleet;
    }
    let (plans, _) = crate::build_plans(&fleet);
    let worst = plans
        .iter()
        .map(|p| p.plan.worst_case_memory().total())
        .max()
        .unwrap_or(0);
    if worst <= default_bytes(DEFAULT_MEMORY) {
        return fleet;
    }
    let step = MEMORY_STEP;
    let limit = format_size(worst.div_ceil(step) * step);
    f.push(
        Diagnostic::warning(
            "memory-limit-sized",
            DocPath::root(),
            format!(
                "the agent's memory limit is set to {limit}: its worst case with these jobs' limits is {} (the default is {DEFAULT_MEMORY})",
                format_size(worst)
            ),
        )
        .help("lower the jobs' `limits` (body_size, samples) for a smaller agent; `outpostc budget` shows the breakdown"),
    );
    let resources = fleet
        .defaults
        .resources
        .get_or_insert_with(ResourcesSpec::default);
    resources.limits.get_or_insert_with(Quantities::default).memory = Some(limit);
    fleet
}

/// Document order, as `check` reports.
fn sort(imported: &mut Imported) {
    let files = &imported.files;
    imported
        .diagnostics
        .sort_by_key(|d| (d.file, d.resolve(files).map(|p| (p.line, p.column))));
}
