//! Peer identities: the classes of addresses that the policies' peers treat alike.
//!
//! Two independent classifications, so that neither multiplies the other:
//!
//! * **Pod classes**, for each pod address: the pod/namespace-selector peers (of any policy)
//!   that match the pod, and how it numbers the named ports egress rules use. Pods with the
//!   same labels in namespaces with the same labels share a class wherever their addresses are.
//! * **CIDR classes**, for each prefix in the trie (pod addresses, and every `ipBlock` cidr and
//!   except): the `ipBlock` peers that cover it. For any address the longest matching prefix
//!   decides (prefixes are nested or disjoint, so membership in every other prefix follows from
//!   the longest one).
//!
//! Rules with selector peers are keyed by pod class, rules with `ipBlock` peers by CIDR class;
//! an `ipBlock` covering every pod therefore costs one entry per port block, not one per pod
//! class. The one exception: an `ipBlock` used with an egress named port needs the pod's port
//! numbering too, so such blocks are also folded into pod classes.

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

use super::{LpmKey, Scope, allocator::Allocator};
use crate::model::{Cluster, NamespaceMatch, Peer, Pod, PortMatch, Protocol};

/// Everything that decides how rules treat an address, for one kind of peer. Owned (not
/// borrowed) because the allocator remembers classes across compiles.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IdentityClass {
    Pod {
        /// Ids of the selector peers (and named-port ipBlocks) matching the pod, sorted.
        peers: Vec<PeerId>,
        /// (protocol, name, port) for each named port an egress rule uses that the pod
        /// numbers: egress named ports resolve against the peer pod.
        named_ports: Vec<(Protocol, String, u16)>,
    },
    Cidr {
        /// Ids of the `ipBlock` peers covering the prefix, sorted.
        peers: Vec<PeerId>,
    },
}

impl IdentityClass {
    /// A class no peer matches behaves exactly like an address outside every prefix.
    pub fn is_world(&self) -> bool {
        match self {
            IdentityClass::Pod { peers, named_ports } => peers.is_empty() && named_ports.is_empty(),
            IdentityClass::Cidr { peers } => peers.is_empty(),
        }
    }

    fn peers(&self) -> &[PeerId] {
        match self {
            IdentityClass::Pod { peers, .. } | IdentityClass::Cidr { peers } => peers,
        }
    }
}

/// A peer's number: classes hold these instead of copies of the selectors, which keeps them
/// cheap to build, compare and remember. Stable across compiles (see `Compiler`).
pub type PeerId = u32;

/// All peers of all policies, and what the classification needs to know about them.
pub struct PeerIndex {
    pub peers: BTreeMap<Peer, PeerId>,
    pub egress_named_ports: BTreeSet<(Protocol, String)>,
    /// `ipBlock` peers of egress rules that use named ports: folded into pod classes.
    pub named_port_blocks: BTreeSet<PeerId>,
}

impl PeerIndex {
    pub fn new(cluster: &Cluster, numbering: &mut Allocator<Peer>) -> Self {
        let mut peers = BTreeSet::new();
        let mut egress_named_ports = BTreeSet::new();
        let mut named_port_blocks = BTreeSet::new();
        for policy in cluster.policies.values() {
            for rule in policy.ingress.iter().chain(&policy.egress).flatten() {
                peers.extend(rule.peers.iter().flatten().cloned());
            }
            for rule in policy.egress.iter().flatten() {
                let mut named = false;
                for port in rule.ports.iter().flatten() {
                    if let PortMatch::Named { protocol, name } = port {
                        egress_named_ports.insert((*protocol, name.clone()));
                        named = true;
                    }
                }
                if named {
                    named_port_blocks.extend(
                        rule.peers
                            .iter()
                            .flatten()
                            .filter(|p| matches!(p, Peer::IpBlock { .. }))
                            .cloned(),
                    );
                }
            }
        }
        let peers = numbering.assign(peers);
        let named_port_blocks = named_port_blocks
            .iter()
            .filter_map(|peer| peers.get(peer).copied())
            .collect();
        Self {
            peers,
            egress_named_ports,
            named_port_blocks,
        }
    }
}

/// The classes of one trie prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixClasses {
    pub pod: IdentityClass,
    pub cidr: IdentityClass,
}

pub struct Classes {
    pub prefixes: BTreeMap<IpNet, PrefixClasses>,
}

fn block_covers(cidr: &IpNet, except: &[IpNet], prefix: &IpNet) -> bool {
    cidr.contains(prefix) && !except.iter().any(|e| e.contains(prefix))
}

pub fn classify(cluster: &Cluster, index: &PeerIndex) -> Classes {
    let blocks: Vec<(PeerId, &IpNet, &[IpNet])> = index
        .peers
        .iter()
        .filter_map(|(peer, id)| match peer {
            Peer::IpBlock { cidr, except } => Some((*id, cidr, except.as_slice())),
            Peer::Pods { .. } => None,
        })
        .collect();
    let covering = |prefix: &IpNet| -> Vec<PeerId> {
        let mut ids: Vec<PeerId> = blocks
            .iter()
            .filter(|(_, cidr, except)| block_covers(cidr, except, prefix))
            .map(|(id, _, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    };
    let cidr_class = |prefix: &IpNet| IdentityClass::Cidr {
        peers: covering(prefix),
    };
    let no_pod = IdentityClass::Pod {
        peers: Vec::new(),
        named_ports: Vec::new(),
    };

    let mut prefixes: BTreeMap<IpNet, PrefixClasses> = BTreeMap::new();
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
        prefixes.insert(
            prefix,
            PrefixClasses {
                pod: no_pod.clone(),
                cidr: cidr_class(&prefix),
            },
        );
    }

    let selector_peers: Vec<(PeerId, &NamespaceMatch, &crate::model::LabelSelector)> = index
        .peers
        .iter()
        .filter_map(|(peer, id)| match peer {
            Peer::Pods { namespaces, pods } => Some((*id, namespaces, pods)),
            Peer::IpBlock { .. } => None,
        })
        .collect();
    for pod in cluster.pods.values().filter(|p| p.is_endpoint()) {
        let ns_labels = cluster.namespace_labels(&pod.namespace);
        let selected_by: Vec<PeerId> = selector_peers
            .iter()
            .filter(|(_, namespaces, pods)| {
                let ns_ok = match namespaces {
                    NamespaceMatch::Exactly(ns) => *ns == pod.namespace,
                    NamespaceMatch::Selector(sel) => sel.matches(&ns_labels),
                };
                ns_ok && pods.matches(&pod.labels)
            })
            .map(|(id, _, _)| *id)
            .collect();
        let named_ports: Vec<(Protocol, String, u16)> = index
            .egress_named_ports
            .iter()
            .filter_map(|(protocol, name)| {
                named_port(pod, *protocol, name).map(|port| (*protocol, name.clone(), port))
            })
            .collect();
        for ip in &pod.ips {
            let prefix = IpNet::from(*ip);
            let mut peers = selected_by.clone();
            if !index.named_port_blocks.is_empty() {
                peers.extend(
                    covering(&prefix)
                        .into_iter()
                        .filter(|id| index.named_port_blocks.contains(id)),
                );
            }
            peers.sort_unstable();
            let classes = PrefixClasses {
                pod: IdentityClass::Pod {
                    peers,
                    named_ports: named_ports.clone(),
                },
                cidr: cidr_class(&prefix),
            };
            // Two pods claiming one address (a stale object): keep what either is allowed,
            // deterministically, by merging the classes.
            match prefixes.get_mut(&prefix) {
                Some(existing) if existing.pod != no_pod => merge(&mut existing.pod, &classes.pod),
                Some(existing) => existing.pod = classes.pod,
                None => {
                    prefixes.insert(prefix, classes);
                }
            }
        }
    }
    Classes { prefixes }
}

fn merge(into: &mut IdentityClass, other: &IdentityClass) {
    if let (
        IdentityClass::Pod { peers, named_ports },
        IdentityClass::Pod {
            peers: other_peers,
            named_ports: other_named,
        },
    ) = (into, other)
    {
        peers.extend(other_peers.iter().copied());
        peers.sort_unstable();
        peers.dedup();
        named_ports.extend(other_named.iter().cloned());
        named_ports.sort();
        named_ports.dedup();
    }
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
    let id = |class: &IdentityClass| {
        if class.is_world() {
            reserved::WORLD
        } else {
            ids.get(class).copied().unwrap_or(reserved::WORLD)
        }
    };
    for (net, classes) in &classes.prefixes {
        out.insert(
            lpm_key(net),
            IdentityValue {
                pod_identity: id(&classes.pod),
                cidr_identity: id(&classes.cidr),
            },
        );
    }
    for ip in &scope.host_addrs {
        out.insert(
            lpm_key(&IpNet::from(*ip)),
            IdentityValue {
                pod_identity: reserved::HOST,
                cidr_identity: reserved::WORLD,
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
pub struct IdentityTable<'a> {
    peers: &'a BTreeMap<Peer, PeerId>,
    /// Identity numbers (pod or CIDR) whose class contains the peer.
    by_peer: BTreeMap<PeerId, Vec<u32>>,
    /// For each (protocol, name) an egress rule names: (identity, port number) of the classes
    /// that resolve it.
    pub by_named_port: BTreeMap<(Protocol, String), Vec<(u32, u16)>>,
}

impl<'a> IdentityTable<'a> {
    pub fn new(ids: &BTreeMap<IdentityClass, u32>, index: &'a PeerIndex) -> Self {
        let mut by_peer: BTreeMap<PeerId, Vec<u32>> = BTreeMap::new();
        let mut by_named_port: BTreeMap<(Protocol, String), Vec<(u32, u16)>> = BTreeMap::new();
        for (class, id) in ids {
            for peer in class.peers() {
                by_peer.entry(*peer).or_default().push(*id);
            }
            if let IdentityClass::Pod { named_ports, .. } = class {
                for (protocol, name, port) in named_ports {
                    by_named_port
                        .entry((*protocol, name.clone()))
                        .or_default()
                        .push((*id, *port));
                }
            }
        }
        Self {
            peers: &index.peers,
            by_peer,
            by_named_port,
        }
    }

    /// Identity numbers (pod or CIDR) whose class contains `peer`.
    pub fn identities_of(&self, peer: &Peer) -> &[u32] {
        self.peers
            .get(peer)
            .and_then(|id| self.by_peer.get(id))
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}
