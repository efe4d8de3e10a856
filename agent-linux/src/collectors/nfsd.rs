//! `nfsd`: the NFS server's statistics from `/proc/net/rpc/nfsd`: reply cache, stale file
//! handles, disk bytes, threads, read-ahead cache, packets, RPC errors, and requests per
//! procedure of NFS versions 2 and 3 and per NFSv4 operation.

use std::io;

use super::expo::{Expo, Kind};
use super::files::{invalid, read_file, Files};
use super::{nfs, Paths};

/// NFSv4 operations of `proc4ops` by column (after the count); `None` ones are not reported.
const V4_OPS: [Option<&str>; 38] = [
    None,
    None,
    None,
    Some("Access"),
    Some("Close"),
    Some("Commit"),
    Some("Create"),
    Some("DelegPurge"),
    Some("DelegReturn"),
    Some("GetAttr"),
    Some("GetFH"),
    Some("Link"),
    Some("Lock"),
    Some("Lockt"),
    Some("Locku"),
    Some("Lookup"),
    Some("LookupRoot"),
    Some("Nverify"),
    Some("Open"),
    Some("OpenAttr"),
    Some("OpenConfirm"),
    Some("OpenDgrd"),
    Some("PutFH"),
    None,
    None,
    Some("Read"),
    Some("ReadDir"),
    Some("ReadLink"),
    Some("Remove"),
    Some("Rename"),
    Some("Renew"),
    Some("RestoreFH"),
    Some("SaveFH"),
    Some("SecInfo"),
    Some("SetAttr"),
    Some("Verify"),
    Some("Write"),
    Some("RelLockOwner"),
];

const FILE: &str = "net/rpc/nfsd";

/// The lines of the file, each zero when absent, as node_exporter reports them.
struct Stats {
    rc: [u64; 3],
    fh: [u64; 5],
    io: [u64; 2],
    th: [u64; 2],
    ra: [u64; 12],
    net: [u64; 4],
    rpc: [u64; 5],
    v2: [u64; 18],
    v3: [u64; 22],
    v4ops: [u64; 38],
}

pub(super) fn collect(paths: &Paths, s: &mut Files, expo: &mut Expo<'_>) -> io::Result<()> {
    let text = read_file(&mut s.path, &paths.procfs, &[FILE], &mut s.data)?;
    let st = parse(text)?;
    let counters: [(&str, &str, u64); 5] = [
        (
            "node_nfsd_reply_cache_hits_total",
            "Total number of NFSd Reply Cache hits (client lost server response).",
            st.rc[0],
        ),
        (
            "node_nfsd_reply_cache_misses_total",
            "Total number of NFSd Reply Cache an operation that requires caching (idempotent).",
            st.rc[1],
        ),
        (
            "node_nfsd_reply_cache_nocache_total",
            "Total number of NFSd Reply Cache non-idempotent operations (rename/delete/…).",
            st.rc[2],
        ),
        (
            "node_nfsd_file_handles_stale_total",
            "Total number of NFSd stale file handles",
            st.fh[0],
        ),
        (
            "node_nfsd_disk_bytes_read_total",
            "Total NFSd bytes read.",
            st.io[0],
        ),
    ];
    for (name, help, value) in counters {
        expo.single(&[name], &[help], Kind::Counter, &[], value);
    }
    for (name, help, kind, value) in [
        (
            "node_nfsd_disk_bytes_written_total",
            "Total NFSd bytes written.",
            Kind::Counter,
            st.io[1],
        ),
        (
            "node_nfsd_server_threads",
            "Total number of NFSd kernel threads that are running.",
            Kind::Gauge,
            st.th[0],
        ),
        (
            "node_nfsd_read_ahead_cache_size_blocks",
            "How large the read ahead cache is in blocks.",
            Kind::Gauge,
            st.ra[0],
        ),
        (
            "node_nfsd_read_ahead_cache_not_found_total",
            "Total number of NFSd read ahead cache not found.",
            Kind::Counter,
            st.ra[11],
        ),
    ] {
        expo.single(&[name], &[help], kind, &[], value);
    }
    const PACKETS: &[&str] = &["node_nfsd_packets_total"];
    expo.family(
        PACKETS,
        &["Total NFSd network packets (sent+received) by protocol type."],
        Kind::Counter,
    );
    expo.sample(PACKETS, &[("proto", "udp")], st.net[1]);
    expo.sample(PACKETS, &[("proto", "tcp")], st.net[2]);
    expo.single(
        &["node_nfsd_connections_total"],
        &["Total number of NFSd TCP connections."],
        Kind::Counter,
        &[],
        st.net[3],
    );
    const ERRORS: &[&str] = &["node_nfsd_rpc_errors_total"];
    expo.family(
        ERRORS,
        &["Total number of NFSd RPC errors by error type."],
        Kind::Counter,
    );
    for (error, value) in [("fmt", st.rpc[2]), ("auth", st.rpc[3]), ("cInt", st.rpc[4])] {
        expo.sample(ERRORS, &[("error", error)], value);
    }
    expo.single(
        &["node_nfsd_server_rpcs_total"],
        &["Total number of NFSd RPCs."],
        Kind::Counter,
        &[],
        st.rpc[0],
    );
    const REQUESTS: &[&str] = &["node_nfsd_requests_total"];
    expo.family(
        REQUESTS,
        &["Total number NFSd Requests by method and protocol."],
        Kind::Counter,
    );
    // The server side reports every procedure but `Null`, with the client's names.
    for (method, value) in nfs::V2[1..].iter().zip(&st.v2[1..]) {
        expo.sample(REQUESTS, &[("method", method), ("proto", "2")], *value);
    }
    for (method, value) in nfs::V3[1..].iter().zip(&st.v3[1..]) {
        expo.sample(REQUESTS, &[("method", method), ("proto", "3")], *value);
    }
    for (method, value) in V4_OPS.iter().zip(&st.v4ops) {
        if let Some(method) = method {
            expo.sample(REQUESTS, &[("method", method), ("proto", "4")], *value);
        }
    }
    Ok(())
}

fn parse(text: &str) -> io::Result<Stats> {
    let mut st = Stats {
        rc: [0; 3],
        fh: [0; 5],
        io: [0; 2],
        th: [0; 2],
        ra: [0; 12],
        net: [0; 4],
        rpc: [0; 5],
        v2: [0; 18],
        v3: [0; 22],
        v4ops: [0; 38],
    };
    for line in text.lines() {
        let mut words = line.split_ascii_whitespace();
        let key = words.next().unwrap_or("");
        let mut values = [0u64; 128];
        let mut count = 0;
        // The thread line's histogram (old kernels) is not read: its first two values only.
        let take = if key == "th" { 2 } else { usize::MAX };
        for word in words.take(take) {
            let value = word.parse().map_err(|_| invalid(FILE, "value not a number"))?;
            if count < values.len() {
                values[count] = value;
            }
            count += 1;
        }
        if count == 0 || (key == "th" && count < 2) {
            return Err(invalid(FILE, "a line with too few values"));
        }
        let values = &values[..count.min(128)];
        let exact = |slot: &mut [u64]| -> io::Result<()> {
            if values.len() != slot.len() {
                return Err(invalid(FILE, "a line with the wrong number of values"));
            }
            slot.copy_from_slice(values);
            Ok(())
        };
        // "procN <n> v1 ... vn": n must be the number of values that follow.
        let counted = |min: usize, exactly: bool| -> io::Result<&[u64]> {
            let n = values[0] as usize;
            if values.len() - 1 != n || n < min || (exactly && n != min) {
                return Err(invalid(FILE, "a procedure line with the wrong number of values"));
            }
            Ok(&values[1..])
        };
        match key {
            "rc" => exact(&mut st.rc)?,
            "fh" => exact(&mut st.fh)?,
            "io" => exact(&mut st.io)?,
            "th" => exact(&mut st.th)?,
            "ra" => exact(&mut st.ra)?,
            "net" => exact(&mut st.net)?,
            "rpc" => exact(&mut st.rpc)?,
            "proc2" => st.v2.copy_from_slice(&counted(18, false)?[..18]),
            "proc3" => st.v3.copy_from_slice(&counted(22, false)?[..22]),
            "proc4" => {
                counted(2, true)?;
            }
            "proc4ops" => st.v4ops.copy_from_slice(&counted(39, false)?[..38]),
            _ => return Err(invalid(FILE, "an unknown line")),
        }
    }
    Ok(st)
}
