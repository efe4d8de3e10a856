//! `nfs`: the NFS client's RPC statistics from `/proc/net/rpc/nfs`: packets, connections, RPCs,
//! retransmissions, and calls per procedure of NFS versions 2, 3 and 4.

use std::io;

use super::expo::{Expo, Kind};
use super::files::{invalid, read_file, Files};
use super::Paths;

/// Procedure names per version, in the kernel's column order, as node_exporter labels them.
pub(super) const V2: [&str; 18] = [
    "Null", "GetAttr", "SetAttr", "Root", "Lookup", "ReadLink", "Read", "WrCache", "Write", "Create",
    "Remove", "Rename", "Link", "SymLink", "MkDir", "RmDir", "ReadDir", "FsStat",
];
pub(super) const V3: [&str; 22] = [
    "Null",
    "GetAttr",
    "SetAttr",
    "Lookup",
    "Access",
    "ReadLink",
    "Read",
    "Write",
    "Create",
    "MkDir",
    "SymLink",
    "MkNod",
    "Remove",
    "RmDir",
    "Rename",
    "Link",
    "ReadDir",
    "ReadDirPlus",
    "FsStat",
    "FsInfo",
    "PathConf",
    "Commit",
];
const V4: [&str; 59] = [
    "Null",
    "Read",
    "Write",
    "Commit",
    "Open",
    "OpenConfirm",
    "OpenNoattr",
    "OpenDowngrade",
    "Close",
    "Setattr",
    "FsInfo",
    "Renew",
    "SetClientID",
    "SetClientIDConfirm",
    "Lock",
    "Lockt",
    "Locku",
    "Access",
    "Getattr",
    "Lookup",
    "LookupRoot",
    "Remove",
    "Rename",
    "Link",
    "Symlink",
    "Create",
    "Pathconf",
    "StatFs",
    "ReadLink",
    "ReadDir",
    "ServerCaps",
    "DelegReturn",
    "GetACL",
    "SetACL",
    "FsLocations",
    "ReleaseLockowner",
    "Secinfo",
    "FsidPresent",
    "ExchangeID",
    "CreateSession",
    "DestroySession",
    "Sequence",
    "GetLeaseTime",
    "ReclaimComplete",
    "LayoutGet",
    "GetDeviceInfo",
    "LayoutCommit",
    "LayoutReturn",
    "SecinfoNoName",
    "TestStateID",
    "FreeStateID",
    "GetDeviceList",
    "BindConnToSession",
    "DestroyClientID",
    "Seek",
    "Allocate",
    "DeAllocate",
    "LayoutStats",
    "Clone",
];

const FILE: &str = "net/rpc/nfs";

pub(super) fn collect(paths: &Paths, s: &mut Files, expo: &mut Expo<'_>) -> io::Result<()> {
    let text = read_file(&mut s.path, &paths.procfs, &[FILE], &mut s.data)?;
    // Lines absent from the file count as zeros, as node_exporter reports them.
    let (mut net, mut rpc) = ([0u64; 4], [0u64; 3]);
    let (mut v2, mut v3, mut v4) = ([0u64; 18], [0u64; 22], [0u64; 59]);
    for line in text.lines() {
        let mut words = line.split_ascii_whitespace();
        let key = words.next().unwrap_or("");
        let mut values = [0u64; 128];
        let mut count = 0;
        for word in words {
            let value = word.parse().map_err(|_| invalid(FILE, "value not a number"))?;
            if count < values.len() {
                values[count] = value;
            }
            count += 1;
        }
        if count == 0 {
            return Err(invalid(FILE, "a line without values"));
        }
        let values = &values[..count.min(128)];
        let counted = |min: usize| -> io::Result<&[u64]> {
            // "procN <n> v1 ... vn": n must be the number of values that follow.
            let n = values[0] as usize;
            if values.len() - 1 != n || n < min {
                return Err(invalid(FILE, "a procedure line with the wrong number of values"));
            }
            Ok(&values[1..])
        };
        match key {
            "net" if count == 4 => net.copy_from_slice(values),
            "rpc" if count == 3 => rpc.copy_from_slice(values),
            "proc2" => v2.copy_from_slice(&counted(18)?[..18]),
            "proc3" => v3.copy_from_slice(&counted(22)?[..22]),
            "proc4" => {
                let got = counted(0)?;
                let n = got.len().min(59);
                v4[..n].copy_from_slice(&got[..n]);
            }
            "net" | "rpc" => return Err(invalid(FILE, "a net or rpc line with the wrong number of values")),
            _ => return Err(invalid(FILE, "an unknown line")),
        }
    }
    const PACKETS: &[&str] = &["node_nfs_packets_total"];
    expo.family(
        PACKETS,
        &["Total NFSd network packets (sent+received) by protocol type."],
        Kind::Counter,
    );
    expo.sample(PACKETS, &[("protocol", "udp")], net[1]);
    expo.sample(PACKETS, &[("protocol", "tcp")], net[2]);
    for (name, help, value) in [
        (
            "node_nfs_connections_total",
            "Total number of NFSd TCP connections.",
            net[3],
        ),
        ("node_nfs_rpcs_total", "Total number of RPCs performed.", rpc[0]),
        (
            "node_nfs_rpc_retransmissions_total",
            "Number of RPC transmissions performed.",
            rpc[1],
        ),
        (
            "node_nfs_rpc_authentication_refreshes_total",
            "Number of RPC authentication refreshes performed.",
            rpc[2],
        ),
    ] {
        expo.single(&[name], &[help], Kind::Counter, &[], value);
    }
    const REQUESTS: &[&str] = &["node_nfs_requests_total"];
    expo.family(REQUESTS, &["Number of NFS procedures invoked."], Kind::Counter);
    for (proto, names, values) in [
        ("2", &V2[..], &v2[..]),
        ("3", &V3[..], &v3[..]),
        ("4", &V4[..], &v4[..]),
    ] {
        for (method, value) in names.iter().zip(values) {
            expo.sample(REQUESTS, &[("method", method), ("proto", proto)], *value);
        }
    }
    Ok(())
}
