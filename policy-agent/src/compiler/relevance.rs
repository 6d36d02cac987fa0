//! What the policies can observe of an address: the label keys their selectors read, the named
//! ports their egress rules name, and the `ipBlock`s they use.
//!
//! A pod identity keeps only what is relevant (see [`super::views`]), so pods that no selector
//! can tell apart share an identity, and a new policy that reads only keys already read (the
//! common case: `app`, `tier`, `team`...) changes no identity: it only adds its own entries.
//! A policy that reads a new key, a new named port or a new `ipBlock` changes what identities
//! mean, and the compiler then rebuilds everything (the map diff stays minimal).

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;

use super::ordered::service_match;
use crate::{
    calico::resources::{self as calico, EntityRule, Rule as CalicoRule},
    model::{Cluster, LabelSelector, NamespaceMatch, Peer, PortMatch, Protocol},
};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Relevance {
    /// Pod label keys read by the pod selectors of peers.
    pub pod_keys: BTreeSet<String>,
    /// Namespace label keys read by the namespace selectors of peers.
    pub namespace_keys: BTreeSet<String>,
    /// Named ports egress rules use: resolved against the peer pod, so part of its identity.
    pub egress_named_ports: BTreeSet<(Protocol, String)>,
    /// Every prefix the identity trie needs besides pod addresses, sorted: each `ipBlock`
    /// (cidr, except) of every peer and each network-set CIDR. Cidrs are truncated to their
    /// network (parsing does it), which [`Relevance::covering`] relies on.
    pub blocks: Vec<(IpNet, Vec<IpNet>)>,
    /// Member numbers of the blocks that egress rules combine with named ports: those need
    /// the peer pod's port numbering, so membership in them is part of the pod identity.
    pub named_port_blocks: BTreeSet<usize>,
    /// What each of `blocks` makes an address a member of, sorted: the block itself when a
    /// policy names it (an `ipBlock`, a rule's net, a whole family), and the network sets and
    /// host endpoints listing it. CIDR classes and pod identities are made of these member
    /// numbers, so the 5,000 CIDRs of one network set are one member and the addresses they
    /// cover one class, not 5,000.
    pub block_members: Vec<Vec<usize>>,
    /// The member number of each named block and each owner (network set, host endpoint).
    /// Numbers are kept from the relevance a compiler had before (see
    /// [`Relevance::numbered_after`]), so that a network set gaining a CIDR leaves every other
    /// member, and the cells keyed by members, as they were.
    numbers: BTreeMap<MemberKey, usize>,
    /// The owners' member numbers, network sets then host endpoints in the cluster's order.
    owner_members: Vec<usize>,
    /// The next member number never handed out.
    next_member: usize,
    /// Calico resources exist, so some endpoints may have ordered tables, which look a pod
    /// peer up by its pod identity alone: a pod identity then also carries its address family,
    /// its service account and its membership in every block (`nets`, network sets, and the
    /// two whole-family blocks that give every address a CIDR class that knows its family).
    pub calico: bool,
    /// The prefix lengths of the blocks' cidrs, per family (IPv6: true), so that the blocks
    /// covering a prefix are found by looking its supernets up, not by scanning every block.
    cidr_lengths: BTreeSet<(bool, u8)>,
}

/// What a member number stands for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum MemberKey {
    /// A block a policy names: (cidr, except).
    Block(IpNet, Vec<IpNet>),
    /// A NetworkSet `(namespace, name)` or GlobalNetworkSet `("", name)`.
    NetworkSet(String, String),
    HostEndpoint(String),
}

fn selector_keys<'a>(selector: &'a LabelSelector) -> impl Iterator<Item = String> + 'a {
    selector.requirements.iter().map(|r| r.key().to_owned())
}

impl Relevance {
    /// What the policies observe (with ordered tables when there are Calico resources),
    /// keeping the member numbers of `previous` for what is still there (new members get
    /// numbers never used before).
    pub fn numbered_after(cluster: &Cluster, previous: &Relevance) -> Self {
        Self::build(cluster, !cluster.calico.is_empty(), Some(previous))
    }

    /// What the policies observe when ordered tables are (`ordered`) or are not in use.
    pub fn with_ordered(cluster: &Cluster, ordered: bool) -> Self {
        Self::build(cluster, ordered, None)
    }

    /// Whether `self` and `other` differ in anything but what network sets and host
    /// endpoints list (`blocks`, members and numbers): what pod views and tables observe
    /// besides the addresses' memberships.
    pub fn same_but_owned_blocks(&self, other: &Relevance) -> bool {
        let named = |r: &Relevance| -> Vec<(MemberKey, usize)> {
            r.numbers
                .iter()
                .filter(|(key, _)| matches!(key, MemberKey::Block(..)))
                .map(|(key, number)| (key.clone(), *number))
                .collect()
        };
        self.pod_keys == other.pod_keys
            && self.namespace_keys == other.namespace_keys
            && self.egress_named_ports == other.egress_named_ports
            && self.named_port_blocks == other.named_port_blocks
            && self.calico == other.calico
            && self.owner_members == other.owner_members
            && named(self) == named(other)
    }

    fn build(cluster: &Cluster, ordered: bool, previous: Option<&Relevance>) -> Self {
        let mut relevance = Relevance::default();
        let mut blocks = BTreeSet::new();
        let mut named_port_blocks = BTreeSet::new();
        for policy in cluster.policies.values() {
            for rule in policy.ingress.iter().chain(&policy.egress).flatten() {
                for peer in rule.peers.iter().flatten() {
                    match peer {
                        Peer::Pods { namespaces, pods } => {
                            relevance.pod_keys.extend(selector_keys(pods));
                            if let NamespaceMatch::Selector(selector) = namespaces {
                                relevance.namespace_keys.extend(selector_keys(selector));
                            }
                        }
                        Peer::IpBlock { cidr, except } => {
                            blocks.insert((*cidr, except.clone()));
                        }
                    }
                }
            }
            for rule in policy.egress.iter().flatten() {
                let mut named = false;
                for port in rule.ports.iter().flatten() {
                    if let PortMatch::Named { protocol, name } = port {
                        relevance
                            .egress_named_ports
                            .insert((*protocol, name.clone()));
                        named = true;
                    }
                }
                if named {
                    for peer in rule.peers.iter().flatten() {
                        if let Peer::IpBlock { cidr, except } = peer {
                            named_port_blocks.insert((*cidr, except.clone()));
                        }
                    }
                }
            }
        }
        let mut sets: Vec<Vec<IpNet>> = Vec::new();
        let mut owner_keys: Vec<MemberKey> = Vec::new();
        if ordered {
            owner_keys = cluster
                .calico
                .network_sets
                .keys()
                .map(|(ns, name)| MemberKey::NetworkSet(ns.clone(), name.clone()))
                .chain(
                    cluster
                        .calico
                        .host_endpoints
                        .keys()
                        .map(|name| MemberKey::HostEndpoint(name.clone())),
                )
                .collect();
            relevance.calico = true;
            calico_relevance(cluster, &mut relevance, &mut blocks);
            // Network sets, then host endpoints (their `expectedIPs`): owners of addresses
            // that rule selectors match, in `CalicoContext::of`'s order.
            sets =
                cluster
                    .calico
                    .network_sets
                    .values()
                    .map(|set| set.nets.iter().map(IpNet::trunc).collect())
                    .chain(
                        cluster.calico.host_endpoints.values().map(|host| {
                            host.expected_ips.iter().copied().map(IpNet::from).collect()
                        }),
                    )
                    .collect();
        }
        // Every prefix the trie needs: the named blocks, and the network sets' CIDRs.
        let mut all: BTreeSet<(IpNet, Vec<IpNet>)> = blocks.clone();
        all.extend(sets.iter().flatten().map(|net| (*net, Vec::new())));
        relevance.blocks = all.into_iter().collect();
        relevance.cidr_lengths = relevance
            .blocks
            .iter()
            .map(|(cidr, _)| (matches!(cidr, IpNet::V6(_)), cidr.prefix_len()))
            .collect();
        // Member numbers: the previous ones where the member is still there, new ones after
        // every number handed out before.
        let mut next_member = previous.map_or(0, |p| p.next_member);
        let mut number = |key: MemberKey| -> (MemberKey, usize) {
            let n = previous
                .and_then(|p| p.numbers.get(&key).copied())
                .unwrap_or_else(|| {
                    next_member += 1;
                    next_member - 1
                });
            (key, n)
        };
        let mut numbers: BTreeMap<MemberKey, usize> = blocks
            .iter()
            .map(|(cidr, except)| number(MemberKey::Block(*cidr, except.clone())))
            .collect();
        let owner_members: Vec<usize> = owner_keys
            .into_iter()
            .map(|key| {
                let (key, n) = number(key);
                numbers.insert(key, n);
                n
            })
            .collect();
        // Which owners list each CIDR: one pass over the owners, not one per block.
        let mut listed_in: BTreeMap<IpNet, Vec<usize>> = BTreeMap::new();
        for (set, nets) in sets.iter().enumerate() {
            for net in nets {
                listed_in.entry(*net).or_default().push(owner_members[set]);
            }
        }
        relevance.block_members = relevance
            .blocks
            .iter()
            .map(|(cidr, except)| {
                let own = numbers
                    .get(&MemberKey::Block(*cidr, except.clone()))
                    .copied();
                let in_sets = listed_in
                    .get(cidr)
                    .filter(|_| except.is_empty())
                    .into_iter()
                    .flatten()
                    .copied();
                let mut members: Vec<usize> = own.into_iter().chain(in_sets).collect();
                members.sort_unstable();
                members.dedup();
                members
            })
            .collect();
        relevance.named_port_blocks = named_port_blocks
            .iter()
            .filter_map(|(cidr, except)| {
                numbers
                    .get(&MemberKey::Block(*cidr, except.clone()))
                    .copied()
            })
            .collect();
        relevance.numbers = numbers;
        relevance.owner_members = owner_members;
        relevance.next_member = next_member;
        relevance
    }

    /// Whether a pod identity carries membership in this block.
    pub fn in_pod_identity(&self, block: usize) -> bool {
        self.calico || self.named_port_blocks.contains(&block)
    }

    /// The member number of a block a policy names (an `ipBlock`, a rule's net); `None` for
    /// one no policy names.
    pub fn block_index(&self, cidr: &IpNet, except: &[IpNet]) -> Option<usize> {
        self.numbers
            .get(&MemberKey::Block(*cidr, except.to_vec()))
            .copied()
    }

    /// The member number of the `set`-th owner: network sets in the cluster's order, then
    /// host endpoints in the cluster's order.
    pub fn set_member(&self, set: usize) -> usize {
        self.owner_members.get(set).copied().unwrap_or(usize::MAX)
    }

    /// What `prefix` is a member of: the named blocks and network sets covering it (sorted).
    pub fn covering(&self, prefix: &IpNet) -> Vec<usize> {
        let v6 = matches!(prefix, IpNet::V6(_));
        let mut members: Vec<usize> = Vec::new();
        // Each supernet of the prefix at a length some block has, looked up in the sorted
        // blocks: a few dozen searches, where 10,000 network-set CIDRs made a scan of 10,000.
        for (_, len) in self.cidr_lengths.range((v6, 0)..=(v6, prefix.prefix_len())) {
            let Ok(supernet) = IpNet::new(prefix.addr(), *len).map(|net| net.trunc()) else {
                continue;
            };
            let first = self.blocks.partition_point(|(cidr, _)| *cidr < supernet);
            for (index, (_, except)) in self.blocks[first..]
                .iter()
                .enumerate()
                .take_while(|(_, (cidr, _))| *cidr == supernet)
            {
                if !except.iter().any(|e| e.contains(prefix)) {
                    members.extend(&self.block_members[first + index]);
                }
            }
        }
        members.sort_unstable();
        members.dedup();
        members
    }

    /// Every prefix the identity trie needs besides pod addresses: each block's cidr and
    /// excepts, and (when there are blocks) `0.0.0.0/0`. IPv4 lives at `::ffff:0:0/96` of the
    /// 16-byte space, inside IPv6 prefixes such as `::/0`; this entry makes every IPv4
    /// address's longest match at least /96, so an IPv6 block never decides for IPv4.
    pub fn block_prefixes(&self) -> BTreeSet<IpNet> {
        let mut prefixes: BTreeSet<IpNet> = self
            .blocks
            .iter()
            .flat_map(|(cidr, except)| std::iter::once(*cidr).chain(except.iter().copied()))
            .collect();
        if !prefixes.is_empty() {
            prefixes.insert(IpNet::V4(ipnet::Ipv4Net::default()));
        }
        prefixes
    }
}

/// What Calico's rules and network sets add: the keys their peer-side selectors read, the
/// named ports their egress destinations name, and every CIDR they can match by.
fn calico_relevance(
    cluster: &Cluster,
    relevance: &mut Relevance,
    blocks: &mut BTreeSet<(IpNet, Vec<IpNet>)>,
) {
    let mut block = |net: &IpNet| {
        blocks.insert((net.trunc(), Vec::new()));
    };
    // Every address gets a CIDR class that knows its family (`ipVersion` rules).
    block(&IpNet::V4(ipnet::Ipv4Net::default()));
    block(&IpNet::V6(ipnet::Ipv6Net::default()));
    // Network sets' CIDRs are blocks too, but members only of their set (see
    // `Relevance::block_members`).
    for policy in cluster.calico.policies.values() {
        // The peer is the source of ingress traffic and the destination of egress traffic;
        // the other side is the endpoint itself, matched when its table is built.
        let peers = policy
            .ingress
            .iter()
            .map(|rule| (rule, &rule.source, false))
            .chain(
                policy
                    .egress
                    .iter()
                    .map(|rule| (rule, &rule.destination, true)),
            );
        for (rule, entity, egress) in peers {
            entity
                .nets
                .iter()
                .chain(&entity.not_nets)
                .for_each(&mut block);
            // A Service's endpoint addresses are matched like nets (see
            // `ordered::build::policy_rules::service_matches`).
            if let Some(service) = &entity.services {
                for addr in service_match::addresses(cluster, service) {
                    block(&IpNet::from(addr));
                }
            }
            peer_keys(entity, relevance);
            if egress {
                egress_named_ports(rule, entity, relevance);
            }
        }
    }
}

fn peer_keys(entity: &EntityRule, relevance: &mut Relevance) {
    for selector in entity.selector.iter().chain(&entity.not_selector) {
        relevance
            .pod_keys
            .extend(selector.keys().into_iter().map(str::to_owned));
    }
    if let Some(selector) = &entity.namespace_selector {
        relevance
            .namespace_keys
            .extend(selector.keys().into_iter().map(str::to_owned));
    }
}

fn egress_named_ports(rule: &CalicoRule, entity: &EntityRule, relevance: &mut Relevance) {
    let protocols: Vec<Protocol> = match rule.protocol {
        Some(p) => model_protocol(p).into_iter().collect(),
        None => vec![Protocol::Tcp, Protocol::Udp, Protocol::Sctp],
    };
    for port in entity.ports.iter().chain(&entity.not_ports) {
        if let calico::PortMatch::Named(name) = port {
            for protocol in &protocols {
                relevance
                    .egress_named_ports
                    .insert((*protocol, name.clone()));
            }
        }
    }
}

/// The container-port protocol of a Calico protocol (containers only declare these three).
pub fn model_protocol(protocol: calico::Protocol) -> Option<Protocol> {
    match protocol {
        calico::Protocol::TCP => Some(Protocol::Tcp),
        calico::Protocol::UDP => Some(Protocol::Udp),
        calico::Protocol::SCTP => Some(Protocol::Sctp),
        _ => None,
    }
}
