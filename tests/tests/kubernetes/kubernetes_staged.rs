//! The Kubernetes datastore with Calico's staged policies (`crd.projectcalico.org/v1`
//! StagedGlobalNetworkPolicy, StagedNetworkPolicy, StagedKubernetesNetworkPolicy), through the
//! real kube client against the in-process stand-in API server: served objects reach the
//! snapshot's `cluster.staged` with their change (the same as the file datastore reads from
//! their v3 documents), `Cluster::pending` applies them while the enforced cluster stays as it
//! was, an invalid one is reported with its object and field (a rejected update keeping the
//! accepted version), and updates and deletions arrive through the watches.

use crate::{
    harness::Datastore,
    kubernetes_apiserver::{ApiServer, CALICO_API_VERSION, Kind},
};

use std::time::Duration;

use policy_agent::{
    datastore::{Snapshot, kubernetes::Resource},
    model::staged::{StagedChange, StagedKind, StagedSpec},
};
use serde_json::{Value, json};

fn calico_object(kind: &str, namespace: Option<&str>, name: &str, spec: Value) -> Value {
    let mut metadata = json!({"name": name});
    if let Some(namespace) = namespace {
        metadata["namespace"] = json!(namespace);
    }
    json!({"apiVersion": CALICO_API_VERSION, "kind": kind, "metadata": metadata, "spec": spec})
}

/// The enforced cluster: a Kubernetes policy isolating shop/web (no ingress allowed), and a
/// Calico global policy denying ingress to the database.
fn seed(server: &ApiServer) {
    server.apply(json!({"kind": "Namespace", "metadata": {"name": "shop"}}));
    server.apply(json!({
        "kind": "NetworkPolicy",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]},
    }));
    server.apply(calico_object(
        "GlobalNetworkPolicy",
        None,
        "deny-db",
        json!({"selector": "app == 'db'", "ingress": [{"action": "Deny"}]}),
    ));
}

/// Staged: shop/web's Kubernetes policy widened to allow all ingress.
fn staged_widen_web(action: &str) -> Value {
    let spec = if action == "Delete" {
        json!({"stagedAction": "Delete"})
    } else {
        json!({
            "stagedAction": action,
            "podSelector": {"matchLabels": {"app": "web"}},
            "policyTypes": ["Ingress"],
            "ingress": [{}],
        })
    };
    calico_object("StagedKubernetesNetworkPolicy", Some("shop"), "web", spec)
}

/// Staged: the database's global policy removed.
fn staged_delete_deny_db() -> Value {
    calico_object(
        "StagedGlobalNetworkPolicy",
        None,
        "deny-db",
        json!({"stagedAction": "Delete"}),
    )
}

/// Staged: a new Calico policy in shop allowing ingress to web, with `selector`.
fn staged_allow_web(selector: &str) -> Value {
    calico_object(
        "StagedNetworkPolicy",
        Some("shop"),
        "allow-web",
        json!({"stagedAction": "Set", "selector": selector, "ingress": [{"action": "Allow"}]}),
    )
}

/// Invalid: a Delete that carries rules.
fn staged_broken(rules: bool) -> Value {
    let mut spec = json!({"stagedAction": "Delete"});
    if rules {
        spec["ingress"] = json!([{"action": "Allow"}]);
    }
    calico_object("StagedNetworkPolicy", Some("shop"), "broken", spec)
}

fn key(kind: StagedKind, namespace: &str, name: &str) -> (StagedKind, String, String) {
    (kind, namespace.to_owned(), name.to_owned())
}

fn errors(snapshot: &Snapshot) -> Vec<(&str, Option<&str>, Option<&str>)> {
    snapshot
        .errors
        .iter()
        .map(|e| (e.source.as_str(), e.object.as_deref(), e.field.as_deref()))
        .collect()
}

#[tokio::test]
async fn staged_policies_are_read_applied_by_pending_and_followed_through_watches() {
    let server = ApiServer::start().await;
    seed(&server);
    server.apply(staged_widen_web("Set"));
    server.apply(staged_delete_deny_db());
    server.apply(staged_allow_web("app == 'web'"));
    server.apply(staged_broken(true));
    let mut h = Datastore::start(server, "kubernetes-staged-test", Duration::from_millis(100));

    // `compiled` also checks that the file datastore reading the v3 documents these CRDs
    // stand for agrees on the cluster, staged policies included.
    let (snapshot, _) = h.compiled().await;
    let web = key(StagedKind::KubernetesNetworkPolicy, "shop", "web");
    let deny_db = key(StagedKind::GlobalNetworkPolicy, "", "deny-db");
    let allow_web = key(StagedKind::NetworkPolicy, "shop", "allow-web");
    let cluster = &snapshot.cluster;
    let keys: Vec<_> = cluster.staged.keys().cloned().collect();
    assert_eq!(keys, [deny_db.clone(), allow_web.clone(), web.clone()]);
    let StagedChange::Set(widened) = &cluster.staged[&web].change else {
        panic!("a Set: {:?}", cluster.staged[&web]);
    };
    let StagedSpec::Kubernetes(widened) = widened.as_ref() else {
        panic!("a Kubernetes policy: {widened:?}");
    };
    assert_eq!(cluster.staged[&deny_db].change, StagedChange::Delete);
    assert!(matches!(
        &cluster.staged[&allow_web].change,
        StagedChange::Set(spec) if matches!(spec.as_ref(), StagedSpec::Calico(_))
    ));

    // The invalid one, named with its field, and absent.
    assert_eq!(
        errors(&snapshot),
        [(
            "kubernetes",
            Some("StagedNetworkPolicy (crd.projectcalico.org/v1) shop/broken"),
            Some("spec.ingress"),
        )]
    );
    assert!(!snapshot.errors[0].message.contains("previously accepted"));

    // Enforced: as seeded. Pending: shop/web widened, deny-db gone, allow-web beside.
    let web_policy = ("shop".to_owned(), "web".to_owned());
    let deny_db_policy = (String::new(), "deny-db".to_owned());
    let allow_web_policy = ("shop".to_owned(), "allow-web".to_owned());
    assert!(cluster.calico.policies.contains_key(&deny_db_policy));
    assert!(!cluster.calico.policies.contains_key(&allow_web_policy));
    let pending = cluster.pending();
    assert!(pending.staged.is_empty());
    assert_ne!(pending, *cluster);
    assert_ne!(pending.policies[&web_policy], cluster.policies[&web_policy]);
    assert_eq!(*pending.policies[&web_policy], *widened);
    let calico_keys: Vec<_> = pending.calico.policies.keys().cloned().collect();
    assert_eq!(calico_keys, std::slice::from_ref(&allow_web_policy));
    // Nothing else differs.
    let mut expected = cluster.clone();
    expected.staged.clear();
    expected
        .policies
        .insert(web_policy.clone(), widened.clone().into());
    expected.calico.policies = pending.calico.policies.clone();
    assert_eq!(pending, expected);

    // Through the watches, not relists: shop/web's staged change becomes a Delete, allow-web
    // gets a selector that does not parse (rejected; the accepted version stays), the broken
    // one is fixed, and deny-db's is withdrawn.
    h.watching().await;
    h.server.apply(staged_widen_web("Delete"));
    h.server.apply(staged_allow_web("app =="));
    h.server.apply(staged_broken(false));
    h.server
        .delete(Kind::StagedGlobalNetworkPolicy, "", "deny-db");
    let (updated, _) = h.compiled().await;
    let cluster = &updated.cluster;
    let broken = key(StagedKind::NetworkPolicy, "shop", "broken");
    let keys: Vec<_> = cluster.staged.keys().cloned().collect();
    assert_eq!(keys, [allow_web.clone(), broken.clone(), web.clone()]);
    assert_eq!(cluster.staged[&web].change, StagedChange::Delete);
    assert_eq!(cluster.staged[&broken].change, StagedChange::Delete);
    assert_eq!(
        cluster.staged[&allow_web],
        snapshot.cluster.staged[&allow_web]
    );
    assert_eq!(
        errors(&updated),
        [(
            "kubernetes",
            Some("StagedNetworkPolicy (crd.projectcalico.org/v1) shop/allow-web"),
            Some("spec.selector"),
        )]
    );
    assert!(
        updated.errors[0]
            .message
            .ends_with("the previously accepted version stays in force"),
        "{}",
        updated.errors[0].message
    );
    let pending = cluster.pending();
    assert!(!pending.policies.contains_key(&web_policy));
    assert!(pending.calico.policies.contains_key(&deny_db_policy));
    assert!(pending.calico.policies.contains_key(&allow_web_policy));
    // The enforced cluster did not move.
    assert_eq!(cluster.policies, snapshot.cluster.policies);
    assert_eq!(cluster.calico, snapshot.cluster.calico);

    for (resource, kind) in Resource::STAGED.into_iter().zip([
        Kind::StagedGlobalNetworkPolicy,
        Kind::StagedNetworkPolicy,
        Kind::StagedKubernetesNetworkPolicy,
    ]) {
        assert_eq!(h.store.progress().lists(resource), 1, "{resource:?}");
        assert_eq!(h.server.lists(kind), 1, "{kind:?}: followed, not relisted");
    }
}

#[tokio::test]
async fn without_calico_crds_there_are_no_staged_policies_until_they_are_installed() {
    let server = ApiServer::start().await;
    server.serve_calico(false);
    seed(&server);
    server.apply(staged_delete_deny_db());
    let mut h = Datastore::start(server, "kubernetes-staged-test", Duration::from_millis(100));
    let snapshot = h.settled().await;
    assert!(snapshot.cluster.staged.is_empty());
    for resource in Resource::STAGED {
        assert!(h.store.progress().synced(resource), "{resource:?}");
    }

    h.server.serve_calico(true);
    let snapshot = h.settled().await;
    assert_eq!(
        snapshot.cluster.staged.keys().cloned().collect::<Vec<_>>(),
        [key(StagedKind::GlobalNetworkPolicy, "", "deny-db")]
    );
    assert!(snapshot.cluster.pending().calico.policies.is_empty());
}
