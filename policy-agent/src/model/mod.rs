//! The cluster as the compiler sees it: validated, datastore-independent types.
//!
//! Datastores (manifest files now, the Kubernetes API later) convert Kubernetes objects into
//! these with [`convert`], which is also where invalid input is rejected with the path of the
//! offending field. The compiler never sees an unvalidated object.

pub mod calico;
pub mod convert;
pub mod selector;
pub mod services;
pub mod staged;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    sync::Arc,
};

use ipnet::IpNet;

use crate::{
    calico::resources::CalicoResource,
    cluster_policy::{ApiKind, ClusterPolicy, translate},
};

pub use self::{
    calico::CalicoObjects,
    selector::{LabelSelector, Labels},
    services::{
        Endpoint, EndpointPort, EndpointSlice, Family, Service, ServicePort, ServiceType,
        TargetPort,
    },
};

/// Label every namespace carries, set by the API server (and by us for the file datastore).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cluster {
    // Namespaces, pods and policies are shared (`Arc`): a datastore's snapshots, and the
    // compiler's copy of the last one, hold the same unchanged objects, so that copying a
    // cluster is cheap and comparing two (`compiler::diff`) skips what both share.
    pub namespaces: BTreeMap<String, Arc<Namespace>>,
    /// Keyed by (namespace, name).
    pub pods: BTreeMap<(String, String), Arc<Pod>>,
    /// Keyed by (namespace, name).
    pub policies: BTreeMap<(String, String), Arc<NetworkPolicy>>,
    /// Calico's own resources (`projectcalico.org/v3`); empty on clusters without them. Holds
    /// the translations of `cluster_policies` too (see [`Cluster::insert_cluster_policy`]).
    pub calico: CalicoObjects,
    /// Administrators' policy (network-policy-api ClusterNetworkPolicy, AdminNetworkPolicy,
    /// BaselineAdminNetworkPolicy) as written, keyed by (kind, name). The compiler reads their
    /// Calico translations in `calico`; explanations and reference models read these.
    pub cluster_policies: BTreeMap<(ApiKind, String), ClusterPolicy>,
    /// Keyed by (namespace, name).
    pub services: BTreeMap<(String, String), Service>,
    /// Keyed by (namespace, name).
    pub endpoint_slices: BTreeMap<(String, String), EndpointSlice>,
    /// Calico's staged policies, keyed by (kind, namespace, name): never enforced, read for
    /// pending verdicts only (see [`staged`]; the compiler does not look at them).
    pub staged: BTreeMap<(staged::StagedKind, String, String), staged::StagedPolicy>,
}

impl Cluster {
    /// Adds (or replaces) an administrators' policy, with its Calico translation.
    pub fn insert_cluster_policy(&mut self, policy: ClusterPolicy) {
        self.calico
            .insert(CalicoResource::GlobalNetworkPolicy(translate::to_calico(
                &policy,
            )));
        self.cluster_policies
            .insert((policy.kind, policy.name.clone()), policy);
    }

    /// Labels of a namespace; a namespace that has no object (yet) still has its name label,
    /// as every namespace on a real API server does.
    pub fn namespace_labels(&self, name: &str) -> Labels {
        match self.namespaces.get(name) {
            Some(ns) => ns.labels.clone(),
            None => Labels::from([(NAMESPACE_NAME_LABEL.to_owned(), name.to_owned())]),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    pub name: String,
    pub labels: Labels,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub labels: Labels,
    /// `status.podIPs` (or `status.podIP`), deduplicated.
    pub ips: BTreeSet<IpAddr>,
    pub container_ports: Vec<ContainerPort>,
    /// `spec.serviceAccountName` (or the deprecated `spec.serviceAccount`), `default` when
    /// unset as the API server's admission fills it in; Calico rules can select on it.
    pub service_account: String,
    pub node_name: Option<String>,
    pub host_network: bool,
    /// `Succeeded` and `Failed` pods no longer own their address.
    pub terminated: bool,
}

impl Pod {
    /// Whether the pod is a network endpoint at all: it has an address of its own and is
    /// running. Other pods are nobody's peers and are not enforced on.
    pub fn is_endpoint(&self) -> bool {
        !self.host_network && !self.terminated && !self.ips.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContainerPort {
    pub name: Option<String>,
    pub port: u16,
    pub protocol: Protocol,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn number(self) -> u8 {
        use policy_common::rule::protocol;
        match self {
            Protocol::Tcp => protocol::TCP,
            Protocol::Udp => protocol::UDP,
            Protocol::Sctp => protocol::SCTP,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPolicy {
    pub namespace: String,
    pub name: String,
    pub pod_selector: LabelSelector,
    /// `None` when the policy does not apply in that direction (after `policyTypes`
    /// defaulting); `Some(vec![])` isolates without allowing anything.
    pub ingress: Option<Vec<Rule>>,
    pub egress: Option<Vec<Rule>>,
}

/// One ingress or egress rule: it matches when one of its peers and one of its ports match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `None`: the rule has no `from`/`to`, every peer matches.
    pub peers: Option<Vec<Peer>>,
    /// `None`: the rule has no `ports`, every port and protocol matches.
    pub ports: Option<Vec<PortMatch>>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Peer {
    /// Pods selected by `pods` in the namespaces selected by `namespaces`.
    Pods {
        namespaces: NamespaceMatch,
        pods: LabelSelector,
    },
    IpBlock {
        cidr: IpNet,
        except: Vec<IpNet>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NamespaceMatch {
    /// A peer with only a `podSelector`: the policy's own namespace.
    Exactly(String),
    Selector(LabelSelector),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PortMatch {
    /// `protocol` with no `port`: every port of the protocol.
    AllPorts(Protocol),
    /// `port` (and `endPort`): an inclusive range.
    Range {
        protocol: Protocol,
        first: u16,
        last: u16,
    },
    /// A named port, resolved against the destination pod's container ports.
    Named { protocol: Protocol, name: String },
}
