//! `netdev`: per-interface counters from `/proc/net/dev`, and `receive_nohandler` from sysfs.

use std::io;

use super::expo::{Expo, Kind};
use super::files::{invalid, read_file, read_optional, Files};
use super::pattern::Pattern;
use super::Paths;

/// The collector's setting and what it keeps between scrapes.
#[derive(Default)]
pub(super) struct State {
    /// `--collector.netdev.device-exclude`; `None`: node_exporter's default, `^lo$`.
    pub(super) device_exclude: Option<Pattern>,
    /// Per line of `/proc/net/dev` after the header, whether the device is left out.
    excluded: Vec<bool>,
}

pub(super) fn collect(paths: &Paths, s: &mut Files, st: &mut State, expo: &mut Expo<'_>) -> io::Result<()> {
    let text = read_file(&mut s.path, &paths.procfs, &["net/dev"], &mut s.data)?;
    let mut lines = text.lines();
    let _title = lines.next();
    let header = lines
        .next()
        .ok_or_else(|| invalid("net/dev", "no column header"))?;
    let mut groups = header.split('|').skip(1);
    let receive = groups
        .next()
        .ok_or_else(|| invalid("net/dev", "no receive columns"))?;
    let transmit = groups
        .next()
        .ok_or_else(|| invalid("net/dev", "no transmit columns"))?;
    st.excluded.clear();
    for line in text.lines().skip(2) {
        let device = line.split_once(':').map_or("", |(device, _)| device.trim());
        let excluded = match &mut st.device_exclude {
            Some(pattern) => pattern.is_match(device),
            None => device == "lo",
        };
        st.excluded.push(excluded);
    }
    let excluded = &st.excluded;
    let devices = || {
        text.lines()
            .skip(2)
            .zip(excluded)
            .filter_map(|(line, &excluded)| {
                let (device, columns) = line.split_once(':')?;
                (!excluded).then_some((device.trim(), columns))
            })
    };
    let columns = receive
        .split_ascii_whitespace()
        .map(|c| ("receive_", c))
        .chain(transmit.split_ascii_whitespace().map(|c| ("transmit_", c)));
    for (index, (direction, column)) in columns.enumerate() {
        let name = ["node_network_", direction, column, "_total"];
        let mark = expo.family(
            &name,
            &["Network device statistic ", direction, column, "."],
            Kind::Counter,
        );
        for (device, values) in devices() {
            let Some(raw) = values.split_ascii_whitespace().nth(index) else {
                continue;
            };
            let value: u64 = raw
                .parse()
                .map_err(|_| invalid("net/dev", "column not a number"))?;
            expo.sample(&name, &[("device", device)], value);
        }
        expo.end_family(mark);
    }
    // node_exporter 1.5 reads netlink, which also carries rx_nohandler; /proc/net/dev does not,
    // sysfs does.
    const NOHANDLER: &[&str] = &["node_network_receive_nohandler_total"];
    let mark = expo.family(
        NOHANDLER,
        &["Network device statistic receive_nohandler."],
        Kind::Counter,
    );
    for (device, _) in devices() {
        let rel = ["class/net", device, "statistics/rx_nohandler"];
        let Ok(raw) = read_optional(&mut s.path, &paths.sysfs, &rel, &mut s.aux) else {
            continue;
        };
        if let Ok(value) = raw.trim().parse::<u64>() {
            expo.sample(NOHANDLER, &[("device", device)], value);
        }
    }
    expo.end_family(mark);
    Ok(())
}
