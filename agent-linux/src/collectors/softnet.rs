//! `softnet`: per-CPU packet processing counters from `/proc/net/softnet_stat`.

use std::io;

use super::expo::{Expo, Kind, SmallNumber};
use super::files::{invalid, read_file, Files};
use super::Paths;

const FAMILIES: [(&str, &str); 3] = [
    ("node_softnet_processed_total", "Number of processed packets"),
    ("node_softnet_dropped_total", "Number of dropped packets"),
    (
        "node_softnet_times_squeezed_total",
        "Number of times processing packets ran out of quota",
    ),
];

pub(super) fn collect(paths: &Paths, s: &mut Files, expo: &mut Expo<'_>) -> io::Result<()> {
    let text = read_file(&mut s.path, &paths.procfs, &["net/softnet_stat"], &mut s.data)?;
    for line in text.lines() {
        if line.split_ascii_whitespace().count() < 9 {
            return Err(invalid("net/softnet_stat", "a line has fewer than 9 columns"));
        }
    }
    // One line per online CPU, numbered as node_exporter 1.5 numbers them: by line.
    for (column, (name, help)) in FAMILIES.into_iter().enumerate() {
        let mark = expo.family(&[name], &[help], Kind::Counter);
        for (cpu, line) in text.lines().enumerate() {
            let field = line.split_ascii_whitespace().nth(column).unwrap_or("");
            let value = u32::from_str_radix(field, 16)
                .map_err(|_| invalid("net/softnet_stat", "column not hexadecimal"))?;
            let cpu = SmallNumber::new(cpu as u64);
            expo.sample(&[name], &[("cpu", cpu.as_str())], u64::from(value));
        }
        expo.end_family(mark);
    }
    Ok(())
}
