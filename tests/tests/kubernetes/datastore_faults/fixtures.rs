//! The bounds, the manifests, and the waits on the file datastore's watch.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use policy_agent::{
    datastore::{Snapshot, digest::dir_digest, file::FileDatastore},
    model::Cluster,
};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

/// Every wait ends by this, loudly.
pub(super) const WAIT: Duration = Duration::from_secs(60);
/// How many objects appear at once in the large cases.
pub(super) const BURST: usize = 10_000;
/// Loading and compiling [`BURST`] objects, in a debug build on a shared 2-core machine.
pub(super) const BURST_BUDGET: Duration = Duration::from_secs(120);
pub(super) const NODE: &str = "node-a";

pub(super) fn pod(namespace: &str, name: &str, app: &str, ip: &str, node: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": app}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Running", "podIP": ip},
    })
}

pub(super) fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"team": name}}})
}

/// Lets `from` (in any namespace) reach `app` on `port`.
pub(super) fn policy(namespace: &str, name: &str, app: &str, from: &str, port: u16) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "podSelector": {"matchLabels": {"app": app}},
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": [{
                    "namespaceSelector": {},
                    "podSelector": {"matchLabels": {"app": from}},
                }],
                "ports": [{"protocol": "TCP", "port": port}],
            }],
        },
    })
}

pub(super) fn yaml(objects: &[Value]) -> String {
    objects
        .iter()
        .map(|o| serde_yaml::to_string(o).expect("object as YAML"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// A small cluster in one file; `version` changes the policies' ports and adds a pod, so that
/// each version compiles differently.
pub(super) fn small_cluster(version: u16) -> String {
    let mut objects = vec![
        namespace("shop"),
        pod("shop", "web", "web", "10.42.0.10", NODE),
        pod("shop", "db", "db", "10.42.0.11", NODE),
        policy("shop", "web-from-client", "web", "client", 8000 + version),
        policy("shop", "db-from-web", "db", "web", 5432 + version),
    ];
    objects.push(pod(
        "shop",
        &format!("client-{version}"),
        "client",
        &format!("10.42.0.{}", 20 + version),
        NODE,
    ));
    yaml(&objects)
}

pub(super) fn load(store: &mut FileDatastore) -> Snapshot {
    store.load().expect("reading the manifest directory")
}

/// Waits for a change notification from the datastore's watch.
pub(super) async fn changed(changes: &mut UnboundedReceiver<()>, what: &str) {
    match tokio::time::timeout(WAIT, changes.recv()).await {
        Ok(Some(())) => {}
        Ok(None) => panic!("the watch stopped, waiting for {what}"),
        Err(_) => panic!("no change seen in {WAIT:?}: {what}"),
    }
}

/// Waits until the watch has been quiet for a while (every event of the previous step
/// handled), then forgets its notifications.
pub(super) async fn quiet(changes: &mut UnboundedReceiver<()>) {
    let deadline = Instant::now() + WAIT;
    while let Ok(Some(())) = tokio::time::timeout(Duration::from_millis(200), changes.recv()).await
    {
        assert!(Instant::now() < deadline, "the watch never went quiet");
    }
}

/// Reloads (on each change notification) until the snapshot's digest is the directory's: the
/// datastore converged to what is on disk.
pub(super) async fn converged(
    store: &mut FileDatastore,
    changes: &mut UnboundedReceiver<()>,
    what: &str,
) -> Snapshot {
    let deadline = Instant::now() + WAIT;
    loop {
        let snapshot = load(store);
        if snapshot.digest == dir_digest(store.dir()).expect("directory digest")
            && snapshot.errors.is_empty()
        {
            return snapshot;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, changes.recv()).await {
            Ok(Some(())) => {}
            Ok(None) => panic!("the watch stopped, waiting for {what}"),
            Err(_) => panic!(
                "{what}: not converged in {WAIT:?}; last errors {:?}",
                snapshot.errors
            ),
        }
    }
}

pub(super) fn fresh(dir: &Path) -> Cluster {
    let snapshot = FileDatastore::new(dir)
        .load()
        .expect("reading the directory");
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    snapshot.cluster
}
