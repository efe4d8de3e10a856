//! The per-target pipeline and the batcher through their public API: target
//! labels against scraped ones, staleness across scrapes, failures and
//! reloads, sample limits and relabel drops, read back with prost from the
//! batches the sink receives.

use outpost_test_support::{intern_rules, wire, PlanBuilder, Rule};

use outpost_core::error::ScrapeError;
use outpost_core::expfmt::ExpositionFormat;
use outpost_core::pipeline::{BatchSink, Batcher, ScrapeReport, TargetLabels, TargetPipeline};
use outpost_core::plan::{Limits, Plan, Queue, RelabelAction};
use outpost_core::remote_write::{BatchBuilder, STALE_NAN_BITS};
use prost::Message;

/// Decodes every closed batch into `labels-as-text -> (value bits, ts)`.
#[derive(Default)]
struct Collect(Vec<(String, u64, i64)>);

impl BatchSink for Collect {
    fn batch_closed(&mut self, _shard: u16, batch: &mut BatchBuilder) {
        let req = wire::WriteRequest::decode(batch.encoded()).unwrap();
        self.0.extend(wire::flatten(&req));
        batch.clear();
    }
}

impl Collect {
    fn value(&self, series: &str) -> Option<f64> {
        self.0
            .iter()
            .rev()
            .find(|(l, _, _)| l == series)
            .map(|(_, v, _)| f64::from_bits(*v))
    }
    fn stale(&self) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(_, v, _)| *v == STALE_NAN_BITS)
            .map(|(l, _, _)| l.as_str())
            .collect()
    }
}

struct Fixture {
    plan: Plan,
}

impl Fixture {
    fn new(write_relabel_drop: Option<&str>) -> Fixture {
        let write_relabel: Vec<Rule> = write_relabel_drop
            .map(|re| Rule::new(RelabelAction::Drop).sources(&["__name__"]).regex(re))
            .into_iter()
            .collect();
        let plan = PlanBuilder::new()
            .external_labels(&[("cluster", "c1"), ("team", "ext")])
            .write_relabel(&write_relabel)
            .queue(Queue {
                capacity: 100,
                min_shards: 1,
                max_shards: 1,
                max_samples_per_send: 1000,
                batch_send_deadline_ms: 100,
                min_backoff_ms: 10,
                max_backoff_ms: 100,
                max_batch_bytes: 64 * 1024,
                max_sample_age_ms: 0,
            })
            .build();
        Fixture { plan }
    }

    fn target(&self, honor_labels: bool, samples: u32) -> TargetPipeline {
        let limits = Limits {
            body_bytes: 64 * 1024,
            samples,
            label_count: 16,
            label_name_bytes: 64,
            label_value_bytes: 256,
        };
        let labels = TargetLabels {
            job: "app".into(),
            instance: "h:1".into(),
            extra: vec![("team".into(), "core".into())],
            honor_labels,
        };
        TargetPipeline::new(&self.plan, labels, limits, &[]).unwrap()
    }

    fn batcher(&self) -> Batcher {
        Batcher::new(&self.plan, 1, 32, 4096).unwrap()
    }
}

fn scrape(
    t: &mut TargetPipeline,
    b: &mut Batcher,
    sink: &mut Collect,
    body: &str,
    ts: i64,
) -> Result<ScrapeReport, ScrapeError> {
    t.begin(ExpositionFormat::PrometheusText, ts);
    if let Err(e) = t.handle_chunk(body.as_bytes(), b) {
        // As the agent does: a body error fails the scrape (up 0, stale markers).
        t.fail(ts, 0.25, b, sink);
        b.close_all(sink);
        return Err(e);
    }
    // finish() turns late errors into a failed scrape itself.
    let result = t.finish(0.25, b, sink);
    b.close_all(sink);
    result
}

const UP: &str = "__name__=up,cluster=c1,instance=h:1,job=app,team=core";

#[test]
fn target_labels_win_and_scraped_ones_are_exported() {
    let f = Fixture::new(None);
    let (mut t, mut b, mut sink) = (f.target(false, 100), f.batcher(), Collect::default());
    let report = scrape(
        &mut t,
        &mut b,
        &mut sink,
        "m{job=\"x\",team=\"y\",a=\"1\"} 7\n",
        1000,
    )
    .unwrap();
    assert_eq!(report.samples_scraped, 1);
    assert_eq!(
        sink.value("__name__=m,a=1,cluster=c1,exported_job=x,exported_team=y,instance=h:1,job=app,team=core"),
        Some(7.0)
    );
    assert_eq!(sink.value(UP), Some(1.0));

    let (mut t, mut b, mut sink) = (f.target(true, 100), f.batcher(), Collect::default());
    scrape(&mut t, &mut b, &mut sink, "m{job=\"x\",a=\"1\"} 7\n", 1000).unwrap();
    // honor_labels: the scraped job stays; external labels never override a series' own.
    assert_eq!(
        sink.value("__name__=m,a=1,cluster=c1,instance=h:1,job=x,team=core"),
        Some(7.0)
    );
}

#[test]
fn vanished_series_and_failed_scrapes_get_stale_markers() {
    let f = Fixture::new(None);
    let (mut t, mut b, mut sink) = (f.target(false, 100), f.batcher(), Collect::default());
    scrape(&mut t, &mut b, &mut sink, "a 1\nb 2\n", 1000).unwrap();
    assert!(sink.stale().is_empty());
    let report = scrape(&mut t, &mut b, &mut sink, "a 1\nc 3\n", 2000).unwrap();
    assert_eq!(report.series_added, 1);
    assert_eq!(
        sink.stale(),
        vec!["__name__=b,cluster=c1,instance=h:1,job=app,team=core"]
    );
    assert_eq!(
        sink.value("__name__=scrape_series_added,cluster=c1,instance=h:1,job=app,team=core"),
        Some(1.0)
    );

    sink.0.clear();
    assert!(scrape(&mut t, &mut b, &mut sink, "a 1\nthis is not exposition\n", 3000).is_err());
    let mut stale = sink.stale();
    stale.sort();
    assert_eq!(
        stale,
        vec![
            "__name__=a,cluster=c1,instance=h:1,job=app,team=core",
            "__name__=c,cluster=c1,instance=h:1,job=app,team=core"
        ]
    );
    assert_eq!(sink.value(UP), Some(0.0));
    // Nothing of the failed body was committed.
    assert!(sink
        .0
        .iter()
        .all(|(l, v, _)| !l.starts_with("__name__=a,") || *v == STALE_NAN_BITS));
}

#[test]
fn staleness_survives_a_reload_and_retired_targets_go_stale() {
    let f = Fixture::new(None);
    let (mut old, mut b, mut sink) = (f.target(false, 100), f.batcher(), Collect::default());
    scrape(&mut old, &mut b, &mut sink, "a 1\nb 2\n", 1000).unwrap();
    let mut new = f.target(false, 100);
    // A reload builds a new batcher, whose series pool takes the adopted table.
    let mut reloaded = f.batcher();
    assert!(new.adopt_series(&mut old, &b, &mut reloaded));
    assert_eq!(reloaded.series_pool.bytes(), new.series_reserved().1);
    assert!(new.series_reserved().1 > 0);
    let mut b = reloaded;
    sink.0.clear();
    let report = scrape(&mut new, &mut b, &mut sink, "a 1\n", 2000).unwrap();
    assert_eq!(report.series_added, 0);
    assert_eq!(
        sink.stale(),
        vec!["__name__=b,cluster=c1,instance=h:1,job=app,team=core"]
    );

    sink.0.clear();
    new.retire(3000, &mut b, &mut sink);
    b.close_all(&mut sink);
    // A retired target gives its table's room back to the pool.
    assert_eq!((b.series_pool.series(), b.series_pool.bytes()), (0, 0));
    let mut stale = sink.stale();
    stale.sort();
    assert_eq!(stale.len(), 6, "{stale:?}");
    assert!(stale.contains(&"__name__=a,cluster=c1,instance=h:1,job=app,team=core"));
    assert!(stale.contains(&UP));
}

#[test]
fn a_failure_before_any_body_carries_the_scrape_timestamp() {
    let f = Fixture::new(None);
    let (mut t, mut b, mut sink) = (f.target(false, 100), f.batcher(), Collect::default());
    scrape(&mut t, &mut b, &mut sink, "a 1\n", 1000).unwrap();
    sink.0.clear();
    // Connection refused: no begin(), no body.
    t.fail(5000, 0.001, &mut b, &mut sink);
    b.close_all(&mut sink);
    assert_eq!(sink.value(UP), Some(0.0));
    assert!(sink.0.iter().all(|(_, _, ts)| *ts == 5000), "{:?}", sink.0);
    assert_eq!(
        sink.stale(),
        vec!["__name__=a,cluster=c1,instance=h:1,job=app,team=core"]
    );
}

#[test]
fn sample_limit_fails_the_whole_scrape() {
    let f = Fixture::new(None);
    let (mut t, mut b, mut sink) = (f.target(false, 2), f.batcher(), Collect::default());
    let err = scrape(&mut t, &mut b, &mut sink, "a 1\nb 2\nc 3\n", 1000).unwrap_err();
    assert_eq!(err, ScrapeError::SampleLimit { limit: 2 });
    assert_eq!(sink.value(UP), Some(0.0));
    assert_eq!(
        sink.value("__name__=a,cluster=c1,instance=h:1,job=app,team=core"),
        None
    );
}

#[test]
fn write_relabel_drops_after_external_labels() {
    let f = Fixture::new(Some("go_gc_.*|go_memstats_.*"));
    let (mut t, mut b, mut sink) = (f.target(false, 100), f.batcher(), Collect::default());
    scrape(
        &mut t,
        &mut b,
        &mut sink,
        "go_gc_duration_seconds 1\ngo_goroutines 5\n",
        1000,
    )
    .unwrap();
    assert_eq!(
        sink.value("__name__=go_goroutines,cluster=c1,instance=h:1,job=app,team=core"),
        Some(5.0)
    );
    assert!(sink.0.iter().all(|(l, _, _)| !l.contains("go_gc_")));
    assert_eq!(b.counters.dropped_write_relabel, 1);
    // The synthetic series carry the scrape's timestamp.
    assert!(sink.0.iter().all(|(_, _, ts)| *ts == 1000));
}

#[test]
fn a_series_exposed_differently_is_the_same_series() {
    let f = Fixture::new(None);
    let (mut t, mut b, mut sink) = (f.target(false, 100), f.batcher(), Collect::default());
    scrape(&mut t, &mut b, &mut sink, "m{a=\"1\",b=\"2\"} 1\n", 1000).unwrap();
    sink.0.clear();
    // Label order and an empty label change the exposition, not the series.
    let report = scrape(&mut t, &mut b, &mut sink, "m{b=\"2\",a=\"1\",c=\"\"} 2\n", 2000).unwrap();
    assert_eq!((report.series_added, report.duplicates), (0, 0));
    assert!(sink.stale().is_empty(), "{:?}", sink.stale());
    let series = "__name__=m,a=1,b=2,cluster=c1,instance=h:1,job=app,team=core";
    assert_eq!(sink.value(series), Some(2.0));
    // The same series twice in one body: the first value is kept, the second counted.
    sink.0.clear();
    let report = scrape(
        &mut t,
        &mut b,
        &mut sink,
        "m{a=\"1\",b=\"2\"} 3\nm{b=\"2\",a=\"1\"} 4\n",
        3000,
    )
    .unwrap();
    assert_eq!((report.samples_post_relabel, report.duplicates), (1, 1));
    assert_eq!(sink.0.iter().filter(|(l, _, _)| l == series).count(), 1);
    assert_eq!(sink.value(series), Some(3.0));
    assert_eq!(t.live_series(), 1);
}

#[test]
fn metric_relabel_drops_are_remembered_and_never_sent_or_staled() {
    let mut f = Fixture::new(None);
    let rules = intern_rules(
        &mut f.plan,
        &[Rule::new(RelabelAction::Drop)
            .sources(&["__name__"])
            .regex("drop_me.*")],
    );
    let limits = *f.target(false, 100).limits();
    let labels = f.target(false, 100).target;
    let mut t = TargetPipeline::new(&f.plan, labels, limits, &rules).unwrap();
    let (mut b, mut sink) = (f.batcher(), Collect::default());
    for (i, body) in ["drop_me_a 1\nkeep 1\n", "drop_me_a 2\nkeep 2\n", "keep 3\n"]
        .iter()
        .enumerate()
    {
        let report = scrape(&mut t, &mut b, &mut sink, body, 1000 * (i as i64 + 1)).unwrap();
        assert_eq!(report.samples_post_relabel, 1);
    }
    assert!(sink.0.iter().all(|(l, _, _)| !l.contains("drop_me")));
    assert!(sink.stale().is_empty());
    assert_eq!(t.live_series(), 1);
}

#[test]
fn an_abandoned_scrape_stages_nothing() {
    let f = Fixture::new(None);
    let (mut t, mut b, mut sink) = (f.target(false, 100), f.batcher(), Collect::default());
    scrape(&mut t, &mut b, &mut sink, "a 1\n", 1000).unwrap();
    t.begin(ExpositionFormat::PrometheusText, 2000);
    t.handle_chunk(b"a 5\nnew 1\n", &mut b).unwrap();
    // No finish or fail (the reload replaced the connection): the next scrape starts clean.
    sink.0.clear();
    let report = scrape(&mut t, &mut b, &mut sink, "a 2\n", 3000).unwrap();
    assert_eq!((report.series_added, report.duplicates), (0, 0));
    assert_eq!(
        sink.value("__name__=a,cluster=c1,instance=h:1,job=app,team=core"),
        Some(2.0)
    );
    assert!(sink.0.iter().all(|(l, _, _)| !l.starts_with("__name__=new")));
    assert!(sink.stale().is_empty());
}

#[test]
fn a_reload_that_changes_external_labels_does_not_adopt() {
    let f = Fixture::new(None);
    let (mut old, b, mut sink) = (f.target(false, 100), f.batcher(), Collect::default());
    let mut b = b;
    scrape(&mut old, &mut b, &mut sink, "a 1\n", 1000).unwrap();
    let mut other = Fixture::new(None);
    let c1 = other.plan.strings.iter().position(|s| s == "c1").unwrap();
    other.plan.strings[c1] = "c2".into();
    let mut b2 = other.batcher();
    let mut new = other.target(false, 100);
    assert!(!new.adopt_series(&mut old, &b, &mut b2));
    assert_eq!(b2.series_pool.bytes(), 0);
    let mut same = f.batcher();
    assert!(new.adopt_series(&mut old, &b, &mut same));
}

/// A target that flips the label order of every series on every scrape
/// re-keys all of them each time; the slots they leave behind must never
/// fill the index (a lookup in a full open-addressing table never ends).
/// 128 series fill the smallest index exactly half, the worst case.
#[test]
fn a_target_that_reorders_every_label_every_scrape_never_fills_the_index() {
    let f = Fixture::new(None);
    let (mut t, mut b, mut sink) = (f.target(false, 1000), f.batcher(), Collect::default());
    let body = |flip: bool, value: u32, extra: bool| {
        let mut text = String::new();
        for i in 0..128 {
            let line = if flip {
                format!("m{{b=\"{i}\",a=\"x\"}} {value}\n")
            } else {
                format!("m{{a=\"x\",b=\"{i}\"}} {value}\n")
            };
            text.push_str(&line);
        }
        if extra {
            text.push_str("new_series 1\n");
        }
        text
    };
    scrape(&mut t, &mut b, &mut sink, &body(false, 0, false), 1000).unwrap();
    for round in 1..=6u32 {
        sink.0.clear();
        let extra = round == 6;
        let report = scrape(
            &mut t,
            &mut b,
            &mut sink,
            &body(round % 2 == 1, round, extra),
            1000 + 1000 * i64::from(round),
        )
        .unwrap();
        assert_eq!(report.series_added, u64::from(extra), "round {round}");
        assert_eq!(report.samples_post_relabel, 128 + u64::from(extra));
        assert!(sink.stale().is_empty(), "round {round}: {:?}", sink.stale());
        assert_eq!(
            sink.value("__name__=m,a=x,b=77,cluster=c1,instance=h:1,job=app,team=core"),
            Some(f64::from(round))
        );
    }
    assert_eq!(t.live_series(), 129);
}

/// `max_sample_age` is judged at the scrape's wall time, sample by sample:
/// exactly as old is kept, a millisecond more is refused; the refused ones
/// count in `scrape_samples_post_metric_relabeling` and towards
/// `sample_limit`, as Prometheus counts out-of-bounds appends; a scrape
/// abandoned halfway leaves the table as it was; age 0 keeps everything.
#[test]
fn samples_older_than_max_sample_age_are_refused_one_by_one() {
    const T: i64 = 1_700_000_000_000;
    let mut f = Fixture::new(None);
    f.plan.queue.max_sample_age_ms = 600_000;
    let (mut t, mut b, mut sink) = (f.target(false, 3), f.batcher(), Collect::default());
    let body = format!("edge {} {}\nover 2 {}\nfresh 3\n", 1, T - 600_000, T - 600_001);
    let report = scrape(&mut t, &mut b, &mut sink, &body, T).unwrap();
    assert_eq!(report.too_old, 1);
    assert_eq!((report.samples_scraped, report.samples_post_relabel), (3, 3));
    assert_eq!(report.series_added, 2, "the refused series is not kept");
    let series = |name: &str| format!("__name__={name},cluster=c1,instance=h:1,job=app,team=core");
    assert_eq!(sink.value(&series("edge")), Some(1.0));
    assert_eq!(sink.value(&series("fresh")), Some(3.0));
    assert_eq!(sink.value(&series("over")), None);
    assert_eq!(
        sink.value(&series("scrape_samples_post_metric_relabeling")),
        Some(3.0)
    );

    // Four samples against a limit of three: the refused one counts too.
    sink.0.clear();
    let body = format!("edge 1\nover 2 {}\nfresh 3\nnew 4\n", T - 700_000);
    let err = scrape(&mut t, &mut b, &mut sink, &body, T + 1_000).unwrap_err();
    assert_eq!(err, ScrapeError::SampleLimit { limit: 3 });

    // A scrape abandoned after refusing `fresh` leaves it known: the next
    // one does not count it as added.
    t.begin(ExpositionFormat::PrometheusText, T + 2_000);
    t.handle_chunk(format!("fresh 3 {}\n", T - 900_000).as_bytes(), &mut b)
        .unwrap();
    sink.0.clear();
    let report = scrape(&mut t, &mut b, &mut sink, "fresh 5\n", T + 3_000).unwrap();
    assert_eq!((report.series_added, report.too_old), (0, 0));
    assert_eq!(sink.value(&series("fresh")), Some(5.0));

    let f = Fixture::new(None);
    let (mut t, mut b, mut sink) = (f.target(false, 3), f.batcher(), Collect::default());
    let report = scrape(&mut t, &mut b, &mut sink, "ancient 1 1000\n", T).unwrap();
    assert_eq!(report.too_old, 0, "max_sample_age 0 keeps every sample");
    assert_eq!(sink.value(&series("ancient")), Some(1.0));
}
