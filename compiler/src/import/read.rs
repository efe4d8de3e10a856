//! Reading a YAML document key by key. Every key read is marked; what is
//! left in a mapping at the end is reported with its place, so nothing the
//! import does not translate goes unmentioned.

use crate::diag::Diagnostic;
use crate::tree::{DocPath, KeyText, Node};
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The import's diagnostics, each pointing into file `file`, and the
/// directory the config's relative paths are read from.
#[derive(Debug, Default)]
pub struct Findings {
    pub file: usize,
    pub diags: Vec<Diagnostic>,
    pub base_dir: PathBuf,
}

impl Findings {
    pub fn push(&mut self, mut d: Diagnostic) {
        d.file = self.file;
        self.diags.push(d);
    }

    /// A key outpost cannot express, with the reason.
    pub fn not_imported(&mut self, path: DocPath, why: impl Into<String>) {
        let key = path.to_string();
        self.push(
            Diagnostic::warning(
                "not-imported",
                path,
                format!("`{key}` is not imported: {}", why.into()),
            )
            .on_key()
            .label("not translated"),
        );
    }

    pub fn error(&mut self, code: &'static str, path: DocPath, message: impl Into<String>) {
        self.push(Diagnostic::error(code, path, message));
    }
}

/// The text of a scalar node; `None` for null, a mapping or a list.
pub fn scalar(node: &Spanned<Node>) -> Option<&str> {
    match &node.value {
        Node::Scalar(Some(t)) => Some(t),
        _ => None,
    }
}

/// One mapping of the document, with the keys read so far.
pub struct MapView<'a> {
    entries: &'a [(Spanned<KeyText>, Spanned<Node>)],
    pub path: DocPath,
    used: Vec<bool>,
}

impl<'a> MapView<'a> {
    /// `node` as a mapping; null reads as an empty one, anything else is an error.
    pub fn of(node: &'a Spanned<Node>, path: DocPath, f: &mut Findings) -> Option<MapView<'a>> {
        match &node.value {
            Node::Map(entries) => Some(MapView {
                entries,
                path,
                used: vec![false; entries.len()],
            }),
            Node::Scalar(None) => None,
            _ => {
                f.error("wrong-type", path, "expected a mapping (`key: value` lines) here");
                None
            }
        }
    }

    pub fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k.value.0 == key)
    }

    /// The value of `key`, marked as read.
    pub fn get(&mut self, key: &str) -> Option<(&'a Spanned<Node>, DocPath)> {
        let i = self.entries.iter().position(|(k, _)| k.value.0 == key)?;
        self.used[i] = true;
        Some((&self.entries[i].1, self.path.at(key)))
    }

    /// The text of a scalar `key`; a mapping or list there is an error.
    pub fn text(&mut self, key: &str, f: &mut Findings) -> Option<String> {
        let (node, path) = self.get(key)?;
        match &node.value {
            Node::Scalar(t) => t.clone(),
            _ => {
                f.error("wrong-type", path, format!("`{key}` should be a single value"));
                None
            }
        }
    }

    /// A file name; a relative one is resolved against the config's
    /// directory, as Prometheus does.
    pub fn file(&mut self, key: &str, f: &mut Findings) -> Option<String> {
        let text = self.text(key, f)?;
        Some(if Path::new(&text).is_absolute() {
            text
        } else {
            f.base_dir.join(&text).display().to_string()
        })
    }

    pub fn bool(&mut self, key: &str, f: &mut Findings) -> Option<bool> {
        let path = self.path.at(key);
        match self.text(key, f)?.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            other => {
                f.error(
                    "wrong-type",
                    path,
                    format!("`{key}` should be true or false, not `{other}`"),
                );
                None
            }
        }
    }

    pub fn number(&mut self, key: &str, f: &mut Findings) -> Option<u64> {
        let path = self.path.at(key);
        let text = self.text(key, f)?;
        match text.parse() {
            Ok(n) => Some(n),
            Err(_) => {
                f.error(
                    "wrong-type",
                    path,
                    format!("`{key}` should be a whole number, not `{text}`"),
                );
                None
            }
        }
    }

    pub fn map(&mut self, key: &str, f: &mut Findings) -> Option<MapView<'a>> {
        let (node, path) = self.get(key)?;
        MapView::of(node, path, f)
    }

    /// The items of a list `key` with their paths; null reads as empty.
    pub fn list(&mut self, key: &str, f: &mut Findings) -> Vec<(&'a Spanned<Node>, DocPath)> {
        let Some((node, path)) = self.get(key) else {
            return Vec::new();
        };
        match &node.value {
            Node::Seq(items) => items.iter().enumerate().map(|(i, n)| (n, path.at(i))).collect(),
            Node::Scalar(None) => Vec::new(),
            _ => {
                f.error("wrong-type", path, format!("`{key}` should be a list"));
                Vec::new()
            }
        }
    }

    pub fn strings(&mut self, key: &str, f: &mut Findings) -> Vec<String> {
        self.list(key, f)
            .into_iter()
            .filter_map(|(n, p)| {
                let t = scalar(n).map(str::to_string);
                if t.is_none() {
                    f.error("wrong-type", p, "expected a single value");
                }
                t
            })
            .collect()
    }

    /// A mapping of names to values, e.g. labels or headers.
    pub fn string_map(&mut self, key: &str, f: &mut Findings) -> Vec<(String, String, DocPath)> {
        let Some(m) = self.map(key, f) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in m.entries {
            let path = m.path.at(k.value.0.as_str());
            match scalar(v) {
                Some(t) => out.push((k.value.0.clone(), t.to_string(), path)),
                None => f.error("wrong-type", path, "expected a single value"),
            }
        }
        out
    }

    /// Reports every key not read, with `why(key)`.
    pub fn rest(self, f: &mut Findings, why: impl Fn(&str) -> String) {
        for ((k, _), used) in self.entries.iter().zip(self.used) {
            if !used {
                f.not_imported(self.path.at(k.value.0.as_str()), why(&k.value.0));
            }
        }
    }
}

/// Labels as a sorted map, for specs.
pub fn label_map(pairs: &[(String, String, DocPath)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v, _)| (k.clone(), v.clone())).collect()
}
