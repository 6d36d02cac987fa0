//! A pod reaching itself through its own Service (hairpin), judged both ways.

use std::net::Ipv4Addr;

use palisade_tests::require_root;
use policy_agent::replay::Direction;

use super::cluster::{ACK, BACKEND, BACKEND_SVC, NODE, SYN};
use super::frames::tcp;
use super::node::Node;

/// A TCP segment with a sequence number: the fingerprint the hairpin is recognised by.
fn tcp_seq(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, flags: u8, seq: u32) -> Vec<u8> {
    let mut frame = tcp(src, sport, dst, dport, flags);
    frame[14 + 20 + 4..14 + 20 + 8].copy_from_slice(&seq.to_be_bytes());
    frame
}

/// The backend's egress to itself on its target port.
const BACKEND_EGRESS_SELF: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: backend-egress-self, namespace: default}
spec:
  podSelector: {matchLabels: {app: backend}}
  egress: [{to: [{podSelector: {matchLabels: {app: backend}}}], ports: [{port: 8000}]}]
"#;

/// The backend's ingress from itself on its target port.
const BACKEND_INGRESS_SELF: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: backend-ingress-self, namespace: default}
spec:
  podSelector: {matchLabels: {app: backend}}
  ingress: [{from: [{podSelector: {matchLabels: {app: backend}}}], ports: [{port: 8000}]}]
"#;

/// A pod reaching itself through its own Service, as a node carries it: the pod's interface
/// sees it to the ClusterIP, kube-proxy translates it to the pod's own target port and
/// masquerades it to the node's address (`NODE:masq`), and the same interface's egress sees
/// that. Judged as Calico's iptables dataplane judges it (before the masquerade): the pod's
/// egress to itself and its ingress from itself, both.
struct Hairpin {
    sport: u16,
    masq: u16,
    seq: u32,
}

impl Hairpin {
    fn send(&self, node: &Node, flags: u8) -> bool {
        node.send_via(
            &tcp_seq(BACKEND, self.sport, BACKEND_SVC, 80, flags, self.seq),
            &tcp_seq(NODE, self.masq, BACKEND, 8000, flags, self.seq),
        )
    }

    fn reply(&self, node: &Node, flags: u8) -> bool {
        node.reply_via(
            &tcp(BACKEND, 8000, NODE, self.masq, flags),
            &tcp(BACKEND_SVC, 80, BACKEND, self.sport, flags),
        )
    }
}

#[test]
fn a_pod_reaching_itself_through_its_own_service_is_judged_both_ways() {
    if !require_root("a_pod_reaching_itself_through_its_own_service_is_judged_both_ways") {
        return;
    }
    let mut node = Node::new("hairpin");
    let first = Hairpin {
        sport: 41000,
        masq: 61000,
        seq: 0x1234_5678,
    };
    // The backend's egress admits nothing: its hairpin is denied after the translation.
    assert!(!first.send(&node, SYN));
    // The node's own connection with the very same delivered tuple is the node's: allowed.
    assert!(node.after_nat(&tcp_seq(NODE, 61000, BACKEND, 8000, SYN, 0x0bad_cafe)));
    assert!(node.run(
        Direction::ToEndpoint,
        &tcp_seq(NODE, 61000, BACKEND, 8000, SYN, 0x0bad_cafe)
    ));
    // So is one while the pod's hairpin is in flight, told apart by the fingerprint; the
    // pod's own packet after it is still recognised and denied.
    let pending = Hairpin {
        sport: 41009,
        masq: 61009,
        seq: 0x5555_0001,
    };
    assert!(node.run(
        Direction::FromEndpoint,
        &tcp_seq(BACKEND, pending.sport, BACKEND_SVC, 80, SYN, pending.seq)
    ));
    assert!(node.after_nat(&tcp_seq(NODE, 61010, BACKEND, 8000, SYN, 0x0bad_cafe)));
    assert!(!node.after_nat(&tcp_seq(
        NODE,
        pending.masq,
        BACKEND,
        8000,
        SYN,
        pending.seq
    )));

    // Egress to itself allowed, ingress from itself not: denied on the way in.
    node.write("backend-egress-self.yaml", BACKEND_EGRESS_SELF);
    node.sync();
    let second = Hairpin {
        sport: 41001,
        masq: 61001,
        seq: 0x2222_0001,
    };
    assert!(!second.send(&node, SYN));

    // Both: the hairpin connects, replies pass back through both translations.
    node.write("backend-ingress-self.yaml", BACKEND_INGRESS_SELF);
    node.sync();
    let third = Hairpin {
        sport: 41002,
        masq: 61002,
        seq: 0x3333_0001,
    };
    assert!(third.send(&node, SYN));
    assert!(third.reply(&node, SYN | ACK));
    assert!(third.send(&node, ACK));
    assert!(third.reply(&node, ACK));

    // The pod's ingress from itself is revoked: the connection is cut whichever side speaks
    // first, on the backend's side (its ingress) as on the client's.
    std::fs::remove_file(node.scratch.manifests.join("backend-ingress-self.yaml"))
        .expect("removing");
    node.sync();
    assert!(!third.reply(&node, ACK));
    assert!(!third.send(&node, ACK));

    // Restored, then the egress revoked: cut again, the client's side first.
    node.write("backend-ingress-self.yaml", BACKEND_INGRESS_SELF);
    node.sync();
    let fourth = Hairpin {
        sport: 41003,
        masq: 61003,
        seq: 0x4444_0001,
    };
    assert!(fourth.send(&node, SYN));
    assert!(fourth.reply(&node, SYN | ACK));
    std::fs::remove_file(node.scratch.manifests.join("backend-egress-self.yaml"))
        .expect("removing");
    node.sync();
    assert!(!fourth.send(&node, ACK));
    assert!(!fourth.reply(&node, ACK));
}
