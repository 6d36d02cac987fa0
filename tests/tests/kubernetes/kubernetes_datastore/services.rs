//! Services and EndpointSlices through the stand-in: the node's service table follows them.

use crate::{
    harness::{Datastore, NODE},
    kubernetes_apiserver,
};

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    time::Duration,
};

use kubernetes_apiserver::{ApiServer, Change, Kind};
use policy_agent::{
    datastore::{Snapshot, kubernetes::Resource},
    services::{Backend, Frontend, FrontendKind, service_table},
};
use serde_json::{Value, json};

use super::fixtures::{BACKEND, OTHER, REMOTE, ip, seed};

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
