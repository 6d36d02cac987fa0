//! From the cluster model to the exact contents of the three BPF maps.
//!
//! The compiler is a pure function of the cluster plus a little memory (the ids it handed out
//! before), so the same input always gives the same maps and a change gives the smallest diff
//! it can. See docs/architecture.md for the map layouts and why they look like this.
//!
//! 1. [`identity`]: every address gets a pod identity and a CIDR identity (the classes of
//!    selector peers and of `ipBlock` peers it belongs to).
//! 2. [`shape`]: every local endpoint's rule set per direction, deduplicated into policy ids.
//! 3. [`rules`]: each policy id's rules, expanded to (identity, protocol, port prefix) entries.

mod allocator;
mod identity;
mod ports;
mod rules;
mod shape;
#[cfg(test)]
mod tests;

use std::{collections::BTreeMap, net::IpAddr};

use policy_common::{
    endpoint::{EndpointKey, EndpointPolicy},
    identity::{IdentityKey, IdentityValue},
    rule::{RuleKey, RuleValue},
};

use self::{allocator::Allocator, identity::IdentityClass, shape::Shape};
use crate::model::{Cluster, Peer};

pub use self::{identity::addr16 as identity_addr, ports::port_prefixes};

/// Which pods this agent enforces on, and what counts as its own node.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Only pods scheduled to this node are local endpoints; `None` makes every pod local
    /// (a single-node lab, or a file datastore that describes only this host).
    pub node_name: Option<String>,
    /// The node's own addresses: traffic between an endpoint and its node is always allowed.
    pub host_addrs: Vec<IpAddr>,
}

/// An LPM trie key as the kernel stores it: prefix length, then data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LpmKey<K> {
    pub prefix_len: u32,
    pub data: K,
}

/// The desired contents of every map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MapContents {
    pub endpoints: BTreeMap<EndpointKey, EndpointPolicy>,
    pub identities: BTreeMap<LpmKey<IdentityKey>, IdentityValue>,
    pub rules: BTreeMap<LpmKey<RuleKey>, RuleValue>,
}

/// What a compile produced: the maps, plus the table that explains each rule entry.
#[derive(Debug, Clone, Default)]
pub struct Compiled {
    pub maps: MapContents,
    /// `RuleValue::rule_ref` indexes this: "namespace/name ingress[i]".
    pub explanations: Vec<String>,
}

/// The compiler with its memory of the ids it allocated, so that unchanged identities and
/// policy shapes keep their numbers across compiles and a change touches only what changed.
#[derive(Debug)]
pub struct Compiler {
    peers: Allocator<Peer>,
    identities: Allocator<IdentityClass>,
    policies: Allocator<Shape>,
}

impl Default for Compiler {
    fn default() -> Self {
        Self::new()
    }
}

impl Compiler {
    pub fn new() -> Self {
        Self {
            peers: Allocator::new(1),
            identities: Allocator::new(policy_common::identity::FIRST_ALLOCATED),
            policies: Allocator::new(1),
        }
    }

    pub fn compile(&mut self, cluster: &Cluster, scope: &Scope) -> Compiled {
        let peers = identity::PeerIndex::new(cluster, &mut self.peers);
        let classes = identity::classify(cluster, &peers);
        let identity_ids = self.identities.assign(
            classes
                .prefixes
                .values()
                .flat_map(|c| [&c.pod, &c.cidr])
                .filter(|c| !c.is_world())
                .cloned(),
        );

        let mut maps = MapContents::default();
        identity::emit(&classes, &identity_ids, scope, &mut maps.identities);

        let endpoint_shapes = shape::endpoint_shapes(cluster, scope);
        let policy_ids = self.policies.assign(
            endpoint_shapes
                .iter()
                .flat_map(|e| [e.ingress.clone(), e.egress.clone()])
                .flatten(),
        );
        for endpoint in &endpoint_shapes {
            let id_of = |shape: &Option<Shape>| {
                shape
                    .as_ref()
                    .and_then(|s| policy_ids.get(s).copied())
                    .unwrap_or(policy_common::endpoint::POLICY_NONE)
            };
            // Interfaces are the node's business, not the cluster's: the agent binds each
            // address to its interface (`dataplane::routes`) before programming.
            let value = EndpointPolicy {
                ingress_policy: id_of(&endpoint.ingress),
                egress_policy: id_of(&endpoint.egress),
                ifindex: policy_common::endpoint::IFINDEX_UNBOUND,
            };
            for ip in &endpoint.ips {
                maps.endpoints.insert(
                    EndpointKey {
                        addr: identity::addr16(*ip),
                    },
                    value,
                );
            }
        }

        let mut explanations = vec![String::new()];
        let mut explanation_ids = BTreeMap::new();
        let table = identity::IdentityTable::new(&identity_ids, &peers);
        for (shape, policy_id) in &policy_ids {
            rules::emit(
                *policy_id,
                shape,
                &table,
                &mut |origin: &shape::Origin| {
                    *explanation_ids.entry(origin.clone()).or_insert_with(|| {
                        explanations.push(origin.to_string());
                        u32::try_from(explanations.len() - 1).unwrap_or(0)
                    })
                },
                &mut maps.rules,
            );
        }
        Compiled { maps, explanations }
    }
}
