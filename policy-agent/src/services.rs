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
mod tests {
    use std::net::SocketAddr;

    use super::{FrontendKind::*, *};
    use crate::model::{Endpoint, EndpointPort, Labels, Service, TargetPort};

    use Protocol::{Sctp, Tcp, Udp};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| ip(s)).collect()
    }

    type Ports<'a> = &'a [(&'a str, Protocol, u16)];

    fn service(name: &str, cluster_ips: &[&str], ports: Ports) -> Service {
        Service {
            namespace: "default".into(),
            name: name.into(),
            service_type: ServiceType::ClusterIp,
            cluster_ips: self::ips(cluster_ips),
            external_ips: Vec::new(),
            load_balancer_ips: Vec::new(),
            selector: Some(Labels::from([("app".into(), name.into())])),
            ports: ports
                .iter()
                .map(|(name, protocol, port)| ServicePort {
                    name: (*name).into(),
                    protocol: *protocol,
                    port: *port,
                    target_port: TargetPort::Number(*port),
                    node_port: None,
                })
                .collect(),
            internal_traffic_local: false,
        }
    }

    /// `web`: ClusterIP 10.96.0.10, port `http` TCP 80.
    fn web() -> Service {
        service("web", &["10.96.0.10"], &[("http", Tcp, 80)])
    }

    fn with_node_port(mut svc: Service, service_type: ServiceType, node_port: u16) -> Service {
        svc.service_type = service_type;
        svc.ports[0].node_port = Some(node_port);
        svc
    }

    fn local(mut svc: Service) -> Service {
        svc.internal_traffic_local = true;
        svc
    }

    fn external(mut svc: Service, addrs: &[&str]) -> Service {
        svc.external_ips = ips(addrs);
        svc
    }

    /// A slice of `service`'s in `default`, of its endpoints' family.
    fn slice(name: &str, service: &str, ports: Ports, endpoints: Vec<Endpoint>) -> EndpointSlice {
        let family = endpoints
            .first()
            .and_then(|e| e.addresses.first())
            .map_or(Family::Ipv4, Family::of);
        EndpointSlice {
            namespace: "default".into(),
            name: name.into(),
            service: Some(service.into()),
            family: Some(family),
            endpoints,
            ports: ports
                .iter()
                .map(|(name, protocol, port)| EndpointPort {
                    name: (*name).into(),
                    protocol: *protocol,
                    port: *port,
                })
                .collect(),
        }
    }

    /// `web`'s slice with port `http` at 8080.
    fn web_slice(name: &str, endpoints: Vec<Endpoint>) -> EndpointSlice {
        slice(name, "web", &[("http", Tcp, 8080)], endpoints)
    }

    fn ready(addr: &str, node: Option<&str>) -> Endpoint {
        Endpoint {
            addresses: vec![ip(addr)],
            ready: true,
            serving: true,
            terminating: false,
            node_name: node.map(Into::into),
            pod: None,
        }
    }

    /// (ready, serving, terminating).
    fn state(mut endpoint: Endpoint, conditions: (bool, bool, bool)) -> Endpoint {
        (endpoint.ready, endpoint.serving, endpoint.terminating) = conditions;
        endpoint
    }

    const TERMINATING: (bool, bool, bool) = (false, true, true);
    const GONE: (bool, bool, bool) = (false, false, true);
    const NOT_READY: (bool, bool, bool) = (false, true, false);

    struct Case {
        name: &'static str,
        services: Vec<Service>,
        slices: Vec<EndpointSlice>,
        node: Option<&'static str>,
        node_addresses: &'static [&'static str],
        /// (frontend address, protocol, port, kind, backends as `addr:port`).
        expect: &'static [(
            &'static str,
            Protocol,
            u16,
            FrontendKind,
            &'static [&'static str],
        )],
    }

    fn case(
        name: &'static str,
        services: Vec<Service>,
        slices: Vec<EndpointSlice>,
        expect: &'static [(
            &'static str,
            Protocol,
            u16,
            FrontendKind,
            &'static [&'static str],
        )],
    ) -> Case {
        Case {
            name,
            services,
            slices,
            node: Some("node-a"),
            node_addresses: &[],
            expect,
        }
    }

    fn on(mut c: Case, node: Option<&'static str>, addresses: &'static [&'static str]) -> Case {
        c.node = node;
        c.node_addresses = addresses;
        c
    }

    fn cases() -> Vec<Case> {
        let a = Some("node-a");
        let b = Some("node-b");
        vec![
            case(
                "one ready endpoint",
                vec![web()],
                vec![web_slice("web-1", vec![ready("10.42.0.11", a)])],
                &[("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.11:8080"])],
            ),
            case(
                "no EndpointSlice: the frontend is listed without backends",
                vec![web()],
                vec![],
                &[("10.96.0.10", Tcp, 80, ClusterIp, &[])],
            ),
            case(
                "slices of other Services, other namespaces and without the label are ignored",
                vec![web()],
                vec![
                    slice(
                        "api-1",
                        "api",
                        &[("http", Tcp, 8080)],
                        vec![ready("10.42.0.11", a)],
                    ),
                    EndpointSlice {
                        namespace: "other".into(),
                        ..web_slice("web-1", vec![ready("10.42.0.12", a)])
                    },
                    EndpointSlice {
                        service: None,
                        ..web_slice("web-2", vec![ready("10.42.0.13", a)])
                    },
                ],
                &[("10.96.0.10", Tcp, 80, ClusterIp, &[])],
            ),
            case(
                "each Service port takes the number of the slice port of its name",
                vec![service(
                    "web",
                    &["10.96.0.10"],
                    &[("http", Tcp, 80), ("metrics", Tcp, 9090)],
                )],
                vec![slice(
                    "web-1",
                    "web",
                    &[("metrics", Tcp, 9100), ("http", Tcp, 8080)],
                    vec![ready("10.42.0.11", a)],
                )],
                &[
                    ("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.11:8080"]),
                    ("10.96.0.10", Tcp, 9090, ClusterIp, &["10.42.0.11:9100"]),
                ],
            ),
            case(
                "a slice port of the same name but another protocol does not match",
                vec![service(
                    "dns",
                    &["10.96.0.53"],
                    &[("dns", Udp, 53), ("dns-tcp", Tcp, 53)],
                )],
                vec![slice(
                    "dns-1",
                    "dns",
                    &[("dns", Tcp, 5353), ("dns-tcp", Tcp, 5353)],
                    vec![ready("10.42.0.20", a)],
                )],
                &[
                    ("10.96.0.53", Tcp, 53, ClusterIp, &["10.42.0.20:5353"]),
                    ("10.96.0.53", Udp, 53, ClusterIp, &[]),
                ],
            ),
            case(
                "an unnamed port matches the unnamed slice port (the API server's Service)",
                vec![service("kubernetes", &["10.96.0.1"], &[("", Tcp, 443)])],
                vec![slice(
                    "kubernetes",
                    "kubernetes",
                    &[("", Tcp, 6443)],
                    vec![ready("192.168.1.10", None)],
                )],
                &[("10.96.0.1", Tcp, 443, ClusterIp, &["192.168.1.10:6443"])],
            ),
            case(
                "SCTP ports",
                vec![service("assoc", &["10.96.0.30"], &[("sctp", Sctp, 9999)])],
                vec![slice(
                    "assoc-1",
                    "assoc",
                    &[("sctp", Sctp, 9000)],
                    vec![ready("10.42.0.30", a)],
                )],
                &[("10.96.0.30", Sctp, 9999, ClusterIp, &["10.42.0.30:9000"])],
            ),
            case(
                "only ready endpoints while one is ready",
                vec![web()],
                vec![web_slice(
                    "web-1",
                    vec![
                        ready("10.42.0.11", a),
                        state(ready("10.42.0.12", a), TERMINATING),
                        state(ready("10.42.0.13", a), NOT_READY),
                        state(ready("10.42.0.14", a), GONE),
                    ],
                )],
                &[("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.11:8080"])],
            ),
            case(
                "none ready: the serving and terminating ones",
                vec![web()],
                vec![web_slice(
                    "web-1",
                    vec![
                        state(ready("10.42.0.12", a), TERMINATING),
                        state(ready("10.42.0.13", b), NOT_READY),
                        state(ready("10.42.0.14", a), GONE),
                        state(ready("10.42.0.15", b), TERMINATING),
                    ],
                )],
                &[(
                    "10.96.0.10",
                    Tcp,
                    80,
                    ClusterIp,
                    &["10.42.0.12:8080", "10.42.0.15:8080"],
                )],
            ),
            case(
                "none ready and none serving while terminating: no backends",
                vec![web()],
                vec![web_slice(
                    "web-1",
                    vec![
                        state(ready("10.42.0.13", a), NOT_READY),
                        state(ready("10.42.0.14", a), GONE),
                    ],
                )],
                &[("10.96.0.10", Tcp, 80, ClusterIp, &[])],
            ),
            case(
                "the same endpoint in two slices is one backend",
                vec![web()],
                vec![
                    web_slice("web-1", vec![ready("10.42.0.11", a)]),
                    web_slice(
                        "web-2",
                        vec![ready("10.42.0.11", a), ready("10.42.0.12", b)],
                    ),
                ],
                &[(
                    "10.96.0.10",
                    Tcp,
                    80,
                    ClusterIp,
                    &["10.42.0.11:8080", "10.42.0.12:8080"],
                )],
            ),
            case(
                "one address at two ports (a named targetPort mid-rollout) is two backends",
                vec![web()],
                vec![
                    web_slice("web-1", vec![ready("10.42.0.11", a)]),
                    slice(
                        "web-2",
                        "web",
                        &[("http", Tcp, 8081)],
                        vec![ready("10.42.0.11", a)],
                    ),
                ],
                &[(
                    "10.96.0.10",
                    Tcp,
                    80,
                    ClusterIp,
                    &["10.42.0.11:8080", "10.42.0.11:8081"],
                )],
            ),
            case(
                "only an endpoint's first address is used",
                vec![web()],
                vec![web_slice(
                    "web-1",
                    vec![Endpoint {
                        addresses: ips(&["10.42.0.11", "10.42.0.99"]),
                        ..ready("10.42.0.11", a)
                    }],
                )],
                &[("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.11:8080"])],
            ),
            case(
                "dual-stack: each family's cluster IP gets that family's slices",
                vec![service(
                    "web",
                    &["10.96.0.10", "fd00:96::10"],
                    &[("http", Tcp, 80)],
                )],
                vec![
                    web_slice("web-v4", vec![ready("10.42.0.11", a)]),
                    web_slice("web-v6", vec![ready("fd00:42::11", a)]),
                ],
                &[
                    ("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.11:8080"]),
                    ("fd00:96::10", Tcp, 80, ClusterIp, &["[fd00:42::11]:8080"]),
                ],
            ),
            case(
                "single-stack IPv4: IPv6 slices are ignored",
                vec![web()],
                vec![
                    web_slice("web-v4", vec![ready("10.42.0.11", a)]),
                    web_slice("web-v6", vec![ready("fd00:42::11", a)]),
                ],
                &[("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.11:8080"])],
            ),
            case(
                "single-stack IPv6: IPv4 slices are ignored",
                vec![service("web", &["fd00:96::10"], &[("http", Tcp, 80)])],
                vec![
                    web_slice("web-v4", vec![ready("10.42.0.11", a)]),
                    web_slice("web-v6", vec![ready("fd00:42::11", a)]),
                ],
                &[("fd00:96::10", Tcp, 80, ClusterIp, &["[fd00:42::11]:8080"])],
            ),
            case(
                "FQDN slices are ignored",
                vec![web()],
                vec![EndpointSlice {
                    family: None,
                    ..web_slice("web-1", vec![ready("10.42.0.11", a)])
                }],
                &[("10.96.0.10", Tcp, 80, ClusterIp, &[])],
            ),
            case(
                "headless: no frontends",
                vec![service("db", &[], &[("pg", Tcp, 5432)])],
                vec![slice(
                    "db-1",
                    "db",
                    &[("pg", Tcp, 5432)],
                    vec![ready("10.42.0.40", a)],
                )],
                &[],
            ),
            case(
                "ExternalName: no frontends",
                vec![Service {
                    service_type: ServiceType::ExternalName,
                    cluster_ips: Vec::new(),
                    ..external(web(), &["192.0.2.7"])
                }],
                vec![web_slice("web-1", vec![ready("10.42.0.11", a)])],
                &[],
            ),
            case(
                "internalTrafficPolicy Local: this node's endpoints only",
                vec![local(web())],
                vec![web_slice(
                    "web-1",
                    vec![ready("10.42.0.11", a), ready("10.42.0.12", b)],
                )],
                &[("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.11:8080"])],
            ),
            case(
                "internalTrafficPolicy Local without local endpoints: none",
                vec![local(web())],
                vec![web_slice("web-1", vec![ready("10.42.0.12", b)])],
                &[("10.96.0.10", Tcp, 80, ClusterIp, &[])],
            ),
            case(
                "internalTrafficPolicy Local: an endpoint without nodeName is not local",
                vec![local(web())],
                vec![web_slice("web-1", vec![ready("10.42.0.11", None)])],
                &[("10.96.0.10", Tcp, 80, ClusterIp, &[])],
            ),
            on(
                case(
                    "internalTrafficPolicy Local and no node name: nothing is local",
                    vec![local(web())],
                    vec![web_slice("web-1", vec![ready("10.42.0.11", a)])],
                    &[("10.96.0.10", Tcp, 80, ClusterIp, &[])],
                ),
                None,
                &[],
            ),
            case(
                "Local falls back to local serving-terminating ones though others are ready",
                vec![local(web())],
                vec![web_slice(
                    "web-1",
                    vec![
                        state(ready("10.42.0.11", a), TERMINATING),
                        ready("10.42.0.12", b),
                    ],
                )],
                &[("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.11:8080"])],
            ),
            case(
                "Cluster policy: a ready endpoint anywhere excludes terminating ones",
                vec![web()],
                vec![web_slice(
                    "web-1",
                    vec![
                        state(ready("10.42.0.11", a), TERMINATING),
                        ready("10.42.0.12", b),
                    ],
                )],
                &[("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.12:8080"])],
            ),
            case(
                "a duplicate's local copy wins over a remote one",
                vec![local(web())],
                vec![
                    web_slice("web-1", vec![ready("10.42.0.11", b)]),
                    web_slice("web-2", vec![ready("10.42.0.11", a)]),
                ],
                &[("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.11:8080"])],
            ),
            case(
                "otherwise a duplicate's first copy (by slice name) gives its conditions",
                vec![web()],
                vec![
                    web_slice("web-1", vec![state(ready("10.42.0.11", b), GONE)]),
                    web_slice(
                        "web-2",
                        vec![
                            ready("10.42.0.11", b),
                            state(ready("10.42.0.12", b), TERMINATING),
                        ],
                    ),
                ],
                &[("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.12:8080"])],
            ),
            case(
                "external IPs take every endpoint, whatever internalTrafficPolicy says",
                vec![local(external(web(), &["192.0.2.7"]))],
                vec![web_slice(
                    "web-1",
                    vec![ready("10.42.0.11", a), ready("10.42.0.12", b)],
                )],
                &[
                    ("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.11:8080"]),
                    (
                        "192.0.2.7",
                        Tcp,
                        80,
                        ExternalIp,
                        &["10.42.0.11:8080", "10.42.0.12:8080"],
                    ),
                ],
            ),
            case(
                "external IPs of a family without a cluster IP are not captured",
                vec![external(web(), &["192.0.2.7", "2001:db8::7"])],
                vec![web_slice("web-1", vec![ready("10.42.0.11", a)])],
                &[
                    ("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.11:8080"]),
                    ("192.0.2.7", Tcp, 80, ExternalIp, &["10.42.0.11:8080"]),
                ],
            ),
            on(
                case(
                    "NodePort: each node address of the family at the node port",
                    vec![with_node_port(web(), ServiceType::NodePort, 30080)],
                    vec![web_slice("web-1", vec![ready("10.42.0.12", b)])],
                    &[
                        ("10.0.0.5", Tcp, 30080, NodePort, &["10.42.0.12:8080"]),
                        ("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.12:8080"]),
                        ("198.18.0.1", Tcp, 30080, NodePort, &["10.42.0.12:8080"]),
                    ],
                ),
                a,
                &["198.18.0.1", "10.0.0.5", "fd00:fab::1"],
            ),
            on(
                case(
                    "node ports take every endpoint, whatever internalTrafficPolicy says",
                    vec![local(with_node_port(web(), ServiceType::NodePort, 30080))],
                    vec![web_slice(
                        "web-1",
                        vec![ready("10.42.0.11", a), ready("10.42.0.12", b)],
                    )],
                    &[
                        ("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.11:8080"]),
                        (
                            "198.18.0.1",
                            Tcp,
                            30080,
                            NodePort,
                            &["10.42.0.11:8080", "10.42.0.12:8080"],
                        ),
                    ],
                ),
                a,
                &["198.18.0.1"],
            ),
            case(
                "NodePort without node addresses: the cluster IP only",
                vec![with_node_port(web(), ServiceType::NodePort, 30080)],
                vec![web_slice("web-1", vec![ready("10.42.0.11", a)])],
                &[("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.11:8080"])],
            ),
            on(
                case(
                    "LoadBalancer: ingress IPs, node ports and the cluster IP",
                    vec![Service {
                        load_balancer_ips: ips(&["203.0.113.5"]),
                        ..with_node_port(web(), ServiceType::LoadBalancer, 31000)
                    }],
                    vec![web_slice("web-1", vec![ready("10.42.0.11", a)])],
                    &[
                        ("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.11:8080"]),
                        ("198.18.0.1", Tcp, 31000, NodePort, &["10.42.0.11:8080"]),
                        ("203.0.113.5", Tcp, 80, LoadBalancer, &["10.42.0.11:8080"]),
                    ],
                ),
                a,
                &["198.18.0.1"],
            ),
            on(
                case(
                    "dual-stack NodePort: each family's node addresses get that family's backends",
                    vec![with_node_port(
                        service("web", &["fd00:96::10", "10.96.0.10"], &[("http", Tcp, 80)]),
                        ServiceType::NodePort,
                        30080,
                    )],
                    vec![
                        web_slice("web-v4", vec![ready("10.42.0.11", a)]),
                        web_slice("web-v6", vec![ready("fd00:42::11", a)]),
                    ],
                    &[
                        ("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.11:8080"]),
                        ("198.18.0.1", Tcp, 30080, NodePort, &["10.42.0.11:8080"]),
                        ("fd00:96::10", Tcp, 80, ClusterIp, &["[fd00:42::11]:8080"]),
                        ("fd00:fab::1", Tcp, 30080, NodePort, &["[fd00:42::11]:8080"]),
                    ],
                ),
                a,
                &["198.18.0.1", "fd00:fab::1"],
            ),
            case(
                "two Services claiming one external IP and port: the first by name keeps it",
                vec![
                    external(
                        service("a", &["10.96.0.1"], &[("http", Tcp, 80)]),
                        &["192.0.2.7"],
                    ),
                    external(
                        service("b", &["10.96.0.2"], &[("http", Tcp, 80)]),
                        &["192.0.2.7"],
                    ),
                ],
                vec![
                    slice(
                        "a-1",
                        "a",
                        &[("http", Tcp, 8080)],
                        vec![ready("10.42.0.1", a)],
                    ),
                    slice(
                        "b-1",
                        "b",
                        &[("http", Tcp, 8080)],
                        vec![ready("10.42.0.2", a)],
                    ),
                ],
                &[
                    ("10.96.0.1", Tcp, 80, ClusterIp, &["10.42.0.1:8080"]),
                    ("10.96.0.2", Tcp, 80, ClusterIp, &["10.42.0.2:8080"]),
                    ("192.0.2.7", Tcp, 80, ExternalIp, &["10.42.0.1:8080"]),
                ],
            ),
        ]
    }

    fn cluster(services: &[Service], slices: &[EndpointSlice]) -> Cluster {
        let mut cluster = Cluster::default();
        for s in services {
            cluster
                .services
                .insert((s.namespace.clone(), s.name.clone()), s.clone());
        }
        for s in slices {
            cluster
                .endpoint_slices
                .insert((s.namespace.clone(), s.name.clone()), s.clone());
        }
        cluster
    }

    type Observed = BTreeMap<Frontend, (FrontendKind, BTreeSet<Backend>)>;

    #[test]
    fn service_tables_follow_kube_proxy() {
        let all = cases();
        assert!(all.len() >= 30);
        for c in all {
            let cluster = cluster(&c.services, &c.slices);
            let node_addresses = ips(c.node_addresses);
            let table = service_table(&cluster, c.node, &node_addresses);
            let observed: Observed = table
                .frontends
                .iter()
                .map(|(f, info)| (*f, (info.kind, info.backends.clone())))
                .collect();
            let expected: Observed = c
                .expect
                .iter()
                .map(|(addr, protocol, port, kind, backends)| {
                    let frontend = Frontend {
                        addr: ip(addr),
                        protocol: *protocol,
                        port: *port,
                    };
                    let backends = backends
                        .iter()
                        .map(|b| {
                            let socket: SocketAddr = b.parse().expect("backend");
                            Backend {
                                addr: socket.ip(),
                                port: socket.port(),
                            }
                        })
                        .collect();
                    (frontend, (*kind, backends))
                })
                .collect();
            assert_eq!(observed, expected, "{}", c.name);
        }
    }

    #[test]
    fn frontends_name_their_service_and_port() {
        let svc = service(
            "dns",
            &["10.96.0.53"],
            &[("dns", Udp, 53), ("dns-tcp", Tcp, 53)],
        );
        let cluster = cluster(&[svc], &[]);
        let table = service_table(&cluster, Some("node-a"), &[]);
        let named: Vec<(Protocol, (String, String), String)> = table
            .frontends
            .iter()
            .map(|(f, info)| (f.protocol, info.service.clone(), info.port_name.clone()))
            .collect();
        let dns = ("default".to_owned(), "dns".to_owned());
        assert_eq!(
            named,
            [
                (Tcp, dns.clone(), "dns-tcp".to_owned()),
                (Udp, dns, "dns".to_owned()),
            ]
        );
    }
}
