//! The checks of one view of the receiver (one tenant's, or everything):
//! a handful of fleet-wide queries, then every series is attributed to the
//! cluster or tenant whose external labels it carries, and to the agent
//! whose `instance` reported it.

use super::expect::{AgentExpect, UnitExpect};
use super::query::{QueryApi, QueryError, Series, Vector};
use super::report::Row;
use super::Thresholds;
use outpost_core::plan::Role;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The agent's clock offset against the receiver, in seconds (added to the
/// agent separately; until an agent exports it, the check says so).
pub const CLOCK_OFFSET_METRIC: &str = "outpost_receiver_clock_offset_seconds";
/// Per target the agent scrapes; tells a node-role agent from a cluster-role one.
pub const TARGET_SCRAPES_METRIC: &str = "outpost_target_scrapes_total";
pub const SUCCEEDED_METRIC: &str = "prometheus_remote_storage_succeeded_samples_total";
pub const FAILED_METRIC: &str = "prometheus_remote_storage_failed_samples_total";
pub const DROPPED_METRIC: &str = "prometheus_remote_storage_samples_dropped_total";

/// What the receiver holds for one view, fetched once.
struct Observed {
    up: Vector,
    up_time: Vector,
    succeeded: Vector,
    failed: Vector,
    dropped: Vector,
    clock_offset: Vector,
    scrapes: Vector,
}

impl Observed {
    fn fetch(
        api: &QueryApi,
        tenant: Option<&str>,
        selector: &str,
        window: &str,
    ) -> Result<Observed, QueryError> {
        let q = |promql: String| api.instant(tenant, &promql);
        Ok(Observed {
            up: q(format!("up{{{selector}}}"))?,
            up_time: q(format!("timestamp(up{{{selector}}})"))?,
            succeeded: q(format!("rate({SUCCEEDED_METRIC}{{{selector}}}[{window}])"))?,
            failed: q(format!("rate({FAILED_METRIC}{{{selector}}}[{window}])"))?,
            dropped: q(format!("rate({DROPPED_METRIC}{{{selector}}}[{window}])"))?,
            clock_offset: q(format!("{CLOCK_OFFSET_METRIC}{{{selector}}}"))?,
            scrapes: q(format!("{TARGET_SCRAPES_METRIC}{{{selector}}}"))?,
        })
    }
}

/// One target's `up` as seen: its instance, value and age.
struct Seen {
    instance: String,
    up: f64,
    age_s: Option<f64>,
    /// Labels beyond `job`, `instance` and the unit's external labels.
    extra: Vec<(String, String)>,
}

/// Checks `units` in the view of `tenant` and appends their rows.
/// `all` is every unit of the spec, to name series that sit in the wrong view.
pub(super) fn check_view(
    api: &QueryApi,
    tenant: Option<&str>,
    units: &[&UnitExpect],
    all: &[UnitExpect],
    names: &[String],
    t: &Thresholds,
    rows: &mut Vec<Row>,
) -> Result<(), QueryError> {
    let clusters: BTreeSet<&str> = units.iter().map(|u| u.cluster.as_str()).collect();
    let alternatives: Vec<String> = clusters.iter().map(|c| regex_quote(c)).collect();
    let selector = format!("cluster=~\"{}\"", alternatives.join("|"));
    let obs = Observed::fetch(api, tenant, &selector, &t.window)?;

    let unit_of: HashMap<Vec<String>, usize> =
        units.iter().enumerate().map(|(i, u)| (u.key(names), i)).collect();
    let key = |s: &Series| key_of(s, names);
    let ages: HashMap<BTreeMap<String, String>, f64> = obs
        .up_time
        .series
        .iter()
        .map(|s| (s.labels.clone(), obs.up_time.eval_time_s - s.value))
        .collect();

    // (unit, job) -> targets seen; stray label sets -> (count, jobs).
    let mut seen: HashMap<(usize, String), Vec<Seen>> = HashMap::new();
    let mut stray: BTreeMap<Vec<String>, (usize, BTreeSet<String>)> = BTreeMap::new();
    for s in &obs.up.series {
        let job = s.label("job").to_string();
        let Some(&u) = unit_of.get(&key(s)) else {
            let entry = stray.entry(key(s)).or_default();
            entry.0 += 1;
            entry.1.insert(job);
            continue;
        };
        let mut without_name = s.labels.clone();
        without_name.remove("__name__");
        let extra = s
            .labels
            .iter()
            .filter(|(k, _)| !["__name__", "job", "instance"].contains(&k.as_str()))
            .filter(|(k, _)| !units[u].labels.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        seen.entry((u, job)).or_default().push(Seen {
            instance: s.label("instance").to_string(),
            up: s.value,
            age_s: ages.get(&without_name).copied(),
            extra,
        });
    }

    // Which jobs each agent reports scraping: (unit, agent instance) -> jobs.
    let mut scraped: HashMap<(usize, String), BTreeSet<String>> = HashMap::new();
    for s in &obs.scrapes.series {
        if let Some(&u) = unit_of.get(&key(s)) {
            // The agent's own job/instance win; the target's move to exported_*.
            scraped
                .entry((u, s.label("instance").to_string()))
                .or_default()
                .insert(s.label("exported_job").to_string());
        }
    }
    let succeeded = per_agent(&obs.succeeded, &unit_of, names);
    let failed = per_agent(&obs.failed, &unit_of, names);
    let dropped = per_agent(&obs.dropped, &unit_of, names);
    let offsets = per_agent(&obs.clock_offset, &unit_of, names);
    let offset_exported = !obs.clock_offset.series.is_empty();

    for (u, unit) in units.iter().enumerate() {
        let self_job = unit.agents.first().map_or("outpost", |a| a.self_job.as_str());
        let agents = seen.remove(&(u, self_job.to_string())).unwrap_or_default();
        // Each agent instance goes to the first role whose jobs it scrapes.
        let mut by_role: Vec<Vec<&Seen>> = vec![Vec::new(); unit.agents.len()];
        let mut unknown: Vec<&Seen> = Vec::new();
        for a in &agents {
            let jobs = scraped.get(&(u, a.instance.clone()));
            let role = unit
                .agents
                .iter()
                .position(|e| jobs.is_some_and(|jobs| e.jobs.iter().any(|j| jobs.contains(&j.name))));
            match role {
                Some(r) => by_role[r].push(a),
                None => unknown.push(a),
            }
        }
        for (expect, instances) in unit.agents.iter().zip(&by_role) {
            let mut row = Row {
                cluster: unit.cluster.clone(),
                tenant: unit.tenant.clone(),
                role: Some(expect.role),
                job: None,
                seen: instances.len(),
                problems: Vec::new(),
                notes: Vec::new(),
            };
            agent_checks(
                &mut row,
                expect,
                instances,
                |i| {
                    let k = (u, i.to_string());
                    AgentRates {
                        succeeded: succeeded.get(&k).map(|v| sum(v)),
                        failed: failed.get(&k).map(|v| sum(v)).unwrap_or(0.0),
                        dropped: dropped
                            .get(&k)
                            .map(|v| {
                                v.iter()
                                    .filter(|s| s.value > 0.0)
                                    .map(|s| (s.label("reason").to_string(), s.value))
                                    .collect()
                            })
                            .unwrap_or_default(),
                        clock_offset_s: offsets
                            .get(&k)
                            .map(|v| v.iter().map(|s| s.value.abs()).fold(0.0, f64::max)),
                    }
                },
                offset_exported,
                t,
            );
            rows.push(row);
            for job in &expect.jobs {
                let targets = seen.remove(&(u, job.name.clone())).unwrap_or_default();
                let max_age = t.max_age_s.unwrap_or(job.max_age_s);
                rows.push(job_row(unit, expect.role, &job.name, &targets, max_age));
            }
        }
        if !unknown.is_empty() {
            let list: Vec<&str> = unknown.iter().map(|a| a.instance.as_str()).collect();
            rows.push(Row {
                cluster: unit.cluster.clone(),
                tenant: unit.tenant.clone(),
                role: None,
                job: Some(self_job.to_string()),
                seen: unknown.len(),
                problems: vec![format!(
                    "cannot tell the role of {}: it reports scraping none of the spec's jobs ({TARGET_SCRAPES_METRIC})",
                    list.join(", ")
                )],
                notes: Vec::new(),
            });
        }
        // Jobs the spec does not give this cluster or tenant.
        let mut others: Vec<(&String, usize)> = seen
            .iter()
            .filter(|((su, _), _)| *su == u)
            .map(|((_, job), v)| (job, v.len()))
            .collect();
        others.sort();
        for (job, n) in others {
            rows.push(Row {
                cluster: unit.cluster.clone(),
                tenant: unit.tenant.clone(),
                role: None,
                job: Some(job.clone()),
                seen: n,
                problems: vec![format!(
                    "{n} target(s) of a job the spec does not give {}: another writer uses these external labels",
                    unit.name()
                )],
                notes: Vec::new(),
            });
        }
    }

    for (k, (count, jobs)) in stray {
        let labels: BTreeMap<&str, &str> = names
            .iter()
            .map(String::as_str)
            .zip(k.iter().map(String::as_str))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        let jobs: Vec<&str> = jobs.iter().map(String::as_str).collect();
        let why = match all.iter().find(|u| u.key(names) == k) {
            Some(other) => match tenant {
                Some(view) => format!(
                    "series of {} are in tenant `{view}`'s view: its agents send another tenant header than the receiver reads",
                    other.name()
                ),
                None => format!(
                    "series of {} land where agents without a tenant write: its agents' tenant header is not the one the receiver reads",
                    other.name()
                ),
            },
            None => unexplained(&labels, all),
        };
        rows.push(Row {
            cluster: labels.get("cluster").unwrap_or(&"").to_string(),
            tenant: labels.get("tenant").map(|t| t.to_string()),
            role: None,
            job: None,
            seen: count,
            problems: vec![format!("{count} up series (jobs {}): {why}", jobs.join(", "))],
            notes: Vec::new(),
        });
    }
    Ok(())
}

/// Per agent instance: what it delivered, failed and dropped per second.
struct AgentRates {
    /// `None`: no series at all.
    succeeded: Option<f64>,
    failed: f64,
    /// Reasons with a rate above 0.
    dropped: Vec<(String, f64)>,
    clock_offset_s: Option<f64>,
}

fn agent_checks(
    row: &mut Row,
    expect: &AgentExpect,
    instances: &[&Seen],
    rates: impl Fn(&str) -> AgentRates,
    offset_exported: bool,
    t: &Thresholds,
) {
    let job = &expect.self_job;
    match (instances.len(), expect.role) {
        (0, _) => row.problems.push(format!(
            "no agent reports: no up{{job=\"{job}\"}} series with these external labels"
        )),
        (n, Role::Cluster) if n > 1 => row
            .problems
            .push(format!("{n} agents report as the cluster role, which runs once")),
        _ => {}
    }
    let max_age = t.max_age_s.unwrap_or(expect.max_age_s);
    let mut delivered = 0.0;
    let mut offset_missing = 0;
    for a in instances {
        let at = &a.instance;
        if a.up != 1.0 {
            row.problems.push(format!("up={} at {at}", a.up));
        }
        stale_check(row, at, a.age_s, max_age);
        if !a.extra.is_empty() {
            let extra: Vec<String> = a.extra.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            row.problems.push(format!(
                "{at}: series carry labels the spec does not set: {}",
                extra.join(", ")
            ));
        }
        let r = rates(at);
        match r.succeeded {
            None => row.problems.push(format!("{at}: no {SUCCEEDED_METRIC} series")),
            Some(v) if v.is_nan() || v <= 0.0 => row
                .problems
                .push(format!("{at} delivers nothing (succeeded rate 0)")),
            Some(v) => delivered += v,
        }
        if r.failed > 0.0 {
            row.problems
                .push(format!("{at} fails {} samples/s", rate_text(r.failed)));
        }
        for (reason, v) in &r.dropped {
            row.problems.push(format!(
                "{at} drops {} samples/s (reason {reason})",
                rate_text(*v)
            ));
        }
        match r.clock_offset_s {
            Some(off) if off > t.max_clock_offset_s => row.problems.push(format!(
                "{at}: clock {off:.3}s off the receiver's (max {}s)",
                t.max_clock_offset_s
            )),
            Some(_) => {}
            None => offset_missing += 1,
        }
    }
    if !instances.is_empty() {
        row.notes.push(format!(
            "{} agent(s), {} samples/s delivered",
            instances.len(),
            rate_text(delivered)
        ));
    }
    if offset_missing > 0 {
        row.notes.push(if offset_exported {
            format!("clock offset not exported by {offset_missing} agent(s)")
        } else {
            format!("clock offset not exported ({CLOCK_OFFSET_METRIC})")
        });
    }
}

fn job_row(unit: &UnitExpect, role: Role, job: &str, targets: &[Seen], max_age: f64) -> Row {
    let mut row = Row {
        cluster: unit.cluster.clone(),
        tenant: unit.tenant.clone(),
        role: Some(role),
        job: Some(job.to_string()),
        seen: targets.len(),
        problems: Vec::new(),
        notes: Vec::new(),
    };
    if targets.is_empty() {
        row.problems.push(format!(
            "no up{{job=\"{job}\"}} series with these external labels"
        ));
        return row;
    }
    let down: Vec<&str> = targets
        .iter()
        .filter(|s| s.up != 1.0)
        .map(|s| s.instance.as_str())
        .collect();
    if !down.is_empty() {
        row.problems.push(format!(
            "{} of {} down: {}",
            down.len(),
            targets.len(),
            down.join(", ")
        ));
    }
    for s in targets {
        stale_check(&mut row, &s.instance, s.age_s, max_age);
    }
    row.notes
        .push(format!("{}/{} up", targets.len() - down.len(), targets.len()));
    row
}

fn stale_check(row: &mut Row, at: &str, age_s: Option<f64>, max_age_s: f64) {
    match age_s {
        Some(age) if age > max_age_s => row.problems.push(format!(
            "{at} stale: newest sample {age:.0}s old (max {max_age_s:.0}s)"
        )),
        Some(_) => {}
        None => row.problems.push(format!("{at}: no sample time")),
    }
}

/// Says how a label set differs from the closest one the spec has.
fn unexplained(labels: &BTreeMap<&str, &str>, all: &[UnitExpect]) -> String {
    let cluster = labels.get("cluster").copied().unwrap_or("");
    let tenant = labels.get("tenant").copied();
    let closest = all
        .iter()
        .filter(|u| u.cluster == cluster)
        .max_by_key(|u| u.tenant.as_deref() == tenant);
    let Some(u) = closest else {
        return "no cluster of the spec has these labels".into();
    };
    let mut diffs = Vec::new();
    for (k, v) in labels {
        match u.labels.get(*k) {
            Some(want) if want == v => {}
            Some(want) => diffs.push(format!("{k}=\"{v}\" where the spec says \"{want}\"")),
            None => diffs.push(format!("{k}=\"{v}\", which {} does not carry", u.name())),
        }
    }
    for (k, want) in &u.labels {
        if !labels.contains_key(k.as_str()) {
            diffs.push(format!("no {k} label where the spec says \"{want}\""));
        }
    }
    diffs.join(", ")
}

/// A series' values for the external label names, in order.
fn key_of(s: &Series, names: &[String]) -> Vec<String> {
    names.iter().map(|n| s.label(n).to_string()).collect()
}

/// The series of `v` by the cluster or tenant and the agent instance they came from.
fn per_agent<'a>(
    v: &'a Vector,
    unit_of: &HashMap<Vec<String>, usize>,
    names: &[String],
) -> HashMap<(usize, String), Vec<&'a Series>> {
    let mut out: HashMap<(usize, String), Vec<&Series>> = HashMap::new();
    for s in &v.series {
        if let Some(&u) = unit_of.get(&key_of(s, names)) {
            out.entry((u, s.label("instance").to_string()))
                .or_default()
                .push(s);
        }
    }
    out
}

fn sum(series: &[&Series]) -> f64 {
    series.iter().map(|s| s.value).sum()
}

fn rate_text(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Quotes regex metacharacters for a PromQL `=~` matcher.
fn regex_quote(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push_str("\\\\");
        } else if c == '"' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
