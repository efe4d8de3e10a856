//! `zfs`: OpenZFS kernel statistics from `/proc/spl/kstat/zfs`: the ARC, dbuf, dnode, DMU
//! transaction, fault management, prefetch, vdev and ZIL statistics, each pool's I/O totals,
//! each dataset's reads and writes, and each pool's state.
//!
//! The statistics files are kstat tables: a header line, then a `name type data` line, then
//! one line per statistic. node_exporter exports the 64-bit unsigned ones (type 4) as untyped
//! metrics named after the statistic, with the kstat path as help, and so does this collector.
//! A file that is absent is skipped (ZFS adds files as it gains features); a file without the
//! `name type data` line, or with a value that is not a number, fails the collector.

use std::io;

use super::expo::{Expo, Kind};
use super::files::{invalid, push_span, read_optional, set_path, Files, Names, Span};
use super::Paths;

const KSTAT: &str = "spl/kstat/zfs";

/// (metric prefix after `node_`, kstat file), as node_exporter maps them.
const FILES: [(&str, &str); 11] = [
    ("zfs_abd", "abdstats"),
    ("zfs_arc", "arcstats"),
    ("zfs_dbuf", "dbuf_stats"),
    ("zfs_dmu_tx", "dmu_tx"),
    ("zfs_dnode", "dnodestats"),
    ("zfs_fm", "fm"),
    ("zfs_vdev_cache", "vdev_cache_stats"),
    ("zfs_vdev_mirror", "vdev_mirror_stats"),
    ("zfs_xuio", "xuio_stats"),
    ("zfs_zfetch", "zfetchstats"),
    ("zfs_zil", "zil"),
];

/// Pool states node_exporter reports, one series each.
const POOL_STATES: [&str; 6] = ["online", "degraded", "faulted", "offline", "removed", "unavail"];

/// A per-pool or per-dataset value, kept until every pool has been read so that each family is
/// written in one piece.
struct Entry {
    /// `io` (a pool's totals) or `objset` (a dataset's).
    file: &'static str,
    /// The statistic, with `-` already turned into `_`.
    name: Span,
    /// The statistic as the kstat file names it (the help text's last part).
    key: Span,
    /// Empty for a dataset's statistic listed before its `dataset_name`, as in node_exporter.
    pool: Span,
    dataset: Option<Span>,
    value: u64,
}

/// What the collector keeps between scrapes.
#[derive(Default)]
pub(super) struct State {
    pools: Names,
    objsets: Names,
    text: String,
    name: String,
    entries: Vec<Entry>,
    /// (pool, state line lowercased)
    states: Vec<(Span, Span)>,
}

pub(super) fn collect(paths: &Paths, s: &mut Files, st: &mut State, expo: &mut Expo<'_>) -> io::Result<()> {
    st.text.clear();
    st.entries.clear();
    st.states.clear();
    // Without the ZFS module there is no kstat directory, and the collector fails, as
    // node_exporter's does.
    set_path(&mut s.path, &paths.procfs, &[KSTAT]);
    st.pools.read(&s.path, |_, _| true)?;
    for (prefix, file) in FILES {
        let text = match read_optional(&mut s.path, &paths.procfs, &[KSTAT, file], &mut s.data) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for (key, value) in kstat_values(text) {
            let value = value?;
            st.name.clear();
            st.name.push_str("node_");
            st.name.push_str(prefix);
            st.name.push('_');
            push_metric_name(&mut st.name, key);
            let help = ["kstat.zfs.misc.", file, ".", key];
            expo.single(&[&st.name], &help, Kind::Untyped, &[], value);
        }
    }
    for pool in st.pools.iter() {
        let pool_span = push_span(&mut st.text, pool);
        if let Some(text) = pool_file(paths, s, pool, "io")? {
            pool_io(text, pool_span, &mut st.text, &mut st.entries)?;
        }
        set_path(&mut s.path, &paths.procfs, &[KSTAT, pool]);
        match st.objsets.read(&s.path, |name, _| name.starts_with("objset-")) {
            Ok(()) => {}
            Err(e) if not_a_pool(&e) => continue,
            Err(e) => return Err(e),
        }
        for objset in st.objsets.iter() {
            if let Some(text) = pool_file(paths, s, pool, objset)? {
                dataset(text, pool_span, &mut st.text, &mut st.entries)?;
            }
        }
        if let Some(text) = pool_file(paths, s, pool, "state")? {
            let line = text.lines().next().unwrap_or("");
            let start = st.text.len();
            st.text.push_str(line);
            st.text[start..].make_ascii_lowercase();
            st.states.push((pool_span, (start, st.text.len())));
        }
    }
    let text = &st.text;
    let at = |(start, end): Span| &text[start..end];
    // Unstable sort: it sorts in place, without a buffer. Pools and datasets break ties.
    let key = |e: &Entry| (e.file, at(e.name), at(e.pool), e.dataset.map(at));
    st.entries.sort_unstable_by(|a, b| key(a).cmp(&key(b)));
    let mut rest = &st.entries[..];
    while let Some(first) = rest.first() {
        let same = rest
            .iter()
            .take_while(|e| e.file == first.file && at(e.name) == at(first.name))
            .count();
        let (family, after) = rest.split_at(same);
        rest = after;
        let prefix = if first.file == "io" {
            "node_zfs_zpool_"
        } else {
            "node_zfs_zpool_dataset_"
        };
        let name = [prefix, at(first.name)];
        expo.family(
            &name,
            &["kstat.zfs.misc.", first.file, ".", at(first.key)],
            Kind::Untyped,
        );
        for e in family {
            if e.file == "io" {
                expo.sample(&name, &[("zpool", at(e.pool))], e.value);
            } else {
                let dataset = e.dataset.map_or("", at);
                expo.sample(&name, &[("zpool", at(e.pool)), ("dataset", dataset)], e.value);
            }
        }
    }
    const STATE: &[&str] = &["node_zfs_zpool_state"];
    let mark = expo.family(STATE, &["kstat.zfs.misc.state"], Kind::Gauge);
    for (pool, state) in &st.states {
        for name in POOL_STATES {
            let labels = [("zpool", at(*pool)), ("state", name)];
            expo.sample(STATE, &labels, u64::from(at(*state) == name));
        }
    }
    expo.end_family(mark);
    Ok(())
}

/// node_exporter's metric name for a statistic: `-` becomes `_`.
fn push_metric_name(out: &mut String, key: &str) {
    for (i, part) in key.split('-').enumerate() {
        if i > 0 {
            out.push('_');
        }
        out.push_str(part);
    }
}

/// Entries of the kstat directory that are files (`arcstats`) rather than pools have nothing below them.
fn not_a_pool(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::NotADirectory
}

/// `<kstat>/<pool>/<file>` if it exists.
fn pool_file<'f>(paths: &Paths, s: &'f mut Files, pool: &str, file: &str) -> io::Result<Option<&'f str>> {
    match read_optional(&mut s.path, &paths.procfs, &[KSTAT, pool, file], &mut s.data) {
        Ok(text) => Ok(Some(text)),
        Err(e) if not_a_pool(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The 64-bit unsigned statistics of a kstat table, after its `name type data` line; an error
/// for a bad value or for a table without that line.
fn kstat_values(text: &str) -> impl Iterator<Item = (&str, io::Result<u64>)> {
    let mut lines = text.lines();
    let found = lines
        .by_ref()
        .any(|line| line.split_ascii_whitespace().eq(["name", "type", "data"]));
    let missing = (!found).then(|| {
        (
            "",
            Err(invalid(KSTAT, "a kstat file without its `name type data` line")),
        )
    });
    let values = lines.filter_map(move |line| {
        let mut parts = line.split_ascii_whitespace();
        let (Some(key), Some(kind), Some(value)) = (parts.next(), parts.next(), parts.next()) else {
            return None;
        };
        // Type 4 is KSTAT_DATA_UINT64; the other types are not exported.
        (found && kind == "4").then(|| {
            let parsed = value
                .parse()
                .map_err(|_| invalid(KSTAT, "a kstat value that is not a number"));
            (key, parsed)
        })
    });
    missing.into_iter().chain(values)
}

/// A pool's `io` file: a kstat header, a line of names starting with `nread`, a line of values.
fn pool_io(text: &str, pool: Span, out: &mut String, entries: &mut Vec<Entry>) -> io::Result<()> {
    let mut lines = text.lines();
    let Some(names) = lines.by_ref().find(|line| {
        let mut words = line.split_ascii_whitespace();
        words.next() == Some("nread") && words.count() >= 11
    }) else {
        return Ok(());
    };
    for line in lines {
        let mut values = line.split_ascii_whitespace();
        for name in names.split_ascii_whitespace() {
            let value = values
                .next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| invalid(KSTAT, "a pool's io line without a number for each name"))?;
            let key = push_span(out, name);
            let start = out.len();
            push_metric_name(out, name);
            entries.push(Entry {
                file: "io",
                name: (start, out.len()),
                key,
                pool,
                dataset: None,
                value,
            });
        }
    }
    Ok(())
}

/// A dataset's `objset-<id>` kstat table: its `dataset_name`, then its statistics.
fn dataset(text: &str, pool: Span, out: &mut String, entries: &mut Vec<Entry>) -> io::Result<()> {
    let mut lines = text.lines();
    if !lines
        .by_ref()
        .any(|line| line.split_ascii_whitespace().eq(["name", "type", "data"]))
    {
        return Err(invalid(KSTAT, "an objset file without its `name type data` line"));
    }
    let mut dataset = None;
    for line in lines {
        let mut parts = line.split_ascii_whitespace();
        let (Some(key), Some(kind), Some(value)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if key == "dataset_name" {
            dataset = Some(push_span(out, value));
        } else if kind == "4" {
            let value = value
                .parse()
                .map_err(|_| invalid(KSTAT, "a kstat value that is not a number"))?;
            let key_span = push_span(out, key);
            let start = out.len();
            push_metric_name(out, key);
            entries.push(Entry {
                file: "objset",
                name: (start, out.len()),
                key: key_span,
                pool: if dataset.is_some() { pool } else { (0, 0) },
                dataset,
                value,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kstat_tables() {
        let text = "1 1 0x01 3 144 1 2\nname type data\nhits 4 10\nlabel 7 text\nerpt-dropped 4 2\n";
        let values: Vec<(&str, u64)> = kstat_values(text).map(|(k, v)| (k, v.unwrap())).collect();
        assert_eq!(values, [("hits", 10), ("erpt-dropped", 2)]);
        let mut name = String::new();
        push_metric_name(&mut name, "erpt-set-failed");
        assert_eq!(name, "erpt_set_failed");
        // A table without its column line, or with a bad number, fails the collector.
        assert!(kstat_values("hits 4 10\n").any(|(_, v)| v.is_err()));
        assert!(kstat_values("name type data\nhits 4 x\n").any(|(_, v)| v.is_err()));
    }
}
