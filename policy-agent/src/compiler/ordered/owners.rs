//! Who an address belongs to, as Calico rule selectors see it, and the entity match of one
//! side of a rule.
//!
//! The owners of an address are the live pod holding it (if any), every network set with a
//! CIDR containing it and every host endpoint expecting it. Selector fields match when some
//! owner satisfies them (libcalico-go's endpoint selector); `notSelector` fails when any
//! owner matches it. The namespace restriction follows the rule's `namespaceSelector`, or the
//! policy's own namespace.

use std::net::IpAddr;

use ipnet::IpNet;

use super::PeerEntity;
use crate::{
    calico::selector::{Scope, Selector},
    compiler::relevance::Relevance,
    model::{Cluster, Labels},
};

/// Labels Calico adds to every pod endpoint (overriding user labels of the same key).
pub const LABEL_NAMESPACE: &str = "projectcalico.org/namespace";
pub const LABEL_ORCHESTRATOR: &str = "projectcalico.org/orchestrator";
pub const LABEL_SERVICE_ACCOUNT: &str = "projectcalico.org/serviceaccount";
/// Label Calico adds to namespaces and service accounts: their name.
pub const LABEL_NAME: &str = "projectcalico.org/name";

/// A network set as an owner of the addresses in its nets, or a host endpoint as the owner of
/// its `expectedIPs` (outside every namespace, as a global network set: selectors match the
/// two alike, and neither has a service account).
#[derive(Debug, Clone)]
pub struct NetListOwner {
    /// Its labels as selectors see them (a namespaced set also carries its namespace).
    pub labels: Labels,
    pub namespace: Option<String>,
    /// Calico's labels of its namespace.
    pub namespace_labels: Labels,
    pub nets: Vec<IpNet>,
    /// The set's member number (see [`Relevance::block_members`]): what a CIDR class or a pod
    /// identity lists when the set covers its addresses.
    pub blocks: Vec<usize>,
    /// A host endpoint's named `ports` as (protocol, name, number); none for a network set.
    pub ports: Vec<(u8, String, u16)>,
}

/// What ordered tables need of the cluster besides the endpoint and the peer: the network
/// sets and host endpoints that own addresses. Built on every full compile, and again when
/// only network sets' CIDRs change (`Engine::set_owned_blocks`).
#[derive(Debug, Clone, Default)]
pub struct CalicoContext {
    /// Network sets, then host endpoints (see [`Relevance::set_member`]).
    pub sets: Vec<NetListOwner>,
    /// The block of `0.0.0.0/0`: the typical peer ("an IPv4 address outside every pod and
    /// every set"), whose verdicts an ordered table keeps under `ANY`.
    pub v4_world_block: Option<usize>,
}

impl CalicoContext {
    pub fn of(cluster: &Cluster, relevance: &Relevance) -> Self {
        let sets = cluster
            .calico
            .network_sets
            .values()
            .enumerate()
            .map(|(index, set)| {
                let mut labels = set.labels.clone();
                if let Some(ns) = &set.namespace {
                    labels.insert(LABEL_NAMESPACE.to_owned(), ns.clone());
                }
                NetListOwner {
                    labels,
                    namespace: set.namespace.clone(),
                    namespace_labels: set
                        .namespace
                        .as_deref()
                        .map(|ns| namespace_labels(cluster.namespace_labels(ns), ns))
                        .unwrap_or_default(),
                    nets: set.nets.clone(),
                    blocks: vec![relevance.set_member(index)],
                    ports: Vec::new(),
                }
            })
            .collect::<Vec<_>>();
        let hosts = cluster
            .calico
            .host_endpoints
            .values()
            .enumerate()
            .map(|(index, host)| NetListOwner {
                labels: host.labels.clone(),
                namespace: None,
                namespace_labels: Labels::new(),
                nets: host.expected_ips.iter().copied().map(IpNet::from).collect(),
                blocks: vec![relevance.set_member(sets.len() + index)],
                ports: host
                    .ports
                    .iter()
                    .map(|p| (p.protocol.0, p.name.clone(), p.port))
                    .collect(),
            })
            .collect::<Vec<_>>();
        let sets = sets.into_iter().chain(hosts).collect();
        CalicoContext {
            sets,
            v4_world_block: relevance.block_index(&IpNet::V4(ipnet::Ipv4Net::default()), &[]),
        }
    }
}

/// A pod's labels as Calico selectors see them.
pub fn pod_labels(labels: &Labels, namespace: &str, service_account: &str) -> Labels {
    let mut labels = labels.clone();
    labels.insert(LABEL_NAMESPACE.to_owned(), namespace.to_owned());
    labels.insert(LABEL_ORCHESTRATOR.to_owned(), "k8s".to_owned());
    labels.insert(LABEL_SERVICE_ACCOUNT.to_owned(), service_account.to_owned());
    labels
}

/// A namespace's labels as Calico `namespaceSelector`s see them.
pub fn namespace_labels(mut labels: Labels, namespace: &str) -> Labels {
    labels.insert(LABEL_NAME.to_owned(), namespace.to_owned());
    labels
}

/// A service account's labels (Palisade reads no ServiceAccount objects: only its name).
pub fn service_account_labels(name: &str) -> Labels {
    Labels::from([(LABEL_NAME.to_owned(), name.to_owned())])
}

/// One owner of an address.
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    Pod {
        /// Calico's labels of the pod ([`pod_labels`]).
        labels: &'a Labels,
        namespace: &'a str,
        /// Calico's labels of its namespace ([`namespace_labels`]).
        namespace_labels: &'a Labels,
        service_account: &'a str,
    },
    Set(&'a NetListOwner),
    /// A host endpoint (outside every namespace, like a global network set).
    Host {
        labels: &'a Labels,
    },
}

impl Owner<'_> {
    fn labels(&self) -> (&Labels, Scope) {
        match self {
            Owner::Pod { labels, .. } => (labels, Scope::NAMESPACED),
            Owner::Set(set) => (
                &set.labels,
                if set.namespace.is_some() {
                    Scope::NAMESPACED
                } else {
                    Scope::GLOBAL
                },
            ),
            Owner::Host { labels } => (labels, Scope::GLOBAL),
        }
    }

    fn namespace(&self) -> Option<&str> {
        match self {
            Owner::Pod { namespace, .. } => Some(namespace),
            Owner::Set(set) => set.namespace.as_deref(),
            Owner::Host { .. } => None,
        }
    }

    /// Calico's labels of the owner's namespace; `None` outside every namespace.
    fn namespace_labels(&self) -> Option<&Labels> {
        match self {
            Owner::Pod {
                namespace_labels, ..
            } => Some(namespace_labels),
            Owner::Set(set) => set.namespace.is_some().then_some(&set.namespace_labels),
            Owner::Host { .. } => None,
        }
    }
}

/// The network sets owning an address: by block membership (a peer, whose identity lists
/// its blocks) or by address (the endpoint itself).
pub fn set_owners_by_blocks<'a>(
    context: &'a CalicoContext,
    blocks: &[usize],
) -> impl Iterator<Item = Owner<'a>> {
    let blocks = blocks.to_vec();
    context
        .sets
        .iter()
        .filter(move |set| set.blocks.iter().any(|b| blocks.binary_search(b).is_ok()))
        .map(Owner::Set)
}

pub fn set_owners_by_address(
    context: &CalicoContext,
    addr: IpAddr,
) -> impl Iterator<Item = Owner<'_>> {
    context
        .sets
        .iter()
        .filter(move |set| set.nets.iter().any(|n| n.contains(&addr)))
        .map(Owner::Set)
}

/// Whether one side of a rule (everything but ports) holds for an address, given whether the
/// address is in each of the entity's nets and who owns it.
pub fn entity_holds(
    entity: &PeerEntity,
    in_net: impl Fn(&(IpNet, usize)) -> bool,
    owners: &[Owner<'_>],
) -> bool {
    if !entity.nets.is_empty() && !entity.nets.iter().any(&in_net) {
        return false;
    }
    if entity.not_nets.iter().any(&in_net) {
        return false;
    }
    if !positive_part_holds(entity, owners) {
        return false;
    }
    if let Some(not_selector) = &entity.not_selector
        && owners.iter().any(|owner| {
            let (labels, scope) = owner.labels();
            not_selector.evaluate(labels, scope)
        })
    {
        return false;
    }
    true
}

/// `selector`, `serviceAccounts` and the namespace restriction, all on one owner.
fn positive_part_holds(entity: &PeerEntity, owners: &[Owner<'_>]) -> bool {
    let any_selector_field = entity.selector.is_some()
        || entity.service_accounts.is_some()
        || entity.not_selector.is_some()
        || entity.namespace_selector.is_some();
    if !any_selector_field {
        return true;
    }
    let has_positive = entity.selector.is_some()
        || entity.service_accounts.is_some()
        || entity.namespace_selector.is_some()
        || entity.policy_namespace.is_some();
    if !has_positive {
        // A global policy's notSelector-only side.
        return true;
    }
    owners.iter().any(|owner| {
        let namespace_ok = match (&entity.namespace_selector, &entity.policy_namespace) {
            (Some(Selector::Global), _) => owner.namespace().is_none(),
            (Some(selector), _) => owner
                .namespace_labels()
                .is_some_and(|labels| selector.evaluate(labels, Scope::NAMESPACED)),
            (None, Some(policy_ns)) => owner.namespace() == Some(policy_ns.as_str()),
            (None, None) => true,
        };
        let (labels, scope) = owner.labels();
        let selector_ok = entity
            .selector
            .as_ref()
            .is_none_or(|s| s.evaluate(labels, scope));
        let accounts_ok = entity
            .service_accounts
            .as_ref()
            .is_none_or(|m| match owner {
                Owner::Pod {
                    service_account, ..
                } => {
                    (m.names.is_empty() || m.names.iter().any(|n| n == service_account))
                        && m.selector.as_ref().is_none_or(|s| {
                            s.evaluate(&service_account_labels(service_account), Scope::NAMESPACED)
                        })
                }
                Owner::Set(_) | Owner::Host { .. } => false,
            });
        namespace_ok && selector_ok && accounts_ok
    })
}
