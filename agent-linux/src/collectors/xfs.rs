//! `xfs`: per-filesystem XFS statistics from `/sys/fs/xfs/<device>/stats/stats` (kernel 4.4 and
//! later): extent allocation, the allocation and block-map B-trees, block mapping, directory
//! and inode operations, read/write calls and vnode operations.
//!
//! The file has one line per statistics group, a name and its counters (`rw 120 340`). Groups
//! node_exporter knows must have their known number of counters, and every counter but the
//! extended-precision `xpc` ones must fit 32 bits; otherwise the whole collector fails, as
//! node_exporter's does.

use std::io;

use super::expo::{Expo, Kind};
use super::files::{invalid, read_optional, set_path, Files, Names};
use super::Paths;

const FILE: &str = "fs/xfs/<device>/stats/stats";

/// (metric suffix after `node_xfs_`, help), in the order of [`Counters::values`].
const METRICS: [(&str, &str); 39] = [
    (
        "extent_allocation_extents_allocated_total",
        "Number of extents allocated for a filesystem.",
    ),
    (
        "extent_allocation_blocks_allocated_total",
        "Number of blocks allocated for a filesystem.",
    ),
    (
        "extent_allocation_extents_freed_total",
        "Number of extents freed for a filesystem.",
    ),
    (
        "extent_allocation_blocks_freed_total",
        "Number of blocks freed for a filesystem.",
    ),
    (
        "allocation_btree_lookups_total",
        "Number of allocation B-tree lookups for a filesystem.",
    ),
    (
        "allocation_btree_compares_total",
        "Number of allocation B-tree compares for a filesystem.",
    ),
    (
        "allocation_btree_records_inserted_total",
        "Number of allocation B-tree records inserted for a filesystem.",
    ),
    (
        "allocation_btree_records_deleted_total",
        "Number of allocation B-tree records deleted for a filesystem.",
    ),
    (
        "block_mapping_reads_total",
        "Number of block map for read operations for a filesystem.",
    ),
    (
        "block_mapping_writes_total",
        "Number of block map for write operations for a filesystem.",
    ),
    (
        "block_mapping_unmaps_total",
        "Number of block unmaps (deletes) for a filesystem.",
    ),
    (
        "block_mapping_extent_list_insertions_total",
        "Number of extent list insertions for a filesystem.",
    ),
    (
        "block_mapping_extent_list_deletions_total",
        "Number of extent list deletions for a filesystem.",
    ),
    (
        "block_mapping_extent_list_lookups_total",
        "Number of extent list lookups for a filesystem.",
    ),
    (
        "block_mapping_extent_list_compares_total",
        "Number of extent list compares for a filesystem.",
    ),
    (
        "block_map_btree_lookups_total",
        "Number of block map B-tree lookups for a filesystem.",
    ),
    (
        "block_map_btree_compares_total",
        "Number of block map B-tree compares for a filesystem.",
    ),
    (
        "block_map_btree_records_inserted_total",
        "Number of block map B-tree records inserted for a filesystem.",
    ),
    (
        "block_map_btree_records_deleted_total",
        "Number of block map B-tree records deleted for a filesystem.",
    ),
    (
        "directory_operation_lookup_total",
        "Number of file name directory lookups which miss the operating systems directory name lookup cache.",
    ),
    (
        "directory_operation_create_total",
        "Number of times a new directory entry was created for a filesystem.",
    ),
    (
        "directory_operation_remove_total",
        "Number of times an existing directory entry was created for a filesystem.",
    ),
    (
        "directory_operation_getdents_total",
        "Number of times the directory getdents operation was performed for a filesystem.",
    ),
    (
        "inode_operation_attempts_total",
        "Number of times the OS looked for an XFS inode in the inode cache.",
    ),
    (
        "inode_operation_found_total",
        "Number of times the OS looked for and found an XFS inode in the inode cache.",
    ),
    (
        "inode_operation_recycled_total",
        "Number of times the OS found an XFS inode in the cache, but could not use it as it was being recycled.",
    ),
    (
        "inode_operation_missed_total",
        "Number of times the OS looked for an XFS inode in the cache, but did not find it.",
    ),
    (
        "inode_operation_duplicates_total",
        "Number of times the OS tried to add a missing XFS inode to the inode cache, but found it had already \
         been added by another process.",
    ),
    (
        "inode_operation_reclaims_total",
        "Number of times the OS reclaimed an XFS inode from the inode cache to free memory for another purpose.",
    ),
    (
        "inode_operation_attribute_changes_total",
        "Number of times the OS explicitly changed the attributes of an XFS inode.",
    ),
    (
        "read_calls_total",
        "Number of read(2) system calls made to files in a filesystem.",
    ),
    (
        "write_calls_total",
        "Number of write(2) system calls made to files in a filesystem.",
    ),
    (
        "vnode_active_total",
        "Number of vnodes not on free lists for a filesystem.",
    ),
    (
        "vnode_allocate_total",
        "Number of times vn_alloc called for a filesystem.",
    ),
    ("vnode_get_total", "Number of times vn_get called for a filesystem."),
    ("vnode_hold_total", "Number of times vn_hold called for a filesystem."),
    (
        "vnode_release_total",
        "Number of times vn_rele called for a filesystem.",
    ),
    (
        "vnode_reclaim_total",
        "Number of times vn_reclaim called for a filesystem.",
    ),
    (
        "vnode_remove_total",
        "Number of times vn_remove called for a filesystem.",
    ),
];

/// The groups whose counters are exported: (group, where its counters go in the exported
/// values, how many of them are exported). `rw` is written `write read`; node_exporter exports
/// read first, so it is placed by hand.
const EXPORTED: [(&str, usize, usize); 7] = [
    ("extent_alloc", 0, 4),
    ("abt", 4, 4),
    ("blk_map", 8, 7),
    ("bmbt", 15, 4),
    ("dir", 19, 4),
    ("ig", 23, 7),
    ("vnodes", 32, 7),
];

/// Counters each group must have, for the groups node_exporter checks (vnodes and qm gained a
/// counter in later kernels, so both counts are accepted).
fn counts_ok(group: &str, count: usize) -> bool {
    match group {
        "extent_alloc" | "abt" | "bmbt" | "dir" | "attr" => count == 4,
        "blk_map" | "ig" => count == 7,
        "trans" | "icluster" | "xpc" => count == 3,
        "log" => count == 5,
        "rw" | "xstrat" => count == 2,
        "vnodes" => count == 7 || count == 8,
        "buf" => count == 9,
        "push_ail" => count == 10,
        "abtb2" | "abtc2" | "bmbt2" | "ibt2" => count == 15,
        "qm" => count == 8 || count == 9,
        "debug" => count == 1,
        _ => true,
    }
}

/// What the collector keeps between scrapes: the filesystems and their exported counters.
#[derive(Default)]
pub(super) struct State {
    devices: Names,
    /// Indexes into `devices` of those with a stats file, and their counters.
    stats: Vec<(usize, [u32; 39])>,
}

pub(super) fn collect(paths: &Paths, s: &mut Files, st: &mut State, expo: &mut Expo<'_>) -> io::Result<()> {
    set_path(&mut s.path, &paths.sysfs, &["fs/xfs"]);
    st.stats.clear();
    match st.devices.read(&s.path, |_, _| true) {
        Ok(()) => {}
        // No XFS module: no filesystems, as node_exporter's empty glob.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    for (index, device) in st.devices.iter().enumerate() {
        let rel = ["fs/xfs", device, "stats/stats"];
        let text = match read_optional(&mut s.path, &paths.sysfs, &rel, &mut s.data) {
            Ok(text) => text,
            // `stats`, the all-filesystems directory, has no stats/stats below it.
            Err(e) if e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::NotADirectory => {
                continue
            }
            Err(e) => return Err(e),
        };
        st.stats.push((index, parse(text)?));
    }
    for (metric, (suffix, help)) in METRICS.iter().enumerate() {
        let name = ["node_xfs_", suffix];
        let mark = expo.family(&name, &[help], Kind::Counter);
        let mut stats = st.stats.iter().peekable();
        for (index, device) in st.devices.iter().enumerate() {
            if let Some((_, values)) = stats.next_if(|(i, _)| *i == index) {
                expo.sample(&name, &[("device", device)], u64::from(values[metric]));
            }
        }
        expo.end_family(mark);
    }
    Ok(())
}

/// The exported counters of one stats file.
fn parse(text: &str) -> io::Result<[u32; 39]> {
    let mut values = [0u32; 39];
    for line in text.lines() {
        let mut words = line.split_ascii_whitespace();
        let Some(group) = words.next() else { continue };
        let mut count = 0;
        let mut line_values = [0u32; 15];
        for word in words.clone() {
            if group == "xpc" {
                word.parse::<u64>()
                    .map_err(|_| invalid(FILE, "an xpc counter that is not a 64-bit number"))?;
            } else {
                let value = word
                    .parse::<u32>()
                    .map_err(|_| invalid(FILE, "a counter that is not a 32-bit number"))?;
                if count < line_values.len() {
                    line_values[count] = value;
                }
            }
            count += 1;
        }
        if count == 0 {
            continue;
        }
        if !counts_ok(group, count) {
            return Err(invalid(
                FILE,
                "a statistics group with the wrong number of counters",
            ));
        }
        if group == "rw" {
            values[30] = line_values[1];
            values[31] = line_values[0];
        } else if let Some((_, at, n)) = EXPORTED.iter().find(|(g, ..)| *g == group) {
            values[*at..*at + *n].copy_from_slice(&line_values[..*n]);
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_checked_as_node_exporter_checks_them() {
        let values =
            parse("rw 7 9\nvnodes 1 2 3 4 5 6 7\nunknown_group 1 2 3\nxpc 99999999999 0 0\n").unwrap();
        // `rw` is written `write read`; read comes first in the exported order.
        assert_eq!((values[30], values[31]), (9, 7));
        assert_eq!(values[32..39], [1, 2, 3, 4, 5, 6, 7]);
        assert!(parse("abt 1 2 3\n").is_err(), "abt has 4 counters");
        assert!(parse("dir 1 2 3 4294967296\n").is_err(), "counters are 32-bit");
        assert!(parse("new_group x\n").is_err(), "every counter is a number");
    }
}
