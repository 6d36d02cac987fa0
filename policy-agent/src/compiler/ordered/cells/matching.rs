//! Which of a content's rules match one peer on everything but protocol and port (done once
//! per peer), and whether a matching rule's protocol and port hold for a packet. Separate
//! because this is the only part that looks at the peer itself: its labels, owners, blocks
//! and named ports.

use super::{OwnerLabels, Peer, service_account};
use crate::{
    calico::resources::Protocol as CalicoProtocol,
    compiler::ordered::{
        CalicoContext, CalicoMatch, KubernetesMatch, KubernetesPeer, KubernetesPort, Matcher,
        OrderedContent,
        owners::{self, Owner},
        port_lists::port_lists_match,
    },
    model::NamespaceMatch,
};

pub(super) fn peer_named<'a>(peer: &Peer<'a>) -> impl Iterator<Item = (u8, &'a String, u16)> {
    peer.view
        .into_iter()
        .flat_map(|view| &view.named_ports)
        .map(|(protocol, name, number)| (protocol.number(), name, *number))
}

/// Which of the content's rules match one peer on everything but protocol and port: worked
/// out once per peer, before the (protocol, port) space is cut and walked.
pub(super) struct PeerMatches<'a> {
    pub(super) content: &'a OrderedContent,
    pub(super) peer: Peer<'a>,
    /// Per policy (in evaluation order), per rule: matches apart from protocol and port.
    pub(super) matches: Vec<Vec<bool>>,
    /// The named ports of the host endpoints owning the address (Calico rules naming a port
    /// of the peer resolve on these as on a pod's).
    host_ports: Vec<&'a (u8, String, u16)>,
}

impl<'a> PeerMatches<'a> {
    pub(super) fn new(
        content: &'a OrderedContent,
        context: &'a CalicoContext,
        peer: &Peer<'a>,
    ) -> Self {
        let computed;
        let mut owners: Vec<Owner<'_>> = Vec::new();
        if let Some(view) = peer.view {
            let labels = match peer.owner_labels {
                Some(labels) => labels,
                None => {
                    computed = OwnerLabels::of(view);
                    &computed
                }
            };
            owners.push(Owner::Pod {
                labels: &labels.labels,
                namespace: &view.namespace,
                namespace_labels: &labels.namespace_labels,
                service_account: service_account(view),
            });
        }
        owners.extend(owners::set_owners_by_blocks(context, peer.blocks));
        let family = peer.v6.map(usize::from);
        let in_net = |(_, block): &(ipnet::IpNet, usize)| peer.blocks.binary_search(block).is_ok();
        let matches = content
            .tiers
            .iter()
            .flat_map(|tier| &tier.policies)
            .map(|policy| {
                policy
                    .rules
                    .iter()
                    .map(|rule| match &rule.matcher {
                        Matcher::Calico(calico) => {
                            family.is_some_and(|f| calico.local_ok[f])
                                && owners::entity_holds(&calico.peer, in_net, &owners)
                        }
                        Matcher::Kubernetes(k8s) => kubernetes_peer_matches(k8s, peer),
                    })
                    .collect()
            })
            .collect();
        let host_ports = owners::set_owners_by_blocks(context, peer.blocks)
            .flat_map(|owner| match owner {
                Owner::Set(set) => set.ports.iter(),
                _ => [].iter(),
            })
            .collect();
        PeerMatches {
            content,
            peer: *peer,
            matches,
            host_ports,
        }
    }

    /// The peer's named ports as Calico rules see them: its pod's and its host endpoints'.
    pub(super) fn named(&self) -> impl Iterator<Item = (u8, &String, u16)> + '_ {
        peer_named(&self.peer).chain(
            self.host_ports
                .iter()
                .map(|(protocol, name, number)| (*protocol, name, *number)),
        )
    }

    /// Every rule that matches the peer.
    pub(super) fn rules(&self) -> impl Iterator<Item = &'a Matcher> + '_ {
        self.content
            .tiers
            .iter()
            .flat_map(|tier| &tier.policies)
            .zip(&self.matches)
            .flat_map(|(policy, matches)| {
                policy
                    .rules
                    .iter()
                    .zip(matches)
                    .filter(|(_, m)| **m)
                    .map(|(rule, _)| &rule.matcher)
            })
    }

    pub(super) fn protocol_port_match(&self, matcher: &Matcher, protocol: u8, port: u16) -> bool {
        match matcher {
            Matcher::Calico(rule) => calico_protocol_port(rule, self, protocol, port),
            Matcher::Kubernetes(rule) => kubernetes_ports(rule, &self.peer, protocol, port),
        }
    }
}

/// The key values (type << 8 | code) an `icmp` match covers.
pub(super) fn icmp_range(kind: u8, code: Option<u8>) -> (u16, u16) {
    let base = u16::from(kind) << 8;
    match code {
        Some(code) => (base | u16::from(code), base | u16::from(code)),
        None => (base, base | 0xff),
    }
}

/// Whether a packet of `protocol` with key value `port` from/to a peer of this family is an
/// ICMP packet of the given type (and code).
fn icmp_matches(icmp: (u8, Option<u8>), peer: &Peer<'_>, protocol: u8, port: u16) -> bool {
    let own = match peer.v6 {
        Some(true) => CalicoProtocol::ICMPV6.0,
        Some(false) => CalicoProtocol::ICMP.0,
        None => return false,
    };
    let (first, last) = icmp_range(icmp.0, icmp.1);
    protocol == own && (first..=last).contains(&port)
}

fn calico_protocol_port(
    rule: &CalicoMatch,
    matching: &PeerMatches<'_>,
    protocol: u8,
    port: u16,
) -> bool {
    let peer = &matching.peer;
    if rule.protocol.is_some_and(|p| p != protocol) || rule.not_protocol == Some(protocol) {
        return false;
    }
    if rule
        .icmp
        .is_some_and(|icmp| !icmp_matches(icmp, peer, protocol, port))
    {
        return false;
    }
    if rule
        .not_icmp
        .is_some_and(|icmp| icmp_matches(icmp, peer, protocol, port))
    {
        return false;
    }
    port_lists_match(
        rule.ports.as_deref(),
        rule.not_ports.as_deref(),
        protocol,
        port,
        |name| {
            matching
                .named()
                .any(|(p, n, number)| p == protocol && n == name && number == port)
        },
    )
}

fn kubernetes_peer_matches(rule: &KubernetesMatch, peer: &Peer<'_>) -> bool {
    let Some(peers) = &rule.peers else {
        return true;
    };
    peers.iter().any(|p| match p {
        KubernetesPeer::Pods { namespaces, pods } => peer.view.is_some_and(|view| {
            let namespace_ok = match namespaces {
                NamespaceMatch::Exactly(ns) => *ns == view.namespace,
                NamespaceMatch::Selector(selector) => selector.matches(&view.namespace_labels),
            };
            namespace_ok && pods.matches(&view.labels)
        }),
        KubernetesPeer::Block(block) => peer.blocks.binary_search(block).is_ok(),
    })
}

fn kubernetes_ports(rule: &KubernetesMatch, peer: &Peer<'_>, protocol: u8, port: u16) -> bool {
    let Some(ports) = &rule.ports else {
        return true;
    };
    ports.iter().any(|entry| match entry {
        KubernetesPort::Range {
            protocol: p,
            first,
            last,
        } => *p == protocol && (*first..=*last).contains(&port),
        KubernetesPort::PeerNamed { protocol: p, name } => {
            *p == protocol
                && peer_named(peer)
                    .any(|(q, n, number)| q == protocol && n == name && number == port)
        }
    })
}
