//! One `scrape_configs` entry to a spec job. Targets come from
//! `static_configs` and from `file_sd_configs` (read once, now);
//! `relabel_configs` are applied to each of them here, with the agent's own
//! relabeling, the way Prometheus applies them when it discovers a target.
//! What comes out must share one scheme, path and label set, because a
//! spec job has one of each.

use super::auth::{inline_secret, tls};
use super::keys::Keys;
use super::read::{label_map, scalar, Findings, MapView};
use super::relabel::rules;
use crate::compile::apply_rules;
use crate::diag::Diagnostic;
use crate::spec::{JobSpec, LimitsSpec, RelabelSpec, SchemeSpec, Scope};
use crate::tree::DocPath;
use crate::units::parse_duration;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// What a job inherits from `global`, as Prometheus fills it in.
pub struct Inherited {
    pub interval: String,
    pub timeout: String,
}

/// One target before relabeling: its address, its group's labels, and
/// where it was written.
struct Candidate {
    labels: BTreeMap<String, String>,
    path: DocPath,
}

/// A target after relabeling.
struct Resolved {
    address: String,
    instance: String,
    scheme: String,
    metrics_path: String,
    job: String,
    labels: BTreeMap<String, String>,
    path: DocPath,
}

#[derive(Deserialize)]
struct FileGroup {
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

pub fn scrape_job(mut m: MapView, base_dir: &Path, g: &Inherited, f: &mut Findings) -> Option<JobSpec> {
    let Some(name) = m.text("job_name", f) else {
        f.push(Diagnostic::error("missing-key", m.path.clone(), "a scrape config needs `job_name`").on_key());
        m.rest(f, |_| "its scrape config has no job_name".into());
        return None;
    };
    let interval = m.text("scrape_interval", f);
    let mut timeout = m.text("scrape_timeout", f);
    // Prometheus shortens the inherited timeout to a shorter job interval.
    if let (Some(i), None) = (&interval, &timeout) {
        if let (Ok(i_ms), Ok(t_ms)) = (parse_duration(i), parse_duration(&g.timeout)) {
            if t_ms > i_ms {
                timeout = Some(i.clone());
            }
        }
    }
    let scheme = m.text("scheme", f).unwrap_or_else(|| "http".into());
    let metrics_path = m.text("metrics_path", f).unwrap_or_else(|| "/metrics".into());
    let honor_labels = m.bool("honor_labels", f).unwrap_or(false);
    if m.has("honor_timestamps") && m.bool("honor_timestamps", f) == Some(false) {
        f.not_imported(
            m.path.at("honor_timestamps"),
            "outpost keeps the timestamps targets expose, as Prometheus does by default",
        );
    }
    let limits = limits(&mut m, f);
    let tls = m.map("tls_config", f).map(|t| tls(t, Keys::Snake, &name, f));
    let mut bearer_token_file = m.file("bearer_token_file", f);
    if let Some((_, path)) = m.get("bearer_token") {
        bearer_token_file = Some(inline_secret(f, path, &format!("{name}-bearer-token")));
    }
    if let Some(mut a) = m.map("authorization", f) {
        let kind = a.text("type", f).unwrap_or_else(|| "Bearer".into());
        if !kind.eq_ignore_ascii_case("bearer") {
            f.not_imported(
                a.path.at("type"),
                format!("authorization type `{kind}`: outpost sends bearer tokens only"),
            );
        }
        if let Some(file) = a.file("credentials_file", f) {
            bearer_token_file = Some(file);
        }
        if let Some((_, path)) = a.get("credentials") {
            bearer_token_file = Some(inline_secret(f, path, &format!("{name}-bearer-token")));
        }
        a.rest(f, |_| "not a key of `authorization`".into());
    }
    let metric_relabel: Vec<RelabelSpec> = rules(m.list("metric_relabel_configs", f), Keys::Snake, f)
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    let target_rules = rules(m.list("relabel_configs", f), Keys::Snake, f);

    // Prometheus's labels of a new target: the job's, then the group's over them.
    let defaults: BTreeMap<String, String> = [
        ("job", name.clone()),
        ("__scheme__", scheme.clone()),
        ("__metrics_path__", metrics_path.clone()),
        (
            "__scrape_interval__",
            interval.clone().unwrap_or_else(|| g.interval.clone()),
        ),
        (
            "__scrape_timeout__",
            timeout.clone().unwrap_or_else(|| g.timeout.clone()),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut candidates = Vec::new();
    for (node, path) in m.list("static_configs", f) {
        let Some(mut group) = MapView::of(node, path, f) else {
            continue;
        };
        let labels = label_map(&group.string_map("labels", f));
        for (t, tpath) in group.list("targets", f) {
            match scalar(t) {
                Some(addr) => candidates.push(candidate(&defaults, &labels, addr, &[], tpath)),
                None => f.error("wrong-type", tpath, "a target is a single `host:port`"),
            }
        }
        group.rest(f, |_| "a static config has `targets` and `labels` only".into());
    }
    for (node, path) in m.list("file_sd_configs", f) {
        let Some(mut sd) = MapView::of(node, path, f) else {
            continue;
        };
        let mut found = 0;
        for (pattern, ppath) in sd.list("files", f) {
            let Some(pattern) = scalar(pattern) else {
                f.error("wrong-type", ppath, "expected a file name or pattern");
                continue;
            };
            for file in matching_files(base_dir, pattern) {
                match read_groups(&file) {
                    Ok(groups) => {
                        let meta = [("__meta_filepath".to_string(), file.display().to_string())];
                        for group in groups {
                            for t in &group.targets {
                                found += 1;
                                candidates.push(candidate(&defaults, &group.labels, t, &meta, ppath.clone()));
                            }
                        }
                    }
                    Err(e) => f.error("file-sd", ppath.clone(), format!("{}: {e}", file.display())),
                }
            }
        }
        // The refresh is what import cannot keep: the targets are read once.
        sd.get("refresh_interval");
        f.push(
            Diagnostic::warning(
                "file-sd-read-once",
                sd.path.clone(),
                format!("file_sd_configs read once, now: {found} target(s) become static targets"),
            )
            .on_key()
            .label("read at import")
            .help("outpost has no service discovery yet; import again after the files change"),
        );
        sd.rest(f, |_| {
            "a file_sd config has `files` and `refresh_interval` only".into()
        });
    }

    let mut resolved = Vec::new();
    let rule_list: Vec<RelabelSpec> = target_rules.iter().map(|(r, _)| r.clone()).collect();
    let mut dropped = 0;
    for c in candidates {
        let pairs: Vec<(String, String)> = c.labels.into_iter().collect();
        let out = if rule_list.is_empty() {
            Some(pairs)
        } else {
            match apply_rules(&rule_list, &pairs) {
                Ok(out) => out,
                Err(errors) => {
                    // The rule list's own errors, placed at the rules.
                    for mut e in errors {
                        let mut at = m.path.at("relabel_configs");
                        at.0.append(&mut e.path.0);
                        e.path = at;
                        f.push(e);
                    }
                    return None;
                }
            }
        };
        match out {
            Some(labels) => resolved.push(resolve(labels.into_iter().collect(), c.path, f)),
            None => dropped += 1,
        }
    }
    if dropped > 0 {
        f.push(
            Diagnostic::warning(
                "targets-relabeled-away",
                m.path.at("relabel_configs"),
                format!("relabel_configs drop {dropped} target(s) of job `{name}` at import"),
            )
            .on_key()
            .label("applied at import"),
        );
    }
    let resolved: Vec<Resolved> = resolved.into_iter().flatten().collect();
    let job_path = m.path.clone();
    m.rest(f, |key| match key {
        k if k.ends_with("_sd_configs") => {
            "outpost has no service discovery yet: targets are static (static_configs, and file_sd_configs read once at import)".into()
        }
        "params" => "outpost sends no query parameters with a scrape".into(),
        "basic_auth" => "scrape jobs authenticate with a bearer token or a client certificate".into(),
        "target_limit" => "the targets are fixed in the spec".into(),
        _ => "outpost's scrape jobs have no such setting".into(),
    });

    let Some(first) = resolved.first() else {
        f.push(
            Diagnostic::warning(
                "no-targets",
                job_path.at("job_name"),
                format!("job `{name}` has no targets: not imported"),
            )
            .label("no static targets"),
        );
        return None;
    };
    let same = |r: &Resolved| {
        r.job == first.job
            && r.scheme == first.scheme
            && r.metrics_path == first.metrics_path
            && r.labels == first.labels
    };
    let (kept, others): (Vec<&Resolved>, Vec<&Resolved>) = resolved.iter().partition(|r| same(r));
    for r in others {
        f.push(
            Diagnostic::warning(
                "target-not-imported",
                r.path.clone(),
                format!(
                    "target {} is not imported: after relabeling its job, scheme, path or labels differ from {}'s, and a spec job has one of each",
                    r.address, first.address
                ),
            )
            .label("other labels")
            .help("give it its own job in the spec"),
        );
    }
    for r in &kept {
        if r.instance != r.address {
            f.push(
                Diagnostic::warning(
                    "instance-not-kept",
                    r.path.clone(),
                    format!("instance `{}` of target {} is not kept: outpost's instance label is the target address", r.instance, r.address),
                )
                .label("instance rewritten"),
            );
        }
    }
    let scheme = match first.scheme.as_str() {
        "http" => None,
        "https" => Some(SchemeSpec::Https),
        other => {
            f.error(
                "bad-scheme",
                job_path.at("scheme"),
                format!("scheme `{other}`: outpost scrapes http and https"),
            );
            None
        }
    };
    Some(JobSpec {
        name: first.job.clone(),
        scope: Scope::Cluster,
        targets: kept.iter().map(|r| r.address.clone()).collect(),
        discovery: None,
        relabel_preset: None,
        relabel: Vec::new(),
        scheme,
        path: (first.metrics_path != "/metrics").then(|| first.metrics_path.clone()),
        interval,
        timeout,
        bearer_token_file,
        bearer_token: None,
        tls,
        honor_labels,
        labels: first.labels.clone(),
        limits,
        metric_relabel,
        tenant_filter: None,
    })
}

fn candidate(
    defaults: &BTreeMap<String, String>,
    group: &BTreeMap<String, String>,
    address: &str,
    meta: &[(String, String)],
    path: DocPath,
) -> Candidate {
    let mut labels = defaults.clone();
    labels.extend(group.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels.extend(meta.iter().cloned());
    labels.insert("__address__".into(), address.to_string());
    Candidate { labels, path }
}

/// The target relabeling made: address (with the scheme's port added when
/// it has none, as Prometheus 2.42 does), instance, scheme, path, job and
/// the labels it keeps.
fn resolve(mut labels: BTreeMap<String, String>, path: DocPath, f: &mut Findings) -> Option<Resolved> {
    let Some(mut address) = labels.remove("__address__") else {
        f.push(
            Diagnostic::warning(
                "target-not-imported",
                path,
                "relabel_configs removed `__address__`: the target is dropped",
            )
            .label("no address"),
        );
        return None;
    };
    let scheme = labels.remove("__scheme__").unwrap_or_else(|| "http".into());
    if !address.contains(':') || address.ends_with(']') {
        address.push_str(if scheme == "https" { ":443" } else { ":80" });
    }
    let params: Vec<String> = labels
        .keys()
        .filter(|k| k.starts_with("__param_"))
        .cloned()
        .collect();
    if !params.is_empty() {
        f.not_imported(
            path.clone(),
            format!("query parameters ({}) are not sent by outpost", params.join(", ")),
        );
    }
    let metrics_path = labels
        .remove("__metrics_path__")
        .unwrap_or_else(|| "/metrics".into());
    let job = labels.remove("job").unwrap_or_default();
    let instance = labels.remove("instance").unwrap_or_else(|| address.clone());
    labels.retain(|k, _| !k.starts_with("__"));
    Some(Resolved {
        address,
        instance,
        scheme,
        metrics_path,
        job,
        labels,
        path,
    })
}

fn limits(m: &mut MapView, f: &mut Findings) -> Option<LimitsSpec> {
    // Prometheus reads 0 as "no limit"; outpost always has one, its default.
    let bound = |key: &str, m: &mut MapView, f: &mut Findings| -> Option<u64> {
        let n = m.number(key, f)?;
        if n == 0 {
            f.push(
                Diagnostic::warning(
                    "unbounded",
                    m.path.at(key),
                    format!("`{key}: 0` means no limit in Prometheus; outpost keeps its default bound"),
                )
                .label("no limit")
                .help("docs/spec-reference.md gives the defaults of `limits`"),
            );
            return None;
        }
        Some(n)
    };
    let spec = LimitsSpec {
        samples: bound("sample_limit", m, f),
        label_count: bound("label_limit", m, f),
        label_name_length: bound("label_name_length_limit", m, f),
        label_value_length: bound("label_value_length_limit", m, f),
        body_size: body_size(m, f),
    };
    (spec != LimitsSpec::default()).then_some(spec)
}

/// `body_size_limit`: Prometheus's `10MB` is base 2, the spec's `10Mi`.
fn body_size(m: &mut MapView, f: &mut Findings) -> Option<String> {
    let path = m.path.at("body_size_limit");
    let text = m.text("body_size_limit", f)?;
    if text == "0" || text == "0B" {
        f.push(
            Diagnostic::warning(
                "unbounded",
                path,
                "`body_size_limit: 0` means no limit in Prometheus; outpost keeps its default bound",
            )
            .label("no limit"),
        );
        return None;
    }
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let unit = match unit {
        "" | "B" => "",
        "KB" | "KiB" => "Ki",
        "MB" | "MiB" => "Mi",
        "GB" | "GiB" => "Gi",
        "TB" | "TiB" => "Ti",
        _ => {
            f.error(
                "bad-size",
                path,
                format!("`{text}` is not a size Prometheus reads, like `10MB`"),
            );
            return None;
        }
    };
    if number.is_empty() {
        f.error("bad-size", path, format!("`{text}` has no number"));
        return None;
    }
    Some(format!("{number}{unit}"))
}

/// Files matching `pattern` (relative to `base`), sorted; as in Prometheus,
/// only the last path element may hold `*` or `?`.
fn matching_files(base: &Path, pattern: &str) -> Vec<std::path::PathBuf> {
    let full = base.join(pattern);
    let (Some(dir), Some(name)) = (full.parent(), full.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    if !name.contains(['*', '?']) {
        return vec![full.clone()];
    }
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| wildcard(name, n))
        })
        .collect();
    out.sort();
    out
}

fn wildcard(pattern: &str, name: &str) -> bool {
    match (pattern.chars().next(), name.chars().next()) {
        (None, None) => true,
        (Some('*'), _) => {
            wildcard(&pattern[1..], name)
                || (!name.is_empty()
                    && wildcard(pattern, &name[name.chars().next().map_or(0, char::len_utf8)..]))
        }
        (Some('?'), Some(c)) => wildcard(&pattern[1..], &name[c.len_utf8()..]),
        (Some(p), Some(c)) if p == c => wildcard(&pattern[p.len_utf8()..], &name[c.len_utf8()..]),
        _ => false,
    }
}

/// The target groups of one file_sd file: JSON, or YAML by its extension.
fn read_groups(file: &Path) -> Result<Vec<FileGroup>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
    let yaml = file.extension().is_some_and(|e| e == "yml" || e == "yaml");
    if yaml {
        serde_saphyr::from_str(&text).map_err(|e| e.to_string())
    } else {
        serde_json::from_str(&text).map_err(|e| e.to_string())
    }
}
