//! The frontend a translated flow is linked to: its replies, and the flow events naming it.

use std::net::{IpAddr, Ipv4Addr};

use palisade_tests::require_root;
use policy_agent::{flows::address, replay::Direction};
use policy_common::flow::{FROM_ENDPOINT, FlowEvent, OPENED, TO_ENDPOINT};

use super::cluster::{ACK, BACKEND, BACKEND_SVC, CLIENT, OTHER_SVC, SYN};
use super::frames::tcp;
use super::node::Node;

#[test]
fn a_translated_flow_is_linked_only_to_a_frontend_that_has_that_backend() {
    if !require_root("a_translated_flow_is_linked_only_to_a_frontend_that_has_that_backend") {
        return;
    }
    let node = Node::new("link");
    // The client sends to backend's frontend, but what comes out of netfilter goes to
    // backend:8000 from the same socket only if kube-proxy chose it. Here the client's
    // pending frontend is other's, whose backend backend is not: allowed on its own merit
    // (egress allows backend:8000), but no reply from other's frontend is accepted.
    assert!(node.run(
        Direction::FromEndpoint,
        &tcp(CLIENT, 40010, OTHER_SVC, 80, SYN)
    ));
    assert!(node.after_nat(&tcp(CLIENT, 40010, BACKEND, 8000, SYN)));
    assert!(!node.run(
        Direction::ToEndpoint,
        &tcp(OTHER_SVC, 80, CLIENT, 40010, SYN | ACK)
    ));
}

#[test]
fn a_flow_through_a_service_names_its_frontend_and_each_entry_counts_it_once() {
    if !require_root("a_flow_through_a_service_names_its_frontend_and_each_entry_counts_it_once") {
        return;
    }
    let mut node = Node::new("traffic");
    node.datapath.set_flow_events(true).expect("flow events on");
    let mut reader = node.datapath.take_flows().expect("the ring");
    let mut drain = || std::iter::from_fn(|| reader.next_event()).collect::<Vec<FlowEvent>>();

    let translated = tcp(CLIENT, 40001, BACKEND, 8000, SYN);
    assert!(node.send_via(&tcp(CLIENT, 40001, BACKEND_SVC, 80, SYN), &translated));
    // Deferred on the client's interface (no event there); the client's egress after the
    // translation names the frontend it addressed; the backend's ingress cannot know it.
    let events = drain();
    assert_eq!(events.len(), 2, "{events:?}");
    let (egress, ingress) = (events[0], events[1]);
    assert_eq!(
        (egress.direction, egress.allowed, egress.flags),
        (FROM_ENDPOINT, 1, OPENED)
    );
    assert_eq!(
        (address(egress.dst), egress.dport),
        (IpAddr::from(BACKEND), 8000)
    );
    assert_eq!(
        (address(egress.service), egress.service_port),
        (IpAddr::from(BACKEND_SVC), 80)
    );
    assert_eq!(egress.len as usize, translated.len());
    assert_eq!(
        (
            ingress.direction,
            ingress.allowed,
            ingress.flags,
            ingress.service_port
        ),
        (TO_ENDPOINT, 1, OPENED, 0)
    );

    // The connection's later packets: tracked, so no events; each of its two entries (as
    // sent to the frontend, as delivered to the backend) counts every one of them once.
    assert!(node.reply_via(
        &tcp(BACKEND, 8000, CLIENT, 40001, SYN | ACK),
        &tcp(BACKEND_SVC, 80, CLIENT, 40001, SYN | ACK)
    ));
    for _ in 0..3 {
        assert!(node.send_via(
            &tcp(CLIENT, 40001, BACKEND_SVC, 80, ACK),
            &tcp(CLIENT, 40001, BACKEND, 8000, ACK)
        ));
    }
    assert!(node.reply_via(
        &tcp(BACKEND, 8000, CLIENT, 40001, ACK),
        &tcp(BACKEND_SVC, 80, CLIENT, 40001, ACK)
    ));
    assert!(drain().is_empty());
    let len = translated.len() as u32;
    let entries = node.datapath.conntrack_entries().expect("conntrack");
    let counted = |dst: Ipv4Addr, dport: u16| {
        let (_, value) = entries
            .iter()
            .find(|(k, _)| {
                address(k.src) == IpAddr::from(CLIENT)
                    && address(k.dst) == IpAddr::from(dst)
                    && (k.sport, k.dport) == (40001, dport)
            })
            .unwrap_or_else(|| panic!("no entry to {dst}:{dport}: {entries:?}"));
        (value.packets, value.bytes)
    };
    assert_eq!(
        counted(BACKEND_SVC, 80),
        ([3, 2], [3 * len, 2 * len]),
        "as sent"
    );
    assert_eq!(
        counted(BACKEND, 8000),
        ([3, 2], [3 * len, 2 * len]),
        "as delivered"
    );
}
