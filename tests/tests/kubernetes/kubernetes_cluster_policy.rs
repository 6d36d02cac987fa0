//! The Kubernetes datastore with network-policy-api's administrators' policy
//! (`policy.networking.k8s.io/v1alpha2` ClusterNetworkPolicy, `v1alpha1` AdminNetworkPolicy
//! and BaselineAdminNetworkPolicy), through the real kube client against the in-process
//! stand-in API server of `kubernetes_apiserver/` — a stand-in speaking the list/watch and
//! discovery protocol, not a real API server (none can run on these machines), so what a real
//! one adds (CRD schema validation and pruning, RBAC, paging) is not exercised here.
//!
//! After every step the test waits until the datastore's digest names exactly the server's
//! object versions, checks that the file datastore reading the same objects makes the same
//! cluster and the same compiled maps, and checks verdicts on the compiled maps with the
//! userspace replay of the datapath's lookups. The optional CRDs in `deploy/network-policy-api/`
//! are checked to define exactly what the watchers read.
//!
//! One test runs the real `policy-agent` binary against the stand-in (privileged: loads BPF
//! programs and pins maps, so it needs root and is a failure under CI=true without it; it
//! attaches to no interface and uses loopback only): ready without the CRDs, and picking them
//! up on its own rediscovery (`--crd-rediscovery-seconds 1`), with a rejected object in its status
//! file.

use crate::{
    harness::{Agent, Datastore, NODE, digest_of, metric, pinned_endpoints},
    kubernetes_apiserver,
};

use std::{collections::BTreeSet, fs, net::IpAddr, path::PathBuf, time::Duration};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kubernetes_apiserver::{ANP_API_VERSION, ApiServer, CALICO_API_VERSION, CNP_API_VERSION, Kind};
use policy_agent::{
    cluster_policy::ApiKind,
    compiler::MapContents,
    datastore::{Snapshot, kubernetes::Resource},
    replay::{self, Direction, Packet},
};
use serde_json::{Value, json};

const GROUP: &str = "policy.networking.k8s.io";

const FRONTEND: &str = "10.42.0.10";
const BACKEND: &str = "10.42.0.11";
const OTHER: &str = "10.42.0.12";
const SCRAPER: &str = "10.42.0.20";

fn pod(namespace: &str, name: &str, labels: Value, ip: &str) -> Value {
    json!({
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "nodeName": NODE,
            "containers": [{"name": "c", "image": "busybox", "ports": [{"name": "http", "containerPort": 8000}]}],
        },
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
    })
}

/// Two namespaces, four local pods, and a NetworkPolicy isolating `backend`: only `frontend`
/// (same namespace) may reach it, on 8000.
fn seed(server: &ApiServer) {
    server.apply(json!({"kind": "Namespace", "metadata": {"name": "default"}}));
    server.apply(json!({
        "kind": "Namespace",
        "metadata": {"name": "monitoring", "labels": {"team": "ops"}},
    }));
    server.apply(pod(
        "default",
        "frontend",
        json!({"app": "frontend"}),
        FRONTEND,
    ));
    server.apply(pod(
        "default",
        "backend",
        json!({"app": "backend"}),
        BACKEND,
    ));
    server.apply(pod("default", "other", json!({}), OTHER));
    server.apply(pod(
        "monitoring",
        "scraper",
        json!({"app": "scraper"}),
        SCRAPER,
    ));
    server.apply(json!({
        "kind": "NetworkPolicy",
        "metadata": {"name": "backend-from-frontend", "namespace": "default"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "backend"}},
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": [{"podSelector": {"matchLabels": {"app": "frontend"}}}],
                "ports": [{"protocol": "TCP", "port": 8000}],
            }],
        },
    }));
}

/// Admin tier, v1alpha2: the ops namespaces' pods reach `backend` on 8000 (`action`), whatever
/// its NetworkPolicy says.
fn ops_to_backend(action: &str, priority: Value) -> Value {
    json!({
        "apiVersion": CNP_API_VERSION,
        "kind": "ClusterNetworkPolicy",
        "metadata": {"name": "ops-to-backend", "labels": {"owner": "sec"}},
        "spec": {
            "tier": "Admin",
            "priority": priority,
            "subject": {"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "backend"}}}},
            "ingress": [{
                "name": "ops",
                "action": action,
                "from": [{"namespaces": {"matchLabels": {"team": "ops"}}}],
                "protocols": [{"tcp": {"destinationPort": {"number": 8000}}}],
            }],
        },
        // Written by an implementation; the agent never reads it.
        "status": {"conditions": []},
    })
}

/// Admin tier, v1alpha1: nobody labelled `app: frontend` reaches `backend`.
fn block_frontend() -> Value {
    json!({
        "apiVersion": ANP_API_VERSION,
        "kind": "AdminNetworkPolicy",
        "metadata": {"name": "block-frontend"},
        "spec": {
            "priority": 5,
            "subject": {"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "backend"}}}},
            "ingress": [{
                "action": "Deny",
                "from": [{"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "frontend"}}}}],
                "ports": [{"portNumber": {"protocol": "TCP", "port": 8000}}],
            }],
        },
    })
}

/// Baseline tier, v1alpha1 (the singleton): `default`'s pods accept nothing from `monitoring`,
/// unless a NetworkPolicy of theirs says otherwise.
fn baseline_deny_monitoring() -> Value {
    json!({
        "apiVersion": ANP_API_VERSION,
        "kind": "BaselineAdminNetworkPolicy",
        "metadata": {"name": "default"},
        "spec": {
            "subject": {"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": "default"}}},
            "ingress": [{
                "name": "no-monitoring",
                "action": "Deny",
                "from": [{"namespaces": {"matchLabels": {"team": "ops"}}}],
            }],
        },
    })
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

/// Whether `dst`'s ingress check lets a TCP connection from `src` to `port` in.
fn ingress(maps: &MapContents, src: &str, dst: &str, port: u16) -> bool {
    let packet = Packet {
        src: ip(src),
        dst: ip(dst),
        protocol: 6,
        sport: 40_000,
        dport: port,
    };
    replay::allows(maps, &packet, Direction::ToEndpoint)
}

/// The (kind, name) of every administrators' policy in force.
fn cluster_policies(snapshot: &Snapshot) -> Vec<(ApiKind, String)> {
    snapshot.cluster.cluster_policies.keys().cloned().collect()
}

/// Every request made to network-policy-api's group (lists and watches).
fn group_requests(server: &ApiServer) -> Vec<(String, String, String)> {
    server
        .requests()
        .into_iter()
        .filter(|(group, resource, _)| group == GROUP || resource.contains(GROUP))
        .collect()
}

#[tokio::test]
async fn cluster_policies_listed_and_watched_are_compiled_in_their_tiers() {
    let server = ApiServer::start().await;
    seed(&server);
    // Listed: present before the datastore starts.
    server.apply(ops_to_backend("Accept", json!(10)));
    let mut h = Datastore::start(
        server,
        "kubernetes-cluster-policy-test",
        // Short, so that a CRD installed during the test is found quickly.
        Duration::from_millis(100),
    );

    let (snapshot, maps) = h.compiled().await;
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    assert_eq!(
        cluster_policies(&snapshot),
        [(ApiKind::ClusterNetworkPolicy, "ops-to-backend".to_owned())]
    );
    // The Admin Accept comes before backend's NetworkPolicy, which would deny the scraper.
    assert!(ingress(&maps, SCRAPER, BACKEND, 8000));
    assert!(!ingress(&maps, SCRAPER, BACKEND, 8001), "only 8000");
    assert!(ingress(&maps, FRONTEND, BACKEND, 8000));
    assert!(!ingress(&maps, OTHER, BACKEND, 8000));
    assert!(ingress(&maps, SCRAPER, FRONTEND, 80), "frontend is open");
    for resource in Resource::CLUSTER_POLICY {
        assert_eq!(h.store.progress().lists(resource), 1, "{resource:?}");
    }

    // Watched: added while the datastore runs, one of each v1alpha1 kind.
    h.server.apply(block_frontend());
    h.server.apply(baseline_deny_monitoring());
    let (snapshot, maps) = h.compiled().await;
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    assert_eq!(
        cluster_policies(&snapshot),
        [
            (ApiKind::ClusterNetworkPolicy, "ops-to-backend".to_owned()),
            (ApiKind::AdminNetworkPolicy, "block-frontend".to_owned()),
            (ApiKind::BaselineAdminNetworkPolicy, "default".to_owned()),
        ]
    );
    // The AdminNetworkPolicy's Deny overrides backend's NetworkPolicy allowing frontend.
    assert!(!ingress(&maps, FRONTEND, BACKEND, 8000));
    // The Baseline deny applies where no NetworkPolicy selects the pod (frontend) ...
    assert!(!ingress(&maps, SCRAPER, FRONTEND, 80));
    assert!(ingress(&maps, OTHER, FRONTEND, 80), "only from monitoring");
    // ... and not before the Admin tier, whose Accept still lets the scraper into backend.
    assert!(ingress(&maps, SCRAPER, BACKEND, 8000));

    // Modified: the Admin rule turns to Deny. Deleted: the AdminNetworkPolicy.
    h.server.apply(ops_to_backend("Deny", json!(10)));
    h.server
        .delete(Kind::AdminNetworkPolicy, "", "block-frontend");
    let (snapshot, maps) = h.compiled().await;
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    assert_eq!(snapshot.cluster.cluster_policies.len(), 2);
    assert!(!ingress(&maps, SCRAPER, BACKEND, 8000));
    assert!(ingress(&maps, FRONTEND, BACKEND, 8000));
    // Resumed watches, no relist: every change came through the watch.
    for resource in Resource::CLUSTER_POLICY {
        assert_eq!(h.store.progress().lists(resource), 1, "{resource:?}");
    }
    // Only lists and watches of the three resources were asked for.
    let expected: BTreeSet<_> = [
        "clusternetworkpolicies",
        "adminnetworkpolicies",
        "baselineadminnetworkpolicies",
    ]
    .into_iter()
    .flat_map(|r| ["list", "watch"].map(|v| (GROUP.to_owned(), r.to_owned(), v.to_owned())))
    .collect();
    assert_eq!(
        group_requests(&h.server)
            .into_iter()
            .collect::<BTreeSet<_>>(),
        expected
    );
}

#[tokio::test]
async fn an_invalid_cluster_policy_is_reported_with_its_field_and_the_accepted_one_stays() {
    let server = ApiServer::start().await;
    seed(&server);
    server.apply(ops_to_backend("Accept", json!(10)));
    let mut h = Datastore::start(
        server,
        "kubernetes-cluster-policy-test",
        // Short, so that a CRD installed during the test is found quickly.
        Duration::from_millis(100),
    );
    let (accepted, _) = h.compiled().await;
    assert!(accepted.errors.is_empty(), "{:?}", accepted.errors);

    // A priority out of range on the accepted policy, and a new AdminNetworkPolicy with a peer
    // this agent refuses (Node objects are not watched).
    h.server.apply(ops_to_backend("Deny", json!(1001)));
    let mut nodes = block_frontend();
    nodes["metadata"]["name"] = json!("to-nodes");
    nodes["spec"]["egress"] = json!([{
        "action": "Deny",
        "to": [{"nodes": {"matchLabels": {"role": "control-plane"}}}],
    }]);
    h.server.apply(nodes);
    let (snapshot, maps) = h.compiled().await;
    assert_eq!(
        snapshot.cluster.cluster_policies, accepted.cluster.cluster_policies,
        "the accepted version stays in force; the never-valid one is absent"
    );
    assert_eq!(snapshot.cluster.calico, accepted.cluster.calico);
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
                Some("ClusterNetworkPolicy ops-to-backend"),
                Some("spec.priority"),
            ),
            (
                "kubernetes",
                Some("AdminNetworkPolicy to-nodes"),
                Some("spec.egress[0].to[0].nodes"),
            ),
        ]
    );
    assert!(
        snapshot.errors[0]
            .message
            .ends_with("the previously accepted version stays in force"),
        "{}",
        snapshot.errors[0].message
    );
    assert!(!snapshot.errors[1].message.contains("previously accepted"));
    assert_ne!(snapshot.digest, accepted.digest, "the new versions count");
    // Still the accepted Accept, not the rejected Deny.
    assert!(ingress(&maps, SCRAPER, BACKEND, 8000));

    // Fixed: the new version replaces the old one and the errors go.
    h.server.apply(ops_to_backend("Deny", json!(1000)));
    h.server.delete(Kind::AdminNetworkPolicy, "", "to-nodes");
    let (snapshot, maps) = h.compiled().await;
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    let policy = &snapshot.cluster.cluster_policies
        [&(ApiKind::ClusterNetworkPolicy, "ops-to-backend".to_owned())];
    assert_eq!(policy.priority, 1000);
    assert!(!ingress(&maps, SCRAPER, BACKEND, 8000));
}

#[tokio::test]
async fn without_the_crds_the_datastore_syncs_and_finds_them_once_installed() {
    let server = ApiServer::start().await;
    server.serve_group_version(CNP_API_VERSION, false);
    server.serve_group_version(ANP_API_VERSION, false);
    seed(&server);
    // Kept by the server, not served while the CRDs are "not installed".
    server.apply(ops_to_backend("Accept", json!(10)));
    server.apply(baseline_deny_monitoring());
    let mut h = Datastore::start(
        server,
        "kubernetes-cluster-policy-test",
        // Short, so that a CRD installed during the test is found quickly.
        Duration::from_millis(100),
    );

    // Synced (what makes the agent ready) and enforcing the Kubernetes policy.
    let (snapshot, maps) = h.compiled().await;
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    assert!(cluster_policies(&snapshot).is_empty());
    assert!(h.store.is_synced());
    for resource in Resource::ALL {
        assert!(h.store.progress().synced(resource), "{resource:?}");
    }
    assert!(!ingress(&maps, SCRAPER, BACKEND, 8000));
    assert!(ingress(&maps, FRONTEND, BACKEND, 8000));
    assert!(ingress(&maps, SCRAPER, FRONTEND, 80));
    // Discovery said so first: nothing was listed or watched from the absent group.
    assert_eq!(group_requests(&h.server), []);
    assert!(h.server.discoveries_of(CNP_API_VERSION) >= 1);
    assert!(h.server.discoveries_of(ANP_API_VERSION) >= 1);

    // ClusterNetworkPolicy's CRD is installed later: the periodic rediscovery finds it, and
    // only it.
    let discoveries = h.server.discoveries_of(CNP_API_VERSION);
    h.server.serve_group_version(CNP_API_VERSION, true);
    let (snapshot, maps) = h.compiled().await;
    assert_eq!(
        cluster_policies(&snapshot),
        [(ApiKind::ClusterNetworkPolicy, "ops-to-backend".to_owned())]
    );
    assert!(h.server.discoveries_of(CNP_API_VERSION) > discoveries);
    assert!(h.server.lists(Kind::ClusterNetworkPolicy) >= 1);
    assert_eq!(h.server.lists(Kind::BaselineAdminNetworkPolicy), 0);
    assert!(ingress(&maps, SCRAPER, BACKEND, 8000));
    assert!(ingress(&maps, SCRAPER, FRONTEND, 80));

    // Then the v1alpha1 CRDs.
    h.server.serve_group_version(ANP_API_VERSION, true);
    let (snapshot, maps) = h.compiled().await;
    assert_eq!(snapshot.cluster.cluster_policies.len(), 2);
    assert!(!ingress(&maps, SCRAPER, FRONTEND, 80));

    // ClusterNetworkPolicy's CRD deleted: its watcher's 404 empties its store; the rest stays.
    h.server.serve_group_version(CNP_API_VERSION, false);
    let (snapshot, maps) = h.compiled().await;
    assert_eq!(
        cluster_policies(&snapshot),
        [(ApiKind::BaselineAdminNetworkPolicy, "default".to_owned())]
    );
    assert!(!ingress(&maps, SCRAPER, BACKEND, 8000));
    assert!(!ingress(&maps, SCRAPER, FRONTEND, 80));
    assert!(h.store.is_synced());
}

#[tokio::test]
async fn a_failing_discovery_keeps_the_datastore_from_syncing() {
    // Discovery that fails otherwise than with a 404 (here: the server is unreachable) is not
    // "no CRDs": the resources stay unsynced, so nothing would be programmed.
    let server = ApiServer::start().await;
    seed(&server);
    server.apply(ops_to_backend("Accept", json!(10)));
    server.stop();
    let mut h = Datastore::start(
        server,
        "kubernetes-cluster-policy-test",
        // Short, so that a CRD installed during the test is found quickly.
        Duration::from_millis(100),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!h.store.is_synced());
    for resource in Resource::CLUSTER_POLICY {
        assert!(!h.store.progress().synced(resource), "{resource:?}");
        assert!(h.store.progress().errors(resource) > 0, "{resource:?}");
    }
    h.server.restart().await;
    let (snapshot, _) = h.compiled().await;
    assert_eq!(cluster_policies(&snapshot).len(), 1);
}

/// `deploy/network-policy-api/`: upstream's CRDs for exactly the kinds, versions and plurals
/// the watchers read, all cluster-scoped, listed by their kustomization, and not applied by
/// `deploy/kustomization.yaml` (they are optional).
#[test]
fn the_optional_crds_define_what_the_watchers_read() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/network-policy-api");
    let kustomization: Value = serde_yaml::from_str(
        &fs::read_to_string(dir.join("kustomization.yaml")).expect("kustomization.yaml"),
    )
    .expect("kustomization YAML");
    let files: Vec<&str> = kustomization["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut defined = BTreeSet::new();
    for file in &files {
        let text = fs::read_to_string(dir.join(file)).expect("CRD file");
        let crd: CustomResourceDefinition =
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        let spec = &crd.spec;
        assert_eq!(spec.group, GROUP);
        assert_eq!(spec.scope, "Cluster", "{file}");
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some(format!("{}.{}", spec.names.plural, spec.group).as_str())
        );
        let annotations = crd.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(
            annotations
                .get("policy.networking.k8s.io/channel")
                .map(String::as_str),
            Some("standard"),
            "{file}"
        );
        for version in &spec.versions {
            assert!(version.schema.is_some(), "{file}: a schema");
            if version.served {
                defined.insert((
                    spec.names.kind.clone(),
                    format!("{}/{}", spec.group, version.name),
                    spec.names.plural.clone(),
                ));
            }
        }
    }
    let watched: BTreeSet<_> = Kind::CLUSTER_POLICY
        .into_iter()
        .map(|k| {
            (
                k.name().to_owned(),
                k.api_version().to_owned(),
                k.rbac().1.to_owned(),
            )
        })
        .collect();
    assert_eq!(defined, watched);
    // The agent's own kinds agree with the stand-in's.
    let agent: BTreeSet<_> = ApiKind::ALL
        .into_iter()
        .map(|k| {
            (
                k.as_str().to_owned(),
                k.api_version(),
                k.plural().to_owned(),
            )
        })
        .collect();
    assert_eq!(agent, watched);

    let top: Value = serde_yaml::from_str(
        &fs::read_to_string(dir.join("../kustomization.yaml")).expect("deploy/kustomization.yaml"),
    )
    .expect("kustomization YAML");
    let listed: Vec<&str> = top["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        listed.iter().all(|r| !r.contains("network-policy-api")),
        "{listed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_is_ready_without_the_crds_and_picks_them_up_when_installed() {
    let Some(_turn) =
        crate::agent_turn("the_agent_is_ready_without_the_crds_and_picks_them_up_when_installed")
            .await
    else {
        return;
    };
    // A cluster with none of the optional CRDs, Calico's included.
    let server = ApiServer::start().await;
    for api_version in [CALICO_API_VERSION, CNP_API_VERSION, ANP_API_VERSION] {
        server.serve_group_version(api_version, false);
    }
    seed(&server);
    let mut agent = Agent::start(
        &server,
        "cluster-policy-agent",
        // The default (60 s) would make this test wait a minute for the CRDs.
        &["--crd-rediscovery-seconds", "1"],
    );

    // Ready, with the Kubernetes objects programmed.
    agent
        .wait_for("/readyz", Duration::from_secs(30), async |a| {
            a.get("/readyz").await.is_some_and(|(code, _)| code == 200)
        })
        .await;
    let status = agent.status().expect("status after the first sync");
    assert_eq!(status.digest, digest_of(&server));
    assert!(status.errors.is_empty(), "{:?}", status.errors);
    let local: BTreeSet<IpAddr> = [FRONTEND, BACKEND, OTHER, SCRAPER]
        .iter()
        .map(|a| ip(a))
        .collect();
    assert_eq!(pinned_endpoints(&agent.pins), local);
    let (_, metrics) = agent.get("/metrics").await.expect("metrics");
    assert_eq!(
        metric(
            &metrics,
            "palisade_datastore_lists_total{resource=\"clusternetworkpolicies.policy.networking.k8s.io\"}"
        ),
        Some(1.0),
        "not served, so listed (empty) once: {metrics}"
    );
    assert_eq!(group_requests(&server), []);

    // The CRDs are installed and policies written: the agent's periodic rediscovery (1 s here)
    // finds them, and the status file names the rejected one.
    server.apply(ops_to_backend("Accept", json!(10)));
    let mut invalid = ops_to_backend("Accept", json!(10));
    invalid["metadata"]["name"] = json!("no-tier");
    invalid["spec"]["tier"] = json!("Emergency");
    server.apply(invalid);
    server.apply(baseline_deny_monitoring());
    server.serve_group_version(CNP_API_VERSION, true);
    server.serve_group_version(ANP_API_VERSION, true);
    let expected = digest_of(&server);
    agent
        .wait_for("the cluster policies", Duration::from_secs(90), async |a| {
            a.status().is_some_and(|s| s.digest == expected)
        })
        .await;
    let status = agent.status().expect("status");
    let errors: Vec<_> = status
        .errors
        .iter()
        .map(|e| (e.source.as_str(), e.object.as_deref(), e.field.as_deref()))
        .collect();
    assert_eq!(
        errors,
        [(
            "kubernetes",
            Some("ClusterNetworkPolicy no-tier"),
            Some("spec.tier")
        )]
    );
    // The programmed rule tables name them by their own kind and name.
    let programmed: BTreeSet<&str> = status
        .tables
        .values()
        .flat_map(|t| t.policies.iter().map(String::as_str))
        .collect();
    for name in [
        "ClusterNetworkPolicy ops-to-backend",
        "BaselineAdminNetworkPolicy default",
    ] {
        assert!(programmed.contains(name), "{name} not in {programmed:?}");
    }
    // And the status file says which are accepted and enforced.
    let states: Vec<_> = status
        .cluster_policies
        .iter()
        .map(|s| (s.kind.as_str(), s.name.as_str(), s.accepted, s.enforced))
        .collect();
    assert_eq!(
        states,
        [
            ("BaselineAdminNetworkPolicy", "default", true, true),
            ("ClusterNetworkPolicy", "no-tier", false, false),
            ("ClusterNetworkPolicy", "ops-to-backend", true, true),
        ]
    );
    assert_eq!(agent.get("/readyz").await.map(|r| r.0), Some(200));
}
