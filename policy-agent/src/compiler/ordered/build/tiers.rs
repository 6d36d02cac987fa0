//! Which policies apply to an endpoint direction, and their order: tiers by order then name
//! (Calico's built-in tiers when not declared), policies in a tier by order then Felix's
//! key. Separate from what each policy's rules become (`policy_rules.rs`).

use std::collections::BTreeMap;

use super::{local_side::Local, policy_rules::ordered_policy};
use crate::{
    calico::{
        resources::{DEFAULT_TIER, Policy, TierAction, cmp_optional_order},
        selector::Scope,
    },
    cluster_policy,
    compiler::{
        ordered::{OrderedTier, owners},
        policy_name::PolicyDirection,
        relevance::Relevance,
    },
    model::{Cluster, NetworkPolicy, Pod},
};

/// The order of the `default` tier when no Tier resource declares it (libcalico-go's
/// `DefaultTierOrder`).
const DEFAULT_TIER_ORDER: f64 = 1_000_000.0;
/// Where Calico places Kubernetes NetworkPolicies in the `default` tier.
const KUBERNETES_POLICY_ORDER: f64 = 1000.0;

/// A policy that applies to the endpoint, before ordering.
pub(super) struct Applying<'a> {
    pub(super) tier: &'a str,
    pub(super) order: Option<f64>,
    /// Felix's tie-breaker: `<namespace>/<name>` for namespaced policies, `<name>` for global
    /// ones (Kubernetes policies are `knp.default.<name>`).
    pub(super) key: String,
    pub(super) source: Source<'a>,
}

pub(super) enum Source<'a> {
    Calico(&'a Policy),
    Kubernetes(&'a NetworkPolicy),
}

/// Applying policies grouped into tiers, both in Calico's order.
pub(super) fn ordered_tiers(
    mut applying: Vec<Applying<'_>>,
    cluster: &Cluster,
    relevance: &Relevance,
    local: &Local<'_>,
    direction: PolicyDirection,
) -> Vec<OrderedTier> {
    applying.sort_by(|a, b| cmp_optional_order(a.order, b.order).then_with(|| a.key.cmp(&b.key)));
    let mut by_tier: BTreeMap<&str, Vec<Applying<'_>>> = BTreeMap::new();
    for policy in applying {
        by_tier.entry(policy.tier).or_default().push(policy);
    }
    let mut tiers: Vec<(&str, Vec<Applying<'_>>)> = by_tier.into_iter().collect();
    tiers.sort_by(|(a, _), (b, _)| {
        cmp_optional_order(tier_order(cluster, a), tier_order(cluster, b)).then_with(|| a.cmp(b))
    });
    tiers
        .into_iter()
        .map(|(name, policies)| OrderedTier {
            name: name.to_owned(),
            default_action: tier_default_action(cluster, name),
            policies: policies
                .iter()
                .map(|policy| ordered_policy(policy, cluster, relevance, local, direction))
                .collect(),
        })
        .collect()
}

/// A tier's order: as declared, else the built-in tier's (Calico creates `default`,
/// `kube-admin` and `kube-baseline` itself; validation refuses other values for them).
fn tier_order(cluster: &Cluster, name: &str) -> Option<f64> {
    match cluster.calico.tiers.get(name) {
        Some(tier) => tier.order,
        None => builtin_tier(name).map(|(order, _)| order),
    }
}

pub(super) fn tier_default_action(cluster: &Cluster, name: &str) -> TierAction {
    match cluster.calico.tiers.get(name) {
        Some(tier) => tier.default_action,
        None => builtin_tier(name).map_or(TierAction::Deny, |(_, action)| action),
    }
}

/// (order, default action) of Calico's built-in tiers.
pub fn builtin_tier(name: &str) -> Option<(f64, TierAction)> {
    match name {
        DEFAULT_TIER => Some((DEFAULT_TIER_ORDER, TierAction::Deny)),
        cluster_policy::ADMIN_TIER => Some((cluster_policy::ADMIN_TIER_ORDER, TierAction::Pass)),
        cluster_policy::BASELINE_TIER => {
            Some((cluster_policy::BASELINE_TIER_ORDER, TierAction::Pass))
        }
        _ => None,
    }
}

/// Every policy applying to `pod` in `direction`.
pub(super) fn applying<'a>(
    pod: &Pod,
    cluster: &'a Cluster,
    direction: PolicyDirection,
) -> Vec<Applying<'a>> {
    let labels = owners::pod_labels(&pod.labels, &pod.namespace, &pod.service_account);
    let namespace_labels =
        owners::namespace_labels(cluster.namespace_labels(&pod.namespace), &pod.namespace);
    let account_labels = owners::service_account_labels(&pod.service_account);
    let mut out = Vec::new();
    for policy in cluster.calico.policies.values() {
        let types_ok = match direction {
            PolicyDirection::Ingress => policy.types.ingress,
            PolicyDirection::Egress => policy.types.egress,
        };
        let scope_ok = match &policy.namespace {
            Some(ns) => *ns == pod.namespace,
            // preDNAT and doNotTrack policies apply only to host endpoints.
            None => {
                !policy.pre_dnat
                    && !policy.do_not_track
                    && policy
                        .namespace_selector
                        .as_ref()
                        .is_none_or(|s| s.evaluate(&namespace_labels, Scope::NAMESPACED))
            }
        };
        let selected = policy.selector.evaluate(&labels, Scope::NAMESPACED)
            && policy
                .service_account_selector
                .as_ref()
                .is_none_or(|s| s.evaluate(&account_labels, Scope::NAMESPACED));
        if types_ok && scope_ok && selected {
            out.push(Applying {
                tier: &policy.tier,
                order: policy.order,
                key: match &policy.namespace {
                    Some(ns) => format!("{ns}/{}", policy.name),
                    None => policy.name.clone(),
                },
                source: Source::Calico(policy),
            });
        }
    }
    let in_namespace = cluster
        .policies
        .range((pod.namespace.clone(), String::new())..)
        .take_while(|((ns, _), _)| *ns == pod.namespace)
        .map(|(_, policy)| policy);
    for policy in in_namespace {
        let applies = match direction {
            PolicyDirection::Ingress => policy.ingress.is_some(),
            PolicyDirection::Egress => policy.egress.is_some(),
        };
        if applies && policy.pod_selector.matches(&pod.labels) {
            out.push(Applying {
                tier: DEFAULT_TIER,
                order: Some(KUBERNETES_POLICY_ORDER),
                key: format!("{}/knp.default.{}", policy.namespace, policy.name),
                source: Source::Kubernetes(policy),
            });
        }
    }
    out
}
