//! `vmstat`: the `/proc/vmstat` fields node_exporter selects by default.

use std::io;

use super::expo::{Expo, Kind, Value};
use super::files::{invalid, read_file, Files};
use super::pattern::Pattern;
use super::Paths;

/// node_exporter's default `--collector.vmstat.fields`: `^(oom_kill|pgpg|pswp|pg.*fault).*`.
pub(super) fn vmstat_field_selected(field: &str) -> bool {
    field.starts_with("oom_kill")
        || field.starts_with("pgpg")
        || field.starts_with("pswp")
        || field
            .strip_prefix("pg")
            .is_some_and(|rest| rest.contains("fault"))
}

/// `fields`: `--collector.vmstat.fields`; `None`: node_exporter's default.
pub(super) fn collect(
    paths: &Paths,
    s: &mut Files,
    fields: &mut Option<Pattern>,
    expo: &mut Expo<'_>,
) -> io::Result<()> {
    let text = read_file(&mut s.path, &paths.procfs, &["vmstat"], &mut s.data)?;
    for line in text.lines() {
        let Some((field, number)) = line.split_once(' ') else {
            continue;
        };
        let selected = match fields {
            Some(pattern) => pattern.is_match(field),
            None => vmstat_field_selected(field),
        };
        if !selected {
            continue;
        }
        let value = match number.trim().parse::<u64>() {
            Ok(v) => Value::Int(v),
            Err(_) => Value::Float(
                number
                    .trim()
                    .parse()
                    .map_err(|_| invalid("vmstat", "value not a number"))?,
            ),
        };
        let name = ["node_vmstat_", field];
        expo.single(
            &name,
            &["/proc/vmstat information field ", field, "."],
            Kind::Untyped,
            &[],
            value,
        );
    }
    Ok(())
}
