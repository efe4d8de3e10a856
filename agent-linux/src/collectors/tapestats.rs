//! `tapestats`: I/O statistics of SCSI tape drives from `/sys/class/scsi_tape/stN/stats/`.

use std::io;

use super::expo::{Expo, Kind};
use super::files::{invalid, read_optional, set_path, Files, Names};
use super::Paths;

/// (stats file, metric, help, type, is nanoseconds), in node_exporter's order.
const COUNTERS: [(&str, &str, &str, Kind, bool); 10] = [
    ("in_flight", "node_tape_io_now", "The number of I/Os currently outstanding to this device.", Kind::Gauge, false),
    (
        "io_ns",
        "node_tape_io_time_seconds_total",
        "The amount of time spent waiting for all I/O to complete (including read and write). This includes tape \
         movement commands such as seeking between file or set marks and implicit tape movement such as when rewind \
         on close tape devices are used.",
        Kind::Counter,
        true,
    ),
    (
        "other_cnt",
        "node_tape_io_others_total",
        "The number of I/Os issued to the tape drive other than read or write commands. The time taken to complete \
         these commands uses the following calculation io_time_seconds_total-read_time_seconds_total-write_time_seconds_total",
        Kind::Counter,
        false,
    ),
    ("read_byte_cnt", "node_tape_read_bytes_total", "The number of bytes read from the tape drive.", Kind::Counter, false),
    (
        "read_cnt",
        "node_tape_reads_completed_total",
        "The number of read requests issued to the tape drive.",
        Kind::Counter,
        false,
    ),
    (
        "read_ns",
        "node_tape_read_time_seconds_total",
        "The amount of time spent waiting for read requests to complete.",
        Kind::Counter,
        true,
    ),
    (
        "resid_cnt",
        "node_tape_residual_total",
        "The number of times during a read or write we found the residual amount to be non-zero. This should mean \
         that a program is issuing a read larger thean the block size on tape. For write not all data made it to tape.",
        Kind::Counter,
        false,
    ),
    (
        "write_byte_cnt",
        "node_tape_written_bytes_total",
        "The number of bytes written to the tape drive.",
        Kind::Counter,
        false,
    ),
    (
        "write_cnt",
        "node_tape_writes_completed_total",
        "The number of write requests issued to the tape drive.",
        Kind::Counter,
        false,
    ),
    (
        "write_ns",
        "node_tape_write_time_seconds_total",
        "The amount of time spent waiting for write requests to complete.",
        Kind::Counter,
        true,
    ),
];

/// What the collector keeps between scrapes: the tapes and their counters.
#[derive(Default)]
pub(super) struct State {
    tapes: Names,
    counters: Vec<[u64; 10]>,
}

pub(super) fn collect(paths: &Paths, s: &mut Files, st: &mut State, expo: &mut Expo<'_>) -> io::Result<()> {
    set_path(&mut s.path, &paths.sysfs, &["class/scsi_tape"]);
    // st0, st1, ...; the nst* (no-rewind) and mode devices are the same drives.
    st.tapes.read(&s.path, |name, _| {
        name.strip_prefix("st")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })?;
    st.counters.clear();
    for tape in st.tapes.iter() {
        let mut counters = [0u64; 10];
        for (slot, (file, ..)) in counters.iter_mut().zip(COUNTERS) {
            let rel = ["class/scsi_tape", tape, "stats", file];
            match read_optional(&mut s.path, &paths.sysfs, &rel, &mut s.aux) {
                Ok(text) => {
                    *slot = text
                        .trim()
                        .parse()
                        .map_err(|_| invalid("class/scsi_tape", "counter not a number"))?
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        st.counters.push(counters);
    }
    for (index, (_, name, help, kind, nanoseconds)) in COUNTERS.into_iter().enumerate() {
        let mark = expo.family(&[name], &[help], kind);
        for (tape, counters) in st.tapes.iter().zip(&st.counters) {
            let value = counters[index] as f64;
            let value = if nanoseconds { value * 0.000000001 } else { value };
            expo.sample(&[name], &[("device", tape)], value);
        }
        expo.end_family(mark);
    }
    Ok(())
}
