use std::{collections::BTreeMap, net::IpAddr};

use k8s_openapi::api::{
    core::v1::{Container, ContainerPort, Namespace, Pod, PodIP, PodSpec, PodStatus},
    networking::v1::NetworkPolicy,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use policy_agent::calico::{
    resources::{Protocol, parse_documents},
    selector::Selector,
};

use super::*;

const WEB: &str = "10.1.0.1";
const DB: &str = "10.1.0.2";
const CLIENT: &str = "10.2.0.1";
const NODE: &str = "10.0.0.1";
const EXTERNAL: &str = "192.0.2.1";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn labels(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    (!pairs.is_empty()).then(|| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    })
}

fn namespace(name: &str, pairs: &[(&str, &str)]) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: labels(pairs),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn pod(ns: &str, name: &str, addr: &str, pairs: &[(&str, &str)]) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(ns.to_owned()),
            labels: labels(pairs),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".to_owned(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".to_owned()),
            pod_ip: Some(addr.to_owned()),
            pod_ips: Some(vec![PodIP {
                ip: addr.to_owned(),
            }]),
            ..Default::default()
        }),
    }
}

/// prod (team=a): web (app=web, named port http = 8080/TCP), db (app=db);
/// dev (team=b): client (app=client, service account `builder`). One node address.
fn base() -> CalicoWorld {
    let mut web = pod("prod", "web", WEB, &[("app", "web")]);
    if let Some(spec) = web.spec.as_mut() {
        spec.containers[0].ports = Some(vec![ContainerPort {
            name: Some("http".to_owned()),
            container_port: 8080,
            protocol: Some("TCP".to_owned()),
            ..Default::default()
        }]);
    }
    let mut client = pod("dev", "client", CLIENT, &[("app", "client")]);
    if let Some(spec) = client.spec.as_mut() {
        spec.service_account_name = Some("builder".to_owned());
    }
    CalicoWorld {
        namespaces: vec![
            namespace("prod", &[("team", "a")]),
            namespace("dev", &[("team", "b")]),
        ],
        pods: vec![web, pod("prod", "db", DB, &[("app", "db")]), client],
        node_addrs: vec![ip(NODE)],
        ..CalicoWorld::default()
    }
}

fn with(yaml: &str) -> CalicoWorld {
    let mut world = base();
    load(&mut world, yaml);
    world
}

/// Adds the Calico resources of `yaml`, read by the model from the YAML as written (after
/// the agent's validation has accepted them).
fn load(world: &mut CalicoWorld, yaml: &str) {
    for resource in parse_documents(yaml) {
        resource.unwrap_or_else(|e| panic!("test resource rejected: {e}"));
    }
    world
        .extend_from_yaml(yaml)
        .unwrap_or_else(|e| panic!("test resource unreadable: {e}"));
}

fn tcp(src: &str, dst: &str, port: u16) -> Packet {
    Packet::tcp(ip(src), ip(dst), port)
}

fn allowed(world: &CalicoWorld, packet: Packet) -> bool {
    world.verdict(&packet).allowed
}

/// `(tier, policy name, rule)` of the rule that decided `direction`.
fn decider(decision: &Decision, direction: Direction) -> Option<(String, String, usize)> {
    match decision.decided_by(direction)? {
        DecidedBy::Rule {
            tier, policy, rule, ..
        } => Some((tier.clone(), policy.name.clone(), *rule)),
        _ => None,
    }
}

fn tier_names(decision: &Decision, direction: Direction) -> Vec<String> {
    decision
        .side(direction)
        .trace()
        .map(|t| t.tiers.iter().map(|t| t.name.clone()).collect())
        .unwrap_or_default()
}

const TIERS: &str = "
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: first}
spec: {order: 100}
---
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: second}
spec: {order: 200}
---
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: unused}
spec: {order: 50}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: unused.other}
spec:
  tier: unused
  selector: app == 'nothing'
  ingress: [{action: Deny}]
";

#[test]
fn no_policy_allows_through_the_profile() {
    let world = base();
    let decision = world.verdict(&tcp(CLIENT, WEB, 80));
    assert!(decision.allowed);
    assert_eq!(
        decision.decided_by(Direction::Egress),
        Some(&DecidedBy::Profile)
    );
    assert_eq!(
        decision.decided_by(Direction::Ingress),
        Some(&DecidedBy::Profile)
    );
    assert!(tier_names(&decision, Direction::Ingress).is_empty());
}

#[test]
fn tiers_in_order_and_tiers_without_a_policy_skipped() {
    let policies = "
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: first.allow-web}
spec:
  tier: first
  selector: app == 'web'
  ingress: [{action: Allow}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: second.deny-web}
spec:
  tier: second
  selector: app == 'web'
  ingress: [{action: Deny}]
";
    let world = with(&format!("{TIERS}{policies}"));
    let decision = world.verdict(&tcp(CLIENT, WEB, 80));
    assert!(decision.allowed);
    // `unused` (order 50) selects nothing here and is skipped; `second` is never reached.
    assert_eq!(tier_names(&decision, Direction::Ingress), ["first"]);
    assert_eq!(
        decider(&decision, Direction::Ingress),
        Some(("first".to_owned(), "first.allow-web".to_owned(), 0))
    );

    // Put `second` before `first`: its Deny wins.
    let mut world = world;
    for tier in &mut world.tiers {
        if tier.name == "second" {
            tier.order = Some(10.0);
        }
    }
    let decision = world.verdict(&tcp(CLIENT, WEB, 80));
    assert!(!decision.allowed);
    assert_eq!(tier_names(&decision, Direction::Ingress), ["second"]);

    // A tier without an order comes after every ordered tier.
    for tier in &mut world.tiers {
        if tier.name == "second" {
            tier.order = None;
        }
    }
    assert!(allowed(&world, tcp(CLIENT, WEB, 80)));
}

#[test]
fn pass_goes_to_the_next_tier() {
    let policies = "
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: first.pass-web}
spec:
  tier: first
  selector: app == 'web'
  ingress:
  - {action: Pass, protocol: TCP, destination: {ports: [80]}}
  - {action: Allow}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: second.deny-web}
spec:
  tier: second
  selector: app == 'web'
  ingress: [{action: Deny}]
";
    let world = with(&format!("{TIERS}{policies}"));
    let decision = world.verdict(&tcp(CLIENT, WEB, 80));
    assert!(!decision.allowed);
    assert_eq!(
        tier_names(&decision, Direction::Ingress),
        ["first", "second"]
    );
    let trace = decision.ingress.trace().expect("evaluated");
    assert!(matches!(
        &trace.tiers[0].end,
        TierEnd::Passed { rule: 0, .. }
    ));
    assert_eq!(
        decider(&decision, Direction::Ingress),
        Some(("second".to_owned(), "second.deny-web".to_owned(), 0))
    );
    // Port 81 is not passed: the first tier's Allow decides.
    assert!(allowed(&world, tcp(CLIENT, WEB, 81)));
}

#[test]
fn tier_default_action_deny_or_pass() {
    let yaml = "
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: strict}
spec: {order: 10}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: strict.only-db}
spec:
  tier: strict
  selector: app == 'web'
  ingress: [{action: Allow, source: {selector: app == 'db'}}]
";
    let mut world = with(yaml);
    assert!(allowed(&world, tcp(DB, WEB, 80)));
    let decision = world.verdict(&tcp(CLIENT, WEB, 80));
    assert!(!decision.allowed);
    assert_eq!(
        decision.decided_by(Direction::Ingress),
        Some(&DecidedBy::TierDefault {
            tier: "strict".to_owned()
        })
    );

    world.tiers[0].default_action = TierAction::Pass;
    let decision = world.verdict(&tcp(CLIENT, WEB, 80));
    assert!(decision.allowed);
    assert_eq!(
        decision.decided_by(Direction::Ingress),
        Some(&DecidedBy::Profile)
    );
    let trace = decision.ingress.trace().expect("evaluated");
    assert_eq!(trace.tiers[0].end, TierEnd::Default(TierAction::Pass));
}

#[test]
fn log_is_recorded_and_evaluation_continues() {
    let world = with(
        "
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: log-then-deny}
spec:
  selector: app == 'web'
  ingress: [{action: Log}, {action: Deny}]
",
    );
    let decision = world.verdict(&tcp(CLIENT, WEB, 80));
    assert!(!decision.allowed);
    let trace = decision.ingress.trace().expect("evaluated");
    let rules = &trace.tiers[0].policies[0].rules;
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].action, Action::Log);
    assert!(rules[0].matched());
    assert_eq!(
        decider(&decision, Direction::Ingress),
        Some(("default".to_owned(), "log-then-deny".to_owned(), 1))
    );
}

#[test]
fn deny_beats_a_later_allow() {
    let yaml = |allow_order: u32| {
        format!(
            "
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {{name: deny-web}}
spec:
  order: 10
  selector: app == 'web'
  ingress: [{{action: Deny}}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {{name: allow-web}}
spec:
  order: {allow_order}
  selector: app == 'web'
  ingress: [{{action: Allow}}]
"
        )
    };
    assert!(!allowed(&with(&yaml(20)), tcp(CLIENT, WEB, 80)));
    assert!(allowed(&with(&yaml(5)), tcp(CLIENT, WEB, 80)));
}

#[test]
fn order_ties_are_broken_by_name() {
    let yaml = |deny: &str, allow: &str, order: &str| {
        format!(
            "
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {{name: {deny}}}
spec:
  {order}
  selector: app == 'web'
  ingress: [{{action: Deny}}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {{name: {allow}}}
spec:
  {order}
  selector: app == 'web'
  ingress: [{{action: Allow}}]
"
        )
    };
    for order in ["order: 100", "types: [Ingress]"] {
        assert!(!allowed(
            &with(&yaml("a-deny", "b-allow", order)),
            tcp(CLIENT, WEB, 80)
        ));
        assert!(allowed(
            &with(&yaml("b-deny", "a-allow", order)),
            tcp(CLIENT, WEB, 80)
        ));
    }
}

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

const SETS: &str = "
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: wide, labels: {role: wide, kind: ext}}
spec: {nets: [192.0.2.0/24]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: narrow, labels: {role: narrow, kind: ext}}
spec: {nets: [192.0.2.0/28]}
---
apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata: {name: partners, namespace: prod, labels: {kind: ext}}
spec: {nets: [203.0.113.0/24]}
";

fn web_ingress(rules: &str) -> String {
    format!(
        "{SETS}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {{name: web-in}}
spec:
  selector: app == 'web'
  ingress:
{rules}
  - action: Deny
"
    )
}

#[test]
fn network_set_membership_and_an_address_in_two_sets() {
    let world = with(&web_ingress(
        "  - {action: Allow, source: {selector: role == 'narrow'}}",
    ));
    // 192.0.2.5 is in both sets: the narrow one matches.
    assert!(allowed(&world, tcp("192.0.2.5", WEB, 80)));
    // 192.0.2.100 is only in the wide set.
    assert!(!allowed(&world, tcp("192.0.2.100", WEB, 80)));
    assert!(!allowed(&world, tcp("198.51.100.1", WEB, 80)));

    // notSelector: an address in the wide set fails even when it is also in the narrow one.
    let world = with(&web_ingress(
        "  - {action: Allow, source: {notSelector: role == 'wide'}}",
    ));
    assert!(!allowed(&world, tcp("192.0.2.5", WEB, 80)));
    assert!(allowed(&world, tcp("198.51.100.1", WEB, 80)));
    // The destination side of the same packet: selector on the destination address.
    let world = with(&web_ingress(
        "  - {action: Allow, destination: {selector: app == 'web'}}",
    ));
    assert!(allowed(&world, tcp(CLIENT, WEB, 80)));
}

#[test]
fn namespace_selector_global_and_namespace_scoping() {
    // global(): only non-namespaced owners.
    let world = with(&web_ingress(
        "  - {action: Allow, source: {namespaceSelector: global(), selector: kind == 'ext'}}",
    ));
    assert!(allowed(&world, tcp("192.0.2.5", WEB, 80)));
    assert!(
        !allowed(&world, tcp("203.0.113.1", WEB, 80)),
        "namespaced set"
    );
    assert!(!allowed(&world, tcp(CLIENT, WEB, 80)), "pod");

    // A global policy's selector without namespaceSelector: namespaced and global owners.
    let world = with(&web_ingress(
        "  - {action: Allow, source: {selector: kind == 'ext'}}",
    ));
    assert!(allowed(&world, tcp("192.0.2.5", WEB, 80)));
    assert!(allowed(&world, tcp("203.0.113.1", WEB, 80)));

    // namespaceSelector on namespace labels, with a pod selector.
    let world = with(&web_ingress(
        "  - {action: Allow, source: {namespaceSelector: team == 'b', selector: app == 'client'}}",
    ));
    assert!(allowed(&world, tcp(CLIENT, WEB, 80)));
    assert!(!allowed(&world, tcp(DB, WEB, 80)));
    // all(): every namespaced owner, not the global sets.
    let world = with(&web_ingress(
        "  - {action: Allow, source: {namespaceSelector: all()}}",
    ));
    assert!(allowed(&world, tcp(CLIENT, WEB, 80)));
    assert!(allowed(&world, tcp("203.0.113.1", WEB, 80)));
    assert!(!allowed(&world, tcp("192.0.2.5", WEB, 80)));
    // projectcalico.org/name on namespaces.
    let world = with(&web_ingress(
        "  - {action: Allow, source: {namespaceSelector: projectcalico.org/name == 'dev'}}",
    ));
    assert!(allowed(&world, tcp(CLIENT, WEB, 80)));
    assert!(!allowed(&world, tcp(DB, WEB, 80)));

    // A namespaced policy's selector: only owners in its namespace.
    let world = with(&format!(
        "{SETS}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {{name: web-in, namespace: prod}}
spec:
  selector: app == 'web'
  ingress:
  - {{action: Allow, source: {{selector: kind == 'ext' || has(app)}}}}
  - action: Deny
"
    ));
    assert!(allowed(&world, tcp("203.0.113.1", WEB, 80)), "set in prod");
    assert!(!allowed(&world, tcp("192.0.2.5", WEB, 80)), "global set");
    assert!(allowed(&world, tcp(DB, WEB, 80)), "pod in prod");
    assert!(!allowed(&world, tcp(CLIENT, WEB, 80)), "pod in dev");
}

#[test]
fn not_nets_not_ports_not_selector() {
    let world = with(&web_ingress(
        "  - {action: Allow, protocol: TCP, source: {notNets: [10.2.0.0/16]}}",
    ));
    assert!(!allowed(&world, tcp(CLIENT, WEB, 80)));
    assert!(allowed(&world, tcp(DB, WEB, 80)));
    assert!(
        !allowed(&world, Packet::udp(ip(DB), ip(WEB), 80)),
        "protocol"
    );

    let world = with(&web_ingress(
        "  - {action: Allow, protocol: TCP, destination: {notPorts: [22, '8000:9000']}}",
    ));
    assert!(allowed(&world, tcp(CLIENT, WEB, 80)));
    assert!(!allowed(&world, tcp(CLIENT, WEB, 8080)));
    assert!(!allowed(&world, tcp(CLIENT, WEB, 22)));
    let decision = world.verdict(&tcp(CLIENT, WEB, 22));
    let trace = decision.ingress.trace().expect("evaluated");
    assert_eq!(
        trace.tiers[0].policies[0].rules[0].mismatch,
        Some("destination.notPorts")
    );

    let world = with(&web_ingress(
        "  - {action: Allow, source: {notSelector: app == 'client'}}",
    ));
    assert!(!allowed(&world, tcp(CLIENT, WEB, 80)));
    assert!(allowed(&world, tcp(DB, WEB, 80)));
    // A global policy's notSelector-only rule matches non-endpoints too.
    assert!(allowed(&world, tcp(EXTERNAL, WEB, 80)));

    // In a namespaced policy, notSelector alone restricts to the policy's namespace.
    let world = with(
        "
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: web-in, namespace: prod}
spec:
  selector: app == 'web'
  ingress:
  - {action: Allow, source: {notSelector: app == 'client'}}
  - action: Deny
",
    );
    assert!(allowed(&world, tcp(DB, WEB, 80)));
    assert!(!allowed(&world, tcp(EXTERNAL, WEB, 80)));
    assert!(!allowed(&world, tcp(CLIENT, WEB, 80)));
}

#[test]
fn icmp_type_and_code() {
    let world = with(&web_ingress(
        "  - {action: Allow, protocol: ICMP, icmp: {type: 8, code: 0}}",
    ));
    let icmp = |t, c| Packet::icmp(ip(CLIENT), ip(WEB), t, c);
    assert!(allowed(&world, icmp(8, 0)));
    assert!(!allowed(&world, icmp(8, 1)));
    assert!(!allowed(&world, icmp(0, 0)));
    assert!(!allowed(&world, tcp(CLIENT, WEB, 80)));

    let world = with(&web_ingress(
        "  - {action: Allow, protocol: ICMP, notICMP: {type: 8}}",
    ));
    assert!(allowed(&world, icmp(0, 0)));
    assert!(!allowed(&world, icmp(8, 0)));
    assert!(!allowed(&world, icmp(8, 3)));

    let world = with(&web_ingress(
        "  - {action: Allow, protocol: ICMP, icmp: {type: 3}}",
    ));
    assert!(allowed(&world, icmp(3, 4)));
    assert!(!allowed(&world, icmp(4, 3)));
}

#[test]
fn named_ports_resolve_against_the_owning_pod() {
    let world = with(
        "
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: in}
spec:
  selector: app in {'web', 'db'}
  ingress:
  - {action: Allow, protocol: TCP, destination: {ports: [http]}}
  - action: Deny
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: out}
spec:
  selector: app == 'client'
  types: [Egress]
  egress:
  - {action: Allow, protocol: TCP, destination: {ports: [http]}}
  - action: Deny
",
    );
    assert!(allowed(&world, tcp(CLIENT, WEB, 8080)));
    assert!(!allowed(&world, tcp(CLIENT, WEB, 80)));
    assert!(!allowed(&world, Packet::udp(ip(CLIENT), ip(WEB), 8080)));
    // db has no port named http.
    assert!(!allowed(&world, tcp(CLIENT, DB, 8080)));
    // A named port never matches a non-pod address.
    let decision = world.verdict(&tcp(CLIENT, EXTERNAL, 8080));
    assert!(!decision.allowed);
    assert_eq!(decision.ingress, Side::NotAnEndpoint);
}

#[test]
fn a_pass_in_the_last_tier_falls_through_to_the_profile() {
    let world = with(&format!(
        "{TIERS}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {{name: second.pass-all}}
spec:
  tier: second
  selector: all()
  ingress: [{{action: Pass}}]
"
    ));
    let decision = world.verdict(&tcp(CLIENT, WEB, 80));
    assert!(decision.allowed);
    assert_eq!(
        decision.decided_by(Direction::Ingress),
        Some(&DecidedBy::Profile)
    );
    assert_eq!(tier_names(&decision, Direction::Ingress), ["second"]);
}

#[test]
fn node_traffic_and_non_endpoints() {
    let world = with(
        "
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: deny-all}
spec:
  selector: all()
  types: [Ingress, Egress]
  ingress: [{action: Deny}]
  egress: [{action: Deny}]
",
    );
    let from_node = world.verdict(&tcp(NODE, WEB, 80));
    assert!(from_node.allowed);
    assert!(matches!(from_node.ingress, Side::NodeTraffic { .. }));
    assert_eq!(from_node.egress, Side::NotAnEndpoint);
    assert!(allowed(&world, tcp(WEB, NODE, 80)));
    assert!(!allowed(&world, tcp(EXTERNAL, WEB, 80)));
    assert!(!allowed(&world, tcp(WEB, EXTERNAL, 80)));
    assert!(allowed(&world, tcp(EXTERNAL, "192.0.2.2", 80)));
    // A terminated pod is not an endpoint.
    let mut world = world;
    if let Some(status) = world.pods[0].status.as_mut() {
        status.phase = Some("Succeeded".to_owned());
    }
    assert!(allowed(&world, tcp(EXTERNAL, WEB, 80)));
}

#[test]
fn service_accounts_in_rules_and_policies() {
    let world = with(&web_ingress(
        "  - {action: Allow, source: {serviceAccounts: {names: [builder]}}}",
    ));
    assert!(allowed(&world, tcp(CLIENT, WEB, 80)));
    assert!(!allowed(&world, tcp(DB, WEB, 80)));
    let world = with(&web_ingress(
        "  - {action: Allow, source: {serviceAccounts: {selector: projectcalico.org/name == 'default'}}}",
    ));
    assert!(!allowed(&world, tcp(CLIENT, WEB, 80)));
    assert!(allowed(&world, tcp(DB, WEB, 80)));

    let world = with(
        "
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: builders-out}
spec:
  serviceAccountSelector: projectcalico.org/name == 'builder'
  types: [Egress]
  egress: [{action: Deny}]
",
    );
    assert!(!allowed(&world, tcp(CLIENT, WEB, 80)));
    assert!(allowed(&world, tcp(DB, WEB, 80)));
}

#[test]
fn global_policy_namespace_selector_and_calico_labels() {
    let world = with(
        "
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: lock-team-b}
spec:
  namespaceSelector: team == 'b'
  selector: projectcalico.org/orchestrator == 'k8s'
  types: [Egress]
  egress: [{action: Deny}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: web-by-namespace-label}
spec:
  selector: projectcalico.org/namespace == 'prod' && app == 'web'
  ingress:
  - {action: Deny, source: {selector: projectcalico.org/serviceaccount == 'default'}}
  - action: Allow
",
    );
    assert!(!allowed(&world, tcp(CLIENT, WEB, 80)));
    assert!(allowed(&world, tcp(DB, EXTERNAL, 80)));
    assert!(!allowed(&world, tcp(DB, WEB, 80)));
    assert!(allowed(&world, tcp(EXTERNAL, WEB, 80)));
}

#[test]
fn ip_version_and_nets() {
    let world = with(&web_ingress(
        "  - {action: Allow, ipVersion: 4, source: {nets: [10.1.0.0/16]}}",
    ));
    assert!(allowed(&world, tcp(DB, WEB, 80)));
    assert!(!allowed(&world, tcp(CLIENT, WEB, 80)));
    let decision = world.verdict(&tcp(CLIENT, WEB, 80));
    let trace = decision.ingress.trace().expect("evaluated");
    assert_eq!(
        trace.tiers[0].policies[0].rules[0].mismatch,
        Some("source.nets")
    );
}

#[test]
fn the_trace_prints() {
    let world = with(&format!(
        "{TIERS}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {{name: first.pass-web}}
spec:
  tier: first
  selector: app == 'web'
  ingress: [{{action: Log}}, {{action: Pass}}]
"
    ));
    let text = world.verdict(&tcp(CLIENT, WEB, 80)).to_string();
    for needle in [
        "ALLOW TCP 10.2.0.1:40000 -> 10.1.0.1:80",
        "source egress: egress of dev/client: ALLOW",
        "tier first (order 100, defaultAction Deny)",
        "GlobalNetworkPolicy first.pass-web (order omitted)",
        "ingress[0] Log: match",
        "=> Pass by GlobalNetworkPolicy first.pass-web ingress[1]: next tier",
        "decided: Allow by the endpoint's profile",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

#[test]
fn selector_evaluator() {
    let labels: BTreeMap<String, String> = [("app", "web"), ("tier", "front-end")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let cases = [
        ("", true),
        ("all()", true),
        ("global()", false),
        ("app == 'web'", true),
        ("app != 'web'", false),
        ("missing != 'x'", true),
        ("has(app)", true),
        ("!has(app)", false),
        ("app in {'db', 'web'}", true),
        ("missing in {'x'}", false),
        ("missing not in {'x'}", true),
        ("app not in {'web'}", false),
        ("tier contains 'nt-'", true),
        ("tier starts with 'front'", true),
        ("tier ends with 'front'", false),
        ("app == 'db' || tier == 'front-end'", true),
        ("app == 'web' && !(tier == 'front-end')", false),
        ("app == 'web' && (has(x) || has(tier))", true),
    ];
    for (text, want) in cases {
        let selector = Selector::parse(text).expect("test selector");
        assert_eq!(selector_matches(&selector, &labels, true), want, "{text}");
    }
    let global = Selector::parse("global()").expect("test selector");
    assert!(selector_matches(&global, &labels, false));
}

fn slice(yaml: &str) -> k8s_openapi::api::discovery::v1::EndpointSlice {
    serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{e}: {yaml}"))
}

/// `web-svc` in prod: web at 8080/TCP and 10.1.0.9 at 9090/UDP in a second slice;
/// `clients` in prod: the dev client (a slice may list any address), no ports, not ready;
/// `clients` in dev: the db address, which a prod policy's `clients` does not mean.
fn with_services(yaml: &str) -> CalicoWorld {
    let mut world = with(yaml);
    world.endpoint_slices = vec![
        slice(
            "metadata: {name: web-svc-a, namespace: prod, labels: {kubernetes.io/service-name: web-svc}}
addressType: IPv4
endpoints: [{addresses: [10.1.0.1]}]
ports: [{name: http, port: 8080, protocol: TCP}, {name: all}]",
        ),
        slice(
            "metadata: {name: web-svc-b, namespace: prod, labels: {kubernetes.io/service-name: web-svc}}
addressType: IPv4
endpoints: [{addresses: [10.1.0.9]}]
ports: [{port: 9090, protocol: UDP}]",
        ),
        slice(
            "metadata: {name: clients-x, namespace: prod, labels: {kubernetes.io/service-name: clients}}
addressType: IPv4
endpoints: [{addresses: [10.2.0.1], conditions: {ready: false}}]",
        ),
        slice(
            "metadata: {name: clients-y, namespace: dev, labels: {kubernetes.io/service-name: clients}}
addressType: IPv4
endpoints: [{addresses: [10.1.0.2]}]",
        ),
    ];
    world
}

#[test]
fn destination_services_match_endpoint_addresses_with_their_ports() {
    let world = with_services(
        "apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: client-out, namespace: dev}
spec:
  selector: app == 'client'
  egress:
  - {action: Allow, destination: {services: {name: web-svc, namespace: prod}}}
",
    );
    assert!(allowed(&world, tcp(CLIENT, WEB, 8080)));
    // Another port, another protocol, another slice's port: the tier's default denies.
    assert!(!allowed(&world, tcp(CLIENT, WEB, 80)));
    assert!(!allowed(&world, Packet::udp(ip(CLIENT), ip(WEB), 8080)));
    assert!(!allowed(&world, Packet::udp(ip(CLIENT), ip(WEB), 9090)));
    assert!(allowed(
        &world,
        Packet::udp(ip(CLIENT), ip("10.1.0.9"), 9090)
    ));
    assert!(!allowed(&world, tcp(CLIENT, "10.1.0.9", 9090)));
    // Not an endpoint of the Service.
    assert!(!allowed(&world, tcp(CLIENT, DB, 8080)));
    let decision = world.verdict(&tcp(CLIENT, DB, 8080));
    let text = decision.to_string();
    assert!(text.contains("no match (destination.services)"), "{text}");
}

#[test]
fn source_services_match_endpoint_addresses_only_in_the_namespace() {
    // The namespace defaults to the policy's (prod): prod's `clients`, not dev's.
    let world = with_services(
        "apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: web-in, namespace: prod}
spec:
  selector: app == 'web'
  ingress:
  - {action: Allow, protocol: TCP, source: {services: {name: clients}, ports: ['1000:2000']}}
",
    );
    // Any destination port; the rule's source ports still apply; readiness is not read.
    assert!(allowed(
        &world,
        Packet::new(ip(CLIENT), ip(WEB), Protocol::TCP, 1500, 443)
    ));
    assert!(!allowed(
        &world,
        Packet::new(ip(CLIENT), ip(WEB), Protocol::TCP, 3000, 443)
    ));
    assert!(!allowed(
        &world,
        Packet::new(ip(DB), ip(WEB), Protocol::TCP, 1500, 443)
    ));
    // A Service without EndpointSlices matches nothing.
    let world = with_services(
        "apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: web-in, namespace: prod}
spec:
  selector: app == 'web'
  ingress:
  - {action: Deny, source: {services: {name: nobody}}}
  - {action: Allow}
",
    );
    assert!(allowed(&world, tcp(CLIENT, WEB, 80)));
}

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
