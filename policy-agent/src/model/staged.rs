//! Calico's staged policies (`StagedGlobalNetworkPolicy`, `StagedNetworkPolicy`,
//! `StagedKubernetesNetworkPolicy`, projectcalico.org/v3): policies a user is about to apply,
//! which never change a packet's verdict but give each flow a *pending* one, the verdict it
//! would get with them applied.
//!
//! A staged policy is the enforced policy of the same kind, namespace and name as it would be:
//! `stagedAction: Set` (the default) puts it in place of that policy (or beside the others if
//! there is none), `Delete` takes that policy away. [`Cluster::pending`] is the cluster with
//! every staged change applied; the agent compiles it beside the enforced one, in userspace
//! only (the datapath never sees it). A staged document is read as Calico's API server reads
//! it (`ConvertStagedPolicyToEnforced`): `spec.stagedAction` taken out, the kind renamed, then
//! the enforced kind's own validation; with `Delete`, every field of the spec but `tier` must
//! be empty.

use std::sync::Arc;

use serde_yaml::Value;

use super::{Cluster, NetworkPolicy, convert};
use crate::calico::resources::{self as calico, CalicoResource};

/// The three kinds of staged policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StagedKind {
    /// Stages a `GlobalNetworkPolicy`.
    GlobalNetworkPolicy,
    /// Stages a Calico (projectcalico.org/v3) `NetworkPolicy`.
    NetworkPolicy,
    /// Stages a Kubernetes (networking.k8s.io/v1) `NetworkPolicy`.
    KubernetesNetworkPolicy,
}

impl StagedKind {
    pub const ALL: [StagedKind; 3] = [
        StagedKind::GlobalNetworkPolicy,
        StagedKind::NetworkPolicy,
        StagedKind::KubernetesNetworkPolicy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StagedKind::GlobalNetworkPolicy => "StagedGlobalNetworkPolicy",
            StagedKind::NetworkPolicy => "StagedNetworkPolicy",
            StagedKind::KubernetesNetworkPolicy => "StagedKubernetesNetworkPolicy",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    pub fn is_namespaced(self) -> bool {
        !matches!(self, StagedKind::GlobalNetworkPolicy)
    }

    /// The enforced kind and API version a document of this kind is read as.
    fn enforced(self) -> (&'static str, &'static str) {
        match self {
            StagedKind::GlobalNetworkPolicy => (calico::API_VERSION, "GlobalNetworkPolicy"),
            StagedKind::NetworkPolicy => (calico::API_VERSION, "NetworkPolicy"),
            StagedKind::KubernetesNetworkPolicy => ("networking.k8s.io/v1", "NetworkPolicy"),
        }
    }
}

/// What a staged policy does to the enforced one of its kind, namespace and name.
#[derive(Debug, Clone, PartialEq)]
pub enum StagedChange {
    /// `stagedAction: Set`: this policy, in place of the enforced one (or beside the others).
    Set(Box<StagedSpec>),
    /// `stagedAction: Delete`: the enforced one taken away.
    Delete,
}

/// A staged policy's contents, as the enforced kind.
#[derive(Debug, Clone, PartialEq)]
pub enum StagedSpec {
    Calico(CalicoResource),
    Kubernetes(NetworkPolicy),
}

#[derive(Debug, Clone, PartialEq)]
pub struct StagedPolicy {
    pub kind: StagedKind,
    /// Empty for a `StagedGlobalNetworkPolicy`.
    pub namespace: String,
    pub name: String,
    pub change: StagedChange,
}

// Validation rejects a NaN `order`, the only value that would make equality partial.
impl Eq for StagedPolicy {}

/// A staged policy document that cannot be read: the field (when known) and why.
pub type StagedError = (Option<String>, String);

/// Reads a staged policy document of `kind`.
pub fn parse_value(kind: StagedKind, mut document: Value) -> Result<StagedPolicy, StagedError> {
    let metadata = document.get("metadata");
    let name = metadata
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or((Some("metadata.name".to_owned()), "required".to_owned()))?
        .to_owned();
    let namespace = if kind.is_namespaced() {
        metadata
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .unwrap_or("default")
            .to_owned()
    } else {
        String::new()
    };
    let spec = document
        .get_mut("spec")
        .and_then(Value::as_mapping_mut)
        .ok_or((Some("spec".to_owned()), "required".to_owned()))?;
    let action = match spec.remove("stagedAction") {
        None => "Set".to_owned(),
        Some(Value::String(action)) => action,
        Some(_) => {
            return Err((
                Some("spec.stagedAction".to_owned()),
                "expected Set or Delete".to_owned(),
            ));
        }
    };
    let change = match action.as_str() {
        "Set" => {
            let (api_version, enforced_kind) = kind.enforced();
            document["apiVersion"] = Value::String(api_version.to_owned());
            document["kind"] = Value::String(enforced_kind.to_owned());
            StagedChange::Set(Box::new(spec_of(kind, document)?))
        }
        "Delete" => {
            // What Calico's validator requires: nothing is being staged but a removal.
            if let Some(field) = spec.keys().filter_map(Value::as_str).find(|f| *f != "tier") {
                return Err((
                    Some(format!("spec.{field}")),
                    "must be empty with stagedAction Delete (only spec.tier may be set)".to_owned(),
                ));
            }
            StagedChange::Delete
        }
        other => {
            return Err((
                Some("spec.stagedAction".to_owned()),
                format!("{other:?}: expected Set or Delete"),
            ));
        }
    };
    Ok(StagedPolicy {
        kind,
        namespace,
        name,
        change,
    })
}

/// The document, renamed to its enforced kind, read and validated as that kind.
fn spec_of(kind: StagedKind, document: Value) -> Result<StagedSpec, StagedError> {
    match kind {
        StagedKind::KubernetesNetworkPolicy => {
            let np: k8s_openapi::api::networking::v1::NetworkPolicy =
                crate::serde_field::deserialize(document)
                    .map_err(|e| (Some(e.field), e.message))?;
            convert::network_policy(&np)
                .map(StagedSpec::Kubernetes)
                .map_err(|e| (Some(e.field), e.message))
        }
        StagedKind::GlobalNetworkPolicy | StagedKind::NetworkPolicy => {
            calico::parse_value(document)
                .map(StagedSpec::Calico)
                .map_err(|e| e.field_and_message())
        }
    }
}

impl Cluster {
    /// Whether any staged policy is in the datastore.
    pub fn has_staged(&self) -> bool {
        !self.staged.is_empty()
    }

    /// The cluster as it would be with every staged policy applied: what pending verdicts are
    /// decided against. Staged policies themselves are not carried over.
    pub fn pending(&self) -> Cluster {
        let mut pending = self.clone();
        pending.staged.clear();
        for staged in self.staged.values() {
            let key = (staged.namespace.clone(), staged.name.clone());
            match (&staged.change, staged.kind) {
                (StagedChange::Set(spec), _) => match spec.as_ref() {
                    StagedSpec::Kubernetes(np) => {
                        pending.policies.insert(key, Arc::new(np.clone()));
                    }
                    StagedSpec::Calico(resource) => pending.calico.insert(resource.clone()),
                },
                (StagedChange::Delete, StagedKind::KubernetesNetworkPolicy) => {
                    pending.policies.remove(&key);
                }
                (StagedChange::Delete, _) => {
                    pending.calico.policies.remove(&key);
                }
            }
        }
        pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(yaml: &str) -> Value {
        serde_yaml::from_str(yaml).expect("YAML")
    }

    #[test]
    fn a_staged_set_replaces_and_a_staged_delete_removes_the_enforced_policy() {
        let mut cluster = Cluster::default();
        let enforced = parse_value(
            StagedKind::KubernetesNetworkPolicy,
            document(
                "kind: StagedKubernetesNetworkPolicy\nmetadata: {name: web, namespace: shop}\nspec: {podSelector: {}}\n",
            ),
        )
        .expect("valid");
        let StagedChange::Set(spec) = enforced.change else {
            panic!("a Set");
        };
        let StagedSpec::Kubernetes(np) = *spec else {
            panic!("a Kubernetes policy");
        };
        cluster
            .policies
            .insert(("shop".into(), "web".into()), np.clone().into());
        let widened = parse_value(
            StagedKind::KubernetesNetworkPolicy,
            document(
                "kind: StagedKubernetesNetworkPolicy\nmetadata: {name: web, namespace: shop}\nspec:\n  stagedAction: Set\n  podSelector: {}\n  ingress: [{}]\n",
            ),
        )
        .expect("valid");
        cluster.staged.insert(
            (
                widened.kind,
                widened.namespace.clone(),
                widened.name.clone(),
            ),
            widened,
        );
        let pending = cluster.pending();
        assert_eq!(pending.policies.len(), 1);
        assert_ne!(*pending.policies[&("shop".into(), "web".into())], np);
        assert!(!pending.has_staged());

        let delete = parse_value(
            StagedKind::KubernetesNetworkPolicy,
            document(
                "kind: StagedKubernetesNetworkPolicy\nmetadata: {name: web, namespace: shop}\nspec: {stagedAction: Delete}\n",
            ),
        )
        .expect("valid");
        cluster
            .staged
            .insert((delete.kind, "shop".into(), "web".into()), delete);
        assert!(cluster.pending().policies.is_empty());
        // The enforced cluster is untouched.
        assert_eq!(cluster.policies.len(), 1);
    }

    #[test]
    fn staged_documents_are_validated_as_their_enforced_kind() {
        let bad = parse_value(
            StagedKind::GlobalNetworkPolicy,
            document(
                "kind: StagedGlobalNetworkPolicy\nmetadata: {name: p}\nspec: {selector: \"app ==\", ingress: [{action: Allow}]}\n",
            ),
        );
        assert_eq!(
            bad.expect_err("a bad selector").0.as_deref(),
            Some("spec.selector")
        );
        let delete_with_rules = parse_value(
            StagedKind::NetworkPolicy,
            document(
                "kind: StagedNetworkPolicy\nmetadata: {name: p, namespace: shop}\nspec: {stagedAction: Delete, tier: default, ingress: [{action: Allow}]}\n",
            ),
        );
        assert_eq!(
            delete_with_rules
                .expect_err("rules with Delete")
                .0
                .as_deref(),
            Some("spec.ingress")
        );
        let unknown = parse_value(
            StagedKind::NetworkPolicy,
            document(
                "kind: StagedNetworkPolicy\nmetadata: {name: p}\nspec: {stagedAction: Remove}\n",
            ),
        );
        assert_eq!(
            unknown.expect_err("an unknown action").0.as_deref(),
            Some("spec.stagedAction")
        );
        let global = parse_value(
            StagedKind::GlobalNetworkPolicy,
            document(
                "kind: StagedGlobalNetworkPolicy\nmetadata: {name: p}\nspec: {selector: all(), ingress: [{action: Deny}]}\n",
            ),
        )
        .expect("valid");
        assert!(matches!(
            global.change,
            StagedChange::Set(spec) if matches!(*spec, StagedSpec::Calico(CalicoResource::GlobalNetworkPolicy(_)))
        ));
        assert_eq!(global.namespace, "");
    }
}
