//! `explain`'s walk: for one packet, every tier, policy and rule consulted for the source's
//! egress and the destination's ingress, and which one decided.
//!
//! It walks the same ordered content the compiler resolves into ordered tables
//! ([`super::ordered`]), built for the endpoint whatever policies select it (for Kubernetes
//! policies alone that walk is their union), against the peer as the compiler's identities
//! see it. Tests hold it to the kernel's verdict on generated worlds.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{
    Scope,
    ordered::{
        self, CalicoContext,
        cells::{self, Peer, TierTrace},
    },
    policy_name::PolicyDirection,
    relevance::Relevance,
    tables::Failsafe,
    views,
};
use crate::{
    calico::resources::HostEndpoint,
    model::{Cluster, Pod},
};

/// A packet to explain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TracePacket {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    /// Source port (0 for protocols without ports).
    pub sport: u16,
    /// Destination port; ICMP: type << 8 | code.
    pub dport: u16,
}

/// One side of the packet's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SideTrace {
    /// The address is not a local endpoint's: this agent does not check that side.
    NotLocal,
    /// The peer is the node itself: always allowed.
    NodeTraffic { endpoint: (String, String) },
    /// Walked: the endpoint, the tiers consulted and the verdict.
    Walked {
        endpoint: (String, String),
        tiers: Vec<TierTrace>,
        verdict: ordered::Verdict,
    },
}

impl SideTrace {
    pub fn allowed(&self) -> bool {
        match self {
            SideTrace::NotLocal | SideTrace::NodeTraffic { .. } => true,
            SideTrace::Walked { verdict, .. } => verdict.allow,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketTrace {
    pub packet: TracePacket,
    pub egress: SideTrace,
    pub ingress: SideTrace,
}

impl PacketTrace {
    pub fn allowed(&self) -> bool {
        self.egress.allowed() && self.ingress.allowed()
    }
}

/// Explains `packet` in `cluster` as an agent with `scope` (and Calico's failsafe ports)
/// enforces it.
pub fn trace(cluster: &Cluster, scope: &Scope, packet: &TracePacket) -> PacketTrace {
    trace_with(cluster, scope, &Failsafe::default(), packet)
}

/// [`trace`], with these failsafe ports for host endpoints.
pub fn trace_with(
    cluster: &Cluster,
    scope: &Scope,
    failsafe: &Failsafe,
    packet: &TracePacket,
) -> PacketTrace {
    let relevance = Relevance::with_ordered(cluster, true);
    let context = CalicoContext::of(cluster, &relevance);
    let side = |own: IpAddr, peer: IpAddr, direction: PolicyDirection| -> SideTrace {
        let content = if let Some(pod) = owner(cluster, own).filter(|pod| scope.is_local(pod)) {
            let endpoint = (pod.namespace.clone(), pod.name.clone());
            if scope.host_addrs.contains(&peer) {
                return SideTrace::NodeTraffic { endpoint };
            }
            (
                endpoint,
                ordered::build_always(pod, cluster, &relevance, &context, direction),
            )
        } else if let Some(host) = host_owner(cluster, scope, own) {
            let ports = match direction {
                PolicyDirection::Ingress => &failsafe.inbound,
                PolicyDirection::Egress => &failsafe.outbound,
            };
            (
                ("HostEndpoint".to_owned(), host.name.clone()),
                ordered::build_host(host, cluster, &relevance, &context, direction, ports),
            )
        } else {
            return SideTrace::NotLocal;
        };
        let (endpoint, content) = content;
        let peer_view = owner(cluster, peer).and_then(|peer_pod| {
            let labels = cluster.namespace_labels(&peer_pod.namespace);
            views::pod_views(peer_pod, &labels, &relevance)
                .into_iter()
                .find(|(ip, _)| *ip == peer)
                .map(|(_, view)| view)
        });
        let blocks = match &peer_view {
            Some(view) => view.blocks.clone(),
            None => relevance.covering(&IpNet::from(peer)),
        };
        let facts = Peer {
            view: peer_view.as_deref(),
            owner_labels: None,
            blocks: &blocks,
            v6: Some(peer.is_ipv6()),
        };
        let (verdict, tiers) = cells::trace(
            &content,
            &context,
            &facts,
            packet.protocol,
            packet.sport,
            packet.dport,
        );
        SideTrace::Walked {
            endpoint,
            tiers,
            verdict,
        }
    };
    PacketTrace {
        packet: *packet,
        egress: side(packet.src, packet.dst, PolicyDirection::Egress),
        ingress: side(packet.dst, packet.src, PolicyDirection::Ingress),
    }
}

/// This node's host endpoint expecting an address.
fn host_owner<'a>(cluster: &'a Cluster, scope: &Scope, ip: IpAddr) -> Option<&'a HostEndpoint> {
    cluster
        .calico
        .host_endpoints
        .values()
        .find(|host| scope.is_local_host(host) && host.expected_ips.contains(&ip))
}

/// The pod owning an address: the first (by namespace and name) endpoint pod holding it, as
/// the compiler decides a shared address.
pub fn owner(cluster: &Cluster, ip: IpAddr) -> Option<&Pod> {
    cluster
        .pods
        .values()
        .find(|pod| pod.is_endpoint() && pod.ips.contains(&ip))
        .map(AsRef::as_ref)
}
