//! One peer's cell: the protocols and port boundaries its matching rules name cut the
//! (protocol, source-port class, port) space into pieces of constant verdict, and the walk
//! decides each piece once. Separate from the walk (`walk.rs`), which decides one packet.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    PeerVerdicts,
    matching::{PeerMatches, icmp_range, peer_named},
};
use crate::{
    calico::resources::Protocol as CalicoProtocol,
    compiler::ordered::{
        KubernetesPort, Matcher, PortRule, Verdict,
        port_lists::PORT_PROTOCOLS,
        source_ports::{SOURCE_OVERFLOW_RULE_REF, SourceClasses},
    },
};

/// The verdicts of the matching's content for its peer, per source-port class when the
/// content has them.
pub(super) fn cell_of(matching: &PeerMatches<'_>, sources: Option<&SourceClasses>) -> PeerVerdicts {
    let mut protocols: BTreeSet<u8> = BTreeSet::new();
    let mut cuts: BTreeMap<u8, BTreeSet<u32>> = BTreeMap::new();
    for rule in matching.rules() {
        rule_grid(rule, matching, &mut protocols, &mut cuts);
    }
    let other = (0..=u8::MAX)
        .rev()
        .find(|p| !protocols.contains(p) && !CalicoProtocol(*p).has_ports())
        .unwrap_or(u8::MAX);
    let mut cell = PeerVerdicts {
        other: matching.decide(other, 0, 0),
        protocols: BTreeMap::new(),
        source_classes: BTreeMap::new(),
    };
    for protocol in protocols {
        let starts: Vec<u32> = if keyed_by_port(protocol) {
            cuts.remove(&protocol)
                .unwrap_or_default()
                .into_iter()
                .filter(|cut| *cut <= u32::from(u16::MAX))
                .chain([0])
                .collect::<BTreeSet<u32>>()
                .into_iter()
                .collect()
        } else {
            vec![0]
        };
        let intervals = |sport: u16| {
            let mut intervals: Vec<(u32, Verdict)> = Vec::new();
            for start in &starts {
                let port = u16::try_from(*start).unwrap_or(u16::MAX);
                let verdict = matching.decide(protocol, sport, port);
                if intervals.last().is_none_or(|(_, last)| *last != verdict) {
                    intervals.push((*start, verdict));
                }
            }
            intervals
        };
        let Some(sources) = sources else {
            cell.protocols.insert(protocol, intervals(0));
            continue;
        };
        cell.protocols
            .insert(protocol, intervals(sources.class_zero(protocol)));
        for (class, sport) in sources.extra_classes(protocol) {
            let verdicts = match sport {
                Some(sport) => intervals(sport),
                None => vec![(
                    0,
                    Verdict {
                        allow: false,
                        rule_ref: SOURCE_OVERFLOW_RULE_REF,
                        log: false,
                    },
                )],
            };
            cell.source_classes.insert((class, protocol), verdicts);
        }
    }
    cell
}

/// Protocols and port boundaries one matching rule names.
fn rule_grid(
    matcher: &Matcher,
    matching: &PeerMatches<'_>,
    protocols: &mut BTreeSet<u8>,
    cuts: &mut BTreeMap<u8, BTreeSet<u32>>,
) {
    let mut cut = |protocol: u8, first: u16, last: u16| {
        let entry = cuts.entry(protocol).or_default();
        entry.insert(u32::from(first));
        entry.insert(u32::from(last) + 1);
    };
    match matcher {
        Matcher::Calico(rule) => {
            protocols.extend(rule.protocol);
            protocols.extend(rule.not_protocol);
            for (kind, code) in rule.icmp.iter().chain(&rule.not_icmp) {
                let (first, last) = icmp_range(*kind, *code);
                for protocol in [CalicoProtocol::ICMP.0, CalicoProtocol::ICMPV6.0] {
                    protocols.insert(protocol);
                    cut(protocol, first, last);
                }
            }
            let lists = rule.ports.iter().chain(&rule.not_ports);
            if rule.ports.is_some() || rule.not_ports.is_some() {
                protocols.extend(PORT_PROTOCOLS.iter().map(|p| p.0));
            }
            for port in lists.flatten() {
                match port {
                    PortRule::Range { first, last } => {
                        for p in PORT_PROTOCOLS {
                            cut(p.0, *first, *last);
                        }
                    }
                    PortRule::Exact { protocol, port } => cut(*protocol, *port, *port),
                    PortRule::PeerNamed(name) => {
                        for (protocol, n, number) in matching.named() {
                            if n == name {
                                cut(protocol, number, number);
                            }
                        }
                    }
                }
            }
        }
        Matcher::Kubernetes(rule) => {
            for port in rule.ports.iter().flatten() {
                match port {
                    KubernetesPort::Range {
                        protocol,
                        first,
                        last,
                    } => {
                        protocols.insert(*protocol);
                        cut(*protocol, *first, *last);
                    }
                    KubernetesPort::PeerNamed { protocol, name } => {
                        protocols.insert(*protocol);
                        for (p, n, number) in peer_named(&matching.peer) {
                            if p == *protocol && n == name {
                                cut(p, number, number);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Whether rule entries tell this protocol's packets apart by the key's port field: ports,
/// or ICMP type and code.
fn keyed_by_port(protocol: u8) -> bool {
    CalicoProtocol(protocol).has_ports()
        || protocol == CalicoProtocol::ICMP.0
        || protocol == CalicoProtocol::ICMPV6.0
}
