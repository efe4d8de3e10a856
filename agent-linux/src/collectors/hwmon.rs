//! `hwmon`: hardware sensors (temperatures, fans, voltages, currents, power, energy, humidity,
//! alarms) of every chip under `/sys/class/hwmon`, named as node_exporter names them.
//!
//! Sensor files are named `<type><n>_<property>` (the kernel's sysfs-interface document for
//! hwmon). Every chip's sensors are gathered first, then written family by family.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use rustix::fs::FileType;

use super::expo::{Expo, Kind};
use super::files::{set_path, Files, Names, Span};
use super::Paths;

/// The sensor types node_exporter reads; other files are ignored.
const SENSOR_TYPES: [&str; 13] = [
    "vrm",
    "beep_enable",
    "update_interval",
    "in",
    "cpu",
    "fan",
    "pwm",
    "temp",
    "curr",
    "power",
    "energy",
    "humidity",
    "intrusion",
];

/// What the collector keeps between scrapes.
#[derive(Default)]
pub(super) struct State {
    dirs: Names,
    files: Names,
    /// Chip names by hwmon directory, worked out once (they follow symlinks, which allocates).
    chips: Vec<Chip>,
    /// Names, helps and label values of `entries`.
    text: String,
    /// The strings of `readings`, for one chip at a time.
    readings_text: String,
    readings: Vec<Reading>,
    /// Everything to write, sorted by family before writing.
    entries: Vec<Entry>,
}

struct Chip {
    dir: String,
    chip: Option<String>,
    chip_name: Option<String>,
}

struct Entry {
    name: Span,
    help: Span,
    kind: Kind,
    chip: usize,
    sensor: Span,
    /// `label` of node_hwmon_sensor_label, `chip_name` of node_hwmon_chip_names.
    extra: Option<(&'static str, Span)>,
    value: f64,
}

pub(super) fn collect(paths: &Paths, s: &mut Files, st: &mut State, expo: &mut Expo<'_>) -> io::Result<()> {
    set_path(&mut s.path, &paths.sysfs, &["class/hwmon"]);
    // Chips are symlinks to directories; what they point at is checked below.
    let base = &s.path;
    st.dirs.read(base, |_, file_type| {
        matches!(file_type, FileType::Directory | FileType::Symlink)
    })?;
    if st.dirs.iter().any(|d| !st.chips.iter().any(|c| c.dir == d)) {
        st.chips = st
            .dirs
            .iter()
            .map(|dir| {
                let path = base.join(dir);
                Chip {
                    dir: dir.to_string(),
                    chip: chip(&path),
                    chip_name: chip_name(&path),
                }
            })
            .collect();
    }
    st.text.clear();
    st.entries.clear();
    let mut failed = false;
    for dir in st.dirs.iter() {
        let Some(index) = st.chips.iter().position(|c| c.dir == dir) else {
            continue;
        };
        set_path(&mut s.path, &paths.sysfs, &["class/hwmon", dir]);
        if !s.path.is_dir() {
            continue;
        }
        if st.chips[index].chip.is_none() {
            failed = true;
            continue;
        }
        st.readings.clear();
        st.readings_text.clear();
        for sub in [None, Some("device")] {
            let rel: &[&str] = match sub {
                None => &["class/hwmon", dir],
                Some(sub) => &["class/hwmon", dir, sub],
            };
            set_path(&mut s.path, &paths.sysfs, rel);
            if sub.is_some() && !s.path.is_dir() {
                continue;
            }
            if st.files.read(&s.path, |_, _| true).is_err() {
                failed = true;
                continue;
            }
            for file in st.files.iter() {
                let Some((kind, id, property)) = explode(file) else {
                    continue;
                };
                let Some(type_index) = SENSOR_TYPES.iter().position(|t| *t == kind) else {
                    continue;
                };
                let id = match id {
                    "" => 0,
                    digits => match digits.parse::<u64>() {
                        Ok(id) => id,
                        Err(_) => continue,
                    },
                };
                set_path(&mut s.path, &paths.sysfs, rel);
                s.path.push(file);
                let Some(value) = read_sensor(&s.path, &mut s.aux) else {
                    continue;
                };
                let text = &mut st.readings_text;
                let sensor = push(text, |t| {
                    t.push_str(kind);
                    let _ = write!(t, "{id}");
                });
                let property = push(text, |t| t.push_str(property));
                let value = push(text, |t| t.push_str(value));
                // A file in device/ replaces the same property read from the chip's own directory.
                let same =
                    |r: &Reading| at(text, r.0) == at(text, sensor) && at(text, r.2) == at(text, property);
                let fresh = (sensor, type_index, property, value);
                match st.readings.iter().position(same) {
                    Some(i) => st.readings[i] = fresh,
                    None => st.readings.push(fresh),
                }
            }
        }
        entries(
            index,
            &st.chips[index],
            &st.readings,
            &st.readings_text,
            &mut st.text,
            &mut st.entries,
        );
    }
    let text = &st.text;
    // Unstable (it does not allocate); equal names are ordered by help, chip and sensor.
    st.entries.sort_unstable_by(|a, b| {
        (at(text, a.name), at(text, a.help), a.chip, at(text, a.sensor)).cmp(&(
            at(text, b.name),
            at(text, b.help),
            b.chip,
            at(text, b.sensor),
        ))
    });
    let mut current: Option<Span> = None;
    for e in &st.entries {
        let name = at(text, e.name);
        if current.map(|c| at(text, c)) != Some(name) {
            expo.family(&[name], &[at(text, e.help)], e.kind);
            current = Some(e.name);
        }
        let chip = st.chips[e.chip].chip.as_deref().unwrap_or("");
        match e.extra {
            Some(("chip_name", value)) => {
                expo.sample(
                    &[name],
                    &[("chip", chip), ("chip_name", at(text, value))],
                    e.value,
                );
            }
            Some((label, value)) => {
                let labels = [
                    ("chip", chip),
                    (label, at(text, value)),
                    ("sensor", at(text, e.sensor)),
                ];
                expo.sample(&[name], &labels, e.value);
            }
            None => {
                expo.sample(
                    &[name],
                    &[("chip", chip), ("sensor", at(text, e.sensor))],
                    e.value,
                );
            }
        }
    }
    if failed {
        return Err(io::Error::from(io::ErrorKind::NotFound));
    }
    Ok(())
}

fn at(text: &str, (start, end): Span) -> &str {
    &text[start..end]
}

fn push(text: &mut String, write: impl FnOnce(&mut String)) -> Span {
    let start = text.len();
    write(text);
    (start, text.len())
}

/// `^(?P<type>[^0-9]+)(?P<id>[0-9]*)?(_(?P<property>.+))?$`: (type, id, property).
fn explode(file: &str) -> Option<(&str, &str, &str)> {
    let digits_at = file.find(|c: char| c.is_ascii_digit()).unwrap_or(file.len());
    let (kind, rest) = file.split_at(digits_at);
    if kind.is_empty() {
        return None;
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (id, tail) = rest.split_at(digits);
    match tail {
        "" => Some((kind, id, "")),
        _ => tail
            .strip_prefix('_')
            .filter(|p| !p.is_empty())
            .map(|property| (kind, id, property)),
    }
}

/// A sensor file's value: at most 128 bytes, newlines trimmed. `None` when it cannot be read
/// (write-only files, sensors that fail).
fn read_sensor<'b>(path: &Path, buf: &'b mut Vec<u8>) -> Option<&'b str> {
    use std::io::Read as _;
    buf.clear();
    buf.resize(128, 0);
    let n = std::fs::File::open(path).ok()?.read(buf).ok()?;
    buf.truncate(n);
    std::str::from_utf8(buf).ok().map(|v| v.trim_matches('\n'))
}

/// node_exporter's cleanMetricName: lower case, `[^a-z0-9:_]` to `_`, `_` trimmed at the ends.
fn clean(name: &str, out: &mut String) {
    let start = out.len();
    for c in name.chars().flat_map(char::to_lowercase) {
        out.push(
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == ':' || c == '_' {
                c
            } else {
                '_'
            },
        );
    }
    let trimmed = out[start..].trim_matches('_').len();
    let leading = out[start..].len() - out[start..].trim_start_matches('_').len();
    out.replace_range(start..start + leading, "");
    out.truncate(start + trimmed);
}

fn cleaned(name: &str) -> String {
    let mut out = String::new();
    clean(name, &mut out);
    out
}

/// The `chip` label: the device's bus type and name (`platform_coretemp_0`), else the chip's
/// `name` file, else the hwmon directory's own name.
fn chip(dir: &Path) -> Option<String> {
    if let Ok(device) = std::fs::canonicalize(dir.join("device")) {
        let name = cleaned(device.file_name()?.to_str()?);
        let bus = device
            .parent()
            .and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .map(cleaned)
            .unwrap_or_default();
        if !bus.is_empty() && !name.is_empty() {
            return Some(format!("{bus}_{name}"));
        }
        if !name.is_empty() {
            return Some(name);
        }
    }
    if let Some(name) = chip_name(dir) {
        return Some(name);
    }
    let real = std::fs::canonicalize(dir).ok()?;
    Some(cleaned(real.file_name()?.to_str()?)).filter(|n| !n.is_empty())
}

/// The chip's `name` file, cleaned.
fn chip_name(dir: &Path) -> Option<String> {
    let raw = std::fs::read_to_string(dir.join("name")).ok()?;
    Some(cleaned(&raw)).filter(|n| !n.is_empty())
}

/// One sensor file's reading: (sensor, type, property, value); strings are spans of the
/// chip's `readings_text`, the type indexes [`SENSOR_TYPES`].
type Reading = (Span, usize, Span, Span);

/// Appends what node_exporter writes for one chip's sensors to `out`; names, helps and label
/// values go to `text`.
fn entries(
    chip: usize,
    info: &Chip,
    readings: &[Reading],
    read_text: &str,
    text: &mut String,
    out: &mut Vec<Entry>,
) {
    let at_r = |span: Span| at(read_text, span);
    let mut o = Out {
        text,
        entries: out,
        chip,
    };
    if let Some(chip_name) = &info.chip_name {
        let value = push(o.text, |t| t.push_str(chip_name));
        o.add(
            &["node_hwmon_chip_names"],
            &["Annotation metric for human-readable chip names"],
            Kind::Gauge,
            (0, 0),
            Some(("chip_name", value)),
            1.0,
        );
    }
    for (i, &(sensor_span, type_index, _, _)) in readings.iter().enumerate() {
        let sensor_name = at_r(sensor_span);
        // Each sensor once: at its first reading.
        if readings[..i].iter().any(|r| at_r(r.0) == sensor_name) {
            continue;
        }
        let sensor = push(o.text, |t| t.push_str(sensor_name));
        let props = || {
            readings
                .iter()
                .filter(|r| at_r(r.0) == sensor_name)
                .map(|r| (at_r(r.2), at_r(r.3)))
        };
        let prop = |name: &str| props().find(|(p, _)| *p == name).map(|(_, v)| v);
        let empty = prop("");
        if let Some(label) = prop("label") {
            let value = push(o.text, |t| t.push_str(label));
            o.add(
                &["node_hwmon_sensor_label"],
                &["Label for given chip and sensor"],
                Kind::Gauge,
                sensor,
                Some(("label", value)),
                1.0,
            );
        }
        let t = SENSOR_TYPES[type_index];
        let number = || empty.and_then(|v| v.parse::<f64>().ok());
        match t {
            "beep_enable" => {
                let on = if empty == Some("1") { 1.0 } else { 0.0 };
                o.add(
                    &["node_hwmon_beep_enabled"],
                    &["Hardware beep enabled"],
                    Kind::Gauge,
                    sensor,
                    None,
                    on,
                );
                continue;
            }
            "vrm" => {
                if let Some(v) = number() {
                    let (name, help) = (
                        "node_hwmon_voltage_regulator_version",
                        "Hardware voltage regulator",
                    );
                    o.add(&[name], &[help], Kind::Gauge, sensor, None, v);
                }
                continue;
            }
            "update_interval" => {
                if let Some(v) = number() {
                    let (name, help) = (
                        "node_hwmon_update_interval_seconds",
                        "Hardware monitor update interval",
                    );
                    o.add(&[name], &[help], Kind::Gauge, sensor, None, v * 0.001);
                }
                continue;
            }
            _ => {}
        }
        for (element, value) in props() {
            if element == "label" {
                continue;
            }
            let Ok(value) = value.parse::<f64>() else { continue };
            // The family's name: node_hwmon_<type>[_<element>], with a unit suffix below.
            let name_start = o.text.len();
            o.text.push_str("node_hwmon_");
            o.text.push_str(t);
            if element == "input" {
                if empty.is_some() {
                    o.text.push_str("_input");
                }
            } else if !element.is_empty() {
                o.text.push('_');
                clean(element, o.text);
            }
            let base = (name_start, o.text.len());
            let (suffix, help, kind, value): (&str, [&str; 5], Kind, f64) = match (t, element) {
                (_, "fault" | "alarm") => ("", ["Hardware sensor ", element, " status (", t, ")"], Kind::Gauge, value),
                (_, "beep") => ("_enabled", ["Hardware monitor sensor has beeping enabled", "", "", "", ""], Kind::Gauge, value),
                ("in" | "cpu", _) => ("_volts", ["Hardware monitor for voltage (", element, ")", "", ""], Kind::Gauge, value * 0.001),
                ("temp", e) if e != "type" => {
                    let e = if e.is_empty() { "input" } else { e };
                    ("_celsius", ["Hardware monitor for temperature (", e, ")", "", ""], Kind::Gauge, value * 0.001)
                }
                ("curr", _) => ("_amps", ["Hardware monitor for current (", element, ")", "", ""], Kind::Gauge, value * 0.001),
                ("energy", _) => (
                    "_joule_total",
                    ["Hardware monitor for joules used so far (", element, ")", "", ""],
                    Kind::Counter,
                    value / 1000000.0,
                ),
                ("power", "accuracy") => (
                    "",
                    ["Hardware monitor power meter accuracy, as a ratio", "", "", "", ""],
                    Kind::Gauge,
                    value / 1000000.0,
                ),
                ("power", "average_interval" | "average_interval_min" | "average_interval_max") => (
                    "_seconds",
                    ["Hardware monitor power usage update interval (", element, ")", "", ""],
                    Kind::Gauge,
                    value * 0.001,
                ),
                ("power", _) => (
                    "_watt",
                    ["Hardware monitor for power usage in watts (", element, ")", "", ""],
                    Kind::Gauge,
                    value / 1000000.0,
                ),
                ("humidity", _) => (
                    "",
                    [
                        "Hardware monitor for humidity, as a ratio (multiply with 100.0 to get the humidity as a \
                         percentage) (",
                        element,
                        ")",
                        "",
                        "",
                    ],
                    Kind::Gauge,
                    value / 1000000.0,
                ),
                ("fan", "input" | "min" | "max" | "target") => (
                    "_rpm",
                    ["Hardware monitor for fan revolutions per minute (", element, ")", "", ""],
                    Kind::Gauge,
                    value,
                ),
                _ => ("", ["Hardware monitor ", t, " element ", element, ""], Kind::Gauge, value),
            };
            o.text.push_str(suffix);
            let name = (base.0, o.text.len());
            let help = push(o.text, |tx| help.iter().for_each(|p| tx.push_str(p)));
            o.push(name, help, kind, sensor, None, value);
        }
    }
}

/// Where [`entries`] writes: the entries, the text their spans index, and the chip they are of.
struct Out<'a> {
    text: &'a mut String,
    entries: &'a mut Vec<Entry>,
    chip: usize,
}

impl Out<'_> {
    fn add(
        &mut self,
        name: &[&str],
        help: &[&str],
        kind: Kind,
        sensor: Span,
        extra: Option<(&'static str, Span)>,
        value: f64,
    ) {
        let name = push(self.text, |t| name.iter().for_each(|p| t.push_str(p)));
        let help = push(self.text, |t| help.iter().for_each(|p| t.push_str(p)));
        self.push(name, help, kind, sensor, extra, value);
    }

    fn push(
        &mut self,
        name: Span,
        help: Span,
        kind: Kind,
        sensor: Span,
        extra: Option<(&'static str, Span)>,
        value: f64,
    ) {
        self.entries.push(Entry {
            name,
            help,
            kind,
            chip: self.chip,
            sensor,
            extra,
            value,
        });
    }
}
