//! `textfile`: samples from `*.prom` files in a directory the plan names (written by cron jobs
//! and scripts), with each file's mtime and whether any file could not be read.
//!
//! Each file is parsed with the agent's exposition parser under the node's limits; a file that
//! is too large, does not parse, carries timestamps, or repeats a family an earlier file
//! exposed is skipped whole and sets `node_textfile_scrape_error` to 1, as node_exporter does
//! for the errors it knows. Differences from node_exporter: it merges a family spread over two
//! files (outpost skips the second file), and fills a family's missing labels with "" (the
//! same series once ingested).

use std::fs::File;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use outpost_core::error::ScrapeError;
use outpost_core::expfmt::{ExpositionFormat, Parser, Sample};
use outpost_core::plan::Limits;

use super::expo::{Expo, Kind};
use super::files::{set_path, Files, Names, Span};

/// Labels of one textfile sample, at most (a stack array holds them while it is written).
const MAX_LABELS: usize = 64;

/// The plan's textfile settings, and what the collector keeps between scrapes.
pub(super) struct State {
    /// `None`: no directory, so only `node_textfile_scrape_error 0`, as node_exporter's default.
    directory: Option<PathBuf>,
    max_files: usize,
    max_file_bytes: u64,
    parser: Option<Parser>,
    names: Names,
    /// Names of the families written this scrape, one per line.
    families: String,
    /// `(file index, mtime)` of the files read this scrape.
    mtimes: Vec<(usize, f64)>,
    /// TYPE and HELP lines of the file being read: name, then kind or text, as ranges.
    types: Vec<(Span, Kind)>,
    helps: Vec<(Span, Span)>,
    help: String,
}

impl State {
    pub(super) fn disabled() -> State {
        State {
            directory: None,
            max_files: 0,
            max_file_bytes: 0,
            parser: None,
            names: Names::default(),
            families: String::new(),
            mtimes: Vec::new(),
            types: Vec::new(),
            helps: Vec::new(),
            help: String::new(),
        }
    }

    /// Reads `directory` with at most `max_files` files of `max_file_bytes` each, parsed under
    /// `limits` (the node's).
    pub(super) fn new(directory: &Path, max_files: u32, max_file_bytes: u32, limits: &Limits) -> State {
        let limits = Limits {
            body_bytes: max_file_bytes,
            ..*limits
        };
        State {
            directory: Some(directory.to_path_buf()),
            max_files: max_files as usize,
            max_file_bytes: u64::from(max_file_bytes),
            parser: Some(Parser::new(&limits)),
            ..State::disabled()
        }
    }
}

pub(super) fn collect(s: &mut Files, st: &mut State, expo: &mut Expo<'_>) -> io::Result<()> {
    let mut errored = false;
    st.families.clear();
    st.mtimes.clear();
    if let (Some(directory), Some(parser)) = (&st.directory, &mut st.parser) {
        match st.names.read(directory, |name, _| name.ends_with(".prom")) {
            Ok(()) => {}
            Err(_) => {
                errored = true;
                st.names = Names::default();
            }
        }
        for (index, name) in st.names.iter().enumerate() {
            if index >= st.max_files {
                errored = true;
                break;
            }
            set_path(&mut s.path, directory, &[name]);
            let Some(mtime) = read_bounded(&s.path, st.max_file_bytes, &mut s.data) else {
                errored = true;
                continue;
            };
            let Ok(text) = std::str::from_utf8(&s.data) else {
                errored = true;
                continue;
            };
            let (at, samples, families) = (expo.mark(), expo.samples, st.families.len());
            let file = PromFile {
                text,
                path: &s.path,
                types: &mut st.types,
                helps: &mut st.helps,
                help: &mut st.help,
            };
            if file.write(parser, &mut st.families, expo).is_ok() {
                st.mtimes.push((index, mtime));
            } else {
                expo.rollback(at, samples);
                st.families.truncate(families);
                errored = true;
            }
        }
    }
    const MTIME: &[&str] = &["node_textfile_mtime_seconds"];
    let mark = expo.family(
        MTIME,
        &["Unixtime mtime of textfiles successfully read."],
        Kind::Gauge,
    );
    if let Some(directory) = &st.directory {
        for &(index, mtime) in &st.mtimes {
            let name = st.names.iter().nth(index).unwrap_or("");
            set_path(&mut s.path, directory, &[name]);
            let path = s.path.to_str().unwrap_or("");
            expo.sample(MTIME, &[("file", path)], mtime);
        }
    }
    expo.end_family(mark);
    expo.single(
        &["node_textfile_scrape_error"],
        &["1 if there was an error opening or reading a file, 0 otherwise"],
        Kind::Gauge,
        &[],
        u64::from(errored),
    );
    Ok(())
}

/// Reads a file of at most `max` bytes into `buf`; its mtime in whole seconds.
fn read_bounded(path: &Path, max: u64, buf: &mut Vec<u8>) -> Option<f64> {
    let mut file = File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > max {
        return None;
    }
    buf.clear();
    file.by_ref().take(max + 1).read_to_end(buf).ok()?;
    if buf.len() as u64 > max {
        return None;
    }
    let mtime = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(mtime as f64)
}

/// One file being written out.
struct PromFile<'a> {
    text: &'a str,
    path: &'a Path,
    types: &'a mut Vec<(Span, Kind)>,
    helps: &'a mut Vec<(Span, Span)>,
    help: &'a mut String,
}

impl PromFile<'_> {
    fn write(
        self,
        parser: &mut Parser,
        families: &mut String,
        expo: &mut Expo<'_>,
    ) -> Result<(), ScrapeError> {
        let text = self.text;
        let range = |part: &str| {
            let start = part.as_ptr() as usize - text.as_ptr() as usize;
            (start, start + part.len())
        };
        self.types.clear();
        self.helps.clear();
        for line in text.lines() {
            let mut words = line.splitn(4, ' ');
            match (words.next(), words.next(), words.next(), words.next()) {
                (Some("#"), Some("TYPE"), Some(name), Some(kind)) => {
                    let kind = Kind::from_type(kind.trim()).unwrap_or(Kind::Untyped);
                    self.types.push((range(name), kind));
                }
                (Some("#"), Some("HELP"), Some(name), help) => {
                    self.helps.push((range(name), range(help.unwrap_or(""))));
                }
                _ => {}
            }
        }
        let types = &*self.types;
        let helps = &*self.helps;
        let path = self.path.to_str().unwrap_or("");
        let at = |(start, end): Span| &text[start..end];
        // The family a sample belongs to: its own name, or the name without a histogram's or
        // summary's suffix when that is what the file declared.
        let family_of = |name: &str| -> (usize, Kind) {
            if let Some(&(_, kind)) = types.iter().find(|(n, _)| at(*n) == name) {
                return (name.len(), kind);
            }
            for suffix in ["_bucket", "_sum", "_count"] {
                let Some(base) = name.strip_suffix(suffix) else {
                    continue;
                };
                let declared = types.iter().find(|(n, _)| at(*n) == base);
                if let Some(&(_, kind @ (Kind::Histogram | Kind::Summary))) = declared {
                    if suffix != "_bucket" || kind == Kind::Histogram {
                        return (base.len(), kind);
                    }
                }
            }
            (name.len(), Kind::Untyped)
        };
        let help_buf = self.help;
        let mut current_end = families.len();
        let mut sink = |sample: &Sample<'_>| -> Result<(), ScrapeError> {
            if sample.timestamp_ms.is_some() {
                return Err(ScrapeError::Syntax {
                    line: 0,
                    what: "textfile samples may not carry timestamps",
                });
            }
            let (len, kind) = family_of(sample.name);
            let family = &sample.name[..len];
            if families[current_end..].lines().next() != Some(family) {
                if families.lines().any(|f| f == family) {
                    return Err(ScrapeError::DuplicateSeries { line: 0 });
                }
                current_end = families.len();
                families.push_str(family);
                families.push('\n');
                help_buf.clear();
                match helps.iter().find(|(n, _)| at(*n) == family) {
                    Some(&(_, help)) => unescape_help(at(help), help_buf),
                    None => {
                        help_buf.push_str("Metric read from ");
                        help_buf.push_str(path);
                    }
                }
                expo.family(&[family], &[help_buf.as_str()], kind);
            }
            let mut labels = [("", ""); MAX_LABELS];
            let count = sample.labels.len();
            if count > MAX_LABELS {
                return Err(ScrapeError::LabelLimit {
                    line: 0,
                    limit: MAX_LABELS as u16,
                });
            }
            for (slot, label) in labels.iter_mut().zip(sample.labels.iter()) {
                *slot = label;
            }
            expo.sample(&[sample.name], &labels[..count], sample.value);
            Ok(())
        };
        parser.reset(ExpositionFormat::PrometheusText);
        parser.handle_chunk(text.as_bytes(), &mut sink)?;
        parser.finish(&mut sink)
    }
}

/// HELP text in a file is escaped (`\\` and `\n`); the expo writer escapes it again.
fn unescape_help(text: &str, out: &mut String) {
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
}
