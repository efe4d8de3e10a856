//! outpostc as a library: load a fleet spec, check it, build one plan per
//! agent, and render what is wrong with it; verify a running deployment
//! against it (`verify`).
//!
//! ```no_run
//! let analysis = outpost_compiler::load_spec(std::path::Path::new("examples/fleet.yaml")).unwrap();
//! assert!(!analysis.has_errors());
//! for agent in &analysis.plans {
//!     let bytes = outpost_core::plan::encode(&agent.plan).unwrap();
//!     println!("{}: {} bytes", agent.rel_path().display(), bytes.len());
//! }
//! ```

pub mod budget;
pub mod compile;
pub mod diag;
pub mod explain;
pub mod import;
pub mod manifests;
pub mod spec;
pub mod tree;
pub mod units;
pub mod verify;

pub use compile::{build_plans, AgentPlan};
pub use diag::{Diagnostic, Severity, SourceFile, SpecFile};
pub use spec::Fleet;

use serde_saphyr::Spanned;
use spec::FleetPart;
use std::path::Path;
use tree::{DocPath, Node, Pos, Seg, Tree};

/// Everything known about one spec after checking it.
#[derive(Debug)]
pub struct Analysis {
    /// The spec's files: one, or each YAML file of a spec directory.
    pub files: Vec<SpecFile>,
    /// The merged spec, when every file fits the spec's shape.
    pub fleet: Option<Fleet>,
    pub plans: Vec<AgentPlan>,
    /// In file order, then document order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Analysis {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    pub fn has_warnings(&self) -> bool {
        self.diagnostics.iter().any(|d| d.severity == Severity::Warning)
    }

    /// Name of the spec: the file, or the directory's files joined.
    pub fn name(&self) -> String {
        let names: Vec<&str> = self.files.iter().map(|f| f.source.name.as_str()).collect();
        names.join(", ")
    }

    /// Graphical, colourless, at a fixed width: stable across terminals.
    pub fn render_text(&self, width: usize) -> String {
        diag::render_text(&self.diagnostics, &self.files, width)
    }

    /// How many diagnostics are errors, and how many warnings.
    pub fn counts(&self) -> (usize, usize) {
        let errors = self.diagnostics.iter().filter(|d| d.is_error()).count();
        (errors, self.diagnostics.len() - errors)
    }

    pub fn render_json(&self) -> serde_json::Value {
        let (errors, warnings) = self.counts();
        serde_json::json!({
            "diagnostics": diag::to_json(&self.diagnostics, &self.files),
            "errors": errors,
            "warnings": warnings,
        })
    }
}

/// Reads and checks the spec at `path`: a YAML file, or a directory whose
/// `*.yaml` / `*.yml` files together form the spec. Only I/O fails here;
/// problems in the spec are in [`Analysis::diagnostics`].
pub fn load_spec(path: &Path) -> std::io::Result<Analysis> {
    if !path.is_dir() {
        let text = std::fs::read_to_string(path)?;
        return Ok(analyze(&path.display().to_string(), &text));
    }
    let mut files: Vec<_> = std::fs::read_dir(path)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"));
    files.sort();
    if files.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} holds no .yaml or .yml files", path.display()),
        ));
    }
    let sources = files
        .iter()
        .map(|p| {
            Ok(SourceFile {
                name: p.display().to_string(),
                text: std::fs::read_to_string(p)?,
            })
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    Ok(analyze_files(sources))
}

fn parse_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    options
}

/// Checks one spec file's text, named `name` in diagnostics. Never panics.
pub fn analyze(name: &str, text: &str) -> Analysis {
    let source = SourceFile {
        name: name.to_string(),
        text: text.to_string(),
    };
    let mut analysis = Analysis {
        files: Vec::new(),
        fleet: None,
        plans: Vec::new(),
        diagnostics: Vec::new(),
    };
    let tree = parse_tree(&source, 0, &mut analysis.diagnostics);
    let parsed = tree.is_some();
    analysis.files.push(SpecFile { source, tree });
    if !parsed {
        return analysis;
    }
    match serde_saphyr::from_str_with_options::<Fleet>(text, parse_options()) {
        Ok(fleet) => {
            let (plans, diags) = build_plans(&fleet);
            analysis.plans = plans;
            analysis.diagnostics = diags;
            analysis.fleet = Some(fleet);
        }
        Err(e) => analysis
            .diagnostics
            .push(parse_error("spec-shape", &e, "does not fit the spec", 0)),
    }
    sort_diagnostics(&mut analysis);
    analysis
}

/// Checks a spec split over several files. Never panics.
pub fn analyze_files(sources: Vec<SourceFile>) -> Analysis {
    let mut diagnostics = Vec::new();
    let mut files = Vec::new();
    let mut parts = Vec::new();
    for (i, source) in sources.into_iter().enumerate() {
        let tree = parse_tree(&source, i, &mut diagnostics);
        if tree.is_some() {
            match serde_saphyr::from_str_with_options::<FleetPart>(&source.text, parse_options()) {
                Ok(part) => parts.push((i, part)),
                Err(e) => diagnostics.push(parse_error("spec-shape", &e, "does not fit the spec", i)),
            }
        }
        files.push(SpecFile { source, tree });
    }
    let mut analysis = Analysis {
        files,
        fleet: None,
        plans: Vec::new(),
        diagnostics,
    };
    if analysis.has_errors() {
        return analysis;
    }
    let mut origins = Origins::default();
    let mut receiver = None;
    let mut image = None;
    let mut defaults = None;
    let mut node = None;
    let mut fleet_jobs = Vec::new();
    let mut fleet_clusters = Vec::new();
    for (i, part) in parts {
        let single = |key: &str, present: bool, slot: &mut Option<usize>, diags: &mut Vec<Diagnostic>| {
            if !present {
                return true;
            }
            if let Some(first) = *slot {
                let mut d = Diagnostic::error(
                    "duplicate-section",
                    DocPath::root().at(key),
                    format!("`{key}` is also defined in file {}", first + 1),
                )
                .on_key()
                .label("second definition")
                .help(format!("keep `{key}` in one file of the spec directory"));
                d.file = i;
                diags.push(d);
                return false;
            }
            *slot = Some(i);
            true
        };
        let diags = &mut analysis.diagnostics;
        if single("receiver", part.receiver.is_some(), &mut origins.receiver, diags) {
            receiver = receiver.or(part.receiver);
        }
        if single("image", part.image.is_some(), &mut origins.image, diags) {
            image = image.or(part.image);
        }
        if single("defaults", part.defaults.is_some(), &mut origins.defaults, diags) {
            defaults = defaults.or(part.defaults);
        }
        if single("node", part.node.is_some(), &mut origins.node, diags) {
            node = node.or(part.node);
        }
        origins.jobs.extend((0..part.scrape_jobs.len()).map(|j| (i, j)));
        fleet_jobs.extend(part.scrape_jobs);
        origins.clusters.extend((0..part.clusters.len()).map(|c| (i, c)));
        fleet_clusters.extend(part.clusters);
    }
    let Some(receiver) = receiver else {
        analysis.diagnostics.push(
            Diagnostic::error(
                "missing-key",
                DocPath::root(),
                "no file of the spec defines `receiver`",
            )
            .label("no receiver")
            .help("add a `receiver:` section with the remote-write `url` to one file"),
        );
        return analysis;
    };
    let fleet = Fleet {
        receiver,
        image,
        defaults: defaults.unwrap_or_default(),
        node,
        scrape_jobs: fleet_jobs,
        clusters: fleet_clusters,
    };
    let (plans, diags) = build_plans(&fleet);
    analysis
        .diagnostics
        .extend(diags.into_iter().map(|d| origins.remap(d)));
    analysis.plans = plans;
    analysis.fleet = Some(fleet);
    sort_diagnostics(&mut analysis);
    analysis
}

/// Where each part of a merged spec came from.
#[derive(Default)]
struct Origins {
    receiver: Option<usize>,
    image: Option<usize>,
    defaults: Option<usize>,
    node: Option<usize>,
    /// Merged index -> (file, index in that file).
    jobs: Vec<(usize, usize)>,
    clusters: Vec<(usize, usize)>,
}

impl Origins {
    fn remap(&self, mut d: Diagnostic) -> Diagnostic {
        let segs = &mut d.path.0;
        let file = match (segs.first(), segs.get(1)) {
            (Some(Seg::Key(k)), Some(Seg::Index(i))) if k == "clusters" || k == "scrape_jobs" => {
                let list = if k == "clusters" {
                    &self.clusters
                } else {
                    &self.jobs
                };
                list.get(*i).map(|&(file, local)| {
                    segs[1] = Seg::Index(local);
                    file
                })
            }
            (Some(Seg::Key(k)), _) if k == "receiver" => self.receiver,
            (Some(Seg::Key(k)), _) if k == "image" => self.image,
            (Some(Seg::Key(k)), _) if k == "defaults" => self.defaults,
            (Some(Seg::Key(k)), _) if k == "node" => self.node,
            _ => None,
        };
        d.file = file.unwrap_or(0);
        d
    }
}

pub(crate) fn parse_tree(source: &SourceFile, file: usize, diags: &mut Vec<Diagnostic>) -> Option<Tree> {
    match serde_saphyr::from_str_with_options::<Spanned<Node>>(&source.text, parse_options()) {
        Ok(root) => Some(Tree { root }),
        Err(e) => {
            diags.push(parse_error("yaml-syntax", &e, "not valid YAML", file));
            None
        }
    }
}

/// File order, then document order: reads best and keeps output stable.
fn sort_diagnostics(analysis: &mut Analysis) {
    let files = &analysis.files;
    analysis
        .diagnostics
        .sort_by_key(|d| (d.file, d.resolve(files).map(|p| (p.line, p.column))));
}

/// A syntax or type error from the parser, with its place and a hint.
fn parse_error(code: &'static str, e: &serde_saphyr::Error, label: &str, file: usize) -> Diagnostic {
    let text = e.to_string();
    let message = text.lines().next().unwrap_or("").trim().to_string();
    let message = plain_words(&strip_location_suffix(&message));
    let help = if message.contains("unknown field") {
        "check the spelling against docs/spec-reference.md; the expected keys are listed above"
    } else if message.contains("missing field") {
        "add the key; docs/spec-reference.md lists the required keys of each section"
    } else if code == "yaml-syntax" {
        "check the indentation and quoting around this place"
    } else {
        "docs/spec-reference.md gives the type of every key"
    };
    let mut d = Diagnostic::error(code, DocPath::root(), message)
        .label(label)
        .help(help);
    d.pos = e.location().and_then(Pos::from_location);
    d.file = file;
    d
}

/// The parser's terse type names, in the spec's words.
fn plain_words(message: &str) -> String {
    match message {
        "invalid u64" | "invalid u32" | "invalid u16" => "expected a whole number (0 or more)".to_string(),
        "expected mapping start" => "expected a mapping (`key: value` lines) here".to_string(),
        "expected sequence start" => "expected a list (`- item` lines or `[a, b]`) here".to_string(),
        "unexpected end of input" => {
            "the spec is empty or ends early; it needs at least `receiver` and `clusters`".to_string()
        }
        other => other.to_string(),
    }
}

/// The parser appends "at line X column Y"; the renderer shows the place already.
fn strip_location_suffix(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}
