//! `dmi`: the machine's firmware (DMI/SMBIOS) identification from `/sys/class/dmi/id` as labels
//! of `node_dmi_info`: BIOS, board, chassis, product and vendor.

use std::io;

use rustix::fs::FileType;

use super::expo::{Expo, Kind};
use super::files::{read_optional, set_path, Files, Names};
use super::Paths;

/// The attributes node_exporter labels node_dmi_info with, sorted.
const LABELS: [&str; 20] = [
    "bios_date",
    "bios_release",
    "bios_vendor",
    "bios_version",
    "board_asset_tag",
    "board_name",
    "board_serial",
    "board_vendor",
    "board_version",
    "chassis_asset_tag",
    "chassis_serial",
    "chassis_vendor",
    "chassis_version",
    "product_family",
    "product_name",
    "product_serial",
    "product_sku",
    "product_uuid",
    "product_version",
    "sys_vendor",
];

/// What the collector keeps between scrapes: the directory's files and the values read.
#[derive(Default)]
pub(super) struct State {
    files: Names,
    text: String,
}

pub(super) fn collect(paths: &Paths, s: &mut Files, st: &mut State, expo: &mut Expo<'_>) -> io::Result<()> {
    set_path(&mut s.path, &paths.sysfs, &["class/dmi/id"]);
    st.files
        .read(&s.path, |_, file_type| file_type == FileType::RegularFile)?;
    st.text.clear();
    let mut labels = [("", (0usize, 0usize)); 20];
    let mut count = 0;
    for (label, attribute) in LABELS.iter().zip(LABELS) {
        // sys_vendor is labelled system_vendor.
        if !st.files.iter().any(|f| f == attribute) {
            continue;
        }
        // Serial numbers and the UUID are readable by root only: left out otherwise.
        let value = match read_optional(
            &mut s.path,
            &paths.sysfs,
            &["class/dmi/id", attribute],
            &mut s.aux,
        ) {
            Ok(value) => value.trim(),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => continue,
            Err(e) => return Err(e),
        };
        let start = st.text.len();
        st.text.push_str(value);
        let name = if *label == "sys_vendor" {
            "system_vendor"
        } else {
            label
        };
        labels[count] = (name, (start, st.text.len()));
        count += 1;
    }
    if count == 0 {
        return Err(io::Error::from(io::ErrorKind::NotFound));
    }
    let mut pairs = [("", ""); 20];
    for (pair, (name, (start, end))) in pairs.iter_mut().zip(&labels[..count]) {
        *pair = (name, &st.text[*start..*end]);
    }
    expo.single(
        &["node_dmi_info"],
        &[
            "A metric with a constant '1' value labeled by bios_date, bios_release, bios_vendor, bios_version, \
             board_asset_tag, board_name, board_serial, board_vendor, board_version, chassis_asset_tag, \
             chassis_serial, chassis_vendor, chassis_version, product_family, product_name, product_serial, \
             product_sku, product_uuid, product_version, system_vendor if provided by DMI.",
        ],
        Kind::Gauge,
        &pairs[..count],
        1u64,
    );
    Ok(())
}
