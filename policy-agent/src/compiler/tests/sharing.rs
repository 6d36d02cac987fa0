//! What the maps cost: entries and tables shared by pods and policies, merged tables.

use crate::{
    compiler::{Compiler, MapContents, Scope},
    model::Cluster,
    replay::{Direction, allows},
};

use super::fixtures::{
    ALLOW_FRONTEND_TO_BACKEND, BACKEND, BACKEND_2, DENY_ALL_INGRESS_TO_BACKEND, FRONTEND, OTHER,
    PODS, cluster, compile, tcp,
};

#[test]
fn pods_selected_by_the_same_policies_share_entries() {
    let maps = compile(&[PODS, DENY_ALL_INGRESS_TO_BACKEND, ALLOW_FRONTEND_TO_BACKEND]);
    let key = |ip: &str| policy_common::endpoint::EndpointKey {
        addr: crate::compiler::identity_addr(ip.parse().expect("addr")),
    };
    assert_eq!(
        maps.endpoints[&key(BACKEND)],
        maps.endpoints[&key(BACKEND_2)]
    );
    // One rule entry serves both backends: frontend's identity, TCP 8000.
    assert_eq!(maps.rules.len(), 1);
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
        addr: crate::compiler::identity_addr(BACKEND.parse().expect("addr")),
    }];
    assert_eq!(
        backend.ingress.count as usize,
        crate::compiler::tables::SEPARATE_TABLES
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
            crate::compiler::PolicyDirection::Ingress,
            slot,
            rule_ref
        ),
        Some("NetworkPolicy default/p19 ingress[0]".to_owned())
    );
}
