//! What rules' selectors and services match besides pods: network sets, host endpoints and
//! the EndpointSlices of the Services rules name.

use proptest::{prelude::*, sample::select};
use serde_json::{Value, json};

use super::policies::{SERVICES, nets};
use crate::generate::NAMESPACES;

pub(super) fn network_set(index: usize) -> impl Strategy<Value = Value> {
    (
        prop::option::of(select(NAMESPACES.to_vec())),
        select(vec!["blocked", "dns"]),
        any::<bool>(),
    )
        .prop_flat_map(move |(namespace, role, v6)| {
            nets(v6).prop_map(move |nets| {
                let mut metadata =
                    json!({ "name": format!("set{index}"), "labels": { "role": role } });
                let kind = match namespace {
                    Some(ns) => {
                        metadata["namespace"] = json!(ns);
                        "NetworkSet"
                    }
                    None => "GlobalNetworkSet",
                };
                json!({
                    "apiVersion": "projectcalico.org/v3",
                    "kind": kind,
                    "metadata": metadata,
                    "spec": { "nets": nets },
                })
            })
        })
}

/// A host endpoint as a peer: labelled like pods and sets, expecting outside addresses the
/// flows use. `interfaceName: "*"` (all interfaces) is one
/// Palisade does not enforce on, and the reference model enforces on none: both judge only
/// the traffic of others towards it and from it.
pub(super) fn host_endpoint(index: usize) -> impl Strategy<Value = Value> {
    (
        select(vec!["blocked", "dns", "bare-metal"]),
        prop::option::of(select(vec!["a", "b"])),
        prop::collection::vec(select(crate::generate::EXTERNAL.to_vec()), 1..3),
        // Named ports as the rules name them (`http`, `dns`, `web`), at numbers the flows use.
        prop::option::of(select(vec![
            json!([{ "name": "http", "port": 8080, "protocol": "TCP" }]),
            json!([{ "name": "dns", "port": 53, "protocol": "UDP" }, { "name": "web", "port": 80, "protocol": "TCP" }]),
        ])),
    )
        .prop_map(move |(role, app, ips, ports)| {
            let mut labels = json!({ "role": role });
            if let Some(app) = app {
                labels["app"] = json!(app);
            }
            let mut ips = ips;
            ips.sort_unstable();
            ips.dedup();
            let mut spec = json!({ "node": "elsewhere", "interfaceName": "*", "expectedIPs": ips });
            if let Some(ports) = &ports {
                spec["ports"] = ports.clone();
            }
            json!({
                "apiVersion": "projectcalico.org/v3",
                "kind": "HostEndpoint",
                "metadata": { "name": format!("host{index}"), "labels": labels },
                "spec": spec,
            })
        })
}

/// The ports of a generated EndpointSlice: at the flows' ports, over each protocol, and
/// none, or one without a number (no port for Calico's destination match).
pub(super) fn slice_ports() -> impl Strategy<Value = Value> {
    select(vec![
        json!([{ "name": "http", "port": 80, "protocol": "TCP" }]),
        json!([{ "port": 53, "protocol": "UDP" }]),
        json!([{ "name": "a", "port": 8080 }, { "name": "b", "port": 53, "protocol": "UDP" }]),
        json!([{ "port": 9000, "protocol": "SCTP" }, { "name": "x", "port": 443, "protocol": "TCP" }]),
        json!([]),
        json!([{ "name": "all" }]),
    ])
}

/// An EndpointSlice before its addresses are known: namespace, Service, family, the
/// picks of its endpoints' addresses (of that family, from the world's), their ports, and
/// whether the endpoints are ready (Calico does not look).
type SliceSpec = (
    &'static str,
    &'static str,
    bool,
    Vec<prop::sample::Index>,
    Value,
    bool,
);

pub(super) fn slice_spec() -> impl Strategy<Value = SliceSpec> {
    (
        select(vec![
            NAMESPACES[0],
            NAMESPACES[0],
            NAMESPACES[1],
            NAMESPACES[2],
        ]),
        select(SERVICES.to_vec()),
        prop::bool::weighted(0.3),
        prop::collection::vec(any::<prop::sample::Index>(), 1..6),
        slice_ports(),
        prop::bool::weighted(0.8),
    )
}

/// The addresses of one family the picks choose among the world's; none when it has none.
pub(super) fn pick_addresses(
    addrs: &[std::net::IpAddr],
    v6: bool,
    picks: &[prop::sample::Index],
) -> Vec<String> {
    let family: Vec<_> = addrs.iter().filter(|a| a.is_ipv6() == v6).collect();
    if family.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<String> = picks
        .iter()
        .map(|pick| pick.get(&family).to_string())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// An EndpointSlice object as the endpointslice controller writes one.
pub(super) fn endpoint_slice(
    index: usize,
    spec: &SliceSpec,
    addrs: &[std::net::IpAddr],
) -> Option<k8s_openapi::api::discovery::v1::EndpointSlice> {
    let (namespace, service, v6, picks, ports, ready) = spec;
    let addresses = pick_addresses(addrs, *v6, picks);
    if addresses.is_empty() {
        return None;
    }
    let endpoints: Vec<Value> = addresses
        .iter()
        .map(|a| json!({ "addresses": [a], "conditions": { "ready": ready } }))
        .collect();
    let value = json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": format!("{service}-{index}"),
            "namespace": namespace,
            "labels": { "kubernetes.io/service-name": service },
        },
        "addressType": if *v6 { "IPv6" } else { "IPv4" },
        "endpoints": endpoints,
        "ports": ports,
    });
    Some(serde_json::from_value(value).expect("a generated EndpointSlice"))
}
