//! Calico's custom resources (`crd.projectcalico.org/v1`: GlobalNetworkPolicy, NetworkPolicy,
//! Tier, GlobalNetworkSet, NetworkSet, HostEndpoint), watched like the Kubernetes resources,
//! as kube-rs dynamic objects.
//!
//! Not every cluster runs Calico, and an agent on a cluster without its CRDs must still become
//! ready and enforce Kubernetes policy. So one task discovers the group version
//! (`GET /apis/crd.projectcalico.org/v1`) first, and again every [`Options::rediscover`]
//! (60 s by default) while any of the six is not being watched: a plain periodic rediscovery
//! rather than a watch of CustomResourceDefinitions, which would need RBAC on
//! `apiextensions.k8s.io` for what is one cheap discovery request a minute per node.
//!
//! - A served resource gets a watcher with the same retry and resume handling as the others.
//! - A resource the API server does not serve (the group version is a 404, or its list
//!   lacks the resource) is synced and empty: its store is emptied, readiness does not wait
//!   for it, and the absence is logged once (at info) until it is served again.
//! - A watcher whose list or watch gets a 404 (its CRD was deleted, which deletes every object
//!   of it) stops; its store is emptied and the resource waits for the next rediscovery.
//! - Any other discovery failure (API server unreachable) is retried with the watchers'
//!   backoff and leaves the stores as they were: until the first answer the Calico resources
//!   are not synced, so nothing is programmed from a state that might lack Calico policy.
//!
//! Each object is handed to [`crate::calico::resources::parse_value`] as the
//! `projectcalico.org/v3` document the CRD stands for ([`to_v3`]): the CRDs' `spec` is v3's.

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
use serde_json::{Map, Value, json};
use tokio::{sync::mpsc, task::JoinHandle, task::JoinSet};
use tracing::{info, warn};

use super::{
    Options,
    watch::{self, Resource, WatchProgress},
};
use crate::calico::resources as calico;

pub const GROUP: &str = "crd.projectcalico.org";
pub const VERSION: &str = "v1";
/// `apiVersion` of the custom resources.
pub const API_VERSION: &str = "crd.projectcalico.org/v1";

pub(super) type Store = reflector::Store<DynamicObject>;
type Writer = reflector::store::Writer<DynamicObject>;

/// The CRD's plural name, as its URL and RBAC spell it.
pub fn plural(kind: calico::Kind) -> &'static str {
    match kind {
        calico::Kind::GlobalNetworkPolicy => "globalnetworkpolicies",
        calico::Kind::NetworkPolicy => "networkpolicies",
        calico::Kind::Tier => "tiers",
        calico::Kind::GlobalNetworkSet => "globalnetworksets",
        calico::Kind::NetworkSet => "networksets",
        calico::Kind::HostEndpoint => "hostendpoints",
    }
}

/// The watched resource (for progress and logs) holding `kind`.
fn resource_of(kind: calico::Kind) -> Resource {
    match kind {
        calico::Kind::GlobalNetworkPolicy => Resource::CalicoGlobalNetworkPolicies,
        calico::Kind::NetworkPolicy => Resource::CalicoNetworkPolicies,
        calico::Kind::Tier => Resource::CalicoTiers,
        calico::Kind::GlobalNetworkSet => Resource::CalicoGlobalNetworkSets,
        calico::Kind::NetworkSet => Resource::CalicoNetworkSets,
        calico::Kind::HostEndpoint => Resource::CalicoHostEndpoints,
    }
}

fn api_resource(kind: calico::Kind) -> ApiResource {
    ApiResource {
        group: GROUP.to_owned(),
        version: VERSION.to_owned(),
        api_version: API_VERSION.to_owned(),
        kind: kind.as_str().to_owned(),
        plural: plural(kind).to_owned(),
    }
}

/// Starts discovering and watching Calico's resources; returns their stores (in
/// [`calico::Kind::ALL`]'s order) and the task that runs it all.
pub(super) fn spawn(
    client: Client,
    options: &Options,
    progress: Arc<WatchProgress>,
    changes: mpsc::UnboundedSender<()>,
) -> (Vec<(calico::Kind, Store)>, JoinHandle<()>) {
    let mut stores = Vec::new();
    let mut idle = BTreeMap::new();
    for kind in calico::Kind::ALL {
        let writer = Writer::new(api_resource(kind));
        stores.push((kind, writer.as_reader()));
        idle.insert(kind, writer);
    }
    let task = tokio::spawn(discover_and_watch(
        client,
        options.clone(),
        progress,
        changes,
        idle,
    ));
    (stores, task)
}

/// The plural names the API server serves in `crd.projectcalico.org/v1`; empty if it does not
/// serve the group version at all.
async fn served(client: &Client) -> Result<BTreeSet<String>, kube::Error> {
    match client.list_api_group_resources(API_VERSION).await {
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
    mut idle: BTreeMap<calico::Kind, Writer>,
) {
    let mut running: JoinSet<(calico::Kind, Writer)> = JoinSet::new();
    // Resources known to be absent, so their absence is logged once rather than every round.
    let mut absent: BTreeSet<calico::Kind> = BTreeSet::new();
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
            match served(&client).await {
                Ok(served) => {
                    retries = retry_delays();
                    let mut missing = Vec::new();
                    for (kind, mut writer) in std::mem::take(&mut idle) {
                        if served.contains(plural(kind)) {
                            absent.remove(&kind);
                            running.spawn(watch_served(
                                client.clone(),
                                options.clone(),
                                progress.clone(),
                                changes.clone(),
                                kind,
                                writer,
                            ));
                        } else {
                            if absent.insert(kind) {
                                missing.push(resource_of(kind).plural());
                                empty(resource_of(kind), &mut writer, &progress, &changes);
                            }
                            idle.insert(kind, writer);
                        }
                    }
                    if !missing.is_empty() {
                        info!(
                            resources = missing.join(", "),
                            every = ?options.rediscover,
                            "not served by the API server (Calico's CRDs are not installed?); \
                             treated as empty, discovered again periodically"
                        );
                    }
                    Some(options.rediscover)
                }
                Err(e) => {
                    for kind in idle.keys() {
                        progress.failed(resource_of(*kind));
                    }
                    warn!(
                        error = %e,
                        group_version = API_VERSION,
                        "discovering Calico's resources failed; retrying"
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
                    Ok((kind, writer)) => {
                        absent.insert(kind);
                        idle.insert(kind, writer);
                        if deadline.is_none() {
                            // Everything was watched: rediscover from now on.
                            break;
                        }
                    }
                    // A watcher panicked (a bug): its resource stays as it was.
                    Err(e) => warn!(error = %e, "a Calico watcher task ended abnormally"),
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
    kind: calico::Kind,
    mut writer: Writer,
) -> (calico::Kind, Writer) {
    let resource = resource_of(kind);
    let api = Api::<DynamicObject>::all_with(client, &api_resource(kind));
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
    (kind, writer)
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
/// namespace, labels, resource version and `spec`.
fn strip(object: &mut DynamicObject) {
    object.metadata.managed_fields = None;
    object.metadata.annotations = None;
    if let Some(fields) = object.data.as_object_mut() {
        fields.retain(|field, _| field == "spec");
    }
}

/// The `projectcalico.org/v3` document a custom resource stands for: the same `spec`, the
/// v3 `apiVersion`, and only the metadata v3 validation reads (name, namespace, labels).
pub(super) fn to_v3(
    kind: calico::Kind,
    object: &DynamicObject,
) -> Result<serde_yaml::Value, serde_yaml::Error> {
    let meta = &object.metadata;
    let mut metadata = Map::new();
    if let Some(name) = &meta.name {
        metadata.insert("name".to_owned(), json!(name));
    }
    if let Some(namespace) = &meta.namespace {
        metadata.insert("namespace".to_owned(), json!(namespace));
    }
    if let Some(labels) = &meta.labels {
        metadata.insert("labels".to_owned(), json!(labels));
    }
    let mut document = json!({
        "apiVersion": calico::API_VERSION,
        "kind": kind.as_str(),
        "metadata": Value::Object(metadata),
    });
    if let Some(spec) = object.data.get("spec") {
        document["spec"] = spec.clone();
    }
    serde_yaml::to_value(document)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_custom_resource_becomes_its_v3_document() {
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": API_VERSION,
            "kind": "NetworkPolicy",
            "metadata": {
                "name": "allow-web",
                "namespace": "shop",
                "labels": {"team": "web"},
                "annotations": {"projectcalico.org/metadata": "{}"},
                "uid": "1234",
                "resourceVersion": "7",
            },
            "spec": {"selector": "app == 'web'", "types": ["Ingress"]},
            "status": {"ignored": true},
        }))
        .unwrap_or_else(|e| panic!("object: {e}"));
        let document = to_v3(calico::Kind::NetworkPolicy, &object)
            .unwrap_or_else(|e| panic!("v3 document: {e}"));
        let expected: serde_yaml::Value = serde_yaml::from_str(
            "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\n\
             metadata: {name: allow-web, namespace: shop, labels: {team: web}}\n\
             spec: {selector: \"app == 'web'\", types: [Ingress]}\n",
        )
        .unwrap_or_else(|e| panic!("expected: {e}"));
        assert_eq!(document, expected);
        assert!(calico::parse_value(document).is_ok());
    }

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
        // Anything else is retried: RBAC not granted yet must not pass for "no Calico".
        assert!(!not_served(&list_failed(&forbidden)));
    }

    #[test]
    fn every_kind_has_a_distinct_plural() {
        let plurals: BTreeSet<_> = calico::Kind::ALL.into_iter().map(plural).collect();
        assert_eq!(plurals.len(), calico::Kind::ALL.len());
        for (resource, kind) in Resource::CALICO.into_iter().zip(calico::Kind::ALL) {
            assert_eq!(resource_of(kind), resource);
            assert_eq!(resource.calico_kind(), Some(kind));
            assert_eq!(resource.plural(), format!("{}.{GROUP}", plural(kind)));
        }
    }
}
