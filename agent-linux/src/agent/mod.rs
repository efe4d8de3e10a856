//! The event loop: one mio `Poll`, one thread for all data work. Host
//! names are resolved on a second, lookup-only thread ([`resolver`])
//! because getaddrinfo blocks.
//!
//! Everything the agent does is a reaction to a socket event or a deadline:
//! scrape timers per target, request timeouts, the batch send deadline, the
//! sender's backoff, WAL fsync intervals. Each turn computes the earliest
//! deadline, polls until then, and works whatever became ready. Deadlines
//! follow the monotonic [`Clock::now_ms`]; the wall clock is read only to
//! stamp scrapes (see [`crate::clock`]).
//!
//! Data path: scrape body -> [`TargetPipeline`] -> [`Batcher`] -> at the
//! end of the scrape, one record per shard -> [`DiskWal::append`] -> fed to
//! the [`Sender`] as its window has room -> the sender groups a shard's
//! records into a run -> their payloads read back from the WAL and joined
//! into one body -> POST on the shard's connection -> response -> ack ->
//! WAL segments below the ack floor deleted. Replay after a restart is the
//! same path: the WAL lists the unsent records and the sender takes them as
//! its window allows.
//!
//! The parts: [`scraping`] (targets and their scrapes), [`discovery`]
//! (Kubernetes discovery: watch connections, and the targets they add and
//! retire), [`shipping`] (WAL, sender, receiver connections), [`resolver`]
//! and [`endpoint`] (where to connect), [`secrets`] (credential files), [`signals`], [`status`] (the
//! status pages) and [`targets_api`] (`/api/v1/targets`), [`reload`]
//! (SIGHUP), [`token`] (what a mio event is about), [`start_error`] (why a
//! start failed).
//!
//! [`TargetPipeline`]: outpost_core::pipeline::TargetPipeline
//! [`Batcher`]: outpost_core::pipeline::Batcher
//! [`DiskWal::append`]: crate::wal::DiskWal::append
//! [`Sender`]: outpost_core::queue::Sender

mod discovery;
mod endpoint;
mod plan_compare;
mod reload;
mod resolver;
mod scraping;
mod secrets;
mod shipping;
mod signals;
mod start_error;
mod status;
mod targets_api;
mod token;

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use mio::{Events, Poll};
use outpost_core::plan::{self, Plan};

use crate::cli::RunArgs;
use crate::clock::Clock;
use crate::log;
use crate::net::{HttpServer, ServerLimits};
use discovery::Discovering;
use resolver::ResolverThread;
pub use resolver::{system_resolve, Resolution, ResolveFn};
use scraping::{ScrapeIo, Scraping};
use shipping::{Shipping, ACK_FLOOR_PERSIST_MS, IN_FLIGHT_GRACE_MS};
use signals::Signals;
pub use start_error::StartError;
use status::{RuntimeInfo, SelfMetrics, StatusView, STATUS_PAGE_BYTES};
use token::{Token, STATUS_CONNS};

/// Longest sleep of the loop: the ack floor is persisted about this often.
const MAX_SLEEP_MS: u64 = ACK_FLOOR_PERSIST_MS;
/// The sender re-evaluates its desired count every 10 s; checking more often
/// only shortens the lag between its decision and the switch (the check
/// itself is two integer compares when nothing changed).
const RESHARD_CHECK_MS: u64 = 1_000;

/// Reads and validates a plan file; the error names the file.
pub fn load_plan(path: &Path) -> Result<Plan, String> {
    let bytes = fs::read(path).map_err(|e| format!("plan {}: {e}", path.display()))?;
    let plan = plan::decode(&bytes).map_err(|e| format!("plan {}: {e}", path.display()))?;
    // Target relabeling runs on discovered targets only: refusing the plan
    // beats scraping static targets other than the spec asked for.
    if let Some(job) = plan
        .scrape_jobs
        .iter()
        .find(|j| !j.targeting.relabel.is_empty() && !j.targets.is_empty())
    {
        return Err(format!(
            "plan {}: job {} relabels its static targets, which this agent does not run yet (target relabeling applies to discovered targets)",
            path.display(),
            plan.str(job.name)
        ));
    }
    Ok(plan)
}

/// Why the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM or SIGINT.
    Signal(libc::c_int),
    /// `epoll_wait` failed with something other than EINTR.
    PollFailed,
}

pub struct Agent {
    args: RunArgs,
    poll: Poll,
    signals: Signals,
    server: HttpServer,
    plan: Plan,
    scraping: Scraping,
    discovering: Discovering,
    ship: Shipping,
    info: RuntimeInfo,
    ready: bool,
    /// SIGHUP came while scrapes were in flight: no scrape starts, and the
    /// plan is reloaded once those have ended.
    reload_waiting: bool,
    last_reshard_check_ms: u64,
    resolver: ResolverThread,
    resolution: Resolution,
    clock: Clock,
    events: Events,
    self_metrics: SelfMetrics,
}

impl Agent {
    /// Loads everything the plan describes: WAL (scanned, not loaded),
    /// targets, status server. Errors name the plan field or the file.
    pub fn start(args: RunArgs, plan: Plan) -> Result<Agent, StartError> {
        Self::start_with(args, plan, Resolution::default())
    }

    /// [`Agent::start`] with a chosen name resolution (tests move names).
    pub fn start_with(args: RunArgs, plan: Plan, resolution: Resolution) -> Result<Agent, StartError> {
        Self::start_with_clock(args, plan, resolution, Clock::system())
    }

    /// [`Agent::start_with`] on a chosen clock (tests step its wall clock).
    pub fn start_with_clock(
        args: RunArgs,
        plan: Plan,
        resolution: Resolution,
        clock: Clock,
    ) -> Result<Agent, StartError> {
        let now = clock.now_ms();
        let wall = clock.wall_ms().max(0) as u64;
        let setup = |what| move |err| StartError::Setup { what, err };
        let poll = Poll::new().map_err(setup("create poll"))?;
        let signals = Signals::install(poll.registry()).map_err(setup("install signal handlers"))?;
        let resolver = ResolverThread::spawn(poll.registry(), resolution.resolve.clone())
            .map_err(setup("start the resolver thread"))?;
        let ship = Shipping::open(&plan, &args)?;
        let scraping = Scraping::build(&plan, &args, ship.sender.shards(), now).map_err(StartError::Plan)?;
        let discovering = Discovering::build(&plan, &args).map_err(StartError::Plan)?;
        let server = HttpServer::bind(
            args.listen,
            poll.registry(),
            Token::Listener.into(),
            mio::Token::from(Token::StatusConn(0)).0,
            ServerLimits {
                max_conns: STATUS_CONNS,
                response_bytes: STATUS_PAGE_BYTES,
                ..ServerLimits::default()
            },
        )
        .map_err(|err| StartError::Listen {
            addr: args.listen,
            err,
        })?;
        let info = RuntimeInfo {
            start_time_ms: wall,
            cwd: std::env::current_dir()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            reload_config_success: true,
            last_config_time_ms: wall,
            corruption_count: ship.wal.counters.corruptions,
            wal_dir: ship.wal.dir().display().to_string(),
            wal_max_bytes: plan.wal.max_bytes,
        };
        log::info(
            "outpost started",
            &[
                ("version", &env!("CARGO_PKG_VERSION")),
                ("plan", &args.plan.display()),
                ("role", &plan.agent.role.as_str()),
                ("targets", &scraping.targets.len()),
                ("receiver", &ship.side.url),
                ("wal_dir", &ship.wal.dir().display()),
                ("wal_replay_records", &ship.wal.counters.replayed_records),
                ("wal_replay_samples", &ship.wal.counters.replayed_samples),
                ("listen", &args.listen),
            ],
        );
        Ok(Agent {
            args,
            poll,
            signals,
            server,
            plan,
            scraping,
            discovering,
            ship,
            info,
            ready: false,
            reload_waiting: false,
            last_reshard_check_ms: now,
            resolver,
            resolution,
            clock,
            events: Events::with_capacity(256),
            self_metrics: SelfMetrics::new(),
        })
    }

    pub fn listen_addr(&self) -> io::Result<SocketAddr> {
        self.server.local_addr()
    }

    /// Runs until SIGTERM/SIGINT; returns the process exit code.
    pub fn run(mut self) -> i32 {
        loop {
            match self.turn() {
                None => {}
                Some(Stop::Signal(signal)) => return self.shutdown(signal),
                Some(Stop::PollFailed) => return 1,
            }
        }
    }

    /// Runs loop turns for `duration` of the agent's monotonic clock.
    /// Returns early, without shutting down, if SIGTERM/SIGINT came in or
    /// polling failed: the caller decides. Lets a test or an embedder drive
    /// the same loop `run` drives, a bounded stretch at a time.
    pub fn run_for(&mut self, duration: Duration) -> Option<Stop> {
        let until_ms = self.clock.now_ms() + duration.as_millis() as u64;
        while self.clock.now_ms() < until_ms {
            if let Some(signal) = self.turn() {
                return Some(signal);
            }
        }
        None
    }

    /// Flushes and exits as on SIGTERM; for callers of [`Agent::run_for`].
    pub fn stop(self) -> i32 {
        self.shutdown(libc::SIGTERM)
    }

    /// One loop turn: work due deadlines, wait for events (at most
    /// [`MAX_SLEEP_MS`]), handle them. Returns why the loop must end, if it must.
    fn turn(&mut self) -> Option<Stop> {
        let now = self.clock.now_ms();
        if !self.ready {
            // The WAL was scanned in `start`; what it holds goes to the sender now.
            self.ship.feed(now);
            self.ready = true;
        }
        self.ship.now_ms = now;
        self.ship.wall_ms = self.clock.wall_ms();
        self.tick(now);
        let timeout = self
            .next_deadline()
            .map(|d| d.saturating_sub(self.clock.now_ms()).min(MAX_SLEEP_MS));
        let timeout = Duration::from_millis(timeout.unwrap_or(MAX_SLEEP_MS));
        if let Err(e) = self.poll.poll(&mut self.events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                log::error("poll failed", &[("err", &e)]);
                return Some(Stop::PollFailed);
            }
        }
        let now = self.clock.now_ms();
        self.ship.now_ms = now;
        self.ship.wall_ms = self.clock.wall_ms();
        // Taken out so the handlers may borrow `self`; an empty `Events` has
        // no heap buffer, so the swap allocates nothing.
        let events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        for event in events.iter() {
            self.handle_event(event.token(), now);
        }
        self.events = events;
        let asked = self.signals.take();
        // A reload replaces the scrape side and closes its connections: it
        // waits for the scrapes in flight (each ends by its timeout at the
        // latest), so no answer a target has served is thrown away.
        self.reload_waiting |= asked.reload;
        if self.reload_waiting && !self.scraping.in_flight() {
            self.reload_waiting = false;
            self.reload(now);
        }
        asked.stop.map(Stop::Signal)
    }

    fn handle_event(&mut self, raw: mio::Token, now: u64) {
        let registry = self.poll.registry();
        match Token::from(raw) {
            Token::Signals => self.signals.receive(),
            Token::Resolver => self.take_answers(now),
            Token::Listener | Token::StatusConn(_) => {
                let mut view = StatusView {
                    ship: &self.ship,
                    scraping: &self.scraping,
                    discovering: &self.discovering,
                    info: &self.info,
                    procfs: &self.args.procfs,
                    node_name: &self.args.node_name,
                    ready: self.ready,
                    self_metrics: &mut self.self_metrics,
                };
                self.server.handle_event(registry, raw, now, &mut view);
            }
            Token::Shard(shard) => self.ship.handle_shard_event(registry, shard, now),
            Token::Target(i) => {
                let (scraping, mut io) = self.scraping_and_io();
                scraping.handle_event(i, now, &mut io);
            }
            Token::Watch(i) => self.discovering.handle_event(registry, i, now),
        }
    }

    /// The scrape side and what its scrapes need, borrowed apart.
    fn scraping_and_io(&mut self) -> (&mut Scraping, ScrapeIo<'_>) {
        let io = ScrapeIo {
            registry: self.poll.registry(),
            ship: &mut self.ship,
            clock: &self.clock,
            self_metrics: &mut self.self_metrics,
            procfs: &self.args.procfs,
            max_sample_age_ms: self.plan.queue.max_sample_age_ms,
            discovering: &self.discovering,
        };
        (&mut self.scraping, io)
    }

    /// Hands each lookup answer to every name it is for (a host shared by
    /// the receiver and targets is asked once per refresh each, answered to
    /// all).
    fn take_answers(&mut self, now: u64) {
        let refresh = self.resolution.refresh_ms;
        while let Some(answer) = self.resolver.try_answer() {
            self.ship
                .side
                .endpoint
                .name
                .apply(&answer, now, refresh, "receiver");
            self.scraping.take_answer(&answer, now, refresh);
            self.discovering.take_answer(&answer, now, refresh);
        }
    }

    /// Works every deadline that has passed.
    fn tick(&mut self, now: u64) {
        let registry = self.poll.registry();
        self.server.handle_timeout(registry, now);
        self.ship.side.endpoint.name.ask_if_due(now, &self.resolver);
        self.scraping.ask_names_if_due(now, &self.resolver);
        self.discovering.ask_names_if_due(now, &self.resolver);
        self.discovering.tick(registry, now);
        if !self.reload_waiting {
            // Discovered targets come and go between scrapes' turns; a
            // reload waiting for its scrapes to end takes what was found.
            let wall = self.clock.wall_ms();
            self.discovering.apply(
                &self.plan,
                &mut self.scraping,
                registry,
                &mut self.ship,
                wall,
                now,
            );
        }
        let starting = !self.reload_waiting;
        let (scraping, mut io) = self.scraping_and_io();
        scraping.tick(now, starting, &mut io);
        let registry = self.poll.registry();
        self.ship.handle_timeouts(registry, now);
        self.maybe_reshard(now);
        let registry = self.poll.registry();
        self.ship.rebuild_when_drained(registry, now);
        self.ship.settle(now);
        self.ship.feed(now);
        // One clock for deadlines and for sample age until the clocks split.
        let wall = self.ship.wall_ms;
        self.ship.transmit(registry, now, wall);
    }

    fn maybe_reshard(&mut self, now: u64) {
        if now < self.last_reshard_check_ms + RESHARD_CHECK_MS || self.ship.rebuild_pending() {
            return;
        }
        self.last_reshard_check_ms = now;
        let sender = &mut self.ship.sender;
        if sender.desired_shards() == sender.shards() {
            return;
        }
        // Between loop turns no batch is open (every scrape closed its own),
        // so the next record is the first of the new layout.
        if let Some(n) = self.ship.sender.poll_reshard(self.ship.wal.next_seq()) {
            log::info("resharding", &[("shards", &n)]);
            self.scraping
                .batcher
                .set_shards(n, &self.plan.queue, &mut self.ship);
        }
    }

    fn next_deadline(&mut self) -> Option<u64> {
        [
            self.scraping.next_deadline(!self.reload_waiting),
            self.discovering.next_deadline(),
            self.ship.next_deadline(),
            self.server.deadline_ms(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// SIGTERM/SIGINT: a short grace period lets sends in flight finish;
    /// then what spill mode still holds unacknowledged is written, the WAL
    /// is synced, and whatever is unsent stays in it for the next start (in
    /// `append` mode every completed scrape is in the WAL already). A
    /// scrape still in progress is abandoned, as Prometheus abandons it.
    fn shutdown(mut self, signal: libc::c_int) -> i32 {
        let start = self.clock.now_ms();
        self.discovering.close(self.poll.registry());
        self.ship.now_ms = start;
        self.ship.wal.sync(start);
        let mut events = Events::with_capacity(64);
        while self.ship.in_flight() > 0 && self.clock.now_ms() < start + IN_FLIGHT_GRACE_MS {
            let _ = self.poll.poll(&mut events, Some(Duration::from_millis(100)));
            let now = self.clock.now_ms();
            self.ship.wall_ms = self.clock.wall_ms();
            for event in events.iter() {
                if let Token::Shard(shard) = Token::from(event.token()) {
                    self.ship.handle_shard_event(self.poll.registry(), shard, now);
                }
            }
        }
        if let Some(floor) = self.ship.sender.ack_floor() {
            self.ship.wal.ack(floor);
        }
        let now = self.clock.now_ms();
        self.ship.spill_for_shutdown(now);
        self.ship.wal.sync(now);
        self.ship.wal.persist_ack_floor();
        log::info(
            "outpost stopped",
            &[
                ("signal", &signal),
                (
                    "unsent_records_in_wal",
                    &(self.ship.wal.next_seq() - self.ship.wal.ack_floor()),
                ),
                (
                    "succeeded_samples",
                    &self.ship.sender.counters.succeeded_samples_total,
                ),
            ],
        );
        0
    }
}
