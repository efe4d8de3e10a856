//! Shared helpers for outpost's benchmarks: synthetic kube-state-metrics-shaped
//! exposition bodies, and the plan pieces the pipeline stages need.
//!
//! The shape follows `benches/ksm_target.py` (the side-by-side harness's target):
//! per deployment four `kube_deployment_*` series, per pod eleven `kube_pod_*`
//! series, 5 to 8 labels each (namespace, pod, uid, container, node, phase,
//! resource, unit, ...), then a Go runtime block of `go_gc_*` / `go_memstats_*`
//! series that the seed's write-relabel rule drops.

use outpost_core::labels::LabelSet;
use outpost_core::plan::{Budget, Limits, Plan, Queue, RelabelAction, Role};
use outpost_test_support::{PlanBuilder, Rule};
use std::fmt::Write as _;

/// The seed's write-relabel drop pattern.
pub const DROP_REGEX: &str = "go_gc_.*|go_memstats_.*";

const PHASES: [&str; 5] = ["Pending", "Running", "Succeeded", "Failed", "Unknown"];
const APPS: [&str; 10] = [
    "api", "web", "worker", "cache", "ingest", "auth", "billing", "search", "notify", "gateway",
];
const PODS_PER_DEPLOYMENT: usize = 3;

/// How a series' value moves from one scrape to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Constant,
    /// 0/1, flips for roughly one series in 500 per tick.
    Flag,
    Counter,
    /// Small integer wandering around its base.
    Gauge,
}

#[derive(Debug, Clone)]
pub struct KsmSeries {
    pub name: &'static str,
    /// Exposition order, without `__name__`.
    pub labels: Vec<(&'static str, String)>,
    pub kind: ValueKind,
    pub base: f64,
}

impl KsmSeries {
    /// The value this series shows at scrape number `tick`.
    pub fn value_at(&self, index: usize, tick: u64) -> f64 {
        let i = index as u64;
        match self.kind {
            ValueKind::Constant => self.base,
            ValueKind::Flag => {
                if (i * 7919 + tick).is_multiple_of(500) {
                    1.0 - self.base
                } else {
                    self.base
                }
            }
            ValueKind::Counter => self.base + ((i * 31 + tick) / 97) as f64,
            ValueKind::Gauge => self.base + ((i + tick) % 3) as f64 - 1.0,
        }
    }
}

/// splitmix64: deterministic ids without a rand dependency.
struct Ids(u64);

impl Ids {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn uid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[(self.next() % from.len() as u64) as usize]
    }
}

/// `n` KSM-shaped series, deterministic for a given `n`.
pub fn ksm_series(n: usize) -> Vec<KsmSeries> {
    let mut ids = Ids(7);
    let mut out = Vec::with_capacity(n);
    let mut pod_no = 0usize;
    let mut deployment_no = 0usize;
    let l = |name: &'static str, value: &str| (name, value.to_string());
    while out.len() < n {
        let app = APPS[deployment_no % APPS.len()];
        let ns = format!("team-{:02}", deployment_no % 40);
        let deployment = format!("{app}-{deployment_no:04}");
        let dep_uid = ids.uid();
        for name in [
            "kube_deployment_status_replicas",
            "kube_deployment_status_replicas_available",
            "kube_deployment_status_replicas_updated",
            "kube_deployment_spec_replicas",
        ] {
            out.push(KsmSeries {
                name,
                labels: vec![
                    l("namespace", &ns),
                    l("deployment", &deployment),
                    l("uid", &dep_uid),
                    l("app_kubernetes_io_name", app),
                    l("app_kubernetes_io_part_of", &ns),
                ],
                kind: ValueKind::Gauge,
                base: PODS_PER_DEPLOYMENT as f64,
            });
        }
        for _ in 0..PODS_PER_DEPLOYMENT {
            let suffix = format!("{:010x}", ids.next() & 0xff_ffff_ffff);
            let pod = format!("{deployment}-{}-{}", &suffix[..5], &suffix[5..]);
            let pod_uid = ids.uid();
            let node = format!("edge-node-{:02}", pod_no % 16);
            let base = [l("namespace", &ns), l("pod", &pod), l("uid", &pod_uid)];
            let with = |extra: &[(&'static str, &str)]| {
                let mut v = base.to_vec();
                v.extend(extra.iter().map(|(n, x)| (*n, x.to_string())));
                v
            };
            let pod_ip = format!("10.42.{}.{}", (pod_no / 250) % 250, pod_no % 250 + 2);
            let host_ip = format!("192.168.10.{}", pod_no % 16 + 10);
            let created_by = format!("{deployment}-{}", &suffix[..5]);
            out.push(KsmSeries {
                name: "kube_pod_info",
                labels: with(&[
                    ("host_ip", &host_ip),
                    ("pod_ip", &pod_ip),
                    ("node", &node),
                    ("created_by_kind", "ReplicaSet"),
                    ("created_by_name", &created_by),
                ]),
                kind: ValueKind::Constant,
                base: 1.0,
            });
            for phase in PHASES {
                out.push(KsmSeries {
                    name: "kube_pod_status_phase",
                    labels: with(&[("node", &node), ("phase", phase)]),
                    kind: if phase == "Running" || phase == "Pending" {
                        ValueKind::Flag
                    } else {
                        ValueKind::Constant
                    },
                    base: if phase == "Running" { 1.0 } else { 0.0 },
                });
            }
            let container = [("container", app), ("node", node.as_str())];
            let resource = |r: &'static str, u: &'static str| {
                let mut v = with(&container);
                v.push(("resource", r.to_string()));
                v.push(("unit", u.to_string()));
                v
            };
            let mib = 1_048_576.0;
            out.push(KsmSeries {
                name: "kube_pod_container_resource_requests",
                labels: resource("cpu", "core"),
                kind: ValueKind::Constant,
                base: ids.pick(&[0.05, 0.1, 0.25, 0.5, 1.0]),
            });
            out.push(KsmSeries {
                name: "kube_pod_container_resource_requests",
                labels: resource("memory", "byte"),
                kind: ValueKind::Constant,
                base: ids.pick(&[64.0, 128.0, 256.0, 512.0]) * mib,
            });
            out.push(KsmSeries {
                name: "kube_pod_container_resource_limits",
                labels: resource("memory", "byte"),
                kind: ValueKind::Constant,
                base: ids.pick(&[256.0, 512.0, 1024.0]) * mib,
            });
            out.push(KsmSeries {
                name: "kube_pod_container_status_restarts_total",
                labels: with(&container),
                kind: ValueKind::Counter,
                base: (ids.next() % 5) as f64,
            });
            out.push(KsmSeries {
                name: "kube_pod_container_status_running",
                labels: with(&container),
                kind: ValueKind::Flag,
                base: 1.0,
            });
            pod_no += 1;
        }
        deployment_no += 1;
    }
    out.truncate(n);
    // Group by metric name, as an exporter writes one family after another.
    out.sort_by_key(|s| family_rank(s.name));
    out
}

fn family_rank(name: &str) -> usize {
    const ORDER: [&str; 10] = [
        "kube_deployment_spec_replicas",
        "kube_deployment_status_replicas",
        "kube_deployment_status_replicas_available",
        "kube_deployment_status_replicas_updated",
        "kube_pod_container_resource_limits",
        "kube_pod_container_resource_requests",
        "kube_pod_container_status_restarts_total",
        "kube_pod_container_status_running",
        "kube_pod_info",
        "kube_pod_status_phase",
    ];
    ORDER.iter().position(|n| *n == name).unwrap_or(ORDER.len())
}

/// Go runtime series every Go exporter adds; all but `go_goroutines` match [`DROP_REGEX`].
pub fn go_runtime_lines() -> Vec<String> {
    let mut lines: Vec<String> = ["0", "0.25", "0.5", "0.75", "1"]
        .iter()
        .map(|q| format!("go_gc_duration_seconds{{quantile=\"{q}\"}}"))
        .collect();
    lines.push("go_gc_duration_seconds_sum".into());
    lines.push("go_gc_duration_seconds_count".into());
    for m in [
        "alloc_bytes",
        "alloc_bytes_total",
        "buck_hash_sys_bytes",
        "frees_total",
        "gc_sys_bytes",
        "heap_alloc_bytes",
        "heap_idle_bytes",
        "heap_inuse_bytes",
        "heap_objects",
        "heap_released_bytes",
        "heap_sys_bytes",
        "last_gc_time_seconds",
        "lookups_total",
        "mallocs_total",
        "mcache_inuse_bytes",
        "mcache_sys_bytes",
        "mspan_inuse_bytes",
        "mspan_sys_bytes",
        "next_gc_bytes",
        "other_sys_bytes",
        "stack_inuse_bytes",
        "stack_sys_bytes",
        "sys_bytes",
    ] {
        lines.push(format!("go_memstats_{m}"));
    }
    lines
}

/// Number of samples in a body from [`ksm_body`] over `n` KSM series.
pub fn body_samples(n: usize) -> usize {
    n + go_runtime_lines().len() + 1
}

/// The exposition text of `series` at scrape number `tick`, with HELP/TYPE
/// lines and the Go runtime block, as kube-state-metrics would answer.
pub fn ksm_body(series: &[KsmSeries], tick: u64) -> String {
    let mut out = String::with_capacity(series.len() * 220 + 4096);
    let mut family = "";
    for (i, s) in series.iter().enumerate() {
        if s.name != family {
            family = s.name;
            let kind = if family.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            let _ = write!(
                out,
                "# HELP {family} {family} from kube-state-metrics.\n# TYPE {family} {kind}\n"
            );
        }
        out.push_str(s.name);
        out.push('{');
        for (j, (name, value)) in s.labels.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            let _ = write!(out, "{name}=\"{value}\"");
        }
        let _ = writeln!(out, "}} {}", s.value_at(i, tick));
    }
    for (i, line) in go_runtime_lines().iter().enumerate() {
        let _ = writeln!(
            out,
            "{line} {}",
            ((i as u64 * 1_000_003 + tick * 4099) % 10_000_000) as f64 / 7.0
        );
    }
    let _ = writeln!(out, "go_goroutines {}", 80 + tick % 7);
    out
}

/// Per-target limits roomy enough for a 50,000-series KSM body.
pub fn ksm_limits() -> Limits {
    Limits {
        body_bytes: 64 << 20,
        samples: 250_000,
        label_count: 16,
        label_name_bytes: 64,
        label_value_bytes: 256,
    }
}

/// Label set capacity that holds any KSM series plus target and external labels.
pub const MAX_LABELS: usize = 24;
pub const MAX_LABEL_BYTES: usize = 2048;

pub fn label_set() -> LabelSet {
    LabelSet::with_capacity(MAX_LABELS, MAX_LABEL_BYTES)
}

/// Target and external labels the agent adds to every KSM series, sorted by name.
pub const ADDED_LABELS: [(&str, &str); 5] = [
    ("cluster", "cluster-03"),
    ("instance", "kube-state-metrics.monitoring.svc:8080"),
    ("job", "kube-state-metrics"),
    ("location", "edge-site-1"),
    ("role", "edge"),
];

/// The labels a series carries when it reaches write relabeling and the
/// batch: `__name__`, its own labels, target and external labels, sorted.
pub fn full_labels(
    name: &str,
    own: impl Iterator<Item = (impl AsRef<str>, impl AsRef<str>)>,
    out: &mut LabelSet,
) {
    out.clear();
    // Capacities above fit every KSM series; a failure here is a bench bug.
    out.push("__name__", name).expect("label set capacity");
    for (n, v) in own {
        out.push(n.as_ref(), v.as_ref()).expect("label set capacity");
    }
    for (n, v) in ADDED_LABELS {
        out.push(n, v).expect("label set capacity");
    }
    out.sort();
}

/// The sorted, complete label sets of `series` plus the Go runtime block
/// (without `go_goroutines`). Each set is sized to its own labels, so 50,000
/// of them sit close together in memory as a batch's worth of series would,
/// instead of one 4 KiB scratch arena apiece.
pub fn full_label_sets(series: &[KsmSeries]) -> Vec<LabelSet> {
    let mut sets = Vec::with_capacity(series.len() + 32);
    let mut scratch = label_set();
    let mut keep = |scratch: &LabelSet| {
        let bytes = scratch.iter().map(|(n, v)| n.len() + v.len()).sum();
        let mut l = LabelSet::with_capacity(scratch.len(), bytes);
        l.copy_from(scratch).expect("sized to fit");
        sets.push(l);
    };
    for s in series {
        full_labels(
            s.name,
            s.labels.iter().map(|(n, v)| (*n, v.as_str())),
            &mut scratch,
        );
        keep(&scratch);
    }
    for line in go_runtime_lines() {
        let (name, own) = match line.split_once('{') {
            Some((name, rest)) => {
                let (n, v) = rest.trim_end_matches('}').split_once('=').expect("one label");
                (
                    name.to_string(),
                    vec![(n.to_string(), v.trim_matches('"').to_string())],
                )
            }
            None => (line.clone(), Vec::new()),
        };
        full_labels(
            &name,
            own.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            &mut scratch,
        );
        keep(&scratch);
    }
    sets
}

/// A plan whose write relabeling is the seed's `go_gc_.*|go_memstats_.*`
/// drop, and whose queue is the one `benches/fleet-bench.yaml` asks for.
pub fn seed_plan() -> Plan {
    PlanBuilder::new()
        .role(Role::Cluster)
        .cluster("cluster-03")
        .receiver_url("http://127.0.0.1:8428/api/v1/write")
        .remote_timeout_ms(30_000)
        .write_relabel(&[Rule::new(RelabelAction::Drop)
            .sources(&["__name__"])
            .regex(DROP_REGEX)])
        .queue(Queue {
            capacity: 10_000,
            min_shards: 1,
            max_shards: 4,
            max_samples_per_send: 10_000,
            batch_send_deadline_ms: 10_000,
            min_backoff_ms: 30,
            max_backoff_ms: 5_000,
            max_batch_bytes: 4 << 20,
            max_sample_age_ms: 2 * 3_600_000,
        })
        .wal_bounds(1 << 30, 16 << 20)
        .self_scrape(30_000, "")
        .budget(Budget {
            cpu_request_millis: 200,
            cpu_limit_millis: 500,
            memory_request_bytes: 256 << 20,
            memory_limit_bytes: 256 << 20,
        })
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_have_five_to_eight_labels_and_unique_identities() {
        let series = ksm_series(50_000);
        assert_eq!(series.len(), 50_000);
        assert!(series.iter().all(|s| (5..=8).contains(&s.labels.len())));
        let mut seen = std::collections::HashSet::new();
        for s in &series {
            assert!(
                seen.insert((s.name, s.labels.clone())),
                "duplicate series {}",
                s.name
            );
        }
    }

    #[test]
    fn body_has_one_line_per_sample_and_values_move() {
        let series = ksm_series(1000);
        let a = ksm_body(&series, 1);
        let b = ksm_body(&series, 2);
        let samples = |body: &str| body.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(samples(&a), body_samples(1000));
        assert_ne!(a, b);
        assert_eq!(full_label_sets(&series).len(), body_samples(1000) - 1);
    }

    #[test]
    fn seed_plan_is_valid() {
        seed_plan().validate().unwrap();
    }
}
