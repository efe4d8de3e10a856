//! `mdadm`: software RAID arrays from `/proc/mdstat`: disks required, active, failed and spare,
//! the array's state and its sync progress in blocks.

use std::io;

use super::expo::{Expo, Kind};
use super::files::{invalid, read_file, Files};
use super::Paths;

/// One array as `/proc/mdstat` describes it (md(4)).
#[derive(Clone, Copy)]
struct Array<'t> {
    name: &'t str,
    /// active, inactive, recovering, resyncing or checking.
    state: &'t str,
    disks_active: u64,
    disks_total: u64,
    disks_failed: u64,
    disks_spare: u64,
    blocks_total: u64,
    blocks_synced: u64,
}

pub(super) fn collect(paths: &Paths, s: &mut Files, expo: &mut Expo<'_>) -> io::Result<()> {
    let text = read_file(&mut s.path, &paths.procfs, &["mdstat"], &mut s.data)?;
    for array in arrays(text) {
        array?;
    }
    let arrays = || arrays(text).filter_map(Result::ok);
    type Field = fn(&Array<'_>) -> u64;
    let per_array: [(&str, &str, Field); 1] = [(
        "node_md_disks_required",
        "Total number of disks of device.",
        |a| a.disks_total,
    )];
    for (name, help, field) in per_array {
        let mark = expo.family(&[name], &[help], Kind::Gauge);
        for a in arrays() {
            expo.sample(&[name], &[("device", a.name)], field(&a));
        }
        expo.end_family(mark);
    }
    const DISKS: &[&str] = &["node_md_disks"];
    let mark = expo.family(
        DISKS,
        &["Number of active/failed/spare disks of device."],
        Kind::Gauge,
    );
    for a in arrays() {
        for (state, count) in [
            ("active", a.disks_active),
            ("failed", a.disks_failed),
            ("spare", a.disks_spare),
        ] {
            expo.sample(DISKS, &[("device", a.name), ("state", state)], count);
        }
    }
    expo.end_family(mark);
    const STATE: &[&str] = &["node_md_state"];
    let mark = expo.family(STATE, &["Indicates the state of md-device."], Kind::Gauge);
    for a in arrays() {
        for (label, state) in [
            ("active", "active"),
            ("inactive", "inactive"),
            ("recovering", "recovering"),
            ("resync", "resyncing"),
            ("check", "checking"),
        ] {
            expo.sample(
                STATE,
                &[("device", a.name), ("state", label)],
                u64::from(a.state == state),
            );
        }
    }
    expo.end_family(mark);
    let blocks: [(&str, &str, Field); 2] = [
        ("node_md_blocks", "Total number of blocks on device.", |a| {
            a.blocks_total
        }),
        (
            "node_md_blocks_synced",
            "Number of blocks synced on device.",
            |a| a.blocks_synced,
        ),
    ];
    for (name, help, field) in blocks {
        let mark = expo.family(&[name], &[help], Kind::Gauge);
        for a in arrays() {
            expo.sample(&[name], &[("device", a.name)], field(&a));
        }
        expo.end_family(mark);
    }
    Ok(())
}

/// The arrays of an mdstat text. An array takes a device line (`md0 : active raid1 sdb1[1]
/// sda1[0]`), a status line (`1046528 blocks super 1.2 [2/2] [UU]`), maybe a bitmap line, and
/// a line that tells about a resync, recovery or check in progress.
fn arrays(text: &str) -> impl Iterator<Item = io::Result<Array<'_>>> {
    let mut rest = text.lines();
    std::iter::from_fn(move || loop {
        let line = rest.next()?;
        if line.trim().is_empty()
            || line.starts_with(' ')
            || line.starts_with("Personalities")
            || line.starts_with("unused")
        {
            continue;
        }
        let mut following = rest.clone();
        return Some(array(line, &mut following));
    })
}

fn array<'t>(line: &'t str, following: &mut std::str::Lines<'t>) -> io::Result<Array<'t>> {
    let bad = |what| invalid("mdstat", what);
    let mut fields = line.split_ascii_whitespace();
    let (Some(name), Some(_), Some(state)) = (fields.next(), fields.next(), fields.next()) else {
        return Err(bad("a device line with fewer than 3 fields"));
    };
    let (Some(status), Some(third), Some(fourth)) = (following.next(), following.next(), following.next())
    else {
        return Err(bad("too few lines for an md device"));
    };
    let sync_line = if third.contains("bitmap") { fourth } else { third };
    let blocks_total: u64 = status
        .split_ascii_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad("a status line without a block count"))?;
    let (disks_active, disks_total) = if line.contains("raid0") || line.contains("linear") {
        let members = line.matches('[').count() as u64;
        (members, members)
    } else if line.contains("inactive") {
        (0, 0)
    } else {
        disk_counts(status).ok_or_else(|| bad("a status line without [total/active] [U_]"))?
    };
    let mut array = Array {
        name,
        state,
        disks_active,
        disks_total,
        disks_failed: line.matches("(F)").count() as u64,
        disks_spare: line.matches("(S)").count() as u64,
        blocks_total,
        blocks_synced: blocks_total,
    };
    let (recovering, resyncing, checking) = (
        sync_line.contains("recovery"),
        sync_line.contains("resync"),
        sync_line.contains("check"),
    );
    if recovering || resyncing || checking {
        array.state = if recovering {
            "recovering"
        } else if checking {
            "checking"
        } else {
            "resyncing"
        };
        array.blocks_synced = if sync_line.contains("PENDING") || sync_line.contains("DELAYED") {
            0
        } else {
            synced_blocks(sync_line)
                .ok_or_else(|| bad("a sync line without (done/total), %, finish= and speed="))?
        };
    }
    Ok(array)
}

/// `(\d+) blocks .*\[(\d+)/(\d+)\] \[([U_]+)\]` of the status line: (active, total).
fn disk_counts(status: &str) -> Option<(u64, u64)> {
    let after_blocks = &status[status.find(" blocks ")? + 1..];
    // The last "[n/m]" followed by " [U_...]".
    let mut found = None;
    let mut at = 0;
    while let Some(open) = after_blocks[at..].find('[') {
        let start = at + open + 1;
        let Some(close) = after_blocks[start..].find(']') else {
            break;
        };
        let inside = &after_blocks[start..start + close];
        let next = after_blocks[start + close + 1..].strip_prefix(" [");
        if let (Some((total, active)), Some(next)) = (inside.split_once('/'), next) {
            let flags_ok = next
                .split_once(']')
                .is_some_and(|(flags, _)| !flags.is_empty() && flags.bytes().all(|b| b == b'U' || b == b'_'));
            if let (Ok(total), Ok(active), true) = (total.parse(), active.parse(), flags_ok) {
                found = Some((active, total));
            }
        }
        at = start;
    }
    found
}

/// The synced blocks of a recovery line (`[==>...]  recovery = 12.6% (37043392/292945152)
/// finish=127.5min speed=33440K/sec`); `None` unless the line has all four parts.
fn synced_blocks(line: &str) -> Option<u64> {
    let open = line.find('(')?;
    let (done, _) = line[open + 1..].split_once('/')?;
    let done: u64 = done.parse().ok()?;
    let pct = line.split_once("= ")?.1.split_once('%')?.0;
    pct.trim().parse::<f64>().ok()?;
    let finish = line.split_once("finish=")?.1.split_once("min")?.0;
    finish.parse::<f64>().ok()?;
    let speed = line.split_once("speed=")?.1;
    let last_upper = speed.rfind(|c: char| c.is_ascii_uppercase())?;
    speed[..last_upper].parse::<f64>().ok()?;
    Some(done)
}
