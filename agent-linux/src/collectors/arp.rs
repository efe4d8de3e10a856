//! `arp`: ARP table entries per device from `/proc/net/arp`.

use std::io;

use super::expo::{Expo, Kind};
use super::files::{invalid, read_file, Files};
use super::Paths;

pub(super) fn collect(paths: &Paths, s: &mut Files, expo: &mut Expo<'_>) -> io::Result<()> {
    const NAME: &[&str] = &["node_arp_entries"];
    let text = read_file(&mut s.path, &paths.procfs, &["net/arp"], &mut s.data)?;
    for line in text.lines() {
        if line.split_ascii_whitespace().count() < 6 {
            return Err(invalid("net/arp", "unexpected ARP table format"));
        }
    }
    let entries = || text.lines().filter(|l| !l.starts_with("IP"));
    let mark = expo.family(NAME, &["ARP entries by device"], Kind::Gauge);
    // Devices are counted in place (no map): quadratic in the table's lines, which are few.
    for (index, line) in entries().enumerate() {
        let name = device(line);
        if entries().take(index).any(|earlier| device(earlier) == name) {
            continue;
        }
        let count = entries().filter(|l| device(l) == name).count() as u64;
        expo.sample(NAME, &[("device", name.unwrap_or(""))], count);
    }
    expo.end_family(mark);
    Ok(())
}

fn device(line: &str) -> Option<&str> {
    line.split_ascii_whitespace().next_back()
}
