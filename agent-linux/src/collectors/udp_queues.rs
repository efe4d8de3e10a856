//! `udp_queues`: bytes queued in UDP sockets, summed from `/proc/net/udp` and `udp6`.

use std::io;

use super::expo::{Expo, Kind};
use super::files::{invalid, read_optional, Files};
use super::Paths;

pub(super) fn collect(paths: &Paths, s: &mut Files, expo: &mut Expo<'_>) -> io::Result<()> {
    const NAME: &[&str] = &["node_udp_queues"];
    let mut missing = 0;
    let mark = expo.family(
        NAME,
        &["Number of allocated memory in the kernel for UDP datagrams in bytes."],
        Kind::Gauge,
    );
    for (file, ip) in [("net/udp", "v4"), ("net/udp6", "v6")] {
        let text = match read_optional(&mut s.path, &paths.procfs, &[file], &mut s.data) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                missing += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        let (mut tx, mut rx) = (0u64, 0u64);
        for line in text.lines().skip(1) {
            let queues = line.split_ascii_whitespace().nth(4);
            let (Some((tx_hex, rx_hex)), true) = (
                queues.and_then(|q| q.split_once(':')),
                line.split_ascii_whitespace().count() >= 10,
            ) else {
                return Err(invalid(file, "a socket line without tx_queue:rx_queue"));
            };
            let hex =
                |v: &str| u64::from_str_radix(v, 16).map_err(|_| invalid(file, "queue not hexadecimal"));
            tx = tx.saturating_add(hex(tx_hex)?);
            rx = rx.saturating_add(hex(rx_hex)?);
        }
        expo.sample(NAME, &[("ip", ip), ("queue", "tx")], tx);
        expo.sample(NAME, &[("ip", ip), ("queue", "rx")], rx);
    }
    expo.end_family(mark);
    if missing == 2 {
        return Err(io::Error::from(io::ErrorKind::NotFound));
    }
    Ok(())
}
