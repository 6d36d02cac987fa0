//! The Calico reference model on a YAML scenario (Calico tiers, policies and network sets with
//! Kubernetes namespaces, pods and NetworkPolicies), checked flow by flow against a table of
//! verdicts and deciding rules; and, on random worlds with only Kubernetes NetworkPolicies,
//! against the Kubernetes reference model.

use std::net::IpAddr;

use palisade_tests::{
    calico_reference::{CalicoWorld, DecidedBy, Packet, Side},
    generate::{FlowPick, addresses, cases_from_env, flow_picks, protocol_number, world},
    reference::{Flow, World},
};
use policy_agent::calico::resources::Protocol;
use proptest::{prelude::*, test_runner::TestCaseError};

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
        case(INTERNET, FRONTEND, Tcp(8080), true, "-", "default:knp.default.frontend-in[0]"),
        case(THREAT, FRONTEND, Tcp(8080), false, "-", "security:security.block-threats[1]"),
        case(FRONTEND, BACKEND, Tcp(9090), true, "profile", "default:knp.default.backend-in[0]"),
        case(MONITOR, BACKEND, Tcp(9090), true, "profile", "platform:platform.monitoring[0]"),
        case(MONITOR, FRONTEND, Tcp(8080), true, "profile", "platform:platform.monitoring[0]"),
        case(MONITOR, BACKEND, Tcp(22), false, "profile", "default:default-deny"),
        case(BACKEND, DNS, Udp(53), true, "default:backend-egress[0]", "-"),
        case(BACKEND, DNS, Tcp(443), false, "default:backend-egress[1]", "-"),
        case(BACKEND, THREAT, Udp(53), false, "security:security.block-threats[0]", "-"),
        case(FRONTEND, BACKEND, Tcp(80), false, "profile", "default:default-deny"),
        case(NODE, BACKEND, Tcp(80), true, "-", "node"),
        case(MONITOR, FRONTEND, Icmp(8, 0), true, "profile", "platform:platform.monitoring[1]"),
        case(FRONTEND, BACKEND, Icmp(8, 0), false, "profile", "default:default-deny"),
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
        let want = (case.allowed, case.egress.to_owned(), case.ingress.to_owned());
        if got != want {
            failures.push(format!(
                "{packet}: want {want:?}, got {got:?}\n{decision}"
            ));
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
        let packet = Packet::new(
            src,
            dst,
            Protocol(protocol_number(protocol)),
            40_000,
            *port,
        );
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
    #![proptest_config(ProptestConfig { cases: cases_from_env(500), ..ProptestConfig::default() })]

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
