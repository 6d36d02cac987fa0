//! Peer identities: the classes of addresses that every peer selector treats alike.
//!
//! The trie holds a prefix for each pod address and for each `ipBlock` cidr and except. For
//! any address, the longest matching prefix decides which selectors match it (prefixes are
//! either nested or disjoint, so membership in every other prefix follows from the longest
//! one), and the class of a prefix is the set of peers matching it. Pods with the same labels
//! in namespaces with the same labels land in one class, which is what keeps the rule map
//! small: rules are keyed by class, not by pod.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use ipnet::IpNet;
use policy_common::{
    IPV4_MAPPED_PREFIX_BITS, identity as reserved,
    identity::{IdentityKey, IdentityValue},
    ipv4_mapped,
};

use super::{LpmKey, Scope};
use crate::model::{Cluster, NamespaceMatch, Peer, Pod, PortMatch, Protocol};

/// Everything that decides how rules treat an address. Owned (not borrowed) because the
/// allocator remembers classes across compiles.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct IdentityClass {
    /// Peers (of any policy) that match the address, sorted.
    pub peers: Vec<Peer>,
    /// For pods: the number of each named port that some egress rule names, as
    /// (protocol, name, port). Egress named ports resolve against the peer pod, so pods that
    /// number a name differently must be told apart.
    pub named_ports: Vec<(Protocol, String, u16)>,
}

impl IdentityClass {
    /// An address no selector matches behaves exactly like an address outside every prefix.
    pub fn is_world(&self) -> bool {
        self.peers.is_empty() && self.named_ports.is_empty()
    }
}

/// All peers of all policies, and the named ports egress rules refer to.
pub struct PeerIndex {
    pub peers: BTreeSet<Peer>,
    pub egress_named_ports: BTreeSet<(Protocol, String)>,
}

impl PeerIndex {
    pub fn new(cluster: &Cluster) -> Self {
        let mut peers = BTreeSet::new();
        let mut egress_named_ports = BTreeSet::new();
        for policy in cluster.policies.values() {
            for rule in policy.ingress.iter().chain(&policy.egress).flatten() {
                peers.extend(rule.peers.iter().flatten().cloned());
            }
            for rule in policy.egress.iter().flatten() {
                for port in rule.ports.iter().flatten() {
                    if let PortMatch::Named { protocol, name } = port {
                        egress_named_ports.insert((*protocol, name.clone()));
                    }
                }
            }
        }
        Self {
            peers,
            egress_named_ports,
        }
    }
}

pub struct Classes {
    pub prefixes: BTreeMap<IpNet, IdentityClass>,
}

pub fn classify(cluster: &Cluster, index: &PeerIndex) -> Classes {
    let mut prefixes: BTreeMap<IpNet, IdentityClass> = BTreeMap::new();
    let blocks: Vec<(&Peer, &IpNet, &[IpNet])> = index
        .peers
        .iter()
        .filter_map(|peer| match peer {
            Peer::IpBlock { cidr, except } => Some((peer, cidr, except.as_slice())),
            Peer::Pods { .. } => None,
        })
        .collect();
    let mut block_prefixes: BTreeSet<IpNet> = blocks
        .iter()
        .flat_map(|(_, cidr, except)| std::iter::once(**cidr).chain(except.iter().copied()))
        .collect();
    if !block_prefixes.is_empty() {
        // IPv4 lives at ::ffff:0:0/96 of the 16-byte space, inside IPv6 prefixes such as ::/0.
        // This entry makes every IPv4 address's longest match at least /96, so an IPv6 block
        // never decides for IPv4 (and its class is computed with IPv4's own blocks).
        block_prefixes.insert(IpNet::V4(ipnet::Ipv4Net::default()));
    }
    for prefix in block_prefixes {
        let peers = blocks
            .iter()
            .filter(|(_, cidr, except)| {
                cidr.contains(&prefix) && !except.iter().any(|e| e.contains(&prefix))
            })
            .map(|(peer, _, _)| (*peer).clone())
            .collect();
        prefixes.insert(
            prefix,
            IdentityClass {
                peers,
                named_ports: Vec::new(),
            },
        );
    }

    for pod in cluster.pods.values().filter(|p| p.is_endpoint()) {
        let ns_labels = cluster.namespace_labels(&pod.namespace);
        let named_ports: Vec<(Protocol, String, u16)> = index
            .egress_named_ports
            .iter()
            .filter_map(|(protocol, name)| {
                named_port(pod, *protocol, name).map(|port| (*protocol, name.clone(), port))
            })
            .collect();
        for ip in &pod.ips {
            let peers = index
                .peers
                .iter()
                .filter(|peer| match peer {
                    Peer::Pods { namespaces, pods } => {
                        let ns_ok = match namespaces {
                            NamespaceMatch::Exactly(ns) => *ns == pod.namespace,
                            NamespaceMatch::Selector(sel) => sel.matches(&ns_labels),
                        };
                        ns_ok && pods.matches(&pod.labels)
                    }
                    Peer::IpBlock { cidr, except } => {
                        cidr.contains(ip) && !except.iter().any(|e| e.contains(ip))
                    }
                })
                .cloned()
                .collect();
            let class = IdentityClass {
                peers,
                named_ports: named_ports.clone(),
            };
            // Two pods claiming one address (a stale object): keep what either is allowed,
            // deterministically, by merging the classes.
            prefixes
                .entry(IpNet::from(*ip))
                .and_modify(|existing| {
                    if existing.is_world() || existing != &class {
                        merge(existing, &class);
                    }
                })
                .or_insert(class);
        }
    }
    Classes { prefixes }
}

fn merge(into: &mut IdentityClass, other: &IdentityClass) {
    into.peers.extend(other.peers.iter().cloned());
    into.peers.sort();
    into.peers.dedup();
    into.named_ports.extend(other.named_ports.iter().cloned());
    into.named_ports.sort();
    into.named_ports.dedup();
}

/// The number of the pod's container port called `name` for `protocol`.
pub fn named_port(pod: &Pod, protocol: Protocol, name: &str) -> Option<u16> {
    pod.container_ports
        .iter()
        .find(|p| p.protocol == protocol && p.name.as_deref() == Some(name))
        .map(|p| p.port)
}

/// 16-byte map form of an address.
pub fn addr16(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => ipv4_mapped(v4.octets()),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Prefix length of `net` in the 16-byte form.
pub fn prefix16(net: &IpNet) -> u32 {
    match net {
        IpNet::V4(v4) => IPV4_MAPPED_PREFIX_BITS + u32::from(v4.prefix_len()),
        IpNet::V6(v6) => u32::from(v6.prefix_len()),
    }
}

pub fn emit(
    classes: &Classes,
    ids: &BTreeMap<IdentityClass, u32>,
    scope: &Scope,
    out: &mut BTreeMap<LpmKey<IdentityKey>, IdentityValue>,
) {
    for (net, class) in &classes.prefixes {
        let identity = if class.is_world() {
            reserved::WORLD
        } else {
            ids.get(class).copied().unwrap_or(reserved::WORLD)
        };
        out.insert(lpm_key(net), IdentityValue { identity });
    }
    for ip in &scope.host_addrs {
        out.insert(
            lpm_key(&IpNet::from(*ip)),
            IdentityValue {
                identity: reserved::HOST,
            },
        );
    }
}

fn lpm_key(net: &IpNet) -> LpmKey<IdentityKey> {
    LpmKey {
        prefix_len: prefix16(net),
        data: IdentityKey {
            addr: addr16(net.network()),
        },
    }
}

/// Reverse lookups the rule expansion needs.
pub struct IdentityTable {
    /// Identity numbers whose class contains the peer.
    pub by_peer: BTreeMap<Peer, Vec<u32>>,
    /// For each (protocol, name) an egress rule names: (identity, port number) of the classes
    /// that resolve it.
    pub by_named_port: BTreeMap<(Protocol, String), Vec<(u32, u16)>>,
}

impl IdentityTable {
    pub fn new(ids: &BTreeMap<IdentityClass, u32>) -> Self {
        let mut by_peer: BTreeMap<Peer, Vec<u32>> = BTreeMap::new();
        let mut by_named_port: BTreeMap<(Protocol, String), Vec<(u32, u16)>> = BTreeMap::new();
        for (class, id) in ids {
            for peer in &class.peers {
                by_peer.entry(peer.clone()).or_default().push(*id);
            }
            for (protocol, name, port) in &class.named_ports {
                by_named_port
                    .entry((*protocol, name.clone()))
                    .or_default()
                    .push((*id, *port));
            }
        }
        Self {
            by_peer,
            by_named_port,
        }
    }
}
