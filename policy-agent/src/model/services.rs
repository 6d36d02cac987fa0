//! Services and EndpointSlices as the agent sees them: what kube-proxy reads of them, validated
//! (see [`super::convert::service`] and [`super::convert::endpoint_slice`]).
//!
//! What kube-proxy programs from these for a node is [`crate::services::service_table`].

use std::net::IpAddr;

use super::{Labels, Protocol};

/// Label an EndpointSlice carries to name the Service it belongs to (in its own namespace).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }

    /// As the API spells it (`ipFamilies`, an EndpointSlice's `addressType`).
    pub fn api_name(self) -> &'static str {
        match self {
            Family::Ipv4 => "IPv4",
            Family::Ipv6 => "IPv6",
        }
    }
}

/// `spec.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceType {
    ClusterIp,
    NodePort,
    LoadBalancer,
    ExternalName,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub namespace: String,
    pub name: String,
    pub service_type: ServiceType,
    /// `spec.clusterIPs`, else `spec.clusterIP`: at most one per family; empty for a headless
    /// Service (`None`), for ExternalName ones, and when unset (a manifest for the file
    /// datastore, which has no allocator): such a Service has no frontends.
    pub cluster_ips: Vec<IpAddr>,
    /// `spec.externalIPs`.
    pub external_ips: Vec<IpAddr>,
    /// `status.loadBalancer.ingress[].ip` of the ingress points in `VIP` mode (the default):
    /// kube-proxy does not capture `Proxy`-mode ones, whose load balancer sends traffic to
    /// the nodes instead.
    pub load_balancer_ips: Vec<IpAddr>,
    /// `spec.selector`; `None` when absent or empty: the Service's EndpointSlices are
    /// managed by someone else (the API server's `default/kubernetes`, or a user).
    pub selector: Option<Labels>,
    pub ports: Vec<ServicePort>,
    /// `spec.internalTrafficPolicy: Local`: ClusterIP traffic goes to endpoints on the
    /// client's own node only.
    pub internal_traffic_local: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePort {
    /// `""` when unnamed (allowed only for a Service's single port).
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    /// Defaults to `port`, as the API server defaults it.
    pub target_port: TargetPort,
    /// For NodePort and LoadBalancer Services (`None` when not allocated).
    pub node_port: Option<u16>,
}

/// A Service port's `targetPort`: what the endpointslice controller resolves on each pod. Not
/// read by kube-proxy, which takes the port from the EndpointSlices.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TargetPort {
    Number(u16),
    /// A container port name (an IANA_SVC_NAME).
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSlice {
    pub namespace: String,
    pub name: String,
    /// The `kubernetes.io/service-name` label: the Service (in `namespace`) these endpoints
    /// serve. kube-proxy ignores slices without it.
    pub service: Option<String>,
    /// From `addressType`; `None` for `FQDN` slices, which kube-proxy ignores (their
    /// endpoints are validated but not kept: they have no IP addresses).
    pub family: Option<Family>,
    pub endpoints: Vec<Endpoint>,
    /// Ports without a number ("all ports", which kube-proxy does not implement) are left out.
    pub ports: Vec<EndpointPort>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Of the slice's family. kube-proxy uses the first only, as the API documents.
    pub addresses: Vec<IpAddr>,
    /// `conditions.ready`, `true` when unset (kube-proxy's reading of "unknown").
    pub ready: bool,
    /// `conditions.serving`, `true` when unset.
    pub serving: bool,
    /// `conditions.terminating`, `false` when unset.
    pub terminating: bool,
    pub node_name: Option<String>,
    /// `targetRef.name` when `targetRef.kind` is `Pod`.
    pub pod: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EndpointPort {
    /// `""` when unnamed; matches the Service port of the same name.
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
}
