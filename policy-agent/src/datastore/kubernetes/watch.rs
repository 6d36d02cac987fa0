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
use k8s_openapi::api::{core::v1 as core, networking::v1 as networking};
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

/// The watched resources: a closed set, so metric labels stay bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    Namespaces,
    Pods,
    NetworkPolicies,
}

impl Resource {
    pub const ALL: [Resource; 3] = [
        Resource::Namespaces,
        Resource::Pods,
        Resource::NetworkPolicies,
    ];

    /// The API's plural name, as RBAC and URLs spell it.
    pub fn plural(self) -> &'static str {
        match self {
            Resource::Namespaces => "namespaces",
            Resource::Pods => "pods",
            Resource::NetworkPolicies => "networkpolicies",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What the watchers have been through, per resource.
#[derive(Debug, Default)]
pub struct WatchProgress {
    synced: [AtomicBool; 3],
    lists: [AtomicU64; 3],
    errors: [AtomicU64; 3],
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
    let backoff = ResetTimerBackoff::new(
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
    );
    let stream = watcher::watcher(Api::<K>::all(client), watcher::Config::default())
        .modify(K::strip)
        .backoff(backoff)
        .reflect(writer);
    let task = tokio::spawn(async move {
        let resource = K::RESOURCE;
        let index = resource.index();
        let mut stream = std::pin::pin!(stream);
        // The watcher stream never ends on its own; the task is aborted with the datastore.
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Init) => {
                    debug!(resource = resource.plural(), "listing");
                }
                // Buffered by the store until the list is complete.
                Ok(watcher::Event::InitApply(_)) => {}
                Ok(watcher::Event::InitDone) => {
                    progress.lists[index].fetch_add(1, Ordering::Relaxed);
                    progress.synced[index].store(true, Ordering::Release);
                    info!(resource = resource.plural(), "listed");
                    let _ignored_if_shutting_down = changes.send(());
                }
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => {
                    let _ignored_if_shutting_down = changes.send(());
                }
                Err(e) => {
                    progress.errors[index].fetch_add(1, Ordering::Relaxed);
                    warn!(
                        resource = resource.plural(),
                        error = %e,
                        "watch failed; retrying, the last state stays in force"
                    );
                }
            }
        }
    });
    (store, task)
}
