//! `sockstat`: sockets per protocol and state from `/proc/net/sockstat` and `sockstat6`.

use std::io;

use super::expo::{Expo, Kind};
use super::files::{invalid, read_optional, Files};
use super::Paths;

/// The keys node_exporter reads from a protocol line, in its order; `mem_bytes` follows `mem`.
const KEYS: [&str; 6] = ["inuse", "orphan", "tw", "alloc", "mem", "memory"];

pub(super) fn collect(paths: &Paths, s: &mut Files, expo: &mut Expo<'_>) -> io::Result<()> {
    let page_size = rustix::param::page_size() as f64;
    for (file, ipv6) in [("net/sockstat", false), ("net/sockstat6", true)] {
        // Either file is absent without that IP version; node_exporter skips it then.
        let text = match read_optional(&mut s.path, &paths.procfs, &[file], &mut s.data) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for line in text.lines() {
            let Some((protocol, pairs)) = line.split_once(": ") else {
                return Err(invalid(file, "a line without `protocol: `"));
            };
            let value_of = |key: &str| -> io::Result<Option<i64>> {
                let mut words = pairs.split(' ');
                while let (Some(k), Some(v)) = (words.next(), words.next()) {
                    if k == key {
                        return v
                            .parse()
                            .map(Some)
                            .map_err(|_| invalid(file, "value not a number"));
                    }
                }
                Ok(None)
            };
            if pairs.split(' ').count() % 2 != 0 {
                return Err(invalid(file, "odd number of fields in key/value pairs"));
            }
            if protocol == "sockets" {
                if let (false, Some(used)) = (ipv6, value_of("used")?) {
                    expo.single(
                        &["node_sockstat_sockets_used"],
                        &["Number of IPv4 sockets in use."],
                        Kind::Gauge,
                        &[],
                        used as f64,
                    );
                }
                continue;
            }
            for key in KEYS {
                // node_exporter reports `inuse` even when the line lacks it (as 0).
                let value = match (key, value_of(key)?) {
                    (_, Some(v)) => v,
                    ("inuse", None) => 0,
                    (_, None) => continue,
                };
                write(expo, protocol, key, value as f64);
                if key == "mem" {
                    write(expo, protocol, "mem_bytes", value as f64 * page_size);
                }
            }
        }
    }
    Ok(())
}

fn write(expo: &mut Expo<'_>, protocol: &str, key: &str, value: f64) {
    expo.single(
        &["node_sockstat_", protocol, "_", key],
        &["Number of ", protocol, " sockets in state ", key, "."],
        Kind::Gauge,
        &[],
        value,
    );
}
