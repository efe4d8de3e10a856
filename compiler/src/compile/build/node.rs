//! The plan's node section: which collectors run (`default` or a list, less
//! `disabled_collectors`), what they inherit from the layers, and the
//! per-collector options node_exporter takes as `--collector.*` flags.
//!
//! An option left out stays out of the plan: the agent then applies
//! node_exporter's default (`defaults.rs` names them), and a spec that sets
//! no option compiles to the same plan bytes as before options existed.

use super::scrape::Inherited;
use crate::compile::context::Cx;
use crate::compile::defaults::{
    default_bytes, default_ms, DEFAULT_COLLECTORS, DEFAULT_NODE_JOB, DEFAULT_TEXTFILE_MAX_FILES,
    DEFAULT_TEXTFILE_MAX_FILE_SIZE, MAX_MOUNT_TIMEOUT,
};
use crate::compile::intern::Interner;
use crate::compile::layers::{limits_from, Unit};
use crate::compile::relabel::relabel_rules;
use crate::diag::Diagnostic;
use crate::manifests::{HOST_WAL_ROOT, PLAN_DIR};
use crate::spec::{CollectorsSpec, NodeSpec, TextfileSpec};
use crate::tree::DocPath;
use crate::units::format_size;
use outpost_core::plan::{self, Collector};

/// Directories of the node-role agent's own mounts (and the host filesystems it reads), besides
/// its WAL directory: a textfile directory mounted over or under one of them would hide it or be
/// hidden.
const AGENT_DIRS: [&str; 6] = [
    PLAN_DIR,
    HOST_WAL_ROOT,
    "/host",
    "/proc",
    "/sys",
    "/var/run/secrets",
];

impl Unit<'_> {
    pub(super) fn node(
        &self,
        cx: &mut Cx,
        s: &mut Interner,
        n: &NodeSpec,
        inherited: &Inherited,
        wal_dir: &str,
    ) -> plan::NodeCollectors {
        let npath = DocPath::root().at("node");
        let collectors = collectors(cx, n, &npath);
        let interval = match &n.interval {
            Some(t) => cx
                .duration(t, &npath.at("interval"))
                .unwrap_or(inherited.interval_ms),
            None => inherited.interval_ms,
        };
        let limits = match &n.limits {
            Some(l) => limits_from(cx, l, &npath.at("limits"), inherited.limits),
            None => inherited.limits,
        };
        // Rules, then the job, then the options: strings are numbered in first-use order, and a
        // spec without options must keep the plan bytes it always had.
        let mut rules = relabel_rules(cx, s, &n.metric_relabel, &npath.at("metric_relabel"));
        if let Some((list, p)) = &inherited.metric_relabel {
            rules.extend(relabel_rules(cx, s, list, p));
        }
        let job = s.id(n.job.as_deref().unwrap_or(DEFAULT_NODE_JOB));
        let options = options(cx, s, n, &collectors, &limits, wal_dir, &npath.at("options"));
        plan::NodeCollectors {
            collectors,
            interval_ms: interval.max(1) as u32,
            job,
            limits,
            metric_relabel: rules,
            options,
        }
    }
}

/// The collectors the node section asks for, sorted; every name that is not one is reported.
fn collectors(cx: &mut Cx, n: &NodeSpec, npath: &DocPath) -> Vec<Collector> {
    let mut chosen: Vec<Collector> = match &n.collectors {
        None => DEFAULT_COLLECTORS.to_vec(),
        Some(CollectorsSpec::Set(name)) if name == "default" => DEFAULT_COLLECTORS.to_vec(),
        Some(CollectorsSpec::Set(name)) => {
            cx.push(
                Diagnostic::error(
                    "bad-collectors",
                    npath.at("collectors"),
                    format!("`{name}` is not a set of collectors"),
                )
                .label("not `default` or a list")
                .help("write `collectors: default` (node_exporter's default set) or a list such as `[cpu, meminfo, filesystem]`"),
            );
            DEFAULT_COLLECTORS.to_vec()
        }
        Some(CollectorsSpec::List(names)) => {
            let mut list = Vec::new();
            for (i, name) in names.iter().enumerate() {
                let path = npath.at("collectors").at(i);
                let Some(c) = known(cx, name, &path) else {
                    continue;
                };
                if list.contains(&c) {
                    cx.push(
                        Diagnostic::warning(
                            "duplicate-collector",
                            path,
                            format!("collector `{name}` is listed twice"),
                        )
                        .label("again")
                        .help("list each collector once"),
                    );
                }
                list.push(c);
            }
            list
        }
    };
    for (i, name) in n.disabled_collectors.iter().enumerate() {
        let path = npath.at("disabled_collectors").at(i);
        let Some(c) = known(cx, name, &path) else {
            continue;
        };
        if !chosen.contains(&c) {
            cx.push(
                Diagnostic::warning(
                    "collector-not-enabled",
                    path,
                    format!("collector `{name}` is disabled but `collectors` does not enable it"),
                )
                .label("not enabled anyway")
                .help("remove it from `disabled_collectors`"),
            );
        }
        chosen.retain(|x| *x != c);
    }
    chosen.sort();
    chosen.dedup();
    chosen
}

/// The collector named `name`, or `None` after reporting it.
fn known(cx: &mut Cx, name: &str, path: &DocPath) -> Option<Collector> {
    let collector = Collector::from_name(name);
    if collector.is_none() {
        let help = if name == "systemd" {
            "outpost has no systemd collector: it asks systemd over D-Bus, a privileged socket a metrics agent \
             should not hold (docs/node-exporter-compat.md); node_exporter leaves it off by default too"
                .to_string()
        } else {
            let names: Vec<&str> = Collector::ALL.iter().map(|c| c.name()).collect();
            format!("known collectors: {}", names.join(", "))
        };
        cx.push(
            Diagnostic::error(
                "unknown-collector",
                path.clone(),
                format!("`{name}` is not a node collector"),
            )
            .label("unknown collector")
            .help(help),
        );
    }
    collector
}

/// The node section's `options`, checked where they are written.
fn options(
    cx: &mut Cx,
    s: &mut Interner,
    n: &NodeSpec,
    collectors: &[Collector],
    limits: &plan::Limits,
    wal_dir: &str,
    opath: &DocPath,
) -> plan::NodeOptions {
    let o = &n.options;
    let mut out = plan::NodeOptions::default();
    let mut pattern = |cx: &mut Cx, value: &Option<String>, collector: Collector, path: DocPath| {
        let text = value.as_ref()?;
        used_by(cx, collector, collectors, &path);
        if let Err(e) = regex_automata::meta::Regex::new(text) {
            cx.push(
                Diagnostic::error(
                    "bad-regex",
                    path,
                    format!("`{text}` is not a valid regular expression"),
                )
                .label("invalid regex")
                .help(format!(
                    "{}; patterns are RE2 syntax, matched unanchored as node_exporter matches them",
                    regex_error(&e)
                )),
            );
            return None;
        }
        Some(s.id(text))
    };
    if let Some(f) = &o.filesystem {
        let fpath = opath.at("filesystem");
        out.filesystem_mount_points_exclude = pattern(
            cx,
            &f.mount_points_exclude,
            Collector::Filesystem,
            fpath.at("mount_points_exclude"),
        );
        out.filesystem_fs_types_exclude = pattern(
            cx,
            &f.fs_types_exclude,
            Collector::Filesystem,
            fpath.at("fs_types_exclude"),
        );
        if let Some(t) = &f.mount_timeout {
            let path = fpath.at("mount_timeout");
            used_by(cx, Collector::Filesystem, collectors, &path);
            let max = default_ms(MAX_MOUNT_TIMEOUT);
            let ms = cx.duration(t, &path).and_then(|ms| {
                if (10..=max).contains(&ms) {
                    return Some(ms as u32);
                }
                cx.push(
                    Diagnostic::error(
                        "out-of-range",
                        path.clone(),
                        format!("mount_timeout is {t}, outside 10ms..={MAX_MOUNT_TIMEOUT}"),
                    )
                    .label("out of range")
                    .help(format!(
                        "a scrape waits this long, on the agent's event loop, for each mount that stops answering; \
                         at most {MAX_MOUNT_TIMEOUT} (node_exporter's default)"
                    )),
                );
                None
            });
            // 0 in the plan is the agent's default.
            out.filesystem_mount_timeout_ms = ms.unwrap_or(0);
        }
    }
    if let Some(d) = &o.netdev {
        out.netdev_device_exclude = pattern(
            cx,
            &d.device_exclude,
            Collector::Netdev,
            opath.at("netdev").at("device_exclude"),
        );
    }
    if let Some(d) = &o.diskstats {
        out.diskstats_device_exclude = pattern(
            cx,
            &d.device_exclude,
            Collector::Diskstats,
            opath.at("diskstats").at("device_exclude"),
        );
    }
    if let Some(c) = &o.netclass {
        out.netclass_ignored_devices = pattern(
            cx,
            &c.ignored_devices,
            Collector::Netclass,
            opath.at("netclass").at("ignored_devices"),
        );
    }
    if let Some(f) = &o.netstat {
        out.netstat_fields = pattern(
            cx,
            &f.fields,
            Collector::Netstat,
            opath.at("netstat").at("fields"),
        );
    }
    if let Some(f) = &o.vmstat {
        out.vmstat_fields = pattern(cx, &f.fields, Collector::Vmstat, opath.at("vmstat").at("fields"));
    }
    if let Some(t) = &o.textfile {
        out.textfile = textfile(cx, s, t, collectors, limits, wal_dir, &opath.at("textfile"));
    }
    out
}

/// regex-automata's error names the problem after a generic first line; keep the useful part.
fn regex_error(e: &regex_automata::meta::BuildError) -> String {
    match e.syntax_error() {
        Some(syntax) => match syntax {
            regex_syntax::Error::Parse(p) => p.kind().to_string(),
            regex_syntax::Error::Translate(t) => t.kind().to_string(),
            other => other.to_string(),
        },
        None => e.to_string(),
    }
}

/// An option for a collector that does not run is a mistake in one of the two places.
fn used_by(cx: &mut Cx, collector: Collector, collectors: &[Collector], path: &DocPath) {
    if !collectors.contains(&collector) {
        cx.push(
            Diagnostic::warning(
                "unused-node-option",
                path.clone(),
                format!(
                    "the `{}` collector does not run, so this option does nothing",
                    collector.name()
                ),
            )
            .on_key()
            .label("unused")
            .help(format!(
                "enable `{}` in `node.collectors` or remove the option",
                collector.name()
            )),
        );
    }
}

fn textfile(
    cx: &mut Cx,
    s: &mut Interner,
    t: &TextfileSpec,
    collectors: &[Collector],
    limits: &plan::Limits,
    wal_dir: &str,
    tpath: &DocPath,
) -> Option<plan::Textfile> {
    let dpath = tpath.at("directory");
    used_by(cx, Collector::Textfile, collectors, &dpath);
    let dir = t.directory.trim_end_matches('/');
    let mut ok = true;
    if !t.directory.starts_with('/') {
        cx.file_path(&t.directory, &dpath);
        ok = false;
    } else if let Some(clash) = AGENT_DIRS
        .iter()
        .copied()
        .chain([wal_dir])
        .find(|a| dir.is_empty() || within(dir, a) || within(a, dir))
    {
        cx.push(
            Diagnostic::error(
                "textfile-directory-conflict",
                dpath.clone(),
                format!("textfile directory `{}` overlaps `{clash}`, which the node-role agent mounts or reads", t.directory),
            )
            .label("overlaps an agent directory")
            .help("the directory is mounted from the host read-only at the same path; use a directory of its own, such as /var/lib/node_exporter/textfile_collector"),
        );
        ok = false;
    }
    let max_files = match t.max_files {
        Some(v) => cx.range(v, 1, 4096, &tpath.at("max_files"), "max_files"),
        None => Some(DEFAULT_TEXTFILE_MAX_FILES),
    };
    let body = u64::from(limits.body_bytes);
    let max_file_bytes = match &t.max_file_size {
        Some(text) => {
            let path = tpath.at("max_file_size");
            cx.size(text, &path).and_then(|bytes| {
                if bytes < 1024 || bytes > body {
                    cx.push(
                        Diagnostic::error(
                            "out-of-range",
                            path,
                            format!(
                                "max_file_size is {}, outside 1Ki..={} (the node's body_size limit)",
                                format_size(bytes),
                                format_size(body)
                            ),
                        )
                        .label("out of range")
                        .help("a file's samples go into the node's exposition, which body_size bounds; raise node.limits.body_size or lower max_file_size"),
                    );
                    None
                } else {
                    Some(bytes)
                }
            })
        }
        None => Some(default_bytes(DEFAULT_TEXTFILE_MAX_FILE_SIZE).min(body)),
    };
    let (Some(max_files), Some(max_file_bytes), true) = (max_files, max_file_bytes, ok) else {
        return None;
    };
    Some(plan::Textfile {
        directory: s.id(&t.directory),
        max_files: max_files as u32,
        max_file_bytes: max_file_bytes as u32,
    })
}

/// `path` is `dir` or below it.
fn within(path: &str, dir: &str) -> bool {
    path.strip_prefix(dir)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || dir.ends_with('/'))
}
