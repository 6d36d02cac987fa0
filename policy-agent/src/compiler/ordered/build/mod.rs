//! The ordered content of one endpoint direction: which tiers and policies apply, in which
//! order, and each rule with the endpoint's own side already decided.
//!
//! One file per step: `tiers.rs` finds the policies applying to the endpoint and orders
//! them into tiers, `policy_rules.rs` turns each policy's rules into matchers,
//! `local_side.rs` decides the endpoint's own side of a rule, and `host.rs` builds a host
//! endpoint's content (failsafe ports first). This file holds the entry points for pods.

mod host;
mod local_side;
mod policy_rules;
mod tiers;

pub use self::host::build_host;
use self::{
    local_side::Local,
    tiers::{Applying, Source, applying, ordered_tiers, tier_default_action},
};
use super::{CalicoContext, OrderedContent};
use crate::{
    calico::resources::{DEFAULT_TIER, TierAction},
    compiler::{policy_name::PolicyDirection, relevance::Relevance},
    model::{Cluster, Pod},
};

/// Whether a direction with these applying policies needs an ordered table: some Calico
/// policy applies, or the `default` tier passes (then even Kubernetes policies alone are not
/// Kubernetes' union).
fn needs_ordered(applying: &[Applying<'_>], cluster: &Cluster) -> bool {
    applying
        .iter()
        .any(|a| matches!(a.source, Source::Calico(_)))
        || (!applying.is_empty() && tier_default_action(cluster, DEFAULT_TIER) == TierAction::Pass)
}

/// The ordered content of `pod`'s `direction`, when it needs one.
pub fn build(
    pod: &Pod,
    cluster: &Cluster,
    relevance: &Relevance,
    context: &CalicoContext,
    direction: PolicyDirection,
) -> Option<OrderedContent> {
    let only_kubernetes_semantics = cluster.calico.policies.is_empty()
        && tier_default_action(cluster, DEFAULT_TIER) == TierAction::Deny;
    if only_kubernetes_semantics {
        return None;
    }
    let applying = applying(pod, cluster, direction);
    needs_ordered(&applying, cluster)
        .then(|| pod_content(pod, applying, cluster, relevance, context, direction))
}

/// The ordered content of `pod`'s `direction` even where Kubernetes policies alone apply
/// (`explain` walks every endpoint this way; for Kubernetes policies alone the walk gives
/// their union: the first allow in tier `default`, else its default Deny).
pub fn build_always(
    pod: &Pod,
    cluster: &Cluster,
    relevance: &Relevance,
    context: &CalicoContext,
    direction: PolicyDirection,
) -> OrderedContent {
    let applying = applying(pod, cluster, direction);
    pod_content(pod, applying, cluster, relevance, context, direction)
}

fn pod_content(
    pod: &Pod,
    applying: Vec<Applying<'_>>,
    cluster: &Cluster,
    relevance: &Relevance,
    context: &CalicoContext,
    direction: PolicyDirection,
) -> OrderedContent {
    let local = Local::pod(pod, cluster, context);
    OrderedContent {
        tiers: ordered_tiers(applying, cluster, relevance, &local, direction),
        profile_allows: true,
    }
}
