//! What the policies can see of one pod address: its identity key.
//!
//! A [`PodView`] is the pod's namespace, and its namespace's labels, its own labels and its
//! named container ports reduced to what some policy reads ([`Relevance`]). Addresses with
//! equal views are indistinguishable to every peer of every policy, so they share one pod
//! identity; the view does not depend on which policies exist beyond the keys they read, so
//! adding a policy does not renumber anything.

use std::{net::IpAddr, sync::Arc};

use ipnet::IpNet;

use super::relevance::Relevance;
use crate::model::{Labels, NamespaceMatch, Peer, Pod, Protocol};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodView {
    pub namespace: String,
    pub namespace_labels: Labels,
    pub labels: Labels,
    /// (protocol, name, number) of each named port an egress rule uses that the pod numbers.
    pub named_ports: Vec<(Protocol, String, u16)>,
    /// Blocks that are part of pod identities ([`Relevance::in_pod_identity`]) covering this
    /// address.
    pub blocks: Vec<usize>,
    /// With Calico resources only ([`Relevance::calico`]): the address family (`ipVersion`
    /// rules) and the service account (`serviceAccounts` matches).
    pub v6: Option<bool>,
    pub service_account: Option<String>,
}

/// The views that make an address's pod identity (what the engine interns identities by; not
/// the identity map's key, `policy_common::identity::IdentityKey`, which is an address):
/// normally one view; several when pods claim one address (a stale object), so that the
/// address keeps what either pod is allowed, deterministically.
pub type IdentityViews = Vec<Arc<PodView>>;

fn project(labels: &Labels, keys: &std::collections::BTreeSet<String>) -> Labels {
    labels
        .iter()
        .filter(|(k, _)| keys.contains(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The views of every address of `pod` (none unless it is a network endpoint). Addresses of
/// one pod share one view unless named-port blocks tell them apart.
pub fn pod_views(
    pod: &Pod,
    namespace_labels: &Labels,
    relevance: &Relevance,
) -> Vec<(IpAddr, Arc<PodView>)> {
    if !pod.is_endpoint() {
        return Vec::new();
    }
    let namespace_labels = project(namespace_labels, &relevance.namespace_keys);
    let labels = project(&pod.labels, &relevance.pod_keys);
    let named_ports: Vec<(Protocol, String, u16)> = relevance
        .egress_named_ports
        .iter()
        .filter_map(|(protocol, name)| {
            named_port(pod, *protocol, name).map(|port| (*protocol, name.clone(), port))
        })
        .collect();
    let mut shared: Option<Arc<PodView>> = None;
    pod.ips
        .iter()
        .map(|ip| {
            let blocks = if relevance.named_port_blocks.is_empty() && !relevance.calico {
                Vec::new()
            } else {
                relevance
                    .covering(&IpNet::from(*ip))
                    .into_iter()
                    .filter(|index| relevance.in_pod_identity(*index))
                    .collect()
            };
            let v6 = relevance.calico.then_some(ip.is_ipv6());
            if let Some(view) = shared.as_ref().filter(|v| v.blocks == blocks && v.v6 == v6) {
                return (*ip, Arc::clone(view));
            }
            let view = Arc::new(PodView {
                namespace: pod.namespace.clone(),
                namespace_labels: namespace_labels.clone(),
                labels: labels.clone(),
                named_ports: named_ports.clone(),
                blocks,
                v6,
                service_account: relevance.calico.then(|| pod.service_account.clone()),
            });
            shared = Some(Arc::clone(&view));
            (*ip, view)
        })
        .collect()
}

/// Whether a peer of a policy matches an address with this view: selector peers by labels,
/// `ipBlock` peers only where they are part of the view (named ports, or Calico).
pub fn peer_matches(peer: &Peer, block: Option<usize>, view: &PodView) -> bool {
    match peer {
        Peer::Pods { namespaces, pods } => {
            let namespace_ok = match namespaces {
                NamespaceMatch::Exactly(ns) => *ns == view.namespace,
                NamespaceMatch::Selector(selector) => selector.matches(&view.namespace_labels),
            };
            namespace_ok && pods.matches(&view.labels)
        }
        Peer::IpBlock { .. } => block.is_some_and(|b| view.blocks.contains(&b)),
    }
}

/// The number of the pod's container port called `name` for `protocol`.
pub fn named_port(pod: &Pod, protocol: Protocol, name: &str) -> Option<u16> {
    pod.container_ports
        .iter()
        .find(|p| p.protocol == protocol && p.name.as_deref() == Some(name))
        .map(|p| p.port)
}
