//! One watcher per resource, feeding a reflector store and telling the agent what changed.

use std::{
    fmt::Debug,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::StreamExt as _;
use k8s_openapi::api::{
    core::v1 as core, discovery::v1 as discovery, networking::v1 as networking,
};
use kube::{
    Api, Client, Resource as _,
    runtime::{
        WatchStreamExt as _, reflector,
        utils::ResetTimerBackoff,
        watcher::{self, ExponentialBackoff},
    },
};
use serde::de::DeserializeOwned;
use tokio::{sync::mpsc, task::JoinHandle};
use tracing::{debug, info, warn};

use super::Options;
use crate::{calico::resources as calico, cluster_policy, model::staged::StagedKind};

/// The watched resources: a closed set, so metric labels stay bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    Namespaces,
    Pods,
    NetworkPolicies,
    Services,
    /// `discovery.k8s.io/v1`.
    EndpointSlices,
    /// Calico's custom resources (`crd.projectcalico.org/v1`); optional: a cluster without
    /// Calico does not serve them (see [`super::calico`]).
    CalicoGlobalNetworkPolicies,
    CalicoNetworkPolicies,
    CalicoTiers,
    CalicoGlobalNetworkSets,
    CalicoNetworkSets,
    CalicoHostEndpoints,
    /// Calico's staged policies (`crd.projectcalico.org/v1`), optional like the others:
    /// StagedGlobalNetworkPolicy, StagedNetworkPolicy, StagedKubernetesNetworkPolicy.
    CalicoStagedGlobalNetworkPolicies,
    CalicoStagedNetworkPolicies,
    CalicoStagedKubernetesNetworkPolicies,
    /// network-policy-api's administrators' policy (`policy.networking.k8s.io`, `v1alpha2` and
    /// `v1alpha1`); optional like Calico's (see [`super::cluster_policy`]).
    ClusterNetworkPolicies,
    AdminNetworkPolicies,
    BaselineAdminNetworkPolicies,
}

impl Resource {
    pub const ALL: [Resource; 17] = [
        Resource::Namespaces,
        Resource::Pods,
        Resource::NetworkPolicies,
        Resource::Services,
        Resource::EndpointSlices,
        Resource::CalicoGlobalNetworkPolicies,
        Resource::CalicoNetworkPolicies,
        Resource::CalicoTiers,
        Resource::CalicoGlobalNetworkSets,
        Resource::CalicoNetworkSets,
        Resource::CalicoHostEndpoints,
        Resource::CalicoStagedGlobalNetworkPolicies,
        Resource::CalicoStagedNetworkPolicies,
        Resource::CalicoStagedKubernetesNetworkPolicies,
        Resource::ClusterNetworkPolicies,
        Resource::AdminNetworkPolicies,
        Resource::BaselineAdminNetworkPolicies,
    ];

    /// network-policy-api's resources, in [`cluster_policy::ApiKind::ALL`]'s order.
    pub const CLUSTER_POLICY: [Resource; 3] = [
        Resource::ClusterNetworkPolicies,
        Resource::AdminNetworkPolicies,
        Resource::BaselineAdminNetworkPolicies,
    ];

    /// Calico's resources, in [`calico::Kind::ALL`]'s order.
    pub const CALICO: [Resource; 6] = [
        Resource::CalicoGlobalNetworkPolicies,
        Resource::CalicoNetworkPolicies,
        Resource::CalicoTiers,
        Resource::CalicoGlobalNetworkSets,
        Resource::CalicoNetworkSets,
        Resource::CalicoHostEndpoints,
    ];

    /// Calico's staged policies, in [`StagedKind::ALL`]'s order.
    pub const STAGED: [Resource; 3] = [
        Resource::CalicoStagedGlobalNetworkPolicies,
        Resource::CalicoStagedNetworkPolicies,
        Resource::CalicoStagedKubernetesNetworkPolicies,
    ];

    /// The API's plural name, as RBAC and URLs spell it; custom resources' are qualified with
    /// their group (as `kubectl get` names them), so that Calico's `networkpolicies` and
    /// Kubernetes' stay distinct metric labels.
    pub fn plural(self) -> &'static str {
        match self {
            Resource::Namespaces => "namespaces",
            Resource::Pods => "pods",
            Resource::NetworkPolicies => "networkpolicies",
            Resource::Services => "services",
            Resource::EndpointSlices => "endpointslices",
            Resource::CalicoGlobalNetworkPolicies => "globalnetworkpolicies.crd.projectcalico.org",
            Resource::CalicoNetworkPolicies => "networkpolicies.crd.projectcalico.org",
            Resource::CalicoTiers => "tiers.crd.projectcalico.org",
            Resource::CalicoGlobalNetworkSets => "globalnetworksets.crd.projectcalico.org",
            Resource::CalicoNetworkSets => "networksets.crd.projectcalico.org",
            Resource::CalicoHostEndpoints => "hostendpoints.crd.projectcalico.org",
            Resource::CalicoStagedGlobalNetworkPolicies => {
                "stagedglobalnetworkpolicies.crd.projectcalico.org"
            }
            Resource::CalicoStagedNetworkPolicies => "stagednetworkpolicies.crd.projectcalico.org",
            Resource::CalicoStagedKubernetesNetworkPolicies => {
                "stagedkubernetesnetworkpolicies.crd.projectcalico.org"
            }
            Resource::ClusterNetworkPolicies => "clusternetworkpolicies.policy.networking.k8s.io",
            Resource::AdminNetworkPolicies => "adminnetworkpolicies.policy.networking.k8s.io",
            Resource::BaselineAdminNetworkPolicies => {
                "baselineadminnetworkpolicies.policy.networking.k8s.io"
            }
        }
    }

    /// The Calico kind this resource holds, for Calico's resources.
    pub fn calico_kind(self) -> Option<calico::Kind> {
        match self {
            Resource::Namespaces
            | Resource::Pods
            | Resource::NetworkPolicies
            | Resource::Services
            | Resource::EndpointSlices
            | Resource::CalicoStagedGlobalNetworkPolicies
            | Resource::CalicoStagedNetworkPolicies
            | Resource::CalicoStagedKubernetesNetworkPolicies
            | Resource::ClusterNetworkPolicies
            | Resource::AdminNetworkPolicies
            | Resource::BaselineAdminNetworkPolicies => None,
            Resource::CalicoGlobalNetworkPolicies => Some(calico::Kind::GlobalNetworkPolicy),
            Resource::CalicoNetworkPolicies => Some(calico::Kind::NetworkPolicy),
            Resource::CalicoTiers => Some(calico::Kind::Tier),
            Resource::CalicoGlobalNetworkSets => Some(calico::Kind::GlobalNetworkSet),
            Resource::CalicoNetworkSets => Some(calico::Kind::NetworkSet),
            Resource::CalicoHostEndpoints => Some(calico::Kind::HostEndpoint),
        }
    }

    /// The staged policy kind this resource holds, for Calico's staged policies.
    pub fn staged_kind(self) -> Option<StagedKind> {
        match self {
            Resource::CalicoStagedGlobalNetworkPolicies => Some(StagedKind::GlobalNetworkPolicy),
            Resource::CalicoStagedNetworkPolicies => Some(StagedKind::NetworkPolicy),
            Resource::CalicoStagedKubernetesNetworkPolicies => {
                Some(StagedKind::KubernetesNetworkPolicy)
            }
            _ => None,
        }
    }

    /// The network-policy-api kind this resource holds, for those resources.
    pub fn cluster_policy_kind(self) -> Option<cluster_policy::ApiKind> {
        match self {
            Resource::ClusterNetworkPolicies => Some(cluster_policy::ApiKind::ClusterNetworkPolicy),
            Resource::AdminNetworkPolicies => Some(cluster_policy::ApiKind::AdminNetworkPolicy),
            Resource::BaselineAdminNetworkPolicies => {
                Some(cluster_policy::ApiKind::BaselineAdminNetworkPolicy)
            }
            _ => None,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

const COUNT: usize = Resource::ALL.len();

/// What the watchers have been through, per resource.
#[derive(Debug, Default)]
pub struct WatchProgress {
    synced: [AtomicBool; COUNT],
    lists: [AtomicU64; COUNT],
    errors: [AtomicU64; COUNT],
}

impl WatchProgress {
    /// Whether this resource's first full list is in its store.
    pub fn synced(&self, resource: Resource) -> bool {
        self.synced[resource.index()].load(Ordering::Acquire)
    }

    pub fn all_synced(&self) -> bool {
        Resource::ALL.iter().all(|r| self.synced(*r))
    }

    /// Completed full lists: the first sync, plus one per relist (after a 410 Gone, or a
    /// watch that could not be resumed).
    pub fn lists(&self, resource: Resource) -> u64 {
        self.lists[resource.index()].load(Ordering::Relaxed)
    }

    /// Failed list or watch attempts (each is retried).
    pub fn errors(&self, resource: Resource) -> u64 {
        self.errors[resource.index()].load(Ordering::Relaxed)
    }

    /// A full list of `resource` is in its store (for a custom resource the API server does
    /// not serve: its store was emptied, which is the complete list).
    pub(super) fn listed(&self, resource: Resource) {
        self.lists[resource.index()].fetch_add(1, Ordering::Relaxed);
        self.synced[resource.index()].store(true, Ordering::Release);
    }

    pub(super) fn failed(&self, resource: Resource) {
        self.errors[resource.index()].fetch_add(1, Ordering::Relaxed);
    }
}

/// A watched Kubernetes type.
pub(super) trait Watched:
    kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
    const RESOURCE: Resource;

    /// Drops what the agent never reads before the object is stored: a node's agent keeps
    /// every pod of the cluster, and managed fields and annotations are often most of an
    /// object's size.
    fn strip(&mut self) {
        let meta = self.meta_mut();
        meta.managed_fields = None;
        meta.annotations = None;
    }
}

impl Watched for core::Namespace {
    const RESOURCE: Resource = Resource::Namespaces;
}

impl Watched for networking::NetworkPolicy {
    const RESOURCE: Resource = Resource::NetworkPolicies;
}

impl Watched for core::Service {
    const RESOURCE: Resource = Resource::Services;

    fn strip(&mut self) {
        let meta = self.meta_mut();
        meta.managed_fields = None;
        meta.annotations = None;
        // Kept: what `model::convert::service` reads (type, cluster IPs and families,
        // external IPs, selector, ports, traffic policies, load-balancer ingress addresses).
        if let Some(spec) = &mut self.spec {
            spec.session_affinity_config = None;
            spec.load_balancer_source_ranges = None;
        }
        if let Some(status) = &mut self.status {
            status.conditions = None;
            for ingress in status
                .load_balancer
                .iter_mut()
                .flat_map(|lb| lb.ingress.iter_mut().flatten())
            {
                ingress.ports = None;
            }
        }
    }
}

impl Watched for discovery::EndpointSlice {
    const RESOURCE: Resource = Resource::EndpointSlices;

    fn strip(&mut self) {
        let meta = self.meta_mut();
        meta.managed_fields = None;
        meta.annotations = None;
        // Kept: the labels (`kubernetes.io/service-name`), addresses, conditions, node names,
        // target pods and ports (what `model::convert::endpoint_slice` reads).
        for endpoint in &mut self.endpoints {
            endpoint.deprecated_topology = None;
            endpoint.hints = None;
            endpoint.hostname = None;
            endpoint.zone = None;
            if let Some(target) = &mut endpoint.target_ref {
                target.uid = None;
                target.resource_version = None;
                target.field_path = None;
            }
        }
    }
}

impl Watched for core::Pod {
    const RESOURCE: Resource = Resource::Pods;

    fn strip(&mut self) {
        let meta = self.meta_mut();
        meta.managed_fields = None;
        meta.annotations = None;
        // Kept: labels, spec.nodeName, spec.hostNetwork, container ports, status.phase and
        // the addresses (what `model::convert::pod` reads).
        if let Some(spec) = &mut self.spec {
            spec.volumes = None;
            for container in &mut spec.containers {
                container.env = None;
                container.env_from = None;
                container.volume_mounts = None;
                container.command = None;
                container.args = None;
            }
        }
        if let Some(status) = &mut self.status {
            status.conditions = None;
            status.container_statuses = None;
            status.init_container_statuses = None;
            status.ephemeral_container_statuses = None;
        }
    }
}

/// Starts watching `K` cluster-wide; returns its store and the task that feeds it.
pub(super) fn spawn<K: Watched>(
    client: Client,
    options: &Options,
    progress: Arc<WatchProgress>,
    changes: mpsc::UnboundedSender<()>,
) -> (reflector::Store<K>, JoinHandle<()>) {
    let (store, writer) = reflector::store::<K>();
    let stream = watcher::watcher(Api::<K>::all(client), watcher::Config::default())
        .modify(K::strip)
        .backoff(backoff(options))
        .reflect(writer);
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        // The watcher stream never ends on its own; the task is aborted with the datastore.
        while let Some(event) = stream.next().await {
            observe(K::RESOURCE, &progress, &changes, &event);
        }
    });
    (store, task)
}

/// kube-runtime's retry policy with the datastore's bounds.
pub(super) fn backoff(options: &Options) -> ResetTimerBackoff<ExponentialBackoff> {
    ResetTimerBackoff::new(
        ExponentialBackoff::from(
            backon::ExponentialBuilder::default()
                .with_min_delay(options.retry_initial)
                .with_max_delay(options.retry_max)
                .with_factor(2.0)
                .with_jitter()
                .without_max_times(),
        ),
        // A watcher that has been healthy this long starts over from the shortest wait.
        Duration::from_secs(120),
    )
}

/// Counts and logs one event of `resource`'s watcher (already applied to its store), and
/// tells the agent when the store changed.
pub(super) fn observe<K>(
    resource: Resource,
    progress: &WatchProgress,
    changes: &mpsc::UnboundedSender<()>,
    event: &Result<watcher::Event<K>, watcher::Error>,
) {
    match event {
        Ok(watcher::Event::Init) => {
            debug!(resource = resource.plural(), "listing");
        }
        // Buffered by the store until the list is complete.
        Ok(watcher::Event::InitApply(_)) => {}
        Ok(watcher::Event::InitDone) => {
            progress.listed(resource);
            info!(resource = resource.plural(), "listed");
            let _ignored_if_shutting_down = changes.send(());
        }
        Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => {
            let _ignored_if_shutting_down = changes.send(());
        }
        Err(e) => {
            progress.failed(resource);
            warn!(
                resource = resource.plural(),
                error = %e,
                "watch failed; retrying, the last state stays in force"
            );
        }
    }
}
