//! Administrators' policy (network-policy-api: AdminNetworkPolicy, BaselineAdminNetworkPolicy,
//! ClusterNetworkPolicy), evaluated on the validated objects as written, never through their
//! Calico translation: which pods a policy's subject selects, and whether a rule's peers and
//! ports match. Separate because its label selectors are Kubernetes ones, matched by
//! [`crate::reference`], not Calico's.

use std::{collections::BTreeMap, net::IpAddr};

use k8s_openapi::{
    api::core::v1::Pod,
    apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement},
};
use policy_agent::{
    cluster_policy::{
        ApiKind, ClusterPeer, ClusterPolicy, ClusterPort, ClusterRule, RuleAction, Subject,
    },
    model::{Protocol as ModelProtocol, selector::Requirement},
};

use super::{Ctx, endpoints::named_port};
use crate::{
    calico_reference::{resources::Action, trace::Direction},
    reference,
};

impl<'a> Ctx<'a> {
    // ---- Administrators' policy (network-policy-api), evaluated on the objects ----

    /// Whether `subject` selects `pod` (a live, non-host-network pod: only those are
    /// endpoints).
    pub(super) fn cluster_subject_matches(&self, subject: &Subject, pod: &Pod) -> bool {
        let (namespaces, pods) = match subject {
            Subject::Namespaces(namespaces) => (namespaces, None),
            Subject::Pods { namespaces, pods } => (namespaces, Some(pods)),
        };
        self.pod_in(pod, namespaces, pods)
    }

    /// Whether `pod`'s namespace matches `namespaces` and its own labels `pods` (if any), by
    /// the Kubernetes model's selector matching.
    fn pod_in(
        &self,
        pod: &Pod,
        namespaces: &policy_agent::model::LabelSelector,
        pods: Option<&policy_agent::model::LabelSelector>,
    ) -> bool {
        let ns = reference::namespace_of(&pod.metadata);
        k8s_selector_matches(namespaces, &self.k8s_namespace_labels(&ns))
            && pods.is_none_or(|s| {
                k8s_selector_matches(s, &pod.metadata.labels.clone().unwrap_or_default())
            })
    }

    /// `(index, action, mismatch)` for each written rule of `policy` in `direction`: the
    /// peer is the packet's source for ingress and its destination for egress; ports are
    /// always the destination's.
    pub(super) fn cluster_rules(
        &self,
        policy: &ClusterPolicy,
        direction: Direction,
    ) -> Vec<(usize, Action, Option<&'static str>)> {
        let p = self.packet;
        let (peer, peers_field) = match direction {
            Direction::Ingress => (p.src, "from"),
            Direction::Egress => (p.dst, "to"),
        };
        let ports_field = match policy.kind {
            ApiKind::ClusterNetworkPolicy => "protocols",
            ApiKind::AdminNetworkPolicy | ApiKind::BaselineAdminNetworkPolicy => "ports",
        };
        let peer_pod = self.live_pod(peer);
        cluster_rules(policy, direction)
            .iter()
            .enumerate()
            .map(|(i, rule)| {
                let action = match rule.action {
                    RuleAction::Accept => Action::Allow,
                    RuleAction::Deny => Action::Deny,
                    RuleAction::Pass => Action::Pass,
                };
                let mismatch = if !rule
                    .peers
                    .iter()
                    .any(|peer_match| self.cluster_peer_matches(peer_match, peer, peer_pod))
                {
                    Some(peers_field)
                } else if !self.cluster_ports_match(rule) {
                    Some(ports_field)
                } else {
                    None
                };
                (i, action, mismatch)
            })
            .collect()
    }

    /// `namespaces` and `pods` peers are pods (live, not host-network: `peer_pod`), and
    /// nothing else; `networks` are addresses, pods' included.
    fn cluster_peer_matches(
        &self,
        peer: &ClusterPeer,
        addr: IpAddr,
        peer_pod: Option<&Pod>,
    ) -> bool {
        match peer {
            ClusterPeer::Namespaces(namespaces) => {
                peer_pod.is_some_and(|pod| self.pod_in(pod, namespaces, None))
            }
            ClusterPeer::Pods { namespaces, pods } => {
                peer_pod.is_some_and(|pod| self.pod_in(pod, namespaces, Some(pods)))
            }
            ClusterPeer::Networks(nets) => nets.iter().any(|n| n.contains(&addr)),
        }
    }

    /// No ports: everything, ICMP included. Otherwise a packet with ports whose
    /// (protocol, destination port) is in a range, or is a container port of the live pod at
    /// the destination with that name (the container port's own protocol).
    fn cluster_ports_match(&self, rule: &ClusterRule) -> bool {
        let Some(ports) = &rule.ports else {
            return true;
        };
        let p = self.packet;
        ports.iter().any(|port| match port {
            ClusterPort::Range {
                protocol,
                first,
                last,
            } => protocol_number(*protocol) == p.protocol && (*first..=*last).contains(&p.dst_port),
            ClusterPort::Named(name) => self
                .live_pod(p.dst)
                .is_some_and(|pod| named_port(pod, name, p.protocol, p.dst_port)),
        })
    }
}

/// The written rules of `policy` in `direction`.
pub(super) fn cluster_rules(policy: &ClusterPolicy, direction: Direction) -> &[ClusterRule] {
    match direction {
        Direction::Ingress => &policy.ingress,
        Direction::Egress => &policy.egress,
    }
}

/// IANA numbers, written here rather than asked of the agent's model.
fn protocol_number(protocol: ModelProtocol) -> u8 {
    match protocol {
        ModelProtocol::Tcp => 6,
        ModelProtocol::Udp => 17,
        ModelProtocol::Sctp => 132,
    }
}

/// A validated label selector matched by [`crate::reference`]'s own Kubernetes selector
/// matching: its requirements are `matchExpressions` again (as validation read
/// `matchLabels` into `In` requirements), so that the model shares the Kubernetes model's
/// meaning of every operator rather than the agent's `LabelSelector::matches`.
fn k8s_selector_matches(
    selector: &policy_agent::model::LabelSelector,
    labels: &BTreeMap<String, String>,
) -> bool {
    let expressions = selector
        .requirements
        .iter()
        .map(|requirement| {
            let (key, operator, values) = match requirement {
                Requirement::In { key, values } => (key, "In", Some(values)),
                Requirement::NotIn { key, values } => (key, "NotIn", Some(values)),
                Requirement::Exists { key } => (key, "Exists", None),
                Requirement::DoesNotExist { key } => (key, "DoesNotExist", None),
            };
            LabelSelectorRequirement {
                key: key.clone(),
                operator: operator.to_owned(),
                values: values.map(|v| v.iter().cloned().collect()),
            }
        })
        .collect();
    let selector = LabelSelector {
        match_labels: None,
        match_expressions: Some(expressions),
    };
    reference::selector_matches(Some(&selector), Some(labels))
}
