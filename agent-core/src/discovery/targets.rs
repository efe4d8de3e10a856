//! From a target's discovered labels to what is scraped, as Prometheus 2.42's
//! `PopulateLabels` does it: the job's `job`, `__scrape_interval__`, `__scrape_timeout__`,
//! `__metrics_path__` and `__scheme__` are added where absent, target relabeling runs, a
//! dropped target stops there; then the address gets the scheme's default port if it has
//! none, `__meta_*` labels go, `instance` defaults to the address, and the labels not
//! starting with `__` are the target's.
//!
//! [`TargetSet`] holds a job's discovered targets in a fixed number of slots (the plan's
//! `max_targets`): each object's targets replace that object's earlier ones, a target that
//! comes out the same keeps its slot (its scrapes go on undisturbed), and every slot whose
//! content changes gets a new generation, which is how the agent learns what to start and
//! what to retire.

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::meta::{LabelList, ADDRESS};
use crate::duration;
use crate::labels::LabelSet;
use crate::pipeline::TargetLabels;
use crate::plan::{self, Plan, Scheme};
use crate::relabel::RelabelProgram;
use crate::url::parse_host_port;

/// Most labels a target may carry into relabeling (a pod's labels and annotations count
/// twice: value and presence); more fail the target (`too_many_labels`).
pub const MAX_DISCOVERED_LABELS: usize = 512;
/// Bytes of a target's labels after relabeling, names and values; more fail the target.
pub const MAX_TARGET_LABEL_BYTES: usize = 4096;
/// What a stored label pair costs beside its text: two `String`s.
pub const LABEL_PAIR_OVERHEAD: usize = 48;

/// A target ready to scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedTarget {
    /// `host:port`.
    pub address: String,
    pub scheme: Scheme,
    pub path: String,
    pub interval_ms: u32,
    pub timeout_ms: u32,
    pub labels: TargetLabels,
}

impl ResolvedTarget {
    /// What the scrape URL looks like, as Prometheus's `scrapeUrl`.
    pub fn url(&self, out: &mut String) {
        out.push_str(match self.scheme {
            Scheme::Http => "http://",
            Scheme::Https => "https://",
        });
        out.push_str(&self.address);
        out.push_str(&self.path);
    }
}

/// What became of one discovered target.
#[derive(Debug, Clone, PartialEq)]
pub enum Built {
    Kept(ResolvedTarget),
    /// Relabeling dropped it.
    Dropped,
    /// Its labels do not make a target; the reason is a stable counter name.
    Failed(&'static str),
}

/// A job's target relabeling and defaults, compiled once.
pub struct TargetBuilder {
    relabel: RelabelProgram,
    labels: LabelSet,
    defaults: [(&'static str, String); 5],
    honor_labels: bool,
}

impl TargetBuilder {
    pub fn new(plan: &Plan, job: &plan::ScrapeJob) -> Result<TargetBuilder, String> {
        let bytes = MAX_DISCOVERED_LABELS * 64;
        let mut relabel = RelabelProgram::build(plan, &job.targeting.relabel, bytes)
            .map_err(|e| alloc::format!("target relabeling of job {}: {e}", plan.str(job.name)))?;
        relabel.reserve_labels(MAX_DISCOVERED_LABELS);
        let mut interval = String::new();
        let _ = duration::write(u64::from(job.interval_ms), &mut interval);
        let mut timeout = String::new();
        let _ = duration::write(u64::from(job.timeout_ms), &mut timeout);
        let scheme = match job.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        Ok(TargetBuilder {
            relabel,
            labels: LabelSet::with_capacity(MAX_DISCOVERED_LABELS, bytes),
            defaults: [
                ("job", plan.str(job.name).to_string()),
                ("__scrape_interval__", interval),
                ("__scrape_timeout__", timeout),
                ("__metrics_path__", plan.str(job.path).to_string()),
                ("__scheme__", scheme.to_string()),
            ],
            honor_labels: job.honor_labels,
        })
    }

    /// A static target at `address` with the job's `labels`, resolved like a discovered one.
    pub fn build_static(
        &mut self,
        address: &str,
        labels: &[(String, String)],
        discovered: &mut LabelList,
    ) -> Built {
        let mut found: LabelList = Vec::with_capacity(labels.len() + 1);
        found.push((ADDRESS.to_string(), address.to_string()));
        found.extend(labels.iter().cloned());
        self.build(&found, discovered)
    }

    /// Builds one target from its discovered labels. `discovered` gets the labels as they
    /// went into relabeling (the job's defaults added, sorted), for `/api/v1/targets`.
    pub fn build(&mut self, found: &[(String, String)], discovered: &mut LabelList) -> Built {
        discovered.clear();
        self.labels.clear();
        // An empty value is no label, as Prometheus's label builder has it: an empty
        // `__meta_kubernetes_pod_container_id` is not shown, and a default fills an empty one.
        for (n, v) in found.iter().filter(|(_, v)| !v.is_empty()) {
            if self.labels.push(n, v).is_err() {
                return Built::Failed("too_many_labels");
            }
        }
        for (n, v) in &self.defaults {
            if self.labels.get(n).is_none() && self.labels.set(n, v).is_err() {
                return Built::Failed("too_many_labels");
            }
        }
        self.labels.sort();
        discovered.extend(self.labels.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        match self.relabel.try_apply(&mut self.labels) {
            Ok(true) => {}
            Ok(false) => return Built::Dropped,
            Err(_) => return Built::Failed("too_many_labels"),
        }
        self.finish()
    }

    fn finish(&mut self) -> Built {
        let l = &self.labels;
        let address = l.get(ADDRESS).unwrap_or("");
        if address.is_empty() {
            return Built::Failed("no_address");
        }
        let (scheme, default_port) = match l.get("__scheme__").unwrap_or("") {
            "http" | "" => (Scheme::Http, "80"),
            "https" => (Scheme::Https, "443"),
            _ => return Built::Failed("invalid_scheme"),
        };
        let mut address = address.to_string();
        if !has_port(&address) {
            address.push(':');
            address.push_str(default_port);
        }
        if address.contains('/') || parse_host_port(&address).is_err() {
            return Built::Failed("invalid_address");
        }
        let duration = |name| l.get(name).and_then(duration::parse).filter(|&ms| ms > 0);
        let (Some(interval), Some(timeout)) =
            (duration("__scrape_interval__"), duration("__scrape_timeout__"))
        else {
            return Built::Failed("invalid_interval");
        };
        if timeout > interval {
            return Built::Failed("timeout_exceeds_interval");
        }
        let path = l.get("__metrics_path__").unwrap_or("").to_string();
        let mut job = String::new();
        let mut instance = address.clone();
        let mut extra = Vec::new();
        let mut bytes = 0;
        for (n, v) in l.iter() {
            bytes += n.len() + v.len();
            match n {
                "job" => job = v.to_string(),
                "instance" => instance = v.to_string(),
                _ if n.starts_with("__") => {}
                _ => extra.push((n.to_string(), v.to_string())),
            }
        }
        if bytes > MAX_TARGET_LABEL_BYTES {
            return Built::Failed("target_labels_too_long");
        }
        Built::Kept(ResolvedTarget {
            address,
            scheme,
            path,
            interval_ms: interval.min(u64::from(u32::MAX)) as u32,
            timeout_ms: timeout.min(u64::from(u32::MAX)) as u32,
            labels: TargetLabels {
                job,
                instance,
                extra,
                honor_labels: self.honor_labels,
            },
        })
    }
}

/// Go's `net.SplitHostPort` succeeds: a port is there (possibly empty).
fn has_port(addr: &str) -> bool {
    match addr.strip_prefix('[') {
        Some(rest) => rest.find(']').is_some_and(|i| rest[i + 1..].starts_with(':')),
        None => addr.matches(':').count() == 1,
    }
}

/// Where a found target came from: the object (`pod/<ns>/<name>`, ...) and which list of
/// which watch last carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub source: String,
    pub watch: usize,
    pub generation: u64,
}

/// A kept target and what it was found with.
#[derive(Debug, Clone)]
pub struct Found {
    pub origin: Origin,
    /// Labels before relabeling; empty when they did not fit the store.
    pub discovered: LabelList,
    pub target: ResolvedTarget,
}

/// A target relabeling dropped, kept to be shown.
#[derive(Debug, Clone)]
pub struct Dropped {
    pub origin: Origin,
    pub discovered: LabelList,
}

#[derive(Debug, Default)]
pub struct Slot {
    /// Changes whenever the slot's target does (set, replaced or cleared).
    pub generation: u64,
    pub found: Option<Box<Found>>,
}

/// Counters of what became of discovered targets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetCounters {
    /// Targets of one object with the same labels as another of its targets: kept once.
    pub duplicates: u64,
    /// Targets not kept because `max_targets` were.
    pub over_limit: u64,
    /// Targets whose labels failed to make a target (no address, bad scheme, ...).
    pub failed: u64,
    /// Dropped targets not shown, or kept ones shown without their discovered labels,
    /// because the store was full.
    pub not_stored: u64,
}

pub struct TargetSet {
    pub slots: Vec<Slot>,
    pub dropped: Vec<Dropped>,
    builder: TargetBuilder,
    scratch: LabelList,
    /// Bytes of discovered labels held (kept and dropped targets).
    pub stored_bytes: usize,
    pub counters: TargetCounters,
    next_generation: u64,
    /// Some slot changed since [`TargetSet::take_changed`].
    changed: bool,
}

pub fn label_list_bytes(l: &LabelList) -> usize {
    l.iter()
        .map(|(n, v)| n.len() + v.len() + LABEL_PAIR_OVERHEAD)
        .sum()
}

impl TargetSet {
    pub fn new(builder: TargetBuilder, max_targets: usize) -> TargetSet {
        TargetSet {
            slots: (0..max_targets).map(|_| Slot::default()).collect(),
            dropped: Vec::new(),
            builder,
            scratch: LabelList::new(),
            stored_bytes: 0,
            counters: TargetCounters::default(),
            next_generation: 1,
            changed: false,
        }
    }

    /// Whether a slot changed since the last call.
    pub fn take_changed(&mut self) -> bool {
        core::mem::take(&mut self.changed)
    }

    pub fn kept(&self) -> usize {
        self.slots.iter().filter(|s| s.found.is_some()).count()
    }

    fn bump(&mut self, slot: usize) {
        self.slots[slot].generation = self.next_generation;
        self.next_generation += 1;
        self.changed = true;
    }

    /// Replaces the targets found in `origin.source` with those of `group` (each a
    /// target's whole discovered label list). `room` is how many store bytes may be taken
    /// beyond what this source holds now.
    pub fn replace(&mut self, origin: &Origin, group: &[LabelList], room: usize) {
        let mut freed = 0;
        self.dropped.retain(|d| {
            let same = d.origin.source == origin.source;
            if same {
                freed += label_list_bytes(&d.discovered);
            }
            !same
        });
        // Slots of this source not (yet) matched by a new target.
        let mut stale: Vec<usize> = (0..self.slots.len())
            .filter(|&i| {
                self.slots[i]
                    .found
                    .as_ref()
                    .is_some_and(|f| f.origin.source == origin.source)
            })
            .collect();
        for i in &stale {
            if let Some(f) = &self.slots[*i].found {
                freed += label_list_bytes(&f.discovered);
            }
        }
        self.stored_bytes -= freed;
        let mut room = room + freed;
        let mut scratch = core::mem::take(&mut self.scratch);
        // Slots this group's targets took so far.
        let mut this_call: Vec<usize> = Vec::new();
        for labels in group {
            let built = self.builder.build(labels, &mut scratch);
            let cost = label_list_bytes(&scratch);
            let fits = cost <= room;
            match built {
                Built::Kept(target) => {
                    // Prometheus scrapes targets with the same labels once: a pod's
                    // container ports all moved to one annotated port make one target.
                    let placed =
                        |i: &usize| self.slots[*i].found.as_ref().is_some_and(|f| f.target == target);
                    if this_call.iter().any(placed) {
                        self.counters.duplicates += 1;
                        continue;
                    }
                    let discovered = if fits {
                        room -= cost;
                        self.stored_bytes += cost;
                        scratch.clone()
                    } else {
                        self.counters.not_stored += 1;
                        LabelList::new()
                    };
                    let same = stale
                        .iter()
                        .position(|&i| self.slots[i].found.as_ref().is_some_and(|f| f.target == target));
                    if let Some(at) = same {
                        let slot = stale.swap_remove(at);
                        let f = self.slots[slot].found.as_mut().expect("matched");
                        f.discovered = discovered;
                        f.origin = origin.clone();
                        this_call.push(slot);
                        continue;
                    }
                    let Some(free) = self
                        .slots
                        .iter()
                        .position(|s| s.found.is_none())
                        .or_else(|| stale.pop())
                    else {
                        self.counters.over_limit += 1;
                        self.stored_bytes -= label_list_bytes(&discovered);
                        room += label_list_bytes(&discovered);
                        continue;
                    };
                    self.slots[free].found = Some(Box::new(Found {
                        origin: origin.clone(),
                        discovered,
                        target,
                    }));
                    self.bump(free);
                    this_call.push(free);
                }
                Built::Dropped => {
                    if fits {
                        room -= cost;
                        self.stored_bytes += cost;
                        self.dropped.push(Dropped {
                            origin: origin.clone(),
                            discovered: scratch.clone(),
                        });
                    } else {
                        self.counters.not_stored += 1;
                    }
                }
                Built::Failed(_) => self.counters.failed += 1,
            }
        }
        self.scratch = scratch;
        for i in stale {
            self.slots[i].found = None;
            self.bump(i);
        }
    }

    /// Forgets everything `source` had found.
    pub fn remove(&mut self, source: &str) {
        let origin = Origin {
            source: source.to_string(),
            watch: 0,
            generation: 0,
        };
        self.replace(&origin, &[], 0);
    }

    /// Sources of `watch` that its finished list (`generation`) did not carry.
    pub fn sources_older_than(&self, watch: usize, generation: u64) -> Vec<String> {
        let slots = self
            .slots
            .iter()
            .filter_map(|s| s.found.as_ref())
            .map(|f| &f.origin);
        let dropped = self.dropped.iter().map(|d| &d.origin);
        let mut out: Vec<String> = slots
            .chain(dropped)
            .filter(|o| o.watch == watch && o.generation < generation)
            .map(|o| o.source.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The targets' relabeling and defaults.
    pub fn builder(&mut self) -> &mut TargetBuilder {
        &mut self.builder
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_split_host_port_decides_the_default_port() {
        assert!(has_port("10.0.0.1:8080"));
        assert!(!has_port("10.0.0.1"));
        assert!(has_port("[fd00::1]:80"));
        assert!(!has_port("[fd00::1]"));
        assert!(
            !has_port("fd00::1"),
            "too many colons: Prometheus adds no port either"
        );
        assert!(has_port("svc.ns.svc:"));
    }
}
