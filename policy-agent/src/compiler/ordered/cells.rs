//! The verdicts of an ordered table for one peer, over every (protocol, port), and the rule
//! entries that store them.
//!
//! For a peer, each rule is first matched on everything but protocol and port (once). The
//! protocols and port boundaries those rules name cut the (protocol, port) space into cells
//! whose verdict is constant; each cell is decided by walking the tiers once. The entries
//! are then an `ANY`-protocol entry (prefix 64) with the verdict of protocols no rule names, a
//! protocol entry (prefix 80) where a named protocol's most common verdict differs from it,
//! and aligned port prefixes where a range differs from its protocol's.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use policy_common::rule::{
    PREFIX_ANY_PORT, PREFIX_ANY_PROTOCOL, RuleKey, RuleValue, action as verdict_action,
    flags as rule_flags,
};

use super::{
    CalicoContext, CalicoMatch, KubernetesMatch, KubernetesPeer, KubernetesPort, Matcher,
    OrderedContent, PROFILE_RULE_REF, PortRule, TIER_DEFAULT_RULE, Verdict,
    owners::{self, Owner},
    port_lists::{PORT_PROTOCOLS, port_lists_match},
    source_ports::{SOURCE_OVERFLOW_RULE_REF, SourceClasses, source_ports_match},
};
use crate::{
    calico::resources::{Action, Protocol as CalicoProtocol, TierAction},
    compiler::{
        LpmKey, policy_name::PolicyName, ports::port_prefixes, rules::Entries, views::PodView,
    },
    model::NamespaceMatch,
};

/// What an ordered table can observe of a peer: a pod identity's view, or a CIDR class.
#[derive(Debug, Clone, Copy)]
pub struct Peer<'a> {
    /// The pod owning the address, as its identity sees it.
    pub view: Option<&'a PodView>,
    /// The view's labels as Calico selectors see them, when the caller keeps them (the
    /// engine does, per identity, so that a compile does not rebuild them per table).
    pub owner_labels: Option<&'a OwnerLabels>,
    /// Sorted numbers of the blocks covering the address.
    pub blocks: &'a [usize],
    /// The address family, when known.
    pub v6: Option<bool>,
}

/// A pod view's labels and its namespace's labels with Calico's own labels added
/// ([`owners::pod_labels`], [`owners::namespace_labels`]).
#[derive(Debug, Clone)]
pub struct OwnerLabels {
    pub labels: crate::model::Labels,
    pub namespace_labels: crate::model::Labels,
}

impl OwnerLabels {
    pub fn of(view: &PodView) -> Self {
        Self {
            labels: owners::pod_labels(&view.labels, &view.namespace, service_account(view)),
            namespace_labels: owners::namespace_labels(
                view.namespace_labels.clone(),
                &view.namespace,
            ),
        }
    }
}

/// A pod's service account as Calico sees it: `default` when the pod names none.
fn service_account(view: &PodView) -> &str {
    view.service_account.as_deref().unwrap_or("default")
}

/// One peer's verdicts in an ordered table over the whole (protocol, source-port class, port)
/// space, piecewise constant: what the comments here call the peer's cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerVerdicts {
    /// Protocols no rule names.
    pub other: Verdict,
    /// For each named protocol: (first port, verdict) intervals from port 0 on, adjacent
    /// intervals with the same verdict merged. Source-port class 0.
    pub protocols: BTreeMap<u8, Vec<(u32, Verdict)>>,
    /// Tables with source-port rules ([`SourceClasses`]): the same intervals for the named
    /// port protocols in source-port classes 1 and up, by (class, protocol).
    pub source_classes: BTreeMap<(u8, u8), Vec<(u32, Verdict)>>,
}

impl PeerVerdicts {
    /// The verdict for a packet of a source-port class, as the entries give it: a (class,
    /// protocol) without intervals falls to the any-protocol verdict.
    pub fn at_class(&self, class: u8, protocol: u8, port: u16) -> Verdict {
        let intervals = if class == 0 {
            self.protocols.get(&protocol)
        } else {
            self.source_classes.get(&(class, protocol))
        };
        match intervals {
            None => self.other,
            Some(intervals) => {
                let index = intervals.partition_point(|(start, _)| *start <= u32::from(port));
                intervals
                    .get(index.saturating_sub(1))
                    .map_or(self.other, |(_, v)| *v)
            }
        }
    }

    /// Every (class, protocol) the cell has intervals for, with them.
    fn all_intervals(&self) -> impl Iterator<Item = ((u8, u8), &Vec<(u32, Verdict)>)> {
        self.protocols
            .iter()
            .map(|(protocol, intervals)| ((0, *protocol), intervals))
            .chain(self.source_classes.iter().map(|(key, i)| (*key, i)))
    }

    /// Whether two cells give the same verdict everywhere.
    pub fn same_as(&self, other: &PeerVerdicts) -> bool {
        if self.other != other.other {
            return false;
        }
        let keys: BTreeSet<(u8, u8)> = self
            .all_intervals()
            .chain(other.all_intervals())
            .map(|(key, _)| key)
            .collect();
        keys.into_iter().all(|(class, protocol)| {
            let starts: BTreeSet<u32> = [&self, &other]
                .into_iter()
                .flat_map(|cell| cell.all_intervals())
                .filter(|(key, _)| *key == (class, protocol))
                .flat_map(|(_, intervals)| intervals)
                .map(|(start, _)| *start)
                .chain([0])
                .collect();
            starts.into_iter().all(|start| {
                let port = u16::try_from(start).unwrap_or(u16::MAX);
                self.at_class(class, protocol, port) == other.at_class(class, protocol, port)
            })
        })
    }
}

/// One tier as the walk saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierTrace {
    pub tier: String,
    pub policies: Vec<PolicyTrace>,
    pub end: TierEnd,
}

/// How a tier the walk entered ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierEnd {
    /// A rule allowed or denied.
    Decided,
    /// A rule passed to the next tier.
    Passed,
    /// No rule decided: the tier's default action (Deny ends the walk, Pass goes on).
    DefaultAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyTrace {
    pub policy: PolicyName,
    pub rules: Vec<RuleTrace>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleTrace {
    pub index: u16,
    pub action: Action,
    /// `None`: the rule matched; else which part did not.
    pub mismatch: Option<&'static str>,
}

/// The verdict for one packet, with every tier, policy and rule consulted.
pub fn trace(
    content: &OrderedContent,
    context: &CalicoContext,
    peer: &Peer<'_>,
    protocol: u8,
    sport: u16,
    port: u16,
) -> (Verdict, Vec<TierTrace>) {
    let mut tiers = Vec::new();
    let verdict =
        PeerMatches::new(content, context, peer).walk(protocol, sport, port, Some(&mut tiers));
    (verdict, tiers)
}

/// What a content's cell depends on for a peer: which rules match it apart from protocol and
/// port, its family, and its named ports (only when a rule names a peer's port).
type CellKey = (Vec<bool>, Option<bool>, Vec<(u8, String, u16)>);

/// The cells of one content for many peers, each computed once per distinct [`CellKey`]: a
/// table's thousands of peers fall into a handful of those, so the cuts and walks are done a
/// handful of times, and only the matching is done per peer. Cells are handed out by number
/// ([`VerdictMemo::get`]), so equal cells are one value.
pub struct VerdictMemo<'c> {
    content: &'c OrderedContent,
    sources: Option<SourceClasses>,
    named_ports: bool,
    numbers: HashMap<CellKey, usize>,
    cells: Vec<PeerVerdicts>,
}

impl<'c> VerdictMemo<'c> {
    pub fn new(content: &'c OrderedContent) -> Self {
        let named_ports = content
            .tiers
            .iter()
            .flat_map(|tier| &tier.policies)
            .flat_map(|policy| &policy.rules)
            .any(|rule| match &rule.matcher {
                Matcher::Calico(calico) => calico
                    .ports
                    .iter()
                    .chain(&calico.not_ports)
                    .flatten()
                    .any(|port| matches!(port, PortRule::PeerNamed(_))),
                Matcher::Kubernetes(k8s) => k8s
                    .ports
                    .iter()
                    .flatten()
                    .any(|port| matches!(port, KubernetesPort::PeerNamed { .. })),
            });
        Self {
            content,
            sources: SourceClasses::of(content),
            named_ports,
            numbers: HashMap::new(),
            cells: Vec::new(),
        }
    }

    /// The content's source-port classes, when its rules match source ports.
    pub fn source_classes(&self) -> Option<&SourceClasses> {
        self.sources.as_ref()
    }

    /// The cell numbered `number` by [`VerdictMemo::number`].
    pub fn get(&self, number: usize) -> &PeerVerdicts {
        &self.cells[number]
    }

    /// How many distinct cells the memo holds (numbers are `0..len`).
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// The number of the verdicts of the content for `peer` (over every protocol and port),
    /// computed only when no peer seen alike came before.
    pub fn number(&mut self, context: &CalicoContext, peer: &Peer<'_>) -> usize {
        let matching = PeerMatches::new(self.content, context, peer);
        let named = if self.named_ports {
            matching
                .named()
                .map(|(protocol, name, number)| (protocol, name.clone(), number))
                .collect()
        } else {
            Vec::new()
        };
        let key = (
            matching.matches.iter().flatten().copied().collect(),
            peer.v6,
            named,
        );
        if let Some(number) = self.numbers.get(&key) {
            return *number;
        }
        let number = self.cells.len();
        self.cells.push(cell_of(&matching, self.sources.as_ref()));
        self.numbers.insert(key, number);
        number
    }
}

/// The verdicts of the matching's content for its peer, per source-port class when the
/// content has them.
fn cell_of(matching: &PeerMatches<'_>, sources: Option<&SourceClasses>) -> PeerVerdicts {
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

fn peer_named<'a>(peer: &Peer<'a>) -> impl Iterator<Item = (u8, &'a String, u16)> {
    peer.view
        .into_iter()
        .flat_map(|view| &view.named_ports)
        .map(|(protocol, name, number)| (protocol.number(), name, *number))
}

/// Which of the content's rules match one peer on everything but protocol and port: worked
/// out once per peer, before the (protocol, port) space is cut and walked.
struct PeerMatches<'a> {
    content: &'a OrderedContent,
    peer: Peer<'a>,
    /// Per policy (in evaluation order), per rule: matches apart from protocol and port.
    matches: Vec<Vec<bool>>,
    /// The named ports of the host endpoints owning the address (Calico rules naming a port
    /// of the peer resolve on these as on a pod's).
    host_ports: Vec<&'a (u8, String, u16)>,
}

impl<'a> PeerMatches<'a> {
    fn new(content: &'a OrderedContent, context: &'a CalicoContext, peer: &Peer<'a>) -> Self {
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
    fn named(&self) -> impl Iterator<Item = (u8, &String, u16)> + '_ {
        peer_named(&self.peer).chain(
            self.host_ports
                .iter()
                .map(|(protocol, name, number)| (*protocol, name, *number)),
        )
    }

    /// Every rule that matches the peer.
    fn rules(&self) -> impl Iterator<Item = &'a Matcher> + '_ {
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

    /// Calico's walk: tiers in order, policies in order, rules in order.
    fn decide(&self, protocol: u8, sport: u16, port: u16) -> Verdict {
        self.walk(protocol, sport, port, None)
    }

    /// The walk, recording every tier, policy and rule consulted when `trace` is given.
    fn walk(
        &self,
        protocol: u8,
        sport: u16,
        port: u16,
        mut trace: Option<&mut Vec<TierTrace>>,
    ) -> Verdict {
        let mut index = 0usize;
        // A `Log` rule that matched on the way: the verdict is logged, whoever decides it.
        let mut log = false;
        for tier in &self.content.tiers {
            let first = index;
            index = first + tier.policies.len();
            let mut tier_trace = trace.as_ref().map(|_| TierTrace {
                tier: tier.name.clone(),
                policies: Vec::new(),
                end: TierEnd::DefaultAction,
            });
            let mut outcome = None;
            'policies: for (offset, policy) in tier.policies.iter().enumerate() {
                let slot = first + offset;
                if let Some(t) = tier_trace.as_mut() {
                    t.policies.push(PolicyTrace {
                        policy: policy.name.clone(),
                        rules: Vec::new(),
                    });
                }
                for (rule, matched) in policy.rules.iter().zip(&self.matches[slot]) {
                    let mismatch = if !matched {
                        Some(self.peer_mismatch(&rule.matcher))
                    } else if !self.protocol_port_match(&rule.matcher, protocol, port) {
                        Some("protocol or port")
                    } else if let Matcher::Calico(calico) = &rule.matcher
                        && !source_ports_match(calico, protocol, sport)
                    {
                        Some("source port")
                    } else {
                        None
                    };
                    if let Some(policy_trace) =
                        tier_trace.as_mut().and_then(|t| t.policies.last_mut())
                    {
                        policy_trace.rules.push(RuleTrace {
                            index: rule.index,
                            action: rule.action,
                            mismatch,
                        });
                    }
                    if mismatch.is_some() {
                        continue;
                    }
                    let rule_ref = (ref_index(slot) << 16) | u32::from(rule.index);
                    match rule.action {
                        Action::Allow | Action::Deny => {
                            outcome = Some(Some(Verdict {
                                allow: rule.action == Action::Allow,
                                rule_ref,
                                log,
                            }));
                            break 'policies;
                        }
                        Action::Pass => {
                            outcome = Some(None);
                            break 'policies;
                        }
                        Action::Log => log = true,
                    }
                }
            }
            let verdict = match outcome {
                Some(Some(verdict)) => {
                    if let Some(t) = tier_trace.as_mut() {
                        t.end = TierEnd::Decided;
                    }
                    Some(verdict)
                }
                Some(None) => {
                    if let Some(t) = tier_trace.as_mut() {
                        t.end = TierEnd::Passed;
                    }
                    None
                }
                None => (tier.default_action == TierAction::Deny).then_some(Verdict {
                    allow: false,
                    rule_ref: (ref_index(first) << 16) | TIER_DEFAULT_RULE,
                    log,
                }),
            };
            if let (Some(trace), Some(t)) = (trace.as_mut(), tier_trace) {
                trace.push(t);
            }
            if let Some(verdict) = verdict {
                return verdict;
            }
        }
        Verdict {
            allow: self.content.profile_allows,
            rule_ref: PROFILE_RULE_REF,
            log,
        }
    }

    /// Why a rule's match on everything but protocol and port failed.
    fn peer_mismatch(&self, matcher: &Matcher) -> &'static str {
        match matcher {
            Matcher::Calico(rule)
                if !self
                    .peer
                    .v6
                    .is_some_and(|v6| rule.local_ok[usize::from(v6)]) =>
            {
                "ipVersion or the endpoint's side"
            }
            Matcher::Calico(_) => "the peer's side",
            Matcher::Kubernetes(_) => "peers",
        }
    }

    fn protocol_port_match(&self, matcher: &Matcher, protocol: u8, port: u16) -> bool {
        match matcher {
            Matcher::Calico(rule) => calico_protocol_port(rule, self, protocol, port),
            Matcher::Kubernetes(rule) => kubernetes_ports(rule, &self.peer, protocol, port),
        }
    }
}

fn ref_index(slot: usize) -> u32 {
    u32::try_from(slot).unwrap_or(u32::MAX).min(0xfffe)
}

/// Whether rule entries tell this protocol's packets apart by the key's port field: ports,
/// or ICMP type and code.
fn keyed_by_port(protocol: u8) -> bool {
    CalicoProtocol(protocol).has_ports()
        || protocol == CalicoProtocol::ICMP.0
        || protocol == CalicoProtocol::ICMPV6.0
}

/// The key values (type << 8 | code) an `icmp` match covers.
fn icmp_range(kind: u8, code: Option<u8>) -> (u16, u16) {
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

/// The rule entries storing `cell` for `(table, identity)`.
pub fn entries(table: u32, identity: u32, cell: &PeerVerdicts) -> Entries {
    let mut out = Entries::new();
    let mut insert = |prefix_len: u32, class: u8, protocol: u8, port: u16, verdict: Verdict| {
        let key = LpmKey {
            prefix_len,
            data: RuleKey {
                table,
                peer_identity: identity,
                protocol,
                source_class: class,
                port_be: port.to_be(),
            },
        };
        let action = if verdict.allow {
            verdict_action::ALLOW
        } else {
            verdict_action::DENY
        };
        out.insert(
            key,
            RuleValue {
                action,
                rule_ref: verdict.rule_ref,
                flags: if verdict.log { rule_flags::LOG } else { 0 },
            },
        );
    };
    insert(PREFIX_ANY_PROTOCOL, 0, 0, 0, cell.other);
    for ((class, protocol), intervals) in cell.all_intervals() {
        // The protocol's entry carries its most common verdict; ranges differing from it get
        // port prefixes.
        let span = |i: usize| {
            let start = intervals[i].0;
            let end = intervals.get(i + 1).map_or(1 << 16, |(next, _)| *next);
            end - start
        };
        let mut coverage: Vec<(Verdict, u32)> = Vec::new();
        for (i, (_, verdict)) in intervals.iter().enumerate() {
            match coverage.iter_mut().find(|(v, _)| v == verdict) {
                Some((_, total)) => *total += span(i),
                None => coverage.push((*verdict, span(i))),
            }
        }
        let Some(&(common, _)) = coverage.iter().max_by_key(|(_, total)| *total) else {
            continue;
        };
        if common != cell.other {
            insert(PREFIX_ANY_PORT, class, protocol, 0, common);
        }
        for (i, (start, verdict)) in intervals.iter().enumerate() {
            if *verdict == common {
                continue;
            }
            let last = start + span(i) - 1;
            let (first, last) = (
                u16::try_from(*start).unwrap_or(u16::MAX),
                u16::try_from(last).unwrap_or(u16::MAX),
            );
            for (prefix_start, bits) in port_prefixes(first, last) {
                insert(
                    PREFIX_ANY_PORT + bits,
                    class,
                    protocol,
                    prefix_start,
                    *verdict,
                );
            }
        }
    }
    out
}
