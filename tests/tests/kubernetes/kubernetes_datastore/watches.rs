//! Watches interrupted: dropped, bookmarked, expired (410 Gone), the server away and back.

use crate::{
    harness::{Datastore, NODE, SETTLE_TIMEOUT},
    kubernetes_apiserver,
};

use std::time::Duration;

use kubernetes_apiserver::{ApiServer, Change, Kind};
use policy_agent::{
    compiler::{Compiler, Scope},
    datastore::kubernetes::Resource,
};
use serde_json::json;

use super::fixtures::{BACKEND, FRONTEND, OTHER, REMOTE, RESOURCES, ingress, namespace, pod, seed};

#[tokio::test]
async fn a_dropped_watch_is_resumed_without_a_relist() {
    let server = ApiServer::start().await;
    seed(&server);
    let mut h = Datastore::start(server, "kubernetes-test", Duration::from_millis(200));
    h.compiled().await;
    h.watching().await;

    h.server.drop_watches();
    // Made while no watch is open (or just reopened): delivered from the history.
    h.server.apply(pod(
        "default",
        "other",
        json!({"app": "frontend"}),
        OTHER,
        NODE,
    ));
    let (_, maps) = h.compiled().await;
    assert!(ingress(&maps, OTHER, BACKEND, 8000));
    let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
    while Kind::ALL
        .iter()
        .any(|k| h.server.watch_versions(*k).len() < 2)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every watch was reopened: {:?}",
            Kind::ALL.map(|k| h.server.watch_versions(k))
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for (r, k) in RESOURCES {
        assert_eq!(h.server.lists(k), 1, "{k:?}: resumed, not relisted");
        assert_eq!(h.store.progress().lists(r), 1);
        assert!(
            h.server.watch_versions(k).len() >= 2,
            "{k:?}: watched again"
        );
    }
}

#[tokio::test]
async fn bookmarks_move_the_resume_point() {
    let server = ApiServer::start().await;
    seed(&server);
    let mut h = Datastore::start(server, "kubernetes-test", Duration::from_millis(200));
    h.compiled().await;
    // Namespaces last changed at version 2; many changes to other kinds follow.
    for i in 0..5 {
        h.server.apply(pod(
            "default",
            &format!("extra-{i}"),
            json!({}),
            &format!("10.42.0.{}", 50 + i),
            NODE,
        ));
    }
    h.compiled().await;
    h.watching().await;
    h.server.bookmark();
    // The client reads the bookmark from a local socket; give it ample time.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let current = h
        .server
        .versions()
        .iter()
        .filter_map(|v| v.3.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    h.server.compact();
    h.server.drop_watches();
    h.server.apply(namespace(
        "monitoring",
        json!({"team": "ops", "bookmarked": "yes"}),
    ));
    let (snapshot, _) = h.compiled().await;
    assert_eq!(
        snapshot.cluster.namespaces["monitoring"].labels["bookmarked"],
        "yes"
    );
    // Resumed from the bookmark's version, which compaction kept valid: no relist, for
    // every Kubernetes resource (the quiet Services and EndpointSlices too).
    let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
    while RESOURCES
        .iter()
        .any(|(_, k)| h.server.watch_versions(*k).len() < 2)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every watch was reopened"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for (_, k) in RESOURCES {
        assert_eq!(h.server.lists(k), 1, "{k:?}");
        assert_eq!(h.server.watch_versions(k).last(), Some(&current), "{k:?}");
    }
}

#[tokio::test]
async fn a_410_gone_relists_and_keeps_enforcing_meanwhile() {
    let server = ApiServer::start().await;
    seed(&server);
    let mut h = Datastore::start(server, "kubernetes-test", Duration::from_millis(200));
    let (_, before) = h.compiled().await;
    h.watching().await;

    // Changes no watch sees, then the watches expire: only a relist finds them.
    h.server.expire_watches(vec![
        Change::Delete(Kind::NetworkPolicy, "default", "allow-frontend-to-backend"),
        Change::Apply(pod(
            "default",
            "other",
            json!({"app": "frontend"}),
            OTHER,
            NODE,
        )),
        Change::Apply(namespace("monitoring", json!({"team": "dev"}))),
    ]);
    // Until the relist completes the store holds the old state: the agent would keep it.
    let meanwhile = h.store.snapshot();
    let scope = Scope {
        node_name: Some(NODE.to_owned()),
        host_addrs: Vec::new(),
    };
    assert_eq!(
        *Compiler::new().compile(&meanwhile.cluster, &scope).maps,
        before
    );

    let (snapshot, maps) = h.compiled().await;
    assert!(
        !snapshot
            .cluster
            .policies
            .contains_key(&("default".into(), "allow-frontend-to-backend".into()))
    );
    assert!(!ingress(&maps, FRONTEND, BACKEND, 8000));
    assert_eq!(
        snapshot.cluster.pods[&("default".into(), "other".into())].labels["app"],
        "frontend"
    );
    // The kinds changed behind the watches' backs: the digest waited for their relists.
    for (r, k) in &RESOURCES[..3] {
        let (r, k) = (*r, *k);
        assert_eq!(h.server.lists(k), 2, "{k:?}: relisted once");
        assert_eq!(h.store.progress().lists(r), 2);
        assert!(h.store.progress().errors(r) >= 1, "{r:?}: the 410 was seen");
    }
}

#[tokio::test]
async fn the_api_server_going_away_and_coming_back() {
    let server = ApiServer::start().await;
    seed(&server);
    let mut h = Datastore::start(server, "kubernetes-test", Duration::from_millis(200));
    let (_, before) = h.compiled().await;
    let errors_before = h.store.progress().errors(Resource::Pods);

    h.server.stop();
    // Changes land while the server is away (it keeps its storage, like etcd).
    h.server.apply(pod(
        "default",
        "other",
        json!({"app": "frontend"}),
        OTHER,
        NODE,
    ));
    h.server.delete(Kind::Pod, "default", "remote-frontend");
    // Down: the watchers retry and fail, and the state stays what it was.
    let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
    while h.store.progress().errors(Resource::Pods) == errors_before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no reconnection attempt seen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let scope = Scope {
        node_name: Some(NODE.to_owned()),
        host_addrs: Vec::new(),
    };
    assert_eq!(
        *Compiler::new()
            .compile(&h.store.snapshot().cluster, &scope)
            .maps,
        before
    );

    h.server.restart().await;
    let (_, maps) = h.compiled().await;
    assert!(ingress(&maps, OTHER, BACKEND, 8000));
    assert!(!ingress(&maps, REMOTE, BACKEND, 8000));
    // The watches resumed from their versions, which the server still had.
    assert_eq!(h.server.lists(Kind::Pod), 1);
}
