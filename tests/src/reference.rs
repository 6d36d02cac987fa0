//! The reference model: NetworkPolicy semantics as the Kubernetes API documents them,
//! evaluated directly on the API objects (k8s-openapi types), one packet at a time.
//!
//! It shares no code with the agent's model or compiler: it reads the raw objects, applies the
//! documented defaults itself, and answers by brute force. It is meant to be obviously right
//! rather than fast; property tests check the compiler (and the kernel) against it.
//!
//! Sources: the networking.k8s.io/v1 API reference and the upstream e2e tests
//! (test/e2e/network/netpol). Where they are specific:
//! * policyTypes absent: Ingress always, Egress only if `egress` has at least one rule;
//! * a pod is isolated in a direction when any policy selecting it applies to that direction;
//! * pod-to-pod traffic needs the source's egress and the destination's ingress;
//! * `ipBlock` matches pod addresses too; a named port resolves against the destination pod
//!   and never matches a non-pod address;
//! * pods without an address, terminated or host-network pods are nobody's peers;
//! * traffic between a pod and its own node is always allowed.
//!
//! ICMPv6 is a protocol no rule can name: only rules without ports match it. Its neighbour
//! discovery and MLD are link plumbing that policy does not govern only in the shapes
//! [`neighbour_plumbing`] describes (Palisade's rule, docs/architecture.md "Every packet
//! shape"), which it re-states from the RFCs' terms rather than the parser's bytes.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv6Addr},
    str::FromStr,
};

use ipnet::IpNet;
use k8s_openapi::{
    api::{
        core::v1::{Namespace, Pod},
        networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort},
    },
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};

/// Everything the verdict depends on.
#[derive(Debug, Clone, Default)]
pub struct World {
    pub namespaces: Vec<Namespace>,
    pub pods: Vec<Pod>,
    pub policies: Vec<NetworkPolicy>,
    /// The node's own addresses.
    pub node_addrs: Vec<IpAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// "TCP", "UDP", "SCTP", or "ICMPv6" (then `port` is type << 8 | code, which no rule
    /// names).
    pub protocol: &'static str,
    pub port: u16,
}

impl World {
    /// Whether `flow` is allowed (for a connection's first packet).
    pub fn allows(&self, flow: &Flow) -> bool {
        let src = live_pod(&self.pods, flow.src);
        let dst = live_pod(&self.pods, flow.dst);
        let egress_ok = match src {
            Some(pod) => self.egress_allows(pod, flow, dst),
            None => true,
        };
        let ingress_ok = match dst {
            Some(pod) => self.ingress_allows(pod, flow, src),
            None => true,
        };
        egress_ok && ingress_ok
    }

    /// Whether the source's egress allows `flow` (true when the source is no live pod).
    pub fn egress_allows_flow(&self, flow: &Flow) -> bool {
        live_pod(&self.pods, flow.src)
            .is_none_or(|pod| self.egress_allows(pod, flow, live_pod(&self.pods, flow.dst)))
    }

    /// Whether the destination's ingress allows `flow` (true when it is no live pod).
    pub fn ingress_allows_flow(&self, flow: &Flow) -> bool {
        live_pod(&self.pods, flow.dst)
            .is_none_or(|pod| self.ingress_allows(pod, flow, live_pod(&self.pods, flow.src)))
    }

    fn ingress_allows(&self, pod: &Pod, flow: &Flow, peer_pod: Option<&Pod>) -> bool {
        if self.node_addrs.contains(&flow.src) {
            return true;
        }
        let applying: Vec<&NetworkPolicy> = self
            .selecting(pod)
            .filter(|np| applies_to_ingress(np))
            .collect();
        if applying.is_empty() {
            return true;
        }
        applying.iter().any(|np| {
            let spec = np.spec.as_ref();
            spec.and_then(|s| s.ingress.as_ref())
                .into_iter()
                .flatten()
                .any(|rule| {
                    peers_match(
                        &self.namespaces,
                        rule.from.as_deref(),
                        np,
                        flow.src,
                        peer_pod,
                    ) && ports_match(rule.ports.as_deref(), flow, Some(pod))
                })
        })
    }

    fn egress_allows(&self, pod: &Pod, flow: &Flow, peer_pod: Option<&Pod>) -> bool {
        if self.node_addrs.contains(&flow.dst) {
            return true;
        }
        let applying: Vec<&NetworkPolicy> = self
            .selecting(pod)
            .filter(|np| applies_to_egress(np))
            .collect();
        if applying.is_empty() {
            return true;
        }
        applying.iter().any(|np| {
            let spec = np.spec.as_ref();
            spec.and_then(|s| s.egress.as_ref())
                .into_iter()
                .flatten()
                .any(|rule| {
                    peers_match(&self.namespaces, rule.to.as_deref(), np, flow.dst, peer_pod)
                        && ports_match(rule.ports.as_deref(), flow, peer_pod)
                })
        })
    }

    /// Policies in the pod's namespace whose podSelector matches it.
    fn selecting<'a>(&'a self, pod: &'a Pod) -> impl Iterator<Item = &'a NetworkPolicy> {
        let ns = namespace_of(&pod.metadata);
        self.policies.iter().filter(move |np| {
            namespace_of(&np.metadata) == ns
                && selector_matches(
                    np.spec.as_ref().and_then(|s| s.pod_selector.as_ref()),
                    pod.metadata.labels.as_ref(),
                )
        })
    }
}

/// The running, non-host-network pod of `pods` that owns `ip`.
pub(crate) fn live_pod(pods: &[Pod], ip: IpAddr) -> Option<&Pod> {
    pods.iter().find(|pod| {
        let spec_host_network = pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        let status = pod.status.as_ref();
        let phase = status.and_then(|s| s.phase.as_deref());
        let terminated = matches!(phase, Some("Succeeded" | "Failed"));
        !spec_host_network && !terminated && pod_ips(pod).contains(&ip)
    })
}

/// Whether one of a rule's peers (`from` or `to` of `np`) matches the peer at `peer_addr`,
/// owned by `peer_pod` if a live pod owns it. No peers match everyone.
pub(crate) fn peers_match(
    namespaces: &[Namespace],
    peers: Option<&[NetworkPolicyPeer]>,
    np: &NetworkPolicy,
    peer_addr: IpAddr,
    peer_pod: Option<&Pod>,
) -> bool {
    let Some(peers) = peers.filter(|p| !p.is_empty()) else {
        return true;
    };
    peers.iter().any(|peer| {
        if let Some(block) = &peer.ip_block {
            let Ok(cidr) = IpNet::from_str(&block.cidr) else {
                return false;
            };
            let excepted = block
                .except
                .iter()
                .flatten()
                .any(|e| IpNet::from_str(e).is_ok_and(|e| e.contains(&peer_addr)));
            return cidr.contains(&peer_addr) && !excepted;
        }
        let Some(pod) = peer_pod else {
            return false;
        };
        let pod_ns = namespace_of(&pod.metadata);
        let ns_ok = match &peer.namespace_selector {
            None => pod_ns == namespace_of(&np.metadata),
            Some(sel) => selector_matches(Some(sel), Some(&namespace_labels(namespaces, &pod_ns))),
        };
        ns_ok && selector_matches(peer.pod_selector.as_ref(), pod.metadata.labels.as_ref())
    })
}

/// A namespace's labels as selectors see them: its own, plus the name label every namespace
/// on a real API server has (also for a namespace without an object).
pub(crate) fn namespace_labels(namespaces: &[Namespace], name: &str) -> BTreeMap<String, String> {
    let mut labels = namespaces
        .iter()
        .find(|ns| ns.metadata.name.as_deref() == Some(name))
        .and_then(|ns| ns.metadata.labels.clone())
        .unwrap_or_default();
    labels.insert("kubernetes.io/metadata.name".to_owned(), name.to_owned());
    labels
}

pub(crate) fn applies_to_ingress(np: &NetworkPolicy) -> bool {
    match np.spec.as_ref().and_then(|s| s.policy_types.as_ref()) {
        None => true,
        Some(types) => types.iter().any(|t| t == "Ingress"),
    }
}

pub(crate) fn applies_to_egress(np: &NetworkPolicy) -> bool {
    let spec = np.spec.as_ref();
    match spec.and_then(|s| s.policy_types.as_ref()) {
        None => spec
            .and_then(|s| s.egress.as_ref())
            .is_some_and(|e| !e.is_empty()),
        Some(types) => types.iter().any(|t| t == "Egress"),
    }
}

/// `destination` is the pod receiving the traffic (named ports resolve against it); `None`
/// when the destination is not a pod.
pub(crate) fn ports_match(
    ports: Option<&[NetworkPolicyPort]>,
    flow: &Flow,
    destination: Option<&Pod>,
) -> bool {
    let Some(ports) = ports.filter(|p| !p.is_empty()) else {
        return true;
    };
    ports.iter().any(|port| {
        let protocol = port.protocol.as_deref().unwrap_or("TCP");
        if protocol != flow.protocol {
            return false;
        }
        match &port.port {
            None => true,
            Some(IntOrString::Int(first)) => {
                let port_number = i32::from(flow.port);
                match port.end_port {
                    None => *first == port_number,
                    Some(end) => (*first..=end).contains(&port_number),
                }
            }
            Some(IntOrString::String(name)) => destination.is_some_and(|pod| {
                pod.spec.iter().flat_map(|s| &s.containers).any(|c| {
                    c.ports.iter().flatten().any(|cp| {
                        cp.name.as_deref() == Some(name.as_str())
                            && cp.protocol.as_deref().unwrap_or("TCP") == flow.protocol
                            && cp.container_port == i32::from(flow.port)
                    })
                })
            }),
        }
    })
}

pub(crate) fn selector_matches(
    selector: Option<&LabelSelector>,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    let empty = BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
    let Some(selector) = selector else {
        return true;
    };
    let labels_ok = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions_ok = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_ok && expressions_ok
}

pub(crate) fn namespace_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> String {
    meta.namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".to_owned())
}

pub(crate) fn pod_ips(pod: &Pod) -> Vec<IpAddr> {
    let status = pod.status.as_ref();
    let listed: Vec<IpAddr> = status
        .and_then(|s| s.pod_ips.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|p| p.ip.parse().ok())
        .collect();
    if !listed.is_empty() {
        return listed;
    }
    status
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|ip| ip.parse().ok())
        .into_iter()
        .collect()
}

/// What an ICMPv6 neighbour-discovery or MLD message is to the hook of one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plumbing {
    /// Link plumbing: passes whatever the policy.
    Passes,
    /// Link plumbing if this address is the endpoint's (bound to the interface the hook runs
    /// on); otherwise decided by policy like any ICMPv6 packet.
    IfEndpoint(Ipv6Addr),
    /// An ICMPv6 packet like any other: policy decides.
    Policy,
}

/// Neighbour and router discovery (133-137) and MLD (130-132, 143) pass as plumbing only
/// between an endpoint and its own node: unfragmented, on-link (RFC 4861: hop limit 255;
/// RFC 3810: MLD with 1), to a link-scope destination (link-local unicast, a solicited-node
/// group, all-nodes, all-routers, MLDv2-routers; MLD to any link-scope group), from a
/// link-local or the unspecified address; a neighbour solicitation or advertisement may carry
/// the endpoint's own routable address as its source (sent) or destination (delivered).
/// `delivered`: the hook delivering to the endpoint (else the one it sends through).
pub fn neighbour_plumbing(
    icmp_type: u8,
    hop_limit: u8,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    fragmented: bool,
    delivered: bool,
) -> Plumbing {
    let mld = [130, 131, 132, 143].contains(&icmp_type);
    let discovery = (133..=137).contains(&icmp_type);
    let on_link = (discovery && hop_limit == 255) || (mld && hop_limit == 1);
    if fragmented || !on_link {
        return Plumbing::Policy;
    }
    let seg = dst.segments();
    let link_scope_group = seg[0] == 0xff02;
    let solicited_node =
        link_scope_group && seg[1..5] == [0, 0, 0, 0] && seg[5] == 1 && seg[6] >> 8 == 0xff;
    let well_known = [1, 2, 0x16]
        .iter()
        .any(|last| dst == Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, *last));
    let to_link =
        dst.is_unicast_link_local() || (link_scope_group && (mld || well_known || solicited_node));
    let from_link = src.is_unicast_link_local() || src.is_unspecified();
    let neighbour = icmp_type == 135 || icmp_type == 136;
    match (to_link, from_link) {
        (true, true) => Plumbing::Passes,
        // Delivered on-link from a routable source: the node's own.
        (true, false) if neighbour && delivered => Plumbing::Passes,
        (true, false) if neighbour => Plumbing::IfEndpoint(src),
        (false, _) if neighbour && delivered && !dst.is_multicast() => Plumbing::IfEndpoint(dst),
        _ => Plumbing::Policy,
    }
}
