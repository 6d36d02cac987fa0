//! The first sync, then adds, changes, deletions and a rejected object on the stand-in.

use crate::{
    harness::{Datastore, NODE},
    kubernetes_apiserver,
};

use std::time::Duration;

use kubernetes_apiserver::{ApiServer, Kind};
use policy_agent::datastore::kubernetes::Resource;
use serde_json::json;

use super::fixtures::{
    BACKEND, FRONTEND, METRICS, OTHER, REMOTE, allow_from, deny_all_ingress, endpoints, ingress,
    ip, ips, namespace, pod, seed,
};

#[tokio::test]
async fn not_synced_until_every_resource_is_listed_then_the_seed_is_enforced() {
    let server = ApiServer::start().await;
    seed(&server);
    // The API server is unreachable when the agent starts: nothing is synced, and the
    // snapshot (which the agent would not program) is empty.
    server.stop();
    let mut h = Datastore::start(server, "kubernetes-test", Duration::from_millis(200));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!h.store.is_synced());
    assert!(h.store.snapshot().cluster.pods.is_empty());
    assert!(
        Resource::ALL
            .iter()
            .all(|r| h.store.progress().errors(*r) > 0)
    );

    h.server.restart().await;
    let (snapshot, maps) = h.compiled().await;
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    // Local endpoints: this node's pods, not hostNetwork ones, not the remote one.
    assert_eq!(endpoints(&maps), ips(&[FRONTEND, BACKEND, OTHER, METRICS]));
    assert!(ingress(&maps, FRONTEND, BACKEND, 8000));
    assert!(!ingress(&maps, FRONTEND, BACKEND, 8001));
    assert!(!ingress(&maps, OTHER, BACKEND, 8000));
    // The remote pod is a peer: its labels count.
    assert!(ingress(&maps, REMOTE, BACKEND, 8000));
    assert!(
        ingress(&maps, OTHER, FRONTEND, 80),
        "frontend is not isolated"
    );
    for r in Resource::ALL {
        assert_eq!(h.store.progress().lists(r), 1, "{r:?}");
    }
}

#[tokio::test]
async fn adds_modifications_deletions_and_label_changes_are_programmed() {
    let server = ApiServer::start().await;
    seed(&server);
    let mut h = Datastore::start(server, "kubernetes-test", Duration::from_millis(200));
    let (_, maps) = h.compiled().await;
    assert!(!ingress(&maps, OTHER, BACKEND, 8000));

    // Add: a second frontend pod gets in.
    h.server.apply(pod(
        "default",
        "frontend-2",
        json!({"app": "frontend"}),
        "10.42.0.13",
        NODE,
    ));
    let (_, maps) = h.compiled().await;
    assert!(ingress(&maps, "10.42.0.13", BACKEND, 8000));
    assert!(endpoints(&maps).contains(&ip("10.42.0.13")));

    // Label change: `other` becomes a frontend, then stops being one.
    h.server.apply(pod(
        "default",
        "other",
        json!({"app": "frontend"}),
        OTHER,
        NODE,
    ));
    let (_, maps) = h.compiled().await;
    assert!(ingress(&maps, OTHER, BACKEND, 8000));
    h.server.apply(pod(
        "default",
        "other",
        json!({"app": "other"}),
        OTHER,
        NODE,
    ));
    let (_, maps) = h.compiled().await;
    assert!(!ingress(&maps, OTHER, BACKEND, 8000));

    // Namespace label change, seen through a namespaceSelector.
    h.server.apply(allow_from(
        "allow-ops",
        "backend",
        json!({"namespaceSelector": {"matchLabels": {"team": "ops"}}}),
        json!(9090),
    ));
    let (_, maps) = h.compiled().await;
    assert!(ingress(&maps, METRICS, BACKEND, 9090));
    h.server
        .apply(namespace("monitoring", json!({"team": "dev"})));
    let (_, maps) = h.compiled().await;
    assert!(!ingress(&maps, METRICS, BACKEND, 9090));

    // Modify a policy's port.
    h.server.apply(allow_from(
        "allow-frontend-to-backend",
        "backend",
        json!({"podSelector": {"matchLabels": {"app": "frontend"}}}),
        json!(9000),
    ));
    let (_, maps) = h.compiled().await;
    assert!(!ingress(&maps, FRONTEND, BACKEND, 8000));
    assert!(ingress(&maps, FRONTEND, BACKEND, 9000));

    // Delete: the pod stops being an endpoint and a peer; the policies stop isolating.
    h.server.delete(Kind::Pod, "default", "frontend");
    let (_, maps) = h.compiled().await;
    assert!(!endpoints(&maps).contains(&ip(FRONTEND)));
    assert!(!ingress(&maps, FRONTEND, BACKEND, 9000));
    for name in [
        "deny-all-ingress-to-backend",
        "allow-frontend-to-backend",
        "allow-ops",
    ] {
        h.server.delete(Kind::NetworkPolicy, "default", name);
    }
    let (_, maps) = h.compiled().await;
    assert!(ingress(&maps, OTHER, BACKEND, 1234));
}

#[tokio::test]
async fn a_rejected_object_is_reported_and_the_rest_enforced() {
    let server = ApiServer::start().await;
    seed(&server);
    let mut h = Datastore::start(server, "kubernetes-test", Duration::from_millis(200));
    h.compiled().await;

    // An update the compiler cannot accept: the previous version stays in force.
    let mut bad = allow_from(
        "allow-frontend-to-backend",
        "backend",
        json!({"podSelector": {"matchLabels": {"app": "frontend"}}}),
        json!(8000),
    );
    bad["spec"]["ingress"][0]["ports"][0]["protocol"] = json!("ICMP");
    h.server.apply(bad);
    // A new, valid policy in the same step is enforced.
    h.server
        .apply(deny_all_ingress("default", "isolate-frontend", "frontend"));
    let (snapshot, maps) = h.compiled().await;
    assert_eq!(snapshot.errors.len(), 1, "{:?}", snapshot.errors);
    let error = &snapshot.errors[0];
    assert_eq!(error.source, "kubernetes");
    assert_eq!(
        error.object.as_deref(),
        Some("NetworkPolicy default/allow-frontend-to-backend")
    );
    assert_eq!(
        error.field.as_deref(),
        Some("spec.ingress[0].ports[0].protocol")
    );
    assert!(
        error
            .message
            .contains("previously accepted version stays in force")
    );
    assert!(ingress(&maps, FRONTEND, BACKEND, 8000));
    assert!(!ingress(&maps, OTHER, FRONTEND, 80));
}
