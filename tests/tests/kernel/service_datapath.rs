//! Service traffic in the real programs (`BPF_PROG_TEST_RUN`), hook by hook as a node runs
//! them: the client's interface (`palisade_from_endpoint`) before kube-proxy's translation,
//! then `palisade_after_nat` and the backend's interface after it, and the replies back
//! through the reverse translation. The sender's egress is judged on the backend and its
//! target port, replies from the frontend pass only for a flow so allowed, a changed policy
//! is checked against the backend, not the frontend.
//! Privileged: needs root (a failure under CI=true).

use std::net::{IpAddr, Ipv4Addr};

use palisade_tests::{require_root, scratch::Scratch};
use policy_agent::{
    compiler::{Compiler, MapContents, Scope},
    dataplane::{Datapath, service_maps},
    datastore::file::FileDatastore,
    flows::address,
    replay::Direction,
};
use policy_common::flow::{FROM_ENDPOINT, FlowEvent, OPENED, TO_ENDPOINT};

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 42, 0, 10);
const BACKEND: Ipv4Addr = Ipv4Addr::new(10, 42, 0, 11);
const OTHER: Ipv4Addr = Ipv4Addr::new(10, 42, 0, 12);
/// ClusterIPs: `backend` (80 -> 8000), `other` (80 -> 8000), `api` (443 -> the node's 6443),
/// `empty` (no endpoints), `mixed` (80 -> backend's 8000 and other's 9000: named port).
const BACKEND_SVC: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 20);
const OTHER_SVC: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 21);
const API_SVC: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);
const EMPTY_SVC: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 30);
const NODE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

const CLUSTER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default, labels: {app: client}}
spec: {containers: [{name: c, image: busybox}]}
status: {podIPs: [{ip: 10.42.0.10}, {ip: "fd00:42::10"}], phase: Running}
---
apiVersion: v1
kind: Pod
metadata: {name: backend, namespace: default, labels: {app: backend}}
spec: {containers: [{name: c, image: busybox, ports: [{name: web, containerPort: 8000}]}]}
status: {podIPs: [{ip: 10.42.0.11}, {ip: "fd00:42::11"}], phase: Running}
---
apiVersion: v1
kind: Pod
metadata: {name: other, namespace: default, labels: {app: other}}
spec: {containers: [{name: c, image: busybox, ports: [{name: web, containerPort: 9000}]}]}
status: {podIPs: [{ip: 10.42.0.12}, {ip: "fd00:42::12"}], phase: Running}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: isolate-all, namespace: default}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: backend-from-client, namespace: default}
spec:
  podSelector: {matchLabels: {app: backend}}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}], ports: [{port: 8000}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: other-from-client, namespace: default}
spec:
  podSelector: {matchLabels: {app: other}}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}]}]
---
apiVersion: v1
kind: Service
metadata: {name: backend, namespace: default}
spec: {clusterIP: 10.96.0.20, selector: {app: backend}, ports: [{port: 80, targetPort: 8000}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: backend-a, namespace: default, labels: {kubernetes.io/service-name: backend}}
addressType: IPv4
endpoints: [{addresses: [10.42.0.11], conditions: {ready: true}}]
ports: [{name: "", port: 8000, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: other, namespace: default}
spec: {clusterIP: 10.96.0.21, selector: {app: other}, ports: [{port: 80, targetPort: web}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: other-a, namespace: default, labels: {kubernetes.io/service-name: other}}
addressType: IPv4
endpoints: [{addresses: [10.42.0.12], conditions: {ready: true}}]
ports: [{name: "", port: 9000, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: default}
spec: {clusterIP: 10.96.0.1, ports: [{name: https, port: 443, targetPort: 6443}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: api, namespace: default, labels: {kubernetes.io/service-name: api}}
addressType: IPv4
endpoints: [{addresses: [198.18.0.1]}]
ports: [{name: https, port: 6443, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: multi, namespace: default}
spec:
  clusterIPs: [10.96.0.40, "fd00:96::40"]
  ipFamilies: [IPv4, IPv6]
  ipFamilyPolicy: RequireDualStack
  selector: {app: backend}
  ports:
  - {name: tcp, port: 80, targetPort: 8000}
  - {name: udp, port: 53, targetPort: 5353, protocol: UDP}
  - {name: sctp, port: 7777, targetPort: 7000, protocol: SCTP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: multi-v4, namespace: default, labels: {kubernetes.io/service-name: multi}}
addressType: IPv4
endpoints: [{addresses: [10.42.0.11]}]
ports: [{name: tcp, port: 8000}, {name: udp, port: 5353, protocol: UDP}, {name: sctp, port: 7000, protocol: SCTP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: multi-v6, namespace: default, labels: {kubernetes.io/service-name: multi}}
addressType: IPv6
endpoints: [{addresses: ["fd00:42::11"]}]
ports: [{name: tcp, port: 8000}, {name: udp, port: 5353, protocol: UDP}, {name: sctp, port: 7000, protocol: SCTP}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: backend-udp-sctp-from-client, namespace: default}
spec:
  podSelector: {matchLabels: {app: backend}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: 5353, protocol: UDP}, {port: 7000, protocol: SCTP}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-udp-sctp-egress, namespace: default}
spec:
  podSelector: {matchLabels: {app: client}}
  egress:
  - to: [{podSelector: {matchLabels: {app: backend}}}]
    ports: [{port: 5353, protocol: UDP}, {port: 7000, protocol: SCTP}]
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: default}
spec: {clusterIP: 10.96.0.30, selector: {app: nobody}, ports: [{port: 80}]}
"#;

/// The client may reach backend on 8000 and other on 9000 (pods, any port otherwise closed).
const CLIENT_EGRESS: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-egress, namespace: default}
spec:
  podSelector: {matchLabels: {app: client}}
  egress:
  - {to: [{podSelector: {matchLabels: {app: backend}}}], ports: [{port: 8000}]}
  - {to: [{podSelector: {matchLabels: {app: other}}}], ports: [{port: 80}]}
"#;

struct Node {
    datapath: Datapath,
    compiler: Compiler,
    maps: MapContents,
    scope: Scope,
    /// The manifests and pins, removed however the test ends (a failed load included).
    scratch: Scratch,
}

impl Node {
    fn new(test: &str) -> Self {
        let scratch = Scratch::new("services", test);
        let datapath = Datapath::load(&scratch.pins).expect("loading the datapath");
        let mut node = Self {
            datapath,
            compiler: Compiler::new(),
            maps: MapContents::default(),
            scope: Scope {
                node_name: None,
                host_addrs: vec![NODE.into()],
            },
            scratch,
        };
        node.write("cluster.yaml", CLUSTER);
        node.write("client-egress.yaml", CLIENT_EGRESS);
        node.sync();
        node
    }

    fn write(&self, name: &str, contents: &str) {
        std::fs::write(self.scratch.manifests.join(name), contents).expect("writing a manifest");
    }

    /// Compiles and programs, as the agent does: policy maps, then the Service maps.
    fn sync(&mut self) {
        let snapshot = FileDatastore::new(&self.scratch.manifests)
            .load()
            .expect("reading manifests");
        assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
        let maps = self.compiler.compile(&snapshot.cluster, &self.scope).maps;
        self.datapath.apply(&self.maps, &maps).expect("programming");
        self.maps = std::sync::Arc::unwrap_or_clone(maps);
        self.datapath
            .sync_services(&service_maps(&snapshot.cluster, &self.scope))
            .expect("programming the Service maps");
    }

    fn run(&self, direction: Direction, frame: &[u8]) -> bool {
        self.datapath
            .test_run(direction, frame, 1)
            .expect("BPF_PROG_TEST_RUN")
            .allowed()
    }

    fn after_nat(&self, frame: &[u8]) -> bool {
        self.datapath
            .test_run_after_nat(frame, 1)
            .expect("BPF_PROG_TEST_RUN")
            .allowed()
    }

    /// A packet the client sends to a Service frontend and kube-proxy translates to
    /// `backend:port`: its interface, then (if it passed) the post-translation hook and the
    /// backend's interface. Whether it arrived.
    fn send_via(&self, frontend: &[u8], translated: &[u8]) -> bool {
        self.run(Direction::FromEndpoint, frontend)
            && self.after_nat(translated)
            && self.run(Direction::ToEndpoint, translated)
    }

    /// A reply the backend sends (`sent`) and the reverse translation turns into one from
    /// the frontend (`translated`): the backend's interface, then the client's.
    fn reply_via(&self, sent: &[u8], translated: &[u8]) -> bool {
        self.run(Direction::FromEndpoint, sent)
            && self.after_nat(translated)
            && self.run(Direction::ToEndpoint, translated)
    }
}

/// A TCP (SYN), UDP or SCTP packet over IPv4 or IPv6 (both addresses of one family).
fn packet(protocol: u8, src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> Vec<u8> {
    let mut l4 = Vec::new();
    l4.extend_from_slice(&sport.to_be_bytes());
    l4.extend_from_slice(&dport.to_be_bytes());
    match protocol {
        // TCP: sequence, acknowledgement, offset, SYN, window, checksum, urgent.
        6 => l4.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 5 << 4, SYN, 0xff, 0xff, 0, 0, 0, 0]),
        // UDP: length, checksum, 4 bytes of payload.
        17 => l4.extend_from_slice(&[0, 12, 0, 0, b'd', b'n', b's', b'?']),
        // SCTP: verification tag, checksum.
        _ => l4.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]),
    }
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => ipv4(src, dst, protocol, &l4),
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let mut frame = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02];
            frame.extend_from_slice(&0x86ddu16.to_be_bytes());
            frame.extend_from_slice(&[0x60, 0, 0, 0]);
            frame.extend_from_slice(&u16::try_from(l4.len()).expect("small").to_be_bytes());
            frame.extend_from_slice(&[protocol, 64]);
            frame.extend_from_slice(&src.octets());
            frame.extend_from_slice(&dst.octets());
            frame.extend_from_slice(&l4);
            frame
        }
        _ => panic!("one family per packet"),
    }
}

fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02];
    frame.extend_from_slice(&0x0800u16.to_be_bytes());
    let total = u16::try_from(20 + payload.len()).expect("small");
    frame.extend_from_slice(&[0x45, 0]);
    frame.extend_from_slice(&total.to_be_bytes());
    frame.extend_from_slice(&[0, 1, 0x40, 0, 64, protocol, 0, 0]);
    frame.extend_from_slice(&src.octets());
    frame.extend_from_slice(&dst.octets());
    frame.extend_from_slice(payload);
    frame
}

fn tcp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, flags: u8) -> Vec<u8> {
    let mut h = vec![0u8; 20];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[12] = 5 << 4;
    h[13] = flags;
    ipv4(src, dst, 6, &h)
}

/// Port unreachable from `src` to `dst`, quoting `quoted` (an IPv4 frame).
fn icmp_unreachable(src: Ipv4Addr, dst: Ipv4Addr, quoted: &[u8]) -> Vec<u8> {
    let mut h = vec![3, 3, 0, 0, 0, 0, 0, 0];
    h.extend_from_slice(&quoted[14..14 + 28]);
    ipv4(src, dst, 1, &h)
}

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
