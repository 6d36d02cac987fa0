//! The Kubernetes datastore with Calico's custom resources (`crd.projectcalico.org/v1`),
//! through the real kube client against the in-process stand-in API server: created objects
//! reach the snapshot's `cluster.calico` (the same as the file datastore reads from their v3
//! documents), a rejected version is reported and the accepted one stays, and a cluster
//! without Calico's CRDs still syncs, until they are installed.

use crate::kubernetes_apiserver;

use std::{
    fs,
    path::PathBuf,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use kubernetes_apiserver::{ApiServer, CALICO_API_VERSION, Kind};
use policy_agent::datastore::{
    Snapshot,
    file::FileDatastore,
    kubernetes::{self, KubernetesDatastore, Resource, digest_versions},
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Every wait in these tests ends by this, loudly.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(15);

fn calico_object(kind: &str, namespace: Option<&str>, name: &str, spec: Value) -> Value {
    let mut metadata = json!({"name": name, "labels": {"owner": "test"}});
    if let Some(namespace) = namespace {
        metadata["namespace"] = json!(namespace);
    }
    json!({"apiVersion": CALICO_API_VERSION, "kind": kind, "metadata": metadata, "spec": spec})
}

fn tier() -> Value {
    calico_object("Tier", None, "security", json!({"order": 100}))
}

fn global_policy(selector: &str) -> Value {
    calico_object(
        "GlobalNetworkPolicy",
        None,
        "security.deny-db",
        json!({
            "tier": "security",
            "order": 10,
            "selector": selector,
            "types": ["Ingress"],
            "ingress": [{"action": "Deny", "protocol": "TCP", "destination": {"ports": [5432]}}],
        }),
    )
}

fn kubernetes_seed(server: &ApiServer) {
    server.apply(json!({"kind": "Namespace", "metadata": {"name": "default"}}));
    server.apply(json!({
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Running", "podIP": "10.42.0.10", "podIPs": [{"ip": "10.42.0.10"}]},
    }));
    server.apply(json!({
        "kind": "NetworkPolicy",
        "metadata": {"name": "deny-web", "namespace": "default"},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]},
    }));
}

struct Harness {
    server: ApiServer,
    store: KubernetesDatastore,
    changes: mpsc::UnboundedReceiver<()>,
    dir: PathBuf,
}

impl Harness {
    fn new(server: ApiServer) -> Harness {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "palisade-kubernetes-calico-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).expect("scratch directory");
        let (tx, changes) = mpsc::unbounded_channel();
        let options = kubernetes::Options {
            retry_initial: Duration::from_millis(20),
            retry_max: Duration::from_millis(200),
            // Short, so that a CRD installed during the test is found quickly.
            rediscover: Duration::from_millis(100),
        };
        let store = KubernetesDatastore::start(server.client(), options, tx);
        Harness {
            server,
            store,
            changes,
            dir,
        }
    }

    fn server_digest(&self) -> String {
        let versions = self.server.versions();
        digest_versions(
            versions
                .iter()
                .map(|(k, ns, n, v)| (k.as_str(), ns.as_str(), n.as_str(), v.as_str())),
        )
    }

    /// Waits until the datastore is synced and its snapshot satisfies `done`.
    async fn until(&mut self, what: &str, done: impl Fn(&Snapshot) -> bool) -> Snapshot {
        let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
        loop {
            if self.store.is_synced() {
                let snapshot = self.store.snapshot();
                if done(&snapshot) {
                    return snapshot;
                }
            }
            match tokio::time::timeout_at(deadline, self.changes.recv()).await {
                Ok(Some(())) => {}
                Ok(None) => panic!("the datastore's watchers stopped"),
                Err(_) => panic!(
                    "{what}: not reached in {SETTLE_TIMEOUT:?} (synced: {})",
                    self.store.is_synced()
                ),
            }
        }
    }

    /// Waits until the datastore holds exactly the server's object versions.
    async fn settled(&mut self) -> Snapshot {
        let expected = self.server_digest();
        self.until("the server's state", |s| s.digest == expected)
            .await
    }

    /// The file datastore's cluster from the server's objects (Calico's as v3 documents).
    fn file_snapshot(&self) -> Snapshot {
        fs::write(self.dir.join("cluster.yaml"), self.server.manifests()).expect("manifests");
        FileDatastore::new(&self.dir)
            .load()
            .expect("file datastore")
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn calico_resources_created_through_the_api_server_are_in_the_snapshot() {
    let server = ApiServer::start().await;
    kubernetes_seed(&server);
    server.apply(tier());
    server.apply(global_policy("app == 'db'"));
    let mut h = Harness::new(server);

    let snapshot = h.settled().await;
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    let calico = &snapshot.cluster.calico;
    assert_eq!(calico.tiers["security"].order, Some(100.0));
    let policy = &calico.policies[&(String::new(), "security.deny-db".to_owned())];
    assert_eq!(policy.tier, "security");
    assert_eq!(policy.order, Some(10.0));
    assert_eq!(policy.namespace, None);
    // The Kubernetes policy of the same cluster is there too.
    assert!(
        snapshot
            .cluster
            .policies
            .contains_key(&("default".into(), "deny-web".into()))
    );
    // The file datastore reading the v3 documents these CRDs stand for agrees.
    let files = h.file_snapshot();
    assert!(files.errors.is_empty(), "{:?}", files.errors);
    assert_eq!(snapshot.cluster, files.cluster);

    // Namespaced kinds, added while watching; then a deletion.
    h.server.apply(calico_object(
        "NetworkPolicy",
        Some("default"),
        "allow-web",
        json!({"selector": "app == 'web'", "ingress": [{"action": "Allow"}]}),
    ));
    h.server.apply(calico_object(
        "NetworkSet",
        Some("default"),
        "partners",
        json!({"nets": ["192.0.2.0/24"]}),
    ));
    h.server
        .delete(Kind::GlobalNetworkPolicy, "", "security.deny-db");
    let snapshot = h.settled().await;
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    let calico = &snapshot.cluster.calico;
    let keys: Vec<_> = calico.policies.keys().cloned().collect();
    assert_eq!(keys, [("default".to_owned(), "allow-web".to_owned())]);
    assert!(
        calico
            .network_sets
            .contains_key(&("default".into(), "partners".into()))
    );
    assert_eq!(snapshot.cluster, h.file_snapshot().cluster);
    for resource in Resource::ALL {
        assert_eq!(h.store.progress().lists(resource), 1, "{resource:?}");
    }
}

#[tokio::test]
async fn a_rejected_calico_resource_is_reported_and_the_accepted_version_stays() {
    let server = ApiServer::start().await;
    kubernetes_seed(&server);
    server.apply(tier());
    server.apply(global_policy("app == 'db'"));
    let mut h = Harness::new(server);
    let accepted = h.settled().await;
    assert!(accepted.errors.is_empty(), "{:?}", accepted.errors);

    // A selector that does not parse, on the accepted policy and on a new one.
    h.server.apply(global_policy("a =="));
    let mut never_valid = global_policy("a ==");
    never_valid["metadata"]["name"] = json!("security.broken");
    h.server.apply(never_valid);
    let snapshot = h.settled().await;
    assert_eq!(
        snapshot.cluster.calico, accepted.cluster.calico,
        "the accepted version stays in force; the never-valid one is absent"
    );
    let errors: Vec<_> = snapshot
        .errors
        .iter()
        .map(|e| (e.source.as_str(), e.object.as_deref(), e.field.as_deref()))
        .collect();
    assert_eq!(
        errors,
        [
            (
                "kubernetes",
                Some("GlobalNetworkPolicy (crd.projectcalico.org/v1) security.broken"),
                Some("spec.selector"),
            ),
            (
                "kubernetes",
                Some("GlobalNetworkPolicy (crd.projectcalico.org/v1) security.deny-db"),
                Some("spec.selector"),
            ),
        ]
    );
    assert!(!snapshot.errors[0].message.contains("previously accepted"));
    assert!(
        snapshot.errors[1]
            .message
            .ends_with("the previously accepted version stays in force"),
        "{}",
        snapshot.errors[1].message
    );
    assert_ne!(snapshot.digest, accepted.digest, "the new versions count");

    // Fixed: the new version replaces the old one and the error goes.
    h.server.apply(global_policy("app == 'cache'"));
    h.server
        .delete(Kind::GlobalNetworkPolicy, "", "security.broken");
    let snapshot = h.settled().await;
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    assert_ne!(snapshot.cluster.calico, accepted.cluster.calico);
}

#[tokio::test]
async fn without_calico_crds_the_datastore_syncs_and_finds_them_once_installed() {
    let server = ApiServer::start().await;
    server.serve_calico(false);
    kubernetes_seed(&server);
    let mut h = Harness::new(server);

    let snapshot = h.settled().await;
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    assert!(
        snapshot
            .cluster
            .policies
            .contains_key(&("default".into(), "deny-web".into()))
    );
    assert!(snapshot.cluster.calico.is_empty());
    for resource in Resource::ALL {
        assert!(h.store.progress().synced(resource), "{resource:?}");
    }
    // Nothing was listed or watched from the absent group: discovery said so first.
    let calico_requests: Vec<_> = h
        .server
        .requests()
        .into_iter()
        .filter(|(group, resource, _)| {
            group == "crd.projectcalico.org" || resource.contains("projectcalico")
        })
        .collect();
    assert_eq!(calico_requests, []);

    // Calico is installed later: the periodic rediscovery finds its resources.
    let discoveries = h.server.discoveries();
    h.server.apply(tier());
    h.server.serve_calico(true);
    let snapshot = h.settled().await;
    assert!(snapshot.cluster.calico.tiers.contains_key("security"));
    assert!(h.server.discoveries() > discoveries);
    assert!(h.server.lists(Kind::Tier) >= 1);

    // And removed again: the watchers' 404 empties Calico's part, Kubernetes' stays.
    h.server.serve_calico(false);
    let snapshot = h
        .until("Calico's resources gone", |s| s.cluster.calico.is_empty())
        .await;
    assert!(
        snapshot
            .cluster
            .policies
            .contains_key(&("default".into(), "deny-web".into()))
    );
}
