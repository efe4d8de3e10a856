//! Diagnostics: collected with a document path, rendered with the place,
//! the offending line, a caret and a fix.

use crate::tree::{DocPath, Pos, Tree};
use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};
use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable short name, e.g. `bad-duration`, for CI filters and docs.
    pub code: &'static str,
    pub message: String,
    /// Short text under the caret.
    pub label: String,
    pub help: Option<String>,
    pub path: DocPath,
    /// Point at the key rather than its value.
    pub on_key: bool,
    /// Set when the parser already knows the place (syntax and type errors).
    pub pos: Option<Pos>,
    /// Index of the spec file (in [`crate::Analysis::files`]) the path refers to.
    pub file: usize,
}

impl Diagnostic {
    pub fn error(code: &'static str, path: DocPath, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            label: "here".to_string(),
            help: None,
            path,
            on_key: false,
            pos: None,
            file: 0,
        }
    }

    pub fn warning(code: &'static str, path: DocPath, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, path, message)
        }
    }

    pub fn label(mut self, label: impl Into<String>) -> Diagnostic {
        self.label = label.into();
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn on_key(mut self) -> Diagnostic {
        self.on_key = true;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The place in its file, if the file parsed far enough to know it.
    pub fn resolve(&self, files: &[SpecFile]) -> Option<Pos> {
        let tree = files.get(self.file).and_then(|f| f.tree.as_ref());
        self.pos
            .or_else(|| tree.and_then(|t| t.locate(&self.path, self.on_key)))
    }
}

/// One spec file and, when it is valid YAML, its node tree.
#[derive(Debug, Clone)]
pub struct SpecFile {
    pub source: SourceFile,
    pub tree: Option<Tree>,
}

/// The source a set of diagnostics refers to.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
}

/// miette view of one diagnostic; owns what it shows.
#[derive(Debug)]
struct Report {
    diag: Diagnostic,
    source: NamedSource<String>,
    span: Option<SourceSpan>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl std::error::Error for Report {}

impl miette::Diagnostic for Report {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(format!("outpostc::{}", self.diag.code)))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diag.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.diag
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.span.map(|_| &self.source as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.span?;
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            Some(self.diag.label.clone()),
            span,
        ))))
    }
}

/// Renders without colour at a fixed width, so output is the same on every
/// terminal and in snapshots.
pub fn render_text(diags: &[Diagnostic], files: &[SpecFile], width: usize) -> String {
    let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        .with_width(width)
        .with_links(false)
        .with_context_lines(1);
    let mut out = String::new();
    for diag in diags {
        let Some(source) = files.get(diag.file).map(|f| &f.source) else {
            continue;
        };
        let pos = diag.resolve(files);
        let span = pos.map(|p| SourceSpan::new(p.offset.min(source.text.len()).into(), p.len.max(1)));
        // Without a place (e.g. an empty file) the path still tells the user where.
        let report = Report {
            diag: diag.clone(),
            source: NamedSource::new(&source.name, source.text.clone()),
            span: span.map(|s| clamp(s, &source.text)),
        };
        if report.span.is_none() && !diag.path.0.is_empty() {
            out.push_str(&format!("at {}: {}\n", source.name, diag.path));
        }
        let _ = handler.render_report(&mut out, &report);
        out.push('\n');
    }
    out
}

/// Keeps a span inside the text and on character boundaries.
fn clamp(span: SourceSpan, text: &str) -> SourceSpan {
    let mut start = span.offset().min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (start + span.len()).min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    // A span at end of input still gets one column so the caret shows.
    SourceSpan::new(
        start.into(),
        (end - start).max(if start < text.len() { 1 } else { 0 }),
    )
}

#[derive(Serialize)]
pub struct JsonDiagnostic {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub file: String,
    pub line: Option<u64>,
    pub column: Option<u64>,
    pub path: String,
    pub label: String,
    pub help: Option<String>,
}

pub fn to_json(diags: &[Diagnostic], files: &[SpecFile]) -> Vec<JsonDiagnostic> {
    diags
        .iter()
        .map(|d| {
            let pos = d.resolve(files);
            JsonDiagnostic {
                severity: d.severity,
                code: d.code,
                message: d.message.clone(),
                file: files
                    .get(d.file)
                    .map(|f| f.source.name.clone())
                    .unwrap_or_default(),
                line: pos.map(|p| p.line),
                column: pos.map(|p| p.column),
                path: d.path.to_string(),
                label: d.label.clone(),
                help: d.help.clone(),
            }
        })
        .collect()
}
