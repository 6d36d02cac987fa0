//! Incremental compiles: a change rewrites only the entries and endpoints it touches.

use crate::{
    compiler::{Compiler, Scope},
    replay::{Direction, allows},
};

use super::fixtures::{
    ALLOW_FRONTEND_TO_BACKEND, BACKEND, DENY_ALL_INGRESS_TO_BACKEND, FRONTEND, OTHER, PODS,
    cluster, tcp,
};

#[test]
fn a_label_change_rewrites_only_the_moved_address() {
    let mut compiler = Compiler::new();
    let mut cluster = cluster(&[PODS, DENY_ALL_INGRESS_TO_BACKEND, ALLOW_FRONTEND_TO_BACKEND]);
    let before = compiler.compile(&cluster, &Scope::default()).maps;
    let other = std::sync::Arc::make_mut(
        cluster
            .pods
            .get_mut(&("default".to_owned(), "other".to_owned()))
            .expect("other pod"),
    );
    other.labels.insert("app".into(), "frontend".into());
    let after = compiler.compile(&cluster, &Scope::default()).maps;
    assert!(allows(
        &after,
        &tcp(OTHER, BACKEND, 8000),
        Direction::ToEndpoint
    ));
    assert_eq!(before.rules, after.rules);
    assert_eq!(before.endpoints, after.endpoints);
    let changed: Vec<_> = after
        .identities
        .iter()
        .filter(|(k, v)| before.identities.get(k) != Some(v))
        .collect();
    assert_eq!(changed.len(), 1, "only other's address moves: {changed:?}");
}

#[test]
fn adding_a_policy_touches_only_its_own_entries_and_its_endpoints() {
    let mut compiler = Compiler::new();
    let mut cluster = cluster(&[PODS, DENY_ALL_INGRESS_TO_BACKEND, ALLOW_FRONTEND_TO_BACKEND]);
    let before = compiler.compile(&cluster, &Scope::default()).maps;
    let mut added = cluster
        .policies
        .get(&("default".to_owned(), "allow-frontend-to-backend".to_owned()))
        .expect("policy")
        .as_ref()
        .clone();
    added.name = "allow-frontend-to-backend-9000".into();
    if let Some(rule) = added.ingress.as_mut().and_then(|r| r.first_mut()) {
        rule.ports = Some(vec![crate::model::PortMatch::Range {
            protocol: crate::model::Protocol::Tcp,
            first: 9000,
            last: 9000,
        }]);
    }
    cluster
        .policies
        .insert((added.namespace.clone(), added.name.clone()), added.into());
    let after = compiler.compile(&cluster, &Scope::default()).maps;
    assert_eq!(before.identities, after.identities, "no identity moves");
    let new_rules: Vec<_> = after
        .rules
        .keys()
        .filter(|k| !before.rules.contains_key(k))
        .collect();
    // The backends' two policies share one merged table (see `SEPARATE_TABLES`): it is new,
    // with both ports, and the old table with port 8000 alone goes.
    assert_eq!(new_rules.len(), 2, "the new merged table: 8000 and 9000");
    let removed = before
        .rules
        .keys()
        .filter(|k| !after.rules.contains_key(k))
        .count();
    assert_eq!(removed, 1, "the old table, now unused");
    let moved: Vec<_> = after
        .endpoints
        .iter()
        .filter(|(k, v)| before.endpoints.get(k) != Some(v))
        .collect();
    assert_eq!(moved.len(), 2, "the two backends get the new table");
    assert!(allows(
        &after,
        &tcp(FRONTEND, BACKEND, 9000),
        Direction::ToEndpoint
    ));
}
