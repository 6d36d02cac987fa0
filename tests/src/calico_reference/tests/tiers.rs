//! The tier walk: tiers and policies in order, Pass, Log, Deny, the tiers' default actions,
//! the profile when no tier decides, and the trace that records it all.

use super::*;

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
