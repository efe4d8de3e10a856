//! `nvme`: each NVMe controller's model, serial, firmware revision and state from
//! `/sys/class/nvme/<device>/`.

use std::io;

use super::expo::{Expo, Kind};
use super::files::{read_file, set_path, Files, Names};
use super::Paths;

/// The attributes, in the order of node_nvme_info's labels after `device`.
const ATTRIBUTES: [(&str, &str); 4] = [
    ("firmware_rev", "firmware_revision"),
    ("model", "model"),
    ("serial", "serial"),
    ("state", "state"),
];

/// What the collector keeps between scrapes.
#[derive(Default)]
pub(super) struct State {
    devices: Names,
    text: String,
    values: Vec<[(usize, usize); 4]>,
}

pub(super) fn collect(paths: &Paths, s: &mut Files, st: &mut State, expo: &mut Expo<'_>) -> io::Result<()> {
    set_path(&mut s.path, &paths.sysfs, &["class/nvme"]);
    st.devices.read(&s.path, |_, _| true)?;
    st.text.clear();
    st.values.clear();
    for device in st.devices.iter() {
        let mut values = [(0, 0); 4];
        for (slot, (file, _)) in values.iter_mut().zip(ATTRIBUTES) {
            let value = read_file(
                &mut s.path,
                &paths.sysfs,
                &["class/nvme", device, file],
                &mut s.aux,
            )?
            .trim();
            let start = st.text.len();
            st.text.push_str(value);
            *slot = (start, st.text.len());
        }
        st.values.push(values);
    }
    const INFO: &[&str] = &["node_nvme_info"];
    let mark = expo.family(
        INFO,
        &["Non-numeric data from /sys/class/nvme/<device>, value is always 1."],
        Kind::Gauge,
    );
    for (device, values) in st.devices.iter().zip(&st.values) {
        let value = |i: usize| &st.text[values[i].0..values[i].1];
        let labels = [
            ("device", device),
            (ATTRIBUTES[0].1, value(0)),
            (ATTRIBUTES[1].1, value(1)),
            (ATTRIBUTES[2].1, value(2)),
            (ATTRIBUTES[3].1, value(3)),
        ];
        expo.sample(INFO, &labels, 1u64);
    }
    expo.end_family(mark);
    Ok(())
}
