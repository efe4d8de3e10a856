//! `netclass`: each network interface's sysfs attributes (`/sys/class/net/<iface>/`): whether
//! it is up, its carrier, MTU, speed and the other properties node_exporter exports.

use std::io;
use std::path::Path;

use rustix::fs::FileType;

use super::expo::{Expo, Kind};
use super::files::{parse_int, read_trimmed, set_path, Files, Names};
use super::pattern::Pattern;
use super::Paths;

/// (sysfs attribute, metric suffix, type) of the numeric families, in node_exporter's order.
const NUMBERS: [(&str, &str, Kind); 17] = [
    ("addr_assign_type", "address_assign_type", Kind::Gauge),
    ("carrier", "carrier", Kind::Gauge),
    ("carrier_changes", "carrier_changes_total", Kind::Counter),
    ("carrier_up_count", "carrier_up_changes_total", Kind::Counter),
    ("carrier_down_count", "carrier_down_changes_total", Kind::Counter),
    ("dev_id", "device_id", Kind::Gauge),
    ("dormant", "dormant", Kind::Gauge),
    ("flags", "flags", Kind::Gauge),
    ("ifindex", "iface_id", Kind::Gauge),
    ("iflink", "iface_link", Kind::Gauge),
    ("link_mode", "iface_link_mode", Kind::Gauge),
    ("mtu", "mtu_bytes", Kind::Gauge),
    ("name_assign_type", "name_assign_type", Kind::Gauge),
    ("netdev_group", "net_dev_group", Kind::Gauge),
    ("speed", "speed_bytes", Kind::Gauge),
    ("tx_queue_len", "transmit_queue_length", Kind::Gauge),
    ("type", "protocol_type", Kind::Gauge),
];
const SPEED: usize = 14;

/// The text attributes, in the order of node_network_info's labels after `device`.
const TEXTS: [&str; 5] = ["address", "broadcast", "duplex", "operstate", "ifalias"];
const OPERSTATE: usize = 3;

/// What the collector keeps between scrapes: the interfaces and their attributes.
#[derive(Default)]
pub(super) struct State {
    names: Names,
    text: String,
    ifaces: Vec<Iface>,
}

struct Iface {
    texts: [(usize, usize); 5],
    numbers: [Option<i64>; 17],
}

/// The collector's setting: `--collector.netclass.ignored-devices` (default `^$`, none).
pub(super) struct Options {
    pub(super) ignored_devices: Option<Pattern>,
}

pub(super) fn collect(
    paths: &Paths,
    s: &mut Files,
    st: &mut State,
    options: &mut Options,
    expo: &mut Expo<'_>,
) -> io::Result<()> {
    set_path(&mut s.path, &paths.sysfs, &["class/net"]);
    let ignored = &mut options.ignored_devices;
    // Interfaces are symlinks; `bonding_masters` is a regular file.
    st.names.read(&s.path, |name, file_type| {
        file_type != FileType::RegularFile && !ignored.as_mut().is_some_and(|p| p.is_match(name))
    })?;
    st.text.clear();
    st.ifaces.clear();
    for device in st.names.iter() {
        let mut iface = Iface {
            texts: [(0, 0); 5],
            numbers: [None; 17],
        };
        for (slot, attribute) in iface.texts.iter_mut().zip(TEXTS) {
            let value =
                read_attribute(&mut s.path, &paths.sysfs, device, attribute, &mut s.aux).unwrap_or("");
            let start = st.text.len();
            st.text.push_str(value);
            *slot = (start, st.text.len());
        }
        for (slot, (attribute, _, _)) in iface.numbers.iter_mut().zip(NUMBERS) {
            // An unparsable value is reported as 0, as node_exporter's parser leaves it.
            *slot = read_attribute(&mut s.path, &paths.sysfs, device, attribute, &mut s.aux)
                .map(|text| parse_int(text).unwrap_or(0));
        }
        st.ifaces.push(iface);
    }
    let text = &st.text;
    let texts = |iface: &Iface, index: usize| &text[iface.texts[index].0..iface.texts[index].1];
    const UP: &[&str] = &["node_network_up"];
    let mark = expo.family(
        UP,
        &["Value is 1 if operstate is 'up', 0 otherwise."],
        Kind::Gauge,
    );
    for (device, iface) in st.names.iter().zip(&st.ifaces) {
        let up = u64::from(texts(iface, OPERSTATE) == "up");
        expo.sample(UP, &[("device", device)], up);
    }
    expo.end_family(mark);
    const INFO: &[&str] = &["node_network_info"];
    let mark = expo.family(
        INFO,
        &["Non-numeric data from /sys/class/net/<iface>, value is always 1."],
        Kind::Gauge,
    );
    for (device, iface) in st.names.iter().zip(&st.ifaces) {
        let labels = [
            ("address", texts(iface, 0)),
            ("broadcast", texts(iface, 1)),
            ("device", device),
            ("duplex", texts(iface, 2)),
            ("ifalias", texts(iface, 4)),
            ("operstate", texts(iface, 3)),
        ];
        expo.sample(INFO, &labels, 1u64);
    }
    expo.end_family(mark);
    for (index, (_, suffix, kind)) in NUMBERS.into_iter().enumerate() {
        let name = ["node_network_", suffix];
        let mark = expo.family(&name, &["Network device property: ", suffix], kind);
        for (device, iface) in st.names.iter().zip(&st.ifaces) {
            let Some(value) = iface.numbers[index] else {
                continue;
            };
            // Mbit/s to bytes/s; an unknown speed (-1) gives -125000, as in node_exporter 1.5.
            let value = if index == SPEED {
                value.saturating_mul(1_000_000) / 8
            } else {
                value
            };
            expo.sample(&name, &[("device", device)], value as f64);
        }
        expo.end_family(mark);
    }
    Ok(())
}

fn read_attribute<'b>(
    path: &mut std::path::PathBuf,
    sysfs: &Path,
    device: &str,
    attribute: &str,
    buf: &'b mut Vec<u8>,
) -> Option<&'b str> {
    read_trimmed(path, sysfs, &["class/net", device, attribute], buf)
}
