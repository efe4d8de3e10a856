//! Prometheus's duration text (Go's `model.Duration`), written and read the same way in the
//! discovery labels (`__scrape_interval__`) and the agent's targets page (`scrapeInterval`).

use core::fmt::{self, Write};

const DAY: u64 = 24 * 3_600_000;

/// Prometheus's units, largest first.
const UNITS: [(&str, u64); 7] = [
    ("y", 365 * DAY),
    ("w", 7 * DAY),
    ("d", DAY),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Writes `ms` as Prometheus writes a duration: `30s`, `1m30s`, `500ms`; years and weeks
/// only when they divide what is left (8 days is `8d`, not `1w1d`).
pub fn write(ms: u64, out: &mut impl Write) -> fmt::Result {
    if ms == 0 {
        return out.write_str("0s");
    }
    let mut rest = ms;
    for (unit, size) in UNITS {
        let whole_only = matches!(unit, "y" | "w");
        if whole_only && !rest.is_multiple_of(size) {
            continue;
        }
        let n = rest / size;
        if n > 0 {
            write!(out, "{n}{unit}")?;
            rest -= n * size;
        }
    }
    Ok(())
}

/// Parses Prometheus's duration text (units `y w d h m s ms`, largest first, each at most
/// once); `None` when it is not one.
pub fn parse(text: &str) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    let mut rest = text;
    let mut total: u64 = 0;
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        // `ms` before `m`: the longer unit first.
        let (i, (unit, size)) = UNITS
            .iter()
            .enumerate()
            .skip(next_unit)
            .filter(|(_, (u, _))| rest.starts_with(u))
            .max_by_key(|(_, (u, _))| u.len())?;
        rest = &rest[unit.len()..];
        total = total.checked_add(n.checked_mul(*size)?)?;
        next_unit = i + 1;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    #[test]
    fn durations_read_and_write_as_prometheus_does() {
        for (ms, text) in [
            (0, "0s"),
            (500, "500ms"),
            (10_000, "10s"),
            (30_000, "30s"),
            (60_000, "1m"),
            (90_000, "1m30s"),
            (3_600_000, "1h"),
            (86_400_000, "1d"),
            (604_800_000, "1w"),
            (691_200_000, "8d"),
            (1_500, "1s500ms"),
        ] {
            let mut s = String::new();
            write(ms, &mut s).unwrap();
            assert_eq!(s, text);
            assert_eq!(parse(text), Some(ms), "{text}");
        }
        for bad in ["", "1", "s", "1x", "1s1m", "1m1m", "-1s"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
