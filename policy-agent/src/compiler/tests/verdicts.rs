//! What the seed's policies allow and deny, and the policy rule a verdict names.

use crate::{
    compiler::{Compiler, Scope},
    replay::{Direction, allows, allows_between_endpoints},
};

use super::fixtures::{
    ALLOW_FRONTEND_TO_BACKEND, BACKEND, BACKEND_2, DENY_ALL_INGRESS_TO_BACKEND, FRONTEND, OTHER,
    PODS, PROD_FRONTEND, cluster, compile, packet, tcp,
};

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
            crate::compiler::PolicyDirection::Ingress,
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
