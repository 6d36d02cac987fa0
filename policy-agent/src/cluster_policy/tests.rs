//! Validation (every refusal names its field) and translation of administrators' policy.

use super::*;
use crate::{
    calico::resources::{Action, PortMatch},
    calico::selector::Selector,
};

fn parse(kind: ApiKind, yaml: &str) -> Result<ClusterPolicy, ClusterPolicyError> {
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).expect("test YAML");
    parse_value(kind, value)
}

const CNP: &str = r#"
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: guard}
spec:
  tier: Admin
  priority: 10
  subject: {pods: {podSelector: {matchLabels: {app: web}}}}
  ingress:
    - name: from-monitoring
      action: Accept
      from:
        - namespaces: {matchLabels: {team: monitoring}}
        - pods: {namespaceSelector: {}, podSelector: {matchExpressions: [{key: role, operator: NotIn, values: [x]}]}}
      protocols:
        - tcp: {destinationPort: {number: 80}}
        - udp: {destinationPort: {range: {start: 5000, end: 5100}}}
        - destinationNamedPort: http
  egress:
    - action: Deny
      to: [{networks: [10.0.0.1/8, "fd00::/8"]}]
"#;

#[test]
fn a_cluster_network_policy_validates_into_its_meaning() {
    let policy = parse(ApiKind::ClusterNetworkPolicy, CNP).expect("valid");
    assert_eq!(policy.tier, PolicyTier::Admin);
    assert_eq!(policy.priority, 10);
    assert_eq!(policy.ingress[0].peers.len(), 2);
    assert_eq!(
        policy.ingress[0].ports.as_deref(),
        Some(
            &[
                ClusterPort::Range {
                    protocol: Protocol::Tcp,
                    first: 80,
                    last: 80
                },
                ClusterPort::Range {
                    protocol: Protocol::Udp,
                    first: 5000,
                    last: 5100
                },
                ClusterPort::Named("http".into()),
            ][..]
        )
    );
    // CIDRs are truncated to their network, as the compiler keys them.
    assert_eq!(
        policy.egress[0].peers,
        vec![ClusterPeer::Networks(vec![
            "10.0.0.0/8".parse().expect("cidr"),
            "fd00::/8".parse().expect("cidr"),
        ])]
    );
}

#[test]
fn the_translation_is_a_global_policy_in_the_built_in_tier() {
    let policy = parse(ApiKind::ClusterNetworkPolicy, CNP).expect("valid");
    let calico = translate::to_calico(&policy);
    assert_eq!(calico.name, "kcnp.kube-admin.guard");
    assert_eq!(calico.tier, ADMIN_TIER);
    assert_eq!(calico.order, Some(10.0));
    assert_eq!(calico.namespace_selector, Some(Selector::All));
    assert!(calico.types.ingress && calico.types.egress);
    // Two peers x (TCP with 80 and the named port, UDP with the range and the named port,
    // SCTP with the named port).
    assert_eq!(calico.ingress.len(), 6);
    assert!(calico.ingress.iter().all(|r| r.action == Action::Allow));
    let sctp = &calico.ingress[2];
    assert_eq!(
        sctp.destination.ports,
        vec![PortMatch::Named("http".into())]
    );
    assert_eq!(
        sctp.annotations
            .get(translate::RULE_NAME_ANNOTATION)
            .map(String::as_str),
        Some("from-monitoring")
    );
    assert_eq!(calico.egress.len(), 1);
    assert_eq!(calico.egress[0].destination.nets.len(), 2);
    assert_eq!(
        origin_of(&calico.name),
        Some((ApiKind::ClusterNetworkPolicy, PolicyTier::Admin, "guard"))
    );
}

#[test]
fn v1alpha1_policies_map_onto_the_same_tiers() {
    let anp = parse(
        ApiKind::AdminNetworkPolicy,
        r#"
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: a}
spec:
  priority: 3
  subject: {namespaces: {}}
  egress:
    - action: Pass
      to: [{pods: {namespaceSelector: {}, podSelector: {}}}]
      ports: [{portNumber: {port: 53, protocol: UDP}}, {portRange: {start: 1, end: 9}}]
"#,
    )
    .expect("valid");
    assert_eq!(anp.tier, PolicyTier::Admin);
    assert_eq!(anp.egress[0].action, RuleAction::Pass);
    assert_eq!(
        anp.egress[0].ports.as_deref().map(<[ClusterPort]>::len),
        Some(2)
    );
    let banp = parse(
        ApiKind::BaselineAdminNetworkPolicy,
        r#"
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
  ingress: [{action: Deny, from: [{namespaces: {}}]}]
"#,
    )
    .expect("valid");
    assert_eq!(banp.tier, PolicyTier::Baseline);
    assert_eq!(
        translate::calico_name(&banp),
        "kbanp.baselineadminnetworkpolicy.default"
    );
}

/// Each refusal, with the field it names.
#[test]
fn invalid_policies_are_refused_with_the_field_named() {
    let cases: &[(ApiKind, &str, &str)] = &[
        (
            ApiKind::ClusterNetworkPolicy,
            "spec: {tier: Middle, priority: 1, subject: {namespaces: {}}}",
            "spec.tier",
        ),
        (
            ApiKind::ClusterNetworkPolicy,
            "spec: {tier: Admin, priority: 1001, subject: {namespaces: {}}}",
            "spec.priority",
        ),
        (
            ApiKind::ClusterNetworkPolicy,
            "spec: {tier: Admin, priority: 1, subject: {}}",
            "spec.subject",
        ),
        (
            ApiKind::ClusterNetworkPolicy,
            "spec: {tier: Admin, priority: 1, subject: {namespaces: {}}, egress: [{action: Accept, to: [{nodes: {}}]}]}",
            "spec.egress[0].to[0].nodes",
        ),
        (
            ApiKind::ClusterNetworkPolicy,
            "spec: {tier: Admin, priority: 1, subject: {namespaces: {}}, egress: [{action: Accept, to: [{domainNames: [a.example]}]}]}",
            "spec.egress[0].to[0].domainNames",
        ),
        (
            ApiKind::ClusterNetworkPolicy,
            "spec: {tier: Admin, priority: 1, subject: {namespaces: {}}, egress: [{action: Deny, to: [{networks: [10.0.0.0/8]}], protocols: [{destinationNamedPort: http}]}]}",
            "spec.egress[0].protocols",
        ),
        (
            ApiKind::ClusterNetworkPolicy,
            "spec: {tier: Admin, priority: 1, subject: {namespaces: {}}, ingress: [{action: Deny, from: [{namespaces: {}}], protocols: [{tcp: {destinationPort: {range: {start: 9, end: 9}}}}]}]}",
            "spec.ingress[0].protocols[0].tcp.destinationPort.range",
        ),
        (
            ApiKind::ClusterNetworkPolicy,
            "spec: {tier: Admin, priority: 1, subject: {namespaces: {}}, ingress: [{action: Allow, from: [{namespaces: {}}]}]}",
            "spec.ingress[0].action",
        ),
        (
            ApiKind::ClusterNetworkPolicy,
            "spec: {tier: Admin, priority: 1, subject: {namespaces: {}}, ingress: [{action: Deny, from: [{networks: [10.0.0.0/8]}]}]}",
            "spec.ingress[0].from[0].networks",
        ),
        (
            ApiKind::ClusterNetworkPolicy,
            "spec: {tier: Admin, priority: 1, subject: {namespaces: {}}, egress: [{action: Deny, to: [{networks: [10.0.0.0/33]}]}]}",
            "spec.egress[0].to[0].networks[0]",
        ),
        (
            ApiKind::AdminNetworkPolicy,
            "spec: {priority: 1, subject: {namespaces: {}}, ingress: [{action: Accept, from: [{namespaces: {}}]}]}",
            "spec.ingress[0].action",
        ),
        (
            ApiKind::AdminNetworkPolicy,
            "spec: {priority: 1, subject: {namespaces: {sameLabels: [x]}}}",
            "spec.subject.namespaces.sameLabels",
        ),
        (
            ApiKind::AdminNetworkPolicy,
            "spec: {priority: 1, subject: {pods: {podSelector: {}}}}",
            "spec.subject.pods.namespaceSelector",
        ),
        (
            ApiKind::AdminNetworkPolicy,
            "spec: {priority: 1, subject: {namespaces: {}}, ingress: [{action: Deny, from: [{namespaces: {}}], ports: [{portNumber: {port: 80, protocol: ICMP}}]}]}",
            "spec.ingress[0].ports[0].portNumber.protocol",
        ),
        (
            ApiKind::BaselineAdminNetworkPolicy,
            "spec: {subject: {namespaces: {}}, ingress: [{action: Pass, from: [{namespaces: {}}]}]}",
            "metadata.name",
        ),
        (
            ApiKind::ClusterNetworkPolicy,
            "spec: {tier: Admin, priority: 1, subject: {namespaces: {matchExpressions: [{key: a, operator: Exists}, {key: projectcalico.org/name, operator: DoesNotExist}]}}}",
            "spec.subject.namespaces.matchExpressions[1].key",
        ),
        (
            ApiKind::ClusterNetworkPolicy,
            "spec: {tier: Admin, priority: 1, subject: {pods: {podSelector: {matchLabels: {projectcalico.org/namespace: dev}}}}}",
            "spec.subject.pods.podSelector.matchLabels",
        ),
    ];
    for (kind, spec, field) in cases {
        let name = if *kind == ApiKind::BaselineAdminNetworkPolicy {
            "not-default"
        } else {
            "p"
        };
        let yaml = format!(
            "apiVersion: {}\nkind: {}\nmetadata: {{name: {name}}}\n{spec}\n",
            kind.api_version(),
            kind.as_str()
        );
        match parse(*kind, &yaml) {
            Ok(_) => panic!("{kind} accepted: {spec}"),
            Err(e) => assert_eq!(&e.field, field, "{spec}: {}", e.message),
        }
    }
}

#[test]
fn a_baseline_policy_named_default_may_not_pass() {
    let e = parse(
        ApiKind::BaselineAdminNetworkPolicy,
        "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\nmetadata: {name: default}\nspec: {subject: {namespaces: {}}, ingress: [{action: Pass, from: [{namespaces: {}}]}]}\n",
    )
    .expect_err("Pass is not a baseline action");
    assert_eq!(e.field, "spec.ingress[0].action");
}
