//! `fibrechannel`: Fibre Channel host adapters from `/sys/class/fc_host/<host>/`: port and
//! fabric identity as labels of `node_fibrechannel_info`, and the port's frame and error counters.

use std::io;

use super::expo::{Expo, Kind};
use super::files::{invalid, read_file, read_optional, set_path, Files, Names, Span};
use super::Paths;

/// (attribute, label) of node_fibrechannel_info after `fc_host`; `node_name` is read (a host
/// without it fails, as in node_exporter) but not a label.
const ATTRIBUTES: [(&str, &str); 11] = [
    ("speed", "speed"),
    ("port_state", "port_state"),
    ("port_type", "port_type"),
    ("node_name", ""),
    ("port_id", "port_id"),
    ("port_name", "port_name"),
    ("fabric_name", "fabric_name"),
    ("dev_loss_tmo", "dev_loss_tmo"),
    ("symbolic_name", "symbolic_name"),
    ("supported_classes", "supported_classes"),
    ("supported_speeds", "supported_speeds"),
];

/// (statistics file, metric suffix, help), in node_exporter's order.
const COUNTERS: [(&str, &str, &str); 14] = [
    ("dumped_frames", "dumped_frames_total", "Number of dumped frames"),
    ("error_frames", "error_frames_total", "Number of errors in frames"),
    (
        "invalid_crc_count",
        "invalid_crc_total",
        "Invalid Cyclic Redundancy Check count",
    ),
    ("rx_frames", "rx_frames_total", "Number of frames received"),
    (
        "rx_words",
        "rx_words_total",
        "Number of words received by host port",
    ),
    (
        "tx_frames",
        "tx_frames_total",
        "Number of frames transmitted by host port",
    ),
    (
        "tx_words",
        "tx_words_total",
        "Number of words transmitted by host port",
    ),
    (
        "seconds_since_last_reset",
        "seconds_since_last_reset_total",
        "Number of seconds since last host port reset",
    ),
    (
        "invalid_tx_word_count",
        "invalid_tx_words_total",
        "Number of invalid words transmitted by host port",
    ),
    (
        "link_failure_count",
        "link_failure_total",
        "Number of times the host port link has failed",
    ),
    (
        "loss_of_sync_count",
        "loss_of_sync_total",
        "Number of failures on either bit or transmission word boundaries",
    ),
    (
        "loss_of_signal_count",
        "loss_of_signal_total",
        "Number of times signal has been lost",
    ),
    (
        "nos_count",
        "nos_total",
        "Number Not_Operational Primitive Sequence received by host port",
    ),
    (
        "fcp_packet_aborts",
        "fcp_packet_aborts_total",
        "Number of aborted packets",
    ),
];

/// What the collector keeps between scrapes.
#[derive(Default)]
pub(super) struct State {
    hosts: Names,
    text: String,
    values: Vec<([Span; 11], [u64; 14])>,
}

pub(super) fn collect(paths: &Paths, s: &mut Files, st: &mut State, expo: &mut Expo<'_>) -> io::Result<()> {
    set_path(&mut s.path, &paths.sysfs, &["class/fc_host"]);
    st.hosts.read(&s.path, |_, _| true)?;
    st.text.clear();
    st.values.clear();
    for host in st.hosts.iter() {
        let mut texts = [(0, 0); 11];
        for (slot, (attribute, _)) in texts.iter_mut().zip(ATTRIBUTES) {
            let value = read_file(
                &mut s.path,
                &paths.sysfs,
                &["class/fc_host", host, attribute],
                &mut s.aux,
            )?
            .trim();
            // Identifiers are written "0x..."; node_exporter drops the first two characters.
            let value = match attribute {
                "node_name" | "port_id" | "port_name" | "fabric_name" if value.len() > 2 => &value[2..],
                _ => value,
            };
            let start = st.text.len();
            st.text.push_str(value);
            *slot = (start, st.text.len());
        }
        let mut counters = [0u64; 14];
        for (slot, (file, _, _)) in counters.iter_mut().zip(COUNTERS) {
            let rel = ["class/fc_host", host, "statistics", file];
            match read_optional(&mut s.path, &paths.sysfs, &rel, &mut s.aux) {
                Ok(text) => {
                    let text = text.trim();
                    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
                        Some(hex) => u64::from_str_radix(hex, 16),
                        None => text.parse(),
                    };
                    *slot = parsed.map_err(|_| invalid("class/fc_host", "counter not a number"))?;
                }
                Err(e) if skippable(&e) => {}
                Err(e) => return Err(e),
            }
        }
        st.values.push((texts, counters));
    }
    const INFO: &[&str] = &["node_fibrechannel_info"];
    let mark = expo.family(
        INFO,
        &["Non-numeric data from /sys/class/fc_host/<host>, value is always 1."],
        Kind::Gauge,
    );
    let text = &st.text;
    for (host, (texts, _)) in st.hosts.iter().zip(&st.values) {
        let mut labels = [("fc_host", host); 11];
        let mut count = 1;
        for ((_, label), (start, end)) in ATTRIBUTES.iter().zip(texts) {
            if !label.is_empty() {
                labels[count] = (label, &text[*start..*end]);
                count += 1;
            }
        }
        expo.sample(INFO, &labels[..count], 1u64);
    }
    expo.end_family(mark);
    for (index, (_, suffix, help)) in COUNTERS.into_iter().enumerate() {
        let name = ["node_fibrechannel_", suffix];
        let mark = expo.family(&name, &[help], Kind::Counter);
        for (host, (_, counters)) in st.hosts.iter().zip(&st.values) {
            // All ones: a counter the adapter's firmware does not implement.
            if counters[index] != u64::MAX {
                expo.sample(&name, &[("fc_host", host)], counters[index]);
            }
        }
        expo.end_family(mark);
    }
    Ok(())
}

fn skippable(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
        || e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error())
        || e.raw_os_error() == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error())
}
