//! `rapl`: energy counters of Intel/AMD RAPL power zones (package, core, uncore, DRAM) from
//! `/sys/class/powercap`, in joules.

use std::fmt::Write as _;
use std::io;

use super::expo::{Expo, Kind, SmallNumber};
use super::files::{invalid, read_file, read_optional, set_path, Files, Names, Span};
use super::Paths;

/// What the collector keeps between scrapes.
#[derive(Default)]
pub(super) struct State {
    names: Names,
    text: String,
    /// Sorted by metric name before writing.
    zones: Vec<Zone>,
}

struct Zone {
    metric: Span,
    /// The zone's name without its index (`package` of `package-0`).
    zone: Span,
    index: u64,
    path: Span,
    joules: f64,
}

pub(super) fn collect(paths: &Paths, s: &mut Files, st: &mut State, expo: &mut Expo<'_>) -> io::Result<()> {
    set_path(&mut s.path, &paths.sysfs, &["class/powercap"]);
    st.names.read(&s.path, |_, _| true)?;
    st.text.clear();
    st.zones.clear();
    for dir in st.names.iter() {
        // The control type's own directory (`intel-rapl`) has no name: not a zone.
        let Ok(name) = read_optional(
            &mut s.path,
            &paths.sysfs,
            &["class/powercap", dir, "name"],
            &mut s.aux,
        ) else {
            continue;
        };
        let name = name.trim();
        // "package-0": zone "package", index 0; otherwise the index counts the name's uses.
        let (base, index) = match name.split_once('-') {
            Some((base, index)) if !index.contains('-') => match index.parse::<u64>() {
                Ok(index) => (base, Some(index)),
                Err(_) => (name, None),
            },
            _ => (name, None),
        };
        let zone_start = st.text.len();
        st.text.push_str(base);
        let zone = (zone_start, st.text.len());
        let start = st.text.len();
        st.text.push_str("node_rapl_");
        for c in base.chars() {
            st.text
                .push(if c.is_ascii_alphanumeric() || c == ':' || c == '_' {
                    c
                } else {
                    '_'
                });
        }
        st.text.push_str("_joules_total");
        let metric = (start, st.text.len());
        let text = &st.text;
        let index = index.unwrap_or_else(|| {
            let used = st
                .zones
                .iter()
                .filter(|z| text[z.zone.0..z.zone.1] == text[zone.0..zone.1]);
            used.map(|z| z.index + 1).max().unwrap_or(0)
        });
        read_file(
            &mut s.path,
            &paths.sysfs,
            &["class/powercap", dir, "max_energy_range_uj"],
            &mut s.aux,
        )?
        .trim()
        .parse::<u64>()
        .map_err(|_| invalid("class/powercap", "max_energy_range_uj not a number"))?;
        let micro: u64 = read_file(
            &mut s.path,
            &paths.sysfs,
            &["class/powercap", dir, "energy_uj"],
            &mut s.aux,
        )?
        .trim()
        .parse()
        .map_err(|_| invalid("class/powercap", "energy_uj not a number"))?;
        let path_start = st.text.len();
        set_path(&mut s.path, &paths.sysfs, &["class/powercap", dir]);
        let _ = write!(st.text, "{}", s.path.display());
        st.zones.push(Zone {
            metric,
            zone,
            index,
            path: (path_start, st.text.len()),
            joules: micro as f64 / 1000000.0,
        });
    }
    let text = &st.text;
    let at = |(start, end): Span| &text[start..end];
    st.zones
        .sort_unstable_by(|a, b| (at(a.metric), a.index).cmp(&(at(b.metric), b.index)));
    let mut current = None;
    for zone in &st.zones {
        let name = at(zone.metric);
        if current != Some(name) {
            expo.family(
                &[name],
                &["Current RAPL ", at(zone.zone), " value in joules"],
                Kind::Counter,
            );
            current = Some(name);
        }
        let index = SmallNumber::new(zone.index);
        expo.sample(
            &[name],
            &[("index", index.as_str()), ("path", at(zone.path))],
            zone.joules,
        );
    }
    Ok(())
}
