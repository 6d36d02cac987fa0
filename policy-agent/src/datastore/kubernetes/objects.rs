//! From the stores' objects to a [`Snapshot`], converting only what changed.
//!
//! Objects are converted with `model::convert`, as the file datastore does, and cached by
//! resource version: an unchanged object is not converted again, and an object whose new
//! version is rejected keeps its last accepted version in force (as a failed update leaves the
//! file datastore's old object in place). A deleted object is forgotten. Calico's custom
//! resources go through [`calico::parse_value`] as the v3 documents they stand for, as the
//! file datastore's v3 documents do.

use std::{collections::BTreeMap, sync::Arc};

use k8s_openapi::api::{core::v1 as core, networking::v1 as networking};
use kube::{ResourceExt as _, api::DynamicObject};
use sha2::{Digest as _, Sha256};
use tracing::warn;

use super::{SOURCE, calico::to_v3};
use crate::{
    calico::resources::{self as calico, CalicoResource, ResourceError},
    datastore::Snapshot,
    model::{self, Cluster, convert},
    status::ObjectError,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Namespace,
    Pod,
    NetworkPolicy,
    Calico(calico::Kind),
}

impl Kind {
    /// As objects are named in errors and in the digest. Calico's kinds carry their API
    /// version: its NetworkPolicy is not the Kubernetes one of the same namespace and name.
    fn name(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::Pod => "Pod",
            Kind::NetworkPolicy => "NetworkPolicy",
            Kind::Calico(kind) => calico_kind_name(kind),
        }
    }

    fn is_namespaced(self) -> bool {
        match self {
            Kind::Namespace => false,
            Kind::Pod | Kind::NetworkPolicy => true,
            Kind::Calico(kind) => kind.is_namespaced(),
        }
    }
}

/// How a Calico custom resource's kind is named in errors and in the snapshot digest.
fn calico_kind_name(kind: calico::Kind) -> &'static str {
    match kind {
        calico::Kind::GlobalNetworkPolicy => "GlobalNetworkPolicy (crd.projectcalico.org/v1)",
        calico::Kind::NetworkPolicy => "NetworkPolicy (crd.projectcalico.org/v1)",
        calico::Kind::Tier => "Tier (crd.projectcalico.org/v1)",
        calico::Kind::GlobalNetworkSet => "GlobalNetworkSet (crd.projectcalico.org/v1)",
        calico::Kind::NetworkSet => "NetworkSet (crd.projectcalico.org/v1)",
        calico::Kind::HostEndpoint => "HostEndpoint (crd.projectcalico.org/v1)",
    }
}

/// (kind, namespace, name); the namespace is empty for Namespaces.
type Key = (Kind, String, String);

#[derive(Debug, Clone)]
enum Object {
    Namespace(model::Namespace),
    Pod(model::Pod),
    NetworkPolicy(model::NetworkPolicy),
    Calico(CalicoResource),
}

/// Why an object was rejected.
struct Rejection {
    field: Option<String>,
    message: String,
}

impl From<convert::ConvertError> for Rejection {
    fn from(e: convert::ConvertError) -> Self {
        Rejection {
            field: Some(e.field),
            message: e.message,
        }
    }
}

impl From<ResourceError> for Rejection {
    /// The first problem's field, and every problem's message (as the file datastore reports
    /// them).
    fn from(e: ResourceError) -> Self {
        let (field, message) = e.field_and_message();
        Rejection { field, message }
    }
}

/// Calico's stores' objects, by kind.
pub(super) type CalicoObjects = [(calico::Kind, Vec<Arc<DynamicObject>>)];

#[derive(Debug, Clone)]
struct Entry {
    resource_version: String,
    /// The version in force: this one if it was accepted, else the last accepted one.
    accepted: Option<Object>,
    /// Why this version was rejected.
    error: Option<ObjectError>,
}

/// The conversion cache; lives as long as the datastore.
#[derive(Debug, Default)]
pub(super) struct Converted {
    entries: BTreeMap<Key, Entry>,
}

impl Converted {
    pub(super) fn snapshot(
        &mut self,
        namespaces: &[Arc<core::Namespace>],
        pods: &[Arc<core::Pod>],
        policies: &[Arc<networking::NetworkPolicy>],
        calico: &CalicoObjects,
    ) -> Snapshot {
        let mut previous = std::mem::take(&mut self.entries);
        for ns in namespaces {
            self.update(&mut previous, Kind::Namespace, ns.as_ref(), |o| {
                convert::namespace(o)
                    .map(Object::Namespace)
                    .map_err(Rejection::from)
            });
        }
        for pod in pods {
            self.update(&mut previous, Kind::Pod, pod.as_ref(), |o| {
                convert::pod(o).map(Object::Pod).map_err(Rejection::from)
            });
        }
        for np in policies {
            self.update(&mut previous, Kind::NetworkPolicy, np.as_ref(), |o| {
                convert::network_policy(o)
                    .map(Object::NetworkPolicy)
                    .map_err(Rejection::from)
            });
        }
        for (kind, objects) in calico {
            for object in objects {
                self.update(&mut previous, Kind::Calico(*kind), object.as_ref(), |o| {
                    let document = to_v3(*kind, o).map_err(|e| Rejection {
                        field: None,
                        message: format!("converting to {}: {e}", calico::API_VERSION),
                    })?;
                    Ok(Object::Calico(calico::parse_value(document)?))
                });
            }
        }

        let mut cluster = Cluster::default();
        let mut errors = Vec::new();
        for entry in self.entries.values() {
            match &entry.accepted {
                Some(Object::Namespace(ns)) => {
                    cluster.namespaces.insert(ns.name.clone(), ns.clone());
                }
                Some(Object::Pod(p)) => {
                    cluster
                        .pods
                        .insert((p.namespace.clone(), p.name.clone()), p.clone());
                }
                Some(Object::NetworkPolicy(np)) => {
                    cluster
                        .policies
                        .insert((np.namespace.clone(), np.name.clone()), np.clone());
                }
                Some(Object::Calico(resource)) => cluster.calico.insert(resource.clone()),
                None => {}
            }
            errors.extend(entry.error.clone());
        }
        for error in &errors {
            warn!(%error, "rejected");
        }
        let digest = digest_versions(self.entries.iter().map(|((kind, ns, name), entry)| {
            (
                kind.name(),
                ns.as_str(),
                name.as_str(),
                entry.resource_version.as_str(),
            )
        }));
        Snapshot {
            cluster,
            errors,
            digest,
        }
    }

    fn update<K: kube::Resource>(
        &mut self,
        previous: &mut BTreeMap<Key, Entry>,
        kind: Kind,
        object: &K,
        convert: impl FnOnce(&K) -> Result<Object, Rejection>,
    ) {
        let namespace = if kind.is_namespaced() {
            convert::object_namespace(object.meta())
        } else {
            String::new()
        };
        let key = (kind, namespace, object.name_any());
        let resource_version = object.resource_version().unwrap_or_default();
        let old = previous.remove(&key);
        // Without a resource version (never from a real API server) nothing can be reused.
        if let Some(old) = &old
            && !resource_version.is_empty()
            && old.resource_version == resource_version
        {
            self.entries.insert(key, old.clone());
            return;
        }
        let entry = match convert(object) {
            Ok(accepted) => Entry {
                resource_version,
                accepted: Some(accepted),
                error: None,
            },
            Err(e) => {
                let kept = old.and_then(|o| o.accepted);
                let suffix = if kept.is_some() {
                    "; the previously accepted version stays in force"
                } else {
                    ""
                };
                let error = ObjectError {
                    source: SOURCE.to_owned(),
                    object: Some(describe(&key)),
                    field: e.field,
                    message: format!("{}{suffix}", e.message),
                };
                Entry {
                    resource_version,
                    accepted: kept,
                    error: Some(error),
                }
            }
        };
        self.entries.insert(key, entry);
    }
}

fn describe((kind, namespace, name): &Key) -> String {
    if namespace.is_empty() {
        format!("{} {name}", kind.name())
    } else {
        format!("{} {namespace}/{name}", kind.name())
    }
}

/// The digest of a Kubernetes snapshot: SHA-256 over every object's kind, namespace, name and
/// resource version (each followed by a NUL), sorted. Whoever changed objects on the API
/// server (a test, an operator with the resource versions it got back) can compute it and
/// compare it with the agent's status to know that exactly those versions are programmed.
pub fn digest_versions<'a>(
    objects: impl IntoIterator<Item = (&'a str, &'a str, &'a str, &'a str)>,
) -> String {
    let mut objects: Vec<_> = objects.into_iter().collect();
    objects.sort_unstable();
    let mut hasher = Sha256::new();
    for (kind, namespace, name, version) in objects {
        for part in [kind, namespace, name, version] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn policy(name: &str, version: &str, protocol: &str) -> Arc<networking::NetworkPolicy> {
        Arc::new(networking::NetworkPolicy {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some("default".to_owned()),
                resource_version: Some(version.to_owned()),
                ..Default::default()
            },
            spec: Some(networking::NetworkPolicySpec {
                ingress: Some(vec![networking::NetworkPolicyIngressRule {
                    ports: Some(vec![networking::NetworkPolicyPort {
                        protocol: Some(protocol.to_owned()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        })
    }

    #[test]
    fn a_rejected_update_keeps_the_accepted_version_and_names_object_and_field() {
        let mut converted = Converted::default();
        let first = converted.snapshot(&[], &[], &[policy("web", "1", "TCP")], &[]);
        assert!(first.errors.is_empty());
        let accepted = first.cluster.policies.clone();
        assert_eq!(accepted.len(), 1);

        let second = converted.snapshot(
            &[],
            &[],
            &[policy("web", "2", "ICMP"), policy("new", "3", "ICMP")],
            &[],
        );
        assert_eq!(
            second.cluster.policies, accepted,
            "old version kept, new one absent"
        );
        let rejected: Vec<_> = second
            .errors
            .iter()
            .map(|e| (e.source.as_str(), e.object.as_deref(), e.field.as_deref()))
            .collect();
        let field = Some("spec.ingress[0].ports[0].protocol");
        assert_eq!(
            rejected,
            [
                ("kubernetes", Some("NetworkPolicy default/new"), field),
                ("kubernetes", Some("NetworkPolicy default/web"), field),
            ]
        );
        assert!(!second.errors[0].message.contains("previously accepted"));
        assert!(
            second.errors[1]
                .message
                .ends_with("the previously accepted version stays in force")
        );
        assert_ne!(first.digest, second.digest);

        // Deleted: forgotten, with its error.
        let third = converted.snapshot(&[], &[], &[], &[]);
        assert!(third.cluster.policies.is_empty());
        assert!(third.errors.is_empty());
    }

    #[test]
    fn the_digest_depends_on_versions_not_order() {
        let a = digest_versions([("Pod", "default", "a", "1"), ("Pod", "default", "b", "2")]);
        let b = digest_versions([("Pod", "default", "b", "2"), ("Pod", "default", "a", "1")]);
        let c = digest_versions([("Pod", "default", "b", "3"), ("Pod", "default", "a", "1")]);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
