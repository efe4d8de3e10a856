//! `powersupplyclass`: batteries, mains adapters and UPSes from `/sys/class/power_supply`:
//! charge, capacity, voltage, current, power, temperature and their descriptive attributes.

use std::io;

use super::expo::{Expo, Kind};
use super::files::{parse_int, read_optional, set_path, Files, Names};
use super::Paths;

/// (sysfs attribute, metric suffix, divisor) in node_exporter's order: plain numbers, then
/// micro-units (µA, µV, µWh, µAh, µW), then tenths of a degree Celsius.
const NUMBERS: [(&str, &str, f64); 49] = [
    ("authentic", "authentic", 1.0),
    ("calibrate", "calibrate", 1.0),
    ("capacity", "capacity", 1.0),
    ("capacity_alert_max", "capacity_alert_max", 1.0),
    ("capacity_alert_min", "capacity_alert_min", 1.0),
    ("cycle_count", "cyclecount", 1.0),
    ("online", "online", 1.0),
    ("present", "present", 1.0),
    ("time_to_empty_now", "time_to_empty_seconds", 1.0),
    ("time_to_full_now", "time_to_full_seconds", 1.0),
    ("current_boot", "current_boot", 1e6),
    ("current_max", "current_max", 1e6),
    ("current_now", "current_ampere", 1e6),
    ("energy_empty", "energy_empty", 1e6),
    ("energy_empty_design", "energy_empty_design", 1e6),
    ("energy_full", "energy_full", 1e6),
    ("energy_full_design", "energy_full_design", 1e6),
    ("energy_now", "energy_watthour", 1e6),
    ("voltage_boot", "voltage_boot", 1e6),
    ("voltage_max", "voltage_max", 1e6),
    ("voltage_max_design", "voltage_max_design", 1e6),
    ("voltage_min", "voltage_min", 1e6),
    ("voltage_min_design", "voltage_min_design", 1e6),
    ("voltage_now", "voltage_volt", 1e6),
    ("voltage_ocv", "voltage_ocv", 1e6),
    ("charge_control_limit", "charge_control_limit", 1e6),
    ("charge_control_limit_max", "charge_control_limit_max", 1e6),
    ("charge_counter", "charge_counter", 1e6),
    ("charge_empty", "charge_empty", 1e6),
    ("charge_empty_design", "charge_empty_design", 1e6),
    ("charge_full", "charge_full", 1e6),
    ("charge_full_design", "charge_full_design", 1e6),
    ("charge_now", "charge_ampere", 1e6),
    ("charge_term_current", "charge_term_current", 1e6),
    ("constant_charge_current", "constant_charge_current", 1e6),
    ("constant_charge_current_max", "constant_charge_current_max", 1e6),
    ("constant_charge_voltage", "constant_charge_voltage", 1e6),
    ("constant_charge_voltage_max", "constant_charge_voltage_max", 1e6),
    ("precharge_current", "precharge_current", 1e6),
    ("input_current_limit", "input_current_limit", 1e6),
    ("power_now", "power_watt", 1e6),
    ("temp", "temp_celsius", 10.0),
    ("temp_alert_max", "temp_alert_max_celsius", 10.0),
    ("temp_alert_min", "temp_alert_min_celsius", 10.0),
    ("temp_ambient", "temp_ambient_celsius", 10.0),
    ("temp_ambient_max", "temp_ambient_max_celsius", 10.0),
    ("temp_ambient_min", "temp_ambient_min_celsius", 10.0),
    ("temp_max", "temp_max_celsius", 10.0),
    ("temp_min", "temp_min_celsius", 10.0),
];

/// Numeric attributes node_exporter parses but does not export: a bad value fails it all the same.
const CHECKED: [&str; 7] = [
    "charge_avg",
    "current_avg",
    "energy_avg",
    "power_avg",
    "time_to_empty_avg",
    "time_to_full_avg",
    "voltage_avg",
];

/// The text attributes, as node_power_supply_info's labels (sorted; `power_supply` is the name).
const TEXTS: [&str; 11] = [
    "capacity_level",
    "charge_type",
    "health",
    "manufacturer",
    "model_name",
    "scope",
    "serial_number",
    "status",
    "technology",
    "type",
    "usb_type",
];

/// What the collector keeps between scrapes. node_exporter's `--collector.powersupply.ignored-supplies`
/// (default `^$`, none) has no plan option yet: every supply is reported.
#[derive(Default)]
pub(super) struct State {
    names: Names,
    text: String,
    supplies: Vec<Supply>,
}

struct Supply {
    numbers: [Option<i64>; 49],
    texts: [(usize, usize); 11],
}

pub(super) fn collect(paths: &Paths, s: &mut Files, st: &mut State, expo: &mut Expo<'_>) -> io::Result<()> {
    set_path(&mut s.path, &paths.sysfs, &["class/power_supply"]);
    st.names.read(&s.path, |_, _| true)?;
    st.text.clear();
    st.supplies.clear();
    for supply in st.names.iter() {
        fn read<'f>(
            paths: &Paths,
            supply: &str,
            attribute: &str,
            s: &'f mut Files,
        ) -> io::Result<Option<&'f str>> {
            let rel = ["class/power_supply", supply, attribute];
            match read_optional(&mut s.path, &paths.sysfs, &rel, &mut s.aux) {
                Ok(text) => Ok(Some(text.trim())),
                Err(e) if skippable(&e) => Ok(None),
                Err(e) => Err(e),
            }
        }
        let mut entry = Supply {
            numbers: [None; 49],
            texts: [(0, 0); 11],
        };
        for (slot, (attribute, _, _)) in entry.numbers.iter_mut().zip(NUMBERS) {
            if let Some(text) = read(paths, supply, attribute, s)? {
                *slot = Some(parse_int(text).ok_or_else(|| bad_number(attribute))?);
            }
        }
        for attribute in CHECKED {
            if let Some(text) = read(paths, supply, attribute, s)? {
                parse_int(text).ok_or_else(|| bad_number(attribute))?;
            }
        }
        for (slot, attribute) in entry.texts.iter_mut().zip(TEXTS) {
            let text = read(paths, supply, attribute, s)?.unwrap_or("");
            let start = st.text.len();
            st.text.push_str(text);
            *slot = (start, st.text.len());
        }
        st.supplies.push(entry);
    }
    for (index, (_, suffix, divisor)) in NUMBERS.into_iter().enumerate() {
        let name = ["node_power_supply_", suffix];
        let mark = expo.family(
            &name,
            &[suffix, " value of /sys/class/power_supply/<power_supply>."],
            Kind::Gauge,
        );
        for (supply, entry) in st.names.iter().zip(&st.supplies) {
            if let Some(value) = entry.numbers[index] {
                expo.sample(&name, &[("power_supply", supply)], value as f64 / divisor);
            }
        }
        expo.end_family(mark);
    }
    const INFO: &[&str] = &["node_power_supply_info"];
    let mark = expo.family(
        INFO,
        &["info of /sys/class/power_supply/<power_supply>."],
        Kind::Gauge,
    );
    for (supply, entry) in st.names.iter().zip(&st.supplies) {
        // Only the attributes the supply has, as node_exporter labels them.
        let mut labels = [("", ""); 12];
        let mut count = 0;
        for (attribute, (start, end)) in TEXTS.iter().zip(entry.texts) {
            if attribute == &"scope" {
                labels[count] = ("power_supply", supply);
                count += 1;
            }
            if end > start {
                labels[count] = (attribute, &st.text[start..end]);
                count += 1;
            }
        }
        expo.sample(INFO, &labels[..count], 1u64);
    }
    expo.end_family(mark);
    Ok(())
}

/// Attributes a driver does not have, or cannot report right now, are left out.
fn skippable(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
        || e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error())
        || e.raw_os_error() == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error())
}

fn bad_number(attribute: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("class/power_supply: {attribute} not a number"),
    )
}
