//! Kubernetes NetworkPolicies among Calico's: placed in tier `default` at order 1000.

use k8s_openapi::api::networking::v1::NetworkPolicy;

use super::*;

fn knp(yaml: &str) -> NetworkPolicy {
    serde_yaml::from_str(yaml).expect("test NetworkPolicy")
}

#[test]
fn kubernetes_policy_sits_in_the_default_tier_at_order_1000() {
    let mut world = with(
        "
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: deny-80, namespace: prod}
spec:
  order: 500
  selector: app == 'web'
  ingress: [{action: Deny, protocol: TCP, destination: {ports: [80]}}]
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: allow-82, namespace: prod}
spec:
  order: 1500
  selector: app == 'web'
  ingress: [{action: Allow, protocol: TCP, destination: {ports: [82]}}]
",
    );
    world.k8s_policies.push(knp("
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-web, namespace: prod}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - ports: [{port: 80}, {port: 81}]
"));
    let at = |port| world.verdict(&tcp(CLIENT, WEB, port));

    let d80 = at(80);
    assert!(
        !d80.allowed,
        "the order-500 Deny comes before the Kubernetes Allow"
    );
    assert_eq!(
        decider(&d80, Direction::Ingress),
        Some(("default".to_owned(), "deny-80".to_owned(), 0))
    );
    let d81 = at(81);
    assert!(d81.allowed);
    assert_eq!(
        decider(&d81, Direction::Ingress),
        Some(("default".to_owned(), "knp.default.allow-web".to_owned(), 0))
    );
    let d82 = at(82);
    assert!(d82.allowed, "the order-1500 Allow is reached");
    let trace = d82.ingress.trace().expect("evaluated");
    let consulted: Vec<(&str, Option<f64>)> = trace.tiers[0]
        .policies
        .iter()
        .map(|p| (p.policy.name.as_str(), p.order))
        .collect();
    assert_eq!(
        consulted,
        [
            ("deny-80", Some(500.0)),
            ("knp.default.allow-web", Some(1000.0)),
            ("allow-82", Some(1500.0)),
        ]
    );
    assert_eq!(trace.tiers[0].order, Some(DEFAULT_TIER_ORDER));
    let d83 = at(83);
    assert!(!d83.allowed);
    assert_eq!(
        d83.decided_by(Direction::Ingress),
        Some(&DecidedBy::TierDefault {
            tier: "default".to_owned()
        })
    );
    let text = d81.to_string();
    assert!(
        text.contains("Kubernetes NetworkPolicy prod/knp.default.allow-web"),
        "{text}"
    );
}
