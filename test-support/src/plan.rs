//! Plans for tests. [`PlanBuilder`] makes the plan a test needs from a few
//! calls instead of a literal of every section, interning each string once as
//! `outpostc` does; what a test does not set keeps the defaults below, which
//! suit an agent run on loopback (1 s intervals, a small queue that sends
//! within 200 ms). [`PlanBuilder::build`] checks the result with
//! [`Plan::validate`], so a test never runs on a plan the agent would refuse.
//!
//! Golden and compiled plans are read and adjusted with [`golden_plan`],
//! [`intern`], [`to_loopback`] and [`write_plan`].

use std::path::{Path, PathBuf};

use outpost_core::plan::{
    self, Agent, Auth, Budget, Collector, Fsync, LabelPair, Limits, NodeCollectors, Plan, Queue, Receiver,
    RelabelRule, Role, Scheme, ScrapeJob, SelfScrape, Sharing, StrId, Tls, Wal, WalMode,
};

use crate::relabel::Rule;
use crate::repo::repo_path;

/// The builder's queue: one shard, batches sent within 200 ms, retries
/// backing off from 30 to 500 ms.
pub const QUEUE: Queue = Queue {
    capacity: 2_000,
    min_shards: 1,
    max_shards: 1,
    max_samples_per_send: 500,
    batch_send_deadline_ms: 200,
    min_backoff_ms: 30,
    max_backoff_ms: 500,
    max_batch_bytes: 256 * 1024,
    max_sample_age_ms: 3_600_000,
};

/// The builder's per-target limits, for node collectors and scrape jobs:
/// room for any exporter a test runs.
pub const LIMITS: Limits = Limits {
    body_bytes: 4 << 20,
    samples: 20_000,
    label_count: 32,
    label_name_bytes: 128,
    label_value_bytes: 1024,
};

const BUDGET: Budget = Budget {
    cpu_request_millis: 100,
    cpu_limit_millis: 200,
    memory_request_bytes: 64 << 20,
    memory_limit_bytes: 256 << 20,
};

/// Builds a [`Plan`]. The agent's cluster, the receiver URL, the WAL
/// directory and the self-scrape job are interned by [`build`](Self::build),
/// so a string a test replaces never lingers in the table.
pub struct PlanBuilder {
    plan: Plan,
    cluster: Option<String>,
    receiver_url: String,
    wal_dir: String,
    self_scrape_job: String,
}

impl Default for PlanBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl PlanBuilder {
    /// A node-role plan with no external labels, no node collectors and no
    /// scrape jobs; the receiver URL and WAL directory are empty until set
    /// (tests of the core never send or write).
    pub fn new() -> PlanBuilder {
        PlanBuilder {
            plan: Plan {
                strings: Vec::new(),
                // The ids the builder fills in at `build` point nowhere until then.
                agent: Agent {
                    cluster: StrId(u32::MAX),
                    tenant: None,
                    role: Role::Node,
                },
                external_labels: Vec::new(),
                receiver: Receiver {
                    url: StrId(u32::MAX),
                    tenant_header: None,
                    tls: None,
                    auth: Auth::None,
                    remote_timeout_ms: 5_000,
                    write_relabel: Vec::new(),
                },
                queue: QUEUE,
                wal: Wal {
                    dir: StrId(u32::MAX),
                    max_bytes: 64 << 20,
                    segment_bytes: 1 << 20,
                    fsync: Fsync::Never,
                    mode: WalMode::Append,
                },
                node: None,
                scrape_jobs: Vec::new(),
                self_scrape: SelfScrape {
                    interval_ms: 1_000,
                    job: StrId(u32::MAX),
                },
                budget: BUDGET,
                sharing: None,
            },
            cluster: None,
            receiver_url: String::new(),
            wal_dir: String::new(),
            self_scrape_job: "outpost".into(),
        }
    }

    /// Puts `strings` first in the plan's string table, ahead of those the
    /// other calls add: the same plan with its table in another order (and
    /// so other ids), as another compilation of the spec may write it. The
    /// first call on the builder.
    pub fn strings_first(mut self, strings: &[&str]) -> Self {
        assert!(
            self.plan.strings.is_empty(),
            "strings_first comes before any other call"
        );
        for s in strings {
            self.intern(s);
        }
        self
    }

    /// The id of `s` in the plan's string table, added if new.
    fn intern(&mut self, s: &str) -> StrId {
        intern(&mut self.plan, s)
    }

    /// `rules` with their strings interned, for a test that hands rules to
    /// the core beside the plan rather than inside it.
    pub(crate) fn intern_rules(&mut self, rules: &[Rule]) -> Vec<RelabelRule> {
        intern_rules(&mut self.plan, rules)
    }

    fn pairs(&mut self, pairs: &[(&str, &str)]) -> Vec<LabelPair> {
        pairs
            .iter()
            .map(|(n, v)| LabelPair {
                name: self.intern(n),
                value: self.intern(v),
            })
            .collect()
    }

    pub fn role(mut self, role: Role) -> Self {
        self.plan.agent.role = role;
        self
    }

    /// The agent's cluster. Unset, it is the `cluster` external label's
    /// value (`outpostc` makes the two agree), else `test-cluster`.
    pub fn cluster(mut self, name: &str) -> Self {
        self.cluster = Some(name.into());
        self
    }

    pub fn tenant(mut self, name: &str) -> Self {
        self.plan.agent.tenant = Some(self.intern(name));
        self
    }

    /// Added to every series; sorted by name at `build`, as the plan requires.
    pub fn external_labels(mut self, labels: &[(&str, &str)]) -> Self {
        let pairs = self.pairs(labels);
        self.plan.external_labels.extend(pairs);
        self
    }

    pub fn receiver_url(mut self, url: &str) -> Self {
        self.receiver_url = url.into();
        self
    }

    /// The header that carries the tenant, e.g. `THANOS-TENANT: tenant-a`.
    pub fn tenant_header(mut self, name: &str, value: &str) -> Self {
        let pair = self.pairs(&[(name, value)]);
        self.plan.receiver.tenant_header = pair.first().copied();
        self
    }

    pub fn remote_timeout_ms(mut self, ms: u32) -> Self {
        self.plan.receiver.remote_timeout_ms = ms;
        self
    }

    pub fn bearer_token_file(mut self, path: &Path) -> Self {
        let file = self.intern(&path.display().to_string());
        self.plan.receiver.auth = Auth::BearerTokenFile(file);
        self
    }

    /// TLS to the receiver, verified against `ca_file`; with `client`, the
    /// agent presents that certificate and key.
    pub fn receiver_tls(mut self, ca_file: &Path, client: Option<(&Path, &Path)>) -> Self {
        let mut path = |p: &Path| self.intern(&p.display().to_string());
        let tls = Tls {
            ca_file: Some(path(ca_file)),
            cert_file: client.map(|(cert, _)| path(cert)),
            key_file: client.map(|(_, key)| path(key)),
            server_name: None,
            insecure_skip_verify: false,
        };
        self.plan.receiver.tls = Some(tls);
        self
    }

    pub fn write_relabel(mut self, rules: &[Rule]) -> Self {
        self.plan.receiver.write_relabel = self.intern_rules(rules);
        self
    }

    /// The whole queue section; start from [`QUEUE`] to change a few fields.
    pub fn queue(mut self, queue: Queue) -> Self {
        self.plan.queue = queue;
        self
    }

    pub fn wal_dir(mut self, dir: &Path) -> Self {
        self.wal_dir = dir.display().to_string();
        self
    }

    pub fn wal_bounds(mut self, max_bytes: u64, segment_bytes: u32) -> Self {
        self.plan.wal.max_bytes = max_bytes;
        self.plan.wal.segment_bytes = segment_bytes;
        self
    }

    pub fn fsync(mut self, fsync: Fsync) -> Self {
        self.plan.wal.fsync = fsync;
        self
    }

    /// `always` (the builder's default) or spill mode.
    pub fn wal_mode(mut self, mode: WalMode) -> Self {
        self.plan.wal.mode = mode;
        self
    }

    /// Node collectors as job `node-exporter`, every second, within [`LIMITS`].
    pub fn node_collectors(mut self, collectors: &[Collector]) -> Self {
        let mut collectors = collectors.to_vec();
        collectors.sort();
        collectors.dedup();
        self.plan.node = Some(NodeCollectors {
            collectors,
            interval_ms: 1_000,
            job: self.intern("node-exporter"),
            limits: LIMITS,
            metric_relabel: Vec::new(),
            options: Default::default(),
        });
        self
    }

    /// A scrape job over HTTP on `/metrics`, every second with an 800 ms
    /// timeout, within [`LIMITS`]. The `job_*` methods change the job added last.
    pub fn scrape_job<T: AsRef<str>>(mut self, name: &str, targets: &[T]) -> Self {
        let job = ScrapeJob {
            name: self.intern(name),
            interval_ms: 1_000,
            timeout_ms: 800,
            scheme: Scheme::Http,
            path: self.intern("/metrics"),
            targets: targets.iter().map(|t| self.intern(t.as_ref())).collect(),
            labels: Vec::new(),
            honor_labels: false,
            bearer_token_file: None,
            tls: None,
            limits: LIMITS,
            metric_relabel: Vec::new(),
            targeting: Default::default(),
        };
        self.plan.scrape_jobs.push(job);
        self
    }

    fn last_job(&mut self) -> &mut ScrapeJob {
        self.plan
            .scrape_jobs
            .last_mut()
            .expect("a job_* method follows scrape_job")
    }

    /// Labels added to every series of the job's targets.
    pub fn job_labels(mut self, labels: &[(&str, &str)]) -> Self {
        let pairs = self.pairs(labels);
        self.last_job().labels = pairs;
        self
    }

    pub fn job_timing(mut self, interval_ms: u32, timeout_ms: u32) -> Self {
        let job = self.last_job();
        job.interval_ms = interval_ms;
        job.timeout_ms = timeout_ms;
        self
    }

    pub fn job_limits(mut self, limits: Limits) -> Self {
        self.last_job().limits = limits;
        self
    }

    pub fn job_relabel(mut self, rules: &[Rule]) -> Self {
        let rules = self.intern_rules(rules);
        self.last_job().metric_relabel = rules;
        self
    }

    pub fn self_scrape(mut self, interval_ms: u32, job: &str) -> Self {
        self.plan.self_scrape.interval_ms = interval_ms;
        self.self_scrape_job = job.into();
        self
    }

    /// Scrape slots and series pool shared by the targets (format
    /// version 4); without it the plan is an older one's, every target
    /// with its own.
    pub fn sharing(mut self, sharing: Sharing) -> Self {
        self.plan.sharing = Some(sharing);
        self
    }

    pub fn budget(mut self, budget: Budget) -> Self {
        self.plan.budget = budget;
        self
    }

    /// The plan; panics, naming the field, if the agent would refuse it.
    pub fn build(mut self) -> Plan {
        let cluster = match self.cluster.take() {
            Some(name) => name,
            None => {
                let label = self
                    .plan
                    .external_labels
                    .iter()
                    .find(|l| self.plan.str(l.name) == "cluster");
                label.map_or("test-cluster".into(), |l| self.plan.str(l.value).to_string())
            }
        };
        self.plan.agent.cluster = self.intern(&cluster);
        self.plan.receiver.url = intern(&mut self.plan, &self.receiver_url);
        self.plan.wal.dir = intern(&mut self.plan, &self.wal_dir);
        self.plan.self_scrape.job = intern(&mut self.plan, &self.self_scrape_job);
        let strings = &self.plan.strings;
        self.plan
            .external_labels
            .sort_by(|a, b| strings[a.name.0 as usize].cmp(&strings[b.name.0 as usize]));
        if let Err(e) = self.plan.validate() {
            panic!("the test's plan is invalid: {e}");
        }
        self.plan
    }
}

/// Adds `s` to the plan's string table (or finds it) and gives its id.
pub fn intern(plan: &mut Plan, s: &str) -> StrId {
    if let Some(i) = plan.strings.iter().position(|x| x == s) {
        return StrId(i as u32);
    }
    plan.strings.push(s.to_string());
    StrId(plan.strings.len() as u32 - 1)
}

/// `rules` with their strings added to the plan's table.
pub fn intern_rules(plan: &mut Plan, rules: &[Rule]) -> Vec<RelabelRule> {
    rules
        .iter()
        .map(|r| RelabelRule {
            action: r.action,
            source_labels: r.source_labels.iter().map(|l| intern(plan, l)).collect(),
            separator: intern(plan, &r.separator),
            regex: intern(plan, &r.regex),
            modulus: r.modulus,
            target_label: intern(plan, &r.target_label),
            replacement: intern(plan, &r.replacement),
        })
        .collect()
}

/// Decodes a committed golden plan from `examples/plans/<rel>`.
pub fn golden_plan(rel: &str) -> Plan {
    let path = repo_path("examples/plans").join(rel);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("golden plan {}: {e}", path.display()));
    plan::decode(&bytes).unwrap_or_else(|e| panic!("golden plan {}: {e:?}", path.display()))
}

/// Points a plan at loopback: receiver URL, WAL dir, faster intervals and
/// queue deadlines so a test sees batches within seconds.
pub fn to_loopback(plan: &mut Plan, receiver_url: &str, wal_dir: &Path) {
    plan.receiver.url = intern(plan, receiver_url);
    plan.receiver.tls = None;
    plan.receiver.auth = Auth::None;
    plan.wal.dir = intern(plan, &wal_dir.display().to_string());
    plan.wal.fsync = Fsync::Never;
    plan.queue.batch_send_deadline_ms = 200;
    plan.queue.min_backoff_ms = 30;
    plan.queue.max_backoff_ms = 500;
    plan.self_scrape.interval_ms = 1_000;
    if let Some(node) = plan.node.as_mut() {
        node.interval_ms = 1_000;
    }
    for job in &mut plan.scrape_jobs {
        job.interval_ms = 1_000;
        job.timeout_ms = 800;
    }
}

/// Encodes `plan` to `dir/name`; gives the path.
pub fn write_plan(dir: &Path, name: &str, plan: &Plan) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, plan::encode(plan).unwrap()).unwrap();
    path
}

/// A human-readable listing of a plan, for assertion messages and discovery.
pub fn describe(plan: &Plan) -> String {
    let s = |id: StrId| plan.str(id).to_string();
    let mut out = format!(
        "role={:?} cluster={} tenant={:?} url={} tenant_header={:?}\nexternal:",
        plan.agent.role,
        s(plan.agent.cluster),
        plan.agent.tenant.map(s),
        s(plan.receiver.url),
        plan.receiver.tenant_header.map(|p| (s(p.name), s(p.value)))
    );
    for l in &plan.external_labels {
        out.push_str(&format!(" {}={}", s(l.name), s(l.value)));
    }
    for job in &plan.scrape_jobs {
        out.push_str(&format!(
            "\njob {} scheme={:?} path={} targets={:?} relabel={}",
            s(job.name),
            job.scheme,
            s(job.path),
            job.targets.iter().map(|t| s(*t)).collect::<Vec<_>>(),
            job.metric_relabel.len()
        ));
        for r in &job.metric_relabel {
            out.push_str(&format!(
                "\n  {:?} src={:?} regex={} target={} repl={}",
                r.action,
                r.source_labels.iter().map(|t| s(*t)).collect::<Vec<_>>(),
                s(r.regex),
                s(r.target_label),
                s(r.replacement)
            ));
        }
    }
    out
}
