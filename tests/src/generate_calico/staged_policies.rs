//! Staged policies: `Set` ones copying one of the case's policies with some fields changed
//! (or adding one), `Delete` ones naming a policy that may not exist.

use proptest::{prelude::*, sample::select};
use serde_json::{Value, json};

use super::policies::{name_service_namespaces, policy};
use crate::generate::NAMESPACES;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use policy_agent::model::staged::StagedKind;

/// One staged policy before the case's policies are known (see [`staged_documents`]).
#[derive(Debug, Clone)]
pub(super) enum StagedPick {
    /// `Set`: one of the case's policies (Calico or Kubernetes, picked), with the fields of
    /// `mask` taken from a fresh policy of its kind (its rules, order, selector, types).
    Change {
        pick: prop::sample::Index,
        mask: [bool; 5],
        calico: Value,
        kubernetes: Box<NetworkPolicy>,
        explicit: bool,
    },
    /// `Set`: a policy of no enforced one's name.
    New {
        kubernetes: bool,
        calico: Value,
        fresh: Box<NetworkPolicy>,
        explicit: bool,
    },
    /// `Delete` of one of the case's policies (picked), with its tier written out or not.
    Delete {
        pick: prop::sample::Index,
        tier: bool,
    },
    /// `Delete` of a kind, namespace and name that may name no policy of the case (often
    /// one of its names under another kind or namespace).
    DeleteOther {
        kind: StagedKind,
        namespace: &'static str,
        name: &'static str,
    },
}

/// `count` staged picks; a new policy's index is `10 + i`, apart from the case's own.
pub(super) fn staged_picks(
    count: std::ops::Range<usize>,
) -> impl Strategy<Value = Vec<StagedPick>> {
    count.prop_flat_map(|n| (0..n).map(staged_pick).collect::<Vec<_>>())
}

pub(super) fn staged_pick(index: usize) -> impl Strategy<Value = StagedPick> {
    let fresh = 10 + index;
    prop_oneof![
        4 => (
            any::<prop::sample::Index>(),
            any::<[bool; 5]>(),
            policy(fresh),
            crate::generate::policy(fresh),
            any::<bool>(),
        )
            .prop_map(|(pick, mask, calico, kubernetes, explicit)| StagedPick::Change {
                pick,
                mask,
                calico,
                kubernetes: Box::new(kubernetes),
                explicit,
            }),
        2 => (
            any::<bool>(),
            policy(fresh),
            crate::generate::policy(fresh),
            any::<bool>(),
        )
            .prop_map(|(kubernetes, calico, fresh, explicit)| StagedPick::New {
                kubernetes,
                calico,
                fresh: Box::new(fresh),
                explicit,
            }),
        2 => (any::<prop::sample::Index>(), any::<bool>())
            .prop_map(|(pick, tier)| StagedPick::Delete { pick, tier }),
        1 => (
            select(StagedKind::ALL.to_vec()),
            select(NAMESPACES.to_vec()),
            select(vec!["p0", "p1", "security.p0", "np0", "np1", "gone"]),
        )
            .prop_map(|(kind, namespace, name)| StagedPick::DeleteOther {
                kind,
                namespace,
                name,
            }),
    ]
}

/// A staged document of `kind` holding `document`'s metadata and spec (an enforced
/// policy's, or just a name), with `stagedAction` written out when `action` is given.
pub(super) fn staged_document(kind: StagedKind, document: &Value, action: Option<&str>) -> Value {
    let mut staged = document.clone();
    staged["apiVersion"] = json!("projectcalico.org/v3");
    staged["kind"] = json!(kind.as_str());
    if !staged["spec"].is_object() {
        staged["spec"] = json!({});
    }
    if let Some(action) = action {
        staged["spec"]["stagedAction"] = json!(action);
    }
    staged
}

/// A Kubernetes NetworkPolicy as a document (apiVersion, kind, metadata, spec).
pub(super) fn kubernetes_document(np: &NetworkPolicy) -> Value {
    serde_json::to_value(np).expect("a generated NetworkPolicy serializes")
}

/// The staged documents of `picks` over the case's Calico policies (`calico`, their
/// documents) and Kubernetes NetworkPolicies: one per kind, namespace and name (the last).
pub(super) fn staged_documents(
    picks: &[StagedPick],
    calico: &[Value],
    kubernetes: &[NetworkPolicy],
) -> Vec<Value> {
    let calico: Vec<&Value> = calico
        .iter()
        .filter(|d| {
            matches!(
                d["kind"].as_str(),
                Some("GlobalNetworkPolicy" | "NetworkPolicy")
            )
        })
        .collect();
    let count = calico.len() + kubernetes.len();
    let calico_kind = |document: &Value| {
        if document["kind"] == "GlobalNetworkPolicy" {
            StagedKind::GlobalNetworkPolicy
        } else {
            StagedKind::NetworkPolicy
        }
    };
    let action = |explicit: bool| explicit.then_some("Set");
    let mut out: Vec<Value> = Vec::new();
    for pick in picks {
        if count == 0 && matches!(pick, StagedPick::Change { .. } | StagedPick::Delete { .. }) {
            // No policy to change or delete.
            continue;
        }
        let document = match pick {
            StagedPick::Change {
                pick,
                mask,
                calico: fresh,
                kubernetes: fresh_np,
                explicit,
            } => {
                let at = pick.index(count);
                if let Some(enforced) = calico.get(at) {
                    let mut changed = (*enforced).clone();
                    for (field, take) in ["ingress", "egress", "order", "selector", "types"]
                        .into_iter()
                        .zip(mask)
                    {
                        let spec = changed["spec"].as_object_mut().expect("a spec");
                        match fresh["spec"].get(field) {
                            Some(value) if *take => {
                                spec.insert(field.to_owned(), value.clone());
                            }
                            None if *take => {
                                spec.remove(field);
                            }
                            _ => {}
                        }
                    }
                    if enforced["kind"] == "GlobalNetworkPolicy" {
                        name_service_namespaces(&mut changed["spec"]);
                    }
                    staged_document(calico_kind(enforced), &changed, action(*explicit))
                } else {
                    let mut np = kubernetes[at - calico.len()].clone();
                    let (spec, fresh) = (
                        np.spec.get_or_insert_with(Default::default),
                        fresh_np.spec.clone().unwrap_or_default(),
                    );
                    if mask[0] {
                        spec.ingress = fresh.ingress;
                    }
                    if mask[1] {
                        spec.egress = fresh.egress;
                    }
                    if mask[2] {
                        spec.policy_types = fresh.policy_types;
                    }
                    if mask[3] {
                        spec.pod_selector = fresh.pod_selector;
                    }
                    staged_document(
                        StagedKind::KubernetesNetworkPolicy,
                        &kubernetes_document(&np),
                        action(*explicit),
                    )
                }
            }
            StagedPick::New {
                kubernetes: true,
                fresh,
                explicit,
                ..
            } => staged_document(
                StagedKind::KubernetesNetworkPolicy,
                &kubernetes_document(fresh),
                action(*explicit),
            ),
            StagedPick::New {
                calico: fresh,
                explicit,
                ..
            } => staged_document(calico_kind(fresh), fresh, action(*explicit)),
            StagedPick::Delete { pick, tier } => {
                let at = pick.index(count);
                let (kind, metadata, policy_tier) = match calico.get(at) {
                    Some(enforced) => (
                        calico_kind(enforced),
                        enforced["metadata"].clone(),
                        Some(enforced["spec"]["tier"].as_str().unwrap_or("default")),
                    ),
                    None => {
                        let np = &kubernetes[at - calico.len()];
                        (
                            StagedKind::KubernetesNetworkPolicy,
                            json!({ "name": np.metadata.name, "namespace": np.metadata.namespace }),
                            None,
                        )
                    }
                };
                let mut spec = json!({ "stagedAction": "Delete" });
                if let Some(policy_tier) = policy_tier.filter(|_| *tier) {
                    spec["tier"] = json!(policy_tier);
                }
                staged_document(kind, &json!({ "metadata": metadata, "spec": spec }), None)
            }
            StagedPick::DeleteOther {
                kind,
                namespace,
                name,
            } => {
                let mut metadata = json!({ "name": name });
                if kind.is_namespaced() {
                    metadata["namespace"] = json!(namespace);
                }
                staged_document(*kind, &json!({ "metadata": metadata }), Some("Delete"))
            }
        };
        let key = |d: &Value| {
            (
                d["kind"].clone(),
                d["metadata"]["namespace"].clone(),
                d["metadata"]["name"].clone(),
            )
        };
        out.retain(|d| key(d) != key(&document));
        out.push(document);
    }
    out
}
