//! What the model knows about an address and what owns it: the live pod holding it, the
//! network sets and host endpoints containing it, their labels as Calico selectors see them
//! (Calico's automatic labels are added here), a pod's service account, a namespace's labels
//! and named ports. Separate so that every kind of rule reads these facts from one place.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Pod;

use super::{Ctx, Labels};
use crate::{
    calico_reference::resources::{HostEndpoint, NetworkSet},
    reference,
};

const LABEL_NAMESPACE: &str = "projectcalico.org/namespace";
const LABEL_ORCHESTRATOR: &str = "projectcalico.org/orchestrator";
const LABEL_SERVICE_ACCOUNT: &str = "projectcalico.org/serviceaccount";
const LABEL_NAME: &str = "projectcalico.org/name";

/// Something an address can belong to, for rule selectors.
#[derive(Clone, Copy)]
pub(super) enum Owner<'a> {
    Pod(&'a Pod),
    Set(&'a NetworkSet),
    Host(&'a HostEndpoint),
}

impl<'a> Ctx<'a> {
    /// The live pod and the network sets that `addr` belongs to.
    pub(super) fn owners(&self, addr: IpAddr) -> Vec<Owner<'a>> {
        let mut owners: Vec<Owner<'a>> = self.live_pod(addr).map(Owner::Pod).into_iter().collect();
        owners.extend(
            self.world
                .network_sets
                .iter()
                .filter(|s| s.nets.iter().any(|n| n.contains(&addr)))
                .map(Owner::Set),
        );
        owners.extend(
            self.world
                .host_endpoints
                .iter()
                .filter(|h| h.expected_ips.contains(&addr))
                .map(Owner::Host),
        );
        owners
    }

    pub(super) fn live_pod(&self, ip: IpAddr) -> Option<&'a Pod> {
        reference::live_pod(&self.world.pods, ip)
    }

    /// A namespace's labels as Kubernetes selectors see them.
    pub(super) fn k8s_namespace_labels(&self, name: &str) -> Labels {
        reference::namespace_labels(&self.world.namespaces, name)
    }

    /// A namespace's labels as Calico `namespaceSelector`s see them.
    pub(super) fn namespace_labels(&self, name: &str) -> Labels {
        let mut labels = self.k8s_namespace_labels(name);
        labels.insert(LABEL_NAME.to_owned(), name.to_owned());
        labels
    }
}

pub(super) fn owner_namespace(owner: Owner<'_>) -> Option<String> {
    match owner {
        Owner::Pod(pod) => Some(reference::namespace_of(&pod.metadata)),
        Owner::Set(set) => set.namespace.clone(),
        Owner::Host(_) => None,
    }
}

/// The owner's labels for rule selectors, and whether it is namespaced.
pub(super) fn owner_labels(owner: Owner<'_>) -> (Labels, bool) {
    match owner {
        Owner::Pod(pod) => (endpoint_labels(pod), true),
        Owner::Set(set) => {
            let mut labels = set.labels.clone();
            if let Some(ns) = &set.namespace {
                labels.insert(LABEL_NAMESPACE.to_owned(), ns.clone());
            }
            (labels, set.namespace.is_some())
        }
        Owner::Host(host) => (host.labels.clone(), false),
    }
}

/// A pod endpoint's labels: its own plus Calico's.
pub(super) fn endpoint_labels(pod: &Pod) -> Labels {
    let mut labels = pod.metadata.labels.clone().unwrap_or_default();
    labels.insert(
        LABEL_NAMESPACE.to_owned(),
        reference::namespace_of(&pod.metadata),
    );
    labels.insert(LABEL_ORCHESTRATOR.to_owned(), "k8s".to_owned());
    labels.insert(LABEL_SERVICE_ACCOUNT.to_owned(), service_account(pod));
    labels
}

pub(super) fn service_account(pod: &Pod) -> String {
    let spec = pod.spec.as_ref();
    spec.and_then(|s| s.service_account_name.as_deref())
        .or_else(|| spec.and_then(|s| s.service_account.as_deref()))
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
        .to_owned()
}

pub(super) fn service_account_labels(name: &str) -> Labels {
    Labels::from([(LABEL_NAME.to_owned(), name.to_owned())])
}

pub(super) fn protocol_name(protocol: u8) -> Option<&'static str> {
    match protocol {
        6 => Some("TCP"),
        17 => Some("UDP"),
        132 => Some("SCTP"),
        _ => None,
    }
}

/// Whether `pod` has a container port named `name` with this protocol and number.
pub(super) fn named_port(pod: &Pod, name: &str, protocol: u8, port: u16) -> bool {
    let Some(protocol) = protocol_name(protocol) else {
        return false;
    };
    pod.spec.iter().flat_map(|s| &s.containers).any(|c| {
        c.ports.iter().flatten().any(|cp| {
            cp.name.as_deref() == Some(name)
                && cp.protocol.as_deref().unwrap_or("TCP") == protocol
                && cp.container_port == i32::from(port)
        })
    })
}
