//! Source-port classes: a table whose rules match source ports (Calico's `source.ports` and
//! `source.notPorts`) sorts the source-port space into classes that every such rule matches
//! alike, so that its cells are computed once per class instead of once per port, and the
//! datapath finds a packet's class with one lookup in the table's class entries.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use policy_common::{
    identity,
    rule::{PREFIX_ANY_PORT, RuleKey, RuleValue, action as verdict_action},
};

use super::{
    CalicoMatch, Matcher, OrderedContent, PortRule,
    port_lists::{PORT_PROTOCOLS, port_lists_match},
};
use crate::compiler::{LpmKey, ports::port_prefixes, rules::Entries};

/// `rule_ref` of the verdict given to source ports beyond the classes a table can tell
/// apart (see [`SourceClasses::MAX`]): denied, the safe side.
pub const SOURCE_OVERFLOW_RULE_REF: u32 = u32::MAX - 1;

/// The source-port classes of a content whose rules match source ports (Calico's
/// `source.ports`/`source.notPorts`): within one class, for one protocol, every such rule
/// matches the same, so one source port of the class stands for all of it. The datapath
/// finds a packet's class in the table's class entries ([`source_class_entries`]); class 0
/// (no entry) is each protocol's class covering the most ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceClasses {
    /// Per port protocol: (first source port, class) from port 0 on.
    pub intervals: BTreeMap<u8, Vec<(u32, u8)>>,
    /// Per port protocol, per class: a source port of the class, `None` for the overflow
    /// class.
    representatives: BTreeMap<u8, Vec<Option<u16>>>,
}

impl SourceClasses {
    /// Classes one table can tell apart (`RuleKey::source_class` is a byte). Source ports of
    /// further classes share the last one, which denies every port protocol.
    pub const MAX: usize = 256;

    /// The classes of `content`; `None` when no rule matches source ports.
    pub fn of(content: &OrderedContent) -> Option<SourceClasses> {
        let rules: Vec<&CalicoMatch> = content
            .tiers
            .iter()
            .flat_map(|tier| &tier.policies)
            .flat_map(|policy| &policy.rules)
            .filter_map(|rule| match &rule.matcher {
                Matcher::Calico(calico)
                    if calico.source_ports.is_some() || calico.not_source_ports.is_some() =>
                {
                    Some(calico.as_ref())
                }
                _ => None,
            })
            .collect();
        if rules.is_empty() {
            return None;
        }
        let mut intervals = BTreeMap::new();
        let mut representatives = BTreeMap::new();
        for protocol in PORT_PROTOCOLS.map(|p| p.0) {
            // Calico wants a protocol on every rule with ports: only that protocol's
            // packets reach the rule's source ports.
            let rules: Vec<&CalicoMatch> = rules
                .iter()
                .copied()
                .filter(|rule| rule.protocol.is_none_or(|p| p == protocol))
                .collect();
            let mut starts = BTreeSet::from([0u32]);
            for rule in &rules {
                for entry in rule
                    .source_ports
                    .iter()
                    .chain(&rule.not_source_ports)
                    .flatten()
                {
                    let (first, last) = match entry {
                        PortRule::Range { first, last } => (*first, *last),
                        PortRule::Exact { protocol: p, port } if *p == protocol => (*port, *port),
                        PortRule::Exact { .. } | PortRule::PeerNamed(_) => continue,
                    };
                    starts.insert(u32::from(first));
                    starts.insert(u32::from(last) + 1);
                }
            }
            starts.retain(|start| *start <= u32::from(u16::MAX));
            let starts: Vec<u32> = starts.into_iter().collect();
            let span = |i: usize| starts.get(i + 1).copied().unwrap_or(1 << 16) - starts[i];
            // Each interval's signature: which rules its source ports satisfy.
            let signatures: Vec<Vec<bool>> = starts
                .iter()
                .map(|start| {
                    let sport = u16::try_from(*start).unwrap_or(u16::MAX);
                    rules
                        .iter()
                        .map(|rule| source_ports_match(rule, protocol, sport))
                        .collect()
                })
                .collect();
            let mut coverage: HashMap<&Vec<bool>, u32> = HashMap::new();
            for (i, signature) in signatures.iter().enumerate() {
                *coverage.entry(signature).or_default() += span(i);
            }
            // Class 0 needs no entries: the signature covering the most ports (the first of
            // equals, so the choice is stable), with the first port that has it.
            let mut numbers: HashMap<Vec<bool>, u8> = HashMap::new();
            let mut reps: Vec<Option<u16>> = Vec::new();
            if let Some((zero, signature)) = signatures
                .iter()
                .enumerate()
                .max_by(|(i, a), (j, b)| coverage[a].cmp(&coverage[b]).then(j.cmp(i)))
            {
                numbers.insert(signature.clone(), 0);
                reps.push(u16::try_from(starts[zero]).ok());
            }
            let mut classes: Vec<(u32, u8)> = Vec::new();
            for (start, signature) in starts.iter().zip(&signatures) {
                let sport = u16::try_from(*start).unwrap_or(u16::MAX);
                let class = match numbers.get(signature) {
                    Some(class) => *class,
                    None if reps.len() < Self::MAX - 1 => {
                        let class = u8::try_from(reps.len()).unwrap_or(u8::MAX);
                        numbers.insert(signature.clone(), class);
                        reps.push(Some(sport));
                        class
                    }
                    None => {
                        // Out of class numbers: the last class denies, whatever it holds.
                        if reps.len() < Self::MAX {
                            reps.push(None);
                        }
                        u8::MAX
                    }
                };
                if classes.last().is_none_or(|(_, last)| *last != class) {
                    classes.push((*start, class));
                }
            }
            intervals.insert(protocol, classes);
            representatives.insert(protocol, reps);
        }
        Some(SourceClasses {
            intervals,
            representatives,
        })
    }

    /// The classes of `protocol` beyond 0, with a source port of each (`None`: the overflow
    /// class).
    pub(super) fn extra_classes(
        &self,
        protocol: u8,
    ) -> impl Iterator<Item = (u8, Option<u16>)> + '_ {
        self.representatives
            .get(&protocol)
            .into_iter()
            .flat_map(|reps| reps.iter().enumerate().skip(1))
            .map(|(class, rep)| (u8::try_from(class).unwrap_or(u8::MAX), *rep))
    }

    /// A source port of class 0 of `protocol` (any port for protocols without classes).
    pub(super) fn class_zero(&self, protocol: u8) -> u16 {
        self.representatives
            .get(&protocol)
            .and_then(|reps| reps.first().copied().flatten())
            .unwrap_or(0)
    }
}

/// Whether a packet's source port satisfies a Calico rule's `source.ports` and
/// `source.notPorts`.
pub(super) fn source_ports_match(rule: &CalicoMatch, protocol: u8, sport: u16) -> bool {
    // A peer's named source port is refused by the datastores (`calico::resources::support`),
    // so it never reaches here; were it to, it matches no port.
    port_lists_match(
        rule.source_ports.as_deref(),
        rule.not_source_ports.as_deref(),
        protocol,
        sport,
        |_| false,
    )
}

/// A table's source-port class entries: (protocol, source-port prefix) to class, for every
/// class but 0, keyed by [`identity::SOURCE_PORTS`].
pub fn source_class_entries(table: u32, classes: &SourceClasses) -> Entries {
    let mut out = Entries::new();
    for (protocol, intervals) in &classes.intervals {
        for (i, (start, class)) in intervals.iter().enumerate() {
            if *class == 0 {
                continue;
            }
            let end = intervals.get(i + 1).map_or(1 << 16, |(next, _)| *next);
            let (first, last) = (
                u16::try_from(*start).unwrap_or(u16::MAX),
                u16::try_from(end - 1).unwrap_or(u16::MAX),
            );
            for (prefix_start, bits) in port_prefixes(first, last) {
                out.insert(
                    LpmKey {
                        prefix_len: PREFIX_ANY_PORT + bits,
                        data: RuleKey {
                            table,
                            peer_identity: identity::SOURCE_PORTS,
                            protocol: *protocol,
                            source_class: 0,
                            port_be: prefix_start.to_be(),
                        },
                    },
                    RuleValue {
                        action: verdict_action::SOURCE_CLASS,
                        rule_ref: u32::from(*class),
                        flags: 0,
                    },
                );
            }
        }
    }
    out
}
