//! Which policies apply to an endpoint, and the walk over them: tiers sorted by order then
//! name, policies in a tier by order then Felix's key, rules in written order, until a rule
//! or a tier's default action decides, else the profile. Separate from the rule matching
//! (`calico_rules.rs`, `kubernetes_rules.rs`, `cluster_policy.rs`): the walk only asks each
//! rule whether it matches.

use std::cmp::Ordering;

use k8s_openapi::api::{core::v1::Pod, networking::v1::NetworkPolicy};
use policy_agent::cluster_policy::{ApiKind, ClusterPolicy, PolicyTier};

use super::{
    Ctx,
    cluster_policy::cluster_rules,
    endpoints::{endpoint_labels, service_account, service_account_labels},
    selector_matches,
};
use crate::{
    calico_reference::{
        resources::{
            ADMIN_TIER_ORDER, Action, BASELINE_TIER_ORDER, DEFAULT_TIER, Policy, TierAction,
        },
        trace::{
            ADMIN_TIER, BASELINE_TIER, DecidedBy, Direction, EndpointId, EndpointTrace, PolicyId,
            PolicyKind, PolicyTrace, RuleTrace, TierEnd, TierTrace,
        },
        world::DEFAULT_TIER_ORDER,
    },
    reference,
};

const KNP_ORDER: f64 = 1000.0;

/// A policy applying to the endpoint, Calico's, a Kubernetes one or an administrators' one.
enum Source<'a> {
    Calico(&'a Policy),
    Kubernetes(&'a NetworkPolicy),
    Cluster(&'a ClusterPolicy),
}

struct Applying<'a> {
    id: PolicyId,
    tier: String,
    order: Option<f64>,
    source: Source<'a>,
}

struct TierInfo {
    name: String,
    order: Option<f64>,
    default_action: TierAction,
}

fn cmp_order(a: Option<f64>, b: Option<f64>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

impl<'a> Ctx<'a> {
    pub(super) fn evaluate(
        &self,
        pod: &'a Pod,
        endpoint: EndpointId,
        direction: Direction,
    ) -> EndpointTrace {
        let applying = self.applying(pod, direction);
        let mut tier_names: Vec<&str> = applying.iter().map(|a| a.tier.as_str()).collect();
        tier_names.sort_unstable();
        tier_names.dedup();
        let mut tiers: Vec<TierInfo> = tier_names.into_iter().map(|n| self.tier(n)).collect();
        tiers.sort_by(|a, b| cmp_order(a.order, b.order).then_with(|| a.name.cmp(&b.name)));

        let mut traces = Vec::new();
        for tier in tiers {
            let mut policies: Vec<&Applying> =
                applying.iter().filter(|a| a.tier == tier.name).collect();
            policies.sort_by(|a, b| {
                cmp_order(a.order, b.order).then_with(|| a.id.key().cmp(&b.id.key()))
            });
            let mut policy_traces = Vec::new();
            let mut end = None;
            for policy in policies {
                let mut rules = Vec::new();
                for (index, action, mismatch) in self.rules(policy, direction) {
                    rules.push(RuleTrace {
                        index,
                        action,
                        mismatch,
                    });
                    if mismatch.is_some() {
                        continue;
                    }
                    match action {
                        Action::Log => continue,
                        Action::Allow | Action::Deny => {
                            end = Some(TierEnd::Decided {
                                policy: policy.id.clone(),
                                rule: index,
                                action,
                            });
                        }
                        Action::Pass => {
                            end = Some(TierEnd::Passed {
                                policy: policy.id.clone(),
                                rule: index,
                            });
                        }
                    }
                    break;
                }
                policy_traces.push(PolicyTrace {
                    policy: policy.id.clone(),
                    order: policy.order,
                    rules,
                });
                if end.is_some() {
                    break;
                }
            }
            let end = end.unwrap_or(TierEnd::Default(tier.default_action));
            let decided = match &end {
                TierEnd::Decided {
                    policy,
                    rule,
                    action,
                } => Some((
                    *action == Action::Allow,
                    DecidedBy::Rule {
                        tier: tier.name.clone(),
                        policy: policy.clone(),
                        rule: *rule,
                        action: *action,
                    },
                )),
                TierEnd::Default(TierAction::Deny) => Some((
                    false,
                    DecidedBy::TierDefault {
                        tier: tier.name.clone(),
                    },
                )),
                TierEnd::Passed { .. } | TierEnd::Default(TierAction::Pass) => None,
            };
            traces.push(TierTrace {
                name: tier.name,
                order: tier.order,
                default_action: tier.default_action,
                policies: policy_traces,
                end,
            });
            if let Some((allowed, decided_by)) = decided {
                return EndpointTrace {
                    direction,
                    endpoint,
                    tiers: traces,
                    allowed,
                    decided_by,
                };
            }
        }
        EndpointTrace {
            direction,
            endpoint,
            tiers: traces,
            allowed: true,
            decided_by: DecidedBy::Profile,
        }
    }

    /// The tier named `name`: declared, the implicit `default`, or an undeclared one.
    fn tier(&self, name: &str) -> TierInfo {
        if let Some(tier) = self.world.tiers.iter().find(|t| t.name == name) {
            return TierInfo {
                name: tier.name.clone(),
                order: tier.order,
                default_action: tier.default_action,
            };
        }
        // Calico creates these tiers itself: administrators' tiers end in Pass, so a policy
        // there that decides nothing leaves the packet to the next tier.
        let (order, default_action) = match name {
            DEFAULT_TIER => (Some(DEFAULT_TIER_ORDER), TierAction::Deny),
            ADMIN_TIER => (Some(ADMIN_TIER_ORDER), TierAction::Pass),
            BASELINE_TIER => (Some(BASELINE_TIER_ORDER), TierAction::Pass),
            _ => (None, TierAction::Deny),
        };
        TierInfo {
            name: name.to_owned(),
            order,
            default_action,
        }
    }

    /// Every policy applying to `pod` in `direction`.
    fn applying(&self, pod: &'a Pod, direction: Direction) -> Vec<Applying<'a>> {
        let ns = reference::namespace_of(&pod.metadata);
        let labels = endpoint_labels(pod);
        let sa_labels = service_account_labels(&service_account(pod));
        let ns_labels = self.namespace_labels(&ns);
        let mut out = Vec::new();
        for policy in &self.world.policies {
            let types_ok = match direction {
                Direction::Ingress => policy.types.ingress,
                Direction::Egress => policy.types.egress,
            };
            let scope_ok = match &policy.namespace {
                Some(policy_ns) => *policy_ns == ns,
                None => {
                    !policy.pre_dnat
                        && !policy.do_not_track
                        && policy
                            .namespace_selector
                            .as_ref()
                            .is_none_or(|s| selector_matches(s, &ns_labels, true))
                }
            };
            let selected = selector_matches(&policy.selector, &labels, true)
                && policy
                    .service_account_selector
                    .as_ref()
                    .is_none_or(|s| selector_matches(s, &sa_labels, true));
            if types_ok && scope_ok && selected {
                out.push(Applying {
                    id: PolicyId {
                        kind: if policy.namespace.is_some() {
                            PolicyKind::NetworkPolicy
                        } else {
                            PolicyKind::GlobalNetworkPolicy
                        },
                        namespace: policy.namespace.clone(),
                        name: policy.name.clone(),
                    },
                    tier: policy.tier.clone(),
                    order: policy.order,
                    source: Source::Calico(policy),
                });
            }
        }
        for np in &self.world.k8s_policies {
            let spec = np.spec.as_ref();
            let types_ok = match direction {
                Direction::Ingress => reference::applies_to_ingress(np),
                Direction::Egress => reference::applies_to_egress(np),
            };
            let selected = reference::namespace_of(&np.metadata) == ns
                && reference::selector_matches(
                    spec.and_then(|s| s.pod_selector.as_ref()),
                    pod.metadata.labels.as_ref(),
                );
            if types_ok && selected {
                out.push(Applying {
                    id: PolicyId {
                        kind: PolicyKind::KubernetesNetworkPolicy,
                        namespace: Some(reference::namespace_of(&np.metadata)),
                        name: format!(
                            "knp.default.{}",
                            np.metadata.name.as_deref().unwrap_or_default()
                        ),
                    },
                    tier: DEFAULT_TIER.to_owned(),
                    order: Some(KNP_ORDER),
                    source: Source::Kubernetes(np),
                });
            }
        }
        for policy in &self.world.cluster_policies {
            // A policy without rules in a direction does not touch it.
            let has_rules = !cluster_rules(policy, direction).is_empty();
            if has_rules && self.cluster_subject_matches(&policy.subject, pod) {
                let baseline = policy.tier == PolicyTier::Baseline;
                out.push(Applying {
                    id: PolicyId {
                        kind: match policy.kind {
                            ApiKind::ClusterNetworkPolicy => {
                                PolicyKind::ClusterNetworkPolicy { baseline }
                            }
                            ApiKind::AdminNetworkPolicy => PolicyKind::AdminNetworkPolicy,
                            ApiKind::BaselineAdminNetworkPolicy => {
                                PolicyKind::BaselineAdminNetworkPolicy
                            }
                        },
                        namespace: None,
                        name: policy.name.clone(),
                    },
                    tier: if baseline { BASELINE_TIER } else { ADMIN_TIER }.to_owned(),
                    // Lower priorities first; equal ones by `PolicyId::key`.
                    order: Some(f64::from(policy.priority)),
                    source: Source::Cluster(policy),
                });
            }
        }
        out
    }

    /// `(index, action, mismatch)` for each rule of `policy` in `direction`.
    fn rules(
        &self,
        policy: &Applying<'a>,
        direction: Direction,
    ) -> Vec<(usize, Action, Option<&'static str>)> {
        match policy.source {
            Source::Calico(p) => {
                let rules = match direction {
                    Direction::Ingress => &p.ingress,
                    Direction::Egress => &p.egress,
                };
                rules
                    .iter()
                    .enumerate()
                    .map(|(i, rule)| {
                        (
                            i,
                            rule.action,
                            self.rule_mismatch(rule, p.namespace.as_deref()),
                        )
                    })
                    .collect()
            }
            Source::Kubernetes(np) => self.knp_rules(np, direction),
            Source::Cluster(cp) => self.cluster_rules(cp, direction),
        }
    }
}
