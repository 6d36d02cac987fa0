//! The Calico reference model on a YAML scenario (Calico tiers, policies and network sets with
//! Kubernetes namespaces, pods and NetworkPolicies), checked flow by flow against a table of
//! verdicts and deciding rules; and, on random worlds with only Kubernetes NetworkPolicies,
//! against the Kubernetes reference model.

use std::{collections::BTreeMap, net::IpAddr};

use palisade_tests::{
    calico_reference::{CalicoWorld, DecidedBy, Packet, Side, selector_matches},
    generate::{FlowPick, addresses, cases_from_env, flow_picks, protocol_number, world},
    reference::{Flow, World},
};
use policy_agent::calico::{
    resources::Protocol,
    selector::{Scope, Selector},
};
use proptest::{prelude::*, sample::select, test_runner::TestCaseError};

const SCENARIO: &str = include_str!("../data/calico_reference/scenario.yaml");

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// `-` (not an endpoint), `node`, `profile`, `<tier>:default-deny` or `<tier>:<policy>[<rule>]`.
fn describe(side: &Side) -> String {
    match side {
        Side::NotAnEndpoint => "-".to_owned(),
        Side::NodeTraffic { .. } => "node".to_owned(),
        Side::Evaluated(trace) => match &trace.decided_by {
            DecidedBy::Profile => "profile".to_owned(),
            DecidedBy::TierDefault { tier } => format!("{tier}:default-deny"),
            DecidedBy::Rule {
                tier, policy, rule, ..
            } => format!("{tier}:{}[{rule}]", policy.name),
        },
    }
}

enum Kind {
    Tcp(u16),
    Udp(u16),
    Icmp(u8, u8),
}

struct Case {
    src: &'static str,
    dst: &'static str,
    kind: Kind,
    allowed: bool,
    egress: &'static str,
    ingress: &'static str,
}

const FRONTEND: &str = "10.10.0.1";
const BACKEND: &str = "10.10.0.2";
const MONITOR: &str = "10.20.0.1";
const INTERNET: &str = "203.0.113.9";
const THREAT: &str = "198.51.100.7";
const DNS: &str = "8.8.8.8";
const NODE: &str = "10.0.0.1";

fn cases() -> Vec<Case> {
    use Kind::*;
    let case = |src, dst, kind, allowed, egress, ingress| Case {
        src,
        dst,
        kind,
        allowed,
        egress,
        ingress,
    };
    vec![
        case(
            INTERNET,
            FRONTEND,
            Tcp(8080),
            true,
            "-",
            "default:knp.default.frontend-in[0]",
        ),
        case(
            THREAT,
            FRONTEND,
            Tcp(8080),
            false,
            "-",
            "security:security.block-threats[1]",
        ),
        case(
            FRONTEND,
            BACKEND,
            Tcp(9090),
            true,
            "profile",
            "default:knp.default.backend-in[0]",
        ),
        case(
            MONITOR,
            BACKEND,
            Tcp(9090),
            true,
            "profile",
            "platform:platform.monitoring[0]",
        ),
        case(
            MONITOR,
            FRONTEND,
            Tcp(8080),
            true,
            "profile",
            "platform:platform.monitoring[0]",
        ),
        case(
            MONITOR,
            BACKEND,
            Tcp(22),
            false,
            "profile",
            "default:default-deny",
        ),
        case(
            BACKEND,
            DNS,
            Udp(53),
            true,
            "default:backend-egress[0]",
            "-",
        ),
        case(
            BACKEND,
            DNS,
            Tcp(443),
            false,
            "default:backend-egress[1]",
            "-",
        ),
        case(
            BACKEND,
            THREAT,
            Udp(53),
            false,
            "security:security.block-threats[0]",
            "-",
        ),
        case(
            FRONTEND,
            BACKEND,
            Tcp(80),
            false,
            "profile",
            "default:default-deny",
        ),
        case(NODE, BACKEND, Tcp(80), true, "-", "node"),
        case(
            MONITOR,
            FRONTEND,
            Icmp(8, 0),
            true,
            "profile",
            "platform:platform.monitoring[1]",
        ),
        case(
            FRONTEND,
            BACKEND,
            Icmp(8, 0),
            false,
            "profile",
            "default:default-deny",
        ),
        case(MONITOR, INTERNET, Tcp(443), true, "profile", "-"),
    ]
}

#[test]
fn scenario_flows() {
    let mut world = CalicoWorld::from_yaml(SCENARIO).expect("the scenario loads");
    world.node_addrs = vec![ip(NODE)];
    assert_eq!(world.pods.len(), 3);
    assert_eq!(world.k8s_policies.len(), 2);
    assert_eq!(world.policies.len(), 3);
    assert_eq!(world.tiers.len(), 2);
    assert_eq!(world.network_sets.len(), 1);

    let mut failures = Vec::new();
    for case in cases() {
        let (src, dst) = (ip(case.src), ip(case.dst));
        let packet = match case.kind {
            Kind::Tcp(port) => Packet::new(src, dst, Protocol::TCP, 40_000, port),
            Kind::Udp(port) => Packet::new(src, dst, Protocol::UDP, 40_000, port),
            Kind::Icmp(t, c) => Packet::icmp(src, dst, t, c),
        };
        let decision = world.verdict(&packet);
        let got = (
            decision.allowed,
            describe(&decision.egress),
            describe(&decision.ingress),
        );
        let want = (
            case.allowed,
            case.egress.to_owned(),
            case.ingress.to_owned(),
        );
        if got != want {
            failures.push(format!("{packet}: want {want:?}, got {got:?}\n{decision}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn scenario_trace_names_every_tier_consulted() {
    let mut world = CalicoWorld::from_yaml(SCENARIO).expect("the scenario loads");
    world.node_addrs = vec![ip(NODE)];
    let decision = world.verdict(&Packet::new(
        ip(FRONTEND),
        ip(BACKEND),
        Protocol::TCP,
        40_000,
        80,
    ));
    let text = decision.to_string();
    for needle in [
        "DENY TCP 10.10.0.1:40000 -> 10.10.0.2:80",
        "tier security (order 100, defaultAction Deny)",
        "ingress[2] Pass: match",
        "tier platform (order 200, defaultAction Pass)",
        "ingress[0] Allow: no match (source.selector)",
        "=> no rule decided: defaultAction Pass",
        "tier default (order 1000000, defaultAction Deny)",
        "Kubernetes NetworkPolicy shop/knp.default.backend-in (order 1000)",
        "ingress[0] Allow: no match (ports)",
        "decided: Deny by tier default's defaultAction",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

#[test]
fn unknown_kinds_are_refused() {
    let error = CalicoWorld::from_yaml("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n")
        .expect_err("a Service is not part of the model");
    assert!(error.contains("Service"), "{error}");
}

fn check_flows(world: &World, picks: &[FlowPick]) -> Result<(), TestCaseError> {
    let calico = CalicoWorld::from(world);
    let addrs = addresses(world);
    for (src, dst, protocol, port) in picks {
        let (src, dst) = (*src.get(&addrs), *dst.get(&addrs));
        if src == dst || src.is_ipv4() != dst.is_ipv4() {
            continue;
        }
        let flow = Flow {
            src,
            dst,
            protocol,
            port: *port,
        };
        let packet = Packet::new(src, dst, Protocol(protocol_number(protocol)), 40_000, *port);
        let decision = calico.verdict(&packet);
        prop_assert_eq!(
            decision.allowed,
            world.allows(&flow),
            "flow {:?}\n{}",
            flow,
            decision
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases_from_env(2000), ..ProptestConfig::default() })]

    /// With only Kubernetes NetworkPolicies, Calico's semantics (the policies in the default
    /// tier at order 1000, default-deny when one applies, the profile's allow otherwise) are
    /// the Kubernetes semantics.
    #[test]
    fn kubernetes_only_worlds_agree_with_the_kubernetes_model(
        world in world(),
        picks in flow_picks(24),
    ) {
        check_flows(&world, &picks)?;
    }
}

/// Selector ASTs over a small vocabulary, so that they match and miss.
fn selector_ast() -> impl Strategy<Value = Selector> {
    let key = || select(vec!["app", "tier", "team"]).prop_map(str::to_owned);
    let value = || select(vec!["a", "b", "ab", ""]).prop_map(str::to_owned);
    let values = || prop::collection::btree_set(value(), 0..3);
    let leaf = prop_oneof![
        Just(Selector::All),
        Just(Selector::Global),
        (key(), value()).prop_map(|(key, value)| Selector::Equal { key, value }),
        (key(), value()).prop_map(|(key, value)| Selector::NotEqual { key, value }),
        key().prop_map(|key| Selector::Has { key }),
        (key(), values()).prop_map(|(key, values)| Selector::In { key, values }),
        (key(), values()).prop_map(|(key, values)| Selector::NotIn { key, values }),
        (key(), value()).prop_map(|(key, value)| Selector::Contains { key, value }),
        (key(), value()).prop_map(|(key, value)| Selector::StartsWith { key, value }),
        (key(), value()).prop_map(|(key, value)| Selector::EndsWith { key, value }),
    ];
    leaf.prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|s| Selector::Not(Box::new(s))),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Selector::And),
            prop::collection::vec(inner, 2..4).prop_map(Selector::Or),
        ]
    })
}

fn label_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(
        select(vec!["app", "tier", "team"]).prop_map(str::to_owned),
        select(vec!["a", "b", "ab", "ba", ""]).prop_map(str::to_owned),
        0..3,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases_from_env(2000), ..ProptestConfig::default() })]

    /// The model's own selector evaluator and the agent's `Selector::evaluate` agree: a bug in
    /// either shows up here rather than as a puzzling verdict.
    #[test]
    fn selector_evaluators_agree(
        selector in selector_ast(),
        labels in label_map(),
        namespaced in any::<bool>(),
    ) {
        let scope = if namespaced { Scope::NAMESPACED } else { Scope::GLOBAL };
        prop_assert_eq!(
            selector_matches(&selector, &labels, namespaced),
            selector.evaluate(&labels, scope),
            "{}",
            selector
        );
    }
}
