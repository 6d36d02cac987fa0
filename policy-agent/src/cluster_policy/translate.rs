//! A [`ClusterPolicy`] as the Calico GlobalNetworkPolicy Calico 3.32 makes of it, so that the
//! ordered engine decides administrators' policy, NetworkPolicies and Calico tiers in one walk.
//!
//! - **Where.** Tier `kube-admin` or `kube-baseline`; `order` is the priority (lower first).
//!   Equal priorities are ordered by the translated name (`kanp.…` < `kbanp.…` < `kcnp.…`,
//!   then the object's name), Calico's tie-break, so the choice the API leaves open is
//!   deterministic.
//! - **Whom.** The subject's namespace selector becomes the policy's `namespaceSelector` (always
//!   set, so host endpoints, which have no namespace, are never selected) and its pod selector
//!   the `selector`. A direction without rules is not in `types`: the policy does not touch it.
//! - **Rules.** Each written rule becomes one Calico rule per peer and per protocol it names,
//!   consecutive and with the same action, which is the written rule's "any peer, any port".
//!   A `namespaces` or `pods` peer is a selector restricted to pods
//!   (`projectcalico.org/orchestrator == 'k8s'`), so it never matches a NetworkSet's or host
//!   endpoint's addresses; a `networks` peer is `nets`, matching every address in them, pods'
//!   included, as the API says. A named port is looked up on the destination pod for each
//!   port protocol, so it matches the container port's own protocol only. The Calico rules
//!   carry the written rule's position and name in their annotations, for `explain`.

use std::collections::BTreeMap;

use super::{ClusterPeer, ClusterPolicy, ClusterPort, ClusterRule, RuleAction, Subject};
use crate::{
    calico::{
        resources::{
            Action, EntityRule, Policy, PolicyTypes, PortMatch, Protocol as CalicoProtocol, Rule,
        },
        selector::Selector,
    },
    model::{LabelSelector, Protocol, selector::Requirement},
};

/// The annotation naming the written rule a Calico rule comes from: `ingress[2]`.
pub const RULE_ANNOTATION: &str = "policy.networking.k8s.io/rule";
/// The annotation holding the written rule's `name`, when it has one.
pub const RULE_NAME_ANNOTATION: &str = "policy.networking.k8s.io/rule-name";

/// The label Calico gives every pod endpoint, and nothing else.
const ORCHESTRATOR_KEY: &str = "projectcalico.org/orchestrator";

/// The position of the written rule a translated Calico rule comes from.
pub fn written_index(rule: &Rule) -> Option<usize> {
    let at = rule.annotations.get(RULE_ANNOTATION)?;
    let inner = at.split_once('[')?.1.strip_suffix(']')?;
    inner.parse().ok()
}

/// The Calico policy name of `policy`.
pub fn calico_name(policy: &ClusterPolicy) -> String {
    let prefix = policy
        .kind
        .name_prefix(policy.tier)
        .unwrap_or("kcnp.unknown.");
    format!("{prefix}{}", policy.name)
}

/// The GlobalNetworkPolicy standing for `policy`.
pub fn to_calico(policy: &ClusterPolicy) -> Policy {
    let (namespaces, pods) = match &policy.subject {
        Subject::Namespaces(namespaces) => (namespaces, None),
        Subject::Pods { namespaces, pods } => (namespaces, Some(pods)),
    };
    Policy {
        name: calico_name(policy),
        namespace: None,
        tier: policy.tier.calico_tier().to_owned(),
        order: Some(f64::from(policy.priority)),
        selector: pods.map(selector).unwrap_or(Selector::All),
        namespace_selector: Some(selector(namespaces)),
        service_account_selector: None,
        types: PolicyTypes {
            ingress: !policy.ingress.is_empty(),
            egress: !policy.egress.is_empty(),
        },
        ingress: rules(&policy.ingress, Direction::Ingress),
        egress: rules(&policy.egress, Direction::Egress),
        do_not_track: false,
        pre_dnat: false,
        apply_on_forward: false,
    }
}

/// Which list of the policy a written rule is in: it names the rule in the annotation and
/// decides which side of the Calico rule the peer goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    /// The field's name, as the annotation spells it (`ingress[2]`).
    fn field(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

fn rules(written: &[ClusterRule], direction: Direction) -> Vec<Rule> {
    let mut out = Vec::new();
    for (index, rule) in written.iter().enumerate() {
        let mut annotations = BTreeMap::from([(
            RULE_ANNOTATION.to_owned(),
            format!("{}[{index}]", direction.field()),
        )]);
        if !rule.name.is_empty() {
            annotations.insert(RULE_NAME_ANNOTATION.to_owned(), rule.name.clone());
        }
        let action = match rule.action {
            RuleAction::Accept => Action::Allow,
            RuleAction::Deny => Action::Deny,
            RuleAction::Pass => Action::Pass,
        };
        for peer in &rule.peers {
            let peer_side = peer_entity(peer);
            for (protocol, ports) in port_groups(rule.ports.as_deref()) {
                // Ports are always the destination's: the subject's own for ingress, the
                // peer's for egress.
                let (source, destination) = if direction == Direction::Ingress {
                    (
                        peer_side.clone(),
                        EntityRule {
                            ports,
                            ..EntityRule::default()
                        },
                    )
                } else {
                    (
                        EntityRule::default(),
                        EntityRule {
                            ports,
                            ..peer_side.clone()
                        },
                    )
                };
                out.push(Rule {
                    action,
                    ip_version: None,
                    protocol,
                    not_protocol: None,
                    icmp: None,
                    not_icmp: None,
                    source,
                    destination,
                    annotations: annotations.clone(),
                });
            }
        }
    }
    out
}

/// The peer side of a rule.
fn peer_entity(peer: &ClusterPeer) -> EntityRule {
    match peer {
        ClusterPeer::Namespaces(namespaces) => EntityRule {
            selector: Some(pods_only(None)),
            namespace_selector: Some(selector(namespaces)),
            ..EntityRule::default()
        },
        ClusterPeer::Pods { namespaces, pods } => EntityRule {
            selector: Some(pods_only(Some(pods))),
            namespace_selector: Some(selector(namespaces)),
            ..EntityRule::default()
        },
        ClusterPeer::Networks(nets) => EntityRule {
            nets: nets.clone(),
            ..EntityRule::default()
        },
    }
}

/// `projectcalico.org/orchestrator == 'k8s'`, and the pod selector's requirements.
fn pods_only(pods: Option<&LabelSelector>) -> Selector {
    let orchestrator = Selector::Equal {
        key: ORCHESTRATOR_KEY.to_owned(),
        value: "k8s".to_owned(),
    };
    match pods.map(selector) {
        None | Some(Selector::All) => orchestrator,
        Some(Selector::And(mut operands)) => {
            operands.insert(0, orchestrator);
            Selector::And(operands)
        }
        Some(other) => Selector::And(vec![orchestrator, other]),
    }
}

/// (protocol, destination ports) of the Calico rules one written rule needs: one without a
/// protocol when the rule names no ports, else one per port protocol it uses. Named ports go
/// to every port protocol: the pod's container port says which one it is.
fn port_groups(ports: Option<&[ClusterPort]>) -> Vec<(Option<CalicoProtocol>, Vec<PortMatch>)> {
    let Some(ports) = ports else {
        return vec![(None, Vec::new())];
    };
    let named: Vec<PortMatch> = ports
        .iter()
        .filter_map(|p| match p {
            ClusterPort::Named(name) => Some(PortMatch::Named(name.clone())),
            ClusterPort::Range { .. } => None,
        })
        .collect();
    [Protocol::Tcp, Protocol::Udp, Protocol::Sctp]
        .into_iter()
        .filter_map(|protocol| {
            let mut matches: Vec<PortMatch> = ports
                .iter()
                .filter_map(|p| match p {
                    ClusterPort::Range {
                        protocol: p,
                        first,
                        last,
                    } if *p == protocol => Some(PortMatch::Range {
                        first: *first,
                        last: *last,
                    }),
                    _ => None,
                })
                .collect();
            matches.extend(named.iter().cloned());
            (!matches.is_empty()).then(|| (Some(CalicoProtocol(protocol.number())), matches))
        })
        .collect()
}

/// A Kubernetes label selector as a Calico selector with the same meaning: `NotIn` and
/// `DoesNotExist` hold for objects without the key in both languages.
pub fn selector(selector: &LabelSelector) -> Selector {
    let mut operands: Vec<Selector> = selector
        .requirements
        .iter()
        .map(|requirement| match requirement {
            Requirement::In { key, values } => Selector::In {
                key: key.clone(),
                values: values.clone(),
            },
            Requirement::NotIn { key, values } => Selector::NotIn {
                key: key.clone(),
                values: values.clone(),
            },
            Requirement::Exists { key } => Selector::Has { key: key.clone() },
            Requirement::DoesNotExist { key } => {
                Selector::Not(Box::new(Selector::Has { key: key.clone() }))
            }
        })
        .collect();
    match operands.len() {
        0 => Selector::All,
        1 => operands.remove(0),
        _ => Selector::And(operands),
    }
}
