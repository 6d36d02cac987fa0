//! Staged policies: never part of the verdict; [`CalicoWorld::pending`] applies them (`Set`
//! replaces or adds by kind, namespace and name, `Delete` removes).

use super::*;

/// The base world and `yaml`, read by the model (staged documents included).
fn staged_world(yaml: &str) -> CalicoWorld {
    let mut world = base();
    world
        .extend_from_yaml(yaml)
        .unwrap_or_else(|e| panic!("test resource unreadable: {e}"));
    world
}

#[test]
fn a_staged_set_replaces_the_enforced_policy_of_its_kind_and_name() {
    let world = staged_world(
        "
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: web-in}
spec:
  selector: app == 'web'
  ingress: [{action: Allow, protocol: TCP, destination: {ports: [80]}}]
---
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata: {name: web-in}
spec:
  selector: app == 'web'
  ingress: [{action: Allow, protocol: TCP, destination: {ports: [8080]}}]
---
apiVersion: projectcalico.org/v3
kind: StagedNetworkPolicy
metadata: {name: web-in, namespace: prod}
spec:
  stagedAction: Set
  order: 1
  selector: app == 'db'
  ingress: [{action: Deny}]
",
    );
    assert_eq!(world.policies.len(), 1, "staged policies are kept apart");
    assert_eq!(world.staged.len(), 2);
    // Enforced: only the enforced policy counts.
    assert!(allowed(&world, tcp(CLIENT, WEB, 80)));
    assert!(!allowed(&world, tcp(CLIENT, WEB, 8080)));
    assert!(allowed(&world, tcp(CLIENT, DB, 5432)));

    let pending = world.pending();
    assert!(pending.staged.is_empty());
    // The global one replaced (stagedAction omitted is Set), the namespaced one of the same
    // name added beside it: kinds never meet.
    assert_eq!(pending.policies.len(), 2);
    assert!(!allowed(&pending, tcp(CLIENT, WEB, 80)));
    let d8080 = pending.verdict(&tcp(CLIENT, WEB, 8080));
    assert!(d8080.allowed);
    assert_eq!(
        decider(&d8080, Direction::Ingress),
        Some(("default".to_owned(), "web-in".to_owned(), 0))
    );
    assert!(!allowed(&pending, tcp(CLIENT, DB, 5432)));
    // The world itself is untouched.
    assert_eq!(world.policies.len(), 1);
    assert!(allowed(&world, tcp(CLIENT, WEB, 80)));
}

#[test]
fn a_staged_delete_removes_the_enforced_policy_of_its_kind_and_name_only() {
    let world = staged_world(
        "
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: db-in, namespace: prod}
spec:
  selector: app == 'db'
  ingress: [{action: Deny, source: {nets: [10.2.0.0/16]}}, {action: Allow}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-in, namespace: prod}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{ports: [{port: 80}]}]
---
apiVersion: projectcalico.org/v3
kind: StagedNetworkPolicy
metadata: {name: db-in, namespace: prod}
spec: {stagedAction: Delete, tier: default}
---
apiVersion: projectcalico.org/v3
kind: StagedNetworkPolicy
metadata: {name: web-in, namespace: prod}
spec: {stagedAction: Delete}
---
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata: {name: db-in}
spec: {stagedAction: Delete}
---
apiVersion: projectcalico.org/v3
kind: StagedKubernetesNetworkPolicy
metadata: {name: missing, namespace: prod}
spec: {stagedAction: Delete}
",
    );
    assert_eq!(world.staged.len(), 4);
    assert!(!allowed(&world, tcp(CLIENT, DB, 5432)));
    assert!(allowed(&world, tcp(WEB, DB, 5432)));
    assert!(allowed(&world, tcp(CLIENT, WEB, 80)));
    assert!(!allowed(&world, tcp(CLIENT, WEB, 81)));

    let pending = world.pending();
    // db-in is gone: db is no longer isolated.
    assert!(pending.policies.is_empty());
    assert!(allowed(&pending, tcp(CLIENT, DB, 5432)));
    // The Calico Delete named the Kubernetes policy's namespace and name, not its kind; the
    // global Delete names no namespaced policy; the missing one changes nothing.
    assert_eq!(pending.k8s_policies.len(), 1);
    assert!(allowed(&pending, tcp(CLIENT, WEB, 80)));
    assert!(!allowed(&pending, tcp(CLIENT, WEB, 81)));
}

#[test]
fn a_staged_kubernetes_policy_replaces_or_adds_a_kubernetes_network_policy() {
    let world = staged_world(
        "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-in, namespace: prod}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{ports: [{port: 80}]}]
---
apiVersion: projectcalico.org/v3
kind: StagedKubernetesNetworkPolicy
metadata: {name: web-in, namespace: prod}
spec:
  stagedAction: Set
  podSelector: {matchLabels: {app: web}}
  ingress: [{ports: [{port: 8080}]}]
---
apiVersion: projectcalico.org/v3
kind: StagedKubernetesNetworkPolicy
metadata: {name: db-isolated, namespace: prod}
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Ingress]
",
    );
    assert!(allowed(&world, tcp(CLIENT, WEB, 80)));
    assert!(!allowed(&world, tcp(CLIENT, WEB, 8080)));
    assert!(allowed(&world, tcp(CLIENT, DB, 5432)));

    let pending = world.pending();
    assert_eq!(pending.k8s_policies.len(), 2);
    assert!(!allowed(&pending, tcp(CLIENT, WEB, 80)));
    let d8080 = pending.verdict(&tcp(CLIENT, WEB, 8080));
    assert_eq!(
        decider(&d8080, Direction::Ingress),
        Some(("default".to_owned(), "knp.default.web-in".to_owned(), 0))
    );
    // The added policy isolates db in tier `default`, which ends in Deny.
    let db = pending.verdict(&tcp(CLIENT, DB, 5432));
    assert!(!db.allowed);
    assert_eq!(
        db.decided_by(Direction::Ingress),
        Some(&DecidedBy::TierDefault {
            tier: "default".to_owned()
        })
    );
}

#[test]
fn staged_documents_are_read_as_the_api_server_holds_them() {
    // The later of two documents of one kind, namespace and name is the one held; a staged
    // NetworkPolicy without a namespace is in `default`.
    let world = staged_world(
        "
apiVersion: projectcalico.org/v3
kind: StagedNetworkPolicy
metadata: {name: p}
spec: {selector: all(), ingress: [{action: Deny}]}
---
apiVersion: projectcalico.org/v3
kind: StagedNetworkPolicy
metadata: {name: p, namespace: default}
spec: {stagedAction: Delete}
---
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata: {name: p}
spec: {selector: all(), ingress: [{action: Deny}]}
",
    );
    assert_eq!(world.staged.len(), 2);
    assert_eq!(world.staged[0].kind, StagedKind::NetworkPolicy);
    assert_eq!(world.staged[0].namespace.as_deref(), Some("default"));
    assert_eq!(world.staged[0].change, StagedChange::Delete);
    let pending = world.pending();
    assert_eq!(pending.policies.len(), 1);
    assert_eq!(pending.policies[0].namespace, None);
    // Calico's types default: ingress rules only, Ingress only.
    assert!(pending.policies[0].types.ingress && !pending.policies[0].types.egress);

    // The agent's validation decides which staged documents are valid: a Delete staging
    // rules is refused.
    let mut world = base();
    let refused = world.extend_from_yaml(
        "
apiVersion: projectcalico.org/v3
kind: StagedNetworkPolicy
metadata: {name: p, namespace: prod}
spec: {stagedAction: Delete, ingress: [{action: Allow}]}
",
    );
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("spec.ingress")),
        "{refused:?}"
    );
}
