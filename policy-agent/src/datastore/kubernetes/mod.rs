//! The Kubernetes datastore: Pods (of every node: remote pods are peers), Namespaces,
//! NetworkPolicies, Services and EndpointSlices (`discovery.k8s.io/v1`) from the API server, through kube-rs watchers feeding reflector stores, and
//! Calico's custom resources (its staged policies among them) and network-policy-api's ClusterNetworkPolicy,
//! AdminNetworkPolicy and BaselineAdminNetworkPolicy where the API server serves them
//! ([`calico`](self::calico), [`cluster_policy`](self::cluster_policy), both through
//! [`crds`](self::crds)).
//!
//! Resilience comes from the watcher's protocol handling and from the stores: a dropped watch
//! is resumed from the last resource version; an expired one (410 Gone) is relisted, and the
//! store swaps the new list in only once it is complete; an unreachable API server is retried
//! with backoff. In all of these the stores keep the last state they had, so the maps keep
//! enforcing it: nothing is ever emptied because the API server went away.
//!
//! [`KubernetesDatastore::load`] converts the stores' objects with the same `model::convert`
//! functions the file datastore uses (and Calico's resources with the same
//! `calico::resources::parse_value`, its staged policies with the same
//! `model::staged::parse_value`, network-policy-api's with the same
//! `cluster_policy::parse_value`), so the two produce the same [`Snapshot`] for the same
//! objects.

pub mod calico;
mod cluster_policy;
mod crds;
mod objects;
mod watch;

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::{
    core::v1 as core, discovery::v1 as discovery, networking::v1 as networking,
};
use kube::{Client, runtime::reflector};
use tokio::{sync::mpsc, task::JoinHandle};

pub use self::{
    objects::digest_versions,
    watch::{Resource, WatchProgress},
};
use super::{Datastore, DatastoreError, Snapshot};

/// `ObjectError::source` of the objects this datastore rejects.
pub const SOURCE: &str = "kubernetes";

/// How the watchers retry after an error (API server unreachable, watch refused).
#[derive(Debug, Clone)]
pub struct Options {
    /// First wait after an error; doubles up to `retry_max` (with jitter) while errors last.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// How often the API server is asked again whether it serves Calico's or
    /// network-policy-api's CRDs, while some are not served (see [`crds`](self::crds)).
    pub rediscover: Duration,
}

impl Default for Options {
    /// kube-runtime's defaults: many nodes reconnecting at once after an API server restart
    /// must not stampede it.
    fn default() -> Self {
        Self {
            retry_initial: Duration::from_millis(800),
            retry_max: Duration::from_secs(30),
            rediscover: Duration::from_secs(60),
        }
    }
}

pub struct KubernetesDatastore {
    namespaces: reflector::Store<core::Namespace>,
    pods: reflector::Store<core::Pod>,
    policies: reflector::Store<networking::NetworkPolicy>,
    services: reflector::Store<core::Service>,
    endpoint_slices: reflector::Store<discovery::EndpointSlice>,
    calico: Vec<(crate::calico::resources::Kind, calico::Store)>,
    staged: Vec<(crate::model::staged::StagedKind, calico::Store)>,
    cluster_policies: Vec<(crate::cluster_policy::ApiKind, cluster_policy::Store)>,
    converted: objects::Converted,
    progress: Arc<WatchProgress>,
    tasks: Vec<JoinHandle<()>>,
}

impl KubernetesDatastore {
    /// Starts the watchers (and the custom resources' discovery) on the current tokio runtime. `changes` receives a message
    /// whenever a store changed (a completed list, an added, modified or deleted object).
    pub fn start(client: Client, options: Options, changes: mpsc::UnboundedSender<()>) -> Self {
        let progress = Arc::new(WatchProgress::default());
        let (namespaces, ns_task) = watch::spawn::<core::Namespace>(
            client.clone(),
            &options,
            progress.clone(),
            changes.clone(),
        );
        let (pods, pod_task) =
            watch::spawn::<core::Pod>(client.clone(), &options, progress.clone(), changes.clone());
        let (policies, np_task) = watch::spawn::<networking::NetworkPolicy>(
            client.clone(),
            &options,
            progress.clone(),
            changes.clone(),
        );
        let (services, svc_task) = watch::spawn::<core::Service>(
            client.clone(),
            &options,
            progress.clone(),
            changes.clone(),
        );
        let (endpoint_slices, slice_task) = watch::spawn::<discovery::EndpointSlice>(
            client.clone(),
            &options,
            progress.clone(),
            changes.clone(),
        );
        let (
            calico::Stores {
                resources: calico,
                staged,
            },
            calico_task,
        ) = calico::spawn(client.clone(), &options, progress.clone(), changes.clone());
        let (cluster_policies, cluster_policy_tasks) =
            cluster_policy::spawn(client, &options, progress.clone(), changes);
        let mut tasks = vec![
            ns_task,
            pod_task,
            np_task,
            svc_task,
            slice_task,
            calico_task,
        ];
        tasks.extend(cluster_policy_tasks);
        Self {
            namespaces,
            pods,
            policies,
            services,
            endpoint_slices,
            calico,
            staged,
            cluster_policies,
            converted: objects::Converted::default(),
            progress,
            tasks,
        }
    }

    /// Whether every watcher has completed its first full list: only then is a snapshot the
    /// cluster's state rather than a part of it. A custom resource (Calico's,
    /// network-policy-api's) the API server does not serve counts as listed (and empty) once
    /// discovery has said so.
    pub fn is_synced(&self) -> bool {
        self.progress.all_synced()
    }

    /// Watch errors and relists so far, per resource (for metrics and tests).
    pub fn progress(&self) -> Arc<WatchProgress> {
        self.progress.clone()
    }

    /// The stores' current contents as a snapshot.
    pub fn snapshot(&mut self) -> Snapshot {
        let calico: Vec<_> = self
            .calico
            .iter()
            .map(|(kind, store)| (*kind, store.state()))
            .collect();
        let staged: Vec<_> = self
            .staged
            .iter()
            .map(|(kind, store)| (*kind, store.state()))
            .collect();
        let cluster_policies: Vec<_> = self
            .cluster_policies
            .iter()
            .map(|(kind, store)| (*kind, store.state()))
            .collect();
        self.converted.snapshot(&objects::Stores {
            namespaces: &self.namespaces.state(),
            pods: &self.pods.state(),
            policies: &self.policies.state(),
            services: &self.services.state(),
            endpoint_slices: &self.endpoint_slices.state(),
            calico: &calico,
            staged: &staged,
            cluster_policies: &cluster_policies,
        })
    }
}

impl Drop for KubernetesDatastore {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Datastore for KubernetesDatastore {
    fn load(&mut self) -> Result<Snapshot, DatastoreError> {
        Ok(self.snapshot())
    }

    fn describe(&self) -> String {
        SOURCE.to_owned()
    }
}

#[cfg(test)]
mod tests {
    /// The client's TLS stack (rustls with ring, chosen to need no system library) is usable
    /// without the process installing a crypto provider first: building an HTTPS client
    /// builds its rustls configuration.
    #[tokio::test]
    async fn an_https_client_builds_with_the_bundled_crypto() {
        let url = "https://127.0.0.1:6443"
            .parse()
            .unwrap_or_else(|e| panic!("URL: {e}"));
        let mut config = kube::Config::new(url);
        config.accept_invalid_certs = true;
        if let Err(e) = kube::Client::try_from(config) {
            panic!("building an HTTPS client: {e}");
        }
    }
}
