//! `edac`: corrected and uncorrected memory errors per memory controller and chip-select row,
//! from `/sys/devices/system/edac/mc` (Documentation/driver-api/edac.rst).

use std::io;

use super::expo::{Expo, Kind};
use super::files::{invalid, numbered, push_span, read_file, set_path, Files, Names, Span};
use super::Paths;

/// What the collector keeps between scrapes: the controllers, their rows and their counts.
#[derive(Default)]
pub(super) struct State {
    controllers: Names,
    rows: Names,
    text: String,
    /// (controller, row, correctable, uncorrectable); `row` "unknown" holds the errors the
    /// controller could not attribute to a row.
    counts: Vec<(Span, Span, u64, u64)>,
    /// (controller, correctable, uncorrectable) totals.
    totals: Vec<(Span, u64, u64)>,
}

pub(super) fn collect(paths: &Paths, s: &mut Files, st: &mut State, expo: &mut Expo<'_>) -> io::Result<()> {
    set_path(&mut s.path, &paths.sysfs, &["devices/system/edac/mc"]);
    // No EDAC driver: nothing to report, and nothing wrong.
    if st
        .controllers
        .read(&s.path, |name, _| numbered(name, "mc"))
        .is_err()
    {
        return Ok(());
    }
    st.text.clear();
    st.counts.clear();
    st.totals.clear();
    let number = |s: &mut Files, rel: &[&str]| -> io::Result<u64> {
        read_file(&mut s.path, &paths.sysfs, rel, &mut s.aux)?
            .trim()
            .parse()
            .map_err(|_| invalid("devices/system/edac", "count not a number"))
    };
    for mc in st.controllers.iter() {
        let base = "devices/system/edac/mc";
        let controller = push_span(&mut st.text, &mc["mc".len()..]);
        let ce = number(s, &[base, mc, "ce_count"])?;
        let ce_noinfo = number(s, &[base, mc, "ce_noinfo_count"])?;
        let ue = number(s, &[base, mc, "ue_count"])?;
        let ue_noinfo = number(s, &[base, mc, "ue_noinfo_count"])?;
        st.totals.push((controller, ce, ue));
        let unknown = push_span(&mut st.text, "unknown");
        st.counts.push((controller, unknown, ce_noinfo, ue_noinfo));
        set_path(&mut s.path, &paths.sysfs, &[base, mc]);
        st.rows.read(&s.path, |name, _| numbered(name, "csrow"))?;
        for row in st.rows.iter() {
            let ce = number(s, &[base, mc, row, "ce_count"])?;
            let ue = number(s, &[base, mc, row, "ue_count"])?;
            let row = push_span(&mut st.text, &row["csrow".len()..]);
            st.counts.push((controller, row, ce, ue));
        }
    }
    let text = &st.text;
    let at = |(start, end): Span| &text[start..end];
    for (index, (name, help)) in [
        (
            "node_edac_correctable_errors_total",
            "Total correctable memory errors.",
        ),
        (
            "node_edac_uncorrectable_errors_total",
            "Total uncorrectable memory errors.",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let mark = expo.family(&[name], &[help], Kind::Counter);
        for &(controller, ce, ue) in &st.totals {
            expo.sample(
                &[name],
                &[("controller", at(controller))],
                if index == 0 { ce } else { ue },
            );
        }
        expo.end_family(mark);
    }
    for (index, (name, help)) in [
        (
            "node_edac_csrow_correctable_errors_total",
            "Total correctable memory errors for this csrow.",
        ),
        (
            "node_edac_csrow_uncorrectable_errors_total",
            "Total uncorrectable memory errors for this csrow.",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let mark = expo.family(&[name], &[help], Kind::Counter);
        for &(controller, row, ce, ue) in &st.counts {
            let labels = [("controller", at(controller)), ("csrow", at(row))];
            expo.sample(&[name], &labels, if index == 0 { ce } else { ue });
        }
        expo.end_family(mark);
    }
    Ok(())
}
