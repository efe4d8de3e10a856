//! `filefd`: allocated and maximum file handles from `/proc/sys/fs/file-nr`.

use std::io;

use super::expo::{Expo, Kind};
use super::files::{invalid, read_file, Files};
use super::Paths;

pub(super) fn collect(paths: &Paths, s: &mut Files, expo: &mut Expo<'_>) -> io::Result<()> {
    let text = read_file(&mut s.path, &paths.procfs, &["sys/fs/file-nr"], &mut s.data)?;
    // "allocated \t unused \t maximum"; the unused count is always 0 since Linux 2.6.
    let mut fields = text.trim().split('\t');
    let (Some(allocated), Some(_), Some(maximum)) = (fields.next(), fields.next(), fields.next()) else {
        return Err(invalid("sys/fs/file-nr", "fewer than 3 fields"));
    };
    for (name, value) in [("allocated", allocated), ("maximum", maximum)] {
        let value: f64 = value
            .trim()
            .parse()
            .map_err(|_| invalid("sys/fs/file-nr", "value not a number"))?;
        expo.single(
            &["node_filefd_", name],
            &["File descriptor statistics: ", name, "."],
            Kind::Gauge,
            &[],
            value,
        );
    }
    Ok(())
}
