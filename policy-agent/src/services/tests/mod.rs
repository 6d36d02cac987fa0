use std::net::SocketAddr;

use super::{FrontendKind::*, *};
use crate::model::{Endpoint, EndpointPort, Labels, Service, TargetPort};

use Protocol::{Sctp, Tcp, Udp};

// The cases' table, kube-proxy's behaviour case by case.
mod cases;
use cases::cases;

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
