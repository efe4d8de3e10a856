//! `bonding`: configured and active (MII status up) slaves of each bonding interface, from
//! `/sys/class/net/bonding_masters` and each master's `bonding/slaves`.

use std::io;

use super::expo::{Expo, Kind};
use super::files::{read_file, read_optional, Files};
use super::Paths;

/// What the collector keeps between scrapes: (master name, slaves, active) of the last scrape.
#[derive(Default)]
pub(super) struct State {
    text: String,
    masters: Vec<((usize, usize), u64, u64)>,
}

pub(super) fn collect(paths: &Paths, s: &mut Files, st: &mut State, expo: &mut Expo<'_>) -> io::Result<()> {
    let masters = read_file(
        &mut s.path,
        &paths.sysfs,
        &["class/net/bonding_masters"],
        &mut s.data,
    )?;
    st.text.clear();
    st.masters.clear();
    for master in masters.split_ascii_whitespace() {
        let slaves = read_file(
            &mut s.path,
            &paths.sysfs,
            &["class/net", master, "bonding/slaves"],
            &mut s.aux,
        )?;
        let (mut configured, mut active) = (0, 0);
        // The slave names are copied out: `aux` is needed again for each slave's status.
        let start = st.text.len();
        st.text.push_str(slaves);
        let end = st.text.len();
        for slave in st.text[start..end].split_ascii_whitespace() {
            s.text.clear();
            s.text.push_str("lower_");
            s.text.push_str(slave);
            let rel = ["class/net", master, s.text.as_str(), "bonding_slave/mii_status"];
            let status = match read_optional(&mut s.path, &paths.sysfs, &rel, &mut s.aux) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    s.text.replace_range(..5, "slave");
                    let rel = ["class/net", master, s.text.as_str(), "bonding_slave/mii_status"];
                    read_optional(&mut s.path, &paths.sysfs, &rel, &mut s.aux)
                }
                other => other,
            }?;
            configured += 1;
            if status.trim() == "up" {
                active += 1;
            }
        }
        st.text.truncate(start);
        st.text.push_str(master);
        st.masters.push(((start, st.text.len()), configured, active));
    }
    for (index, (name, help)) in [
        (
            "node_bonding_slaves",
            "Number of configured slaves per bonding interface.",
        ),
        (
            "node_bonding_active",
            "Number of active slaves per bonding interface.",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let mark = expo.family(&[name], &[help], Kind::Gauge);
        for &((start, end), configured, active) in &st.masters {
            let value = if index == 0 { configured } else { active };
            expo.sample(&[name], &[("master", &st.text[start..end])], value);
        }
        expo.end_family(mark);
    }
    Ok(())
}
