//! Calico's resources as the compiler sees them: the checked v3 values of
//! [`crate::calico::resources`], keyed the way an API server keys them.
//!
//! Both datastores fill this from their own input (v3 YAML files, or the
//! `crd.projectcalico.org/v1` custom resources); a resource that fails validation never gets
//! here, and the version accepted before it stays in force.

use std::collections::BTreeMap;

use crate::calico::resources::{CalicoResource, HostEndpoint, NetworkSet, Policy, Tier};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CalicoObjects {
    /// GlobalNetworkPolicies keyed `("", name)`, namespaced Calico NetworkPolicies
    /// `(namespace, name)`.
    pub policies: BTreeMap<(String, String), Policy>,
    pub tiers: BTreeMap<String, Tier>,
    /// GlobalNetworkSets keyed `("", name)`, NetworkSets `(namespace, name)`.
    pub network_sets: BTreeMap<(String, String), NetworkSet>,
    pub host_endpoints: BTreeMap<String, HostEndpoint>,
}

// Validation rejects a NaN `order`, the only value that would make equality partial.
impl Eq for CalicoObjects {}

impl CalicoObjects {
    /// Adds (or replaces) one resource, under the key an API server would give it.
    pub fn insert(&mut self, resource: CalicoResource) {
        match resource {
            CalicoResource::GlobalNetworkPolicy(policy) | CalicoResource::NetworkPolicy(policy) => {
                let key = (
                    policy.namespace.clone().unwrap_or_default(),
                    policy.name.clone(),
                );
                self.policies.insert(key, policy);
            }
            CalicoResource::Tier(tier) => {
                self.tiers.insert(tier.name.clone(), tier);
            }
            CalicoResource::GlobalNetworkSet(set) | CalicoResource::NetworkSet(set) => {
                let key = (set.namespace.clone().unwrap_or_default(), set.name.clone());
                self.network_sets.insert(key, set);
            }
            CalicoResource::HostEndpoint(endpoint) => {
                self.host_endpoints.insert(endpoint.name.clone(), endpoint);
            }
        }
    }

    /// No Calico resource at all: Kubernetes semantics alone, and the compiler's
    /// allow-only tables.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
            && self.tiers.is_empty()
            && self.network_sets.is_empty()
            && self.host_endpoints.is_empty()
    }
}
