//! `filesystem`: size, free space and inodes of every mounted filesystem (statvfs, off the
//! loop: see [`super::statfs`]), with node_exporter's default mount-point and filesystem-type
//! exclusions.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::expo::{Expo, Kind};
use super::files::{read_file, set_path, Files};
use super::pattern::Pattern;
use super::statfs::{FsStats, FsStatsSource, StatfsPool};
use super::Paths;

/// How long a scrape waits for one mount's stats by default (see [`super::statfs`]). Shorter than
/// node_exporter's 5 s: the scrape runs on the agent's event loop.
pub const DEFAULT_MOUNT_TIMEOUT: Duration = Duration::from_secs(1);

/// What the collector keeps between scrapes: the mounts of the last scrape, and the workers
/// that call statvfs.
pub(super) struct State {
    /// `--collector.filesystem.mount-points-exclude`; `None`: node_exporter's default.
    pub(super) mount_points_exclude: Option<Pattern>,
    /// `--collector.filesystem.fs-types-exclude`; `None`: node_exporter's default.
    pub(super) fs_types_exclude: Option<Pattern>,
    mount_text: String,
    mounts: Vec<Mount>,
    statfs: StatfsPool,
}

impl State {
    pub(super) fn new(source: Arc<dyn FsStatsSource>, mount_timeout: Duration) -> Self {
        State {
            mount_points_exclude: None,
            fs_types_exclude: None,
            mount_text: String::new(),
            mounts: Vec::new(),
            statfs: StatfsPool::new(source, mount_timeout),
        }
    }

    /// Mounts whose statvfs is still running past its timeout.
    #[cfg(test)]
    pub(super) fn hanging(&self) -> usize {
        self.statfs.hanging()
    }
}

/// A mount kept for rendering: ranges into `State::mount_text`, then its statvfs result.
struct Mount {
    device: (usize, usize),
    mountpoint: (usize, usize),
    fstype: (usize, usize),
    readonly: bool,
    stats: Option<FsStats>,
}

impl Mount {
    fn key<'t>(&self, text: &'t str) -> (&'t str, &'t str, &'t str) {
        let range = |(start, end): (usize, usize)| &text[start..end];
        (range(self.device), range(self.mountpoint), range(self.fstype))
    }
}

/// node_exporter 1.5's default `--collector.filesystem.mount-points-exclude`:
/// `^/(dev|proc|run|sys|mnt|media|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)`.
pub(super) fn mount_point_excluded(mount_point: &str) -> bool {
    let Some(rest) = mount_point.strip_prefix('/') else {
        return false;
    };
    for dir in ["dev", "proc", "run", "sys", "mnt", "media"] {
        if rest
            .strip_prefix(dir)
            .is_some_and(|tail| tail.is_empty() || tail.starts_with('/'))
        {
            return true;
        }
    }
    // `.+` then `($|/)` holds for any non-empty tail.
    ["var/lib/docker/", "var/lib/containers/storage/"]
        .iter()
        .any(|dir| rest.strip_prefix(dir).is_some_and(|tail| !tail.is_empty()))
}

/// node_exporter 1.5's default `--collector.filesystem.fs-types-exclude`.
pub(super) fn fs_type_excluded(fs_type: &str) -> bool {
    const EXCLUDED: [&str; 24] = [
        "autofs",
        "binfmt_misc",
        "bpf",
        "cgroup",
        "cgroup2",
        "configfs",
        "debugfs",
        "devpts",
        "devtmpfs",
        "fusectl",
        "hugetlbfs",
        "iso9660",
        "mqueue",
        "nsfs",
        "overlay",
        "proc",
        "procfs",
        "pstore",
        "rpc_pipefs",
        "securityfs",
        "selinuxfs",
        "squashfs",
        "sysfs",
        "tracefs",
    ];
    EXCLUDED.contains(&fs_type)
}

/// Appends a mounts-file field with its octal escapes (`\040` for space, ...) decoded.
pub(super) fn push_unescaped(out: &mut String, field: &str) -> (usize, usize) {
    let start = out.len();
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let digits = rest
            .as_bytes()
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match digits {
            Some(d) => {
                let code = u32::from(d[0] - b'0') * 64 + u32::from(d[1] - b'0') * 8 + u32::from(d[2] - b'0');
                out.push(char::from_u32(code).unwrap_or('?'));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    (start, out.len())
}

/// node_exporter strips the rootfs prefix from mount points so that labels name the host's paths.
pub(super) fn strip_rootfs<'m>(rootfs: &Path, mount_point: &'m str) -> &'m str {
    let root = rootfs.as_os_str().to_str().unwrap_or("/").trim_end_matches('/');
    if root.is_empty() {
        return mount_point;
    }
    match mount_point.strip_prefix(root) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => mount_point,
    }
}

pub(super) fn collect(paths: &Paths, s: &mut Files, st: &mut State, expo: &mut Expo<'_>) -> io::Result<()> {
    // PID 1's view is the host's when procfs is the host's /proc; node_exporter falls back the same way.
    let text = match read_file(&mut s.path, &paths.procfs, &["1/mounts"], &mut s.data) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            read_file(&mut s.path, &paths.procfs, &["mounts"], &mut s.data)?
        }
        Err(e) => return Err(e),
    };
    st.mount_text.clear();
    st.mounts.clear();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(device), Some(raw_mount_point), Some(fs_type), options) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next().unwrap_or(""),
        ) else {
            continue;
        };
        let excluded = match &mut st.fs_types_exclude {
            Some(pattern) => pattern.is_match(fs_type),
            None => fs_type_excluded(fs_type),
        };
        if excluded {
            continue;
        }
        let mark = st.mount_text.len();
        let decoded = push_unescaped(&mut st.mount_text, raw_mount_point);
        let stripped = strip_rootfs(&paths.rootfs, &st.mount_text[decoded.0..decoded.1]);
        let excluded = match &mut st.mount_points_exclude {
            Some(pattern) => pattern.is_match(stripped),
            None => mount_point_excluded(stripped),
        };
        if excluded {
            st.mount_text.truncate(mark);
            continue;
        }
        let offset = st.mount_text[decoded.0..decoded.1].len() - stripped.len();
        let mount_point = (decoded.0 + offset, decoded.1);
        let device_range = push_unescaped(&mut st.mount_text, device);
        let fs_type_range = push_unescaped(&mut st.mount_text, fs_type);
        let candidate = Mount {
            device: device_range,
            mountpoint: mount_point,
            fstype: fs_type_range,
            readonly: options.split(',').any(|o| o == "ro"),
            stats: None,
        };
        // A mount stacked on the same path with the same device and type would repeat a series.
        if st
            .mounts
            .iter()
            .any(|m| m.key(&st.mount_text) == candidate.key(&st.mount_text))
        {
            st.mount_text.truncate(mark);
            continue;
        }
        st.mounts.push(candidate);
    }
    for i in 0..st.mounts.len() {
        let (start, end) = st.mounts[i].mountpoint;
        let mount_point = &st.mount_text[start..end];
        set_path(&mut s.path, &paths.rootfs, &[mount_point.trim_start_matches('/')]);
        st.mounts[i].stats = st.statfs.stats(&s.path);
    }

    type Field = fn(&FsStats) -> u64;
    let families: [(&str, &str, Field); 5] = [
        ("node_filesystem_size_bytes", "Filesystem size in bytes.", |f| {
            f.size
        }),
        (
            "node_filesystem_free_bytes",
            "Filesystem free space in bytes.",
            |f| f.free,
        ),
        (
            "node_filesystem_avail_bytes",
            "Filesystem space available to non-root users in bytes.",
            |f| f.avail,
        ),
        ("node_filesystem_files", "Filesystem total file nodes.", |f| {
            f.files
        }),
        (
            "node_filesystem_files_free",
            "Filesystem total free file nodes.",
            |f| f.files_free,
        ),
    ];
    let text = &st.mount_text;
    let labels = |m: &Mount| {
        [
            ("device", &text[m.device.0..m.device.1]),
            ("fstype", &text[m.fstype.0..m.fstype.1]),
            ("mountpoint", &text[m.mountpoint.0..m.mountpoint.1]),
        ]
    };
    for (name, help, field) in families {
        let mark = expo.family(&[name], &[help], Kind::Gauge);
        for m in &st.mounts {
            if let Some(stats) = &m.stats {
                expo.sample(&[name], &labels(m), field(stats));
            }
        }
        expo.end_family(mark);
    }
    const READONLY: &[&str] = &["node_filesystem_readonly"];
    let mark = expo.family(READONLY, &["Filesystem read-only status."], Kind::Gauge);
    for m in st.mounts.iter().filter(|m| m.stats.is_some()) {
        expo.sample(READONLY, &labels(m), u64::from(m.readonly));
    }
    expo.end_family(mark);
    const ERROR: &[&str] = &["node_filesystem_device_error"];
    let mark = expo.family(
        ERROR,
        &["Whether an error occurred while getting statistics for the given device."],
        Kind::Gauge,
    );
    for m in &st.mounts {
        expo.sample(ERROR, &labels(m), u64::from(m.stats.is_none()));
    }
    expo.end_family(mark);
    Ok(())
}
