//! `entropy`: the kernel's entropy pool from `/proc/sys/kernel/random`.

use std::io;

use super::expo::{Expo, Kind};
use super::files::{invalid, read_file, Files};
use super::Paths;

pub(super) fn collect(paths: &Paths, s: &mut Files, expo: &mut Expo<'_>) -> io::Result<()> {
    for (file, name, help) in [
        (
            "entropy_avail",
            "node_entropy_available_bits",
            "Bits of available entropy.",
        ),
        ("poolsize", "node_entropy_pool_size_bits", "Bits of entropy pool."),
    ] {
        let text = read_file(
            &mut s.path,
            &paths.procfs,
            &["sys/kernel/random", file],
            &mut s.data,
        )?;
        let value: u64 = text
            .trim()
            .parse()
            .map_err(|_| invalid("sys/kernel/random", "value not a number"))?;
        expo.single(&[name], &[help], Kind::Gauge, &[], value);
    }
    Ok(())
}
