//! A Calico rule's other fields: `notNets`, `notPorts` and `notSelector`, ICMP type and code,
//! named ports, `ipVersion` and `nets`.

use super::*;

#[test]
fn not_nets_not_ports_not_selector() {
    let world = with(&web_ingress(
        "  - {action: Allow, protocol: TCP, source: {notNets: [10.2.0.0/16]}}",
    ));
    assert!(!allowed(&world, tcp(CLIENT, WEB, 80)));
    assert!(allowed(&world, tcp(DB, WEB, 80)));
    assert!(
        !allowed(&world, Packet::udp(ip(DB), ip(WEB), 80)),
        "protocol"
    );

    let world = with(&web_ingress(
        "  - {action: Allow, protocol: TCP, destination: {notPorts: [22, '8000:9000']}}",
    ));
    assert!(allowed(&world, tcp(CLIENT, WEB, 80)));
    assert!(!allowed(&world, tcp(CLIENT, WEB, 8080)));
    assert!(!allowed(&world, tcp(CLIENT, WEB, 22)));
    let decision = world.verdict(&tcp(CLIENT, WEB, 22));
    let trace = decision.ingress.trace().expect("evaluated");
    assert_eq!(
        trace.tiers[0].policies[0].rules[0].mismatch,
        Some("destination.notPorts")
    );

    let world = with(&web_ingress(
        "  - {action: Allow, source: {notSelector: app == 'client'}}",
    ));
    assert!(!allowed(&world, tcp(CLIENT, WEB, 80)));
    assert!(allowed(&world, tcp(DB, WEB, 80)));
    // A global policy's notSelector-only rule matches non-endpoints too.
    assert!(allowed(&world, tcp(EXTERNAL, WEB, 80)));

    // In a namespaced policy, notSelector alone restricts to the policy's namespace.
    let world = with(
        "
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: web-in, namespace: prod}
spec:
  selector: app == 'web'
  ingress:
  - {action: Allow, source: {notSelector: app == 'client'}}
  - action: Deny
",
    );
    assert!(allowed(&world, tcp(DB, WEB, 80)));
    assert!(!allowed(&world, tcp(EXTERNAL, WEB, 80)));
    assert!(!allowed(&world, tcp(CLIENT, WEB, 80)));
}

#[test]
fn icmp_type_and_code() {
    let world = with(&web_ingress(
        "  - {action: Allow, protocol: ICMP, icmp: {type: 8, code: 0}}",
    ));
    let icmp = |t, c| Packet::icmp(ip(CLIENT), ip(WEB), t, c);
    assert!(allowed(&world, icmp(8, 0)));
    assert!(!allowed(&world, icmp(8, 1)));
    assert!(!allowed(&world, icmp(0, 0)));
    assert!(!allowed(&world, tcp(CLIENT, WEB, 80)));

    let world = with(&web_ingress(
        "  - {action: Allow, protocol: ICMP, notICMP: {type: 8}}",
    ));
    assert!(allowed(&world, icmp(0, 0)));
    assert!(!allowed(&world, icmp(8, 0)));
    assert!(!allowed(&world, icmp(8, 3)));

    let world = with(&web_ingress(
        "  - {action: Allow, protocol: ICMP, icmp: {type: 3}}",
    ));
    assert!(allowed(&world, icmp(3, 4)));
    assert!(!allowed(&world, icmp(4, 3)));
}

#[test]
fn named_ports_resolve_against_the_owning_pod() {
    let world = with(
        "
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: in}
spec:
  selector: app in {'web', 'db'}
  ingress:
  - {action: Allow, protocol: TCP, destination: {ports: [http]}}
  - action: Deny
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: out}
spec:
  selector: app == 'client'
  types: [Egress]
  egress:
  - {action: Allow, protocol: TCP, destination: {ports: [http]}}
  - action: Deny
",
    );
    assert!(allowed(&world, tcp(CLIENT, WEB, 8080)));
    assert!(!allowed(&world, tcp(CLIENT, WEB, 80)));
    assert!(!allowed(&world, Packet::udp(ip(CLIENT), ip(WEB), 8080)));
    // db has no port named http.
    assert!(!allowed(&world, tcp(CLIENT, DB, 8080)));
    // A named port never matches a non-pod address.
    let decision = world.verdict(&tcp(CLIENT, EXTERNAL, 8080));
    assert!(!decision.allowed);
    assert_eq!(decision.ingress, Side::NotAnEndpoint);
}

#[test]
fn ip_version_and_nets() {
    let world = with(&web_ingress(
        "  - {action: Allow, ipVersion: 4, source: {nets: [10.1.0.0/16]}}",
    ));
    assert!(allowed(&world, tcp(DB, WEB, 80)));
    assert!(!allowed(&world, tcp(CLIENT, WEB, 80)));
    let decision = world.verdict(&tcp(CLIENT, WEB, 80));
    let trace = decision.ingress.trace().expect("evaluated");
    assert_eq!(
        trace.tiers[0].policies[0].rules[0].mismatch,
        Some("source.nets")
    );
}
