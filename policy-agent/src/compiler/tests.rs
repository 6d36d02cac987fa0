//! Compiler unit tests on the seed's constructs, checked through the userspace replay of the
//! datapath's lookups (`crate::replay`), so they test what the kernel would decide.

use std::{net::IpAddr, sync::Arc};

use k8s_openapi::api::{core::v1 as core, networking::v1 as networking};
use serde::Deserialize;

use super::{Compiler, MapContents, Scope};
use crate::{
    model::{Cluster, convert},
    replay::{Direction, Packet, allows, allows_between_endpoints},
};

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: frontend, namespace: default, labels: {app: frontend}}
spec: {containers: [{name: nginx, image: nginx:alpine, ports: [{containerPort: 80, name: http}]}]}
status: {podIP: 10.42.0.10, phase: Running}
---
apiVersion: v1
kind: Pod
metadata: {name: backend, namespace: default, labels: {app: backend}}
spec: {containers: [{name: python, image: python:3.9-slim}]}
status: {podIP: 10.42.0.11, phase: Running}
---
apiVersion: v1
kind: Pod
metadata: {name: other, namespace: default}
spec: {containers: [{name: c, image: busybox}]}
status: {podIP: 10.42.0.12, phase: Running}
---
apiVersion: v1
kind: Pod
metadata: {name: backend-2, namespace: default, labels: {app: backend}}
spec: {containers: [{name: python, image: python:3.9-slim}]}
status: {podIP: 10.42.0.13, phase: Running}
---
apiVersion: v1
kind: Pod
metadata: {name: elsewhere, namespace: prod, labels: {app: frontend}}
spec: {containers: [{name: c, image: busybox}]}
status: {podIP: 10.42.0.14, phase: Running}
"#;

const DENY_ALL_INGRESS_TO_BACKEND: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: deny-all-ingress-to-backend
  namespace: default
spec:
  podSelector:
    matchLabels:
      app: backend
  policyTypes:
  - Ingress
"#;

const ALLOW_FRONTEND_TO_BACKEND: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-frontend-to-backend
  namespace: default
spec:
  podSelector:
    matchLabels:
      app: backend
  policyTypes:
  - Ingress
  ingress:
  - from:
    - podSelector:
        matchLabels:
          app: frontend
    ports:
    - protocol: TCP
      port: 8000
"#;

fn cluster(manifests: &[&str]) -> Cluster {
    let mut cluster = Cluster::default();
    for manifest in manifests {
        for doc in serde_yaml::Deserializer::from_str(manifest) {
            let value = serde_yaml::Value::deserialize(doc).expect("test manifest is YAML");
            match value.get("kind").and_then(|k| k.as_str()) {
                Some("Pod") => {
                    let pod: core::Pod = serde_yaml::from_value(value).expect("pod");
                    let pod = convert::pod(&pod).expect("valid pod");
                    cluster
                        .pods
                        .insert((pod.namespace.clone(), pod.name.clone()), pod.into());
                }
                Some("NetworkPolicy") => {
                    let np: networking::NetworkPolicy =
                        serde_yaml::from_value(value).expect("policy");
                    let np = convert::network_policy(&np).expect("valid policy");
                    cluster
                        .policies
                        .insert((np.namespace.clone(), np.name.clone()), np.into());
                }
                Some("Namespace") => {
                    let ns: core::Namespace = serde_yaml::from_value(value).expect("ns");
                    let ns = convert::namespace(&ns).expect("valid namespace");
                    cluster.namespaces.insert(ns.name.clone(), ns.into());
                }
                other => panic!("unexpected kind {other:?}"),
            }
        }
    }
    cluster
}

fn compile(manifests: &[&str]) -> MapContents {
    Arc::unwrap_or_clone(
        Compiler::new()
            .compile(&cluster(manifests), &Scope::default())
            .maps,
    )
}

fn tcp(src: &str, dst: &str, dport: u16) -> Packet {
    packet(src, dst, 6, dport)
}

fn packet(src: &str, dst: &str, protocol: u8, dport: u16) -> Packet {
    Packet {
        src: src.parse::<IpAddr>().expect("test address"),
        dst: dst.parse::<IpAddr>().expect("test address"),
        protocol,
        sport: 40_000,
        dport,
    }
}

const FRONTEND: &str = "10.42.0.10";
const BACKEND: &str = "10.42.0.11";
const OTHER: &str = "10.42.0.12";
const BACKEND_2: &str = "10.42.0.13";
const PROD_FRONTEND: &str = "10.42.0.14";

#[test]
fn without_policies_everything_is_allowed() {
    let maps = compile(&[PODS]);
    assert!(allows_between_endpoints(
        &maps,
        &tcp(FRONTEND, BACKEND, 8000)
    ));
    assert!(allows_between_endpoints(&maps, &tcp(OTHER, BACKEND, 1)));
    assert!(maps.rules.is_empty());
    assert!(
        maps.endpoints
            .values()
            .all(|e| e.ingress.isolated == 0 && e.egress.isolated == 0)
    );
}

#[test]
fn deny_all_ingress_isolates_only_the_selected_pods_and_only_for_ingress() {
    let maps = compile(&[PODS, DENY_ALL_INGRESS_TO_BACKEND]);
    for peer in [FRONTEND, OTHER, PROD_FRONTEND] {
        assert!(!allows(
            &maps,
            &tcp(peer, BACKEND, 8000),
            Direction::ToEndpoint
        ));
        assert!(!allows(
            &maps,
            &tcp(peer, BACKEND_2, 8000),
            Direction::ToEndpoint
        ));
    }
    // Backend's egress and everyone else's ingress are untouched.
    assert!(allows(
        &maps,
        &tcp(BACKEND, FRONTEND, 80),
        Direction::FromEndpoint
    ));
    assert!(allows_between_endpoints(&maps, &tcp(BACKEND, FRONTEND, 80)));
    assert!(allows_between_endpoints(&maps, &tcp(OTHER, FRONTEND, 80)));
    // Traffic from the node is always allowed.
    let mut with_host = cluster(&[PODS, DENY_ALL_INGRESS_TO_BACKEND]);
    with_host.namespaces.clear();
    let maps = Compiler::new()
        .compile(
            &with_host,
            &Scope {
                node_name: None,
                host_addrs: vec!["192.168.1.1".parse().expect("addr")],
            },
        )
        .maps;
    assert!(allows(
        &maps,
        &tcp("192.168.1.1", BACKEND, 8000),
        Direction::ToEndpoint
    ));
}

#[test]
fn allow_rule_opens_exactly_its_peer_port_and_protocol() {
    let maps = compile(&[PODS, DENY_ALL_INGRESS_TO_BACKEND, ALLOW_FRONTEND_TO_BACKEND]);
    assert!(allows_between_endpoints(
        &maps,
        &tcp(FRONTEND, BACKEND, 8000)
    ));
    assert!(allows_between_endpoints(
        &maps,
        &tcp(FRONTEND, BACKEND_2, 8000)
    ));
    assert!(!allows_between_endpoints(
        &maps,
        &tcp(FRONTEND, BACKEND, 8001)
    ));
    assert!(!allows_between_endpoints(
        &maps,
        &tcp(FRONTEND, BACKEND, 80)
    ));
    assert!(!allows_between_endpoints(
        &maps,
        &packet(FRONTEND, BACKEND, 17, 8000)
    ));
    assert!(!allows_between_endpoints(&maps, &tcp(OTHER, BACKEND, 8000)));
    // A podSelector peer means the policy's own namespace only.
    assert!(!allows(
        &maps,
        &tcp(PROD_FRONTEND, BACKEND, 8000),
        Direction::ToEndpoint
    ));
    // Addresses outside the cluster are not frontend.
    assert!(!allows(
        &maps,
        &tcp("203.0.113.9", BACKEND, 8000),
        Direction::ToEndpoint
    ));
}

#[test]
fn pods_selected_by_the_same_policies_share_entries() {
    let maps = compile(&[PODS, DENY_ALL_INGRESS_TO_BACKEND, ALLOW_FRONTEND_TO_BACKEND]);
    let key = |ip: &str| policy_common::endpoint::EndpointKey {
        addr: super::identity_addr(ip.parse().expect("addr")),
    };
    assert_eq!(
        maps.endpoints[&key(BACKEND)],
        maps.endpoints[&key(BACKEND_2)]
    );
    // One rule entry serves both backends: frontend's identity, TCP 8000.
    assert_eq!(maps.rules.len(), 1);
}

#[test]
fn empty_pod_selector_selects_every_pod_of_its_namespace_only() {
    let deny_all = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: default}
spec:
  podSelector: {}
"#;
    let maps = compile(&[PODS, deny_all]);
    for pod in [FRONTEND, BACKEND, OTHER, BACKEND_2] {
        assert!(!allows(
            &maps,
            &tcp(PROD_FRONTEND, pod, 80),
            Direction::ToEndpoint
        ));
        // policyTypes absent and no egress rules: egress stays open.
        assert!(allows(
            &maps,
            &tcp(pod, PROD_FRONTEND, 80),
            Direction::FromEndpoint
        ));
    }
    assert!(allows(
        &maps,
        &tcp(FRONTEND, PROD_FRONTEND, 80),
        Direction::ToEndpoint
    ));
}

#[test]
fn policy_union_is_additive() {
    let allow_other = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-other, namespace: default}
spec:
  podSelector: {matchLabels: {app: backend}}
  ingress:
  - from: [{podSelector: {matchExpressions: [{key: app, operator: DoesNotExist}]}}]
    ports: [{port: 9000, endPort: 9010}]
"#;
    let maps = compile(&[PODS, ALLOW_FRONTEND_TO_BACKEND, allow_other]);
    assert!(allows(
        &maps,
        &tcp(FRONTEND, BACKEND, 8000),
        Direction::ToEndpoint
    ));
    assert!(allows(
        &maps,
        &tcp(OTHER, BACKEND, 9005),
        Direction::ToEndpoint
    ));
    assert!(!allows(
        &maps,
        &tcp(OTHER, BACKEND, 9011),
        Direction::ToEndpoint
    ));
    assert!(!allows(
        &maps,
        &tcp(FRONTEND, BACKEND, 9005),
        Direction::ToEndpoint
    ));
}

#[test]
fn a_label_change_rewrites_only_the_moved_address() {
    let mut compiler = Compiler::new();
    let mut cluster = cluster(&[PODS, DENY_ALL_INGRESS_TO_BACKEND, ALLOW_FRONTEND_TO_BACKEND]);
    let before = compiler.compile(&cluster, &Scope::default()).maps;
    let other = std::sync::Arc::make_mut(
        cluster
            .pods
            .get_mut(&("default".to_owned(), "other".to_owned()))
            .expect("other pod"),
    );
    other.labels.insert("app".into(), "frontend".into());
    let after = compiler.compile(&cluster, &Scope::default()).maps;
    assert!(allows(
        &after,
        &tcp(OTHER, BACKEND, 8000),
        Direction::ToEndpoint
    ));
    assert_eq!(before.rules, after.rules);
    assert_eq!(before.endpoints, after.endpoints);
    let changed: Vec<_> = after
        .identities
        .iter()
        .filter(|(k, v)| before.identities.get(k) != Some(v))
        .collect();
    assert_eq!(changed.len(), 1, "only other's address moves: {changed:?}");
}

#[test]
fn an_ip_block_covering_every_pod_costs_one_entry_per_port_block() {
    let egress_to_cluster = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: to-cluster, namespace: default}
spec:
  podSelector: {matchLabels: {app: frontend}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 10.42.0.0/16, except: [10.42.0.12/32]}}]
    ports: [{port: 443}]
"#;
    let maps = compile(&[PODS, egress_to_cluster]);
    // Selected pods' classes do not multiply the ipBlock: one CIDR class, one port.
    assert_eq!(maps.rules.len(), 1, "{:?}", maps.rules);
    assert!(allows(
        &maps,
        &tcp(FRONTEND, BACKEND, 443),
        Direction::FromEndpoint
    ));
    assert!(allows(
        &maps,
        &tcp(FRONTEND, "10.42.9.9", 443),
        Direction::FromEndpoint
    ));
    assert!(!allows(
        &maps,
        &tcp(FRONTEND, OTHER, 443),
        Direction::FromEndpoint
    ));
    assert!(!allows(
        &maps,
        &tcp(FRONTEND, BACKEND, 80),
        Direction::FromEndpoint
    ));
    assert!(!allows(
        &maps,
        &tcp(FRONTEND, "192.0.2.1", 443),
        Direction::FromEndpoint
    ));
}

/// `n` namespaces, each with one pod and the same "allow TCP 53 from app=dns" policy.
fn same_policy_in_namespaces(n: usize) -> Cluster {
    let mut manifests = Vec::new();
    for i in 0..n {
        manifests.push(format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: p, namespace: ns{i}, labels: {{app: dns}}}}
spec: {{containers: [{{name: c, image: busybox}}]}}
status: {{podIP: 10.42.1.{i}, phase: Running}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: dns, namespace: ns{i}}}
spec:
  podSelector: {{}}
  ingress:
  - from: [{{namespaceSelector: {{}}, podSelector: {{matchLabels: {{app: dns}}}}}}]
    ports: [{{protocol: TCP, port: 53}}]
"#
        ));
    }
    let refs: Vec<&str> = manifests.iter().map(String::as_str).collect();
    cluster(&refs)
}

#[test]
fn policies_with_the_same_rules_share_one_table() {
    let one = Compiler::new()
        .compile(&same_policy_in_namespaces(1), &Scope::default())
        .maps;
    let ten = Compiler::new()
        .compile(&same_policy_in_namespaces(10), &Scope::default())
        .maps;
    let tables = |maps: &MapContents| {
        maps.endpoints
            .values()
            .map(|e| e.ingress.tables[0].table)
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(tables(&ten).len(), 1, "ten policies, one table");
    // One entry per pod identity the peer matches (one per namespace), not per policy.
    assert_eq!(one.rules.len(), 1);
    assert_eq!(ten.rules.len(), 10);
    assert!(allows(
        &ten,
        &tcp("10.42.1.3", "10.42.1.7", 53),
        Direction::ToEndpoint
    ));
    assert!(!allows(
        &ten,
        &tcp("10.42.1.3", "10.42.1.7", 54),
        Direction::ToEndpoint
    ));
}

#[test]
fn an_endpoint_selected_by_more_policies_than_separate_tables_merges_the_rest_exactly() {
    let mut manifests = vec![PODS.to_owned()];
    // 20 policies on backend, policy i opening TCP port 1000 + i to frontend.
    for i in 0..20 {
        manifests.push(format!(
            r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: p{i:02}, namespace: default}}
spec:
  podSelector: {{matchLabels: {{app: backend}}}}
  ingress:
  - from: [{{podSelector: {{matchLabels: {{app: frontend}}}}}}]
    ports: [{{port: {}}}]
"#,
            1000 + i
        ));
    }
    let refs: Vec<&str> = manifests.iter().map(String::as_str).collect();
    let compiled = Compiler::new().compile(&cluster(&refs), &Scope::default());
    let maps = &compiled.maps;
    let backend = &maps.endpoints[&policy_common::endpoint::EndpointKey {
        addr: super::identity_addr(BACKEND.parse().expect("addr")),
    }];
    assert_eq!(
        backend.ingress.count as usize,
        super::tables::SEPARATE_TABLES
    );
    for i in 0..20 {
        assert!(
            allows(
                maps,
                &tcp(FRONTEND, BACKEND, 1000 + i),
                Direction::ToEndpoint
            ),
            "port {}",
            1000 + i
        );
    }
    assert!(!allows(
        maps,
        &tcp(FRONTEND, BACKEND, 1020),
        Direction::ToEndpoint
    ));
    // The last port comes from p19, a member of the merged last table.
    let decision =
        crate::replay::decide(maps, &tcp(FRONTEND, BACKEND, 1019), Direction::ToEndpoint);
    let crate::replay::Reason::Rule { slot, rule_ref, .. } = decision.reason else {
        panic!("decided by a rule: {decision:?}");
    };
    assert_eq!(
        compiled.explain(
            BACKEND.parse().expect("addr"),
            super::PolicyDirection::Ingress,
            slot,
            rule_ref
        ),
        Some("NetworkPolicy default/p19 ingress[0]".to_owned())
    );
}

#[test]
fn a_verdict_is_explained_by_the_policy_rule_that_made_it() {
    let compiled = Compiler::new().compile(
        &cluster(&[PODS, DENY_ALL_INGRESS_TO_BACKEND, ALLOW_FRONTEND_TO_BACKEND]),
        &Scope::default(),
    );
    let decision = crate::replay::decide(
        &compiled.maps,
        &tcp(FRONTEND, BACKEND, 8000),
        Direction::ToEndpoint,
    );
    assert!(decision.allowed);
    let crate::replay::Reason::Rule { slot, rule_ref, .. } = decision.reason else {
        panic!("decided by a rule: {decision:?}");
    };
    assert_eq!(
        compiled.explain(
            BACKEND.parse().expect("addr"),
            super::PolicyDirection::Ingress,
            slot,
            rule_ref
        ),
        Some("NetworkPolicy default/allow-frontend-to-backend ingress[0]".to_owned())
    );
    let denied = crate::replay::decide(
        &compiled.maps,
        &tcp(OTHER, BACKEND, 8000),
        Direction::ToEndpoint,
    );
    assert_eq!(denied.reason, crate::replay::Reason::NoRule);
}

#[test]
fn adding_a_policy_touches_only_its_own_entries_and_its_endpoints() {
    let mut compiler = Compiler::new();
    let mut cluster = cluster(&[PODS, DENY_ALL_INGRESS_TO_BACKEND, ALLOW_FRONTEND_TO_BACKEND]);
    let before = compiler.compile(&cluster, &Scope::default()).maps;
    let mut added = cluster
        .policies
        .get(&("default".to_owned(), "allow-frontend-to-backend".to_owned()))
        .expect("policy")
        .as_ref()
        .clone();
    added.name = "allow-frontend-to-backend-9000".into();
    if let Some(rule) = added.ingress.as_mut().and_then(|r| r.first_mut()) {
        rule.ports = Some(vec![crate::model::PortMatch::Range {
            protocol: crate::model::Protocol::Tcp,
            first: 9000,
            last: 9000,
        }]);
    }
    cluster
        .policies
        .insert((added.namespace.clone(), added.name.clone()), added.into());
    let after = compiler.compile(&cluster, &Scope::default()).maps;
    assert_eq!(before.identities, after.identities, "no identity moves");
    let new_rules: Vec<_> = after
        .rules
        .keys()
        .filter(|k| !before.rules.contains_key(k))
        .collect();
    // The backends' two policies share one merged table (see `SEPARATE_TABLES`): it is new,
    // with both ports, and the old table with port 8000 alone goes.
    assert_eq!(new_rules.len(), 2, "the new merged table: 8000 and 9000");
    let removed = before
        .rules
        .keys()
        .filter(|k| !after.rules.contains_key(k))
        .count();
    assert_eq!(removed, 1, "the old table, now unused");
    let moved: Vec<_> = after
        .endpoints
        .iter()
        .filter(|(k, v)| before.endpoints.get(k) != Some(v))
        .collect();
    assert_eq!(moved.len(), 2, "the two backends get the new table");
    assert!(allows(
        &after,
        &tcp(FRONTEND, BACKEND, 9000),
        Direction::ToEndpoint
    ));
}

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
