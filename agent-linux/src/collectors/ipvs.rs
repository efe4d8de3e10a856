//! `ipvs`: the IP Virtual Server's totals (`/proc/net/ip_vs_stats`) and each backend's
//! connections and weight (`/proc/net/ip_vs`): kube-proxy's IPVS mode writes these.

use std::fmt::Write as _;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::expo::{Expo, Kind};
use super::files::{invalid, read_file, Files, Span};
use super::Paths;

/// What the collector keeps between scrapes: the backends, summed per label set.
#[derive(Default)]
pub(super) struct State {
    text: String,
    backends: Vec<Backend>,
}

struct Backend {
    /// local_address, local_port, remote_address, remote_port, proto, local_mark.
    labels: [Span; 6],
    active: u64,
    inactive: u64,
    weight: u64,
}

const LABELS: [&str; 6] = [
    "local_address",
    "local_port",
    "remote_address",
    "remote_port",
    "proto",
    "local_mark",
];

pub(super) fn collect(paths: &Paths, s: &mut Files, st: &mut State, expo: &mut Expo<'_>) -> io::Result<()> {
    let text = read_file(&mut s.path, &paths.procfs, &["net/ip_vs_stats"], &mut s.data)?;
    // Two header lines, then the totals as hexadecimal numbers.
    let totals = text
        .lines()
        .nth(2)
        .ok_or_else(|| invalid("net/ip_vs_stats", "too short"))?;
    let mut fields = [0u64; 5];
    if totals.split_ascii_whitespace().count() != 5 {
        return Err(invalid("net/ip_vs_stats", "unexpected number of fields"));
    }
    for (slot, field) in fields.iter_mut().zip(totals.split_ascii_whitespace()) {
        *slot = u64::from_str_radix(field, 16)
            .map_err(|_| invalid("net/ip_vs_stats", "field not hexadecimal"))?;
    }
    for ((name, help), value) in [
        (
            "node_ipvs_connections_total",
            "The total number of connections made.",
        ),
        (
            "node_ipvs_incoming_packets_total",
            "The total number of incoming packets.",
        ),
        (
            "node_ipvs_outgoing_packets_total",
            "The total number of outgoing packets.",
        ),
        (
            "node_ipvs_incoming_bytes_total",
            "The total amount of incoming data.",
        ),
        (
            "node_ipvs_outgoing_bytes_total",
            "The total amount of outgoing data.",
        ),
    ]
    .into_iter()
    .zip(fields)
    {
        expo.single(&[name], &[help], Kind::Counter, &[], value);
    }
    let text = read_file(&mut s.path, &paths.procfs, &["net/ip_vs"], &mut s.data)?;
    st.text.clear();
    st.backends.clear();
    // The service a backend line belongs to: (proto, local address, local port, mark).
    let mut service: Option<(&str, Option<Span>, u16, &str)> = None;
    let mut scratch = [(0, 0); 6];
    for line in text.lines() {
        let fields: [&str; 6] = {
            let mut f = [""; 6];
            for (slot, word) in f.iter_mut().zip(line.split_ascii_whitespace()) {
                *slot = word;
            }
            f
        };
        let count = line.split_ascii_whitespace().count();
        if count == 0 || fields[0] == "IP" || fields[0] == "Prot" || fields[1] == "RemoteAddress:Port" {
            continue;
        }
        match fields[0] {
            "TCP" | "UDP" if count >= 2 => {
                let start = st.text.len();
                let port = push_address(&mut st.text, fields[1])?;
                service = Some((fields[0], Some((start, st.text.len())), port, ""));
            }
            "FWM" if count >= 2 => service = Some(("FWM", None, 0, fields[1])),
            "->" if count >= 6 => {
                let Some((proto, local, local_port, mark)) = service else {
                    continue;
                };
                let remote_start = st.text.len();
                let remote_port = push_address(&mut st.text, fields[1])?;
                scratch[2] = (remote_start, st.text.len());
                let number = |v: &str| {
                    v.parse::<u64>()
                        .map_err(|_| invalid("net/ip_vs", "count not a number"))
                };
                let (weight, active, inactive) = (number(fields[3])?, number(fields[4])?, number(fields[5])?);
                scratch[0] = local.unwrap_or((0, 0));
                scratch[1] = push_number(&mut st.text, local_port);
                scratch[3] = push_number(&mut st.text, remote_port);
                scratch[4] = push_str(&mut st.text, proto);
                scratch[5] = push_str(&mut st.text, mark);
                let text = &st.text;
                let same =
                    |b: &&mut Backend| (0..6).all(|i| span(text, b.labels[i]) == span(text, scratch[i]));
                match st.backends.iter_mut().find(same) {
                    Some(b) => {
                        b.active += active;
                        b.inactive += inactive;
                        b.weight += weight;
                    }
                    None => st.backends.push(Backend {
                        labels: scratch,
                        active,
                        inactive,
                        weight,
                    }),
                }
            }
            _ => {}
        }
    }
    let text = &st.text;
    type Field = fn(&Backend) -> u64;
    let families: [(&str, &str, Field); 3] = [
        (
            "node_ipvs_backend_connections_active",
            "The current active connections by local and remote address.",
            |b| b.active,
        ),
        (
            "node_ipvs_backend_connections_inactive",
            "The current inactive connections by local and remote address.",
            |b| b.inactive,
        ),
        (
            "node_ipvs_backend_weight",
            "The current backend weight by local and remote address.",
            |b| b.weight,
        ),
    ];
    for (name, help, field) in families {
        let mark = expo.family(&[name], &[help], Kind::Gauge);
        for b in &st.backends {
            let mut labels = [("", ""); 6];
            for (slot, (label, value)) in labels.iter_mut().zip(LABELS.iter().zip(b.labels)) {
                *slot = (label, span(text, value));
            }
            expo.sample(&[name], &labels, field(b));
        }
        expo.end_family(mark);
    }
    Ok(())
}

fn span(text: &str, (start, end): Span) -> &str {
    &text[start..end]
}

fn push_str(text: &mut String, value: &str) -> Span {
    let start = text.len();
    text.push_str(value);
    (start, text.len())
}

fn push_number(text: &mut String, value: u16) -> Span {
    let start = text.len();
    let _ = write!(text, "{value}");
    (start, text.len())
}

/// Writes the address of `0A000001:0050` (IPv4 in hex) or `[2001:0db8:...:0001]:0050` as Go's
/// `net.IP.String` does (an IPv4-mapped IPv6 address as IPv4), and returns the port.
fn push_address(text: &mut String, field: &str) -> io::Result<u16> {
    let bad = || invalid("net/ip_vs", "unexpected IP:Port");
    let address = match field.len() {
        13 => {
            let v4 = u32::from_str_radix(&field[..8], 16).map_err(|_| bad())?;
            Ipv4Addr::from(v4).into()
        }
        46 => {
            let v6: Ipv6Addr = field[1..40].parse().map_err(|_| bad())?;
            match v6.to_ipv4_mapped() {
                Some(v4) => v4.into(),
                None => std::net::IpAddr::V6(v6),
            }
        }
        _ => return Err(bad()),
    };
    let _ = write!(text, "{address}");
    u16::from_str_radix(&field[field.len() - 4..], 16).map_err(|_| bad())
}
