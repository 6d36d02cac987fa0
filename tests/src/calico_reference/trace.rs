//! The verdict and its trace: for each side, every tier, policy and rule consulted, in order,
//! and what decided. This is what `policy-agent explain` is meant to print.

use std::fmt;

use super::{
    resources::{Action, TierAction},
    world::Packet,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A pod endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EndpointId {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for EndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    GlobalNetworkPolicy,
    /// A namespaced Calico NetworkPolicy.
    NetworkPolicy,
    /// A Kubernetes NetworkPolicy, as Calico places it.
    KubernetesNetworkPolicy,
    /// network-policy-api v1alpha2, in tier `kube-admin`, or `kube-baseline` when `baseline`.
    ClusterNetworkPolicy {
        baseline: bool,
    },
    /// network-policy-api v1alpha1, in tier `kube-admin`.
    AdminNetworkPolicy,
    /// network-policy-api v1alpha1, in tier `kube-baseline`.
    BaselineAdminNetworkPolicy,
}

/// The name prefixes Calico gives its GlobalNetworkPolicies for administrators' policy
/// (`kcnp.<tier>.` for ClusterNetworkPolicies since Calico 3.32, the v1alpha1 kinds' from
/// 3.29–3.31). Written here again, not taken from the agent: they are what breaks ties
/// between equal priorities (Felix's name order), so the model states them itself.
/// Calico's built-in tiers for administrators' policy.
pub const ADMIN_TIER: &str = "kube-admin";
pub const BASELINE_TIER: &str = "kube-baseline";
const CLUSTER_TIERS: [&str; 2] = [ADMIN_TIER, BASELINE_TIER];

const KCNP_ADMIN: &str = "kcnp.kube-admin.";
const KCNP_BASELINE: &str = "kcnp.kube-baseline.";
const KANP: &str = "kanp.adminnetworkpolicy.";
const KBANP: &str = "kbanp.baselineadminnetworkpolicy.";

/// A policy as the trace names it. A Kubernetes NetworkPolicy is named `knp.default.<name>`;
/// administrators' policies by their own name (`tier` tells the two ClusterNetworkPolicy
/// tiers apart).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PolicyId {
    pub kind: PolicyKind,
    pub namespace: Option<String>,
    pub name: String,
}

impl PolicyId {
    /// Felix's policy key name, the tie-break between policies of equal order:
    /// `<namespace>/<name>` or `<name>`; for administrators' policy, the name Calico gives
    /// its translation (`kcnp.kube-admin.<name>`, ...), so that at equal priorities an
    /// AdminNetworkPolicy comes before a ClusterNetworkPolicy, then names decide.
    pub fn key(&self) -> String {
        let prefix = match self.kind {
            PolicyKind::ClusterNetworkPolicy { baseline: true } => KCNP_BASELINE,
            PolicyKind::ClusterNetworkPolicy { baseline: false } => KCNP_ADMIN,
            PolicyKind::AdminNetworkPolicy => KANP,
            PolicyKind::BaselineAdminNetworkPolicy => KBANP,
            PolicyKind::GlobalNetworkPolicy
            | PolicyKind::NetworkPolicy
            | PolicyKind::KubernetesNetworkPolicy => "",
        };
        match &self.namespace {
            Some(ns) => format!("{ns}/{prefix}{}", self.name),
            None => format!("{prefix}{}", self.name),
        }
    }

    /// Whether this is an administrators' policy (a ClusterNetworkPolicy, ANP or BANP).
    pub fn is_cluster_policy(&self) -> bool {
        matches!(
            self.kind,
            PolicyKind::ClusterNetworkPolicy { .. }
                | PolicyKind::AdminNetworkPolicy
                | PolicyKind::BaselineAdminNetworkPolicy
        )
    }
}

impl fmt::Display for PolicyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            PolicyKind::GlobalNetworkPolicy => "GlobalNetworkPolicy",
            PolicyKind::NetworkPolicy => "NetworkPolicy",
            PolicyKind::KubernetesNetworkPolicy => "Kubernetes NetworkPolicy",
            PolicyKind::ClusterNetworkPolicy { .. } => "ClusterNetworkPolicy",
            PolicyKind::AdminNetworkPolicy => "AdminNetworkPolicy",
            PolicyKind::BaselineAdminNetworkPolicy => "BaselineAdminNetworkPolicy",
        };
        if self.is_cluster_policy() {
            // Their own name, not the translation's: what the administrator wrote.
            return write!(f, "{kind} {}", self.name);
        }
        write!(f, "{kind} {}", self.key())
    }
}

/// One rule consulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleTrace {
    /// Position in the policy's `ingress` or `egress` list.
    pub index: usize,
    pub action: Action,
    /// None when the rule matched; else the first field that did not hold, as a YAML path
    /// within the rule (`destination.ports`, `protocol`; `from`/`to`/`ports` for a Kubernetes
    /// rule).
    pub mismatch: Option<&'static str>,
}

impl RuleTrace {
    pub fn matched(&self) -> bool {
        self.mismatch.is_none()
    }
}

/// One policy consulted, with the rules consulted in it.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyTrace {
    pub policy: PolicyId,
    pub order: Option<f64>,
    pub rules: Vec<RuleTrace>,
}

/// How a tier that applied ended.
#[derive(Debug, Clone, PartialEq)]
pub enum TierEnd {
    /// An Allow or Deny rule decided.
    Decided {
        policy: PolicyId,
        rule: usize,
        action: Action,
    },
    /// A Pass rule sent the packet to the next tier.
    Passed { policy: PolicyId, rule: usize },
    /// No rule decided or passed: the tier's defaultAction.
    Default(TierAction),
}

/// One tier that applied to the endpoint (tiers that did not are not listed).
#[derive(Debug, Clone, PartialEq)]
pub struct TierTrace {
    pub name: String,
    /// The tier's effective order (None: after every ordered tier).
    pub order: Option<f64>,
    pub default_action: TierAction,
    pub policies: Vec<PolicyTrace>,
    pub end: TierEnd,
}

/// What decided one endpoint's verdict.
#[derive(Debug, Clone, PartialEq)]
pub enum DecidedBy {
    /// An Allow or Deny rule.
    Rule {
        tier: String,
        policy: PolicyId,
        rule: usize,
        action: Action,
    },
    /// A tier's defaultAction Deny.
    TierDefault { tier: String },
    /// No tier applied, or the last applying tier passed: the endpoint's profile (for a
    /// Kubernetes pod, Calico's per-namespace profile) allows.
    Profile,
}

/// One endpoint's evaluation in one direction.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointTrace {
    pub direction: Direction,
    pub endpoint: EndpointId,
    pub tiers: Vec<TierTrace>,
    pub allowed: bool,
    pub decided_by: DecidedBy,
}

/// The source's egress or the destination's ingress.
#[derive(Debug, Clone, PartialEq)]
pub enum Side {
    /// The address belongs to no live pod: nothing to check on this side.
    NotAnEndpoint,
    /// Traffic between the pod and a node address: always allowed.
    NodeTraffic {
        endpoint: EndpointId,
    },
    Evaluated(EndpointTrace),
}

impl Side {
    pub fn allowed(&self) -> bool {
        match self {
            Side::NotAnEndpoint | Side::NodeTraffic { .. } => true,
            Side::Evaluated(trace) => trace.allowed,
        }
    }

    pub fn trace(&self) -> Option<&EndpointTrace> {
        match self {
            Side::Evaluated(trace) => Some(trace),
            _ => None,
        }
    }
}

/// The verdict on one packet, with both sides' traces.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub packet: Packet,
    pub allowed: bool,
    /// The source endpoint's egress.
    pub egress: Side,
    /// The destination endpoint's ingress.
    pub ingress: Side,
}

impl Decision {
    pub fn side(&self, direction: Direction) -> &Side {
        match direction {
            Direction::Egress => &self.egress,
            Direction::Ingress => &self.ingress,
        }
    }

    /// What decided `direction`, when that side was evaluated.
    pub fn decided_by(&self, direction: Direction) -> Option<&DecidedBy> {
        self.side(direction).trace().map(|t| &t.decided_by)
    }

    /// Whether either side's walk went through a tier of administrators' policy
    /// (`kube-admin` or `kube-baseline`): some policy there applied to the endpoint, whatever
    /// decided in the end.
    pub fn through_cluster_tiers(&self) -> bool {
        [&self.egress, &self.ingress]
            .into_iter()
            .filter_map(Side::trace)
            .flat_map(|t| &t.tiers)
            .any(|tier| CLUSTER_TIERS.contains(&tier.name.as_str()))
    }

    /// Whether a rule of an administrators' policy decided either side.
    pub fn decided_by_cluster_policy(&self) -> bool {
        [&self.egress, &self.ingress]
            .into_iter()
            .filter_map(Side::trace)
            .any(|t| matches!(&t.decided_by, DecidedBy::Rule { policy, .. } if policy.is_cluster_policy()))
    }

    /// The side that denied (egress first), if any.
    pub fn denied_by(&self) -> Option<&EndpointTrace> {
        [&self.egress, &self.ingress]
            .into_iter()
            .filter_map(Side::trace)
            .find(|t| !t.allowed)
    }
}

fn action_str(action: Action) -> &'static str {
    match action {
        Action::Allow => "Allow",
        Action::Deny => "Deny",
        Action::Log => "Log",
        Action::Pass => "Pass",
    }
}

fn tier_action_str(action: TierAction) -> &'static str {
    match action {
        TierAction::Deny => "Deny",
        TierAction::Pass => "Pass",
    }
}

struct Order(Option<f64>);

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(order) => write!(f, "order {order}"),
            None => f.write_str("order omitted"),
        }
    }
}

impl fmt::Display for DecidedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecidedBy::Rule {
                tier,
                policy,
                rule,
                action,
            } => write!(
                f,
                "{} by tier {tier}, {policy}, rule {rule}",
                action_str(*action)
            ),
            DecidedBy::TierDefault { tier } => write!(f, "Deny by tier {tier}'s defaultAction"),
            DecidedBy::Profile => f.write_str("Allow by the endpoint's profile (no tier decided)"),
        }
    }
}

impl fmt::Display for EndpointTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = self.direction;
        writeln!(
            f,
            "{dir} of {}: {}",
            self.endpoint,
            if self.allowed { "ALLOW" } else { "DENY" }
        )?;
        if self.tiers.is_empty() {
            writeln!(f, "  no policy applies")?;
        }
        for tier in &self.tiers {
            writeln!(
                f,
                "  tier {} ({}, defaultAction {})",
                tier.name,
                Order(tier.order),
                tier_action_str(tier.default_action)
            )?;
            for policy in &tier.policies {
                writeln!(f, "    {} ({})", policy.policy, Order(policy.order))?;
                if policy.rules.is_empty() {
                    writeln!(f, "      no {dir} rules")?;
                }
                for rule in &policy.rules {
                    write!(
                        f,
                        "      {dir}[{}] {}: ",
                        rule.index,
                        action_str(rule.action)
                    )?;
                    match rule.mismatch {
                        None => writeln!(f, "match")?,
                        Some(field) => writeln!(f, "no match ({field})")?,
                    }
                }
            }
            match &tier.end {
                TierEnd::Decided {
                    policy,
                    rule,
                    action,
                } => writeln!(
                    f,
                    "    => {} by {policy} {dir}[{rule}]",
                    action_str(*action)
                )?,
                TierEnd::Passed { policy, rule } => {
                    writeln!(f, "    => Pass by {policy} {dir}[{rule}]: next tier")?;
                }
                TierEnd::Default(action) => writeln!(
                    f,
                    "    => no rule decided: defaultAction {}",
                    tier_action_str(*action)
                )?,
            }
        }
        writeln!(f, "  decided: {}", self.decided_by)
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Side::NotAnEndpoint => writeln!(f, "not an endpoint: not checked"),
            Side::NodeTraffic { endpoint } => {
                writeln!(f, "{endpoint}: traffic with a node address, always allowed")
            }
            Side::Evaluated(trace) => write!(f, "{trace}"),
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} {}",
            if self.allowed { "ALLOW" } else { "DENY" },
            self.packet
        )?;
        write!(f, "source egress: {}", self.egress)?;
        write!(f, "destination ingress: {}", self.ingress)
    }
}
