//! A host endpoint's ordered content: Calico's failsafe ports first, then the
//! GlobalNetworkPolicies selecting it, then its profiles. Separate because host endpoints
//! follow their own rules: no namespace, no service account, and a deny when nothing decides.

use super::{
    local_side::Local,
    policy_rules::rule_index,
    tiers::{Applying, Source, ordered_tiers},
};
use crate::{
    calico::{
        resources::{Action, HostEndpoint, TierAction},
        selector::Scope,
    },
    compiler::{
        ordered::{
            CalicoContext, CalicoMatch, Matcher, OrderedContent, OrderedPolicy, OrderedRule,
            OrderedTier, PeerEntity, PortRule,
        },
        policy_name::{PolicyDirection, PolicyKind, PolicyName},
        relevance::Relevance,
    },
    model::Cluster,
};

/// Calico's built-in profile that allows everything: kube-controllers gives it to the
/// automatic host endpoints it creates, so that protecting a node does not cut its traffic.
pub const DEFAULT_ALLOW_PROFILE: &str = "projectcalico-default-allow";

/// The ordered content of a host endpoint's direction: Calico's failsafe ports first, then the
/// GlobalNetworkPolicies selecting it, and a deny when nothing decides (Calico's default for
/// host endpoints without an allowing policy), unless the host endpoint lists the
/// [`DEFAULT_ALLOW_PROFILE`], whose allow then decides. Other profiles name Profile resources,
/// which Palisade does not read: they change nothing.
pub fn build_host(
    host: &HostEndpoint,
    cluster: &Cluster,
    relevance: &Relevance,
    context: &CalicoContext,
    direction: PolicyDirection,
    failsafe: &[(u8, u16)],
) -> OrderedContent {
    let local = Local::host(host, context);
    let mut tiers = vec![failsafe_tier(&local, failsafe)];
    tiers.extend(ordered_tiers(
        applying_host(host, cluster, direction),
        cluster,
        relevance,
        &local,
        direction,
    ));
    OrderedContent {
        tiers,
        profile_allows: host.profiles.iter().any(|p| p == DEFAULT_ALLOW_PROFILE),
    }
}

/// Allow rules for the failsafe (protocol, port)s, in a tier that passes everything else.
fn failsafe_tier(local: &Local<'_>, failsafe: &[(u8, u16)]) -> OrderedTier {
    let has = [local.addrs[0].is_some(), local.addrs[1].is_some()];
    let rules = failsafe
        .iter()
        .enumerate()
        .map(|(index, (protocol, port))| OrderedRule {
            action: Action::Allow,
            index: rule_index(index),
            matcher: Matcher::Calico(Box::new(CalicoMatch {
                local_ok: has,
                protocol: Some(*protocol),
                not_protocol: None,
                icmp: None,
                not_icmp: None,
                peer: PeerEntity {
                    nets: Vec::new(),
                    not_nets: Vec::new(),
                    selector: None,
                    not_selector: None,
                    namespace_selector: None,
                    service_accounts: None,
                    policy_namespace: None,
                },
                ports: Some(vec![PortRule::Range {
                    first: *port,
                    last: *port,
                }]),
                not_ports: None,
                source_ports: None,
                not_source_ports: None,
            })),
        })
        .collect();
    OrderedTier {
        name: "failsafe".to_owned(),
        default_action: TierAction::Pass,
        policies: vec![OrderedPolicy {
            name: PolicyName {
                kind: PolicyKind::Failsafe,
                namespace: String::new(),
                name: "failsafe".to_owned(),
            },
            rules,
        }],
    }
}

/// The GlobalNetworkPolicies applying to a host endpoint: selected by its labels (as a
/// global resource), with no `namespaceSelector` or `serviceAccountSelector` (a host endpoint
/// has neither a namespace nor a service account). `preDNAT`, `doNotTrack` and
/// `applyOnForward` policies apply too, to the host endpoint's own traffic.
fn applying_host<'a>(
    host: &HostEndpoint,
    cluster: &'a Cluster,
    direction: PolicyDirection,
) -> Vec<Applying<'a>> {
    cluster
        .calico
        .policies
        .values()
        .filter(|policy| {
            let types_ok = match direction {
                PolicyDirection::Ingress => policy.types.ingress,
                PolicyDirection::Egress => policy.types.egress,
            };
            types_ok
                && policy.namespace.is_none()
                && policy.namespace_selector.is_none()
                && policy.service_account_selector.is_none()
                && policy.selector.evaluate(&host.labels, Scope::GLOBAL)
        })
        .map(|policy| Applying {
            tier: &policy.tier,
            order: policy.order,
            key: policy.name.clone(),
            source: Source::Calico(policy),
        })
        .collect()
}
