//! Custom resources the API server may or may not serve, watched as kube-rs dynamic objects:
//! Calico's ([`super::calico`]) and network-policy-api's ([`super::cluster_policy`]).
//!
//! An agent on a cluster without some CRDs must still become ready and enforce the rest. So one
//! task per group version discovers it (`GET /apis/<group>/<version>`) first, and again every
//! [`Options::rediscover`] (60 s by default) while any of its resources is not being watched:
//! a plain periodic rediscovery rather than a watch of CustomResourceDefinitions, which would
//! need RBAC on `apiextensions.k8s.io` for what is one cheap discovery request a minute per
//! node.
//!
//! - A served resource gets a watcher with the same retry and resume handling as the others.
//! - A resource the API server does not serve (the group version is a 404, or its list lacks
//!   the resource) is synced and empty: its store is emptied, readiness does not wait for it,
//!   and the absence is logged once (at info) until it is served again.
//! - A watcher whose list or watch gets a 404 (its CRD was deleted, which deletes every object
//!   of it) stops; its store is emptied and the resource waits for the next rediscovery.
//! - Any other discovery failure (API server unreachable, discovery forbidden) is retried with
//!   the watchers' backoff and leaves the stores as they were: until the first answer these
//!   resources are not synced, so nothing is programmed from a state that might lack their
//!   policy.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use futures::StreamExt as _;
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject},
    runtime::{WatchStreamExt as _, reflector, watcher},
};
use tokio::{sync::mpsc, task::JoinHandle, task::JoinSet};
use tracing::{info, warn};

use super::{
    Options,
    watch::{self, Resource, WatchProgress},
};

pub(super) type Store = reflector::Store<DynamicObject>;
type Writer = reflector::store::Writer<DynamicObject>;

/// One group version's optional resources.
#[derive(Debug, Clone)]
pub(super) struct GroupVersion {
    /// `<group>/<version>`, as discovery is asked for it.
    pub api_version: String,
    /// Whose CRDs these are, for logs ("Calico's", "network-policy-api's").
    pub owner: &'static str,
    /// Each watched resource and how the API names it.
    pub resources: Vec<(Resource, ApiResource)>,
}

/// Starts discovering and watching `group`'s resources; returns their stores (in `group`'s
/// order) and the task that runs it all.
pub(super) fn spawn(
    client: Client,
    options: &Options,
    progress: Arc<WatchProgress>,
    changes: mpsc::UnboundedSender<()>,
    group: GroupVersion,
) -> (Vec<(Resource, Store)>, JoinHandle<()>) {
    let mut stores = Vec::new();
    let mut idle = BTreeMap::new();
    for (resource, api) in &group.resources {
        let writer = Writer::new(api.clone());
        stores.push((*resource, writer.as_reader()));
        idle.insert(*resource, writer);
    }
    let task = tokio::spawn(discover_and_watch(
        client,
        options.clone(),
        progress,
        changes,
        group,
        idle,
    ));
    (stores, task)
}

/// The plural names the API server serves in `api_version`; empty if it does not serve the
/// group version at all.
async fn served(client: &Client, api_version: &str) -> Result<BTreeSet<String>, kube::Error> {
    match client.list_api_group_resources(api_version).await {
        Ok(list) => Ok(list.resources.into_iter().map(|r| r.name).collect()),
        Err(kube::Error::Api(status)) if is_404(&status) => Ok(BTreeSet::new()),
        Err(e) => Err(e),
    }
}

/// Runs for the datastore's lifetime (aborted with it; aborting drops `running`, which aborts
/// the watchers). `idle` holds the stores' writers of the resources not being watched.
async fn discover_and_watch(
    client: Client,
    options: Options,
    progress: Arc<WatchProgress>,
    changes: mpsc::UnboundedSender<()>,
    group: GroupVersion,
    mut idle: BTreeMap<Resource, Writer>,
) {
    let apis: BTreeMap<Resource, ApiResource> = group.resources.iter().cloned().collect();
    let mut running: JoinSet<(Resource, Writer)> = JoinSet::new();
    // Resources known to be absent, so their absence is logged once rather than every round.
    let mut absent: BTreeSet<Resource> = BTreeSet::new();
    let retry_delays = || {
        backon::BackoffBuilder::build(
            backon::ExponentialBuilder::default()
                .with_min_delay(options.retry_initial)
                .with_max_delay(options.retry_max)
                .with_factor(2.0)
                .with_jitter()
                .without_max_times(),
        )
    };
    let mut retries = retry_delays();
    loop {
        let wait = if idle.is_empty() {
            // Everything is watched: nothing to discover until a watcher stops.
            None
        } else {
            match served(&client, &group.api_version).await {
                Ok(served) => {
                    retries = retry_delays();
                    let mut missing = Vec::new();
                    for (resource, mut writer) in std::mem::take(&mut idle) {
                        let Some(api) = apis.get(&resource) else {
                            // Every writer was made from `group.resources`.
                            continue;
                        };
                        if served.contains(&api.plural) {
                            absent.remove(&resource);
                            running.spawn(watch_served(
                                client.clone(),
                                options.clone(),
                                progress.clone(),
                                changes.clone(),
                                resource,
                                api.clone(),
                                writer,
                            ));
                        } else {
                            if absent.insert(resource) {
                                missing.push(resource.plural());
                                empty(resource, &mut writer, &progress, &changes);
                            }
                            idle.insert(resource, writer);
                        }
                    }
                    if !missing.is_empty() {
                        info!(
                            resources = missing.join(", "),
                            every = ?options.rediscover,
                            "not served by the API server ({} CRDs are not installed?); \
                             treated as empty, discovered again periodically",
                            group.owner,
                        );
                    }
                    Some(options.rediscover)
                }
                Err(e) => {
                    for resource in idle.keys() {
                        progress.failed(*resource);
                    }
                    warn!(
                        error = %e,
                        group_version = group.api_version,
                        "discovering {} resources failed; retrying",
                        group.owner,
                    );
                    Some(retries.next().unwrap_or(options.retry_max))
                }
            }
        };
        let deadline = wait.map(|w| tokio::time::Instant::now() + w);
        loop {
            tokio::select! {
                () = sleep_until(deadline) => break,
                Some(done) = running.join_next() => match done {
                    Ok((resource, writer)) => {
                        absent.insert(resource);
                        idle.insert(resource, writer);
                        if deadline.is_none() {
                            // Everything was watched: rediscover from now on.
                            break;
                        }
                    }
                    // A watcher panicked (a bug): its resource stays as it was.
                    Err(e) => warn!(
                        error = %e,
                        group_version = group.api_version,
                        "a custom resource watcher task ended abnormally"
                    ),
                },
            }
        }
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Empties `resource`'s store, which is then its complete (empty) list.
fn empty(
    resource: Resource,
    writer: &mut Writer,
    progress: &WatchProgress,
    changes: &mpsc::UnboundedSender<()>,
) {
    writer.apply_watcher_event(&watcher::Event::Init);
    writer.apply_watcher_event(&watcher::Event::InitDone);
    progress.listed(resource);
    let _ignored_if_shutting_down = changes.send(());
}

/// Watches a served resource until the API server says it no longer serves it (404); then
/// empties its store and hands the writer back.
async fn watch_served(
    client: Client,
    options: Options,
    progress: Arc<WatchProgress>,
    changes: mpsc::UnboundedSender<()>,
    resource: Resource,
    api: ApiResource,
    mut writer: Writer,
) -> (Resource, Writer) {
    let api = Api::<DynamicObject>::all_with(client, &api);
    let stream = watcher::watcher(api, watcher::Config::default())
        .modify(strip)
        .backoff(watch::backoff(&options));
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        if let Err(e) = &event
            && not_served(e)
        {
            info!(
                resource = resource.plural(),
                "no longer served by the API server (its CRD was deleted?); treated as empty \
                 until discovered again"
            );
            break;
        }
        if let Ok(event) = &event {
            writer.apply_watcher_event(event);
        }
        watch::observe(resource, &progress, &changes, &event);
    }
    empty(resource, &mut writer, &progress, &changes);
    (resource, writer)
}

fn not_served(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status))
        | watcher::Error::WatchError(status) => is_404(status),
        _ => false,
    }
}

/// By the HTTP code, not `Status::is_not_found`, which wants the `NotFound` reason: a proxy in
/// front of the API server may answer a path it does not know with a plain-text 404, which
/// kube-client turns into a status without that reason.
fn is_404(status: &kube::core::Status) -> bool {
    status.code == 404
}

/// Drops what the agent never reads before the object is stored: everything but the name,
/// namespace, labels, resource version and `spec` (a status an implementation writes, such as
/// network-policy-api's conditions, and annotations such as `last-applied-configuration` are
/// often most of an object).
fn strip(object: &mut DynamicObject) {
    object.metadata.managed_fields = None;
    object.metadata.annotations = None;
    if let Some(fields) = object.data.as_object_mut() {
        fields.retain(|field, _| field == "spec");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_404_means_not_served_whatever_its_body() {
        let plain = kube::core::Status::failure("404 page not found", "Failed to parse error data")
            .with_code(404);
        let api = kube::core::Status::failure("not found", "NotFound").with_code(404);
        let forbidden = kube::core::Status::failure("forbidden", "Forbidden").with_code(403);
        let list_failed = |s: &kube::core::Status| {
            watcher::Error::InitialListFailed(kube::Error::Api(Box::new(s.clone())))
        };
        assert!(not_served(&list_failed(&plain)));
        assert!(not_served(&list_failed(&api)));
        assert!(not_served(&watcher::Error::WatchError(Box::new(api))));
        // Anything else is retried: RBAC not granted yet must not pass for "no CRDs".
        assert!(!not_served(&list_failed(&forbidden)));
    }

    #[test]
    fn stripping_keeps_the_metadata_read_and_the_spec_only() {
        let mut object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "policy.networking.k8s.io/v1alpha2",
            "kind": "ClusterNetworkPolicy",
            "metadata": {
                "name": "guard",
                "labels": {"team": "sec"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
                "managedFields": [{"manager": "kubectl"}],
                "resourceVersion": "7",
            },
            "spec": {"tier": "Admin"},
            "status": {"conditions": []},
        }))
        .unwrap_or_else(|e| panic!("object: {e}"));
        strip(&mut object);
        assert_eq!(object.metadata.name.as_deref(), Some("guard"));
        assert_eq!(object.metadata.resource_version.as_deref(), Some("7"));
        assert!(object.metadata.labels.is_some());
        assert!(object.metadata.annotations.is_none() && object.metadata.managed_fields.is_none());
        assert_eq!(object.data, json!({"spec": {"tier": "Admin"}}));
    }
}
