//! Prometheus / Kubernetes notation for durations, sizes and CPU.

/// `1h30m`, `30s`, `500ms`, `2d`: Prometheus duration syntax, units in
/// descending order, each at most once. Returns milliseconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    let bad = || format!("`{text}` is not a duration; write it like `30s`, `1m30s` or `500ms`");
    if text.is_empty() {
        return Err(bad());
    }
    if text == "0" {
        return Ok(0);
    }
    let mut rest = text;
    let mut total: u64 = 0;
    let mut last_unit = None::<usize>;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        // `ms` before `m` so `500ms` is not read as minutes followed by junk.
        let unit = [6usize, 0, 1, 2, 3, 4, 5]
            .into_iter()
            .find(|&i| rest.starts_with(UNITS[i].0))
            .ok_or_else(bad)?;
        if last_unit.is_some_and(|l| unit <= l) {
            return Err(format!(
                "`{text}` repeats a unit or lists units out of order; write them largest first, like `1h30m`"
            ));
        }
        last_unit = Some(unit);
        rest = &rest[UNITS[unit].0.len()..];
        total = number
            .checked_mul(UNITS[unit].1)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("`{text}` is too long a duration"))?;
    }
    Ok(total)
}

/// Kubernetes quantity for bytes: `50Gi`, `256Mi`, `1G`, `1024`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    const SUFFIXES: [(&str, u64); 10] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("Pi", 1 << 50),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
        ("P", 1_000_000_000_000_000),
    ];
    let bad = || format!("`{text}` is not a size; write it like `256Mi`, `50Gi` or a number of bytes");
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(bad());
    }
    let number: u64 = text[..digits].parse().map_err(|_| bad())?;
    let suffix = &text[digits..];
    let factor = if suffix.is_empty() {
        1
    } else {
        SUFFIXES
            .iter()
            .find(|(s, _)| *s == suffix)
            .map(|(_, f)| *f)
            .ok_or_else(bad)?
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("`{text}` is too large a size"))
}

/// Kubernetes CPU quantity: `200m`, `0.5`, `2`. Returns millicores.
pub fn parse_cpu(text: &str) -> Result<u32, String> {
    let bad = || format!("`{text}` is not a CPU quantity; write it like `200m` or `0.5`");
    if let Some(millis) = text.strip_suffix('m') {
        if millis.is_empty() || !millis.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        return millis.parse().map_err(|_| bad());
    }
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits_only(whole) || !digits_only(frac) || frac.len() > 3 {
        return Err(bad());
    }
    let whole: u32 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let frac_millis: u32 = format!("{frac:0<3}").parse().map_err(|_| bad())?;
    whole
        .checked_mul(1000)
        .and_then(|w| w.checked_add(frac_millis))
        .ok_or_else(bad)
}

/// A duration for people, the way a spec writes one, largest units first
/// and at most three of them (the rest is cut, not rounded): `1h5m10s`,
/// `30s`, `500ms`.
pub fn format_duration(ms: u64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let mut rest = ms / 1000;
    let mut out = String::new();
    let mut parts = 0;
    for (suffix, seconds) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if rest >= seconds && parts < 3 {
            out.push_str(&format!("{}{suffix}", rest / seconds));
            rest %= seconds;
            parts += 1;
        } else if parts > 0 {
            // Keep the units that follow the first one contiguous.
            parts += 1;
        }
    }
    out
}

/// Bytes in the largest binary unit that divides them, for messages: `256Mi`.
pub fn format_size(bytes: u64) -> String {
    for (suffix, factor) in [
        ("Ti", 1u64 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ] {
        if bytes >= factor {
            return if bytes.is_multiple_of(factor) {
                format!("{}{suffix}", bytes / factor)
            } else {
                format!("{:.1}{suffix}", bytes as f64 / factor as f64)
            };
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(30_000));
        assert_eq!(parse_duration("1m30s"), Ok(90_000));
        assert_eq!(parse_duration("500ms"), Ok(500));
        assert_eq!(parse_duration("1h5m10s20ms"), Ok(3_910_020));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("30s1m").is_err());
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn durations_for_people() {
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(500), "500ms");
        assert_eq!(format_duration(30_000), "30s");
        assert_eq!(format_duration(90_000), "1m30s");
        assert_eq!(format_duration(3_910_020), "1h5m10s");
        assert_eq!(format_duration(3_600_000), "1h");
        assert_eq!(format_duration(90_061_000), "1d1h1m");
        for text in ["30s", "1m30s", "1h5m10s", "2d3h"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }

    #[test]
    fn sizes_and_cpu() {
        assert_eq!(parse_size("50Gi"), Ok(50 << 30));
        assert_eq!(parse_size("256Mi"), Ok(256 << 20));
        assert_eq!(parse_size("1k"), Ok(1000));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert!(parse_size("12GB").is_err());
        assert!(parse_size("Mi").is_err());
        assert_eq!(parse_cpu("200m"), Ok(200));
        assert_eq!(parse_cpu("0.5"), Ok(500));
        assert_eq!(parse_cpu("2"), Ok(2000));
        assert!(parse_cpu("0.0001").is_err());
        assert!(parse_cpu("m").is_err());
        assert_eq!(format_size(256 << 20), "256Mi");
    }
}
