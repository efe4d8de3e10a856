//! Changes the running agent picks up without a restart.
//!
//! Names: the receiver and a target are given by host name; the agent runs
//! in this process with an injected resolver (no /etc/hosts edits) that
//! first points the names at listeners on 127.0.0.1 and then at listeners on
//! 127.0.0.2. The agent must move to the new addresses on its periodic
//! re-resolution, with every lookup made on the resolver thread.

mod in_process;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use in_process::run_args;
use outpost_agent::agent::{Agent, Resolution};
use outpost_agent::log;
use std::time::Duration;

use outpost_core::plan::{Plan, Queue};
use outpost_test_support::{
    assert_each_scrape_once_in_order, free_port, log_text, outpost, wait_for, write_plan, CountingTarget,
    PlanBuilder, Signal, SlowReceiver, QUEUE,
};

fn body_a(n: u64) -> String {
    format!("# TYPE from_a counter\nfrom_a {n}\n")
}

fn body_b(n: u64) -> String {
    format!("# TYPE from_b counter\nfrom_b {n}\n")
}

#[test]
fn a_moved_name_is_followed_without_restart_and_resolved_off_the_loop() {
    let dir = tempfile::tempdir().unwrap();
    let receiver_a = SlowReceiver::start_on("127.0.0.1:0", 0);
    let receiver_b = SlowReceiver::start_on("127.0.0.2:0", 0);
    let target_a = CountingTarget::start_on("127.0.0.1:0", body_a);
    let target_b = CountingTarget::start_on("127.0.0.2:0", body_b);

    let answers: Arc<Mutex<HashMap<String, SocketAddr>>> = Arc::new(Mutex::new(HashMap::from([
        ("receiver.test".to_string(), receiver_a.local),
        ("app.test".to_string(), target_a.local),
    ])));
    let lookups = Arc::new(AtomicU64::new(0));
    let off_loop = Arc::new(AtomicU64::new(0));
    let resolution = {
        let (answers, lookups, off_loop) = (answers.clone(), lookups.clone(), off_loop.clone());
        Resolution {
            resolve: Arc::new(move |host: &str, _port: u16| {
                lookups.fetch_add(1, Ordering::SeqCst);
                if std::thread::current().name() == Some("outpost-dns") {
                    off_loop.fetch_add(1, Ordering::SeqCst);
                }
                answers
                    .lock()
                    .unwrap()
                    .get(host)
                    .copied()
                    .ok_or_else(|| format!("{host}: no such name"))
            }),
            refresh_ms: 1_000,
        }
    };

    let plan = PlanBuilder::new()
        .receiver_url("http://receiver.test:9999/api/v1/write")
        .external_labels(&[("cluster", "dns")])
        .wal_dir(&dir.path().join("wal"))
        .scrape_job("testapp", &["app.test:9100".to_string()])
        .build();
    let plan_path = write_plan(dir.path(), "plan.bin", &plan);
    log::init(log::Format::Logfmt, log::Level::Info);
    let mut agent = Agent::start_with(
        run_args(plan_path, "dns-node", log::Level::Info),
        plan,
        resolution,
    )
    .expect("agent starts");

    assert!(agent.run_for(Duration::from_millis(3_000)).is_none());
    assert!(
        target_a.served() >= 2,
        "target A scraped {} times",
        target_a.served()
    );
    assert!(
        receiver_a.count() >= 2,
        "receiver A got {} posts",
        receiver_a.count()
    );
    assert_eq!((target_b.served(), receiver_b.count()), (0, 0));
    assert!(
        !receiver_a.values_of("from_a").is_empty(),
        "target A's samples reached receiver A"
    );

    // Both names move; nothing fails, so only the periodic refresh can notice.
    {
        let mut a = answers.lock().unwrap();
        a.insert("receiver.test".to_string(), receiver_b.local);
        a.insert("app.test".to_string(), target_b.local);
    }
    assert!(agent.run_for(Duration::from_millis(3_000)).is_none());
    let (a_posts, a_scrapes) = (receiver_a.count(), target_a.served());
    assert!(agent.run_for(Duration::from_millis(2_000)).is_none());
    assert!(
        target_b.served() >= 2,
        "target B scraped {} times",
        target_b.served()
    );
    assert!(
        receiver_b.count() >= 2,
        "receiver B got {} posts",
        receiver_b.count()
    );
    assert!(
        !receiver_b.values_of("from_b").is_empty(),
        "target B's samples reached receiver B"
    );
    assert_eq!(
        receiver_a.count(),
        a_posts,
        "posts still going to the old receiver address"
    );
    assert_eq!(
        target_a.served(),
        a_scrapes,
        "scrapes still going to the old target address"
    );
    assert_eq!(agent.stop(), 0);

    let (total, on_thread) = (lookups.load(Ordering::SeqCst), off_loop.load(Ordering::SeqCst));
    assert!(total >= 4, "only {total} lookups in 8 s with a 1 s refresh");
    assert_eq!(on_thread, total, "a lookup ran outside the resolver thread");
}

/// With a refresh far in the future, only a failed connection can make the
/// agent ask again: the old receiver and target go away, and the agent
/// finds the names' new addresses at the next attempt.
#[test]
fn a_failed_connection_re_resolves_its_name_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let receiver_a = SlowReceiver::start_on("127.0.0.1:0", 0);
    let receiver_b = SlowReceiver::start_on("127.0.0.2:0", 0);
    let target_a = CountingTarget::start_on("127.0.0.1:0", body_a);
    let target_b = CountingTarget::start_on("127.0.0.2:0", body_b);
    let answers: Arc<Mutex<HashMap<String, SocketAddr>>> = Arc::new(Mutex::new(HashMap::from([
        ("receiver.test".to_string(), receiver_a.local),
        ("app.test".to_string(), target_a.local),
    ])));
    let resolution = {
        let answers = answers.clone();
        Resolution {
            resolve: Arc::new(move |host: &str, _port: u16| {
                answers
                    .lock()
                    .unwrap()
                    .get(host)
                    .copied()
                    .ok_or_else(|| format!("{host}: no such name"))
            }),
            refresh_ms: 600_000,
        }
    };
    let plan = PlanBuilder::new()
        .receiver_url("http://receiver.test:9999/api/v1/write")
        .external_labels(&[("cluster", "dns")])
        .wal_dir(&dir.path().join("wal"))
        .scrape_job("testapp", &["app.test:9100".to_string()])
        .build();
    let plan_path = write_plan(dir.path(), "plan.bin", &plan);
    let mut agent = Agent::start_with(
        run_args(plan_path, "dns-node", log::Level::Info),
        plan,
        resolution,
    )
    .expect("agent starts");
    assert!(agent.run_for(Duration::from_millis(2_500)).is_none());
    assert!(receiver_a.count() >= 1 && target_a.served() >= 1);
    {
        let mut a = answers.lock().unwrap();
        a.insert("receiver.test".to_string(), receiver_b.local);
        a.insert("app.test".to_string(), target_b.local);
    }
    assert!(agent.run_for(Duration::from_millis(2_000)).is_none());
    assert_eq!(
        (receiver_b.count(), target_b.served()),
        (0, 0),
        "moved before any failure: the refresh is not what this test is about"
    );
    drop(receiver_a);
    drop(target_a);
    assert!(agent.run_for(Duration::from_millis(4_000)).is_none());
    assert!(target_b.served() >= 1, "target B never scraped after A went away");
    assert!(
        !receiver_b.values_of("from_b").is_empty(),
        "target B's samples never reached receiver B after A went away"
    );
    assert_eq!(agent.stop(), 0);
}

const SERIES: usize = 50;

fn counted_body(n: u64) -> String {
    let mut out = String::from("# TYPE rl_scrape counter\n");
    for i in 0..SERIES {
        out.push_str(&format!("rl_scrape{{series=\"s{i}\"}} {n}\n"));
    }
    out
}

/// [`counted_body`], answered 300 ms after the scrape was counted.
fn slow_counted_body(n: u64) -> String {
    std::thread::sleep(Duration::from_millis(300));
    counted_body(n)
}

/// SIGHUP with a plan whose receiver (URL, tenant header) and queue changed:
/// the agent drains what is in flight to the old receiver, then sends
/// everything else to the new one. Every scrape's samples arrive exactly
/// once over the two receivers, in order per series.
#[test]
fn reload_switches_receiver_and_queue_without_losing_or_repeating_samples() {
    let dir = tempfile::tempdir().unwrap();
    // Slow enough that a send is usually in flight when the SIGHUP lands.
    let receiver_a = SlowReceiver::start(300);
    let receiver_b = SlowReceiver::start(20);
    let target = CountingTarget::start(counted_body);
    let wal = dir.path().join("wal");
    let plan_a = PlanBuilder::new()
        .receiver_url(&receiver_a.url())
        .external_labels(&[("cluster", "rl")])
        .wal_dir(&wal)
        .scrape_job("testapp", &[target.address()])
        .build();
    let plan_path = write_plan(dir.path(), "plan.bin", &plan_a);
    let port = free_port();
    let log_path = dir.path().join("outpost.log");
    let agent = outpost!().start(&plan_path, port, "reload-node", &log_path);

    wait_for("3 scrapes at receiver A", Duration::from_secs(15), || {
        let v = receiver_a.values_of("rl_scrape");
        (v.len() == SERIES && v.values().all(|v| v.len() >= 3)).then_some(())
    });

    // The tenant header's strings come first in plan B's table: every other
    // id differs from plan A's, the WAL directory's too (which is the same).
    let plan_b = PlanBuilder::new()
        .tenant_header("THANOS-TENANT", "team-b")
        .receiver_url(&receiver_b.url())
        .queue(Queue {
            max_shards: 3,
            max_samples_per_send: 40,
            ..QUEUE
        })
        .external_labels(&[("cluster", "rl")])
        .wal_dir(&wal)
        .scrape_job("testapp", &[target.address()])
        .build();
    assert_ne!(plan_b.wal.dir, plan_a.wal.dir);
    write_plan(dir.path(), "plan.bin", &plan_b);
    agent.signal(Signal::HUP);

    wait_for("the rebuild log line", Duration::from_secs(10), || {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        log.contains("msg=\"reload: remote write rebuilt\"").then_some(())
    });
    wait_for("3 scrapes at receiver B", Duration::from_secs(15), || {
        let v = receiver_b.values_of("rl_scrape");
        (v.len() == SERIES && v.values().all(|v| v.len() >= 3)).then_some(())
    });
    let a_posts = receiver_a.count();
    let served = target.served();
    let merged = || {
        let mut all = receiver_a.values_of("rl_scrape");
        for (key, values) in receiver_b.values_of("rl_scrape") {
            all.entry(key).or_default().extend(values);
        }
        all
    };
    wait_for("every served scrape", Duration::from_secs(15), || {
        merged().values().all(|v| v.len() as u64 >= served).then_some(())
    });
    let least = assert_each_scrape_once_in_order(&merged(), SERIES);
    assert!(least >= served);
    assert_eq!(receiver_a.count(), a_posts, "the old receiver still gets posts");
    let tenants: Vec<_> = receiver_b.tenant_headers();
    assert!(
        !tenants.is_empty() && tenants.iter().all(|t| t.as_deref() == Some("team-b")),
        "receiver B saw tenant headers {tenants:?}"
    );
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("msg=\"plan reloaded\""), "{log}");
    assert!(!log.contains("restart required"), "{log}");
    assert!(log.contains("abandoned_in_flight=0"), "{log}");
}

/// How often the agent's log says `msg`.
fn log_count(log_path: &std::path::Path, msg: &str) -> usize {
    log_text(log_path).matches(&format!("msg=\"{msg}\"")).count()
}

/// SIGHUP with plans that say the same in a string table of another order
/// (every id differs): nothing is reported as needing a restart and the
/// sending side is not rebuilt. A plan that moves the WAL directory is
/// reported and the running WAL kept; the plan the agent then holds names
/// the running directory, so a later reload back to the first plan is
/// quiet again. Each SIGHUP lands while a scrape is in flight: the reload
/// waits for it, and every served scrape arrives once.
#[test]
fn reload_compares_plans_by_their_strings_not_their_string_ids() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = SlowReceiver::start(0);
    let target = CountingTarget::start(slow_counted_body);
    let (wal, moved_wal) = (dir.path().join("wal"), dir.path().join("moved-wal"));
    let plan = |strings_first: &[&str], wal: &std::path::Path| -> Plan {
        PlanBuilder::new()
            .strings_first(strings_first)
            .receiver_url(&receiver.url())
            .tenant_header("THANOS-TENANT", "team-a")
            .external_labels(&[("cluster", "rl")])
            .wal_dir(wal)
            .scrape_job("testapp", &[target.address()])
            // The target's 300 ms is well within the timeout on a starved machine.
            .job_timing(1_000, 1_000)
            .build()
    };
    let plan_a = plan(&[], &wal);
    let wal_str = wal.display().to_string();
    let reordered = plan(&[&wal_str, &receiver.url(), "team-a", "testapp"], &wal);
    assert_ne!(
        (&reordered.wal, &reordered.receiver),
        (&plan_a.wal, &plan_a.receiver)
    );
    assert_ne!(reordered.strings, plan_a.strings);
    let moved = plan(&["THANOS-TENANT"], &moved_wal);

    let plan_path = write_plan(dir.path(), "plan.bin", &plan_a);
    let port = free_port();
    let log_path = dir.path().join("outpost.log");
    let agent = outpost!().start(&plan_path, port, "reload-node", &log_path);
    wait_for("2 scrapes at the receiver", Duration::from_secs(15), || {
        let v = receiver.values_of("rl_scrape");
        (v.len() == SERIES && v.values().all(|v| v.len() >= 2)).then_some(())
    });

    let reload = |plan: &Plan, reloads: usize| {
        write_plan(dir.path(), "plan.bin", plan);
        // The target has counted a scrape and takes 300 ms to answer it.
        let served = target.served();
        wait_for("a scrape in flight", Duration::from_secs(5), || {
            (target.served() > served).then_some(())
        });
        agent.signal(Signal::HUP);
        wait_for("the reload", Duration::from_secs(10), || {
            (log_count(&log_path, "plan reloaded") == reloads).then_some(())
        });
    };
    let restarts = || {
        log_count(
            &log_path,
            "reload: wal settings (dir, max_bytes, segment_bytes, fsync, mode) are NOT applied; restart required",
        )
    };
    let rebuilds = || log_count(&log_path, "reload: remote write rebuilt");
    reload(&reordered, 1);
    assert_eq!((restarts(), rebuilds()), (0, 0), "{}", log_text(&log_path));
    reload(&moved, 2);
    assert_eq!((restarts(), rebuilds()), (1, 0), "{}", log_text(&log_path));
    reload(&plan_a, 3);
    assert_eq!((restarts(), rebuilds()), (1, 0), "{}", log_text(&log_path));

    // Scrapes go on into the running WAL and on to the one receiver.
    let served = target.served();
    wait_for("every served scrape", Duration::from_secs(15), || {
        let v = receiver.values_of("rl_scrape");
        v.values().all(|v| v.len() as u64 >= served + 2).then_some(())
    });
    assert_each_scrape_once_in_order(&receiver.values_of("rl_scrape"), SERIES);
    assert!(!moved_wal.exists(), "a WAL was opened in the moved directory");
    let tenants = receiver.tenant_headers();
    assert!(
        tenants.iter().all(|t| t.as_deref() == Some("team-a")),
        "{tenants:?}"
    );
}
