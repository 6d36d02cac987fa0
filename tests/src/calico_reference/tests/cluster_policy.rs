//! Administrators' policy (network-policy-api): the `kube-admin` and `kube-baseline` tiers
//! around the NetworkPolicies, priorities, peers, ports, and Calico tiers around them.

use super::*;

// ---- Administrators' policy (network-policy-api) ----

/// [`base`] plus every object of `yaml` ([`CalicoWorld::from_yaml`]: Calico resources,
/// NetworkPolicies and network-policy-api objects).
fn with_objects(yaml: &str) -> CalicoWorld {
    let mut world = base();
    let extra = CalicoWorld::from_yaml(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    world.policies.extend(extra.policies);
    world.tiers.extend(extra.tiers);
    world.k8s_policies.extend(extra.k8s_policies);
    world.cluster_policies.extend(extra.cluster_policies);
    world
}

/// (tier, "Kind name", rule) of what decided `direction`, with the kind as the trace shows it.
fn decided(decision: &Decision, direction: Direction) -> Option<(String, String, usize)> {
    match decision.decided_by(direction)? {
        DecidedBy::Rule {
            tier, policy, rule, ..
        } => Some((tier.clone(), policy.to_string(), *rule)),
        _ => None,
    }
}

fn owned(tier: &str, policy: &str, rule: usize) -> Option<(String, String, usize)> {
    Some((tier.to_owned(), policy.to_owned(), rule))
}

/// Admin: traffic from `dev` into `prod` is the namespace owners' to decide (Pass), anything
/// else into `prod` denied. Baseline: ingress into `prod` accepted.
const ADMIN_PASS: &str = "
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: owners-decide}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {team: a}}}
  ingress:
  - action: Pass
    from: [{namespaces: {matchLabels: {team: b}}}]
  - action: Deny
    from: [{namespaces: {}}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {matchLabels: {team: a}}}
  ingress:
  - action: Allow
    from: [{namespaces: {}}]
";

/// web admits only db, by a NetworkPolicy.
const WEB_FROM_DB: &str = "
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-db, namespace: prod}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: db}}}]
";

#[test]
fn admin_pass_then_network_policy_isolation() {
    let world = with_objects(&format!("{ADMIN_PASS}{WEB_FROM_DB}"));
    // Passed by Admin, then web is isolated by its NetworkPolicy: the default tier denies,
    // and the Baseline Allow is never reached.
    let decision = world.verdict(&tcp(CLIENT, WEB, 80));
    assert!(!decision.allowed, "{decision}");
    assert_eq!(
        decision.decided_by(Direction::Ingress),
        Some(&DecidedBy::TierDefault {
            tier: "default".to_owned()
        })
    );
    assert_eq!(
        tier_names(&decision, Direction::Ingress),
        ["kube-admin", "default"]
    );
    let trace = decision.ingress.trace().expect("evaluated");
    assert!(matches!(
        &trace.tiers[0].end,
        TierEnd::Passed { policy, rule: 0 } if policy.to_string() == "ClusterNetworkPolicy owners-decide"
    ));
    assert!(decision.through_cluster_tiers());
    assert!(!decision.decided_by_cluster_policy());
    // db is not isolated: Passed, no NetworkPolicy selects it, the Baseline allows.
    let decision = world.verdict(&tcp(CLIENT, DB, 80));
    assert!(decision.allowed, "{decision}");
    assert_eq!(
        decided(&decision, Direction::Ingress),
        owned("kube-baseline", "BaselineAdminNetworkPolicy default", 0)
    );
    // Within prod, the second Admin rule denies before any NetworkPolicy is consulted.
    let decision = world.verdict(&tcp(DB, WEB, 80));
    assert!(!decision.allowed, "{decision}");
    assert_eq!(
        decided(&decision, Direction::Ingress),
        owned("kube-admin", "ClusterNetworkPolicy owners-decide", 1)
    );
    assert!(decision.decided_by_cluster_policy());
    // The trace names the kind, the policy and the written rule.
    let text = decision.to_string();
    assert!(
        text.contains("ClusterNetworkPolicy owners-decide (order 10)")
            && text.contains("ingress[0] Pass: no match (from)")
            && text.contains("ingress[1] Deny: match"),
        "{text}"
    );
}

#[test]
fn baseline_is_reached_only_when_no_network_policy_selects() {
    let baseline_deny = "
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: baseline-deny}
spec:
  tier: Baseline
  priority: 0
  subject: {namespaces: {matchLabels: {team: a}}}
  ingress:
  - action: Deny
    from: [{namespaces: {}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-dev, namespace: prod}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {team: b}}}]
";
    let world = with_objects(baseline_deny);
    // web is selected: its NetworkPolicy allows the client and denies db, with no Baseline.
    let decision = world.verdict(&tcp(CLIENT, WEB, 80));
    assert!(decision.allowed, "{decision}");
    assert_eq!(tier_names(&decision, Direction::Ingress), ["default"]);
    assert!(!decision.through_cluster_tiers());
    let decision = world.verdict(&tcp(DB, WEB, 80));
    assert!(!decision.allowed);
    assert_eq!(
        decision.decided_by(Direction::Ingress),
        Some(&DecidedBy::TierDefault {
            tier: "default".to_owned()
        })
    );
    // db is selected by none: the Baseline denies; an egress-only NetworkPolicy on db does
    // not change its ingress.
    let egress_only = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-egress, namespace: prod}
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Egress]
";
    let world = with_objects(&format!("{baseline_deny}---\n{egress_only}"));
    let decision = world.verdict(&tcp(CLIENT, DB, 80));
    assert!(!decision.allowed);
    assert_eq!(
        decided(&decision, Direction::Ingress),
        owned("kube-baseline", "ClusterNetworkPolicy baseline-deny", 0)
    );
    // A `default` tier declared with defaultAction Pass sends NetworkPolicy-selected pods on
    // to the Baseline: Calico's tiers, not the API's, have the last word there.
    let passing_default = "
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: default}
spec: {order: 1000000, defaultAction: Pass}
";
    let world = with_objects(&format!("{baseline_deny}---\n{passing_default}"));
    let decision = world.verdict(&tcp(DB, WEB, 80));
    assert!(!decision.allowed);
    assert_eq!(
        decided(&decision, Direction::Ingress),
        owned("kube-baseline", "ClusterNetworkPolicy baseline-deny", 0)
    );
}

#[test]
fn equal_priorities_put_admin_network_policies_first_then_names() {
    let policies = "
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: a-accept}
spec:
  tier: Admin
  priority: 5
  subject: {namespaces: {}}
  ingress: [{action: Accept, from: [{namespaces: {}}]}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: z-deny}
spec:
  priority: 5
  subject: {namespaces: {}}
  ingress: [{action: Deny, from: [{namespaces: {}}]}]
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: b-deny}
spec:
  tier: Admin
  priority: 5
  subject: {namespaces: {}}
  egress: [{action: Deny, to: [{namespaces: {}}]}]
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: a-pass}
spec:
  tier: Admin
  priority: 5
  subject: {namespaces: {}}
  egress: [{action: Pass, to: [{namespaces: {}}]}]
";
    let world = with_objects(policies);
    let decision = world.verdict(&tcp(CLIENT, WEB, 80));
    // Ingress: the AdminNetworkPolicy comes before the ClusterNetworkPolicy of the same
    // priority, whatever their names.
    assert_eq!(
        decided(&decision, Direction::Ingress),
        owned("kube-admin", "AdminNetworkPolicy z-deny", 0)
    );
    // Egress: two ClusterNetworkPolicies, by name: a-pass before b-deny.
    assert_eq!(
        decision.decided_by(Direction::Egress),
        Some(&DecidedBy::Profile)
    );
    // A lower priority comes first whatever the kind.
    let first = "
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: zz-first}
spec:
  tier: Admin
  priority: 4
  subject: {namespaces: {}}
  ingress: [{action: Accept, from: [{namespaces: {}}]}]
";
    let world = with_objects(&format!("{policies}{first}"));
    let decision = world.verdict(&tcp(CLIENT, WEB, 80));
    assert!(decision.allowed);
    assert_eq!(
        decided(&decision, Direction::Ingress),
        owned("kube-admin", "ClusterNetworkPolicy zz-first", 0)
    );
}

#[test]
fn named_ports_match_the_destination_pods_port_and_protocol() {
    // web's `http` is 8080/TCP; db has no named port.
    let policies = "
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: http-only}
spec:
  tier: Admin
  priority: 1
  subject: {namespaces: {matchLabels: {team: b}}}
  egress:
  - action: Accept
    to: [{namespaces: {}}]
    protocols: [{destinationNamedPort: http}, {udp: {destinationPort: {range: {start: 50, end: 60}}}}]
  - action: Deny
    to: [{namespaces: {}}]
";
    let world = with_objects(policies);
    assert!(allowed(&world, tcp(CLIENT, WEB, 8080)));
    // The name is a TCP port: UDP to the same number is not it.
    assert!(!allowed(&world, Packet::udp(ip(CLIENT), ip(WEB), 8080)));
    assert!(!allowed(&world, tcp(CLIENT, WEB, 80)));
    assert!(!allowed(&world, tcp(CLIENT, DB, 8080)));
    // The range is UDP's alone.
    assert!(allowed(&world, Packet::udp(ip(CLIENT), ip(DB), 53)));
    assert!(!allowed(&world, tcp(CLIENT, DB, 53)));
    // Rules with ports never match ICMP; the second rule, without ports, does.
    let decision = world.verdict(&Packet::icmp(ip(CLIENT), ip(WEB), 8, 0));
    assert!(!decision.allowed);
    assert_eq!(
        decided(&decision, Direction::Egress),
        owned("kube-admin", "ClusterNetworkPolicy http-only", 1)
    );
    // Not a pod: neither peer kind matches, whatever the port.
    let decision = world.verdict(&tcp(CLIENT, EXTERNAL, 8080));
    assert!(decision.allowed);
    assert!(decision.through_cluster_tiers());
}

#[test]
fn networks_match_pod_addresses_too() {
    let policies = "
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: no-prod-range}
spec:
  tier: Admin
  priority: 1
  subject: {pods: {podSelector: {matchLabels: {app: client}}}}
  egress:
  - action: Deny
    to: [{networks: [10.1.0.0/24]}]
    protocols: [{tcp: {destinationPort: {number: 80}}}]
";
    let world = with_objects(policies);
    let decision = world.verdict(&tcp(CLIENT, WEB, 80));
    assert!(!decision.allowed);
    assert_eq!(
        decided(&decision, Direction::Egress),
        owned("kube-admin", "ClusterNetworkPolicy no-prod-range", 0)
    );
    assert!(allowed(&world, tcp(CLIENT, WEB, 81)));
    assert!(allowed(&world, tcp(CLIENT, EXTERNAL, 80)));
    // The subject's pod selector: db is not a client.
    assert!(allowed(&world, tcp(DB, WEB, 80)));
}

#[test]
fn admin_network_policies_and_cluster_network_policies_share_the_admin_tier() {
    let policies = "
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: pass-dev}
spec:
  priority: 10
  subject: {namespaces: {matchLabels: {team: a}}}
  ingress:
  - action: Pass
    from: [{pods: {namespaceSelector: {matchLabels: {team: b}}, podSelector: {}}}]
    ports: [{portNumber: {port: 80}}]
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: deny-all}
spec:
  tier: Admin
  priority: 20
  subject: {namespaces: {}}
  ingress: [{action: Deny, from: [{namespaces: {}}]}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: kube-admin.calico-allow}
spec:
  tier: kube-admin
  order: 15
  selector: app == 'db'
  ingress: [{action: Allow, protocol: TCP, destination: {ports: [81]}}]
";
    let world = with_objects(policies);
    // The ANP passes TCP 80 from dev (its port's protocol defaults to TCP): the rest of the
    // tier, the CNP's Deny included, is skipped.
    let decision = world.verdict(&tcp(CLIENT, WEB, 80));
    assert!(decision.allowed, "{decision}");
    assert_eq!(tier_names(&decision, Direction::Ingress), ["kube-admin"]);
    assert_eq!(
        decision.decided_by(Direction::Ingress),
        Some(&DecidedBy::Profile)
    );
    assert!(!world.verdict(&Packet::udp(ip(CLIENT), ip(WEB), 80)).allowed);
    // A Calico policy in kube-admin sits between them by order.
    assert_eq!(
        decided(&world.verdict(&tcp(CLIENT, DB, 81)), Direction::Ingress),
        owned(
            "kube-admin",
            "GlobalNetworkPolicy kube-admin.calico-allow",
            0
        )
    );
    assert_eq!(
        decided(&world.verdict(&tcp(CLIENT, DB, 82)), Direction::Ingress),
        owned("kube-admin", "ClusterNetworkPolicy deny-all", 0)
    );
}

#[test]
fn calico_tiers_around_the_administrators_tiers() {
    // A Calico tier before kube-admin decides first; one between default and kube-baseline
    // after the NetworkPolicies.
    let objects = "
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: early}
spec: {order: 500, defaultAction: Pass}
---
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: late}
spec: {order: 2000000, defaultAction: Pass}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: early.allow-81}
spec:
  tier: early
  selector: all()
  ingress: [{action: Allow, protocol: TCP, destination: {ports: [81]}}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: late.deny-82}
spec:
  tier: late
  selector: all()
  ingress: [{action: Deny, protocol: TCP, destination: {ports: [82]}}]
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: deny-81}
spec:
  tier: Admin
  priority: 0
  subject: {namespaces: {}}
  ingress: [{action: Deny, from: [{namespaces: {}}], protocols: [{tcp: {destinationPort: {number: 81}}}]}]
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: allow-82}
spec:
  tier: Baseline
  priority: 0
  subject: {namespaces: {}}
  ingress: [{action: Accept, from: [{namespaces: {}}], protocols: [{tcp: {destinationPort: {number: 82}}}]}]
";
    let world = with_objects(objects);
    assert!(allowed(&world, tcp(CLIENT, WEB, 81)));
    let decision = world.verdict(&tcp(CLIENT, WEB, 82));
    assert!(!decision.allowed);
    assert_eq!(
        tier_names(&decision, Direction::Ingress),
        ["early", "kube-admin", "late"]
    );
}
