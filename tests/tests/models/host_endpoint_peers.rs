//! Host endpoints as *peers* of Calico rules, on one fixed world where every case is decided
//! by them: a selector on host-endpoint labels, `namespaceSelector: global()`, a port named on
//! the host endpoint (`ports`), and `serviceAccounts`, which never match one. For each flow
//! the reference model, the userspace replay of the compiled maps and `explain`'s walk must
//! agree, and the model must give the verdict written here (so a case cannot pass by all
//! three ignoring host endpoints). The random worlds of `compiler_vs_calico_model` add host
//! endpoints too; these cases are the ones they reach too rarely to rely on.

use std::net::IpAddr;

use palisade_tests::{calico_reference::CalicoWorld, generate_calico::CalicoCase};
use policy_agent::{
    calico::resources::parse_documents,
    compiler::{
        Compiler, Scope,
        trace::{TracePacket, trace},
    },
    replay::{self, Direction, Packet},
};

/// Pods `client` (10.0.0.10) and `other` (10.0.0.11) in namespace `x`; host endpoints
/// `bm1` (192.0.2.7, `role: bare-metal`, TCP port `admin` 2222) and `bm2` (192.0.2.8,
/// `role: other-metal`), on another node and of every interface (so this node enforces on
/// neither; the model enforces on no host endpoint).
const PODS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: x}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: x, labels: {app: client}}
spec: {containers: [{name: c, image: busybox}]}
status: {podIP: 10.0.0.10, phase: Running}
---
apiVersion: v1
kind: Pod
metadata: {name: other, namespace: x, labels: {app: other}}
spec: {containers: [{name: c, image: busybox}]}
status: {podIP: 10.0.0.11, phase: Running}
"#;

const CALICO: &str = r#"
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: bm1, labels: {role: bare-metal}}
spec:
  node: elsewhere
  interfaceName: "*"
  expectedIPs: [192.0.2.7]
  ports: [{name: admin, port: 2222, protocol: TCP}]
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: bm2, labels: {role: other-metal}}
spec: {node: elsewhere, interfaceName: "*", expectedIPs: [192.0.2.8]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: client-egress}
spec:
  selector: app == 'client'
  types: [Egress]
  egress:
    # The admin port of bare-metal hosts, by name.
    - action: Allow
      protocol: TCP
      destination: {selector: role == 'bare-metal', ports: [admin]}
    # Nothing else to bare-metal hosts.
    - action: Deny
      destination: {selector: role == 'bare-metal'}
    # Service accounts select pods only: never a host endpoint.
    - action: Deny
      destination: {serviceAccounts: {names: [default]}}
    # Every global owner (host endpoints, global network sets) on port 443.
    - action: Allow
      protocol: TCP
      destination: {namespaceSelector: global(), ports: [443]}
    - action: Deny
      destination: {namespaceSelector: global()}
    - action: Allow
"#;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn case() -> CalicoCase {
    let yaml = format!("{PODS}---{CALICO}");
    let world = CalicoWorld::from_yaml(&yaml).expect("the world parses");
    let resources = parse_documents(CALICO)
        .into_iter()
        .map(|r| r.expect("valid resource"))
        .collect();
    CalicoCase {
        world,
        yaml,
        resources,
    }
}

#[test]
fn host_endpoints_are_matched_as_peers_alike_by_model_compiler_and_explain() {
    let case = case();
    let cluster = case.agent_cluster();
    let scope = Scope {
        node_name: None,
        host_addrs: Vec::new(),
    };
    let maps = Compiler::new().compile(&cluster, &scope).maps;
    const CLIENT: &str = "10.0.0.10";
    const OTHER: &str = "10.0.0.11";
    // (from, to, port, verdict)
    let cases = [
        // bm1's admin port is 2222: allowed by name, any other port denied by selector.
        (CLIENT, "192.0.2.7", 2222, true),
        (CLIENT, "192.0.2.7", 22, false),
        (CLIENT, "192.0.2.7", 443, false),
        // bm2 is global but not bare-metal: 443 allowed, the rest denied by global().
        (CLIENT, "192.0.2.8", 443, true),
        (CLIENT, "192.0.2.8", 2222, false),
        // A pod with the default service account: denied by serviceAccounts.
        (CLIENT, OTHER, 443, false),
        // An address nobody owns: neither selector nor global() matches it.
        (CLIENT, "192.0.2.9", 22, true),
        // Not selected by the policy.
        (OTHER, "192.0.2.7", 22, true),
    ];
    for (from, to, port, expected) in cases {
        let model = case
            .world
            .verdict(&palisade_tests::calico_reference::Packet::new(
                ip(from),
                ip(to),
                policy_agent::calico::resources::Protocol::TCP,
                40_000,
                port,
            ));
        assert_eq!(
            model.allowed, expected,
            "model on {from} -> {to}:{port}:\n{model}"
        );
        let packet = Packet {
            src: ip(from),
            dst: ip(to),
            protocol: 6,
            sport: 40_000,
            dport: port,
        };
        let compiled = replay::allows(&maps, &packet, Direction::FromEndpoint);
        assert_eq!(compiled, expected, "compiled maps on {from} -> {to}:{port}");
        let explained = trace(
            &cluster,
            &scope,
            &TracePacket {
                src: ip(from),
                dst: ip(to),
                protocol: 6,
                sport: 40_000,
                dport: port,
            },
        );
        assert_eq!(
            explained.allowed(),
            expected,
            "explain on {from} -> {to}:{port}: {explained:?}"
        );
    }
}
