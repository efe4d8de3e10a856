//! The checking context: every problem found is pushed here, and values are
//! parsed through it so a bad one is reported where it was written.

use super::defaults::{default_bytes, default_millicores, default_ms};
use super::names::{is_dns_label, is_label_name};
use crate::diag::Diagnostic;
use crate::tree::DocPath;
use crate::units::{parse_cpu, parse_duration, parse_size};
use std::collections::BTreeSet;

#[derive(Default)]
pub(super) struct Cx {
    diags: Vec<Diagnostic>,
}

impl Cx {
    pub(super) fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// Settings shared by several agents are checked once per agent; the
    /// user wants to hear about each place once.
    pub(super) fn finish(self) -> Vec<Diagnostic> {
        let mut seen = BTreeSet::new();
        self.diags
            .into_iter()
            .filter(|d| seen.insert((d.path.clone(), d.code, d.message.clone())))
            .collect()
    }

    pub(super) fn duration(&mut self, text: &str, path: &DocPath) -> Option<u64> {
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

    pub(super) fn size(&mut self, text: &str, path: &DocPath) -> Option<u64> {
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

    pub(super) fn cpu(&mut self, text: &str, path: &DocPath) -> Option<u32> {
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

    /// A duration set in some layer (with where it was set), or `default`.
    pub(super) fn duration_or(
        &mut self,
        value: Option<(&String, DocPath)>,
        default: &str,
    ) -> (u64, Option<DocPath>) {
        self.value_or(value, Cx::duration, || default_ms(default))
    }

    /// A size set in some layer (with where it was set), or `default`.
    pub(super) fn size_or(
        &mut self,
        value: Option<(&String, DocPath)>,
        default: &str,
    ) -> (u64, Option<DocPath>) {
        self.value_or(value, Cx::size, || default_bytes(default))
    }

    /// A CPU quantity set in some layer (with where it was set), or `default`.
    pub(super) fn cpu_or(
        &mut self,
        value: Option<(&String, DocPath)>,
        default: &str,
    ) -> (u32, Option<DocPath>) {
        self.value_or(value, Cx::cpu, || default_millicores(default))
    }

    fn value_or<T>(
        &mut self,
        value: Option<(&String, DocPath)>,
        parse: fn(&mut Cx, &str, &DocPath) -> Option<T>,
        default: impl FnOnce() -> T,
    ) -> (T, Option<DocPath>) {
        match value {
            // A bad value is reported once; the default stands in so it causes no follow-up errors.
            Some((text, path)) => match parse(self, text, &path) {
                Some(v) => (v, Some(path)),
                None => (default(), None),
            },
            None => (default(), None),
        }
    }

    pub(super) fn range(
        &mut self,
        value: u64,
        min: u64,
        max: u64,
        path: &DocPath,
        what: &str,
    ) -> Option<u64> {
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

    pub(super) fn label_name(&mut self, name: &str, path: &DocPath, on_key: bool) -> bool {
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

    pub(super) fn dns_label(&mut self, name: &str, path: &DocPath, what: &str) -> bool {
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

    pub(super) fn file_path(&mut self, value: &str, path: &DocPath) {
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
