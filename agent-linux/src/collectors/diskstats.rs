//! `diskstats`: per-disk I/O counters from `/proc/diskstats`, with udev's properties as
//! `node_disk_info` labels and the filesystem, device-mapper and ATA families.

use std::fmt::Write as _;
use std::io;

use super::expo::{Expo, Kind, Value};
use super::files::{invalid, read_file, read_optional, Files};
use super::pattern::Pattern;
use super::Paths;

/// The collector's setting and what it keeps between scrapes: each disk's udev entry, read
/// once per scrape.
#[derive(Default)]
pub(super) struct State {
    /// `--collector.diskstats.device-exclude`; `None`: node_exporter's default ([`disk_excluded`]).
    pub(super) device_exclude: Option<Pattern>,
    /// Per line of `/proc/diskstats`, whether the device is left out.
    excluded: Vec<bool>,
    udev_text: String,
    udev_ranges: Vec<(usize, usize)>,
}

/// node_exporter 1.5's default `--collector.diskstats.device-exclude`:
/// `^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$` (partitions and pseudo devices).
pub(super) fn disk_excluded(device: &str) -> bool {
    fn digits_only(s: &str) -> bool {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
    }
    fn letter_then_digits(s: &str) -> bool {
        s.as_bytes().first().is_some_and(u8::is_ascii_lowercase) && digits_only(&s[1..])
    }
    for prefix in ["ram", "loop", "fd"] {
        if device.strip_prefix(prefix).is_some_and(digits_only) {
            return true;
        }
    }
    for prefix in ["hd", "sd", "vd", "xvd"] {
        if device.strip_prefix(prefix).is_some_and(letter_then_digits) {
            return true;
        }
    }
    // nvme\d+n\d+p\d+
    if let Some(rest) = device.strip_prefix("nvme") {
        let mut parts = rest.splitn(2, 'n');
        let (ctrl, rest) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if let Some((ns, part)) = rest.split_once('p') {
            return digits_only(ctrl) && digits_only(ns) && digits_only(part);
        }
    }
    false
}

pub(super) fn collect(paths: &Paths, s: &mut Files, st: &mut State, expo: &mut Expo<'_>) -> io::Result<()> {
    /// (column after major/minor/name, metric, help, type, scale)
    const STATS: [(usize, &str, &str, Kind, Scale); 17] = [
        (
            0,
            "node_disk_reads_completed_total",
            "The total number of reads completed successfully.",
            Kind::Counter,
            Scale::One,
        ),
        (
            1,
            "node_disk_reads_merged_total",
            "The total number of reads merged.",
            Kind::Counter,
            Scale::One,
        ),
        (
            2,
            "node_disk_read_bytes_total",
            "The total number of bytes read successfully.",
            Kind::Counter,
            Scale::Sectors,
        ),
        (
            3,
            "node_disk_read_time_seconds_total",
            "The total number of seconds spent by all reads.",
            Kind::Counter,
            Scale::Millis,
        ),
        (
            4,
            "node_disk_writes_completed_total",
            "The total number of writes completed successfully.",
            Kind::Counter,
            Scale::One,
        ),
        (
            5,
            "node_disk_writes_merged_total",
            "The number of writes merged.",
            Kind::Counter,
            Scale::One,
        ),
        (
            6,
            "node_disk_written_bytes_total",
            "The total number of bytes written successfully.",
            Kind::Counter,
            Scale::Sectors,
        ),
        (
            7,
            "node_disk_write_time_seconds_total",
            "This is the total number of seconds spent by all writes.",
            Kind::Counter,
            Scale::Millis,
        ),
        (
            8,
            "node_disk_io_now",
            "The number of I/Os currently in progress.",
            Kind::Gauge,
            Scale::One,
        ),
        (
            9,
            "node_disk_io_time_seconds_total",
            "Total seconds spent doing I/Os.",
            Kind::Counter,
            Scale::Millis,
        ),
        (
            10,
            "node_disk_io_time_weighted_seconds_total",
            "The weighted # of seconds spent doing I/Os.",
            Kind::Counter,
            Scale::Millis,
        ),
        (
            11,
            "node_disk_discards_completed_total",
            "The total number of discards completed successfully.",
            Kind::Counter,
            Scale::One,
        ),
        (
            12,
            "node_disk_discards_merged_total",
            "The total number of discards merged.",
            Kind::Counter,
            Scale::One,
        ),
        (
            13,
            "node_disk_discarded_sectors_total",
            "The total number of sectors discarded successfully.",
            Kind::Counter,
            Scale::One,
        ),
        (
            14,
            "node_disk_discard_time_seconds_total",
            "This is the total number of seconds spent by all discards.",
            Kind::Counter,
            Scale::Millis,
        ),
        (
            15,
            "node_disk_flush_requests_total",
            "The total number of flush requests completed successfully",
            Kind::Counter,
            Scale::One,
        ),
        (
            16,
            "node_disk_flush_requests_time_seconds_total",
            "This is the total number of seconds spent by all flush requests.",
            Kind::Counter,
            Scale::Millis,
        ),
    ];
    let text = read_file(&mut s.path, &paths.procfs, &["diskstats"], &mut s.data)?;
    st.excluded.clear();
    for line in text.lines() {
        let device = line.split_ascii_whitespace().nth(2).unwrap_or("");
        let excluded = match &mut st.device_exclude {
            Some(pattern) => pattern.is_match(device),
            None => disk_excluded(device),
        };
        st.excluded.push(excluded);
    }
    let excluded = &st.excluded;
    let disks = || {
        text.lines().zip(excluded).filter_map(|(line, &excluded)| {
            let mut words = line.split_ascii_whitespace();
            let (major, minor, device) = (words.next()?, words.next()?, words.next()?);
            (!excluded).then_some((major, minor, device, words))
        })
    };
    // udev's database is optional (containers, minimal hosts): empty labels then, as in
    // node_exporter. Each disk's entry is read once and kept for the four udev-based families.
    st.udev_text.clear();
    st.udev_ranges.clear();
    for (major, minor, _, _) in disks() {
        s.text.clear();
        let _ = write!(s.text, "b{major}:{minor}");
        let start = st.udev_text.len();
        let rel = ["run/udev/data", s.text.as_str()];
        if let Ok(udev) = read_optional(&mut s.path, &paths.rootfs, &rel, &mut s.aux) {
            st.udev_text.push_str(udev);
        }
        st.udev_ranges.push((start, st.udev_text.len()));
    }
    let udev_of = |index: usize| &st.udev_text[st.udev_ranges[index].0..st.udev_ranges[index].1];
    const INFO: &[&str] = &["node_disk_info"];
    let mark = expo.family(INFO, &["Info of /sys/block/<block_device>."], Kind::Gauge);
    for (index, (major, minor, device, _)) in disks().enumerate() {
        let udev = udev_of(index);
        let property = |key| udev_property(udev, key).unwrap_or("");
        expo.sample(
            INFO,
            &[
                ("device", device),
                ("major", major),
                ("minor", minor),
                ("model", property("ID_MODEL")),
                ("path", property("ID_PATH")),
                ("revision", property("ID_REVISION")),
                ("serial", property("ID_SERIAL_SHORT")),
                ("wwn", property("ID_WWN")),
            ],
            1u64,
        );
    }
    expo.end_family(mark);
    const FS_INFO: &[&str] = &["node_disk_filesystem_info"];
    let mark = expo.family(FS_INFO, &["Info about disk filesystem."], Kind::Gauge);
    for (index, (_, _, device, _)) in disks().enumerate() {
        let udev = udev_of(index);
        let property = |key| udev_property(udev, key).unwrap_or("");
        if !property("ID_FS_TYPE").is_empty() {
            let labels = [
                ("device", device),
                ("type", property("ID_FS_TYPE")),
                ("usage", property("ID_FS_USAGE")),
                ("uuid", property("ID_FS_UUID")),
                ("version", property("ID_FS_VERSION")),
            ];
            expo.sample(FS_INFO, &labels, 1u64);
        }
    }
    expo.end_family(mark);
    const DM_INFO: &[&str] = &["node_disk_device_mapper_info"];
    let mark = expo.family(DM_INFO, &["Info about disk device mapper."], Kind::Gauge);
    for (index, (_, _, device, _)) in disks().enumerate() {
        let udev = udev_of(index);
        let property = |key| udev_property(udev, key).unwrap_or("");
        if !property("DM_NAME").is_empty() {
            let labels = [
                ("device", device),
                ("lv_layer", property("DM_LV_LAYER")),
                ("lv_name", property("DM_LV_NAME")),
                ("name", property("DM_NAME")),
                ("uuid", property("DM_UUID")),
                ("vg_name", property("DM_VG_NAME")),
            ];
            expo.sample(DM_INFO, &labels, 1u64);
        }
    }
    expo.end_family(mark);
    for (key, name, help) in [
        (
            "ID_ATA_ROTATION_RATE_RPM",
            "node_disk_ata_rotation_rate_rpm",
            "ATA disk rotation rate in RPMs (0 for SSDs).",
        ),
        (
            "ID_ATA_WRITE_CACHE",
            "node_disk_ata_write_cache",
            "ATA disk has a write cache.",
        ),
        (
            "ID_ATA_WRITE_CACHE_ENABLED",
            "node_disk_ata_write_cache_enabled",
            "ATA disk has its write cache enabled.",
        ),
    ] {
        let mark = expo.family(&[name], &[help], Kind::Gauge);
        for (index, (_, _, device, _)) in disks().enumerate() {
            let udev = udev_of(index);
            if udev_property(udev, "ID_ATA").is_none_or(str::is_empty) {
                continue;
            }
            if let Some(value) = udev_property(udev, key).and_then(|v| v.parse::<f64>().ok()) {
                expo.sample(&[name], &[("device", device)], value);
            }
        }
        expo.end_family(mark);
    }
    for (column, name, help, kind, scale) in STATS {
        let mark = expo.family(&[name], &[help], kind);
        for (_, _, device, mut columns) in disks() {
            // Older kernels have fewer columns (no discard/flush); those series are simply absent.
            let Some(raw) = columns.nth(column) else { continue };
            let raw: u64 = raw
                .parse()
                .map_err(|_| invalid("diskstats", "column not a number"))?;
            let value = match scale {
                Scale::One => Value::Int(raw),
                Scale::Sectors => Value::Int(raw.saturating_mul(512)),
                Scale::Millis => Value::Float(raw as f64 / 1000.0),
            };
            expo.sample(&[name], &[("device", device)], value);
        }
        expo.end_family(mark);
    }
    Ok(())
}

/// An `E:KEY=value` property of a udev database entry.
fn udev_property<'u>(udev: &'u str, key: &str) -> Option<&'u str> {
    udev.lines()
        .find_map(|line| line.strip_prefix("E:")?.strip_prefix(key)?.strip_prefix('='))
}

#[derive(Clone, Copy)]
enum Scale {
    One,
    /// The kernel counts 512-byte sectors whatever the device's sector size.
    Sectors,
    Millis,
}
