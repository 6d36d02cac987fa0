//! Cluster administrators' policy from SIG Network's network-policy-api: `v1alpha2`
//! ClusterNetworkPolicy and the `v1alpha1` AdminNetworkPolicy / BaselineAdminNetworkPolicy it
//! replaced, as a compiler needs them: typed, validated, and placed in Calico's tiers.
//!
//! Each object goes through three steps:
//!
//! 1. [`raw`]: serde types mirroring the CRDs' YAML (unknown fields rejected, as the CRDs'
//!    structural schemas reject them), read through `serde_path_to_error` for the field path.
//! 2. [`validate`]: the CRDs' validation (enums, ranges, list sizes, exactly-one-of unions, the
//!    `self.start < self.end` and named-port rules) into [`ClusterPolicy`], one type for both
//!    API versions. Peers this agent cannot enforce are refused with the field named: `nodes`
//!    (Node objects are not watched) and `domainNames` (no DNS-aware policy).
//! 3. [`translate`]: the policy as the Calico GlobalNetworkPolicy that Calico 3.32 makes of it,
//!    in its built-in tiers `kube-admin` (order 1,000, before the `default` tier that holds
//!    NetworkPolicies) and `kube-baseline` (order 10,000,000, after it), both ending in Pass.
//!    The ordered engine that already decides Calico tiers then decides these too.

mod raw;
pub mod translate;
mod validate;

use std::fmt;

use ipnet::IpNet;
use thiserror::Error;

pub use self::validate::parse_value;
use crate::model::{LabelSelector, Protocol};

/// The API group of every kind here.
pub const API_GROUP: &str = "policy.networking.k8s.io";

/// Calico's built-in tier for the Admin tier (libcalico-go `KubeAdminTierName`).
pub const ADMIN_TIER: &str = "kube-admin";
/// Its order (`KubeAdminTierOrder`): before the `default` tier (1,000,000).
pub const ADMIN_TIER_ORDER: f64 = 1_000.0;
/// Calico's built-in tier for the Baseline tier (`KubeBaselineTierName`).
pub const BASELINE_TIER: &str = "kube-baseline";
/// Its order (`KubeBaselineTierOrder`): after the `default` tier.
pub const BASELINE_TIER_ORDER: f64 = 10_000_000.0;

/// The kinds this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ApiKind {
    /// `policy.networking.k8s.io/v1alpha2`
    ClusterNetworkPolicy,
    /// `policy.networking.k8s.io/v1alpha1`
    AdminNetworkPolicy,
    /// `policy.networking.k8s.io/v1alpha1`, a singleton named `default`.
    BaselineAdminNetworkPolicy,
}

impl ApiKind {
    pub const ALL: [ApiKind; 3] = [
        ApiKind::ClusterNetworkPolicy,
        ApiKind::AdminNetworkPolicy,
        ApiKind::BaselineAdminNetworkPolicy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ApiKind::ClusterNetworkPolicy => "ClusterNetworkPolicy",
            ApiKind::AdminNetworkPolicy => "AdminNetworkPolicy",
            ApiKind::BaselineAdminNetworkPolicy => "BaselineAdminNetworkPolicy",
        }
    }

    pub fn version(self) -> &'static str {
        match self {
            ApiKind::ClusterNetworkPolicy => "v1alpha2",
            ApiKind::AdminNetworkPolicy | ApiKind::BaselineAdminNetworkPolicy => "v1alpha1",
        }
    }

    /// `policy.networking.k8s.io/<version>`.
    pub fn api_version(self) -> String {
        format!("{API_GROUP}/{}", self.version())
    }

    /// The resource's plural, as its CRD names it.
    pub fn plural(self) -> &'static str {
        match self {
            ApiKind::ClusterNetworkPolicy => "clusternetworkpolicies",
            ApiKind::AdminNetworkPolicy => "adminnetworkpolicies",
            ApiKind::BaselineAdminNetworkPolicy => "baselineadminnetworkpolicies",
        }
    }

    /// The kind `kind` names under `apiVersion` `api_version`, if it is one of these.
    pub fn from_api(api_version: &str, kind: &str) -> Option<ApiKind> {
        ApiKind::ALL
            .into_iter()
            .find(|k| k.as_str() == kind && k.api_version() == api_version)
    }

    /// The prefix of the Calico policy names this kind is translated to (see [`translate`]).
    /// Calico's own names: `kcnp.<tier>.<name>` for a ClusterNetworkPolicy, and the names of
    /// Calico 3.29–3.31 for the v1alpha1 kinds. None for a combination validation never makes.
    fn name_prefix(self, tier: PolicyTier) -> Option<&'static str> {
        match (self, tier) {
            (ApiKind::ClusterNetworkPolicy, PolicyTier::Admin) => Some("kcnp.kube-admin."),
            (ApiKind::ClusterNetworkPolicy, PolicyTier::Baseline) => Some("kcnp.kube-baseline."),
            (ApiKind::AdminNetworkPolicy, PolicyTier::Admin) => Some("kanp.adminnetworkpolicy."),
            (ApiKind::BaselineAdminNetworkPolicy, PolicyTier::Baseline) => {
                Some("kbanp.baselineadminnetworkpolicy.")
            }
            _ => None,
        }
    }
}

impl fmt::Display for ApiKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a policy is evaluated: before NetworkPolicies, or after them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicyTier {
    Admin,
    Baseline,
}

impl PolicyTier {
    /// The Calico tier the policy is placed in.
    pub fn calico_tier(self) -> &'static str {
        match self {
            PolicyTier::Admin => ADMIN_TIER,
            PolicyTier::Baseline => BASELINE_TIER,
        }
    }
}

/// One validated policy of any of the three kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterPolicy {
    pub kind: ApiKind,
    pub name: String,
    pub tier: PolicyTier,
    /// `spec.priority` (0–1000, lower first); 0 for a BaselineAdminNetworkPolicy, which has none.
    pub priority: u32,
    pub subject: Subject,
    /// In written order; the first rule matching a packet decides.
    pub ingress: Vec<ClusterRule>,
    pub egress: Vec<ClusterRule>,
}

impl ClusterPolicy {
    /// `Kind name`, as errors and status name it.
    pub fn describe(&self) -> String {
        format!("{} {}", self.kind, self.name)
    }
}

/// The pods a policy applies to (host-network pods never are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// Every pod of the namespaces the selector matches.
    Namespaces(LabelSelector),
    Pods {
        namespaces: LabelSelector,
        pods: LabelSelector,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterRule {
    /// `name`, empty when not given.
    pub name: String,
    pub action: RuleAction,
    /// Any of them matching is a match.
    pub peers: Vec<ClusterPeer>,
    /// None: every protocol and port (ICMP included); otherwise any of them.
    pub ports: Option<Vec<ClusterPort>>,
}

/// `Accept` (v1alpha2) and `Allow` (v1alpha1) are the same action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleAction {
    Accept,
    Deny,
    /// Skip the rest of the tier.
    Pass,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterPeer {
    /// Every pod of the matching namespaces.
    Namespaces(LabelSelector),
    Pods {
        namespaces: LabelSelector,
        pods: LabelSelector,
    },
    /// Addresses in these CIDRs, pods' included (egress only).
    Networks(Vec<IpNet>),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ClusterPort {
    /// `first..=last` of one protocol; a single port has `first == last`.
    Range {
        protocol: Protocol,
        first: u16,
        last: u16,
    },
    /// A container port of the destination pod, by name (whatever its protocol).
    Named(String),
}

/// An object that failed validation: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("field {field}: {message}")]
pub struct ClusterPolicyError {
    /// Path from the object's root (`spec.egress[1].to[0].nodes`); empty for the whole object.
    pub field: String,
    pub message: String,
}

/// The kind and policy name a translated Calico policy name stands for, if it is one.
pub fn origin_of(calico_name: &str) -> Option<(ApiKind, PolicyTier, &str)> {
    ApiKind::ALL.into_iter().find_map(|kind| {
        [PolicyTier::Admin, PolicyTier::Baseline]
            .into_iter()
            .find_map(|tier| {
                kind.name_prefix(tier)
                    .and_then(|prefix| calico_name.strip_prefix(prefix))
                    .map(|name| (kind, tier, name))
            })
    })
}

/// Whether a user's Calico policy name would collide with a translated one.
pub fn is_reserved_name(calico_name: &str) -> bool {
    origin_of(calico_name).is_some()
}

#[cfg(test)]
mod tests;
