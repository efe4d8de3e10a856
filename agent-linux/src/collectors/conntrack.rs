//! `conntrack`: the netfilter connection-tracking table's size, limit and per-CPU statistics
//! (summed) from `/proc/sys/net/netfilter` and `/proc/net/stat/nf_conntrack`.

use std::io;

use super::expo::{Expo, Kind};
use super::files::{invalid, read_file, Files};
use super::Paths;

/// (column of `/proc/net/stat/nf_conntrack`, metric, help); the kernel has written these 17
/// hexadecimal columns since 5.x (`entries clashres found new invalid ignore delete chainlength
/// insert insert_failed drop early_drop icmp_error expect_new expect_create expect_delete
/// search_restart`).
const STATS: [(usize, &str, &str); 8] = [
    (
        2,
        "node_nf_conntrack_stat_found",
        "Number of searched entries which were successful.",
    ),
    (
        4,
        "node_nf_conntrack_stat_invalid",
        "Number of packets seen which can not be tracked.",
    ),
    (
        5,
        "node_nf_conntrack_stat_ignore",
        "Number of packets seen which are already connected to a conntrack entry.",
    ),
    (
        8,
        "node_nf_conntrack_stat_insert",
        "Number of entries inserted into the list.",
    ),
    (
        9,
        "node_nf_conntrack_stat_insert_failed",
        "Number of entries for which list insertion was attempted but failed.",
    ),
    (
        10,
        "node_nf_conntrack_stat_drop",
        "Number of packets dropped due to conntrack failure.",
    ),
    (
        11,
        "node_nf_conntrack_stat_early_drop",
        "Number of dropped conntrack entries to make room for new ones, if maximum table size was reached.",
    ),
    (
        16,
        "node_nf_conntrack_stat_search_restart",
        "Number of conntrack table lookups which had to be restarted due to hashtable resizes.",
    ),
];
const COLUMNS: usize = 17;

pub(super) fn collect(paths: &Paths, s: &mut Files, expo: &mut Expo<'_>) -> io::Result<()> {
    for (file, name, help) in [
        (
            "nf_conntrack_count",
            "node_nf_conntrack_entries",
            "Number of currently allocated flow entries for connection tracking.",
        ),
        (
            "nf_conntrack_max",
            "node_nf_conntrack_entries_limit",
            "Maximum size of connection tracking table.",
        ),
    ] {
        let rel = ["sys/net/netfilter", file];
        // Absent without the conntrack module: the collector fails, as node_exporter's does.
        let text = read_file(&mut s.path, &paths.procfs, &rel, &mut s.data)?;
        let value: u64 = text
            .trim()
            .parse()
            .map_err(|_| invalid("sys/net/netfilter", "value not a number"))?;
        expo.single(&[name], &[help], Kind::Gauge, &[], value);
    }
    let text = read_file(
        &mut s.path,
        &paths.procfs,
        &["net/stat/nf_conntrack"],
        &mut s.data,
    )?;
    let mut sums = [0u64; COLUMNS];
    for line in text.lines().skip(1) {
        let mut count = 0;
        for (sum, field) in sums.iter_mut().zip(line.split_ascii_whitespace()) {
            let value = u64::from_str_radix(field, 16)
                .map_err(|_| invalid("net/stat/nf_conntrack", "field not hexadecimal"))?;
            *sum = sum.wrapping_add(value);
            count += 1;
        }
        if count != COLUMNS || line.split_ascii_whitespace().count() != COLUMNS {
            return Err(invalid("net/stat/nf_conntrack", "a line does not have 17 fields"));
        }
    }
    for (column, name, help) in STATS {
        expo.single(&[name], &[help], Kind::Gauge, &[], sums[column]);
    }
    Ok(())
}
