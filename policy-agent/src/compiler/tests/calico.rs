//! Calico's resources: host endpoints, source ports, the default profile, Services matches.

use crate::{
    compiler::{Compiler, MapContents, Scope},
    model::{Cluster, convert},
    replay::{Direction, Packet, allows},
};

use super::fixtures::{PODS, cluster, packet, tcp};

/// A host endpoint protected by one GlobalNetworkPolicy (`port`: the admin port it allows).
fn host_endpoint_cluster(port: u16) -> Cluster {
    let yaml = format!(
        r#"
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {{name: bm1-eth0, labels: {{role: bare-metal}}}}
spec: {{node: bm1, interfaceName: eth0, expectedIPs: [10.99.0.10]}}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {{name: admin}}
spec:
  selector: role == 'bare-metal'
  types: [Ingress]
  ingress:
    - {{action: Allow, protocol: TCP, source: {{nets: [10.42.9.0/24]}}, destination: {{ports: [{port}]}}}}
"#
    );
    calico_cluster(&yaml)
}

/// A cluster of Calico resources only.
fn calico_cluster(yaml: &str) -> Cluster {
    let mut cluster = Cluster::default();
    for resource in crate::calico::resources::parse_documents(yaml) {
        cluster.calico.insert(resource.expect("valid resource"));
    }
    cluster
}

#[test]
fn a_calico_policy_change_reaches_host_endpoints_without_a_rebuild() {
    let scope = Scope {
        node_name: Some("bm1".to_owned()),
        host_addrs: Vec::new(),
    };
    let admin = |maps: &MapContents, port| {
        allows(
            maps,
            &tcp("10.42.9.5", "10.99.0.10", port),
            Direction::ToEndpoint,
        )
    };
    let mut compiler = Compiler::new();
    let before = compiler.compile(&host_endpoint_cluster(2222), &scope);
    assert!(admin(&before.maps, 2222) && !admin(&before.maps, 2223));
    drop(before);
    let after = compiler.compile(&host_endpoint_cluster(2223), &scope);
    assert!(admin(&after.maps, 2223) && !admin(&after.maps, 2222));
    // A rebuild renumbers every identity (and reports every key changed).
    assert!(after.changes.identities.is_empty(), "{:?}", after.changes);
}

#[test]
fn source_ports_cost_one_class_per_distinct_match_and_only_their_protocol() {
    let yaml = r#"
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: bm1-eth0, labels: {role: bare-metal}}
spec: {node: bm1, interfaceName: eth0, expectedIPs: [10.99.0.10]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: no-privileged-sources}
spec:
  selector: role == 'bare-metal'
  types: [Ingress]
  ingress:
    - {action: Deny, protocol: TCP, source: {ports: [80, 443, 8080, "1000:2000"]}}
    - {action: Allow}
"#;
    let cluster = calico_cluster(yaml);
    let scope = Scope {
        node_name: Some("bm1".to_owned()),
        host_addrs: Vec::new(),
    };
    let maps = Compiler::new().compile(&cluster, &scope).maps;
    // Four ranges, one way of matching them: one class besides 0, for TCP only. 80, 443 and
    // 8080 are a prefix each, 1000-2000 is 1000-1023, 1024-2047 less its tail: 8 prefixes.
    let classes: Vec<(u8, u32)> = maps
        .rules
        .iter()
        .filter(|(key, _)| key.data.peer_identity == policy_common::identity::SOURCE_PORTS)
        .map(|(key, value)| (key.data.protocol, value.rule_ref))
        .collect();
    assert!(classes.iter().all(|c| *c == (6, 1)), "{classes:?}");
    let expected_prefixes = 3 + crate::compiler::ports::port_prefixes(1000, 2000).len();
    assert_eq!(classes.len(), expected_prefixes);
    let from = |protocol, sport| Packet {
        src: "10.42.9.5".parse().expect("addr"),
        dst: "10.99.0.10".parse().expect("addr"),
        protocol,
        sport,
        dport: 22_000,
    };
    for (protocol, sport, allowed) in [
        (6, 80, false),
        (6, 81, true),
        (6, 999, true),
        (6, 1000, false),
        (6, 2000, false),
        (6, 2001, true),
        (6, 8080, false),
        (17, 80, true),
        (17, 1500, true),
    ] {
        assert_eq!(
            allows(&maps, &from(protocol, sport), Direction::ToEndpoint),
            allowed,
            "protocol {protocol} source port {sport}"
        );
    }
}

#[test]
fn the_default_allow_profile_decides_what_no_tier_does_on_a_host_endpoint() {
    let cluster = |profiles: &str| {
        let yaml = format!(
            r#"
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {{name: node1-auto, labels: {{role: node}}}}
spec: {{node: node1, interfaceName: eth0, expectedIPs: [10.99.0.10], profiles: [{profiles}]}}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {{name: no-telnet}}
spec:
  selector: role == 'node'
  types: [Ingress]
  ingress:
    - {{action: Deny, protocol: TCP, destination: {{ports: [23]}}}}
    # Without it the tier would end in its default Deny: a profile is only reached when no
    # tier applies or the last one passes.
    - {{action: Pass}}
"#
        );
        calico_cluster(&yaml)
    };
    let scope = Scope {
        node_name: Some("node1".to_owned()),
        host_addrs: Vec::new(),
    };
    let to_host = |maps: &MapContents, port| {
        allows(
            maps,
            &tcp("192.0.2.9", "10.99.0.10", port),
            Direction::ToEndpoint,
        )
    };
    // kube-controllers' automatic host endpoints carry the built-in allow-all profile.
    let auto = Compiler::new()
        .compile(&cluster("projectcalico-default-allow"), &scope)
        .maps;
    assert!(!to_host(&auto, 23), "the policy's Deny still decides first");
    assert!(
        to_host(&auto, 8080),
        "the profile allows what no tier decides"
    );
    assert!(to_host(&auto, 22), "failsafe");
    // Another profile names a Profile resource Palisade does not read: the default deny.
    let other = Compiler::new().compile(&cluster("my-profile"), &scope).maps;
    assert!(!to_host(&other, 23));
    assert!(!to_host(&other, 8080));
    assert!(to_host(&other, 22), "failsafe");
}

/// The pods, a Calico policy letting `frontend` reach only Service `api`'s endpoints, and one
/// EndpointSlice of `api` with these addresses and TCP port.
fn service_egress_cluster(addresses: &[&str], port: u16) -> Cluster {
    let mut cluster = cluster(&[PODS]);
    for resource in crate::calico::resources::parse_documents(
        r#"
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: frontend-to-api, namespace: default}
spec:
  selector: app == 'frontend'
  types: [Egress]
  egress:
    - {action: Allow, destination: {services: {name: api}}}
"#,
    ) {
        cluster.calico.insert(resource.expect("valid resource"));
    }
    let slice = serde_json::json!({
        "metadata": {
            "name": "api-1",
            "namespace": "default",
            "labels": { "kubernetes.io/service-name": "api" },
        },
        "addressType": "IPv4",
        "endpoints": addresses.iter().map(|a| serde_json::json!({ "addresses": [a] })).collect::<Vec<_>>(),
        "ports": [{ "port": port, "protocol": "TCP" }],
    });
    let slice: k8s_openapi::api::discovery::v1::EndpointSlice =
        serde_json::from_value(slice).expect("slice");
    let slice = convert::endpoint_slice(&slice).expect("valid slice");
    cluster
        .endpoint_slices
        .insert((slice.namespace.clone(), slice.name.clone()), slice);
    cluster
}

#[test]
fn a_calico_services_match_follows_the_endpoint_slices() {
    let egress = |maps: &MapContents, dst: &str, port| {
        allows(maps, &tcp("10.42.0.10", dst, port), Direction::FromEndpoint)
    };
    let mut compiler = Compiler::new();
    let maps = compiler
        .compile(
            &service_egress_cluster(&["10.42.0.11"], 8000),
            &Scope::default(),
        )
        .maps;
    assert!(egress(&maps, "10.42.0.11", 8000));
    assert!(!egress(&maps, "10.42.0.11", 8001));
    assert!(!egress(&maps, "10.42.0.13", 8000));
    assert!(!allows(
        &maps,
        &packet("10.42.0.10", "10.42.0.11", 17, 8000),
        Direction::FromEndpoint
    ));
    drop(maps);
    // The Service's pod moves: the same compiler follows it.
    let maps = compiler
        .compile(
            &service_egress_cluster(&["10.42.0.13"], 8000),
            &Scope::default(),
        )
        .maps;
    assert!(egress(&maps, "10.42.0.13", 8000));
    assert!(!egress(&maps, "10.42.0.11", 8000));
    drop(maps);
    // Only its port changes: followed too.
    let maps = compiler
        .compile(
            &service_egress_cluster(&["10.42.0.13"], 9000),
            &Scope::default(),
        )
        .maps;
    assert!(egress(&maps, "10.42.0.13", 9000));
    assert!(!egress(&maps, "10.42.0.13", 8000));
    drop(maps);
    // No endpoints: the rule matches nothing, the tier's default denies.
    let maps = compiler
        .compile(&service_egress_cluster(&[], 9000), &Scope::default())
        .maps;
    assert!(!egress(&maps, "10.42.0.13", 9000));
}
