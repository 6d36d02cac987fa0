//! The seed cluster on the stand-in, and verdicts and endpoints read off the compiled maps.

use crate::{harness::NODE, kubernetes_apiserver};

use std::net::IpAddr;

use kubernetes_apiserver::{ApiServer, Kind};
use policy_agent::{
    compiler::MapContents,
    datastore::kubernetes::Resource,
    replay::{self, Direction, Packet},
};
use serde_json::{Value, json};

pub(super) const FRONTEND: &str = "10.42.0.10";
pub(super) const BACKEND: &str = "10.42.0.11";
pub(super) const OTHER: &str = "10.42.0.12";
pub(super) const METRICS: &str = "10.42.0.20";
/// A pod on another node: a peer, never an endpoint here.
pub(super) const REMOTE: &str = "10.42.1.10";

pub(super) fn namespace(name: &str, labels: Value) -> Value {
    json!({"kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

pub(super) fn pod(namespace: &str, name: &str, labels: Value, ip: &str, node: &str) -> Value {
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

pub(super) fn deny_all_ingress(namespace: &str, name: &str, app: &str) -> Value {
    json!({
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"podSelector": {"matchLabels": {"app": app}}, "policyTypes": ["Ingress"]},
    })
}

pub(super) fn allow_from(name: &str, app: &str, from: Value, port: Value) -> Value {
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
pub(super) fn seed(server: &ApiServer) {
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
pub(super) const RESOURCES: [(Resource, Kind); 5] = [
    (Resource::Namespaces, Kind::Namespace),
    (Resource::Pods, Kind::Pod),
    (Resource::NetworkPolicies, Kind::NetworkPolicy),
    (Resource::Services, Kind::Service),
    (Resource::EndpointSlices, Kind::EndpointSlice),
];

pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

/// Whether `dst`'s ingress check lets a TCP connection from `src` to `port` in.
pub(super) fn ingress(maps: &MapContents, src: &str, dst: &str, port: u16) -> bool {
    let packet = Packet {
        src: ip(src),
        dst: ip(dst),
        protocol: 6,
        sport: 40_000,
        dport: port,
    };
    replay::allows(maps, &packet, Direction::ToEndpoint)
}

pub(super) fn endpoints(maps: &MapContents) -> Vec<IpAddr> {
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

pub(super) fn ips(list: &[&str]) -> Vec<IpAddr> {
    let mut addrs: Vec<IpAddr> = list.iter().map(|s| ip(s)).collect();
    addrs.sort();
    addrs
}
