//! `selinux`: whether SELinux is enabled, and its configured and current enforcement modes.
//!
//! node_exporter asks the host's `/sys/fs/selinux` and `/etc/selinux/config` whatever its
//! `--path.*` flags say; here they are read under the sysfs and rootfs paths, so that a
//! containerized agent reads the host's.

use std::io;

use super::expo::{Expo, Kind};
use super::files::{read_optional, Files};
use super::Paths;

pub(super) fn collect(paths: &Paths, s: &mut Files, expo: &mut Expo<'_>) -> io::Result<()> {
    const ENABLED: (&[&str], &[&str]) = (
        &["node_selinux_enabled"],
        &["SELinux is enabled, 1 is true, 0 is false"],
    );
    let current = read_optional(&mut s.path, &paths.sysfs, &["fs/selinux/enforce"], &mut s.aux)
        .ok()
        .and_then(|t| t.trim().parse::<i64>().ok());
    let Some(current) = current else {
        expo.single(ENABLED.0, ENABLED.1, Kind::Gauge, &[], 0u64);
        return Ok(());
    };
    expo.single(ENABLED.0, ENABLED.1, Kind::Gauge, &[], 1u64);
    // Enforcing 1, permissive 0, disabled (or no config) -1, as go-selinux reports them.
    let configured = read_optional(&mut s.path, &paths.rootfs, &["etc/selinux/config"], &mut s.data)
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix("SELINUX="))
                .map(|mode| match mode.trim() {
                    "enforcing" => 1.0,
                    "permissive" => 0.0,
                    _ => -1.0,
                })
        })
        .unwrap_or(-1.0);
    expo.single(
        &["node_selinux_config_mode"],
        &["Configured SELinux enforcement mode"],
        Kind::Gauge,
        &[],
        configured,
    );
    expo.single(
        &["node_selinux_current_mode"],
        &["Current SELinux enforcement mode"],
        Kind::Gauge,
        &[],
        current as f64,
    );
    Ok(())
}
