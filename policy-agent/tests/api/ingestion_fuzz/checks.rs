//! What every case is held to: rejections name their file, object and field; kept versions.

use std::collections::{BTreeMap, BTreeSet};

use policy_agent::{datastore::Snapshot, model::Cluster, status::ObjectError};
use proptest::{prelude::*, test_runner::TestCaseError};
use serde_yaml::Value;

/// How the file datastore names a document's object, read as leniently as it reads it:
/// `None` when the kind or the name is not a string.
fn object_name(document: &Value) -> Option<String> {
    let kind = document.get("kind")?.as_str()?;
    let metadata = document.get("metadata")?;
    let name = metadata.get("name")?.as_str()?;
    let calico = document.get("apiVersion").and_then(Value::as_str) == Some("projectcalico.org/v3")
        && [
            "GlobalNetworkPolicy",
            "NetworkPolicy",
            "Tier",
            "GlobalNetworkSet",
            "NetworkSet",
            "HostEndpoint",
            "StagedGlobalNetworkPolicy",
            "StagedNetworkPolicy",
            "StagedKubernetesNetworkPolicy",
        ]
        .contains(&kind);
    // network-policy-api's kinds are cluster-scoped (under their own API versions only).
    let cluster_scoped = document
        .get("apiVersion")
        .and_then(Value::as_str)
        .is_some_and(|v| policy_agent::cluster_policy::ApiKind::from_api(v, kind).is_some());
    let namespaced = if calico {
        matches!(
            kind,
            "NetworkPolicy"
                | "NetworkSet"
                | "StagedNetworkPolicy"
                | "StagedKubernetesNetworkPolicy"
        )
    } else {
        kind != "Namespace" && !cluster_scoped
    };
    let kind = if calico {
        format!("{kind} (projectcalico.org/v3)")
    } else {
        kind.to_owned()
    };
    Some(if namespaced {
        let namespace = metadata
            .get("namespace")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .unwrap_or("default");
        format!("{kind} {namespace}/{name}")
    } else {
        format!("{kind} {name}")
    })
}

/// Every object of `cluster` by the name the file datastore gives it in errors, with its value
/// (debug-printed, for comparison).
fn named_objects(cluster: &Cluster) -> BTreeMap<String, String> {
    let mut named = BTreeMap::new();
    let calico = |kind: &str| format!("{kind} (projectcalico.org/v3)");
    for (name, ns) in &cluster.namespaces {
        named.insert(format!("Namespace {name}"), format!("{ns:?}"));
    }
    for ((ns, name), pod) in &cluster.pods {
        named.insert(format!("Pod {ns}/{name}"), format!("{pod:?}"));
    }
    for ((ns, name), policy) in &cluster.policies {
        named.insert(format!("NetworkPolicy {ns}/{name}"), format!("{policy:?}"));
    }
    for ((ns, name), service) in &cluster.services {
        named.insert(format!("Service {ns}/{name}"), format!("{service:?}"));
    }
    for ((ns, name), slice) in &cluster.endpoint_slices {
        named.insert(format!("EndpointSlice {ns}/{name}"), format!("{slice:?}"));
    }
    for ((ns, name), policy) in &cluster.calico.policies {
        let key = if ns.is_empty() {
            format!("{} {name}", calico("GlobalNetworkPolicy"))
        } else {
            format!("{} {ns}/{name}", calico("NetworkPolicy"))
        };
        named.insert(key, format!("{policy:?}"));
    }
    for (name, tier) in &cluster.calico.tiers {
        named.insert(format!("{} {name}", calico("Tier")), format!("{tier:?}"));
    }
    for ((ns, name), set) in &cluster.calico.network_sets {
        let key = if ns.is_empty() {
            format!("{} {name}", calico("GlobalNetworkSet"))
        } else {
            format!("{} {ns}/{name}", calico("NetworkSet"))
        };
        named.insert(key, format!("{set:?}"));
    }
    for (name, endpoint) in &cluster.calico.host_endpoints {
        named.insert(
            format!("{} {name}", calico("HostEndpoint")),
            format!("{endpoint:?}"),
        );
    }
    named
}

/// The property "a rejected edit keeps the version accepted before": `base` was loaded from
/// the unmutated documents, `edited` from the mutated ones in the same file. A file that is no
/// YAML keeps everything; an object rejected by name keeps its previous version.
pub(super) fn check_kept(
    base: &Snapshot,
    base_documents: &[Value],
    edited: &Snapshot,
    edited_contents: &[u8],
) -> Result<(), TestCaseError> {
    let before = named_objects(&base.cluster);
    let after = named_objects(&edited.cluster);
    if edited
        .errors
        .iter()
        .any(|e| e.message.contains("not valid YAML"))
    {
        prop_assert_eq!(&after, &before, "a file that is not YAML changed the state");
        return Ok(());
    }
    let edited_documents: Vec<Value> = serde_yaml::Deserializer::from_slice(edited_contents)
        .filter_map(|d| serde::Deserialize::deserialize(d).ok())
        .filter(|d: &Value| !d.is_null())
        .collect();
    let unique = |documents: &[Value], name: &str| {
        documents
            .iter()
            .filter(|d| object_name(d).as_deref() == Some(name))
            .count()
            == 1
    };
    for error in &edited.errors {
        let Some(name) = &error.object else { continue };
        if error.message.starts_with("duplicate of the object in")
            || !unique(base_documents, name)
            || !unique(&edited_documents, name)
        {
            continue;
        }
        let Some(previous) = before.get(name) else {
            continue;
        };
        prop_assert_eq!(
            after.get(name),
            Some(previous),
            "{} was rejected, but its previous version is not what is in force",
            error
        );
        prop_assert!(
            error
                .message
                .ends_with("the previously accepted version stays in force"),
            "{}",
            error
        );
    }
    Ok(())
}

/// Checks every rejection in `snapshot` against the documents of `contents` (the property
/// "names the object and the field").
pub(super) fn check_errors(
    file: &str,
    contents: &[u8],
    snapshot: &Snapshot,
) -> Result<(), TestCaseError> {
    // The documents as the datastore sees them (None: the file is not YAML). Not parsed again
    // when the datastore says it is not YAML: the inputs that make the YAML scanner slow are
    // among those.
    let not_yaml = snapshot
        .errors
        .iter()
        .any(|e| e.message.starts_with("not valid YAML"));
    let documents: Option<Vec<Value>> = if not_yaml {
        None
    } else {
        serde_yaml::Deserializer::from_slice(contents)
            .map(<Value as serde::Deserialize>::deserialize)
            .collect::<Result<Vec<Value>, _>>()
            .ok()
            .map(|docs| docs.into_iter().filter(|d| !d.is_null()).collect())
    };
    for error in &snapshot.errors {
        check_error(file, documents.as_deref(), error)?;
    }
    Ok(())
}

fn check_error(
    file: &str,
    documents: Option<&[Value]>,
    error: &ObjectError,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(&error.source, file);
    prop_assert!(!error.message.trim().is_empty(), "{}", error);
    let Some(documents) = documents else {
        if error.message.starts_with("duplicate of the object in") {
            // The objects the file held before, kept, and still duplicates.
            return Ok(());
        }
        // Not YAML: no object can be read; the message says where the syntax broke.
        prop_assert!(error.object.is_none(), "{}", error);
        prop_assert!(error.message.contains("not valid YAML"), "{}", error);
        return Ok(());
    };
    let Some(object) = &error.object else {
        return Err(TestCaseError::fail(format!("no object named: {error}")));
    };
    if let Some(index) = object.strip_prefix("document ") {
        let index: usize = index
            .parse()
            .map_err(|_| TestCaseError::fail(format!("bad document index: {error}")))?;
        let document = documents.get(index);
        prop_assert!(document.is_some(), "{}", error);
        prop_assert!(
            document.and_then(object_name).is_none(),
            "the document has a readable kind and name, but the error says {}",
            error
        );
    } else {
        let names: BTreeSet<String> = documents.iter().filter_map(object_name).collect();
        prop_assert!(
            names.contains(object),
            "{} names none of the file's objects {:?}",
            error,
            names
        );
    }
    if !error.message.starts_with("duplicate of the object in") {
        prop_assert!(
            error.field.as_deref().is_some_and(|f| !f.is_empty()),
            "no field named: {}",
            error
        );
    }
    Ok(())
}
