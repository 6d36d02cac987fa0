//! Policy across kube-proxy's translation: backends, target ports, revocation, families.

use std::net::{IpAddr, Ipv4Addr};

use palisade_tests::require_root;
use policy_agent::replay::Direction;

use super::cluster::{
    ACK, API_SVC, BACKEND, BACKEND_SVC, CLIENT, CLIENT_EGRESS, EMPTY_SVC, NODE, OTHER, OTHER_SVC,
    SYN,
};
use super::frames::{icmp_unreachable, packet, tcp};
use super::node::Node;

#[test]
fn egress_is_judged_on_the_backend_and_its_target_port() {
    if !require_root("egress_is_judged_on_the_backend_and_its_target_port") {
        return;
    }
    let node = Node::new("backend");
    // Direct to the backend pod: allowed on its port.
    assert!(node.send_via(
        &tcp(CLIENT, 40000, BACKEND, 8000, SYN),
        &tcp(CLIENT, 40000, BACKEND, 8000, SYN)
    ));
    // Through the Service: the client's interface lets it on to kube-proxy; after the
    // translation the client's egress allows backend:8000 and backend's ingress admits it.
    let syn = tcp(CLIENT, 40001, BACKEND_SVC, 80, SYN);
    let translated = tcp(CLIENT, 40001, BACKEND, 8000, SYN);
    assert!(node.send_via(&syn, &translated));
    // The reply comes back from the frontend: it passes the client's isolated ingress.
    assert!(node.reply_via(
        &tcp(BACKEND, 8000, CLIENT, 40001, SYN | ACK),
        &tcp(BACKEND_SVC, 80, CLIENT, 40001, SYN | ACK)
    ));
    // Later packets of the connection pass both sides.
    assert!(node.send_via(
        &tcp(CLIENT, 40001, BACKEND_SVC, 80, ACK),
        &tcp(CLIENT, 40001, BACKEND, 8000, ACK)
    ));

    // other's Service: the rule names port 80 (the Service port); the backend listens on
    // 9000 (a named targetPort). Judged on 9000: denied after the translation.
    let translated = tcp(CLIENT, 40002, OTHER, 9000, SYN);
    assert!(node.run(
        Direction::FromEndpoint,
        &tcp(CLIENT, 40002, OTHER_SVC, 80, SYN)
    ));
    assert!(
        !node.after_nat(&translated),
        "a rule on the Service port alone allowed"
    );
    // Nothing was recorded for it: a "reply" from the frontend is judged as a new packet by
    // the client's isolated ingress, and dropped.
    assert!(!node.run(
        Direction::ToEndpoint,
        &tcp(OTHER_SVC, 80, CLIENT, 40002, SYN | ACK)
    ));
}

#[test]
fn a_revoked_allow_cuts_a_connection_through_a_service_both_ways() {
    if !require_root("a_revoked_allow_cuts_a_connection_through_a_service_both_ways") {
        return;
    }
    let mut node = Node::new("revoke");
    assert!(node.send_via(
        &tcp(CLIENT, 40020, BACKEND_SVC, 80, SYN),
        &tcp(CLIENT, 40020, BACKEND, 8000, SYN)
    ));
    assert!(node.reply_via(
        &tcp(BACKEND, 8000, CLIENT, 40020, SYN | ACK),
        &tcp(BACKEND_SVC, 80, CLIENT, 40020, SYN | ACK)
    ));
    // Policy changes but still allows backend:8000: the connection lives on (checked against
    // the backend, not the frontend, which no rule names).
    node.write(
        "client-egress.yaml",
        &CLIENT_EGRESS.replace("app: other}}}], ports: [{port: 80}]", "app: other}}}]"),
    );
    node.sync();
    assert!(node.reply_via(
        &tcp(BACKEND, 8000, CLIENT, 40020, ACK),
        &tcp(BACKEND_SVC, 80, CLIENT, 40020, ACK)
    ));
    assert!(node.send_via(
        &tcp(CLIENT, 40020, BACKEND_SVC, 80, ACK),
        &tcp(CLIENT, 40020, BACKEND, 8000, ACK)
    ));
    // The allow is revoked: the server speaking first is cut at the client's interface, and
    // the client is cut after the translation.
    node.write(
        "client-egress.yaml",
        &CLIENT_EGRESS.replace("{port: 8000}", "{port: 8001}"),
    );
    node.sync();
    assert!(!node.reply_via(
        &tcp(BACKEND, 8000, CLIENT, 40020, ACK),
        &tcp(BACKEND_SVC, 80, CLIENT, 40020, ACK)
    ));
    // (The client's own interface lets it on to the translation, now that the flow to the
    // frontend is forgotten; after it, the client's egress denies backend:8000.)
    assert!(!node.send_via(
        &tcp(CLIENT, 40020, BACKEND_SVC, 80, ACK),
        &tcp(CLIENT, 40020, BACKEND, 8000, ACK)
    ));
}

#[test]
fn a_service_on_the_node_itself_and_one_without_endpoints() {
    if !require_root("a_service_on_the_node_itself_and_one_without_endpoints") {
        return;
    }
    let node = Node::new("node");
    // api's only endpoint is the node's own address: kube-proxy delivers it to the node,
    // where no tc egress hook sees it, and traffic with the own node is always allowed; so
    // the client's interface decides it at once and records it for the reply.
    assert!(node.run(
        Direction::FromEndpoint,
        &tcp(CLIENT, 40030, API_SVC, 443, SYN)
    ));
    assert!(node.run(
        Direction::ToEndpoint,
        &tcp(API_SVC, 443, CLIENT, 40030, SYN | ACK)
    ));

    // empty has no endpoints: kube-proxy rejects with port unreachable from the frontend,
    // which passes as related; the same error quoting a flow to a frontend with endpoints
    // that nobody sent is dropped.
    let syn = tcp(CLIENT, 40031, EMPTY_SVC, 80, SYN);
    assert!(node.run(Direction::FromEndpoint, &syn));
    assert!(node.run(
        Direction::ToEndpoint,
        &icmp_unreachable(EMPTY_SVC, CLIENT, &syn)
    ));
    let unsent = tcp(CLIENT, 40032, BACKEND_SVC, 80, SYN);
    assert!(!node.run(
        Direction::ToEndpoint,
        &icmp_unreachable(BACKEND_SVC, CLIENT, &unsent)
    ));
}

#[test]
fn the_post_translation_hook_leaves_other_traffic_alone() {
    if !require_root("the_post_translation_hook_leaves_other_traffic_alone") {
        return;
    }
    let node = Node::new("others");
    // Not a local pod's: the node's own traffic, a remote address's.
    assert!(node.after_nat(&tcp(NODE, 40040, BACKEND, 8000, SYN)));
    assert!(node.after_nat(&tcp(Ipv4Addr::new(203, 0, 113, 9), 1, CLIENT, 2, SYN)));
    // A local pod's flow the pod's own interface already allowed passes on its entry; one
    // it did not see decided is decided here, with the same answer.
    assert!(node.run(
        Direction::FromEndpoint,
        &tcp(CLIENT, 40041, BACKEND, 8000, SYN)
    ));
    assert!(node.after_nat(&tcp(CLIENT, 40041, BACKEND, 8000, SYN)));
    assert!(!node.after_nat(&tcp(CLIENT, 40042, BACKEND, 9999, SYN)));
    // What it cannot parse is not its to judge (a pod's malformed packets die on the pod's
    // own interface; an uplink carries anything): an ARP frame and a VLAN-tagged one pass.
    let mut arp = vec![0u8; 42];
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    assert!(node.after_nat(&arp));
    let mut tagged = tcp(CLIENT, 40043, BACKEND, 9999, SYN);
    tagged[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
    assert!(node.after_nat(&tagged));
}

#[test]
fn every_protocol_and_both_families_through_a_dual_stack_service() {
    if !require_root("every_protocol_and_both_families_through_a_dual_stack_service") {
        return;
    }
    let node = Node::new("multi");
    let ip = |s: &str| -> IpAddr { s.parse().expect("an address") };
    for (client, other, frontend, backend) in [
        ("10.42.0.10", "10.42.0.12", "10.96.0.40", "10.42.0.11"),
        ("fd00:42::10", "fd00:42::12", "fd00:96::40", "fd00:42::11"),
    ] {
        let (client, other, frontend, backend) = (ip(client), ip(other), ip(frontend), ip(backend));
        for (protocol, port, target) in [(6, 80, 8000), (17, 53, 5353), (132, 7777, 7000)] {
            let case = format!("protocol {protocol} {client} -> {frontend}:{port}");
            let sent = packet(protocol, client, 41000, frontend, port);
            let translated = packet(protocol, client, 41000, backend, target);
            assert!(node.send_via(&sent, &translated), "{case}");
            // The backend's answer, and the same after the reverse translation.
            assert!(
                node.reply_via(
                    &packet(protocol, backend, target, client, 41000),
                    &packet(protocol, frontend, port, client, 41000)
                ),
                "{case}: reply"
            );
            // other's egress allows nothing: its flow dies after the translation.
            let sent = packet(protocol, other, 41001, frontend, port);
            let translated = packet(protocol, other, 41001, backend, target);
            assert!(node.run(Direction::FromEndpoint, &sent), "{case}: deferred");
            assert!(!node.after_nat(&translated), "{case}: other allowed");
            // And the frontend answering it is a new packet to other's isolated ingress.
            assert!(
                !node.run(
                    Direction::ToEndpoint,
                    &packet(protocol, frontend, port, other, 41001)
                ),
                "{case}: reply to other"
            );
        }
    }
}
