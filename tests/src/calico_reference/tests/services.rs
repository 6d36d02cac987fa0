//! `services` matches: a Service's EndpointSlice addresses (and, as a destination, their
//! ports) in the rule's namespace.

use policy_agent::calico::resources::Protocol;

use super::*;

fn slice(yaml: &str) -> k8s_openapi::api::discovery::v1::EndpointSlice {
    serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{e}: {yaml}"))
}

/// `web-svc` in prod: web at 8080/TCP and 10.1.0.9 at 9090/UDP in a second slice;
/// `clients` in prod: the dev client (a slice may list any address), no ports, not ready;
/// `clients` in dev: the db address, which a prod policy's `clients` does not mean.
fn with_services(yaml: &str) -> CalicoWorld {
    let mut world = with(yaml);
    world.endpoint_slices = vec![
        slice(
            "metadata: {name: web-svc-a, namespace: prod, labels: {kubernetes.io/service-name: web-svc}}
addressType: IPv4
endpoints: [{addresses: [10.1.0.1]}]
ports: [{name: http, port: 8080, protocol: TCP}, {name: all}]",
        ),
        slice(
            "metadata: {name: web-svc-b, namespace: prod, labels: {kubernetes.io/service-name: web-svc}}
addressType: IPv4
endpoints: [{addresses: [10.1.0.9]}]
ports: [{port: 9090, protocol: UDP}]",
        ),
        slice(
            "metadata: {name: clients-x, namespace: prod, labels: {kubernetes.io/service-name: clients}}
addressType: IPv4
endpoints: [{addresses: [10.2.0.1], conditions: {ready: false}}]",
        ),
        slice(
            "metadata: {name: clients-y, namespace: dev, labels: {kubernetes.io/service-name: clients}}
addressType: IPv4
endpoints: [{addresses: [10.1.0.2]}]",
        ),
    ];
    world
}

#[test]
fn destination_services_match_endpoint_addresses_with_their_ports() {
    let world = with_services(
        "apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: client-out, namespace: dev}
spec:
  selector: app == 'client'
  egress:
  - {action: Allow, destination: {services: {name: web-svc, namespace: prod}}}
",
    );
    assert!(allowed(&world, tcp(CLIENT, WEB, 8080)));
    // Another port, another protocol, another slice's port: the tier's default denies.
    assert!(!allowed(&world, tcp(CLIENT, WEB, 80)));
    assert!(!allowed(&world, Packet::udp(ip(CLIENT), ip(WEB), 8080)));
    assert!(!allowed(&world, Packet::udp(ip(CLIENT), ip(WEB), 9090)));
    assert!(allowed(
        &world,
        Packet::udp(ip(CLIENT), ip("10.1.0.9"), 9090)
    ));
    assert!(!allowed(&world, tcp(CLIENT, "10.1.0.9", 9090)));
    // Not an endpoint of the Service.
    assert!(!allowed(&world, tcp(CLIENT, DB, 8080)));
    let decision = world.verdict(&tcp(CLIENT, DB, 8080));
    let text = decision.to_string();
    assert!(text.contains("no match (destination.services)"), "{text}");
}

#[test]
fn source_services_match_endpoint_addresses_only_in_the_namespace() {
    // The namespace defaults to the policy's (prod): prod's `clients`, not dev's.
    let world = with_services(
        "apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: web-in, namespace: prod}
spec:
  selector: app == 'web'
  ingress:
  - {action: Allow, protocol: TCP, source: {services: {name: clients}, ports: ['1000:2000']}}
",
    );
    // Any destination port; the rule's source ports still apply; readiness is not read.
    assert!(allowed(
        &world,
        Packet::new(ip(CLIENT), ip(WEB), Protocol::TCP, 1500, 443)
    ));
    assert!(!allowed(
        &world,
        Packet::new(ip(CLIENT), ip(WEB), Protocol::TCP, 3000, 443)
    ));
    assert!(!allowed(
        &world,
        Packet::new(ip(DB), ip(WEB), Protocol::TCP, 1500, 443)
    ));
    // A Service without EndpointSlices matches nothing.
    let world = with_services(
        "apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: web-in, namespace: prod}
spec:
  selector: app == 'web'
  ingress:
  - {action: Deny, source: {services: {name: nobody}}}
  - {action: Allow}
",
    );
    assert!(allowed(&world, tcp(CLIENT, WEB, 80)));
}
