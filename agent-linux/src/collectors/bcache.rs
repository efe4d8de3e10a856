//! `bcache`: block-device caches from `/sys/fs/bcache/<set uuid>/`: the cache set's B-tree and
//! journal, each backing device's dirty data, writeback controller and hit/miss/bypass totals,
//! and each cache device's writes and I/O errors (the kernel's admin-guide/bcache.rst lists the
//! files).
//!
//! Sizes are written the way the kernel's `bch_hprint` prints them: an integer, or a number
//! with one decimal digit and a binary suffix (`1.5k`, `20.4G`). node_exporter reads the digit
//! after the point as 1024ths scaled by 100 (`.5` is 5/10.24), and so does this collector, so
//! both report the same value. node_exporter's `--collector.bcache.priorityStats` (off by
//! default: reading `priority_stats` walks the whole cache) has no plan option.

use std::io;

use super::expo::{Expo, Kind};
use super::files::{invalid, numbered, push_span, read_optional, set_path, Files, Names, Span};
use super::Paths;

const BCACHE: &str = "fs/bcache";

/// Files of a set, its `internal` directory and a period directory, in the order of the values.
const SET_FILES: [&str; 6] = [
    "average_key_size",
    "btree_cache_size",
    "cache_available_percent",
    "congested",
    "root_usage_percent",
    "tree_depth",
];
const INTERNAL_FILES: [&str; 4] = [
    "active_journal_entries",
    "btree_nodes",
    "btree_read_average_duration_us",
    "cache_read_races",
];
const PERIOD_FILES: [&str; 7] = [
    "bypassed",
    "cache_hits",
    "cache_misses",
    "cache_bypass_hits",
    "cache_bypass_misses",
    "cache_miss_collisions",
    "cache_readaheads",
];
const CACHE_FILES: [&str; 3] = ["io_errors", "metadata_written", "written"];

/// (metric suffix after `node_bcache_`, help, type) of a set's values, in `SET_FILES` then
/// `INTERNAL_FILES` order.
const SET_METRICS: [(&str, &str, Kind); 10] = [
    (
        "average_key_size_sectors",
        "Average data per key in the btree (sectors).",
        Kind::Gauge,
    ),
    (
        "btree_cache_size_bytes",
        "Amount of memory currently used by the btree cache.",
        Kind::Gauge,
    ),
    (
        "cache_available_percent",
        "Percentage of cache device without dirty data, usable for writeback (may contain clean cached data).",
        Kind::Gauge,
    ),
    ("congested", "Congestion.", Kind::Gauge),
    (
        "root_usage_percent",
        "Percentage of the root btree node in use (tree depth increases if too high).",
        Kind::Gauge,
    ),
    ("tree_depth", "Depth of the btree.", Kind::Gauge),
    (
        "active_journal_entries",
        "Number of journal entries that are newer than the index.",
        Kind::Gauge,
    ),
    ("btree_nodes", "Total nodes in the btree.", Kind::Gauge),
    (
        "btree_read_average_duration_seconds",
        "Average btree read duration.",
        Kind::Gauge,
    ),
    (
        "cache_read_races_total",
        "Counts instances where while data was being read from the cache, the bucket was reused and \
         invalidated - i.e. where the pointer was stale after the read completed.",
        Kind::Counter,
    ),
];

/// A backing device's values: `dirty_data`, five from `writeback_rate_debug`, then
/// `stats_total` in `PERIOD_FILES` order.
const BDEV_METRICS: [(&str, &str, Kind); 13] = [
    (
        "dirty_data_bytes",
        "Amount of dirty data for this backing device in the cache.",
        Kind::Gauge,
    ),
    (
        "dirty_target_bytes",
        "Current dirty data target threshold for this backing device in bytes.",
        Kind::Gauge,
    ),
    (
        "writeback_rate",
        "Current writeback rate for this backing device in bytes.",
        Kind::Gauge,
    ),
    (
        "writeback_rate_proportional_term",
        "Current result of proportional controller, part of writeback rate",
        Kind::Gauge,
    ),
    (
        "writeback_rate_integral_term",
        "Current result of integral controller, part of writeback rate",
        Kind::Gauge,
    ),
    (
        "writeback_change",
        "Last writeback rate change step for this backing device.",
        Kind::Gauge,
    ),
    (
        "bypassed_bytes_total",
        "Amount of IO (both reads and writes) that has bypassed the cache.",
        Kind::Counter,
    ),
    (
        "cache_hits_total",
        "Hits counted per individual IO as bcache sees them.",
        Kind::Counter,
    ),
    (
        "cache_misses_total",
        "Misses counted per individual IO as bcache sees them.",
        Kind::Counter,
    ),
    (
        "cache_bypass_hits_total",
        "Hits for IO intended to skip the cache.",
        Kind::Counter,
    ),
    (
        "cache_bypass_misses_total",
        "Misses for IO intended to skip the cache.",
        Kind::Counter,
    ),
    (
        "cache_miss_collisions_total",
        "Instances where data insertion from cache miss raced with write (data already present).",
        Kind::Counter,
    ),
    (
        "cache_readaheads_total",
        "Count of times readahead occurred.",
        Kind::Counter,
    ),
];

const CACHE_METRICS: [(&str, &str, Kind); 3] = [
    (
        "io_errors",
        "Number of errors that have occurred, decayed by io_error_halflife.",
        Kind::Gauge,
    ),
    (
        "metadata_written_bytes_total",
        "Sum of all non data writes (btree writes and all other metadata).",
        Kind::Counter,
    ),
    (
        "written_bytes_total",
        "Sum of all data that has been written to the cache.",
        Kind::Counter,
    ),
];

/// What the collector keeps between scrapes: directory listings, device names, and the values
/// of every set, backing device and cache device, gathered before they are written.
#[derive(Default)]
pub(super) struct State {
    sets: Names,
    members: Names,
    text: String,
    set_values: Vec<(Span, [f64; 10])>,
    /// (set, device name, values)
    bdevs: Vec<(usize, Span, [f64; 13])>,
    caches: Vec<(usize, Span, [f64; 3])>,
}

pub(super) fn collect(paths: &Paths, s: &mut Files, st: &mut State, expo: &mut Expo<'_>) -> io::Result<()> {
    st.text.clear();
    st.set_values.clear();
    st.bdevs.clear();
    st.caches.clear();
    set_path(&mut s.path, &paths.sysfs, &[BCACHE]);
    match st.sets.read(&s.path, |name, _| name.contains('-')) {
        Ok(()) => {}
        // No bcache module: no sets, as node_exporter's empty glob.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    for set in st.sets.iter() {
        let set_index = st.set_values.len();
        let mut values = [0f64; 10];
        for (slot, file) in values.iter_mut().zip(SET_FILES) {
            *slot = value(paths, s, &[BCACHE, set, file])? as f64;
        }
        for (slot, file) in values[6..].iter_mut().zip(INTERNAL_FILES) {
            *slot = value(paths, s, &[BCACHE, set, "internal", file])? as f64;
        }
        // node_exporter reads the microseconds as nanoseconds; its value is kept.
        values[8] *= 1e-9;
        // The set's own period totals are read (a bad one fails the collector) but not exported.
        for period in ["stats_five_minute", "stats_total"] {
            for file in PERIOD_FILES {
                value(paths, s, &[BCACHE, set, period, file])?;
            }
        }
        st.set_values.push((push_span(&mut st.text, set), values));

        set_path(&mut s.path, &paths.sysfs, &[BCACHE, set]);
        st.members.read(&s.path, |name, _| {
            numbered(name, "bdev") || numbered(name, "cache")
        })?;
        for device in st.members.iter() {
            if device.starts_with("bdev") {
                let mut values = [0f64; 13];
                values[0] = value(paths, s, &[BCACHE, set, device, "dirty_data"])? as f64;
                writeback_rate_debug(paths, s, set, device, &mut values[1..6])?;
                for file in PERIOD_FILES {
                    value(paths, s, &[BCACHE, set, device, "stats_five_minute", file])?;
                }
                for (slot, file) in values[6..].iter_mut().zip(PERIOD_FILES) {
                    *slot = value(paths, s, &[BCACHE, set, device, "stats_total", file])? as f64;
                }
                st.bdevs
                    .push((set_index, push_span(&mut st.text, device), values));
            } else {
                let mut values = [0f64; 3];
                for (slot, file) in values.iter_mut().zip(CACHE_FILES) {
                    *slot = value(paths, s, &[BCACHE, set, device, file])? as f64;
                }
                st.caches
                    .push((set_index, push_span(&mut st.text, device), values));
            }
        }
    }
    let text = &st.text;
    let at = |(start, end): Span| &text[start..end];
    for (index, (suffix, help, kind)) in SET_METRICS.iter().enumerate() {
        let name = ["node_bcache_", suffix];
        let mark = expo.family(&name, &[help], *kind);
        for (set, values) in &st.set_values {
            expo.sample(&name, &[("uuid", at(*set))], values[index]);
        }
        expo.end_family(mark);
    }
    for (index, (suffix, help, kind)) in BDEV_METRICS.iter().enumerate() {
        let name = ["node_bcache_", suffix];
        let mark = expo.family(&name, &[help], *kind);
        for (set, device, values) in &st.bdevs {
            let uuid = at(st.set_values[*set].0);
            expo.sample(
                &name,
                &[("uuid", uuid), ("backing_device", at(*device))],
                values[index],
            );
        }
        expo.end_family(mark);
    }
    for (index, (suffix, help, kind)) in CACHE_METRICS.iter().enumerate() {
        let name = ["node_bcache_", suffix];
        let mark = expo.family(&name, &[help], *kind);
        for (set, device, values) in &st.caches {
            let uuid = at(st.set_values[*set].0);
            expo.sample(
                &name,
                &[("uuid", uuid), ("cache_device", at(*device))],
                values[index],
            );
        }
        expo.end_family(mark);
    }
    Ok(())
}

/// One value file, `rel` under the sysfs root; an absent file counts as 0, as in node_exporter.
fn value(paths: &Paths, s: &mut Files, rel: &[&str]) -> io::Result<u64> {
    let text = match read_optional(&mut s.path, &paths.sysfs, rel, &mut s.aux) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    dehumanize(text.strip_suffix('\n').unwrap_or(text))
        .ok_or_else(|| invalid("fs/bcache", "a value that is not a number or a bch_hprint size"))
}

/// The controller's state in `writeback_rate_debug`: target, rate, proportional, integral and
/// change, in that order, into `out`. The file must exist.
fn writeback_rate_debug(
    paths: &Paths,
    s: &mut Files,
    set: &str,
    device: &str,
    out: &mut [f64],
) -> io::Result<()> {
    let rel = [BCACHE, set, device, "writeback_rate_debug"];
    let text = read_optional(&mut s.path, &paths.sysfs, &rel, &mut s.aux)?;
    let bad = || {
        invalid(
            "fs/bcache",
            "writeback_rate_debug: a value that is not a number or a size",
        )
    };
    for line in text.lines() {
        let Some(last) = line.split_ascii_whitespace().last() else {
            continue;
        };
        let unsigned = |v: &str| dehumanize(v).map(|v| v as f64).ok_or_else(bad);
        let signed = |v: &str| dehumanize_signed(v).ok_or_else(bad);
        if line.starts_with("rate:") {
            out[1] = unsigned(last.strip_suffix("/sec").unwrap_or(last))?;
        } else if line.starts_with("dirty:") {
            unsigned(last)?;
        } else if line.starts_with("target:") {
            out[0] = unsigned(last)?;
        } else if line.starts_with("proportional:") {
            out[2] = signed(last)?;
        } else if line.starts_with("integral:") {
            out[3] = signed(last)?;
        } else if line.starts_with("change:") {
            out[4] = signed(last.strip_suffix("/sec").unwrap_or(last))?;
        } else if line.starts_with("next io:") {
            last.strip_suffix("ms")
                .unwrap_or(last)
                .parse::<i64>()
                .map_err(|_| bad())?;
        }
    }
    Ok(())
}

/// A `bch_hprint` size (or a plain number) in units. An unknown suffix multiplies by 0, as in
/// node_exporter.
fn dehumanize(text: &str) -> Option<u64> {
    let last = *text.as_bytes().last()?;
    if last > b'9' {
        let power = match last {
            b'k' => 10,
            b'M' => 20,
            b'G' => 30,
            b'T' => 40,
            b'P' => 50,
            b'E' => 60,
            b'Z' => 70,
            b'Y' => 80,
            _ => return pseudo_float(&text[..text.len() - 1]).map(|_| 0),
        };
        let mantissa = pseudo_float(&text[..text.len() - 1])?;
        Some((mantissa * 2f64.powi(power)) as u64)
    } else {
        text.parse::<f64>().ok().map(|v| v as u64)
    }
}

fn dehumanize_signed(text: &str) -> Option<f64> {
    match text.strip_prefix('-') {
        Some(rest) => dehumanize(rest).map(|v| -(v as i64) as f64),
        None => dehumanize(text).map(|v| v as i64 as f64),
    }
}

/// `bch_hprint`'s number before the suffix: `12` or `12.3`, the digit after the point counting
/// tenths of 1024 (node_exporter divides it by 10.24).
fn pseudo_float(text: &str) -> Option<f64> {
    let mut parts = text.split('.');
    let integer: f64 = parts.next()?.parse().ok()?;
    match parts.next() {
        None => Some(integer),
        Some(fraction) => Some(integer + fraction.parse::<f64>().ok()? / 10.24),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bch_hprint_sizes() {
        assert_eq!(dehumanize("512"), Some(512));
        // 1 + 5/10.24 = 1.48828125 KiB
        assert_eq!(dehumanize("1.5k"), Some(1524));
        assert_eq!(dehumanize("2M"), Some(2 << 20));
        assert_eq!(dehumanize("x"), None);
        assert_eq!(dehumanize(""), None);
        assert_eq!(dehumanize_signed("-3k"), Some(-3072.0));
    }
}
