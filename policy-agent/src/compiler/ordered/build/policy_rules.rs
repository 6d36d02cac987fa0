//! Each applying policy's rules as the ordered table matches them: Calico rules with the
//! endpoint's side decided and `services` expanded into the rules they amount to, Kubernetes
//! rules with ingress named ports resolved. Separate from which policies apply and in which
//! order (`tiers.rs`).

use std::net::IpAddr;

use ipnet::IpNet;

use super::{
    local_side::Local,
    tiers::{Applying, Source},
};
use crate::{
    calico::resources::{self as calico, Action, EntityRule},
    cluster_policy,
    compiler::{
        ordered::{
            CalicoMatch, KubernetesMatch, KubernetesPeer, KubernetesPort, Matcher, OrderedPolicy,
            OrderedRule, PeerEntity, PortRule, ServiceAccounts, service_match,
        },
        policy_name::{PolicyDirection, PolicyKind, PolicyName},
        relevance::Relevance,
    },
    model::{Cluster, Peer, PortMatch, Rule},
};

pub(super) fn ordered_policy(
    policy: &Applying<'_>,
    cluster: &Cluster,
    relevance: &Relevance,
    local: &Local<'_>,
    direction: PolicyDirection,
) -> OrderedPolicy {
    match policy.source {
        Source::Calico(calico_policy) => {
            let rules = match direction {
                PolicyDirection::Ingress => &calico_policy.ingress,
                PolicyDirection::Egress => &calico_policy.egress,
            };
            // An administrators' policy is named as written, and its rules by their written
            // position (one written rule is several Calico rules).
            let origin = cluster_policy::origin_of(&calico_policy.name);
            let name = match origin {
                Some((kind, _, name)) => PolicyName {
                    kind: PolicyKind::Cluster(kind),
                    namespace: String::new(),
                    name: name.to_owned(),
                },
                None => PolicyName {
                    kind: if calico_policy.namespace.is_some() {
                        PolicyKind::CalicoNetworkPolicy
                    } else {
                        PolicyKind::GlobalNetworkPolicy
                    },
                    namespace: calico_policy.namespace.clone().unwrap_or_default(),
                    name: calico_policy.name.clone(),
                },
            };
            OrderedPolicy {
                name,
                rules: rules
                    .iter()
                    .enumerate()
                    .flat_map(|(index, rule)| {
                        let index = match origin {
                            Some(_) => {
                                cluster_policy::translate::written_index(rule).unwrap_or(index)
                            }
                            None => index,
                        };
                        let matched = calico_match(
                            rule,
                            calico_policy.namespace.as_deref(),
                            relevance,
                            local,
                            direction,
                        );
                        service_matches(rule, matched, cluster, relevance, direction)
                            .into_iter()
                            .map(move |matcher| OrderedRule {
                                action: rule.action,
                                index: rule_index(index),
                                matcher: Matcher::Calico(Box::new(matcher)),
                            })
                    })
                    .collect(),
            }
        }
        Source::Kubernetes(np) => {
            let rules = match direction {
                PolicyDirection::Ingress => np.ingress.as_deref(),
                PolicyDirection::Egress => np.egress.as_deref(),
            };
            OrderedPolicy {
                name: PolicyName {
                    kind: PolicyKind::Kubernetes,
                    namespace: np.namespace.clone(),
                    name: np.name.clone(),
                },
                rules: rules
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                    .map(|(index, rule)| OrderedRule {
                        action: Action::Allow,
                        index: rule_index(index),
                        matcher: Matcher::Kubernetes(kubernetes_match(
                            rule, local, relevance, direction,
                        )),
                    })
                    .collect(),
            }
        }
    }
}

pub(super) fn rule_index(index: usize) -> u16 {
    u16::try_from(index).unwrap_or(u16::MAX).min(0xfffe)
}

fn calico_match(
    rule: &calico::Rule,
    policy_namespace: Option<&str>,
    relevance: &Relevance,
    local: &Local<'_>,
    direction: PolicyDirection,
) -> CalicoMatch {
    let (local_side, peer_side) = match direction {
        PolicyDirection::Ingress => (&rule.destination, &rule.source),
        PolicyDirection::Egress => (&rule.source, &rule.destination),
    };
    let entity = |side: &EntityRule| PeerEntity {
        nets: blocks(&side.nets, relevance),
        not_nets: blocks(&side.not_nets, relevance),
        selector: side.selector.clone(),
        not_selector: side.not_selector.clone(),
        namespace_selector: side.namespace_selector.clone(),
        service_accounts: side
            .service_accounts
            .as_ref()
            .filter(|m| !m.names.is_empty() || m.selector.is_some())
            .map(|m| ServiceAccounts {
                names: m.names.clone(),
                selector: m.selector.clone(),
            }),
        policy_namespace: policy_namespace.map(str::to_owned),
    };
    let protocol = rule.protocol.map(|p| p.0);
    // Destination ports: the endpoint's own for ingress (named ports resolve on it), the
    // peer's for egress (named ports resolve per pod identity). Source ports the other way
    // round.
    let ports = |list: &[calico::PortMatch], local_side: bool| -> Option<Vec<PortRule>> {
        if list.is_empty() {
            return None;
        }
        Some(
            list.iter()
                .flat_map(|entry| -> Vec<PortRule> {
                    match entry {
                        calico::PortMatch::Range { first, last } => vec![PortRule::Range {
                            first: *first,
                            last: *last,
                        }],
                        calico::PortMatch::Named(name) if local_side => {
                            local.named(rule.protocol, name)
                        }
                        calico::PortMatch::Named(name) => vec![PortRule::PeerNamed(name.clone())],
                    }
                })
                .collect(),
        )
    };
    CalicoMatch {
        local_ok: local.holds(&entity(local_side), rule.ip_version),
        protocol,
        not_protocol: rule.not_protocol.map(|p| p.0),
        icmp: rule.icmp.and_then(|m| m.icmp_type.map(|t| (t, m.code))),
        not_icmp: rule.not_icmp.and_then(|m| m.icmp_type.map(|t| (t, m.code))),
        peer: entity(peer_side),
        ports: ports(
            &rule.destination.ports,
            direction == PolicyDirection::Ingress,
        ),
        not_ports: ports(
            &rule.destination.not_ports,
            direction == PolicyDirection::Ingress,
        ),
        source_ports: ports(&rule.source.ports, direction == PolicyDirection::Egress),
        not_source_ports: ports(&rule.source.not_ports, direction == PolicyDirection::Egress),
    }
}

/// A rule whose peer side matches a Service, as the rules it amounts to: the peer's `nets`
/// become the Service's endpoint addresses; for a destination, one rule per set of slice
/// ports, each matching its addresses with its (protocol, port) pairs. A Service without
/// endpoints (or, as a destination, without endpoint ports) matches nothing: no rule. Those
/// rules have the rule's action and index, so that the first to match decides as the rule
/// would. A rule without `services` is itself.
fn service_matches(
    rule: &calico::Rule,
    matched: CalicoMatch,
    cluster: &Cluster,
    relevance: &Relevance,
    direction: PolicyDirection,
) -> Vec<CalicoMatch> {
    let (local_side, peer_side) = match direction {
        PolicyDirection::Ingress => (&rule.destination, &rule.source),
        PolicyDirection::Egress => (&rule.source, &rule.destination),
    };
    // Validation refuses `services` on the endpoint's own side; a rule built by hand with
    // one there is not enforced loosely: it matches nothing.
    if local_side.services.is_some() {
        return Vec::new();
    }
    let Some(service) = &peer_side.services else {
        return vec![matched];
    };
    let nets = |addrs: &mut dyn Iterator<Item = IpAddr>| -> Vec<(IpNet, usize)> {
        let nets: Vec<IpNet> = addrs.map(IpNet::from).collect();
        blocks(&nets, relevance)
    };
    match direction {
        // Source addresses only (Felix's `svcnoport` IP set); the rule's own source ports
        // still apply.
        PolicyDirection::Ingress => {
            let addrs = service_match::addresses(cluster, service);
            if addrs.is_empty() {
                return Vec::new();
            }
            let mut only = matched;
            only.peer.nets = nets(&mut addrs.into_iter());
            vec![only]
        }
        // (address, protocol, port): validation leaves the rule no destination ports.
        PolicyDirection::Egress => service_match::endpoint_groups(cluster, service)
            .into_iter()
            .filter(|(ports, _)| !ports.is_empty())
            .map(|(ports, addrs)| {
                let mut one = matched.clone();
                one.peer.nets = nets(&mut addrs.into_iter());
                one.ports = Some(
                    ports
                        .into_iter()
                        .map(|(protocol, port)| PortRule::Exact { protocol, port })
                        .collect(),
                );
                one.not_ports = None;
                one
            })
            .collect(),
    }
}

fn blocks(nets: &[IpNet], relevance: &Relevance) -> Vec<(IpNet, usize)> {
    nets.iter()
        .map(|net| {
            let net = net.trunc();
            // Every peer-side net is a block (see `Relevance::numbered_after`); an endpoint-side net that
            // is not is only ever matched by address.
            (net, relevance.block_index(&net, &[]).unwrap_or(usize::MAX))
        })
        .collect()
}

fn kubernetes_match(
    rule: &Rule,
    local: &Local<'_>,
    relevance: &Relevance,
    direction: PolicyDirection,
) -> KubernetesMatch {
    let peers = rule.peers.as_ref().map(|peers| {
        peers
            .iter()
            .map(|peer| match peer {
                Peer::Pods { namespaces, pods } => KubernetesPeer::Pods {
                    namespaces: namespaces.clone(),
                    pods: pods.clone(),
                },
                Peer::IpBlock { cidr, except } => {
                    KubernetesPeer::Block(relevance.block_index(cidr, except).unwrap_or(usize::MAX))
                }
            })
            .collect()
    });
    let ports = rule.ports.as_ref().map(|ports| {
        ports
            .iter()
            .filter_map(|port| match port {
                PortMatch::AllPorts(protocol) => Some(KubernetesPort::Range {
                    protocol: protocol.number(),
                    first: 0,
                    last: u16::MAX,
                }),
                PortMatch::Range {
                    protocol,
                    first,
                    last,
                } => Some(KubernetesPort::Range {
                    protocol: protocol.number(),
                    first: *first,
                    last: *last,
                }),
                PortMatch::Named { protocol, name } => match direction {
                    PolicyDirection::Ingress => {
                        local
                            .named_port(*protocol, name)
                            .map(|port| KubernetesPort::Range {
                                protocol: protocol.number(),
                                first: port,
                                last: port,
                            })
                    }
                    PolicyDirection::Egress => Some(KubernetesPort::PeerNamed {
                        protocol: protocol.number(),
                        name: name.clone(),
                    }),
                },
            })
            .collect()
    });
    KubernetesMatch { peers, ports }
}
