//! `os`: the distribution's os-release fields as labels of `node_os_info`, and its version.

use std::io;

use super::expo::{Expo, Kind};
use super::files::{read_optional, Files};
use super::Paths;

/// os-release keys in the order of node_os_info's labels.
const KEYS: [(&str, &str); 12] = [
    ("BUILD_ID", "build_id"),
    ("ID", "id"),
    ("ID_LIKE", "id_like"),
    ("IMAGE_ID", "image_id"),
    ("IMAGE_VERSION", "image_version"),
    ("NAME", "name"),
    ("PRETTY_NAME", "pretty_name"),
    ("VARIANT", "variant"),
    ("VARIANT_ID", "variant_id"),
    ("VERSION", "version"),
    ("VERSION_CODENAME", "version_codename"),
    ("VERSION_ID", "version_id"),
];

pub(super) fn collect(paths: &Paths, s: &mut Files, expo: &mut Expo<'_>) -> io::Result<()> {
    let text = match read_optional(&mut s.path, &paths.rootfs, &["etc/os-release"], &mut s.data) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            read_optional(&mut s.path, &paths.rootfs, &["usr/lib/os-release"], &mut s.data)?
        }
        Err(e) => return Err(e),
    };
    // Values are unquoted into `s.text`; ranges index it per key of KEYS.
    s.text.clear();
    let mut ranges = [(0usize, 0usize); 12];
    for line in text.lines() {
        let Some((key, raw)) = line.trim().split_once('=') else {
            continue;
        };
        if let Some(index) = KEYS.iter().position(|(k, _)| *k == key.trim()) {
            let start = s.text.len();
            unquote(raw.trim(), &mut s.text);
            ranges[index] = (start, s.text.len());
        }
    }
    let value = |index: usize| &s.text[ranges[index].0..ranges[index].1];
    let mut labels = [("", ""); 12];
    for (index, (_, label)) in KEYS.iter().enumerate() {
        labels[index] = (label, value(index));
    }
    expo.single(
        &["node_os_info"],
        &[
            "A metric with a constant '1' value labeled by build_id, id, id_like, image_id, image_version, \
             name, pretty_name, variant, variant_id, version, version_codename, version_id.",
        ],
        Kind::Gauge,
        &labels,
        1u64,
    );
    let version = major_minor(value(11));
    if version > 0.0 {
        expo.single(
            &["node_os_version"],
            &["Metric containing the major.minor part of the OS version."],
            Kind::Gauge,
            &[("id", value(1)), ("id_like", value(2)), ("name", value(5))],
            version,
        );
    }
    Ok(())
}

/// A shell-style value: `"..."` with backslash escapes, `'...'` literally, or bare.
fn unquote(raw: &str, out: &mut String) {
    if let Some(inner) = raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        out.push_str(inner);
    } else if let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match (c, chars.clone().next()) {
                ('\\', Some(next @ ('"' | '\\' | '$' | '`'))) => {
                    out.push(next);
                    chars.next();
                }
                _ => out.push(c),
            }
        }
    } else {
        out.push_str(raw);
    }
}

/// node_exporter's `^[0-9]+\.?[0-9]*` of VERSION_ID, as a number; 0 when there is none.
fn major_minor(version_id: &str) -> f64 {
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let major = digits(version_id);
    if major == 0 {
        return 0.0;
    }
    let mut end = major;
    if version_id[end..].starts_with('.') {
        end += 1 + digits(&version_id[end + 1..]);
    }
    version_id[..end].trim_end_matches('.').parse().unwrap_or(0.0)
}
