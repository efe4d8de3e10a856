//! `outpostc explain`: a decoded plan in words or JSON.

use crate::units::{format_duration, format_size};
use outpost_core::durability::KERNEL_WRITEBACK_MS;
use outpost_core::plan::{self, Plan, RelabelRule, StrId, WalMode};
use serde_json::{json, Value};
use std::fmt::Write;

fn rules_json(p: &Plan, rules: &[RelabelRule]) -> Value {
    Value::Array(
        rules
            .iter()
            .map(|r| {
                json!({
                    "action": r.action.name(),
                    "source_labels": r.source_labels.iter().map(|l| p.str(*l)).collect::<Vec<_>>(),
                    "separator": p.str(r.separator),
                    "regex": p.str(r.regex),
                    "modulus": r.modulus,
                    "target_label": p.str(r.target_label),
                    "replacement": p.str(r.replacement),
                })
            })
            .collect(),
    )
}

fn opt(p: &Plan, id: Option<StrId>) -> Value {
    id.map(|i| Value::String(p.str(i).to_string()))
        .unwrap_or(Value::Null)
}

fn tls_json(p: &Plan, tls: &Option<plan::Tls>) -> Value {
    match tls {
        None => Value::Null,
        Some(t) => json!({
            "ca_file": opt(p, t.ca_file),
            "cert_file": opt(p, t.cert_file),
            "key_file": opt(p, t.key_file),
            "server_name": opt(p, t.server_name),
            "insecure_skip_verify": t.insecure_skip_verify,
        }),
    }
}

fn limits_json(l: &plan::Limits) -> Value {
    json!({
        "body_bytes": l.body_bytes,
        "samples": l.samples,
        "label_count": l.label_count,
        "label_name_bytes": l.label_name_bytes,
        "label_value_bytes": l.label_value_bytes,
    })
}

pub fn explain_json(p: &Plan, plan_bytes: usize) -> Value {
    let mem = p.worst_case_memory();
    let memory: serde_json::Map<String, Value> = mem
        .rows()
        .iter()
        .map(|(n, b)| (n.to_string(), json!(b)))
        .collect();
    let r = &p.receiver;
    json!({
        "agent": {"cluster": p.str(p.agent.cluster), "tenant": opt(p, p.agent.tenant), "role": p.agent.role.as_str()},
        "plan_bytes": plan_bytes,
        "strings": p.strings.len(),
        "external_labels": p.external_labels.iter().map(|l| (p.str(l.name).to_string(), json!(p.str(l.value)))).collect::<serde_json::Map<_, _>>(),
        "receiver": {
            "url": p.str(r.url),
            "tenant_header": r.tenant_header.map(|h| json!({"name": p.str(h.name), "value": p.str(h.value)})),
            "tls": tls_json(p, &r.tls),
            "auth": match r.auth {
                plan::Auth::None => json!("none"),
                plan::Auth::BearerTokenFile(f) => json!({"bearer_token_file": p.str(f)}),
                plan::Auth::Basic { username, password_file } => json!({"username": p.str(username), "password_file": p.str(password_file)}),
            },
            "remote_timeout_ms": r.remote_timeout_ms,
            "write_relabel": rules_json(p, &r.write_relabel),
        },
        "queue": {
            "capacity": p.queue.capacity,
            "min_shards": p.queue.min_shards,
            "max_shards": p.queue.max_shards,
            "max_samples_per_send": p.queue.max_samples_per_send,
            "batch_send_deadline_ms": p.queue.batch_send_deadline_ms,
            "min_backoff_ms": p.queue.min_backoff_ms,
            "max_backoff_ms": p.queue.max_backoff_ms,
            "max_batch_bytes": p.queue.max_batch_bytes,
            "max_sample_age_ms": p.queue.max_sample_age_ms,
        },
        "wal": {
            "dir": p.str(p.wal.dir),
            "max_bytes": p.wal.max_bytes,
            "segment_bytes": p.wal.segment_bytes,
            "fsync": fsync_text(p.wal.fsync),
            "mode": mode_name(p.wal.mode),
            "spill_after_ms": match p.wal.mode {
                WalMode::Append => Value::Null,
                WalMode::Spill(s) => json!(s.after_ms),
            },
            "max_held_bytes": match p.wal.mode {
                WalMode::Append => Value::Null,
                WalMode::Spill(s) => json!(s.max_held_bytes),
            },
            "crash_loss_ms": p.loss_window().crash_ms,
            "power_loss_ms": p.loss_window().power_ms,
            "outage_covered_ms": p.outage_covered_ms(),
            "worst_case_ingest": {
                "samples_per_s": p.worst_case_ingest().samples_per_s,
                "wal_bytes_per_s": p.worst_case_ingest().wal_bytes_per_s,
            },
        },
        "node": p.node.as_ref().map(|n| json!({
            "collectors": n.collectors.iter().map(|c| c.name()).collect::<Vec<_>>(),
            "interval_ms": n.interval_ms,
            "job": p.str(n.job),
            "limits": limits_json(&n.limits),
            "metric_relabel": rules_json(p, &n.metric_relabel),
            "options": node_options(p, &n.options)
                .into_iter()
                .map(|(k, v)| (k.to_string(), Value::String(v)))
                .collect::<serde_json::Map<String, Value>>(),
        })),
        "scrape_jobs": p.scrape_jobs.iter().map(|j| json!({
            "name": p.str(j.name),
            "interval_ms": j.interval_ms,
            "timeout_ms": j.timeout_ms,
            "scheme": format!("{:?}", j.scheme).to_lowercase(),
            "path": p.str(j.path),
            "targets": j.targets.iter().map(|t| p.str(*t)).collect::<Vec<_>>(),
            "labels": j.labels.iter().map(|l| (p.str(l.name).to_string(), json!(p.str(l.value)))).collect::<serde_json::Map<_, _>>(),
            "honor_labels": j.honor_labels,
            "bearer_token_file": opt(p, j.bearer_token_file),
            "tls": tls_json(p, &j.tls),
            "limits": limits_json(&j.limits),
            "metric_relabel": rules_json(p, &j.metric_relabel),
        })).collect::<Vec<_>>(),
        "self_scrape": {"interval_ms": p.self_scrape.interval_ms, "job": p.str(p.self_scrape.job)},
        "budget": {
            "cpu_request_millis": p.budget.cpu_request_millis,
            "cpu_limit_millis": p.budget.cpu_limit_millis,
            "memory_request_bytes": p.budget.memory_request_bytes,
            "memory_limit_bytes": p.budget.memory_limit_bytes,
        },
        "worst_case_memory": {
            "total": mem.total(),
            "by_buffer": memory,
            "shared": {
                "scrape_concurrency": p.sharing_bounds().scrape_concurrency,
                "scrape_slot_bytes": p.scrape_slot_bytes(),
                "series_pool_max_series": p.sharing_bounds().max_series,
                "series_pool_max_bytes": p.sharing_bounds().max_series_bytes,
            },
            "by_job": p.target_groups().iter().map(|g| json!({
                "job": g.job,
                "targets": g.targets,
                "per_target": g.per_target,
                "total": g.total(),
            })).collect::<Vec<_>>(),
        },
    })
}

fn write_rules(out: &mut String, p: &Plan, indent: &str, rules: &[RelabelRule]) {
    for r in rules {
        let sources: Vec<&str> = r.source_labels.iter().map(|l| p.str(*l)).collect();
        let _ = write!(out, "{indent}- {} [{}]", r.action.name(), sources.join(", "));
        let _ = write!(out, " regex `{}`", p.str(r.regex));
        if !p.str(r.target_label).is_empty() {
            let _ = write!(out, " -> {} = `{}`", p.str(r.target_label), p.str(r.replacement));
        }
        if r.action == plan::RelabelAction::HashMod {
            let _ = write!(out, " modulus {}", r.modulus);
        }
        out.push('\n');
    }
}

fn limits_text(l: &plan::Limits) -> String {
    format!(
        "body {}, {} samples, {} labels, names {} B, values {} B, series line {}",
        format_size(u64::from(l.body_bytes)),
        l.samples,
        l.label_count,
        l.label_name_bytes,
        l.label_value_bytes,
        format_size(l.max_line_bytes() as u64)
    )
}

/// A label set the way Prometheus prints one, `{name="value", ...}`, for
/// people to read (values are shown as written, not escaped).
pub fn labels_text<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let inner: Vec<String> = labels.into_iter().map(|(n, v)| format!("{n}=\"{v}\"")).collect();
    format!("{{{}}}", inner.join(", "))
}

pub fn explain_text(p: &Plan, plan_bytes: usize) -> String {
    let mut o = String::new();
    let tenant = p
        .agent
        .tenant
        .map(|t| format!(" tenant {}", p.str(t)))
        .unwrap_or_default();
    let _ = writeln!(
        o,
        "agent: cluster {}{tenant}, role {}",
        p.str(p.agent.cluster),
        p.agent.role.as_str()
    );
    let _ = writeln!(
        o,
        "plan: {plan_bytes} bytes, {} interned strings",
        p.strings.len()
    );
    let labels = p.external_labels.iter().map(|l| (p.str(l.name), p.str(l.value)));
    let _ = writeln!(o, "external labels: {}", labels_text(labels));
    let r = &p.receiver;
    let _ = writeln!(
        o,
        "receiver: {} (timeout {} ms)",
        p.str(r.url),
        r.remote_timeout_ms
    );
    if let Some(h) = r.tenant_header {
        let _ = writeln!(o, "  tenant header: {}: {}", p.str(h.name), p.str(h.value));
    }
    if let Some(t) = &r.tls {
        let _ = writeln!(o, "  tls: {}", tls_text(p, t));
    }
    match r.auth {
        plan::Auth::None => {}
        plan::Auth::BearerTokenFile(f) => {
            let _ = writeln!(o, "  auth: bearer token from {}", p.str(f));
        }
        plan::Auth::Basic {
            username,
            password_file,
        } => {
            let _ = writeln!(
                o,
                "  auth: basic {} with password from {}",
                p.str(username),
                p.str(password_file)
            );
        }
    }
    if !r.write_relabel.is_empty() {
        let _ = writeln!(o, "  write relabel:");
        write_rules(&mut o, p, "    ", &r.write_relabel);
    }
    let q = &p.queue;
    let _ = writeln!(
        o,
        "queue: capacity {}, shards {}..{}, {} samples per send, batch {} within {} ms, backoff {}..{} ms, samples older than {} s dropped",
        q.capacity,
        q.min_shards,
        q.max_shards,
        q.max_samples_per_send,
        format_size(u64::from(q.max_batch_bytes)),
        q.batch_send_deadline_ms,
        q.min_backoff_ms,
        q.max_backoff_ms,
        q.max_sample_age_ms / 1000
    );
    let _ = writeln!(
        o,
        "wal: {} up to {}, segments of {}, fsync {}",
        p.str(p.wal.dir),
        format_size(p.wal.max_bytes),
        format_size(u64::from(p.wal.segment_bytes)),
        fsync_text(p.wal.fsync)
    );
    let _ = writeln!(o, "  mode: {}", mode_text(p.wal.mode));
    let _ = writeln!(o, "  {}", durability_text(p));
    if let Some(n) = &p.node {
        let names: Vec<&str> = n.collectors.iter().map(|c| c.name()).collect();
        let _ = writeln!(
            o,
            "node collectors (job {}, every {} ms): {}",
            p.str(n.job),
            n.interval_ms,
            names.join(", ")
        );
        let _ = writeln!(o, "  limits: {}", limits_text(&n.limits));
        for (option, value) in node_options(p, &n.options) {
            let _ = writeln!(o, "  {option}: {value}");
        }
        write_rules(&mut o, p, "  ", &n.metric_relabel);
    }
    for j in &p.scrape_jobs {
        let scheme = match j.scheme {
            plan::Scheme::Http => "http",
            plan::Scheme::Https => "https",
        };
        let _ = writeln!(
            o,
            "job {} every {} ms, timeout {} ms, {scheme}://<target>{}",
            p.str(j.name),
            j.interval_ms,
            j.timeout_ms,
            p.str(j.path)
        );
        for t in &j.targets {
            let _ = writeln!(o, "  target {}", p.str(*t));
        }
        if let Some(f) = j.bearer_token_file {
            let _ = writeln!(o, "  bearer token from {}", p.str(f));
        }
        if let Some(t) = &j.tls {
            let _ = writeln!(o, "  tls: {}", tls_text(p, t));
        }
        if j.honor_labels {
            let _ = writeln!(o, "  honor_labels");
        }
        let _ = writeln!(o, "  limits: {}", limits_text(&j.limits));
        if !j.metric_relabel.is_empty() {
            let _ = writeln!(o, "  metric relabel:");
            write_rules(&mut o, p, "    ", &j.metric_relabel);
        }
    }
    let _ = writeln!(
        o,
        "self scrape: job {} every {} ms",
        p.str(p.self_scrape.job),
        p.self_scrape.interval_ms
    );
    let b = &p.budget;
    let _ = writeln!(
        o,
        "budget: requests {}m / {}, limits {}m / {}",
        b.cpu_request_millis,
        format_size(b.memory_request_bytes),
        b.cpu_limit_millis,
        format_size(b.memory_limit_bytes)
    );
    let mem = p.worst_case_memory();
    let _ = writeln!(
        o,
        "worst-case memory: {} ({} bytes)",
        format_size(mem.total()),
        mem.total()
    );
    for (name, bytes) in mem.rows() {
        let _ = writeln!(o, "  {name:<14} {:>12} B  {}", bytes, format_size(bytes));
    }
    let sharing = p.sharing_bounds();
    let _ = writeln!(
        o,
        "  shared: scrape_concurrency {} x {} per slot (sized for the largest limits); series_pool max_series {}, max_size {}{}",
        sharing.scrape_concurrency,
        format_size(p.scrape_slot_bytes()),
        sharing.max_series,
        format_size(sharing.max_series_bytes),
        if p.sharing.is_none() { " (format before 4: per target)" } else { "" }
    );
    let _ = writeln!(
        o,
        "  by job (targets x own: connection + at rest; caps: slot need, series table cap in the pool):"
    );
    for g in p.target_groups() {
        let c = &g.per_target;
        let _ = writeln!(
            o,
            "    {:<16} {} x {} = {}  ({} + {}; slot {}, series cap {} entries / {})",
            g.job,
            g.targets,
            format_size(c.own()),
            format_size(g.total()),
            format_size(c.connection),
            format_size(c.at_rest),
            format_size(c.scrape_slot),
            c.series_cap_entries,
            format_size(c.series_cap)
        );
    }
    o
}

/// The spec's name for a WAL mode.
pub fn mode_name(mode: WalMode) -> &'static str {
    match mode {
        WalMode::Append => "append",
        WalMode::Spill(_) => "spill",
    }
}

fn mode_text(mode: WalMode) -> String {
    match mode {
        WalMode::Append => "append (every record appended before it is sent)".to_string(),
        WalMode::Spill(s) => format!(
            "spill (records held in memory, up to {}; written when not acknowledged within {}, when the receiver fails and on SIGTERM)",
            format_size(u64::from(s.max_held_bytes)),
            format_duration(u64::from(s.after_ms))
        ),
    }
}

/// What a crash and a power loss can take, for people: `0s` in `append`
/// mode for a crash.
pub fn crash_loss_text(p: &Plan) -> String {
    format_duration(p.loss_window().crash_ms)
}

/// What a power loss can take, or who decides.
pub fn power_loss_text(p: &Plan) -> String {
    match p.loss_window().power_ms {
        Some(ms) => format_duration(ms),
        None => format!(
            "{} + the kernel's writeback (about {})",
            format_duration(p.loss_window().crash_ms),
            format_duration(KERNEL_WRITEBACK_MS)
        ),
    }
}

/// The loss windows and the outage the WAL holds, in one line.
fn durability_text(p: &Plan) -> String {
    let ingest = p.worst_case_ingest();
    format!(
        "loses at most {} of scrapes on a crash, {} on a power loss; holds a {} outage at the worst-case ingest ({} samples/s, {}/s of WAL)",
        crash_loss_text(p),
        power_loss_text(p),
        format_duration(p.outage_covered_ms()),
        ingest.samples_per_s,
        format_size(ingest.wal_bytes_per_s)
    )
}

fn fsync_text(f: plan::Fsync) -> String {
    match f {
        plan::Fsync::Always => "always".to_string(),
        plan::Fsync::Never => "never".to_string(),
        plan::Fsync::IntervalMs(ms) => format!("every {ms} ms"),
    }
}

fn tls_text(p: &Plan, t: &plan::Tls) -> String {
    let f = |id: Option<StrId>| id.map(|i| p.str(i).to_string()).unwrap_or_else(|| "-".into());
    let mut text = format!(
        "ca {}, cert {}, key {}, server name {}",
        f(t.ca_file),
        f(t.cert_file),
        f(t.key_file),
        f(t.server_name)
    );
    if t.insecure_skip_verify {
        text.push_str(", certificate NOT verified");
    }
    text
}

/// The node options a plan sets, as (spec key, value); left-out options are the agent's defaults.
fn node_options(p: &Plan, o: &plan::NodeOptions) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let patterns = [
        (
            "filesystem.mount_points_exclude",
            o.filesystem_mount_points_exclude,
        ),
        ("filesystem.fs_types_exclude", o.filesystem_fs_types_exclude),
        ("netdev.device_exclude", o.netdev_device_exclude),
        ("diskstats.device_exclude", o.diskstats_device_exclude),
        ("netclass.ignored_devices", o.netclass_ignored_devices),
        ("netstat.fields", o.netstat_fields),
        ("vmstat.fields", o.vmstat_fields),
    ];
    for (key, id) in patterns {
        if let Some(id) = id {
            out.push((key, format!("`{}`", p.str(id))));
        }
    }
    if o.filesystem_mount_timeout_ms != 0 {
        out.push((
            "filesystem.mount_timeout",
            format!("{} ms", o.filesystem_mount_timeout_ms),
        ));
    }
    if let Some(t) = &o.textfile {
        out.push((
            "textfile",
            format!(
                "{}, at most {} files of {} each",
                p.str(t.directory),
                t.max_files,
                format_size(u64::from(t.max_file_bytes))
            ),
        ));
    }
    out
}
