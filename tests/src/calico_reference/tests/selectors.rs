//! Selectors: network-set membership, namespace selectors and scoping, service accounts in
//! rules and policies, Calico's automatic labels, and the model's own selector evaluator.

use policy_agent::calico::selector::Selector;

use super::*;

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
