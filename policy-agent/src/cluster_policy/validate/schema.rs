//! The schemas' limits and the two API versions, shared by the objects' checks and their
//! peers' and ports'; and the error every check returns.

use crate::cluster_policy::ClusterPolicyError;

/// Limits of the two API versions' schemas.
pub(super) struct Limits {
    /// `ingress`, `egress` (each).
    pub(super) rules: usize,
    /// `from`, `to`, `ports`/`protocols` (each).
    pub(super) items: usize,
}

pub(super) const V1ALPHA2: Limits = Limits {
    rules: 25,
    items: 25,
};
pub(super) const V1ALPHA1: Limits = Limits {
    rules: 100,
    items: 100,
};
/// `name` of a rule.
pub(super) const RULE_NAME_MAX: usize = 100;
/// `networks` of one peer, in both versions.
pub(super) const NETWORKS_MAX: usize = 25;
/// `CIDR`'s `MaxLength`.
pub(super) const CIDR_MAX_LEN: usize = 43;
pub(super) const PRIORITY_MAX: i64 = 1000;
/// Label keys Calico sets itself on the namespaces and pods its selectors see.
pub(super) const CALICO_LABEL_PREFIX: &str = "projectcalico.org/";
pub(super) const RESERVED_KEY: &str = "label keys under projectcalico.org/ are not supported: Calico's automatic labels (which this agent's selectors see) replace the objects' own";

pub(super) fn error(field: impl Into<String>, message: impl Into<String>) -> ClusterPolicyError {
    ClusterPolicyError {
        field: field.into(),
        message: message.into(),
    }
}

/// Which API version an object was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Version {
    V1alpha1,
    V1alpha2,
}
