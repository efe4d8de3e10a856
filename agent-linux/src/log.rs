//! One line per event on stderr: logfmt by default, JSON on request.
//!
//! Fields are passed as `(&str, &dyn Display)` pairs so a call site formats
//! nothing when its level is off. Callers never pass credentials: the agent
//! only ever logs file paths of secrets, never their contents.

use std::fmt::{self, Display, Write as _};
use std::io::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}

impl Level {
    pub fn from_name(name: &str) -> Option<Level> {
        match name {
            "debug" => Some(Level::Debug),
            "info" => Some(Level::Info),
            "warn" => Some(Level::Warn),
            "error" => Some(Level::Error),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Logfmt = 0,
    Json = 1,
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
static FORMAT: AtomicU8 = AtomicU8::new(Format::Logfmt as u8);

pub fn init(format: Format, level: Level) {
    FORMAT.store(format as u8, Ordering::Relaxed);
    LEVEL.store(level as u8, Ordering::Relaxed);
}

pub fn enabled(level: Level) -> bool {
    level as u8 >= LEVEL.load(Ordering::Relaxed)
}

pub fn debug(msg: &str, fields: &[(&str, &dyn Display)]) {
    event(Level::Debug, msg, fields)
}
pub fn info(msg: &str, fields: &[(&str, &dyn Display)]) {
    event(Level::Info, msg, fields)
}
pub fn warn(msg: &str, fields: &[(&str, &dyn Display)]) {
    event(Level::Warn, msg, fields)
}
pub fn error(msg: &str, fields: &[(&str, &dyn Display)]) {
    event(Level::Error, msg, fields)
}

pub fn event(level: Level, msg: &str, fields: &[(&str, &dyn Display)]) {
    if !enabled(level) {
        return;
    }
    let format = if FORMAT.load(Ordering::Relaxed) == Format::Json as u8 {
        Format::Json
    } else {
        Format::Logfmt
    };
    let line = render(format, now_ms(), level, msg, fields);
    // A full or closed stderr must not take the agent down.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One complete line, newline included.
pub fn render(
    format: Format,
    ts_ms: u64,
    level: Level,
    msg: &str,
    fields: &[(&str, &dyn Display)],
) -> String {
    let mut line = String::with_capacity(128);
    let mut ts = String::with_capacity(24);
    let _ = write_rfc3339(&mut ts, ts_ms);
    let mut value = String::new();
    match format {
        Format::Logfmt => {
            let _ = write!(line, "ts={ts} level={} msg=", level.as_str());
            logfmt_value(&mut line, msg);
            for (key, v) in fields {
                value.clear();
                let _ = write!(value, "{v}");
                line.push(' ');
                line.push_str(key);
                line.push('=');
                logfmt_value(&mut line, &value);
            }
        }
        Format::Json => {
            let _ = write!(
                line,
                "{{\"ts\":\"{ts}\",\"level\":\"{}\",\"msg\":",
                level.as_str()
            );
            json_string(&mut line, msg);
            for (key, v) in fields {
                value.clear();
                let _ = write!(value, "{v}");
                line.push(',');
                json_string(&mut line, key);
                line.push(':');
                json_string(&mut line, &value);
            }
            line.push('}');
        }
    }
    line.push('\n');
    line
}

fn logfmt_value(out: &mut String, v: &str) {
    let bare = !v.is_empty()
        && v.chars()
            .all(|c| c > ' ' && c != '"' && c != '=' && c != '\\' && c != '\u{7f}');
    if bare {
        out.push_str(v);
        return;
    }
    out.push('"');
    for c in v.chars() {
        if !push_shared_escape(out, c) {
            out.push(c);
        }
    }
    out.push('"');
}

/// The escapes logfmt and JSON strings share; false when `c` needs none of
/// them.
fn push_shared_escape(out: &mut String, c: char) -> bool {
    let escaped = match c {
        '"' => "\\\"",
        '\\' => "\\\\",
        '\n' => "\\n",
        '\r' => "\\r",
        '\t' => "\\t",
        _ => return false,
    };
    out.push_str(escaped);
    true
}

/// JSON string with the escapes RFC 8259 requires.
pub fn json_string(out: &mut String, v: &str) {
    out.push('"');
    json_escaped(out, v);
    out.push('"');
}

/// The inside of a JSON string: `v` with the escapes RFC 8259 requires,
/// without the quotes (for a string written in pieces).
pub fn json_escaped(out: &mut String, v: &str) {
    for c in v.chars() {
        if push_shared_escape(out, c) {
            continue;
        }
        if (c as u32) < 0x20 {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
}

/// `2026-11-24T18:30:39.123Z`, from milliseconds since the epoch.
pub fn write_rfc3339(out: &mut impl fmt::Write, ms: u64) -> fmt::Result {
    let secs = ms / 1000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms % 1000
    )
}

/// Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// well-known algorithm, restated).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let mut s = String::new();
        write_rfc3339(&mut s, 0).unwrap();
        assert_eq!(s, "1970-01-01T00:00:00.000Z");
        s.clear();
        // 2024-02-29T12:34:56.789Z, a leap day.
        write_rfc3339(&mut s, 1_709_210_096_789).unwrap();
        assert_eq!(s, "2024-02-29T12:34:56.789Z");
    }

    #[test]
    fn logfmt_quotes_only_when_needed() {
        let line = render(
            Format::Logfmt,
            0,
            Level::Warn,
            "scrape failed",
            &[("target", &"a:9100"), ("err", &"line 3: \"bad\"")],
        );
        assert_eq!(
            line,
            "ts=1970-01-01T00:00:00.000Z level=warn msg=\"scrape failed\" target=a:9100 err=\"line 3: \\\"bad\\\"\"\n"
        );
    }

    #[test]
    fn json_lines_escape_control_characters() {
        let line = render(Format::Json, 0, Level::Info, "x\ny", &[("n", &3)]);
        assert_eq!(
            line,
            "{\"ts\":\"1970-01-01T00:00:00.000Z\",\"level\":\"info\",\"msg\":\"x\\ny\",\"n\":\"3\"}\n"
        );
    }
}
