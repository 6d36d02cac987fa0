//! Calico's `source.ports`/`source.notPorts` on the real datapath (`BPF_PROG_TEST_RUN` on the
//! pod programs), with maps filled by the real agent code: ranges, `notPorts`, per protocol,
//! an egress rule's named source port (the endpoint's own), and a table without source-port
//! rules that makes no class lookup. Every verdict is also checked against the userspace
//! replay and `explain`'s walk. Privileged: needs root (a failure under CI=true).

use std::net::IpAddr;

use palisade_tests::{require_root, scratch::Scratch};
use policy_agent::{
    compiler::{
        Compiler, MapContents, Scope,
        trace::{TracePacket, trace},
    },
    dataplane::Datapath,
    datastore::file::FileDatastore,
    model::Cluster,
    replay::{self, Direction, Packet},
};
use policy_common::{endpoint::lookup, identity, rule::action};

const CLUSTER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default, labels: {app: client}}
spec: {containers: [{name: c, image: busybox, ports: [{name: dns-client, containerPort: 5353, protocol: UDP}]}]}
status: {podIP: 10.42.0.10, phase: Running}
---
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: default, labels: {app: server}}
spec: {containers: [{name: c, image: busybox}]}
status: {podIP: 10.42.0.11, phase: Running}
---
apiVersion: v1
kind: Pod
metadata: {name: other, namespace: default, labels: {app: other}}
spec: {containers: [{name: c, image: busybox}]}
status: {podIP: 10.42.0.12, phase: Running}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: no-privileged-clients}
spec:
  selector: app == 'server'
  types: [Ingress]
  ingress:
    # TCP from a privileged source port is refused, except 22 (notPorts).
    - action: Deny
      protocol: TCP
      source: {ports: ["0:1023"], notPorts: [22]}
    - action: Allow
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: client-dns-port}
spec:
  selector: app == 'client'
  types: [Egress]
  egress:
    # UDP only from the client's own named port; TCP from anything.
    - action: Allow
      protocol: UDP
      source: {ports: [dns-client]}
    - action: Allow
      protocol: TCP
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: other-tcp}
spec:
  selector: app == 'other'
  types: [Ingress]
  ingress:
    - action: Allow
      protocol: TCP
"#;

const CLIENT: &str = "10.42.0.10";
const SERVER: &str = "10.42.0.11";
const OTHER: &str = "10.42.0.12";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn cluster(scratch: &Scratch) -> Cluster {
    let snapshot = FileDatastore::new(&scratch.manifests)
        .load()
        .expect("reading the manifests");
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    snapshot.cluster
}

/// The verdict of both programs on the first packet of a flow, checked against the replay
/// and `explain`.
fn allowed(
    datapath: &mut Datapath,
    maps: &MapContents,
    cluster: &Cluster,
    packet: &Packet,
) -> bool {
    let frame = packet.to_frame();
    let mut kernel = true;
    for direction in [Direction::FromEndpoint, Direction::ToEndpoint] {
        datapath.clear_conntrack().expect("clearing conntrack");
        let verdict = datapath
            .test_run(direction, &frame, 1)
            .expect("test run")
            .allowed();
        assert_eq!(
            verdict,
            replay::allows(maps, packet, direction),
            "{packet:?} {direction:?}: kernel and replay differ"
        );
        kernel &= verdict;
    }
    let explained = trace(
        cluster,
        &Scope::default(),
        &TracePacket {
            src: packet.src,
            dst: packet.dst,
            protocol: packet.protocol,
            sport: packet.sport,
            dport: packet.dport,
        },
    );
    assert_eq!(explained.allowed(), kernel, "{packet:?}: {explained:?}");
    kernel
}

fn packet(src: &str, dst: &str, protocol: u8, sport: u16, dport: u16) -> Packet {
    Packet {
        src: ip(src),
        dst: ip(dst),
        protocol,
        sport,
        dport,
    }
}

#[test]
fn source_ports_are_enforced_in_the_kernel() {
    if !require_root("source_ports_are_enforced_in_the_kernel") {
        return;
    }
    let scratch = Scratch::new("source-ports", "kernel");
    scratch.write("cluster.yaml", CLUSTER);
    let cluster = cluster(&scratch);
    let maps =
        std::sync::Arc::unwrap_or_clone(Compiler::new().compile(&cluster, &Scope::default()).maps);
    let mut datapath = Datapath::load(&scratch.pins).expect("loading the datapath");
    datapath
        .apply(&MapContents::default(), &maps)
        .expect("programming the maps");
    let mut check = |p: Packet| allowed(&mut datapath, &maps, &cluster, &p);
    const TCP: u8 = 6;
    const UDP: u8 = 17;

    // Ingress of the server: privileged TCP source ports are denied, 22 is not, and the
    // range's edges hold.
    assert!(check(packet(CLIENT, SERVER, TCP, 40_000, 80)));
    assert!(!check(packet(CLIENT, SERVER, TCP, 1000, 80)));
    assert!(!check(packet(CLIENT, SERVER, TCP, 0, 80)));
    assert!(!check(packet(CLIENT, SERVER, TCP, 1023, 80)));
    assert!(check(packet(CLIENT, SERVER, TCP, 1024, 80)));
    assert!(check(packet(CLIENT, SERVER, TCP, 22, 80)));
    assert!(!check(packet(CLIENT, SERVER, TCP, 21, 80)));
    assert!(!check(packet(CLIENT, SERVER, TCP, 23, 80)));

    // Egress of the client: UDP only from its named port 5353 (the Deny above is TCP's, so
    // the server lets UDP from any source port in).
    assert!(check(packet(CLIENT, SERVER, UDP, 5353, 53)));
    assert!(!check(packet(CLIENT, SERVER, UDP, 5354, 53)));
    assert!(!check(packet(CLIENT, SERVER, UDP, 1000, 53)));
    // TCP from the client is allowed whatever its source port; the server still judges it.
    assert!(check(packet(CLIENT, OTHER, TCP, 5354, 443)));
    assert!(check(packet(CLIENT, OTHER, TCP, 80, 443)));

    // Only the tables with source-port rules look classes up, and only they have class
    // entries.
    let tables_with = |bit: u32| -> Vec<u32> {
        let mut tables: Vec<u32> = maps
            .endpoints
            .values()
            .flat_map(|e| [&e.ingress, &e.egress])
            .flat_map(|list| list.tables.iter().take(list.count as usize))
            .filter(|t| t.lookups & bit != 0)
            .map(|t| t.table)
            .collect();
        tables.sort_unstable();
        tables.dedup();
        tables
    };
    let with_classes = tables_with(lookup::SOURCE_PORTS);
    assert_eq!(with_classes.len(), 2, "server ingress and client egress");
    assert_eq!(tables_with(lookup::ORDERED).len(), 3);
    let class_tables: Vec<u32> = maps
        .rules
        .iter()
        .filter(|(key, _)| key.data.peer_identity == identity::SOURCE_PORTS)
        .inspect(|(_, value)| assert_eq!(value.action, action::SOURCE_CLASS))
        .map(|(key, _)| key.data.table)
        .collect();
    assert!(!class_tables.is_empty());
    assert!(class_tables.iter().all(|t| with_classes.contains(t)));
}
