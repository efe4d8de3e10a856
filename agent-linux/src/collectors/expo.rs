//! A Prometheus text-format writer over a caller-owned `String`.
//!
//! Metric names are passed as slices of parts (`["node_memory_", key, "_bytes"]`) so that names built
//! from file contents never need their own `String`. Numbers go through `core::fmt`, which formats
//! on the stack, so writing into a buffer that already has capacity does not allocate.

use core::fmt::Write as _;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Untyped,
    Histogram,
    Summary,
}

impl Kind {
    /// A text-format TYPE word.
    pub(crate) fn from_type(word: &str) -> Option<Kind> {
        Some(match word {
            "counter" => Kind::Counter,
            "gauge" => Kind::Gauge,
            "untyped" => Kind::Untyped,
            "histogram" => Kind::Histogram,
            "summary" => Kind::Summary,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Untyped => "untyped",
            Kind::Histogram => "histogram",
            Kind::Summary => "summary",
        }
    }
}

/// A sample value. Integers are written exactly; node_exporter's float64 would round counters
/// above 2^53, which nobody reads anyway, but exact integers keep fixture tests readable.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Value {
    Int(u64),
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

/// Where a family's header starts, so a family that ended up without samples can be taken back.
#[derive(Clone, Copy)]
pub(crate) struct FamilyMark {
    at: usize,
    samples_before: usize,
}

pub(crate) struct Expo<'a> {
    pub(crate) buf: &'a mut String,
    pub(crate) samples: usize,
}

impl<'a> Expo<'a> {
    pub(crate) fn new(buf: &'a mut String) -> Self {
        Expo { buf, samples: 0 }
    }

    /// Writes `# HELP` and `# TYPE`. `help_parts` are concatenated like the name.
    pub(crate) fn family(&mut self, name: &[&str], help: &[&str], kind: Kind) -> FamilyMark {
        let mark = FamilyMark {
            at: self.buf.len(),
            samples_before: self.samples,
        };
        self.buf.push_str("# HELP ");
        push_parts(self.buf, name);
        self.buf.push(' ');
        for part in help {
            push_help(self.buf, part);
        }
        self.buf.push_str("\n# TYPE ");
        push_parts(self.buf, name);
        self.buf.push(' ');
        self.buf.push_str(kind.as_str());
        self.buf.push('\n');
        mark
    }

    /// Removes the header again when no sample followed it: a bare header would announce a
    /// metric this node does not have.
    pub(crate) fn end_family(&mut self, mark: FamilyMark) {
        if self.samples == mark.samples_before {
            self.buf.truncate(mark.at);
        }
    }

    pub(crate) fn sample(&mut self, name: &[&str], labels: &[(&str, &str)], value: impl Into<Value>) {
        push_parts(self.buf, name);
        if !labels.is_empty() {
            self.buf.push('{');
            for (i, (label, label_value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.buf.push(',');
                }
                self.buf.push_str(label);
                self.buf.push_str("=\"");
                push_label_value(self.buf, label_value);
                self.buf.push('"');
            }
            self.buf.push('}');
        }
        self.buf.push(' ');
        push_value(self.buf, value.into());
        self.buf.push('\n');
        self.samples += 1;
    }

    /// A family with exactly one sample.
    pub(crate) fn single(
        &mut self,
        name: &[&str],
        help: &[&str],
        kind: Kind,
        labels: &[(&str, &str)],
        value: impl Into<Value>,
    ) {
        self.family(name, help, kind);
        self.sample(name, labels, value);
    }

    /// `outpost_build_info`: the one series every page outpost writes carries
    /// (the node collectors' and the agent's own `/metrics`).
    pub(crate) fn build_info(&mut self) {
        self.single(
            &["outpost_build_info"],
            &[
                "A metric with a constant '1' value labeled by version, revision, branch, rustversion, os \
                 and arch from which outpost was built.",
            ],
            Kind::Gauge,
            &[
                ("arch", std::env::consts::ARCH),
                ("branch", option_env!("OUTPOST_GIT_BRANCH").unwrap_or("unknown")),
                ("os", std::env::consts::OS),
                (
                    "revision",
                    option_env!("OUTPOST_GIT_REVISION").unwrap_or("unknown"),
                ),
                (
                    "rustversion",
                    option_env!("OUTPOST_RUSTC_VERSION").unwrap_or("unknown"),
                ),
                ("version", env!("CARGO_PKG_VERSION")),
            ],
            1u64,
        );
    }

    pub(crate) fn mark(&self) -> usize {
        self.buf.len()
    }

    /// Drops everything written since `at` (a collector that failed half-way emits nothing).
    pub(crate) fn rollback(&mut self, at: usize, samples: usize) {
        self.buf.truncate(at);
        self.samples = samples;
    }
}

fn push_parts(buf: &mut String, parts: &[&str]) {
    for part in parts {
        buf.push_str(part);
    }
}

/// HELP text escapes only backslash and newline (the text format's rule).
fn push_help(buf: &mut String, text: &str) {
    let mut rest = text;
    while let Some(i) = rest.find(['\\', '\n']) {
        buf.push_str(&rest[..i]);
        buf.push_str(if rest.as_bytes()[i] == b'\\' {
            "\\\\"
        } else {
            "\\n"
        });
        rest = &rest[i + 1..];
    }
    buf.push_str(rest);
}

/// Label values escape backslash, double quote and newline.
pub(crate) fn push_label_value(buf: &mut String, text: &str) {
    let mut rest = text;
    while let Some(i) = rest.find(['\\', '"', '\n']) {
        buf.push_str(&rest[..i]);
        buf.push_str(match rest.as_bytes()[i] {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            _ => "\\n",
        });
        rest = &rest[i + 1..];
    }
    buf.push_str(rest);
}

pub(crate) fn push_value(buf: &mut String, value: Value) {
    match value {
        Value::Int(v) => {
            let _ = write!(buf, "{v}");
        }
        Value::Float(v) if v.is_nan() => buf.push_str("NaN"),
        Value::Float(v) if v.is_infinite() => buf.push_str(if v > 0.0 { "+Inf" } else { "-Inf" }),
        Value::Float(v) => {
            // Rust's shortest round-trip form: "55.04", "1795539039", "0.000001"; all valid floats
            // for Prometheus's parser.
            let _ = write!(buf, "{v}");
        }
    }
}

/// A number as text without a heap `String`.
pub(crate) struct SmallNumber {
    bytes: [u8; 20],
    start: usize,
}

impl SmallNumber {
    pub(crate) fn new(mut v: u64) -> Self {
        let mut n = SmallNumber {
            bytes: [0; 20],
            start: 20,
        };
        loop {
            n.start -= 1;
            n.bytes[n.start] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                return n;
            }
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[self.start..]).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut buf = String::new();
        let mut expo = Expo::new(&mut buf);
        expo.sample(&["m"], &[("a", "x\\y\"z\nw"), ("b", "")], 1u64);
        assert_eq!(buf, "m{a=\"x\\\\y\\\"z\\nw\",b=\"\"} 1\n");
    }

    #[test]
    fn help_escapes_backslash_and_newline_only() {
        let mut buf = String::new();
        let mut expo = Expo::new(&mut buf);
        expo.family(&["m"], &["a \"q\" \\ b\nc"], Kind::Gauge);
        assert_eq!(buf, "# HELP m a \"q\" \\\\ b\\nc\n# TYPE m gauge\n");
    }

    #[test]
    fn floats_and_specials() {
        let mut buf = String::new();
        for v in [
            55.04,
            1.795539039e9,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.5,
        ] {
            push_value(&mut buf, Value::Float(v));
            buf.push(' ');
        }
        assert_eq!(buf, "55.04 1795539039 NaN +Inf -Inf 0.5 ");
    }

    #[test]
    fn empty_family_is_taken_back() {
        let mut buf = String::from("keep\n");
        let mut expo = Expo::new(&mut buf);
        let mark = expo.family(&["a_", "b"], &["h"], Kind::Counter);
        expo.end_family(mark);
        let mark = expo.family(&["c"], &["h"], Kind::Counter);
        expo.sample(&["c"], &[], 2u64);
        expo.end_family(mark);
        assert_eq!(expo.samples, 1);
        assert_eq!(buf, "keep\n# HELP c h\n# TYPE c counter\nc 2\n");
    }
}
