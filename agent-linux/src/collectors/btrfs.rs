//! `btrfs`: Btrfs filesystems from `/sys/fs/btrfs/<uuid>/` (the kernel's
//! ABI/testing/sysfs-fs-btrfs): label, global reserve, and per block-group type (data,
//! metadata, system) the reserved bytes and each profile's used and allocated bytes. Devices
//! come from the kernel's ioctls on the mounted filesystem where it can be opened (size,
//! unused bytes, the five error counters, the device's UUID), and from sysfs otherwise (size
//! only), as node_exporter does.
//!
//! Reading follows node_exporter's reader, quirks included, so that both fail alike: an absent
//! value file counts as 0, a value that is not a number as 0, and only a failure reading the
//! `allocation/system` directory (the last one read) fails the collector, because each
//! block-group type's reader replaces the error state of the ones before it.

use std::io;

use rustix::fs::FileType;

use super::expo::{Expo, Kind};
use super::files::{for_each_entry, read_file, read_optional, set_path, Files, Names, Span};
use super::filesystem::{push_unescaped, strip_rootfs};
use super::Paths;

const SYSFS: &str = "fs/btrfs";
const GROUPS: [&str; 3] = ["data", "metadata", "system"];
/// The per-device error counters, in the kernel's order (`enum btrfs_dev_stat_values`).
const ERROR_TYPES: [&str; 5] = ["write", "read", "flush", "corruption", "generation"];

struct Filesystem {
    uuid: Span,
    label: Span,
    global_rsv_size: u64,
    reserved: [u64; 3],
    /// Its devices as the ioctls report them, if its mount could be opened: a range of `State::ioctl_devices`.
    ioctl_devices: Option<(usize, usize)>,
}

struct Layout {
    fs: usize,
    group: usize,
    mode: Span,
    used: u64,
    total: u64,
    ratio: f64,
}

/// A device as sysfs lists it.
struct SysfsDevice {
    fs: usize,
    name: Span,
    size: u64,
}

/// A device as the ioctls report it.
struct IoctlDevice {
    name: Span,
    uuid: Span,
    total_bytes: u64,
    bytes_used: u64,
    errors: [u64; 5],
}

/// A filesystem the ioctls reached: its FSID in hex, and its devices.
struct IoctlFilesystem {
    fsid: [u8; 32],
    devices: (usize, usize),
}

/// What the collector keeps between scrapes.
#[derive(Default)]
pub(super) struct State {
    filesystems_dir: Names,
    names: Names,
    text: String,
    filesystems: Vec<Filesystem>,
    layouts: Vec<Layout>,
    sysfs_devices: Vec<SysfsDevice>,
    ioctl_filesystems: Vec<IoctlFilesystem>,
    ioctl_devices: Vec<IoctlDevice>,
    /// Devices of btrfs mounts already reached, as spans of `text`.
    mounted_devices: Vec<Span>,
}

pub(super) fn collect(paths: &Paths, s: &mut Files, st: &mut State, expo: &mut Expo<'_>) -> io::Result<()> {
    st.text.clear();
    st.filesystems.clear();
    st.layouts.clear();
    st.sysfs_devices.clear();
    set_path(&mut s.path, &paths.sysfs, &[SYSFS]);
    match st.filesystems_dir.read(&s.path, |name, _| name.contains('-')) {
        Ok(()) => {}
        // No btrfs module: no filesystems, as node_exporter's empty glob.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // Taken out while the filesystems are read into the rest of the state (taking an empty
    // `Names` back does not allocate).
    let filesystems_dir = std::mem::take(&mut st.filesystems_dir);
    let read = filesystems_dir
        .iter()
        .try_for_each(|dir| read_filesystem(paths, s, st, dir));
    st.filesystems_dir = filesystems_dir;
    read?;
    // Like node_exporter, ioctl failures only mean the sysfs view is used.
    ioctl_devices(paths, s, st);
    for fs in &mut st.filesystems {
        let uuid = &st.text[fs.uuid.0..fs.uuid.1];
        fs.ioctl_devices = st
            .ioctl_filesystems
            .iter()
            .find(|i| uuid.bytes().filter(|b| *b != b'-').eq(i.fsid.iter().copied()))
            .map(|i| i.devices);
    }
    write(st, expo);
    Ok(())
}

/// node_exporter's reader: an error stays set until the next block-group type's reader replaces it,
/// and while it is set, values read as 0.
#[derive(Default)]
struct Reader {
    failed: Option<io::Error>,
}

impl Reader {
    /// A sysfs attribute as node_exporter reads it: at most 128 bytes, trimmed; "" when absent.
    fn text<'f>(&mut self, paths: &Paths, s: &'f mut Files, rel: &[&str]) -> &'f str {
        match read_optional(&mut s.path, &paths.sysfs, rel, &mut s.aux) {
            Ok(text) => {
                let mut end = text.len().min(128);
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text[..end].trim()
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    self.failed = Some(e);
                }
                ""
            }
        }
    }

    fn value(&mut self, paths: &Paths, s: &mut Files, rel: &[&str]) -> u64 {
        let text = self.text(paths, s, rel);
        if self.failed.is_some() || text.starts_with('+') {
            return 0;
        }
        text.parse().unwrap_or(0)
    }

    /// Whether the directory can be listed; a failure is kept.
    fn lists(&mut self, paths: &Paths, s: &mut Files, rel: &[&str]) -> bool {
        set_path(&mut s.path, &paths.sysfs, rel);
        match for_each_entry(&s.path, |_, _| {}) {
            Ok(()) => true,
            Err(e) => {
                self.failed = Some(e);
                false
            }
        }
    }
}

fn read_filesystem(paths: &Paths, s: &mut Files, st: &mut State, dir: &str) -> io::Result<()> {
    let fs = st.filesystems.len();
    let mut r = Reader::default();
    let mut device_count = 0;
    set_path(&mut s.path, &paths.sysfs, &[SYSFS, dir, "devices"]);
    match st.names.read(&s.path, |_, _| true) {
        Ok(()) => {
            for name in st.names.iter() {
                let size = 512 * r.value(paths, s, &[SYSFS, dir, "devices", name, "size"]);
                let name = push(&mut st.text, name);
                st.sysfs_devices.push(SysfsDevice { fs, name, size });
                device_count += 1;
            }
        }
        Err(e) => r.failed = Some(e),
    }
    let label = r.text(paths, s, &[SYSFS, dir, "label"]);
    let label = push(&mut st.text, label);
    let uuid = match r.text(paths, s, &[SYSFS, dir, "metadata_uuid"]) {
        "" => push(&mut st.text, dir),
        uuid => push(&mut st.text, uuid),
    };
    r.lists(paths, s, &[SYSFS, dir, "features"]);
    for file in ["clone_alignment", "nodesize", "quota_override", "sectorsize"] {
        r.value(paths, s, &[SYSFS, dir, file]);
    }
    r.value(paths, s, &[SYSFS, dir, "allocation", "global_rsv_reserved"]);
    let global_rsv_size = r.value(paths, s, &[SYSFS, dir, "allocation", "global_rsv_size"]);
    let mut reserved = [0u64; 3];
    for (group_index, group) in GROUPS.into_iter().enumerate() {
        // Each block-group type has its own reader, whose error becomes the filesystem's.
        let mut g = Reader::default();
        for file in [
            "bytes_may_use",
            "bytes_pinned",
            "bytes_readonly",
            "bytes_reserved",
            "bytes_used",
            "disk_used",
            "disk_total",
            "flags",
            "total_bytes",
            "total_bytes_pinned",
        ] {
            let value = g.value(paths, s, &[SYSFS, dir, "allocation", group, file]);
            if file == "bytes_reserved" {
                reserved[group_index] = value;
            }
        }
        set_path(&mut s.path, &paths.sysfs, &[SYSFS, dir, "allocation", group]);
        match st
            .names
            .read(&s.path, |_, file_type| file_type == FileType::Directory)
        {
            Ok(()) => {
                for mode in st.names.iter() {
                    let total = g.value(paths, s, &[SYSFS, dir, "allocation", group, mode, "total_bytes"]);
                    let used = g.value(paths, s, &[SYSFS, dir, "allocation", group, mode, "used_bytes"]);
                    let devices = device_count as f64;
                    let ratio = match mode {
                        "single" | "raid0" => 1.0,
                        "dup" | "raid1" | "raid10" => 2.0,
                        "raid5" => devices / (devices - 1.0),
                        "raid6" => devices / (devices - 2.0),
                        _ => 0.0,
                    };
                    let mode = push(&mut st.text, mode);
                    st.layouts.push(Layout {
                        fs,
                        group: group_index,
                        mode,
                        used,
                        total,
                        ratio,
                    });
                }
            }
            Err(e) => g.failed = Some(e),
        }
        r.failed = g.failed;
    }
    if let Some(e) = r.failed {
        return Err(e);
    }
    st.filesystems.push(Filesystem {
        uuid,
        label,
        global_rsv_size,
        reserved,
        ioctl_devices: None,
    });
    Ok(())
}

fn push(text: &mut String, part: &str) -> Span {
    let start = text.len();
    text.push_str(part);
    (start, text.len())
}

/// Asks each mounted btrfs filesystem (from PID 1's mount table under the procfs root, as
/// node_exporter does) for its devices. A mount that cannot be opened or asked is passed over.
fn ioctl_devices(paths: &Paths, s: &mut Files, st: &mut State) {
    st.ioctl_filesystems.clear();
    st.ioctl_devices.clear();
    st.mounted_devices.clear();
    let text = match read_file(&mut s.path, &paths.procfs, &["1/mounts"], &mut s.data) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match read_file(&mut s.path, &paths.procfs, &["mounts"], &mut s.data) {
                Ok(text) => text,
                Err(_) => return,
            }
        }
        Err(_) => return,
    };
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(device), Some(mount_point), Some("btrfs")) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if st.mounted_devices.iter().any(|d| &st.text[d.0..d.1] == device) {
            continue;
        }
        let mark = st.text.len();
        let decoded = push_unescaped(&mut st.text, mount_point);
        let host_path = strip_rootfs(&paths.rootfs, &st.text[decoded.0..decoded.1]);
        set_path(&mut s.path, &paths.rootfs, &[host_path.trim_start_matches('/')]);
        st.text.truncate(mark);
        let Ok(handle) = ioctl::open(&s.path) else {
            continue;
        };
        let Ok(info) = ioctl::fs_info(&handle) else {
            continue;
        };
        let fsid = hex(&info.fsid);
        if st.ioctl_filesystems.iter().any(|f| f.fsid == fsid) {
            continue;
        }
        let (text_mark, first) = (st.text.len(), st.ioctl_devices.len());
        if read_devices(&handle, &info, st).is_err() {
            st.text.truncate(text_mark);
            st.ioctl_devices.truncate(first);
            continue;
        }
        let device = push(&mut st.text, device);
        st.mounted_devices.push(device);
        st.ioctl_filesystems.push(IoctlFilesystem {
            fsid,
            devices: (first, st.ioctl_devices.len()),
        });
    }
}

/// Devices of one filesystem: ids 0 to `max_id`, of which unused ones answer ENODEV, until
/// `num_devices` are found.
fn read_devices(handle: &ioctl::Handle, info: &ioctl::FsInfo, st: &mut State) -> io::Result<()> {
    let mut found = 0;
    for id in 0..=info.max_id {
        let device = match ioctl::dev_info(handle, id) {
            Ok(device) => device,
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NODEV.raw_os_error()) => continue,
            Err(e) => return Err(e),
        };
        let errors = ioctl::dev_stats(handle, id)?;
        let path = &device.path[..device
            .path
            .iter()
            .position(|b| *b == 0)
            .unwrap_or(device.path.len())];
        let path = std::str::from_utf8(path).unwrap_or("");
        let name = push(&mut st.text, path.rsplit('/').next().unwrap_or(path));
        let uuid_start = st.text.len();
        push_uuid(&mut st.text, &device.uuid);
        st.ioctl_devices.push(IoctlDevice {
            name,
            uuid: (uuid_start, st.text.len()),
            total_bytes: device.total_bytes,
            bytes_used: device.bytes_used,
            errors,
        });
        found += 1;
        if found == info.num_devices {
            break;
        }
    }
    Ok(())
}

fn hex(bytes: &[u8; 16]) -> [u8; 32] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = DIGITS[usize::from(b >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(b & 15)];
    }
    out
}

/// A device UUID as node_exporter's btrfs library prints it: 8-4-4-4-12 hex digits, or
/// `<zero>` for the all-zero UUID.
fn push_uuid(out: &mut String, uuid: &[u8; 16]) {
    if uuid.iter().all(|b| *b == 0) {
        out.push_str("<zero>");
        return;
    }
    let digits = hex(uuid);
    for (i, group) in [(0, 8), (8, 12), (12, 16), (16, 20), (20, 32)]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            out.push('-');
        }
        out.push_str(std::str::from_utf8(&digits[group.0..group.1]).unwrap_or(""));
    }
}

fn write(st: &State, expo: &mut Expo<'_>) {
    let at = |(start, end): Span| &st.text[start..end];
    let gauge = |expo: &mut Expo<'_>, name: &str, help: &str| {
        expo.family(&["node_btrfs_", name], &[help], Kind::Gauge)
    };
    let mark = gauge(expo, "info", "Filesystem information");
    for fs in &st.filesystems {
        expo.sample(
            &["node_btrfs_info"],
            &[("uuid", at(fs.uuid)), ("label", at(fs.label))],
            1u64,
        );
    }
    expo.end_family(mark);
    let mark = gauge(expo, "global_rsv_size_bytes", "Size of global reserve.");
    for fs in &st.filesystems {
        expo.sample(
            &["node_btrfs_global_rsv_size_bytes"],
            &[("uuid", at(fs.uuid))],
            fs.global_rsv_size,
        );
    }
    expo.end_family(mark);
    let mark = gauge(expo, "reserved_bytes", "Amount of space reserved for a data type");
    for fs in &st.filesystems {
        for (group, reserved) in GROUPS.iter().zip(fs.reserved) {
            expo.sample(
                &["node_btrfs_reserved_bytes"],
                &[("uuid", at(fs.uuid)), ("block_group_type", group)],
                reserved,
            );
        }
    }
    expo.end_family(mark);
    type Field = fn(&Layout) -> f64;
    let layouts: [(&str, &str, Field); 3] = [
        ("used_bytes", "Amount of used space by a layout/data type", |l| {
            l.used as f64
        }),
        (
            "size_bytes",
            "Amount of space allocated for a layout/data type",
            |l| l.total as f64,
        ),
        (
            "allocation_ratio",
            "Data allocation ratio for a layout/data type",
            |l| l.ratio,
        ),
    ];
    for (name, help, field) in layouts {
        let mark = gauge(expo, name, help);
        for l in &st.layouts {
            let labels = [
                ("uuid", at(st.filesystems[l.fs].uuid)),
                ("block_group_type", GROUPS[l.group]),
                ("mode", at(l.mode)),
            ];
            expo.sample(&["node_btrfs_", name], &labels, field(l));
        }
        expo.end_family(mark);
    }
    let ioctl_of = |fs: &Filesystem| {
        fs.ioctl_devices
            .map_or(&[][..], |(start, end)| &st.ioctl_devices[start..end])
    };
    let mark = gauge(
        expo,
        "device_size_bytes",
        "Size of a device that is part of the filesystem.",
    );
    for (index, fs) in st.filesystems.iter().enumerate() {
        if fs.ioctl_devices.is_some() {
            for d in ioctl_of(fs) {
                let labels = [
                    ("uuid", at(fs.uuid)),
                    ("device", at(d.name)),
                    ("btrfs_dev_uuid", at(d.uuid)),
                ];
                expo.sample(&["node_btrfs_device_size_bytes"], &labels, d.total_bytes);
            }
        } else {
            for d in st.sysfs_devices.iter().filter(|d| d.fs == index) {
                expo.sample(
                    &["node_btrfs_device_size_bytes"],
                    &[("uuid", at(fs.uuid)), ("device", at(d.name))],
                    d.size,
                );
            }
        }
    }
    expo.end_family(mark);
    let mark = gauge(
        expo,
        "device_unused_bytes",
        "Unused bytes unused on a device that is part of the filesystem.",
    );
    for fs in &st.filesystems {
        for d in ioctl_of(fs) {
            let labels = [
                ("uuid", at(fs.uuid)),
                ("device", at(d.name)),
                ("btrfs_dev_uuid", at(d.uuid)),
            ];
            expo.sample(
                &["node_btrfs_device_unused_bytes"],
                &labels,
                d.total_bytes.wrapping_sub(d.bytes_used),
            );
        }
    }
    expo.end_family(mark);
    const ERRORS: &[&str] = &["node_btrfs_device_errors_total"];
    let mark = expo.family(ERRORS, &["Errors reported for the device"], Kind::Counter);
    for fs in &st.filesystems {
        for d in ioctl_of(fs) {
            for (kind, count) in ERROR_TYPES.iter().zip(d.errors) {
                let labels = [
                    ("uuid", at(fs.uuid)),
                    ("type", kind),
                    ("device", at(d.name)),
                    ("btrfs_dev_uuid", at(d.uuid)),
                ];
                expo.sample(ERRORS, &labels, count);
            }
        }
    }
    expo.end_family(mark);
}

/// The three btrfs ioctls node_exporter uses (include/uapi/linux/btrfs.h). None needs a
/// capability: reading device statistics without resetting them is open to any user who can
/// open the mount point.
mod ioctl {
    use std::io;
    use std::os::fd::AsRawFd as _;

    use rustix::fs::{FileType, Mode, OFlags};

    const MAGIC: u64 = 0x94;
    const READ: u64 = 2;
    const READ_WRITE: u64 = 3;

    /// `_IOC(direction, 0x94, number, size)` in the layout of x86, Arm and RISC-V.
    const fn request(direction: u64, number: u64, size: usize) -> u64 {
        (direction << 30) | ((size as u64) << 16) | (MAGIC << 8) | number
    }

    /// `struct btrfs_ioctl_fs_info_args`, 1 KiB; `flags` (after the fields read here) stays 0,
    /// so the kernel fills in only the original fields.
    #[repr(C)]
    pub(super) struct FsInfo {
        pub(super) max_id: u64,
        pub(super) num_devices: u64,
        pub(super) fsid: [u8; 16],
        nodesize: u32,
        sectorsize: u32,
        clone_alignment: u32,
        rest: [u8; 980],
    }

    /// `struct btrfs_ioctl_dev_info_args`, 4 KiB.
    #[repr(C)]
    pub(super) struct DevInfo {
        devid: u64,
        pub(super) uuid: [u8; 16],
        pub(super) bytes_used: u64,
        pub(super) total_bytes: u64,
        unused: [u64; 379],
        pub(super) path: [u8; 1024],
    }

    /// `struct btrfs_ioctl_get_dev_stats`: 3 + 5 + 121 words.
    #[repr(C)]
    struct DevStats {
        devid: u64,
        nr_items: u64,
        flags: u64,
        values: [u64; 5],
        unused: [u64; 121],
    }

    const _: () = assert!(std::mem::size_of::<FsInfo>() == 1024);
    const _: () = assert!(std::mem::size_of::<DevInfo>() == 4096);
    const _: () = assert!(std::mem::size_of::<DevStats>() == 1032);

    const FS_INFO: u64 = request(READ, 31, std::mem::size_of::<FsInfo>());
    const DEV_INFO: u64 = request(READ_WRITE, 30, std::mem::size_of::<DevInfo>());
    const GET_DEV_STATS: u64 = request(READ_WRITE, 52, std::mem::size_of::<DevStats>());

    pub(super) struct Handle(rustix::fd::OwnedFd);

    /// Opens a mount point the way node_exporter's btrfs library does: it must be the root of a
    /// btrfs subvolume (inode 256 on a filesystem with btrfs's magic), opened read-only without
    /// updating its access time. O_NOATIME needs the caller to own the directory or hold
    /// CAP_FOWNER, so a non-root agent falls back to sysfs as a non-root node_exporter does.
    pub(super) fn open(path: &std::path::Path) -> io::Result<Handle> {
        const SUBVOLUME_ROOT_INODE: u64 = 256;
        const BTRFS_SUPER_MAGIC: i64 = 0x9123_683e;
        let stat = rustix::fs::stat(path)?;
        if stat.st_ino != SUBVOLUME_ROOT_INODE || FileType::from_raw_mode(stat.st_mode) != FileType::Directory
        {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        if rustix::fs::statfs(path)?.f_type as i64 != BTRFS_SUPER_MAGIC {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::NOATIME | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Handle(fd))
    }

    /// Calls `request` with `arg`, a `repr(C)` struct of the size encoded in `request`.
    fn call<T>(handle: &Handle, request: u64, arg: &mut T) -> io::Result<()> {
        // SAFETY: each request number encodes the size of the struct its caller passes (the
        // const asserts above check the sizes against the kernel's), so the kernel reads and
        // writes only within `arg`, which lives for the whole call.
        let result = unsafe { libc::ioctl(handle.0.as_raw_fd(), request as _, arg as *mut T) };
        if result < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    pub(super) fn fs_info(handle: &Handle) -> io::Result<FsInfo> {
        let mut arg = FsInfo {
            max_id: 0,
            num_devices: 0,
            fsid: [0; 16],
            nodesize: 0,
            sectorsize: 0,
            clone_alignment: 0,
            rest: [0; 980],
        };
        call(handle, FS_INFO, &mut arg)?;
        Ok(arg)
    }

    pub(super) fn dev_info(handle: &Handle, id: u64) -> io::Result<DevInfo> {
        let mut arg = DevInfo {
            devid: id,
            uuid: [0; 16],
            bytes_used: 0,
            total_bytes: 0,
            unused: [0; 379],
            path: [0; 1024],
        };
        call(handle, DEV_INFO, &mut arg)?;
        Ok(arg)
    }

    /// The device's write, read, flush, corruption and generation error counts.
    pub(super) fn dev_stats(handle: &Handle, id: u64) -> io::Result<[u64; 5]> {
        let mut arg = DevStats {
            devid: id,
            nr_items: 5,
            flags: 0,
            values: [0; 5],
            unused: [0; 121],
        };
        call(handle, GET_DEV_STATS, &mut arg)?;
        Ok(arg.values)
    }
}
