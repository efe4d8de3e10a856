//! Kubernetes discovery of one scrape job, sans-IO: what to ask the API server for, and what
//! its answers mean for the job's targets.
//!
//! A [`KubeDiscovery`] runs one [`ResourceWatch`] per resource and namespace the role needs
//! (pods; Services; EndpointSlices with their Services and pods; nodes). The caller sends
//! what [`KubeDiscovery::poll_request`] asks for, one connection per watch, and feeds each
//! response back: its status ([`KubeDiscovery::handle_head`]), its body as it arrives
//! ([`KubeDiscovery::handle_body`], split into objects by [`json`] and decoded with
//! serde_json into [`objects`]), its end or failure. Every object becomes a target group
//! ([`meta`]: the `__meta_kubernetes_*` labels of Prometheus 2.42), whose targets go
//! through target relabeling into the job's [`TargetSet`] ([`targets`]). The caller reads
//! the slots whose generation changed and starts or retires scrapes accordingly.
//!
//! Memory: the set has `max_targets` slots; one object at most `max_object_bytes` is held
//! per watch while it arrives, and decoded one at a time; what is kept between events
//! (discovered labels, and for `endpointslice` the Services, pods and slices it labels
//! endpoints from, charged at their JSON size) stays within `max_store_bytes`. What does
//! not fit is skipped and counted. A failed list or watch keeps the targets found so far.

pub mod json;
pub mod meta;
pub mod objects;
pub mod targets;
pub mod watch;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use json::{Framing, JsonSplitter, Part};
use meta::{LabelList, PodRef};
use objects::{Container, EndpointSlice, Event, EventType, ListMeta, MetaOnly, Node, Pod, Service, Status};
use targets::{Origin, TargetBuilder, TargetSet};
use watch::{Phase, ResourceWatch, WatchRequest};

use crate::plan::{self, KubeRole, Plan};

/// What a store record costs beside its JSON size.
pub const RECORD_OVERHEAD: usize = 256;

/// A kind of object discovery lists and watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Pods,
    Services,
    EndpointSlices,
    Nodes,
}

impl Resource {
    /// API path prefix and plural name.
    pub fn api(self) -> (&'static str, &'static str) {
        match self {
            Resource::Pods => ("/api/v1", "pods"),
            Resource::Services => ("/api/v1", "services"),
            Resource::EndpointSlices => ("/apis/discovery.k8s.io/v1", "endpointslices"),
            Resource::Nodes => ("/api/v1", "nodes"),
        }
    }

    /// The resources a role watches, in the order they are listed.
    pub fn of_role(role: KubeRole) -> &'static [Resource] {
        match role {
            KubeRole::Pod => &[Resource::Pods],
            KubeRole::Service => &[Resource::Services],
            KubeRole::Node => &[Resource::Nodes],
            KubeRole::EndpointSlice => &[Resource::Services, Resource::Pods, Resource::EndpointSlices],
        }
    }

    /// RBAC's name of the API group (`""` for the core group).
    pub fn api_group(self) -> &'static str {
        match self {
            Resource::EndpointSlices => "discovery.k8s.io",
            _ => "",
        }
    }
}

/// What happened to discovery, for `/metrics` and the logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiscoveryCounters {
    /// Watch events applied (added, modified, deleted).
    pub events: u64,
    /// Lists completed.
    pub lists: u64,
    /// `410 Gone` answers that made a resource list again.
    pub relists: u64,
    /// Requests that failed (connection, status, body); the targets found stay.
    pub failures: u64,
    /// Objects or events that did not decode; skipped.
    pub decode_errors: u64,
    /// Objects larger than `max_object_bytes`; skipped.
    pub oversized: u64,
    /// Services, pods or slices not kept because the store was full.
    pub store_full: u64,
}

/// How the response being read is going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// No response yet.
    Waiting,
    Ok,
    /// 410 Gone: list again once it ends.
    Gone,
    /// Anything else: back off once it ends.
    Failed,
}

struct ServiceRecord {
    key: String,
    watch: usize,
    generation: u64,
    labels: LabelList,
    cost: usize,
}

struct PodRecord {
    key: String,
    watch: usize,
    generation: u64,
    labels: LabelList,
    ip: String,
    containers: Vec<Container>,
    cost: usize,
}

struct SliceRecord {
    key: String,
    watch: usize,
    generation: u64,
    slice: EndpointSlice,
    cost: usize,
}

/// The records an `endpointslice` job labels endpoints from.
#[derive(Default)]
struct Store {
    services: Vec<ServiceRecord>,
    pods: Vec<PodRecord>,
    slices: Vec<SliceRecord>,
    bytes: usize,
}

pub struct KubeDiscovery {
    pub role: KubeRole,
    pub watches: Vec<ResourceWatch>,
    splitters: Vec<JsonSplitter>,
    reading: Vec<Reading>,
    pub targets: TargetSet,
    store: Store,
    max_store_bytes: usize,
    pub counters: DiscoveryCounters,
}

fn key(meta: &objects::ObjectMeta) -> String {
    if meta.namespace.is_empty() {
        meta.name.clone()
    } else {
        format!("{}/{}", meta.namespace, meta.name)
    }
}

impl KubeDiscovery {
    /// Discovery for `job`, whose plan section must have one. `node_name` fills in the
    /// field selector of node-local pods; `seed` spreads watch timeouts and backoffs.
    pub fn new(plan: &Plan, job: &plan::ScrapeJob, node_name: &str, seed: u64) -> Result<Self, String> {
        let d = job
            .targeting
            .discovery
            .as_ref()
            .ok_or_else(|| format!("job {} has no discovery", plan.str(job.name)))?;
        if d.own_node && node_name.is_empty() {
            return Err(format!(
                "job {} discovers the pods of its own node, but the node name is not known (set NODE_NAME or --node-name)",
                plan.str(job.name)
            ));
        }
        let namespaces: Vec<Option<String>> = if d.namespaces.is_empty() || d.role == KubeRole::Node {
            alloc::vec![None]
        } else {
            d.namespaces
                .iter()
                .map(|n| Some(plan.str(*n).to_string()))
                .collect()
        };
        let mut watches = Vec::new();
        for ns in &namespaces {
            for &r in Resource::of_role(d.role) {
                let node = (d.own_node && r == Resource::Pods).then(|| node_name.to_string());
                let n = watches.len() as u64 + 1;
                watches.push(ResourceWatch::new(r, ns.clone(), node, seed.wrapping_mul(n) ^ n));
            }
        }
        let splitters = watches
            .iter()
            .map(|_| JsonSplitter::new(d.max_object_bytes as usize))
            .collect();
        Ok(KubeDiscovery {
            role: d.role,
            reading: alloc::vec![Reading::Waiting; watches.len()],
            watches,
            splitters,
            targets: TargetSet::new(TargetBuilder::new(plan, job)?, d.max_targets as usize),
            store: Store::default(),
            max_store_bytes: d.max_store_bytes as usize,
            counters: DiscoveryCounters::default(),
        })
    }

    /// Bytes held between events: discovered labels and records.
    pub fn stored_bytes(&self) -> usize {
        self.targets.stored_bytes + self.store.bytes
    }

    fn room(&self) -> usize {
        self.max_store_bytes.saturating_sub(self.stored_bytes())
    }

    /// Every resource has been listed once.
    pub fn synced(&self) -> bool {
        self.watches.iter().all(|w| w.synced)
    }

    /// The next request due, and which watch it is for; it counts as sent.
    pub fn poll_request(&mut self, now: u64) -> Option<(usize, WatchRequest)> {
        for (i, w) in self.watches.iter_mut().enumerate() {
            if let Some(r) = w.poll_request(now) {
                self.reading[i] = Reading::Waiting;
                let framing = match r.phase {
                    Phase::List => Framing::List,
                    Phase::Watch => Framing::Watch,
                };
                self.splitters[i].begin(framing);
                return Some((i, r));
            }
        }
        None
    }

    /// When a request is next due.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.watches.iter().filter_map(ResourceWatch::poll_timeout).min()
    }

    /// The status of watch `w`'s response.
    pub fn handle_head(&mut self, w: usize, status: u16) {
        self.reading[w] = match status {
            200 => Reading::Ok,
            410 => Reading::Gone,
            _ => Reading::Failed,
        };
    }

    /// Body bytes of watch `w`'s response. Returns `false` when the rest of the response
    /// is not wanted (the caller closes the connection and then calls
    /// [`KubeDiscovery::handle_end`]).
    pub fn handle_body(&mut self, w: usize, bytes: &[u8]) -> bool {
        if self.reading[w] != Reading::Ok {
            return self.reading[w] == Reading::Waiting;
        }
        let mut splitter = core::mem::replace(&mut self.splitters[w], JsonSplitter::new(0));
        let phase = self.watches[w].in_flight();
        let result = splitter.handle_bytes(bytes, &mut |part| match part {
            Part::ListMeta(b) => match serde_json::from_slice::<ListMeta>(b) {
                Ok(m) if self.watches[w].handle_list_meta(&m.resource_version, &m.continue_token) => {}
                _ => self.reading[w] = Reading::Failed,
            },
            Part::Object(b) if phase == Some(Phase::List) => {
                let generation = self.watches[w].generation;
                self.upsert(w, generation, b);
            }
            Part::Object(b) => self.event(w, b),
            Part::Oversized { .. } => self.counters.oversized += 1,
        });
        self.splitters[w] = splitter;
        if result.is_err() {
            self.reading[w] = Reading::Failed;
        }
        self.reading[w] == Reading::Ok
    }

    /// Watch `w`'s response ended (or was cut short after [`KubeDiscovery::handle_body`]
    /// said so).
    pub fn handle_end(&mut self, w: usize, now: u64) {
        if self.reading[w] == Reading::Ok && self.splitters[w].finish().is_err() {
            self.reading[w] = Reading::Failed;
        }
        match self.reading[w] {
            Reading::Ok => {
                let generation = self.watches[w].generation;
                if self.watches[w].handle_end(now) {
                    self.counters.lists += 1;
                    self.list_done(w, generation);
                }
            }
            Reading::Gone => {
                self.counters.relists += 1;
                self.watches[w].handle_gone(now);
            }
            Reading::Waiting | Reading::Failed => self.handle_failure(w, now),
        }
        self.reading[w] = Reading::Waiting;
    }

    /// Watch `w`'s request failed before it ended (connection, timeout).
    pub fn handle_failure(&mut self, w: usize, now: u64) {
        self.counters.failures += 1;
        self.watches[w].handle_failure(now);
        self.reading[w] = Reading::Waiting;
    }

    fn event(&mut self, w: usize, bytes: &[u8]) {
        let Ok(t) = serde_json::from_slice::<EventType>(bytes) else {
            self.counters.decode_errors += 1;
            return;
        };
        match t.kind.as_str() {
            "ADDED" | "MODIFIED" => {
                self.counters.events += 1;
                let generation = self.watches[w].generation;
                self.upsert(w, generation, bytes);
            }
            "DELETED" => {
                self.counters.events += 1;
                match serde_json::from_slice::<Event<MetaOnly>>(bytes) {
                    Ok(e) => {
                        self.watches[w].handle_version(&e.object.metadata.resource_version);
                        self.delete(w, &key(&e.object.metadata));
                    }
                    Err(_) => self.counters.decode_errors += 1,
                }
            }
            "BOOKMARK" => match serde_json::from_slice::<Event<MetaOnly>>(bytes) {
                Ok(e) => self.watches[w].handle_version(&e.object.metadata.resource_version),
                Err(_) => self.counters.decode_errors += 1,
            },
            "ERROR" => {
                let status = serde_json::from_slice::<Event<Status>>(bytes).unwrap_or_default();
                self.reading[w] = if status.object.code == Some(410) {
                    Reading::Gone
                } else {
                    Reading::Failed
                };
            }
            _ => self.counters.decode_errors += 1,
        }
    }

    /// A list item (`bytes` the object) or an added/modified event (`bytes` the event).
    fn upsert(&mut self, w: usize, generation: u64, bytes: &[u8]) {
        let listing = self.watches[w].in_flight() == Some(Phase::List);
        let resource = self.watches[w].resource;
        macro_rules! decode {
            ($t:ty) => {{
                let decoded = if listing {
                    serde_json::from_slice::<$t>(bytes)
                } else {
                    serde_json::from_slice::<Event<$t>>(bytes).map(|e| e.object)
                };
                match decoded {
                    Ok(o) => o,
                    Err(_) => {
                        self.counters.decode_errors += 1;
                        return;
                    }
                }
            }};
        }
        let origin = |source: String| Origin {
            source,
            watch: w,
            generation,
        };
        let cost = bytes.len() + RECORD_OVERHEAD;
        match (self.role, resource) {
            (KubeRole::Pod, _) => {
                let pod: Pod = decode!(Pod);
                self.moved_to(w, listing, &pod.metadata.resource_version);
                let group: Vec<LabelList> = meta::pod_group(&pod).merged().collect();
                let room = self.room();
                self.targets
                    .replace(&origin(format!("pod/{}", key(&pod.metadata))), &group, room);
            }
            (KubeRole::Service, _) => {
                let svc: Service = decode!(Service);
                self.moved_to(w, listing, &svc.metadata.resource_version);
                let group: Vec<LabelList> = meta::service_group(&svc).merged().collect();
                let room = self.room();
                self.targets
                    .replace(&origin(format!("svc/{}", key(&svc.metadata))), &group, room);
            }
            (KubeRole::Node, _) => {
                let node: Node = decode!(Node);
                self.moved_to(w, listing, &node.metadata.resource_version);
                // A node without an address keeps what it had, as in Prometheus.
                if let Some(g) = meta::node_group(&node) {
                    let group: Vec<LabelList> = g.merged().collect();
                    let room = self.room();
                    self.targets
                        .replace(&origin(format!("node/{}", node.metadata.name)), &group, room);
                }
            }
            (KubeRole::EndpointSlice, Resource::Services) => {
                let svc: Service = decode!(Service);
                self.moved_to(w, listing, &svc.metadata.resource_version);
                let k = key(&svc.metadata);
                let record = ServiceRecord {
                    key: k.clone(),
                    watch: w,
                    generation,
                    labels: meta::service_labels(&svc),
                    cost,
                };
                self.store_service(record);
                self.rebuild_slices_of_service(&k);
            }
            (KubeRole::EndpointSlice, Resource::Pods) => {
                let pod: Pod = decode!(Pod);
                self.moved_to(w, listing, &pod.metadata.resource_version);
                // As in Prometheus, a pod's change reaches its endpoints' labels the next
                // time their slice changes. A pod first seen after a slice that names it
                // (the watches of pods and slices are separate streams, so that order
                // happens) labels the slice's endpoints at once, as the slice would have
                // been labeled had its event come second.
                let record = PodRecord {
                    key: key(&pod.metadata),
                    watch: w,
                    generation,
                    labels: meta::pod_labels(&pod),
                    ip: pod.status.pod_ip.clone(),
                    containers: pod.spec.containers,
                    cost,
                };
                let k = record.key.clone();
                let new = !self.store.pods.iter().any(|p| p.key == k);
                self.store_pod(record);
                if new && !listing {
                    self.rebuild_slices_of_pod(&k);
                }
            }
            (KubeRole::EndpointSlice, _) => {
                let slice: EndpointSlice = decode!(EndpointSlice);
                self.moved_to(w, listing, &slice.metadata.resource_version);
                let record = SliceRecord {
                    key: key(&slice.metadata),
                    watch: w,
                    generation,
                    slice,
                    cost,
                };
                let k = record.key.clone();
                if self.store_slice(record) {
                    self.rebuild_slice(&k);
                }
            }
        }
    }

    /// A watch event carries the version to watch on from; a list item's is older than its
    /// list's.
    fn moved_to(&mut self, w: usize, listing: bool, version: &str) {
        if !listing {
            self.watches[w].handle_version(version);
        }
    }

    fn delete(&mut self, w: usize, k: &str) {
        match (self.role, self.watches[w].resource) {
            (KubeRole::Pod, _) => self.targets.remove(&format!("pod/{k}")),
            (KubeRole::Service, _) => self.targets.remove(&format!("svc/{k}")),
            (KubeRole::Node, _) => self.targets.remove(&format!("node/{k}")),
            (KubeRole::EndpointSlice, Resource::Services) => {
                self.forget(Resource::Services, k);
                self.rebuild_slices_of_service(k);
            }
            (KubeRole::EndpointSlice, Resource::Pods) => self.forget(Resource::Pods, k),
            (KubeRole::EndpointSlice, _) => {
                self.forget(Resource::EndpointSlices, k);
                self.targets.remove(&format!("endpointslice/{k}"));
            }
        }
    }

    /// A whole list of watch `w` arrived: what it no longer carries is gone.
    fn list_done(&mut self, w: usize, generation: u64) {
        for source in self.targets.sources_older_than(w, generation) {
            self.targets.remove(&source);
        }
        let resource = self.watches[w].resource;
        if self.role != KubeRole::EndpointSlice {
            return;
        }
        let old: Vec<String> = match resource {
            Resource::Services => self
                .store
                .services
                .iter()
                .filter(|r| r.watch == w && r.generation < generation)
                .map(|r| r.key.clone())
                .collect(),
            Resource::Pods => self
                .store
                .pods
                .iter()
                .filter(|r| r.watch == w && r.generation < generation)
                .map(|r| r.key.clone())
                .collect(),
            _ => self
                .store
                .slices
                .iter()
                .filter(|r| r.watch == w && r.generation < generation)
                .map(|r| r.key.clone())
                .collect(),
        };
        for k in old {
            self.delete(w, &k);
        }
        if resource != Resource::EndpointSlices {
            // Slices listed before their Services or pods get their labels now, as
            // Prometheus labels none before all three are listed.
            let keys: Vec<String> = self.store.slices.iter().map(|r| r.key.clone()).collect();
            for k in keys {
                self.rebuild_slice(&k);
            }
        }
    }

    fn forget(&mut self, resource: Resource, k: &str) {
        let s = &mut self.store;
        let freed: usize = match resource {
            Resource::Services => take(&mut s.services, |r| r.key == k, |r| r.cost),
            Resource::Pods => take(&mut s.pods, |r| r.key == k, |r| r.cost),
            _ => take(&mut s.slices, |r| r.key == k, |r| r.cost),
        };
        s.bytes -= freed;
    }

    /// Makes room for `cost` bytes in place of the record `k` holds now; `false` (counted)
    /// when they do not fit.
    fn admit(&mut self, resource: Resource, k: &str, cost: usize) -> bool {
        self.forget(resource, k);
        if cost > self.room() {
            self.counters.store_full += 1;
            return false;
        }
        self.store.bytes += cost;
        true
    }

    fn store_service(&mut self, r: ServiceRecord) {
        if self.admit(Resource::Services, &r.key, r.cost) {
            self.store.services.push(r);
        }
    }

    fn store_pod(&mut self, r: PodRecord) {
        if self.admit(Resource::Pods, &r.key, r.cost) {
            self.store.pods.push(r);
        }
    }

    fn store_slice(&mut self, r: SliceRecord) -> bool {
        let stored = self.admit(Resource::EndpointSlices, &r.key, r.cost);
        if stored {
            self.store.slices.push(r);
        }
        stored
    }

    fn rebuild_slices_of_service(&mut self, service_key: &str) {
        let keys: Vec<String> = self
            .store
            .slices
            .iter()
            .filter(|r| {
                let svc = meta::slice_service(&r.slice);
                svc.is_some_and(|s| format!("{}/{s}", r.slice.metadata.namespace) == service_key)
            })
            .map(|r| r.key.clone())
            .collect();
        for k in keys {
            self.rebuild_slice(&k);
        }
    }

    fn rebuild_slices_of_pod(&mut self, pod_key: &str) {
        let names_pod = |e: &objects::Endpoint| {
            e.target_ref.as_ref().is_some_and(|r| {
                r.kind == "Pod"
                    && pod_key
                        .strip_prefix(r.namespace.as_str())
                        .and_then(|k| k.strip_prefix('/'))
                        == Some(r.name.as_str())
            })
        };
        let keys: Vec<String> = self
            .store
            .slices
            .iter()
            .filter(|r| r.slice.endpoints.iter().any(names_pod))
            .map(|r| r.key.clone())
            .collect();
        for k in keys {
            self.rebuild_slice(&k);
        }
    }

    fn rebuild_slice(&mut self, k: &str) {
        let Some(r) = self.store.slices.iter().find(|r| r.key == k) else {
            return;
        };
        let ns = &r.slice.metadata.namespace;
        let service = meta::slice_service(&r.slice)
            .and_then(|s| self.store.services.iter().find(|x| x.key == format!("{ns}/{s}")))
            .map(|x| &x.labels);
        let pods = &self.store.pods;
        let pod = |ns: &str, name: &str| {
            let k = format!("{ns}/{name}");
            pods.iter().find(|p| p.key == k).map(|p| PodRef {
                labels: &p.labels,
                ip: &p.ip,
                containers: &p.containers,
            })
        };
        let group: Vec<LabelList> = meta::endpointslice_group(&r.slice, service, &pod)
            .merged()
            .collect();
        let origin = Origin {
            source: format!("endpointslice/{k}"),
            watch: r.watch,
            generation: r.generation,
        };
        let room = self.room();
        self.targets.replace(&origin, &group, room);
    }
}

/// Removes the records `hit` picks; returns their summed `cost`.
fn take<T>(v: &mut Vec<T>, hit: impl Fn(&T) -> bool, cost: impl Fn(&T) -> usize) -> usize {
    let mut freed = 0;
    v.retain(|r| {
        if hit(r) {
            freed += cost(r);
            false
        } else {
            true
        }
    });
    freed
}
