//! The `__meta_kubernetes_*` labels of each role, as Prometheus 2.42's Kubernetes discovery
//! writes them (`discovery/kubernetes/{pod,endpointslice,service,node}.go`): one group per
//! object, with labels shared by its targets and each target's own. A target's labels win
//! over its group's, as in Prometheus's `targetsFromGroup`. Empty values are kept: Prometheus
//! shows them among a target's discovered labels, and relabeling reads them as absent.
//!
//! Not written, as in 2.42 without `attach_metadata`: the node labels of pods and endpoints.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::objects::{Container, EndpointPort, EndpointSlice, Node, Pod, Service, StringMap};

pub const META: &str = "__meta_kubernetes_";
pub const ADDRESS: &str = "__address__";
const PRESENT: &str = "true";

/// Label pairs in the order they were written; names are unique.
pub type LabelList = Vec<(String, String)>;

/// One object's targets, as a Prometheus target group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    pub labels: LabelList,
    pub targets: Vec<LabelList>,
}

impl Group {
    /// Each target's whole label list: its own labels, then the group's it does not have.
    pub fn merged(&self) -> impl Iterator<Item = LabelList> + '_ {
        self.targets.iter().map(|t| {
            let mut all = t.clone();
            for (n, v) in &self.labels {
                if !t.iter().any(|(tn, _)| tn == n) {
                    all.push((n.clone(), v.clone()));
                }
            }
            all
        })
    }
}

/// Sets `name` to `value`, replacing an earlier value (Go map semantics).
fn set(list: &mut LabelList, name: String, value: &str) {
    match list.iter_mut().find(|(n, _)| *n == name) {
        Some(pair) => pair.1 = value.to_string(),
        None => list.push((name, value.to_string())),
    }
}

fn meta(list: &mut LabelList, suffix: &str, value: &str) {
    set(list, format!("{META}{suffix}"), value);
}

/// Prometheus's `strutil.SanitizeLabelName`: every character outside `[a-zA-Z0-9_]` becomes
/// one `_`.
pub fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `<kind>_label_<k>`, `<kind>_labelpresent_<k>` and the same for annotations.
fn labels_and_annotations(list: &mut LabelList, kind: &str, labels: &StringMap, annotations: &StringMap) {
    for (what, map) in [("label", labels), ("annotation", annotations)] {
        for (k, v) in map {
            let k = sanitize(k);
            set(list, format!("{META}{kind}_{what}_{k}"), v);
            set(list, format!("{META}{kind}_{what}present_{k}"), PRESENT);
        }
    }
}

/// Go's `net.JoinHostPort`: brackets around a host with a colon.
pub fn join_host_port(host: &str, port: impl core::fmt::Display) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn bool_text(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

/// The labels every target of a pod carries (`podLabels`).
pub fn pod_labels(pod: &Pod) -> LabelList {
    let mut l = LabelList::new();
    let ready = pod
        .status
        .conditions
        .iter()
        .find(|c| c.kind == "Ready")
        .map_or_else(|| String::from("unknown"), |c| c.status.to_lowercase());
    meta(&mut l, "pod_name", &pod.metadata.name);
    meta(&mut l, "pod_ip", &pod.status.pod_ip);
    meta(&mut l, "pod_ready", &ready);
    meta(&mut l, "pod_phase", &pod.status.phase);
    meta(&mut l, "pod_node_name", &pod.spec.node_name);
    meta(&mut l, "pod_host_ip", &pod.status.host_ip);
    meta(&mut l, "pod_uid", &pod.metadata.uid);
    let controller = pod
        .metadata
        .owner_references
        .iter()
        .find(|r| r.controller == Some(true));
    if let Some(c) = controller {
        if !c.kind.is_empty() {
            meta(&mut l, "pod_controller_kind", &c.kind);
        }
        if !c.name.is_empty() {
            meta(&mut l, "pod_controller_name", &c.name);
        }
    }
    labels_and_annotations(&mut l, "pod", &pod.metadata.labels, &pod.metadata.annotations);
    l
}

/// Role `pod`: a target per container port, or per container without ports, at the pod IP;
/// no targets while the pod has no IP.
pub fn pod_group(pod: &Pod) -> Group {
    let mut g = Group::default();
    if pod.status.pod_ip.is_empty() {
        return g;
    }
    g.labels = pod_labels(pod);
    meta(&mut g.labels, "namespace", &pod.metadata.namespace);
    let containers = pod.spec.containers.iter().map(|c| (c, false));
    let init = pod.spec.init_containers.iter().map(|c| (c, true));
    for (c, is_init) in containers.chain(init) {
        let statuses = if is_init {
            &pod.status.init_container_statuses
        } else {
            &pod.status.container_statuses
        };
        let id = statuses
            .iter()
            .find(|s| s.name == c.name)
            .map_or("", |s| s.container_id.as_str());
        let common = |t: &mut LabelList| {
            meta(t, "pod_container_name", &c.name);
            meta(t, "pod_container_id", id);
            meta(t, "pod_container_image", &c.image);
            meta(t, "pod_container_init", bool_text(is_init));
        };
        if c.ports.is_empty() {
            let mut t = LabelList::new();
            set(&mut t, ADDRESS.to_string(), &pod.status.pod_ip);
            common(&mut t);
            g.targets.push(t);
            continue;
        }
        for p in &c.ports {
            let mut t = LabelList::new();
            set(
                &mut t,
                ADDRESS.to_string(),
                &join_host_port(&pod.status.pod_ip, p.container_port),
            );
            common(&mut t);
            meta(&mut t, "pod_container_port_number", &p.container_port.to_string());
            meta(&mut t, "pod_container_port_name", &p.name);
            meta(&mut t, "pod_container_port_protocol", &p.protocol);
            g.targets.push(t);
        }
    }
    g
}

/// The labels of a Service (`serviceLabels`).
pub fn service_labels(svc: &Service) -> LabelList {
    let mut l = LabelList::new();
    meta(&mut l, "service_name", &svc.metadata.name);
    meta(&mut l, "namespace", &svc.metadata.namespace);
    labels_and_annotations(&mut l, "service", &svc.metadata.labels, &svc.metadata.annotations);
    l
}

/// Role `service`: a target per port at `<name>.<namespace>.svc:<port>`.
pub fn service_group(svc: &Service) -> Group {
    let mut g = Group {
        labels: service_labels(svc),
        targets: Vec::new(),
    };
    let host = format!("{}.{}.svc", svc.metadata.name, svc.metadata.namespace);
    for p in &svc.spec.ports {
        let mut t = LabelList::new();
        set(&mut t, ADDRESS.to_string(), &join_host_port(&host, p.port));
        meta(&mut t, "service_port_name", &p.name);
        meta(&mut t, "service_port_number", &p.port.to_string());
        meta(&mut t, "service_port_protocol", &p.protocol);
        meta(&mut t, "service_type", &svc.spec.kind);
        if svc.spec.kind == "ExternalName" {
            meta(&mut t, "service_external_name", &svc.spec.external_name);
        } else {
            meta(&mut t, "service_cluster_ip", &svc.spec.cluster_ip);
        }
        if svc.spec.kind == "LoadBalancer" {
            meta(&mut t, "service_loadbalancer_ip", &svc.spec.load_balancer_ip);
        }
        g.targets.push(t);
    }
    g
}

/// The node address Prometheus scrapes, by its order of address types, and every type's
/// first address; `None` when the node has no address.
fn node_address(node: &Node) -> Option<(String, Vec<(&str, &str)>)> {
    let mut first: Vec<(&str, &str)> = Vec::new();
    for a in &node.status.addresses {
        if !first.iter().any(|(k, _)| *k == a.kind) {
            first.push((a.kind.as_str(), a.address.as_str()));
        }
    }
    let order = [
        "InternalIP",
        "InternalDNS",
        "ExternalIP",
        "ExternalDNS",
        "LegacyHostIP",
        "Hostname",
    ];
    let addr = order
        .iter()
        .find_map(|k| first.iter().find(|(t, _)| t == k).map(|(_, a)| a.to_string()))?;
    Some((addr, first))
}

/// Role `node`: one target per node at its kubelet port, named after the node; `None` (no
/// group at all, as in Prometheus) when the node has no address.
pub fn node_group(node: &Node) -> Option<Group> {
    let mut g = Group::default();
    meta(&mut g.labels, "node_name", &node.metadata.name);
    meta(&mut g.labels, "node_provider_id", &node.spec.provider_id);
    labels_and_annotations(
        &mut g.labels,
        "node",
        &node.metadata.labels,
        &node.metadata.annotations,
    );
    let (addr, by_type) = node_address(node)?;
    let mut t = LabelList::new();
    let port = node.status.daemon_endpoints.kubelet_endpoint.port;
    set(&mut t, ADDRESS.to_string(), &join_host_port(&addr, port));
    set(&mut t, String::from("instance"), &node.metadata.name);
    for (kind, a) in by_type {
        set(&mut t, sanitize(&format!("{META}node_address_{kind}")), a);
    }
    g.targets.push(t);
    Some(g)
}

/// What an `endpointslice` target needs of the pod behind an endpoint.
pub struct PodRef<'a> {
    pub labels: &'a LabelList,
    pub ip: &'a str,
    pub containers: &'a [Container],
}

/// Role `endpointslice` (`buildEndpointSlice`): a target per endpoint address and port, with
/// the Service's labels (`service`) and, for an endpoint backed by a known pod (`pod` finds
/// it by namespace and name), the pod's labels and the matching container port's; then a
/// target for each container port of those pods that no slice port covers.
pub fn endpointslice_group<'a>(
    slice: &EndpointSlice,
    service: Option<&LabelList>,
    pod: &dyn Fn(&str, &str) -> Option<PodRef<'a>>,
) -> Group {
    let mut g = Group::default();
    meta(&mut g.labels, "namespace", &slice.metadata.namespace);
    meta(&mut g.labels, "endpointslice_name", &slice.metadata.name);
    meta(&mut g.labels, "endpointslice_address_type", &slice.address_type);
    if let Some(svc) = service {
        for (n, v) in svc {
            set(&mut g.labels, n.clone(), v);
        }
    }
    // Pods seen, by namespace/name, with the slice ports they were seen on.
    let mut seen: Vec<(String, PodRef<'a>, Vec<i32>)> = Vec::new();
    for ep in &slice.endpoints {
        for port in &slice.ports {
            for addr in &ep.addresses {
                let mut t = endpoint_target(addr, ep, port);
                let Some(r) = ep.target_ref.as_ref().filter(|r| r.kind == "Pod") else {
                    g.targets.push(t);
                    continue;
                };
                let Some(p) = pod(&r.namespace, &r.name) else {
                    g.targets.push(t);
                    continue;
                };
                let key = format!("{}/{}", r.namespace, r.name);
                for (n, v) in p.labels {
                    set(&mut t, n.clone(), v);
                }
                if let Some(number) = port.port {
                    let matching = p.containers.iter().find_map(|c| {
                        c.ports
                            .iter()
                            .find(|cp| cp.container_port == number)
                            .map(|cp| (c, cp))
                    });
                    if let Some((c, cp)) = matching {
                        meta(&mut t, "pod_container_name", &c.name);
                        meta(&mut t, "pod_container_image", &c.image);
                        meta(&mut t, "pod_container_port_name", &cp.name);
                        meta(&mut t, "pod_container_port_number", &number.to_string());
                        meta(&mut t, "pod_container_port_protocol", &cp.protocol);
                    }
                }
                match seen.iter_mut().find(|(k, _, _)| *k == key) {
                    Some((_, _, ports)) => ports.extend(port.port),
                    None => seen.push((key, p, port.port.into_iter().collect())),
                }
                g.targets.push(t);
            }
        }
    }
    for (_, p, ports) in &seen {
        for c in p.containers {
            for cp in &c.ports {
                if ports.contains(&cp.container_port) {
                    continue;
                }
                let mut t = LabelList::new();
                set(
                    &mut t,
                    ADDRESS.to_string(),
                    &join_host_port(p.ip, cp.container_port),
                );
                meta(&mut t, "pod_container_name", &c.name);
                meta(&mut t, "pod_container_image", &c.image);
                meta(&mut t, "pod_container_port_name", &cp.name);
                meta(
                    &mut t,
                    "pod_container_port_number",
                    &cp.container_port.to_string(),
                );
                meta(&mut t, "pod_container_port_protocol", &cp.protocol);
                for (n, v) in p.labels {
                    set(&mut t, n.clone(), v);
                }
                g.targets.push(t);
            }
        }
    }
    g
}

fn endpoint_target(addr: &str, ep: &super::objects::Endpoint, port: &EndpointPort) -> LabelList {
    let mut t = LabelList::new();
    let a = match port.port {
        Some(p) => join_host_port(addr, p),
        None => addr.to_string(),
    };
    set(&mut t, ADDRESS.to_string(), &a);
    if let Some(n) = &port.name {
        meta(&mut t, "endpointslice_port_name", n);
    }
    // Prometheus reads the protocol unconditionally; the API server always fills it in.
    meta(
        &mut t,
        "endpointslice_port_protocol",
        port.protocol.as_deref().unwrap_or(""),
    );
    if let Some(p) = port.port {
        meta(&mut t, "endpointslice_port", &p.to_string());
    }
    if let Some(a) = &port.app_protocol {
        meta(&mut t, "endpointslice_port_app_protocol", a);
    }
    let c = &ep.conditions;
    for (name, v) in [
        ("ready", c.ready),
        ("serving", c.serving),
        ("terminating", c.terminating),
    ] {
        if let Some(b) = v {
            meta(
                &mut t,
                &format!("endpointslice_endpoint_conditions_{name}"),
                bool_text(b),
            );
        }
    }
    if let Some(h) = &ep.hostname {
        meta(&mut t, "endpointslice_endpoint_hostname", h);
    }
    if let Some(r) = &ep.target_ref {
        meta(&mut t, "endpointslice_address_target_kind", &r.kind);
        meta(&mut t, "endpointslice_address_target_name", &r.name);
    }
    for (k, v) in &ep.deprecated_topology {
        let k = sanitize(k);
        set(&mut t, format!("{META}endpointslice_endpoint_topology_{k}"), v);
        set(
            &mut t,
            format!("{META}endpointslice_endpoint_topology_present_{k}"),
            PRESENT,
        );
    }
    t
}

/// The Service an EndpointSlice belongs to, by its `kubernetes.io/service-name` label.
pub fn slice_service(slice: &EndpointSlice) -> Option<&str> {
    slice
        .metadata
        .labels
        .get("kubernetes.io/service-name")
        .map(String::as_str)
}
