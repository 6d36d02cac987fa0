//! What kube-proxy programs on a node for its pods' traffic to Services: every frontend (an
//! address, protocol and port it captures) and the backends it translates that frontend to.
//!
//! The rules follow kube-proxy's own code (kubernetes `pkg/proxy`):
//!
//! - A Service is skipped if it is ExternalName or headless; per family (kube-proxy runs one
//!   proxier per family) it exists only if it has a cluster IP of that family, and then its
//!   external IPs, load-balancer IPs and node addresses of that family only are frontends
//!   (`servicechangetracker.go`, `serviceport.go`).
//! - A Service port's endpoints come from the EndpointSlices of that family labelled
//!   `kubernetes.io/service-name: <service>` in the Service's namespace, through the slice
//!   port of the same name and protocol; the backend is the endpoint's first address and that
//!   slice port's number. The same address and port from several slices is one backend; when
//!   the copies disagree, the first slice by name gives the conditions, unless a later copy is
//!   on this node and the first is not (`endpointslicecache.go`, which keeps a local copy over
//!   a remote one and otherwise whichever its map iteration met first).
//! - Usable endpoints are the ready ones, or, when none is ready, the serving and terminating
//!   ones (`topology.go`, `CategorizeEndpoints`). Cluster traffic policy uses every usable
//!   endpoint; Local uses the usable endpoints on this node (ready local ones, else serving
//!   and terminating local ones), and only an endpoint whose `nodeName` is `node` is local.
//! - ClusterIP frontends follow `internalTrafficPolicy`. External IPs, load-balancer IPs and
//!   node ports go through kube-proxy's "external" chain, which sends pod-originated traffic
//!   to the Cluster-policy endpoints whatever `externalTrafficPolicy` says (`iptables/proxier.go`:
//!   "pod traffic for ... external destinations"); `internalTrafficPolicy` does not apply to
//!   them either.
//! - A frontend without usable backends is still listed, with no backends: kube-proxy rejects
//!   (or, for a Local policy without local endpoints, drops) such traffic.
//!
//! Not modelled: topology-aware routing (zone and node hints need the node's zone label, which
//! the agent does not watch: the backends listed are then a superset of those kube-proxy
//! picks), `loadBalancerSourceRanges` (kube-proxy drops traffic to a load-balancer IP from
//! other sources), session affinity (which backend, not which set), and a kube-proxy without
//! a local-traffic detector (then pod traffic to an `externalTrafficPolicy: Local` Service's
//! external addresses goes to local endpoints only).
//!
//! Two Services claiming the same frontend (an external IP, or the same cluster IP in
//! hand-written manifests): the first by namespace and name keeps it.

use std::{
    collections::{BTreeMap, BTreeSet, btree_map::Entry},
    net::IpAddr,
};

use crate::model::{Cluster, EndpointSlice, Family, Protocol, ServicePort, ServiceType};

/// What kube-proxy on a node programs for traffic from that node's pods.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceTable {
    pub frontends: BTreeMap<Frontend, FrontendInfo>,
}

/// An address, protocol and port kube-proxy captures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Frontend {
    pub addr: IpAddr,
    pub protocol: Protocol,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendInfo {
    /// (namespace, name) of the Service.
    pub service: (String, String),
    /// The Service port's name (`""` when unnamed).
    pub port_name: String,
    pub kind: FrontendKind,
    /// Where kube-proxy translates the frontend to; empty: it rejects (or drops) the traffic.
    pub backends: BTreeSet<Backend>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FrontendKind {
    ClusterIp,
    /// One of the node's addresses and a node port.
    NodePort,
    ExternalIp,
    LoadBalancer,
}

/// An endpoint address and the port kube-proxy translates to (the EndpointSlice's, which the
/// endpointslice controller resolved from the Service's `targetPort`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Backend {
    pub addr: IpAddr,
    pub port: u16,
}

/// One endpoint of a Service port, after merging the slices' copies.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    ready: bool,
    serving: bool,
    terminating: bool,
    local: bool,
}

/// What kube-proxy on `node` programs for traffic from that node's pods, given the node's
/// addresses (where node ports are captured). `node: None` has no local endpoints.
pub fn service_table(
    cluster: &Cluster,
    node: Option<&str>,
    node_addresses: &[IpAddr],
) -> ServiceTable {
    let mut slices: BTreeMap<(&str, &str), Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in cluster.endpoint_slices.values() {
        if let (Some(service), Some(_)) = (&slice.service, slice.family) {
            slices
                .entry((slice.namespace.as_str(), service.as_str()))
                .or_default()
                .push(slice);
        }
    }
    let node = node.filter(|n| !n.is_empty());

    let mut table = ServiceTable::default();
    for ((namespace, name), service) in &cluster.services {
        if service.service_type == ServiceType::ExternalName {
            continue;
        }
        let service_slices = slices
            .get(&(namespace.as_str(), name.as_str()))
            .map(Vec::as_slice)
            .unwrap_or_default();
        for family in [Family::Ipv4, Family::Ipv6] {
            let of_family = |ip: &&IpAddr| Family::of(ip) == family;
            let Some(&cluster_ip) = service.cluster_ips.iter().find(of_family) else {
                continue;
            };
            let external_ips: Vec<IpAddr> = service
                .external_ips
                .iter()
                .filter(of_family)
                .copied()
                .collect();
            let load_balancer_ips: Vec<IpAddr> = service
                .load_balancer_ips
                .iter()
                .filter(of_family)
                .copied()
                .collect();
            let node_ips: BTreeSet<IpAddr> =
                node_addresses.iter().filter(of_family).copied().collect();
            for port in &service.ports {
                let candidates = candidates(service_slices, family, port, node);
                let cluster_backends = usable(&candidates, |_| true);
                let local_backends = usable(&candidates, |c| c.local);
                let mut add =
                    |addr: IpAddr, port_number: u16, kind, backends: &BTreeSet<Backend>| {
                        let frontend = Frontend {
                            addr,
                            protocol: port.protocol,
                            port: port_number,
                        };
                        if let Entry::Vacant(entry) = table.frontends.entry(frontend) {
                            entry.insert(FrontendInfo {
                                service: (namespace.clone(), name.clone()),
                                port_name: port.name.clone(),
                                kind,
                                backends: backends.clone(),
                            });
                        }
                    };
                let internal = if service.internal_traffic_local {
                    &local_backends
                } else {
                    &cluster_backends
                };
                add(cluster_ip, port.port, FrontendKind::ClusterIp, internal);
                for ip in &external_ips {
                    add(*ip, port.port, FrontendKind::ExternalIp, &cluster_backends);
                }
                for ip in &load_balancer_ips {
                    add(
                        *ip,
                        port.port,
                        FrontendKind::LoadBalancer,
                        &cluster_backends,
                    );
                }
                if let Some(node_port) = port.node_port {
                    for ip in &node_ips {
                        add(*ip, node_port, FrontendKind::NodePort, &cluster_backends);
                    }
                }
            }
        }
    }
    table
}

/// The endpoints of `port` in `slices` (one Service's), of `family`, merged across slices.
fn candidates(
    slices: &[&EndpointSlice],
    family: Family,
    port: &ServicePort,
    node: Option<&str>,
) -> BTreeMap<Backend, Candidate> {
    let mut candidates: BTreeMap<Backend, Candidate> = BTreeMap::new();
    for slice in slices.iter().filter(|s| s.family == Some(family)) {
        for slice_port in slice
            .ports
            .iter()
            .filter(|p| p.name == port.name && p.protocol == port.protocol)
        {
            for endpoint in &slice.endpoints {
                let Some(&addr) = endpoint.addresses.first() else {
                    continue;
                };
                if Family::of(&addr) != family {
                    continue;
                }
                let candidate = Candidate {
                    ready: endpoint.ready,
                    serving: endpoint.serving,
                    terminating: endpoint.terminating,
                    local: node.is_some() && endpoint.node_name.as_deref() == node,
                };
                let backend = Backend {
                    addr,
                    port: slice_port.port,
                };
                match candidates.entry(backend) {
                    Entry::Vacant(entry) => {
                        entry.insert(candidate);
                    }
                    Entry::Occupied(mut entry) => {
                        if candidate.local && !entry.get().local {
                            entry.insert(candidate);
                        }
                    }
                }
            }
        }
    }
    candidates
}

/// The ready candidates that `eligible` accepts, or if there are none, the serving and
/// terminating ones it accepts.
fn usable(
    candidates: &BTreeMap<Backend, Candidate>,
    eligible: impl Fn(&Candidate) -> bool,
) -> BTreeSet<Backend> {
    let pick = |test: &dyn Fn(&Candidate) -> bool| -> BTreeSet<Backend> {
        candidates
            .iter()
            .filter(|(_, c)| eligible(c) && test(c))
            .map(|(b, _)| *b)
            .collect()
    };
    let ready = pick(&|c| c.ready);
    if ready.is_empty() {
        pick(&|c| c.serving && c.terminating)
    } else {
        ready
    }
}

#[cfg(test)]
mod tests;
