//! `loadavg`: the three load averages from `/proc/loadavg`.

use std::io;

use super::expo::{Expo, Kind};
use super::files::{invalid, read_file, Files};
use super::Paths;

pub(super) fn collect(paths: &Paths, s: &mut Files, expo: &mut Expo<'_>) -> io::Result<()> {
    let text = read_file(&mut s.path, &paths.procfs, &["loadavg"], &mut s.data)?;
    let mut words = text.split_ascii_whitespace();
    for (name, help) in [
        ("node_load1", "1m load average."),
        ("node_load5", "5m load average."),
        ("node_load15", "15m load average."),
    ] {
        let value: f64 = words
            .next()
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| invalid("loadavg", "fewer than 3 load averages"))?;
        expo.single(&[name], &[help], Kind::Gauge, &[], value);
    }
    Ok(())
}
