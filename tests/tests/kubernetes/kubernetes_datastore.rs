//! The Kubernetes datastore through the real kube client against an in-process stand-in API
//! server speaking the list/watch protocol (see `kubernetes_apiserver`). After every step the
//! test waits until the datastore's digest names exactly the server's object versions, then
//! checks the snapshot against the file datastore fed the same objects (same cluster, same
//! compiled maps) and checks verdicts on the compiled maps with the userspace replay of the
//! datapath's lookups.

use crate::{
    harness::{Datastore, NODE, SETTLE_TIMEOUT},
    kubernetes_apiserver,
};

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    net::IpAddr,
    path::PathBuf,
    time::Duration,
};

use kubernetes_apiserver::{ApiServer, Change, Kind};
use policy_agent::{
    compiler::{Compiler, MapContents, Scope},
    datastore::{Snapshot, kubernetes::Resource},
    replay::{self, Direction, Packet},
    services::{Backend, Frontend, FrontendKind, service_table},
};
use serde_json::{Value, json};

const FRONTEND: &str = "10.42.0.10";
const BACKEND: &str = "10.42.0.11";
const OTHER: &str = "10.42.0.12";
const METRICS: &str = "10.42.0.20";
/// A pod on another node: a peer, never an endpoint here.
const REMOTE: &str = "10.42.1.10";

fn namespace(name: &str, labels: Value) -> Value {
    json!({"kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

fn pod(namespace: &str, name: &str, labels: Value, ip: &str, node: &str) -> Value {
    json!({
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "image": "busybox", "ports": [{"name": "http", "containerPort": 8000}]}],
        },
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
    })
}

fn deny_all_ingress(namespace: &str, name: &str, app: &str) -> Value {
    json!({
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"podSelector": {"matchLabels": {"app": app}}, "policyTypes": ["Ingress"]},
    })
}

fn allow_from(name: &str, app: &str, from: Value, port: Value) -> Value {
    json!({
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "podSelector": {"matchLabels": {"app": app}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [from], "ports": [{"protocol": "TCP", "port": port}]}],
        },
    })
}

/// The seed cluster, one remote pod, a hostNetwork pod and a second namespace.
fn seed(server: &ApiServer) {
    server.apply(namespace("default", json!({})));
    server.apply(namespace("monitoring", json!({"team": "ops"})));
    server.apply(pod(
        "default",
        "frontend",
        json!({"app": "frontend"}),
        FRONTEND,
        NODE,
    ));
    server.apply(pod(
        "default",
        "backend",
        json!({"app": "backend"}),
        BACKEND,
        NODE,
    ));
    server.apply(pod("default", "other", json!({}), OTHER, NODE));
    server.apply(pod(
        "monitoring",
        "scraper",
        json!({"app": "scraper"}),
        METRICS,
        NODE,
    ));
    server.apply(pod(
        "default",
        "remote-frontend",
        json!({"app": "frontend"}),
        REMOTE,
        "node-b",
    ));
    let mut host = pod(
        "default",
        "node-exporter",
        json!({"app": "frontend"}),
        "10.42.0.99",
        NODE,
    );
    host["spec"]["hostNetwork"] = json!(true);
    server.apply(host);
    server.apply(deny_all_ingress(
        "default",
        "deny-all-ingress-to-backend",
        "backend",
    ));
    server.apply(allow_from(
        "allow-frontend-to-backend",
        "backend",
        json!({"podSelector": {"matchLabels": {"app": "frontend"}}}),
        json!(8000),
    ));
}

/// The Kubernetes resources and the stand-in's kinds for them.
const RESOURCES: [(Resource, Kind); 5] = [
    (Resource::Namespaces, Kind::Namespace),
    (Resource::Pods, Kind::Pod),
    (Resource::NetworkPolicies, Kind::NetworkPolicy),
    (Resource::Services, Kind::Service),
    (Resource::EndpointSlices, Kind::EndpointSlice),
];

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

fn endpoints(maps: &MapContents) -> Vec<IpAddr> {
    let mut addrs: Vec<IpAddr> = maps
        .endpoints
        .keys()
        .map(|k| {
            let v6 = std::net::Ipv6Addr::from(k.addr);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        })
        .collect();
    addrs.sort();
    addrs
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    let mut addrs: Vec<IpAddr> = list.iter().map(|s| ip(s)).collect();
    addrs.sort();
    addrs
}

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

#[tokio::test]
async fn compile_prints_the_same_maps_from_the_api_server_as_from_files() {
    let server = ApiServer::start().await;
    seed(&server);
    let h = Datastore::start(server, "kubernetes-test", Duration::from_millis(200));
    let kubeconfig = h.dir.join("kubeconfig");
    fs::write(&kubeconfig, h.server.kubeconfig()).expect("kubeconfig");
    let files = h.dir.join("manifests");
    fs::create_dir_all(&files).expect("manifest directory");
    fs::write(files.join("cluster.yaml"), h.server.manifests()).expect("manifests");

    let compile = |datastore: PathBuf| {
        let kubeconfig = kubeconfig.clone();
        // The server runs on this test's runtime: the binary is waited for off it.
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(crate::agent_binary())
                .arg("compile")
                .arg("--datastore")
                .arg(datastore)
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .args(["--node-name", NODE])
                .output()
                .expect("running policy-agent compile")
        })
    };
    let from_api = compile(PathBuf::from("kubernetes"))
        .await
        .expect("compile task");
    let from_files = compile(files).await.expect("compile task");
    let stdout = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        from_api.status.success(),
        "{}",
        String::from_utf8_lossy(&from_api.stderr)
    );
    assert!(from_files.status.success());
    assert!(
        stdout(&from_api).contains("endpoints (4):"),
        "{}",
        stdout(&from_api)
    );
    assert!(
        stdout(&from_api).contains("NetworkPolicy default/allow-frontend-to-backend ingress[0]")
    );
    assert_eq!(stdout(&from_api), stdout(&from_files));
}

/// This node's address, where node ports are captured.
const NODE_ADDRESS: &str = "198.18.0.1";
const BACKEND_VIP: &str = "10.96.0.20";

fn service(name: &str, cluster_ip: &str, app: &str, spec: Value) -> Value {
    let mut object = json!({
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "clusterIP": cluster_ip,
            "selector": {"app": app},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    });
    for (key, value) in spec.as_object().into_iter().flatten() {
        object["spec"][key] = value.clone();
    }
    object
}

fn endpoint_slice(name: &str, service: &str, endpoints: Value, port: u16) -> Value {
    json!({
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
    })
}

fn endpoint(ip: &str, node: &str, pod: &str, conditions: Value) -> Value {
    json!({
        "addresses": [ip],
        "conditions": conditions,
        "nodeName": node,
        "targetRef": {"kind": "Pod", "namespace": "default", "name": pod},
    })
}

/// Every frontend of the node's service table: (address, port, kind) -> backends as
/// `addr:port`.
fn frontends(snapshot: &Snapshot) -> BTreeMap<(IpAddr, u16, FrontendKind), BTreeSet<String>> {
    let table = service_table(&snapshot.cluster, Some(NODE), &[ip(NODE_ADDRESS)]);
    table
        .frontends
        .iter()
        .map(|(Frontend { addr, port, .. }, info)| {
            let backends = info
                .backends
                .iter()
                .map(|Backend { addr, port }| format!("{addr}:{port}"))
                .collect();
            ((*addr, *port, info.kind), backends)
        })
        .collect()
}

fn expected(
    list: &[(&str, u16, FrontendKind, &[&str])],
) -> BTreeMap<(IpAddr, u16, FrontendKind), BTreeSet<String>> {
    list.iter()
        .map(|(addr, port, kind, backends)| {
            (
                (ip(addr), *port, *kind),
                backends.iter().map(|b| (*b).to_owned()).collect(),
            )
        })
        .collect()
}

/// The seed, with the `backend` Service (ClusterIP 10.96.0.20, port 80 to the pods' `http`)
/// and its slice holding the backend pod on this node, ready, at 8000.
fn seed_services(server: &ApiServer) {
    seed(server);
    server.apply(service("backend", BACKEND_VIP, "backend", json!({})));
    server.apply(endpoint_slice(
        "backend-1",
        "backend",
        json!([endpoint(BACKEND, NODE, "backend", json!({"ready": true}))]),
        8000,
    ));
}

#[tokio::test]
async fn services_and_endpoint_slices_are_added_changed_and_deleted() {
    use FrontendKind::{ClusterIp, NodePort};
    let server = ApiServer::start().await;
    seed_services(&server);
    let mut h = Datastore::start(server, "kubernetes-test", Duration::from_millis(200));
    let (snapshot, _) = h.compiled().await;
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    assert_eq!(
        frontends(&snapshot),
        expected(&[(BACKEND_VIP, 80, ClusterIp, &["10.42.0.11:8000"])])
    );

    // Add: a second slice with the remote pod.
    h.server.apply(endpoint_slice(
        "backend-2",
        "backend",
        json!([endpoint(REMOTE, "node-b", "remote-frontend", json!({}))]),
        8000,
    ));
    let (snapshot, _) = h.compiled().await;
    assert_eq!(
        frontends(&snapshot),
        expected(&[(
            BACKEND_VIP,
            80,
            ClusterIp,
            &["10.42.0.11:8000", "10.42.1.10:8000"]
        )])
    );

    // Change: the local backend terminates (still serving); the Service becomes a NodePort.
    h.server.apply(endpoint_slice(
        "backend-1",
        "backend",
        json!([endpoint(
            BACKEND,
            NODE,
            "backend",
            json!({"ready": false, "serving": true, "terminating": true})
        )]),
        8000,
    ));
    let mut node_port = service(
        "backend",
        BACKEND_VIP,
        "backend",
        json!({"type": "NodePort"}),
    );
    node_port["spec"]["ports"][0]["nodePort"] = json!(30080);
    h.server.apply(node_port.clone());
    let (snapshot, _) = h.compiled().await;
    assert_eq!(
        frontends(&snapshot),
        expected(&[
            (BACKEND_VIP, 80, ClusterIp, &["10.42.1.10:8000"]),
            (NODE_ADDRESS, 30080, NodePort, &["10.42.1.10:8000"]),
        ])
    );

    // Change: internalTrafficPolicy Local takes this node's terminating backend for the
    // cluster IP; the node port keeps every ready endpoint.
    node_port["spec"]["internalTrafficPolicy"] = json!("Local");
    h.server.apply(node_port.clone());
    let (snapshot, _) = h.compiled().await;
    assert_eq!(
        frontends(&snapshot),
        expected(&[
            (BACKEND_VIP, 80, ClusterIp, &["10.42.0.11:8000"]),
            (NODE_ADDRESS, 30080, NodePort, &["10.42.1.10:8000"]),
        ])
    );

    // A rejected update names the object and field; the accepted version stays.
    let mut bad = node_port.clone();
    bad["spec"]["ports"][0]["targetPort"] = json!(70000);
    h.server.apply(bad);
    let (snapshot, _) = h.compiled().await;
    let rejected: Vec<_> = snapshot
        .errors
        .iter()
        .map(|e| (e.object.as_deref(), e.field.as_deref()))
        .collect();
    assert_eq!(
        rejected,
        [(
            Some("Service default/backend"),
            Some("spec.ports[0].targetPort")
        )]
    );
    assert!(snapshot.errors[0].message.contains("previously accepted"));
    assert_eq!(
        frontends(&snapshot),
        expected(&[
            (BACKEND_VIP, 80, ClusterIp, &["10.42.0.11:8000"]),
            (NODE_ADDRESS, 30080, NodePort, &["10.42.1.10:8000"]),
        ])
    );

    // Delete: the second slice, then the Service (its remaining slice serves nothing).
    h.server.delete(Kind::EndpointSlice, "default", "backend-2");
    let (snapshot, _) = h.compiled().await;
    assert_eq!(
        frontends(&snapshot),
        expected(&[
            (BACKEND_VIP, 80, ClusterIp, &["10.42.0.11:8000"]),
            (NODE_ADDRESS, 30080, NodePort, &["10.42.0.11:8000"]),
        ])
    );
    h.server.delete(Kind::Service, "default", "backend");
    let (snapshot, _) = h.compiled().await;
    assert!(snapshot.cluster.services.is_empty());
    assert_eq!(snapshot.cluster.endpoint_slices.len(), 1);
    assert!(frontends(&snapshot).is_empty());
}

#[tokio::test]
async fn services_and_endpoint_slices_resync_after_a_410_gone() {
    use FrontendKind::ClusterIp;
    let server = ApiServer::start().await;
    seed_services(&server);
    let mut h = Datastore::start(server, "kubernetes-test", Duration::from_millis(200));
    let (before, _) = h.compiled().await;
    h.watching().await;

    // Changes no watch sees: the backend moves to another pod and port, a new selector-less
    // Service gets its own slice, then the watches expire.
    h.server.expire_watches(vec![
        Change::Apply(endpoint_slice(
            "backend-1",
            "backend",
            json!([endpoint(OTHER, NODE, "other", json!({"ready": true}))]),
            8001,
        )),
        Change::Apply(json!({
            "kind": "Service",
            "metadata": {"name": "external-db", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.30", "ports": [{"port": 5432}]},
        })),
        Change::Apply(json!({
            "kind": "EndpointSlice",
            "metadata": {
                "name": "external-db",
                "namespace": "default",
                "labels": {"kubernetes.io/service-name": "external-db"},
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["192.0.2.50"]}],
            "ports": [{"port": 5432}],
        })),
    ]);
    // Until the relists complete the stores hold the old state.
    assert_eq!(h.store.snapshot().cluster, before.cluster);

    let (snapshot, _) = h.compiled().await;
    assert_eq!(
        frontends(&snapshot),
        expected(&[
            (BACKEND_VIP, 80, ClusterIp, &["10.42.0.12:8001"]),
            ("10.96.0.30", 5432, ClusterIp, &["192.0.2.50:5432"]),
        ])
    );
    assert_eq!(
        snapshot.cluster.services[&("default".into(), "external-db".into())].selector,
        None
    );
    for (r, k) in [
        (Resource::Services, Kind::Service),
        (Resource::EndpointSlices, Kind::EndpointSlice),
    ] {
        assert_eq!(h.server.lists(k), 2, "{k:?}: relisted once");
        assert_eq!(h.store.progress().lists(r), 2);
        assert!(h.store.progress().errors(r) >= 1, "{r:?}: the 410 was seen");
    }
}
