//! Calico's custom resources (`crd.projectcalico.org/v1`: GlobalNetworkPolicy, NetworkPolicy,
//! Tier, GlobalNetworkSet, NetworkSet, HostEndpoint, and the staged policies
//! StagedGlobalNetworkPolicy, StagedNetworkPolicy and StagedKubernetesNetworkPolicy), watched
//! like the Kubernetes resources, as kube-rs dynamic objects.
//!
//! Not every cluster runs Calico, and an agent on a cluster without its CRDs must still become
//! ready and enforce Kubernetes policy: the group version is discovered first, and again
//! periodically while any of the nine is not served, as [`super::crds`] describes.
//!
//! Each object is handed to [`crate::calico::resources::parse_value`] (a staged policy to
//! [`crate::model::staged::parse_value`]) as the `projectcalico.org/v3` document the CRD stands for
//! ([`to_v3`]): the CRDs' `spec` is v3's.

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
use crate::{calico::resources as calico, model::staged::StagedKind};

pub const GROUP: &str = "crd.projectcalico.org";
pub const VERSION: &str = "v1";
/// `apiVersion` of the custom resources.
pub const API_VERSION: &str = "crd.projectcalico.org/v1";

pub(super) use super::crds::Store;

/// The CRD's plural name, as its URL and RBAC spell it.
pub fn plural(kind: calico::Kind) -> &'static str {
    match kind {
        calico::Kind::GlobalNetworkPolicy => "globalnetworkpolicies",
        calico::Kind::NetworkPolicy => "networkpolicies",
        calico::Kind::Tier => "tiers",
        calico::Kind::GlobalNetworkSet => "globalnetworksets",
        calico::Kind::NetworkSet => "networksets",
        calico::Kind::HostEndpoint => "hostendpoints",
    }
}

/// The watched resource (for progress and logs) holding `kind`.
fn resource_of(kind: calico::Kind) -> Resource {
    match kind {
        calico::Kind::GlobalNetworkPolicy => Resource::CalicoGlobalNetworkPolicies,
        calico::Kind::NetworkPolicy => Resource::CalicoNetworkPolicies,
        calico::Kind::Tier => Resource::CalicoTiers,
        calico::Kind::GlobalNetworkSet => Resource::CalicoGlobalNetworkSets,
        calico::Kind::NetworkSet => Resource::CalicoNetworkSets,
        calico::Kind::HostEndpoint => Resource::CalicoHostEndpoints,
    }
}

/// A staged policy CRD's plural name, as its URL and RBAC spell it.
pub fn staged_plural(kind: StagedKind) -> &'static str {
    match kind {
        StagedKind::GlobalNetworkPolicy => "stagedglobalnetworkpolicies",
        StagedKind::NetworkPolicy => "stagednetworkpolicies",
        StagedKind::KubernetesNetworkPolicy => "stagedkubernetesnetworkpolicies",
    }
}

/// The watched resource (for progress and logs) holding staged policies of `kind`.
fn staged_resource_of(kind: StagedKind) -> Resource {
    match kind {
        StagedKind::GlobalNetworkPolicy => Resource::CalicoStagedGlobalNetworkPolicies,
        StagedKind::NetworkPolicy => Resource::CalicoStagedNetworkPolicies,
        StagedKind::KubernetesNetworkPolicy => Resource::CalicoStagedKubernetesNetworkPolicies,
    }
}

fn api_resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: GROUP.to_owned(),
        version: VERSION.to_owned(),
        api_version: API_VERSION.to_owned(),
        kind: kind.to_owned(),
        plural: plural.to_owned(),
    }
}

/// Calico's stores: its resources' (in [`calico::Kind::ALL`]'s order) and its staged
/// policies' (in [`StagedKind::ALL`]'s order).
pub(super) struct Stores {
    pub resources: Vec<(calico::Kind, Store)>,
    pub staged: Vec<(StagedKind, Store)>,
}

/// Starts discovering and watching Calico's resources and staged policies (one group version:
/// one discovery task); returns their stores and the task that runs it all.
pub(super) fn spawn(
    client: Client,
    options: &Options,
    progress: Arc<WatchProgress>,
    changes: mpsc::UnboundedSender<()>,
) -> (Stores, JoinHandle<()>) {
    let resources = calico::Kind::ALL
        .into_iter()
        .map(|kind| (resource_of(kind), api_resource(kind.as_str(), plural(kind))));
    let staged = StagedKind::ALL.into_iter().map(|kind| {
        (
            staged_resource_of(kind),
            api_resource(kind.as_str(), staged_plural(kind)),
        )
    });
    let group = crds::GroupVersion {
        api_version: API_VERSION.to_owned(),
        owner: "Calico's",
        resources: resources.chain(staged).collect(),
    };
    let (stores, task) = crds::spawn(client, options, progress, changes, group);
    let mut calico_stores = Stores {
        resources: Vec::new(),
        staged: Vec::new(),
    };
    for (resource, store) in stores {
        if let Some(kind) = resource.calico_kind() {
            calico_stores.resources.push((kind, store));
        } else if let Some(kind) = resource.staged_kind() {
            calico_stores.staged.push((kind, store));
        }
    }
    (calico_stores, task)
}

/// The `projectcalico.org/v3` document a custom resource of `kind` (a Calico kind's or a
/// staged kind's `as_str`) stands for: the same `spec`, the v3 `apiVersion`, and only the
/// metadata v3 validation reads (name, namespace, labels).
pub(super) fn to_v3(
    kind: &str,
    object: &DynamicObject,
) -> Result<serde_yaml::Value, serde_yaml::Error> {
    let meta = &object.metadata;
    let mut metadata = Map::new();
    if let Some(name) = &meta.name {
        metadata.insert("name".to_owned(), json!(name));
    }
    if let Some(namespace) = &meta.namespace {
        metadata.insert("namespace".to_owned(), json!(namespace));
    }
    if let Some(labels) = &meta.labels {
        metadata.insert("labels".to_owned(), json!(labels));
    }
    let mut document = json!({
        "apiVersion": calico::API_VERSION,
        "kind": kind,
        "metadata": Value::Object(metadata),
    });
    if let Some(spec) = object.data.get("spec") {
        document["spec"] = spec.clone();
    }
    serde_yaml::to_value(document)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn a_custom_resource_becomes_its_v3_document() {
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": API_VERSION,
            "kind": "NetworkPolicy",
            "metadata": {
                "name": "allow-web",
                "namespace": "shop",
                "labels": {"team": "web"},
                "annotations": {"projectcalico.org/metadata": "{}"},
                "uid": "1234",
                "resourceVersion": "7",
            },
            "spec": {"selector": "app == 'web'", "types": ["Ingress"]},
            "status": {"ignored": true},
        }))
        .unwrap_or_else(|e| panic!("object: {e}"));
        let document = to_v3(calico::Kind::NetworkPolicy.as_str(), &object)
            .unwrap_or_else(|e| panic!("v3 document: {e}"));
        let expected: serde_yaml::Value = serde_yaml::from_str(
            "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\n\
             metadata: {name: allow-web, namespace: shop, labels: {team: web}}\n\
             spec: {selector: \"app == 'web'\", types: [Ingress]}\n",
        )
        .unwrap_or_else(|e| panic!("expected: {e}"));
        assert_eq!(document, expected);
        assert!(calico::parse_value(document).is_ok());
    }

    #[test]
    fn every_kind_has_a_distinct_plural() {
        let plurals: BTreeSet<_> = calico::Kind::ALL.into_iter().map(plural).collect();
        assert_eq!(plurals.len(), calico::Kind::ALL.len());
        for (resource, kind) in Resource::CALICO.into_iter().zip(calico::Kind::ALL) {
            assert_eq!(resource_of(kind), resource);
            assert_eq!(resource.calico_kind(), Some(kind));
            assert_eq!(resource.plural(), format!("{}.{GROUP}", plural(kind)));
            assert_eq!(resource.staged_kind(), None);
        }
        let staged: BTreeSet<_> = StagedKind::ALL.into_iter().map(staged_plural).collect();
        assert_eq!(staged.len(), StagedKind::ALL.len());
        assert!(staged.is_disjoint(&plurals));
        for (resource, kind) in Resource::STAGED.into_iter().zip(StagedKind::ALL) {
            assert_eq!(staged_resource_of(kind), resource);
            assert_eq!(resource.staged_kind(), Some(kind));
            assert_eq!(resource.calico_kind(), None);
            assert_eq!(
                resource.plural(),
                format!("{}.{GROUP}", staged_plural(kind))
            );
        }
    }

    #[test]
    fn a_staged_custom_resource_becomes_its_v3_document() {
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": API_VERSION,
            "kind": "StagedNetworkPolicy",
            "metadata": {"name": "allow-web", "namespace": "shop", "resourceVersion": "7"},
            "spec": {"stagedAction": "Set", "selector": "app == 'web'", "types": ["Ingress"]},
        }))
        .unwrap_or_else(|e| panic!("object: {e}"));
        let document = to_v3(StagedKind::NetworkPolicy.as_str(), &object)
            .unwrap_or_else(|e| panic!("v3 document: {e}"));
        let expected: serde_yaml::Value = serde_yaml::from_str(
            "apiVersion: projectcalico.org/v3\nkind: StagedNetworkPolicy\n\
             metadata: {name: allow-web, namespace: shop}\n\
             spec: {stagedAction: Set, selector: \"app == 'web'\", types: [Ingress]}\n",
        )
        .unwrap_or_else(|e| panic!("expected: {e}"));
        assert_eq!(document, expected);
        let staged = crate::model::staged::parse_value(StagedKind::NetworkPolicy, document)
            .unwrap_or_else(|e| panic!("staged policy: {e:?}"));
        assert_eq!(
            (staged.namespace.as_str(), staged.name.as_str()),
            ("shop", "allow-web")
        );
    }
}
