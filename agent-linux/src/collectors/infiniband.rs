//! `infiniband`: InfiniBand adapters from `/sys/class/infiniband/<device>/`: board, firmware and
//! HCA type, and per port its state, physical state, rate and the port counters of
//! `ports/<n>/counters` and `ports/<n>/counters_ext` (the kernel's
//! ABI/stable/sysfs-class-infiniband).
//!
//! The data counters count 32-bit words per lane; node_exporter multiplies them by 4 to give
//! bytes, and so does this collector.

use std::fmt::Write as _;
use std::io;

use rustix::fs::FileType;

use super::expo::{Expo, Kind};
use super::files::{invalid, push_span, read_file, read_optional, set_path, Files, Names, Span};
use super::Paths;

const CLASS: &str = "class/infiniband";

/// (file, directory, metric suffix after `node_infiniband_`, help, multiplied by 4), in the
/// order of `Port::counters`.
const COUNTERS: [(&str, &str, &str, &str, bool); 30] = [
    (
        "port_multicast_rcv_packets",
        "counters_ext",
        "legacy_multicast_packets_received_total",
        "Number of multicast packets received",
        false,
    ),
    (
        "port_multicast_xmit_packets",
        "counters_ext",
        "legacy_multicast_packets_transmitted_total",
        "Number of multicast packets transmitted",
        false,
    ),
    (
        "port_rcv_data_64",
        "counters_ext",
        "legacy_data_received_bytes_total",
        "Number of data octets received on all links",
        true,
    ),
    (
        "port_rcv_packets_64",
        "counters_ext",
        "legacy_packets_received_total",
        "Number of data packets received on all links",
        false,
    ),
    (
        "port_unicast_rcv_packets",
        "counters_ext",
        "legacy_unicast_packets_received_total",
        "Number of unicast packets received",
        false,
    ),
    (
        "port_unicast_xmit_packets",
        "counters_ext",
        "legacy_unicast_packets_transmitted_total",
        "Number of unicast packets transmitted",
        false,
    ),
    (
        "port_xmit_data_64",
        "counters_ext",
        "legacy_data_transmitted_bytes_total",
        "Number of data octets transmitted on all links",
        true,
    ),
    (
        "port_xmit_packets_64",
        "counters_ext",
        "legacy_packets_transmitted_total",
        "Number of data packets received on all links",
        false,
    ),
    (
        "excessive_buffer_overrun_errors",
        "counters",
        "excessive_buffer_overrun_errors_total",
        "Number of times that OverrunErrors consecutive flow control update periods occurred, each having at \
         least one overrun error.",
        false,
    ),
    (
        "link_downed",
        "counters",
        "link_downed_total",
        "Number of times the link failed to recover from an error state and went down",
        false,
    ),
    (
        "link_error_recovery",
        "counters",
        "link_error_recovery_total",
        "Number of times the link successfully recovered from an error state",
        false,
    ),
    (
        "local_link_integrity_errors",
        "counters",
        "local_link_integrity_errors_total",
        "Number of times that the count of local physical errors exceeded the threshold specified by \
         LocalPhyErrors.",
        false,
    ),
    (
        "multicast_rcv_packets",
        "counters",
        "multicast_packets_received_total",
        "Number of multicast packets received (including errors)",
        false,
    ),
    (
        "multicast_xmit_packets",
        "counters",
        "multicast_packets_transmitted_total",
        "Number of multicast packets transmitted (including errors)",
        false,
    ),
    (
        "port_rcv_constraint_errors",
        "counters",
        "port_constraint_errors_received_total",
        "Number of packets received on the switch physical port that are discarded",
        false,
    ),
    (
        "port_xmit_constraint_errors",
        "counters",
        "port_constraint_errors_transmitted_total",
        "Number of packets not transmitted from the switch physical port",
        false,
    ),
    (
        "port_rcv_data",
        "counters",
        "port_data_received_bytes_total",
        "Number of data octets received on all links",
        true,
    ),
    (
        "port_xmit_data",
        "counters",
        "port_data_transmitted_bytes_total",
        "Number of data octets transmitted on all links",
        true,
    ),
    (
        "port_rcv_discards",
        "counters",
        "port_discards_received_total",
        "Number of inbound packets discarded by the port because the port is down or congested",
        false,
    ),
    (
        "port_xmit_discards",
        "counters",
        "port_discards_transmitted_total",
        "Number of outbound packets discarded by the port because the port is down or congested",
        false,
    ),
    (
        "port_rcv_errors",
        "counters",
        "port_errors_received_total",
        "Number of packets containing an error that were received on this port",
        false,
    ),
    (
        "port_rcv_packets",
        "counters",
        "port_packets_received_total",
        "Number of packets received on all VLs by this port (including errors)",
        false,
    ),
    (
        "port_xmit_packets",
        "counters",
        "port_packets_transmitted_total",
        "Number of packets transmitted on all VLs from this port (including errors)",
        false,
    ),
    (
        "port_xmit_wait",
        "counters",
        "port_transmit_wait_total",
        "Number of ticks during which the port had data to transmit but no data was sent during the entire tick",
        false,
    ),
    (
        "unicast_rcv_packets",
        "counters",
        "unicast_packets_received_total",
        "Number of unicast packets received (including errors)",
        false,
    ),
    (
        "unicast_xmit_packets",
        "counters",
        "unicast_packets_transmitted_total",
        "Number of unicast packets transmitted (including errors)",
        false,
    ),
    (
        "port_rcv_remote_physical_errors",
        "counters",
        "port_receive_remote_physical_errors_total",
        "Number of packets marked with the EBP (End of Bad Packet) delimiter received on the port.",
        false,
    ),
    (
        "port_rcv_switch_relay_errors",
        "counters",
        "port_receive_switch_relay_errors_total",
        "Number of packets that could not be forwarded by the switch.",
        false,
    ),
    (
        "symbol_error",
        "counters",
        "symbol_error_total",
        "Number of minor link errors detected on one or more physical lanes.",
        false,
    ),
    (
        "VL15_dropped",
        "counters",
        "vl15_dropped_total",
        "Number of incoming VL15 packets dropped due to resource limitations.",
        false,
    ),
];

/// A port's gauges: (metric suffix, help).
const GAUGES: [(&str, &str); 3] = [
    (
        "state_id",
        "State of the InfiniBand port (0: no change, 1: down, 2: init, 3: armed, 4: active, 5: act defer)",
    ),
    (
        "physical_state_id",
        "Physical state of the InfiniBand port (0: no change, 1: sleep, 2: polling, 3: disable, 4: shift, 5: link \
         up, 6: link error recover, 7: phytest)",
    ),
    ("rate_bytes_per_second", "Maximum signal transfer rate"),
];

struct Port {
    device: usize,
    /// The port number as its label shows it.
    number: Span,
    /// state, physical state, rate in bytes per second.
    gauges: [u64; 3],
    counters: [Option<u64>; 30],
}

/// What the collector keeps between scrapes.
#[derive(Default)]
pub(super) struct State {
    devices: Names,
    ports: Names,
    files: Names,
    text: String,
    /// Per device: name, board_id, fw_ver, hca_type.
    infos: Vec<[Span; 4]>,
    port_values: Vec<Port>,
}

pub(super) fn collect(paths: &Paths, s: &mut Files, st: &mut State, expo: &mut Expo<'_>) -> io::Result<()> {
    st.text.clear();
    st.infos.clear();
    st.port_values.clear();
    // No adapters: the directory is absent and the collector fails, as node_exporter's does.
    set_path(&mut s.path, &paths.sysfs, &[CLASS]);
    st.devices.read(&s.path, |_, _| true)?;
    for (index, device) in st.devices.iter().enumerate() {
        let mut info = [push_span(&mut st.text, device), (0, 0), (0, 0), (0, 0)];
        for (slot, file) in info[1..].iter_mut().zip(["board_id", "fw_ver", "hca_type"]) {
            let value = match read_file(&mut s.path, &paths.sysfs, &[CLASS, device, file], &mut s.aux) {
                Ok(value) => value.trim(),
                // Not every driver has hca_type.
                Err(e) if file == "hca_type" && e.kind() == io::ErrorKind::NotFound => "",
                Err(e) => return Err(e),
            };
            *slot = push_span(&mut st.text, value);
        }
        st.infos.push(info);
        set_path(&mut s.path, &paths.sysfs, &[CLASS, device, "ports"]);
        st.ports.read(&s.path, |_, _| true)?;
        for port in st.ports.iter() {
            let number: u32 = port
                .parse()
                .map_err(|_| invalid(CLASS, "a port directory whose name is not a number"))?;
            let start = st.text.len();
            let _ = write!(st.text, "{number}");
            let mut gauges = [0u64; 3];
            for (slot, file) in gauges.iter_mut().zip(["state", "phys_state", "rate"]) {
                let text = read_file(
                    &mut s.path,
                    &paths.sysfs,
                    &[CLASS, device, "ports", port, file],
                    &mut s.aux,
                )?;
                *slot = if file == "rate" {
                    rate(text).ok_or_else(|| invalid(CLASS, "a port rate that is not `<Gb/s> Gb/sec ...`"))?
                } else {
                    state_id(text).ok_or_else(|| invalid(CLASS, "a port state that is not `<id>: <name>`"))?
                };
            }
            let mut counters = [None; 30];
            for directory in ["counters", "counters_ext"] {
                set_path(
                    &mut s.path,
                    &paths.sysfs,
                    &[CLASS, device, "ports", port, directory],
                );
                match st
                    .files
                    .read(&s.path, |_, file_type| file_type == FileType::RegularFile)
                {
                    Ok(()) => {}
                    Err(e) if directory == "counters_ext" && e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
                for file in st.files.iter() {
                    let Some(slot) = COUNTERS
                        .iter()
                        .position(|(name, dir, ..)| *name == file && *dir == directory)
                    else {
                        continue;
                    };
                    let rel = [CLASS, device, "ports", port, directory, file];
                    let text = match read_optional(&mut s.path, &paths.sysfs, &rel, &mut s.aux) {
                        Ok(text) => text.trim(),
                        Err(e) if skippable(&e) => continue,
                        Err(e) => return Err(e),
                    };
                    match parse_uint(text) {
                        Some(value) if COUNTERS[slot].4 => counters[slot] = Some(value.wrapping_mul(4)),
                        Some(value) => counters[slot] = Some(value),
                        // Adapters without a performance management agent.
                        None if text.contains("N/A (no PMA)") => {}
                        None => return Err(invalid(CLASS, "a port counter that is not a number")),
                    }
                }
            }
            st.port_values.push(Port {
                device: index,
                number: (start, st.text.len()),
                gauges,
                counters,
            });
        }
    }
    let text = &st.text;
    let at = |(start, end): Span| &text[start..end];
    const INFO: &[&str] = &["node_infiniband_info"];
    let mark = expo.family(
        INFO,
        &["Non-numeric data from /sys/class/infiniband/<device>, value is always 1."],
        Kind::Gauge,
    );
    for [device, board, firmware, hca] in &st.infos {
        let labels = [
            ("device", at(*device)),
            ("board_id", at(*board)),
            ("firmware_version", at(*firmware)),
            ("hca_type", at(*hca)),
        ];
        expo.sample(INFO, &labels, 1u64);
    }
    expo.end_family(mark);
    for (index, (suffix, help)) in GAUGES.iter().enumerate() {
        let name = ["node_infiniband_", suffix];
        let mark = expo.family(&name, &[help], Kind::Gauge);
        for port in &st.port_values {
            let labels = [
                ("device", at(st.infos[port.device][0])),
                ("port", at(port.number)),
            ];
            expo.sample(&name, &labels, port.gauges[index]);
        }
        expo.end_family(mark);
    }
    for (index, (_, _, suffix, help, _)) in COUNTERS.iter().enumerate() {
        let name = ["node_infiniband_", suffix];
        let mark = expo.family(&name, &[help], Kind::Counter);
        for port in &st.port_values {
            if let Some(value) = port.counters[index] {
                let labels = [
                    ("device", at(st.infos[port.device][0])),
                    ("port", at(port.number)),
                ];
                expo.sample(&name, &labels, value);
            }
        }
        expo.end_family(mark);
    }
    Ok(())
}

/// `4: ACTIVE`: the number before the colon.
fn state_id(text: &str) -> Option<u64> {
    let (id, name) = text.split_once(':')?;
    if name.contains(':') {
        return None;
    }
    let id: u32 = id.trim().parse().ok()?;
    Some(u64::from(id))
}

/// `100 Gb/sec (4X EDR)`: gigabits per second in bytes per second. node_exporter reads the
/// number as a 32-bit float, and so does this collector, so both round alike.
fn rate(text: &str) -> Option<u64> {
    let (number, _) = text.split_once(' ')?;
    let gigabits: f32 = number.trim().parse().ok()?;
    Some((f64::from(gigabits) * 125_000_000.0) as u64)
}

/// An unsigned number as Go's `strconv.ParseUint(text, 0, 64)` reads it: decimal, `0x` hex,
/// `0o` or leading-`0` octal, `0b` binary.
fn parse_uint(text: &str) -> Option<u64> {
    let (digits, radix) = match text.get(..2) {
        Some("0x" | "0X") => (&text[2..], 16),
        Some("0o" | "0O") => (&text[2..], 8),
        Some("0b" | "0B") => (&text[2..], 2),
        _ if text.len() > 1 && text.starts_with('0') => (&text[1..], 8),
        _ => (text, 10),
    };
    if digits.starts_with('+') {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// Counters a driver does not support fail to read; node_exporter skips them.
fn skippable(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
        || e.kind() == io::ErrorKind::PermissionDenied
        || e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error())
        || e.raw_os_error() == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_rates_and_go_integers() {
        assert_eq!(state_id("4: ACTIVE\n"), Some(4));
        assert_eq!(state_id("4: ACT: IVE"), None);
        assert_eq!(rate("100 Gb/sec (4X EDR)\n"), Some(12_500_000_000));
        assert_eq!(rate("2.5 Gb/sec (1X SDR)"), Some(312_500_000));
        assert_eq!(rate("100"), None);
        assert_eq!(parse_uint("0x10"), Some(16));
        assert_eq!(parse_uint("010"), Some(8));
        assert_eq!(parse_uint("0"), Some(0));
        assert_eq!(parse_uint("+1"), None);
        assert_eq!(parse_uint("N/A (no PMA)"), None);
    }
}
