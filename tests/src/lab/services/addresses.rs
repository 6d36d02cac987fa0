//! What the lab assigns a Service, and from where: the ClusterIP and nodePort ranges, the
//! labels of derived EndpointSlices, and the plans every step's Services are held to.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::lab::scenario::{Family, Protocol, ScenarioError};

/// Where the lab assigns ClusterIPs (the kube-apiserver's default `--service-cluster-ip-range`
/// for IPv4; a /108 for IPv6, as kubeadm's dual-stack examples use).
pub const SERVICE_RANGE_V4: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 96, 0, 0), 16);
pub const SERVICE_RANGE_V6: (Ipv6Addr, u8) = (Ipv6Addr::new(0xfd00, 0x96, 0, 0, 0, 0, 0, 0), 108);
/// The first address the lab hands out in each range (`.1` is the `kubernetes` Service's on a
/// real cluster; `.10` kube-dns's by convention, which scenarios may give explicitly).
pub(super) const FIRST_ASSIGNED_HOST: u32 = 20;
/// The default `--service-node-port-range`.
pub const NODE_PORT_RANGE: (u16, u16) = (30000, 32767);
/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
pub(super) const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub(super) const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// The interface in every node namespace that the Service ranges are routed to (as a real
/// node's default route would take them), so that proxy ARP on the pods' interfaces answers
/// for ClusterIPs; it carries the node's address when the node has no fabric.
pub const SERVICE_IF: &str = "lab-svc0";
/// The other end of [`SERVICE_IF`].
pub(super) const SERVICE_PEER: &str = "lab-svc1";
/// A container port of this name and protocol UDP serves DNS (the kube-dns pattern).
pub const DNS_PORT_NAME: &str = "dns";
/// The cluster domain the DNS responder answers for.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// One port of a Service, as the lab completed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortPlan {
    pub name: String,
    pub port: u16,
    pub protocol: Protocol,
    pub target: IntOrString,
    pub node_port: Option<u16>,
}

/// What the lab assigned to a Service (stable across the steps that apply new versions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePlan {
    pub namespace: String,
    pub name: String,
    /// Primary family first.
    pub families: Vec<Family>,
    pub cluster_ips: Vec<IpAddr>,
    pub policy: String,
    /// Every port any version of the Service declares, with its assigned nodePort for
    /// NodePort Services (kept when a later version drops and re-adds the port).
    pub ports: Vec<PortPlan>,
    pub node_port_type: bool,
    /// Whether any version has a selector (the lab derives its EndpointSlices).
    pub selector: bool,
}

impl ServicePlan {
    pub fn cluster_ip(&self, family: Family) -> Option<IpAddr> {
        self.cluster_ips
            .iter()
            .copied()
            .find(|ip| family_of(*ip) == family)
    }
}

/// Every Service of a scenario, by (namespace, name).
#[derive(Debug, Clone, Default)]
pub struct ServicePlans {
    pub services: BTreeMap<(String, String), ServicePlan>,
    /// Whether the scenario has Services or EndpointSlices at all (else the lab sets up
    /// nothing for them).
    pub any: bool,
}

pub fn family_of(ip: IpAddr) -> Family {
    if ip.is_ipv4() { Family::V4 } else { Family::V6 }
}

pub(super) fn parse_family(at: &str, s: &str) -> Result<Family, ScenarioError> {
    match s {
        "IPv4" => Ok(Family::V4),
        "IPv6" => Ok(Family::V6),
        other => Err(bad(at, format!("ipFamilies: unknown family {other}"))),
    }
}

pub(super) fn bad(at: &str, detail: String) -> ScenarioError {
    ScenarioError::BadService {
        at: at.to_owned(),
        detail,
    }
}

pub(super) fn in_range(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let (net, len) = SERVICE_RANGE_V4;
            u32::from(v4) >> (32 - len) == u32::from(net) >> (32 - len)
        }
        IpAddr::V6(v6) => {
            let (net, len) = SERVICE_RANGE_V6;
            u128::from(v6) >> (128 - len) == u128::from(net) >> (128 - len)
        }
    }
}

pub(super) fn parse_protocol(at: &str, p: Option<&str>) -> Result<Protocol, ScenarioError> {
    match p.unwrap_or("TCP") {
        "TCP" => Ok(Protocol::Tcp),
        "UDP" => Ok(Protocol::Udp),
        "SCTP" => Ok(Protocol::Sctp),
        other => Err(bad(at, format!("unknown protocol {other}"))),
    }
}

pub(super) fn port_u16(at: &str, what: &str, n: i32) -> Result<u16, ScenarioError> {
    u16::try_from(n)
        .ok()
        .filter(|n| *n != 0)
        .ok_or_else(|| bad(at, format!("{what} {n} is out of range")))
}
