//! `meminfo`: every `/proc/meminfo` field as a gauge, in bytes where the kernel says kB.

use std::io;

use super::expo::{Expo, Kind};
use super::files::{invalid, read_file, Files};
use super::Paths;

pub(super) fn collect(paths: &Paths, s: &mut Files, expo: &mut Expo<'_>) -> io::Result<()> {
    let text = read_file(&mut s.path, &paths.procfs, &["meminfo"], &mut s.data)?;
    let samples_before = expo.samples;
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let mut words = rest.split_ascii_whitespace();
        let Some(number) = words.next() else { continue };
        let value: u64 = number
            .parse()
            .map_err(|_| invalid("meminfo", "value not a number"))?;
        let in_kib = words.next() == Some("kB");
        let value = if in_kib { value.saturating_mul(1024) } else { value };
        let suffix = if in_kib { "_bytes" } else { "" };
        // "Active(anon)" becomes "Active_anon", as node_exporter does.
        let (stem, inner) = match key.split_once('(') {
            Some((stem, inner)) => (stem, inner.trim_end_matches(')')),
            None => (key, ""),
        };
        let sep = if inner.is_empty() { "" } else { "_" };
        let name = ["node_memory_", stem, sep, inner, suffix];
        expo.single(
            &name,
            &["Memory information field ", stem, sep, inner, suffix, "."],
            Kind::Gauge,
            &[],
            value,
        );
    }
    if expo.samples == samples_before {
        return Err(invalid("meminfo", "no fields"));
    }
    Ok(())
}
