//! `apply` allocates nothing once warm: a counting global allocator watches
//! a second pass of a realistic rule set over 50,000 KSM-like series.
//! Also reports rough throughput (meaningful only with `--release`).

use outpost_core::labels::LabelSet;
use outpost_core::plan::RelabelAction as A;
use outpost_core::relabel::RelabelProgram;
use outpost_test_support::relabel::{self, Rule};
use outpost_test_support::{count_allocations, CountingAllocator};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const SERIES: usize = 50_000;

/// kube-state-metrics-shaped series: 5 to 8 labels, a few Go runtime series.
fn ksm_series() -> Vec<Vec<(String, String)>> {
    let metrics = [
        "kube_pod_status_phase",
        "kube_pod_container_status_restarts_total",
        "kube_pod_container_resource_requests",
        "kube_deployment_status_replicas",
        "kube_pod_labels",
        "go_gc_duration_seconds",
        "go_memstats_alloc_bytes",
        "kube_node_status_condition",
    ];
    (0..SERIES)
        .map(|i| {
            let metric = metrics[i % metrics.len()];
            let ns = format!("team-{}", i % 40);
            let pod = format!("api-{:x}-{:05x}", i % 997, i);
            let mut l = vec![
                ("__name__".to_string(), metric.to_string()),
                ("namespace".to_string(), ns),
                ("pod".to_string(), pod),
                (
                    "uid".to_string(),
                    format!(
                        "{:08x}-1f2e-4d3c-9b8a-{:012x}",
                        (i as u64 * 2_654_435_761) % (1 << 31),
                        i
                    ),
                ),
                ("instance".to_string(), "10.0.0.12:8080".to_string()),
                ("job".to_string(), "kube-state-metrics".to_string()),
            ];
            if i % 3 == 0 {
                l.push(("container".to_string(), format!("c{}", i % 5)));
            }
            if i % 4 == 0 {
                l.push(("label_app_kubernetes_io_name".to_string(), "API".to_string()));
            }
            l
        })
        .collect()
}

fn mixed_rules() -> Vec<Rule> {
    vec![
        Rule::new(A::Drop)
            .sources(&["__name__"])
            .regex("go_gc_.*|go_memstats_.*"),
        Rule::new(A::Replace).target("tenant").replacement("tenant-a"),
        Rule::new(A::Replace)
            .sources(&["pod"])
            .regex(r"(?P<workload>.+)-[0-9a-f]+-[0-9a-f]+")
            .target("workload")
            .replacement("$workload"),
        Rule::new(A::LabelDrop).regex("uid"),
        Rule::new(A::HashMod)
            .sources(&["namespace", "pod"])
            .modulus(16)
            .target("__tmp_shard"),
        Rule::new(A::LabelMap).regex("label_(.+)").replacement("$1"),
        Rule::new(A::Lowercase)
            .sources(&["app_kubernetes_io_name"])
            .target("app"),
        Rule::new(A::Keep).sources(&["namespace"]).regex(r"team-\d+"),
        Rule::new(A::LabelDrop).regex("__tmp_.*|label_.*"),
    ]
}

fn build(rules: &[Rule]) -> RelabelProgram {
    relabel::program(rules).unwrap()
}

/// One pass: load each series into the reused set and relabel it.
fn pass(p: &mut RelabelProgram, set: &mut LabelSet, series: &[Vec<(String, String)>]) -> (usize, usize) {
    let mut kept = 0;
    let mut labels_out = 0;
    for s in series {
        set.clear();
        for (n, v) in s {
            set.push(n, v).unwrap();
        }
        if p.apply(set) {
            kept += 1;
            labels_out += set.len();
        }
    }
    (kept, labels_out)
}

#[test]
fn apply_allocates_nothing_after_warm_up_and_reports_throughput() {
    let (_, deliberate) = count_allocations(|| Vec::<u8>::with_capacity(16));
    assert_eq!(deliberate, 1, "the counter sees this thread's allocations");
    let series = ksm_series();
    let mut set = LabelSet::with_capacity(relabel::MAX_LABELS, relabel::MAX_LABEL_BYTES);

    let mut mixed = build(&mixed_rules());
    let ((warm, _), warm_allocations) = count_allocations(|| pass(&mut mixed, &mut set, &series));
    let ((kept, labels_out), allocations) = count_allocations(|| pass(&mut mixed, &mut set, &series));
    assert_eq!(warm, kept);
    // 2 of the 8 metric names are Go runtime series.
    assert_eq!(kept, SERIES - SERIES / 8 * 2);
    assert!(
        labels_out > kept * 6,
        "tenant, workload and app labels were added"
    );
    assert_eq!(
        allocations, 0,
        "mixed rules allocated {allocations} times after warm-up"
    );
    assert_eq!(mixed.dropped_at_limit(), 0);
    // drop, labeldrop x2 take the literal path and the default `(.*)` none at all.
    assert_eq!(mixed.regex_count(), 3);
    eprintln!(
        "9-rule program after warm-up holds {} heap bytes",
        mixed.heap_bytes()
    );

    let mut drop = build(&[Rule::new(A::Drop)
        .sources(&["__name__"])
        .regex("go_gc_.*|go_memstats_.*")]);
    pass(&mut drop, &mut set, &series);
    let started = std::time::Instant::now();
    let ((kept, _), allocations) = count_allocations(|| pass(&mut drop, &mut set, &series));
    let drop_secs = started.elapsed().as_secs_f64();
    assert_eq!(allocations, 0);
    assert_eq!(kept, SERIES - SERIES / 8 * 2);

    let started = std::time::Instant::now();
    pass(&mut mixed, &mut set, &series);
    let mixed_secs = started.elapsed().as_secs_f64();

    // Per rule, to show where the time goes; the first line is loading only.
    let mut singles = vec![("(no rules: loading the set only)".to_string(), build(&[]))];
    for rule in mixed_rules() {
        singles.push((format!("{} {:?}", rule.action.name(), rule.regex), build(&[rule])));
    }
    for (what, p) in &mut singles {
        pass(p, &mut set, &series);
        let started = std::time::Instant::now();
        pass(p, &mut set, &series);
        eprintln!(
            "  {what}: {:.2} M series/s",
            SERIES as f64 / started.elapsed().as_secs_f64() / 1e6
        );
    }

    // Includes loading each series into the set, which a pipeline does anyway.
    eprintln!(
        "relabel throughput over {SERIES} KSM-like series: seed drop rule {:.2} M series/s, \
         9-rule mix {:.2} M series/s ({}); warm-up allocations {warm_allocations}",
        SERIES as f64 / drop_secs / 1e6,
        SERIES as f64 / mixed_secs / 1e6,
        if cfg!(debug_assertions) {
            "debug build, not representative"
        } else {
            "release build"
        }
    );
}
