//! network-policy-api's cluster-scoped administrators' policy (`policy.networking.k8s.io`:
//! `v1alpha2` ClusterNetworkPolicy, `v1alpha1` AdminNetworkPolicy and
//! BaselineAdminNetworkPolicy), watched as kube-rs dynamic objects exactly as Calico's custom
//! resources are.
//!
//! Few clusters have these CRDs, and a cluster may have one API version's and not the other's
//! (v0.2.0 replaced the v1alpha1 kinds by ClusterNetworkPolicy). So each group version is
//! discovered on its own ([`super::crds`]): a kind not served counts as listed and empty, so the
//! agent still becomes ready, and discovery is repeated while any is missing; a CRD installed
//! later is picked up, one deleted empties its store.
//!
//! Each object is handed to [`crate::cluster_policy::parse_value`] as the document it was
//! written as ([`to_document`]).

use std::sync::Arc;

use kube::{
    Client,
    api::{ApiResource, DynamicObject},
};
use serde_json::{Map, Value, json};
use tokio::{sync::mpsc, task::JoinHandle};

use super::{
    Options, crds,
    watch::{Resource, WatchProgress},
};
use crate::cluster_policy::{API_GROUP, ApiKind};

pub(super) use super::crds::Store;

/// The watched resource (for progress and logs) holding `kind`.
fn resource_of(kind: ApiKind) -> Resource {
    match kind {
        ApiKind::ClusterNetworkPolicy => Resource::ClusterNetworkPolicies,
        ApiKind::AdminNetworkPolicy => Resource::AdminNetworkPolicies,
        ApiKind::BaselineAdminNetworkPolicy => Resource::BaselineAdminNetworkPolicies,
    }
}

fn api_resource(kind: ApiKind) -> ApiResource {
    ApiResource {
        group: API_GROUP.to_owned(),
        version: kind.version().to_owned(),
        api_version: kind.api_version(),
        kind: kind.as_str().to_owned(),
        plural: kind.plural().to_owned(),
    }
}

/// The group versions these kinds come in (`v1alpha2`, `v1alpha1`), each with its kinds, in
/// [`ApiKind::ALL`]'s order.
fn group_versions() -> Vec<crds::GroupVersion> {
    let mut groups: Vec<crds::GroupVersion> = Vec::new();
    for kind in ApiKind::ALL {
        let api_version = kind.api_version();
        let resource = (resource_of(kind), api_resource(kind));
        match groups.iter_mut().find(|g| g.api_version == api_version) {
            Some(group) => group.resources.push(resource),
            None => groups.push(crds::GroupVersion {
                api_version,
                owner: "network-policy-api's",
                resources: vec![resource],
            }),
        }
    }
    groups
}

/// Starts discovering and watching the three kinds (one task per group version); returns their
/// stores (in [`ApiKind::ALL`]'s order) and the tasks.
pub(super) fn spawn(
    client: Client,
    options: &Options,
    progress: Arc<WatchProgress>,
    changes: mpsc::UnboundedSender<()>,
) -> (Vec<(ApiKind, Store)>, Vec<JoinHandle<()>>) {
    let mut stores = Vec::new();
    let mut tasks = Vec::new();
    for group in group_versions() {
        let (group_stores, task) = crds::spawn(
            client.clone(),
            options,
            progress.clone(),
            changes.clone(),
            group,
        );
        stores.extend(group_stores.into_iter().filter_map(|(resource, store)| {
            resource.cluster_policy_kind().map(|kind| (kind, store))
        }));
        tasks.push(task);
    }
    stores.sort_by_key(|(kind, _)| *kind);
    (stores, tasks)
}

/// The document `parse_value` reads: the kind's `apiVersion` and `kind`, the name (the only
/// metadata validation reads) and the `spec` as stored.
pub(super) fn to_document(kind: ApiKind, object: &DynamicObject) -> Value {
    let mut metadata = Map::new();
    if let Some(name) = &object.metadata.name {
        metadata.insert("name".to_owned(), json!(name));
    }
    let mut document = json!({
        "apiVersion": kind.api_version(),
        "kind": kind.as_str(),
        "metadata": Value::Object(metadata),
    });
    if let Some(spec) = object.data.get("spec") {
        document["spec"] = spec.clone();
    }
    document
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::cluster_policy::{PolicyTier, parse_value};

    #[test]
    fn two_group_versions_hold_the_three_kinds() {
        let groups: Vec<(String, Vec<String>)> = group_versions()
            .into_iter()
            .map(|g| {
                let plurals = g.resources.into_iter().map(|(_, api)| api.plural).collect();
                (g.api_version, plurals)
            })
            .collect();
        assert_eq!(
            groups,
            [
                (
                    "policy.networking.k8s.io/v1alpha2".to_owned(),
                    vec!["clusternetworkpolicies".to_owned()]
                ),
                (
                    "policy.networking.k8s.io/v1alpha1".to_owned(),
                    vec![
                        "adminnetworkpolicies".to_owned(),
                        "baselineadminnetworkpolicies".to_owned()
                    ]
                ),
            ]
        );
        for (resource, kind) in Resource::CLUSTER_POLICY.into_iter().zip(ApiKind::ALL) {
            assert_eq!(resource_of(kind), resource);
            assert_eq!(resource.cluster_policy_kind(), Some(kind));
            assert_eq!(resource.plural(), format!("{}.{API_GROUP}", kind.plural()));
        }
        let plurals: BTreeSet<_> = Resource::ALL.into_iter().map(Resource::plural).collect();
        assert_eq!(plurals.len(), Resource::ALL.len());
    }

    #[test]
    fn a_stored_object_becomes_the_document_it_was_written_as() {
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "policy.networking.k8s.io/v1alpha2",
            "kind": "ClusterNetworkPolicy",
            "metadata": {
                "name": "guard",
                "labels": {"team": "sec"},
                "uid": "1234",
                "resourceVersion": "7",
                "generation": 2,
                "creationTimestamp": "2026-01-01T00:00:00Z",
            },
            "spec": {
                "tier": "Admin",
                "priority": 10,
                "subject": {"namespaces": {}},
                "ingress": [{"action": "Deny", "from": [{"namespaces": {}}]}],
            },
        }))
        .unwrap_or_else(|e| panic!("object: {e}"));
        let document = to_document(ApiKind::ClusterNetworkPolicy, &object);
        assert_eq!(document["metadata"], json!({"name": "guard"}));
        let policy = parse_value(ApiKind::ClusterNetworkPolicy, &document)
            .unwrap_or_else(|e| panic!("parse: {e}"));
        assert_eq!(policy.name, "guard");
        assert_eq!(policy.tier, PolicyTier::Admin);
        assert_eq!(policy.priority, 10);
    }
}
