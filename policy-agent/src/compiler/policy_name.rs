//! What names a policy and the side of it a rule belongs to: the vocabulary of explanations,
//! shared by the Kubernetes tables and the ordered (Calico) tables, so that neither has to
//! import the other for it.

use std::fmt;

use crate::cluster_policy::ApiKind;

/// Which of a policy's rule lists: what an endpoint receives (`Ingress`) or sends (`Egress`).
/// Not the way a packet crosses an interface (that is `replay::PolicyDirection`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicyDirection {
    Ingress,
    Egress,
}

impl fmt::Display for PolicyDirection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PolicyDirection::Ingress => "ingress",
            PolicyDirection::Egress => "egress",
        })
    }
}

/// A policy by kind and name, for explanations.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyName {
    pub kind: PolicyKind,
    /// Empty for a GlobalNetworkPolicy.
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicyKind {
    /// networking.k8s.io/v1 NetworkPolicy.
    Kubernetes,
    /// projectcalico.org/v3 NetworkPolicy.
    CalicoNetworkPolicy,
    GlobalNetworkPolicy,
    /// Calico's failsafe ports of a host endpoint, allowed before any policy.
    Failsafe,
    /// An administrators' policy (network-policy-api), by its own kind and name; its rules are
    /// numbered as written.
    Cluster(ApiKind),
}

impl fmt::Display for PolicyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            PolicyKind::Kubernetes => write!(f, "NetworkPolicy {}/{}", self.namespace, self.name),
            PolicyKind::CalicoNetworkPolicy => write!(
                f,
                "NetworkPolicy {}/{} (projectcalico.org/v3)",
                self.namespace, self.name
            ),
            PolicyKind::GlobalNetworkPolicy => write!(f, "GlobalNetworkPolicy {}", self.name),
            PolicyKind::Failsafe => f.write_str("failsafe ports"),
            PolicyKind::Cluster(kind) => write!(f, "{kind} {}", self.name),
        }
    }
}
