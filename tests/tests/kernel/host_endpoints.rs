//! Calico host endpoints on the real datapath (`BPF_PROG_TEST_RUN` on the host programs):
//! failsafe ports before policy, GlobalNetworkPolicy selecting the host by label, a deny when
//! nothing allows, other addresses' traffic left alone, and a host address no pod can send as.
//! Privileged: needs root (a failure under CI=true).

use std::{collections::BTreeMap, net::IpAddr};

use palisade_tests::{require_root, scratch::Scratch};
use policy_agent::{
    compiler::{
        Compiler, Failsafe, Scope,
        trace::{TracePacket, trace},
    },
    dataplane::{Datapath, routes},
    datastore::file::FileDatastore,
    replay::{Direction, Packet},
};

const CLUSTER: &str = r#"
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: bm1-eth0, labels: {role: bare-metal}}
spec:
  node: bm1
  interfaceName: eth0
  expectedIPs: [10.99.0.10]
  ports: [{name: admin, port: 2222, protocol: TCP}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: ssh-from-admins}
spec:
  selector: role == 'bare-metal'
  types: [Ingress]
  ingress:
    - action: Allow
      protocol: TCP
      source: {nets: [10.42.9.0/24]}
      destination: {ports: [admin]}
"#;

fn scratch(test: &str) -> Scratch {
    let scratch = Scratch::new("hep", test);
    scratch.write("cluster.yaml", CLUSTER);
    scratch
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn frame(src: &str, dst: &str, protocol: u8, dport: u16) -> Vec<u8> {
    Packet {
        src: ip(src),
        dst: ip(dst),
        protocol,
        sport: 40_000,
        dport,
    }
    .to_frame()
}

/// The datapath programmed for node bm1; `bind` binds the host endpoint's address to the
/// interface test runs use (loopback), as the agent binds it to eth0.
fn programmed(scratch: &Scratch, failsafe: Failsafe, bind: bool) -> Datapath {
    let snapshot = FileDatastore::new(&scratch.manifests)
        .load()
        .expect("reading the manifests");
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    let scope = Scope {
        node_name: Some("bm1".to_owned()),
        host_addrs: vec![ip("10.99.0.10")],
    };
    let compiled = Compiler::with_failsafe(failsafe).compile(&snapshot.cluster, &scope);
    assert_eq!(compiled.host_interfaces.len(), 1);
    assert_eq!(compiled.host_interfaces[0].interface, "eth0");
    let routes = if bind {
        BTreeMap::from([(ip("10.99.0.10"), "lo".to_owned())])
    } else {
        BTreeMap::new()
    };
    let maps = routes::bind_endpoints(&compiled.maps, &routes);
    let mut datapath = Datapath::load(&scratch.pins).expect("loading the datapath");
    datapath
        .apply(&Default::default(), &maps)
        .expect("programming the maps");
    datapath
}

fn host(datapath: &mut Datapath, direction: Direction, frame: &[u8]) -> bool {
    // Each packet is a new connection: no state from earlier ones.
    datapath.clear_conntrack().expect("clearing conntrack");
    datapath
        .test_run_host(direction, frame, 1)
        .expect("test run")
        .allowed()
}

#[test]
fn failsafe_ports_policy_and_the_default_deny() {
    if !require_root("failsafe_ports_policy_and_the_default_deny") {
        return;
    }
    let scratch = scratch("policy");
    let mut datapath = programmed(&scratch, Failsafe::default(), true);
    let to_host = |src, port| frame(src, "10.99.0.10", 6, port);
    // The policy: the admin port from the admin network only.
    assert!(host(
        &mut datapath,
        Direction::ToEndpoint,
        &to_host("10.42.9.10", 2222)
    ));
    assert!(!host(
        &mut datapath,
        Direction::ToEndpoint,
        &to_host("192.0.2.7", 2222)
    ));
    // Failsafe: SSH and the API server from anywhere, before any policy.
    assert!(host(
        &mut datapath,
        Direction::ToEndpoint,
        &to_host("192.0.2.7", 22)
    ));
    assert!(host(
        &mut datapath,
        Direction::ToEndpoint,
        &to_host("192.0.2.7", 6443)
    ));
    // Anything else: denied (no policy allows it, and a host endpoint's profile denies).
    assert!(!host(
        &mut datapath,
        Direction::ToEndpoint,
        &to_host("192.0.2.7", 80)
    ));
    // Egress: no policy applies: only the outbound failsafe ports.
    let from_host = |protocol, port| frame("10.99.0.10", "192.0.2.7", protocol, port);
    assert!(host(
        &mut datapath,
        Direction::FromEndpoint,
        &from_host(17, 53)
    ));
    assert!(host(
        &mut datapath,
        Direction::FromEndpoint,
        &from_host(6, 6443)
    ));
    assert!(!host(
        &mut datapath,
        Direction::FromEndpoint,
        &from_host(6, 80)
    ));
    // Other addresses crossing the host's interface are not the host endpoint's.
    assert!(host(
        &mut datapath,
        Direction::ToEndpoint,
        &frame("192.0.2.7", "10.42.0.20", 6, 80)
    ));
    assert!(host(
        &mut datapath,
        Direction::FromEndpoint,
        &frame("10.42.0.20", "192.0.2.7", 6, 80)
    ));
}

/// `policy-agent explain` walks host endpoints too, and agrees with the programs.
#[test]
fn explain_agrees_with_the_host_programs() {
    if !require_root("explain_agrees_with_the_host_programs") {
        return;
    }
    let scratch = scratch("explain");
    let mut datapath = programmed(&scratch, Failsafe::default(), true);
    let cluster = FileDatastore::new(&scratch.manifests)
        .load()
        .expect("reading the manifests")
        .cluster;
    let scope = Scope {
        node_name: Some("bm1".to_owned()),
        host_addrs: Vec::new(),
    };
    for (src, dst, protocol, port) in [
        ("10.42.9.10", "10.99.0.10", 6, 2222),
        ("192.0.2.7", "10.99.0.10", 6, 2222),
        ("192.0.2.7", "10.99.0.10", 6, 22),
        ("192.0.2.7", "10.99.0.10", 17, 68),
        ("10.99.0.10", "192.0.2.7", 17, 53),
        ("10.99.0.10", "192.0.2.7", 6, 80),
    ] {
        let explained = trace(
            &cluster,
            &scope,
            &TracePacket {
                src: ip(src),
                dst: ip(dst),
                protocol,
                sport: 40_000,
                dport: port,
            },
        );
        let direction = if dst == "10.99.0.10" {
            Direction::ToEndpoint
        } else {
            Direction::FromEndpoint
        };
        let kernel = host(&mut datapath, direction, &frame(src, dst, protocol, port));
        assert_eq!(
            explained.allowed(),
            kernel,
            "{src} -> {dst}:{port}: {explained:?}"
        );
    }
}

#[test]
fn failsafe_ports_are_configurable() {
    if !require_root("failsafe_ports_are_configurable") {
        return;
    }
    let scratch = scratch("failsafe");
    let failsafe = Failsafe {
        inbound: Failsafe::parse_ports("tcp:6443").expect("ports"),
        outbound: Vec::new(),
    };
    let mut datapath = programmed(&scratch, failsafe, true);
    let to_host = |port| frame("192.0.2.7", "10.99.0.10", 6, port);
    assert!(!host(&mut datapath, Direction::ToEndpoint, &to_host(22)));
    assert!(host(&mut datapath, Direction::ToEndpoint, &to_host(6443)));
    let from_host = frame("10.99.0.10", "192.0.2.7", 17, 53);
    assert!(!host(&mut datapath, Direction::FromEndpoint, &from_host));
    assert!(Failsafe::parse_ports("tcp22").is_err());
    assert!(Failsafe::parse_ports("icmp:1").is_err());
}

#[test]
fn an_unbound_host_address_is_nobody_s_and_no_pod_can_send_as_it() {
    if !require_root("an_unbound_host_address_is_nobody_s_and_no_pod_can_send_as_it") {
        return;
    }
    let scratch = scratch("unbound");
    let mut datapath = programmed(&scratch, Failsafe::default(), false);
    // A pod's interface carrying the host's address as source: spoofed, dropped.
    let spoofed = frame("10.99.0.10", "192.0.2.7", 6, 80);
    datapath.clear_conntrack().expect("clearing conntrack");
    assert!(
        !datapath
            .test_run(Direction::FromEndpoint, &spoofed, 1)
            .expect("test run")
            .allowed()
    );
}
