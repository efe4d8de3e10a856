//! `netstat`: protocol counters from `/proc/net/netstat`, `/proc/net/snmp` and
//! `/proc/net/snmp6`, filtered by node_exporter's default `--collector.netstat.fields`.

use std::io;

use super::expo::{Expo, Kind, Value};
use super::files::{invalid, read_file, read_optional, Files};
use super::pattern::Pattern;
use super::Paths;

/// node_exporter 1.5's default `--collector.netstat.fields`:
/// `^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|`
/// `TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts)|Tcp_(ActiveOpens|InSegs|OutSegs|`
/// `OutRsts|PassiveOpens|RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|`
/// `RcvbufErrors|SndbufErrors))$`.
pub(super) fn default_field(protocol: &str, name: &str) -> bool {
    if name == "InErrors" || name == "InErrs" {
        return true;
    }
    match protocol {
        "Ip" => name == "Forwarding",
        "Ip6" | "IpExt" => matches!(name, "InOctets" | "OutOctets"),
        "Icmp" | "Icmp6" => matches!(name, "InMsgs" | "OutMsgs"),
        "TcpExt" => {
            name.starts_with("Listen")
                || name.starts_with("Syncookies")
                || matches!(name, "TCPSynRetrans" | "TCPTimeouts")
        }
        "Tcp" => matches!(
            name,
            "ActiveOpens" | "InSegs" | "OutSegs" | "OutRsts" | "PassiveOpens" | "RetransSegs" | "CurrEstab"
        ),
        "Udp" | "Udp6" => matches!(
            name,
            "InDatagrams" | "OutDatagrams" | "NoPorts" | "RcvbufErrors" | "SndbufErrors"
        ),
        _ => false,
    }
}

/// The collector's setting: `None` is node_exporter's default field filter.
pub(super) struct Options {
    pub(super) fields: Option<Pattern>,
}

pub(super) fn collect(
    paths: &Paths,
    s: &mut Files,
    options: &mut Options,
    expo: &mut Expo<'_>,
) -> io::Result<()> {
    let mut selected = |protocol: &str, name: &str, key: &mut String| match &mut options.fields {
        None => default_field(protocol, name),
        Some(pattern) => {
            key.clear();
            key.push_str(protocol);
            key.push('_');
            key.push_str(name);
            pattern.is_match(key)
        }
    };
    for file in ["net/netstat", "net/snmp"] {
        let text = read_file(&mut s.path, &paths.procfs, &[file], &mut s.data)?;
        // Pairs of lines: "Tcp: RtoAlgorithm RtoMin ..." then "Tcp: 1 200 ...".
        let mut lines = text.lines();
        while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
            let (Some((protocol, names)), Some((_, values))) =
                (names.split_once(':'), values.split_once(':'))
            else {
                return Err(invalid(file, "a line without `protocol:`"));
            };
            if names.split_ascii_whitespace().count() != values.split_ascii_whitespace().count() {
                return Err(invalid(file, "name and value lines differ in length"));
            }
            for (name, value) in names
                .split_ascii_whitespace()
                .zip(values.split_ascii_whitespace())
            {
                if selected(protocol, name, &mut s.text) {
                    write(expo, protocol, name, value, file)?;
                }
            }
        }
    }
    // IPv6 disabled: no snmp6, and nothing wrong.
    if let Ok(text) = read_optional(&mut s.path, &paths.procfs, &["net/snmp6"], &mut s.data) {
        for line in text.lines() {
            let mut fields = line.split_ascii_whitespace();
            let (Some(key), Some(value)) = (fields.next(), fields.next()) else {
                continue;
            };
            // "Icmp6InMsgs": the protocol runs up to its "6".
            let Some(six) = key.find('6') else { continue };
            let (protocol, name) = key.split_at(six + 1);
            if selected(protocol, name, &mut s.text) {
                write(expo, protocol, name, value, "net/snmp6")?;
            }
        }
    }
    Ok(())
}

fn write(expo: &mut Expo<'_>, protocol: &str, name: &str, value: &str, file: &str) -> io::Result<()> {
    let value = match value.parse::<u64>() {
        Ok(v) => Value::Int(v),
        Err(_) => Value::Float(value.parse().map_err(|_| invalid(file, "value not a number"))?),
    };
    expo.single(
        &["node_netstat_", protocol, "_", name],
        &["Statistic ", protocol, name, "."],
        Kind::Untyped,
        &[],
        value,
    );
    Ok(())
}
