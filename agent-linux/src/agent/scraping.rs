//! The scrape side: targets built from the plan, each scraped on its
//! schedule (over HTTP, from the node collectors, or from the agent's own
//! `/metrics`), its body fed through its [`TargetPipeline`] into the
//! [`Batcher`], whose records go to the WAL when the scrape ends. Rebuilt
//! whole on reload (see [`super::reload`]); discovered targets come and go
//! one by one ([`Scraping::add_discovered`], [`Scraping::retire_target`],
//! driven by [`super::discovery`]).

use std::collections::VecDeque;
use std::fmt::Display;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use mio::Registry;
use outpost_core::discovery::targets::MAX_TARGET_LABEL_BYTES;
use outpost_core::error::ScrapeError;
use outpost_core::expfmt::ExpositionFormat;
use outpost_core::pipeline::{
    job_labels, Batcher, ScrapeScratch, ScratchNeeds, TargetLabels, TargetPipeline,
};
use outpost_core::plan::{self, Plan, Scheme};
use outpost_core::sizing::{DISCOVERED_TARGET_LABELS, DISCOVERED_TARGET_LABEL_BYTES, INFLATE_OUT_BYTES};
use rustls::ClientConfig;

use super::discovery::Discovered;
use super::endpoint::{fill_node_vars, split_host_port, tls_config};
use super::resolver::{Answer, Name, ResolverThread};
use super::secrets::Authorization;
use super::shipping::Shipping;
use super::status::{SelfMetrics, TargetStats};
use super::targets_api::ActiveTarget;
use super::token::Token;
use crate::cli::RunArgs;
use crate::clock::Clock;
use crate::collectors::{NodeCollector, Paths};
use crate::log;
use crate::net::{
    BodyLimits, ConnBuffers, Failure, GzipState, HttpClientConn, Progress, Request, ResponseHead,
};

const SCRAPE_ACCEPT: &[u8] =
    b"application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1";
/// A target refusing samples as too old is logged at most this often.
const TOO_OLD_LOG_EVERY_MS: u64 = 600_000;
/// A scrape whose name has not had its first answer yet looks again this
/// much later.
const FIRST_ANSWER_POLL_MS: u64 = 50;

/// What it takes to (re)build a target's connection when its name resolves
/// or moves.
struct Dial {
    name: Name,
    tls: Option<Arc<ClientConfig>>,
    server_name: String,
    token: mio::Token,
    bufs: ConnBuffers,
    /// The address `conn` was built for; `None` while unresolved.
    conn_addr: Option<SocketAddr>,
}

struct HttpTarget {
    conn: HttpClientConn,
    dial: Dial,
    scheme: Scheme,
    /// `X-Prometheus-Scrape-Timeout-Seconds`, rendered once.
    timeout_header: String,
    authority: String,
    path: String,
    timeout_ms: u64,
    bearer: Option<Authorization>,
    limits: BodyLimits,
}

enum Source {
    /// The node collectors; their page is on the status server at
    /// [`NODE_PAGE`] of `address` (`NODE_NAME:PORT`).
    Node {
        address: String,
    },
    SelfScrape,
    Http(Box<HttpTarget>),
}

/// One scrape slot: what a scrape works in, lent to a target for the
/// scrape and taken back at its end. Its gzip state goes to the target's
/// connection (in-process scrapes leave it in the slot).
struct Slot {
    scratch: ScrapeScratch,
    gzip: GzipState,
}

/// The status page that serves the node collectors' text.
pub(super) const NODE_PAGE: &str = "/metrics/node";

pub(super) struct Target {
    pub pipeline: TargetPipeline,
    source: Source,
    interval_ms: u64,
    next_at_ms: u64,
    /// Monotonic start of the scrape in progress.
    started_ms: Option<u64>,
    /// Its wall-clock time: the timestamp of its samples.
    started_wall_ms: i64,
    begun: bool,
    /// The scrape slot lent to the scrape in progress.
    slot: Option<usize>,
    /// Due, and waiting in [`Scraping::waiting`] for a free slot.
    waiting: bool,
    pub stats: TargetStats,
    /// When samples refused as too old were last logged, and how many
    /// were refused since.
    pub too_old_logged_ms: Option<u64>,
    pub too_old_unlogged: u64,
    /// Where discovery found it; `None` for the plan's own targets.
    pub discovered: Option<Box<Discovered>>,
}

/// What running a scrape needs from the rest of the agent.
pub(super) struct ScrapeIo<'a> {
    pub registry: &'a Registry,
    /// Where finished scrapes go.
    pub ship: &'a mut Shipping,
    pub clock: &'a Clock,
    /// The self-scrape renders the agent's `/metrics` page here.
    pub self_metrics: &'a mut SelfMetrics,
    pub procfs: &'a Path,
    /// `queue.max_sample_age`, named when samples are refused as too old.
    pub max_sample_age_ms: u64,
    /// Its counters are on the self-scrape's page.
    pub discovering: &'a super::discovery::Discovering,
}

/// Everything built from the scrape side of a plan; replaced on reload.
pub(super) struct Scraping {
    pub targets: Vec<Target>,
    pub batcher: Batcher,
    /// `scrape_concurrency` scrape slots, each sized for every target; a
    /// scrape borrows one from its start to its end.
    slots: Vec<Slot>,
    /// Slots not lent.
    free_slots: Vec<usize>,
    /// Targets due but without a slot, first come first served; each waits
    /// at most its scrape timeout, then that scrape is skipped (counted).
    waiting: VecDeque<usize>,
    node: Option<NodeCollector>,
    /// The node collectors' text, parsed like a scrape body.
    node_body: String,
}

impl Scraping {
    pub(super) fn build(plan: &Plan, args: &RunArgs, shards: u16, now: u64) -> Result<Scraping, String> {
        let mut targets = Vec::new();
        let mut max_labels = 0usize;
        let mut max_label_bytes = 0usize;
        let mut grow = |l: &plan::Limits, t: &TargetLabels| {
            max_labels = max_labels.max(l.max_labels() + 2 + t.extra.len());
            let bytes = l.series_label_bytes();
            max_label_bytes = max_label_bytes.max(bytes + t.job.len() + t.instance.len() + 64);
        };
        let (mut discovered_labels, mut discovered_bytes) = (0, 0);
        let mut node = None;
        if let Some(n) = &plan.node {
            let labels = TargetLabels {
                job: plan.str(n.job).to_string(),
                instance: args.node_name.clone(),
                extra: Vec::new(),
                honor_labels: false,
            };
            grow(&n.limits, &labels);
            targets.push(Target::new(
                TargetPipeline::new(plan, labels, n.limits, &n.metric_relabel)?,
                Source::Node {
                    address: agent_address(args),
                },
                n.interval_ms,
            ));
            let paths = Paths {
                procfs: args.procfs.clone(),
                sysfs: args.sysfs.clone(),
                rootfs: args.rootfs.clone(),
            };
            node = Some(NodeCollector::from_plan(paths, plan, n)?);
        }
        for job in &plan.scrape_jobs {
            if job.targeting.discovery.is_some() {
                // A discovered target's labels are bounded by the core (a
                // label takes at least two bytes); the batcher is sized for
                // the largest it may bring.
                discovered_labels =
                    discovered_labels.max(job.limits.max_labels() + 2 + MAX_TARGET_LABEL_BYTES / 2);
                discovered_bytes =
                    discovered_bytes.max(job.limits.series_label_bytes() + MAX_TARGET_LABEL_BYTES + 64);
            }
            let tls = match job.scheme {
                Scheme::Https => {
                    tls_config(plan, &job.tls).map_err(|e| format!("job {}: {e}", plan.str(job.name)))?
                }
                Scheme::Http => None,
            };
            for target in &job.targets {
                let instance = fill_node_vars(plan.str(*target), args);
                let labels = job_labels(plan, job, &instance);
                grow(&job.limits, &labels);
                let http = HttpTarget::build(plan, job, &tls, instance, targets.len())
                    .map_err(|e| format!("job {} target {e}", labels.job))?;
                targets.push(Target::new(
                    TargetPipeline::new(plan, labels, job.limits, &job.metric_relabel)?,
                    Source::Http(Box::new(http)),
                    job.interval_ms,
                ));
            }
        }
        let self_labels = TargetLabels {
            job: plan.str(plan.self_scrape.job).to_string(),
            instance: agent_address(args),
            extra: Vec::new(),
            honor_labels: false,
        };
        grow(&plan::SELF_SCRAPE_LIMITS, &self_labels);
        targets.push(Target::new(
            TargetPipeline::new(plan, self_labels, plan::SELF_SCRAPE_LIMITS, &[])?,
            Source::SelfScrape,
            plan.self_scrape.interval_ms,
        ));
        // The targets scrape in shared slots (each target gave up its own
        // buffers as it was built): sized for the largest needs, allocated
        // once here.
        let mut needs = targets
            .iter()
            .map(|t| t.pipeline.scratch_needs())
            .reduce(|a, b| a.max(b))
            .expect("the self-scrape is a target");
        // Targets discovery finds later scrape in the same slots: sized for
        // the widest labels the core lets a discovered target keep.
        for job in plan
            .scrape_jobs
            .iter()
            .filter(|j| j.targeting.discovery.is_some())
        {
            let (bytes, pairs) = (DISCOVERED_TARGET_LABEL_BYTES, DISCOVERED_TARGET_LABELS);
            let name = plan.str(job.name);
            needs = needs.max(ScratchNeeds::for_job(
                plan,
                name,
                job.limits,
                &job.metric_relabel,
                pairs,
                bytes,
            )?);
        }
        let concurrency = usize::from(plan.sharing_bounds().scrape_concurrency.max(1));
        let slots: Vec<Slot> = (0..concurrency)
            .map(|_| Slot {
                scratch: ScrapeScratch::new(&needs),
                gzip: GzipState::new(INFLATE_OUT_BYTES),
            })
            .collect();
        // Spread first scrapes over each interval so targets do not all
        // fire in the same millisecond.
        let n = targets.len() as u64;
        for (i, t) in targets.iter_mut().enumerate() {
            t.next_at_ms = now + t.interval_ms * i as u64 / n.max(1) / 4;
        }
        Ok(Scraping {
            batcher: Batcher::new(
                plan,
                shards,
                max_labels.max(discovered_labels),
                max_label_bytes.max(discovered_bytes),
            )?,
            free_slots: (0..slots.len()).rev().collect(),
            slots,
            waiting: VecDeque::with_capacity(targets.len()),
            targets,
            node,
            node_body: String::with_capacity(256 * 1024),
        })
    }

    /// The node collectors' text of their last scrape, as collected (before
    /// the node section's `metric_relabel`); `None` without node collectors.
    pub(super) fn node_page(&self) -> Option<&str> {
        self.node.as_ref().map(|_| self.node_body.as_str())
    }

    pub(super) fn close(&mut self, registry: &Registry) {
        for t in &mut self.targets {
            if let Source::Http(h) = &mut t.source {
                h.conn.close(registry);
            }
        }
    }

    fn names(&mut self) -> impl Iterator<Item = &mut Name> {
        self.targets.iter_mut().filter_map(|t| match &mut t.source {
            Source::Http(h) => Some(&mut h.dial.name),
            _ => None,
        })
    }

    /// Sends the targets' names that are due to the resolver thread.
    pub(super) fn ask_names_if_due(&mut self, now: u64, resolver: &ResolverThread) {
        for name in self.names() {
            name.ask_if_due(now, resolver);
        }
    }

    /// Hands a lookup answer to every target whose name it is.
    pub(super) fn take_answer(&mut self, answer: &Answer, now: u64, refresh_ms: u64) {
        for name in self.names() {
            name.apply(answer, now, refresh_ms, "target");
        }
    }

    /// Works the targets' deadlines: requests that timed out, and, when
    /// `starting`, scrapes due.
    pub(super) fn tick(&mut self, now: u64, starting: bool, io: &mut ScrapeIo<'_>) {
        for i in 0..self.targets.len() {
            let timed_out = match &self.targets[i].source {
                Source::Http(h) => h.conn.deadline_ms().is_some_and(|d| now >= d),
                _ => false,
            };
            if timed_out {
                self.handle_event(i, now, io);
            }
            let t = &mut self.targets[i];
            if starting && t.started_ms.is_none() && !t.waiting && now >= t.next_at_ms {
                t.waiting = true;
                t.stats.waiting = true;
                self.waiting.push_back(i);
            }
        }
        self.serve_waiting(now, starting, io);
    }

    /// Lends free slots to the waiting targets in order, and skips the
    /// scrapes that waited past their timeout.
    fn serve_waiting(&mut self, now: u64, starting: bool, io: &mut ScrapeIo<'_>) {
        let targets = &mut self.targets;
        let slots = self.slots.len();
        self.waiting.retain(|&i| {
            let t = &mut targets[i];
            if now < t.next_at_ms + t.timeout_ms() {
                return true;
            }
            t.skipped(now, slots);
            false
        });
        while starting && !self.free_slots.is_empty() {
            let Some(i) = self.waiting.pop_front() else {
                break;
            };
            let t = &mut self.targets[i];
            t.waiting = false;
            t.stats.waiting = false;
            self.start_scrape(i, now, io);
        }
    }

    /// Lends a free slot to target `i`'s scrape.
    fn take_slot(&mut self, i: usize) {
        let t = &mut self.targets[i];
        if t.slot.is_none() {
            if let Some(k) = self.free_slots.pop() {
                t.swap_slot(&mut self.slots[k]);
                t.slot = Some(k);
            }
        }
    }

    /// Takes back the slot target `i`'s scrape held.
    fn give_slot_back(&mut self, i: usize) {
        let t = &mut self.targets[i];
        if let Some(k) = t.slot.take() {
            t.swap_slot(&mut self.slots[k]);
            self.free_slots.push(k);
        }
    }

    /// The earliest moment a target needs the loop: its request's deadline
    /// while it scrapes, otherwise its next scrape when `starting`.
    pub(super) fn next_deadline(&self, starting: bool) -> Option<u64> {
        self.targets
            .iter()
            .filter_map(|t| match (&t.source, t.started_ms) {
                (Source::Http(h), Some(_)) => h.conn.deadline_ms(),
                // A waiting target needs the loop when a slot frees (at once,
                // if one is free) or when it has waited its timeout.
                _ if t.waiting && starting && !self.free_slots.is_empty() => Some(0),
                _ if t.waiting => Some(t.next_at_ms + t.timeout_ms()),
                _ => starting.then_some(t.next_at_ms),
            })
            .min()
    }

    /// Whether a target's scrape has started and not ended.
    pub(super) fn in_flight(&self) -> bool {
        self.targets.iter().any(|t| t.started_ms.is_some())
    }

    /// Starts scraping a target discovery found for `job`; its first scrape
    /// is due at once.
    pub(super) fn add_discovered(
        &mut self,
        plan: &Plan,
        job: &plan::ScrapeJob,
        tls: &Option<Arc<ClientConfig>>,
        found: Discovered,
        now: u64,
    ) -> Result<(), String> {
        let t = &found.target;
        let pipeline = TargetPipeline::new(plan, t.labels.clone(), job.limits, &job.metric_relabel)?;
        let mut http = HttpTarget::build(plan, job, tls, t.address.clone(), self.targets.len())
            .map_err(|e| format!("target {e}"))?;
        http.scheme = t.scheme;
        http.path = t.path.clone();
        http.timeout_ms = u64::from(t.timeout_ms);
        http.timeout_header = format!("{}", f64::from(t.timeout_ms) / 1000.0);
        let mut target = Target::new(pipeline, Source::Http(Box::new(http)), t.interval_ms);
        target.next_at_ms = now;
        target.discovered = Some(Box::new(found));
        self.targets.push(target);
        Ok(())
    }

    /// Stops scraping target `i` (discovery lost it): a scrape in progress
    /// is abandoned, and every series the target had gets a staleness
    /// marker stamped `wall_ms`, as a reload retires a removed target. The
    /// last target takes its place.
    pub(super) fn retire_target(&mut self, i: usize, wall_ms: i64, registry: &Registry, ship: &mut Shipping) {
        // Its slot goes back before it is dropped, and the queue forgets it
        // and follows the target that moves into its place.
        self.give_slot_back(i);
        let last = self.targets.len() - 1;
        self.waiting.retain(|&w| w != i);
        for w in &mut self.waiting {
            if *w == last {
                *w = i;
            }
        }
        let mut t = self.targets.swap_remove(i);
        if let Source::Http(h) = &mut t.source {
            h.conn.close(registry);
        }
        t.retire(wall_ms, &mut self.batcher, ship);
        self.batcher.close_all(ship);
        if let Some(Source::Http(h)) = self.targets.get_mut(i).map(|t| &mut t.source) {
            let token = Token::Target(i).into();
            h.conn.set_token(registry, token);
            h.dial.token = token;
        }
    }

    fn start_scrape(&mut self, i: usize, now: u64, io: &mut ScrapeIo<'_>) {
        let t = &mut self.targets[i];
        if let Source::Http(h) = &t.source {
            if h.dial.name.addr.is_none() && h.dial.name.awaiting_first_answer(now) {
                t.next_at_ms = now + FIRST_ANSWER_POLL_MS;
                return;
            }
        }
        // Keep the phase: the next scrape is one interval after this one was due.
        t.next_at_ms = (t.next_at_ms + t.interval_ms).max(now + 1);
        self.take_slot(i);
        let t = &mut self.targets[i];
        t.stats.scrapes += 1;
        t.begun = false;
        t.started_ms = Some(now);
        t.started_wall_ms = io.clock.wall_ms();
        let wall = t.started_wall_ms;
        match &mut t.source {
            Source::Http(h) => {
                if let Err((reason, msg)) = h.start_request(io.registry, now) {
                    self.scrape_failed(i, now, reason, &msg, io.ship);
                }
            }
            Source::Node { .. } => {
                t.pipeline.begin(ExpositionFormat::PrometheusText, wall);
                if let Some(node) = &mut self.node {
                    node.collect(&mut self.node_body);
                }
                let result = t
                    .pipeline
                    .handle_chunk(self.node_body.as_bytes(), &mut self.batcher);
                // In-process scrapes end after the work: their duration is real.
                self.finish_scrape(i, io.clock.now_ms(), result, io);
            }
            Source::SelfScrape => {
                let stats = self.targets.iter().map(|t| &t.stats);
                let pool = &self.batcher.series_pool;
                let text = io
                    .self_metrics
                    .render(io.ship, stats, io.discovering, pool, io.procfs);
                let t = &mut self.targets[i];
                t.pipeline.begin(ExpositionFormat::PrometheusText, wall);
                let result = t.pipeline.handle_chunk(text.as_bytes(), &mut self.batcher);
                self.finish_scrape(i, io.clock.now_ms(), result, io);
            }
        }
    }

    /// A socket event of target `i`'s connection, or its deadline: body
    /// bytes go into its pipeline as they arrive.
    pub(super) fn handle_event(&mut self, i: usize, now: u64, io: &mut ScrapeIo<'_>) {
        let batcher = &mut self.batcher;
        let Some(t) = self.targets.get_mut(i) else {
            return;
        };
        if t.started_ms.is_none() {
            return;
        }
        let started = t.started_wall_ms;
        let Target {
            pipeline,
            source,
            begun,
            ..
        } = t;
        let Source::Http(h) = source else {
            return;
        };
        let mut sink = |head: &ResponseHead, chunk: &[u8]| {
            if head.status != 200 {
                return Ok(());
            }
            if !*begun {
                pipeline.begin(ExpositionFormat::from_content_type(head.content_type()), started);
                *begun = true;
            }
            pipeline.handle_chunk(chunk, batcher)
        };
        let progress = h.conn.handle_event(io.registry, now, &mut sink);
        match progress {
            Progress::Pending => {}
            Progress::Done(head) if head.status == 200 => {
                if !t.begun {
                    t.pipeline
                        .begin(ExpositionFormat::from_content_type(head.content_type()), started);
                }
                self.finish_scrape(i, now, Ok(()), io);
            }
            Progress::Done(head) => {
                let msg = format_args!("server returned HTTP status {}", head.status);
                self.scrape_failed(i, now, "http_status", &msg, io.ship);
            }
            Progress::Failed(Failure::Net(e)) => self.scrape_failed(i, now, e.reason(), &e, io.ship),
            Progress::Failed(Failure::Sink(e)) => self.scrape_failed(i, now, e.reason(), &e, io.ship),
        }
    }

    /// The body is complete (or the in-process text was fed): commit it.
    fn finish_scrape(&mut self, i: usize, now: u64, fed: Result<(), ScrapeError>, io: &mut ScrapeIo<'_>) {
        if let Err(e) = fed {
            return self.scrape_failed(i, now, e.reason(), &e, io.ship);
        }
        let t = &mut self.targets[i];
        let duration = now.saturating_sub(t.started_ms.unwrap_or(now)) as f64 / 1000.0;
        t.started_ms = None;
        let committed = t.pipeline.finish(duration, &mut self.batcher, io.ship);
        self.give_slot_back(i);
        // The scrape is in the WAL before the next one of the target starts.
        self.batcher.close_all(io.ship);
        let t = &mut self.targets[i];
        match committed {
            Ok(report) => {
                t.stats.duplicate_samples += report.duplicates;
                if report.too_old > 0 {
                    t.stats.samples_too_old += report.too_old;
                    io.ship.count_too_old(report.too_old);
                    t.log_too_old(report.too_old, io.max_sample_age_ms, now);
                }
                if t.stats.up != Some(true) {
                    log::info(
                        "target up",
                        &[
                            ("job", &t.stats.job),
                            ("instance", &t.stats.instance),
                            ("samples", &report.samples_post_relabel),
                        ],
                    );
                }
                t.stats.succeeded(t.started_wall_ms, duration);
            }
            Err(e) => {
                let was_down = t.stats.up == Some(false);
                t.stats.failed(t.started_wall_ms, duration, e.reason(), &e);
                t.log_down(was_down, e.reason());
            }
        }
    }

    fn scrape_failed(
        &mut self,
        i: usize,
        now: u64,
        reason: &'static str,
        msg: &dyn Display,
        ship: &mut Shipping,
    ) {
        let t = &mut self.targets[i];
        if let Source::Http(h) = &mut t.source {
            if matches!(
                reason,
                "connect_failed" | "timeout" | "dns_failed" | "connection_closed"
            ) {
                h.dial.name.ask_soon(now);
            }
        }
        let duration = now.saturating_sub(t.started_ms.unwrap_or(now)) as f64 / 1000.0;
        t.started_ms = None;
        let was_down = t.stats.up == Some(false);
        t.stats.failed(t.started_wall_ms, duration, reason, msg);
        t.pipeline
            .fail(t.started_wall_ms, duration, &mut self.batcher, ship);
        self.give_slot_back(i);
        self.batcher.close_all(ship);
        self.targets[i].log_down(was_down, reason);
    }
}

impl HttpTarget {
    /// Target number `index` of `job`, at `instance` (`host:port`).
    /// Errors start with the instance.
    fn build(
        plan: &Plan,
        job: &plan::ScrapeJob,
        tls: &Option<Arc<ClientConfig>>,
        instance: String,
        index: usize,
    ) -> Result<HttpTarget, String> {
        let default_port = if job.scheme == Scheme::Https { 443 } else { 80 };
        let (host, port) =
            split_host_port(&instance, default_port).map_err(|e| format!("{instance}: {e}"))?;
        // A name is resolved off the loop; until it resolves the
        // target scrapes as down (`dns_failed`).
        let name = Name::new(&host, port);
        let addr = name.addr.unwrap_or(SocketAddr::from(([0, 0, 0, 0], port)));
        let server_name = job
            .tls
            .as_ref()
            .and_then(|t| t.server_name)
            .map(|s| plan.str(s).to_string())
            .unwrap_or_else(|| host.clone());
        let token = Token::Target(index).into();
        let bufs = ConnBuffers {
            read_bytes: 16 * 1024,
            head_bytes: 8 * 1024,
            request_bytes: 4 * 1024,
            // The gzip state is lent with a slot for each scrape.
            inflate_out_bytes: None,
        };
        let conn = HttpClientConn::new(addr, tls.clone(), &server_name, token, bufs)
            .map_err(|e| format!("{instance}: {e}"))?;
        Ok(HttpTarget {
            conn,
            scheme: job.scheme,
            dial: Dial {
                conn_addr: name.addr,
                name,
                tls: tls.clone(),
                server_name,
                token,
                bufs,
            },
            timeout_header: format!("{}", f64::from(job.timeout_ms) / 1000.0),
            authority: instance,
            path: plan.str(job.path).to_string(),
            timeout_ms: u64::from(job.timeout_ms),
            bearer: job.bearer_token_file.map(|f| Authorization::bearer(plan.str(f))),
            limits: BodyLimits {
                max_body_bytes: u64::from(job.limits.body_bytes),
                max_decoded_bytes: u64::from(job.limits.body_bytes),
            },
        })
    }

    /// Sends the scrape request, first reconnecting if the target's name
    /// moved. The error is the failure's reason and message.
    fn start_request(&mut self, registry: &Registry, now: u64) -> Result<(), (&'static str, String)> {
        let d = &mut self.dial;
        if d.name.addr != d.conn_addr {
            let Some(addr) = d.name.addr else {
                return Err(("dns_failed", format!("{} does not resolve (yet)", d.name.host)));
            };
            // The name moved (or resolved for the first time): the
            // next request connects to the new address.
            let mut conn = HttpClientConn::new(addr, d.tls.clone(), &d.server_name, d.token, d.bufs)
                .map_err(|e| ("dns_failed", e.to_string()))?;
            // The gzip state lent to this scrape moves to the new connection.
            let mut lent = GzipState::none();
            self.conn.swap_gzip(&mut lent);
            conn.swap_gzip(&mut lent);
            self.conn.close(registry);
            self.conn = conn;
            d.conn_addr = Some(addr);
        }
        let mut headers: [(&str, &[u8]); 3] = [
            ("Accept", SCRAPE_ACCEPT),
            (
                "X-Prometheus-Scrape-Timeout-Seconds",
                self.timeout_header.as_bytes(),
            ),
            ("", b""),
        ];
        let mut count = 2;
        if let Some(auth) = &mut self.bearer {
            headers[count] = ("Authorization", auth.header_value());
            count += 1;
        }
        let req = Request {
            method: "GET",
            path: &self.path,
            host: &self.authority,
            headers: &headers[..count],
            body: &[],
            accept_gzip: true,
            limits: self.limits,
            timeout_ms: self.timeout_ms,
        };
        self.conn
            .start_request(registry, &req, now)
            .map_err(|e| (e.reason(), e.to_string()))
    }
}

/// The agent's own address, `NODE_NAME:PORT`: the self-scrape's instance,
/// and where the in-process scrapes' pages are served.
fn agent_address(args: &RunArgs) -> String {
    format!("{}:{}", args.node_name, args.listen.port())
}

impl Target {
    /// Exchanges what the target holds with what `slot` holds: lends the
    /// slot, and (called again with the same slot) gives it back.
    fn swap_slot(&mut self, slot: &mut Slot) {
        self.pipeline.swap_scratch(&mut slot.scratch);
        if let Source::Http(h) = &mut self.source {
            h.conn.swap_gzip(&mut slot.gzip);
        }
    }

    /// What `/api/v1/targets` shows of this target.
    pub(super) fn active(&self) -> ActiveTarget<'_> {
        let labels = &self.pipeline.target;
        let (scheme, address, path, timeout_ms) = match &self.source {
            Source::Http(h) => {
                let scheme = match h.scheme {
                    Scheme::Http => "http",
                    Scheme::Https => "https",
                };
                (scheme, h.authority.as_str(), h.path.as_str(), h.timeout_ms)
            }
            // In-process: nothing but the interval bounds them.
            Source::Node { address } => ("http", address.as_str(), NODE_PAGE, self.interval_ms),
            Source::SelfScrape => ("http", labels.instance.as_str(), "/metrics", self.interval_ms),
        };
        ActiveTarget {
            labels,
            scheme,
            address,
            path,
            interval_ms: self.interval_ms,
            timeout_ms,
            stats: &self.stats,
            discovered: None,
        }
    }

    /// A target of `pipeline`, whose own scrape buffers are dropped at once
    /// (so that building many targets never holds more than one target's):
    /// it scrapes in a slot lent for each scrape.
    fn new(mut pipeline: TargetPipeline, source: Source, interval_ms: u32) -> Target {
        pipeline.drop_scratch();
        let stats = TargetStats {
            job: pipeline.target.job.clone(),
            instance: pipeline.target.instance.clone(),
            ..TargetStats::default()
        };
        Target {
            pipeline,
            source,
            interval_ms: u64::from(interval_ms.max(1)),
            next_at_ms: 0,
            started_ms: None,
            started_wall_ms: 0,
            begun: false,
            slot: None,
            waiting: false,
            stats,
            too_old_logged_ms: None,
            too_old_unlogged: 0,
            discovered: None,
        }
    }

    /// The target is no longer scraped: its series go stale (see
    /// [`TargetPipeline::retire`]).
    pub(super) fn retire(&mut self, wall_ms: i64, batcher: &mut Batcher, ship: &mut Shipping) {
        self.pipeline.retire(wall_ms, batcher, ship);
    }

    /// How long a due scrape may wait for a slot: its timeout (in-process
    /// scrapes: their interval).
    fn timeout_ms(&self) -> u64 {
        match &self.source {
            Source::Http(h) => h.timeout_ms,
            _ => self.interval_ms,
        }
    }

    /// The due scrape found no free slot within its timeout: it is skipped,
    /// counted and logged; the target's series are untouched and its next
    /// scrape is one interval later.
    fn skipped(&mut self, now: u64, slots: usize) {
        self.waiting = false;
        self.stats.waiting = false;
        self.stats.skipped_concurrency += 1;
        self.next_at_ms = (self.next_at_ms + self.interval_ms).max(now + 1);
        log::warn(
            "scrape skipped: no scrape slot freed within its timeout",
            &[
                ("job", &self.stats.job),
                ("instance", &self.stats.instance),
                ("reason", &"concurrency"),
                ("scrape_concurrency", &slots),
            ],
        );
    }

    /// Samples refused as too old are logged when a target first sends
    /// them, then at most every [`TOO_OLD_LOG_EVERY_MS`] with the count since.
    fn log_too_old(&mut self, refused: u64, max_age_ms: u64, now: u64) {
        self.too_old_unlogged += refused;
        if self
            .too_old_logged_ms
            .is_some_and(|at| now < at + TOO_OLD_LOG_EVERY_MS)
        {
            return;
        }
        log::warn(
            "samples with own timestamps older than queue.max_sample_age refused; the rest of the scrape is kept",
            &[
                ("job", &self.stats.job),
                ("instance", &self.stats.instance),
                ("refused", &self.too_old_unlogged),
                ("max_sample_age_seconds", &(max_age_ms / 1000)),
            ],
        );
        self.too_old_logged_ms = Some(now);
        self.too_old_unlogged = 0;
    }

    /// Logs the failure just recorded: a warning when the target was up or
    /// new, at debug level while it stays down.
    fn log_down(&self, was_down: bool, reason: &str) {
        let level = if was_down {
            log::Level::Debug
        } else {
            log::Level::Warn
        };
        log::event(
            level,
            "scrape failed",
            &[
                ("job", &self.stats.job),
                ("instance", &self.stats.instance),
                ("reason", &reason),
                ("err", &self.stats.last_error.as_str()),
            ],
        );
    }
}
