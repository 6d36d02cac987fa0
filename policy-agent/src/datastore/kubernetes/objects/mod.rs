//! From the stores' objects to a [`Snapshot`], converting only what changed.
//!
//! Objects are converted with `model::convert`, as the file datastore does, and cached by
//! resource version: an unchanged object is not converted again, and an object whose new
//! version is rejected keeps its last accepted version in force (as a failed update leaves the
//! file datastore's old object in place). A deleted object is forgotten. Calico's custom
//! resources go through [`calico::parse_value`] as the v3 documents they stand for, as the
//! file datastore's v3 documents do, and Calico's staged policies through
//! [`staged::parse_value`] likewise (into [`Cluster::staged`]); network-policy-api's through [`cluster_policy::parse_value`]
//! (and [`Cluster::insert_cluster_policy`], which adds the Calico translation the compiler
//! reads), as the file datastore's do.

use std::{collections::BTreeMap, sync::Arc};

use k8s_openapi::api::{
    core::v1 as core, discovery::v1 as discovery, networking::v1 as networking,
};
use kube::{ResourceExt as _, api::DynamicObject};
use sha2::{Digest as _, Sha256};
use tracing::warn;

use super::{SOURCE, calico::to_v3, cluster_policy::to_document};
use crate::{
    calico::resources::{self as calico, CalicoResource, ResourceError},
    cluster_policy::{self, ApiKind, ClusterPolicy, ClusterPolicyError},
    datastore::Snapshot,
    model::{
        self, Cluster, convert,
        staged::{self, StagedKind, StagedPolicy},
    },
    status::ObjectError,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Namespace,
    Pod,
    NetworkPolicy,
    Service,
    EndpointSlice,
    Calico(calico::Kind),
    /// Calico's staged policies (`crd.projectcalico.org/v1`).
    Staged(StagedKind),
    /// network-policy-api's kinds, named as written: no other kind shares their names.
    ClusterPolicy(ApiKind),
}

impl Kind {
    /// As objects are named in errors and in the digest. Calico's kinds carry their API
    /// version: its NetworkPolicy is not the Kubernetes one of the same namespace and name.
    fn name(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::Pod => "Pod",
            Kind::NetworkPolicy => "NetworkPolicy",
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Calico(kind) => calico_kind_name(kind),
            Kind::Staged(kind) => staged_kind_name(kind),
            Kind::ClusterPolicy(kind) => kind.as_str(),
        }
    }

    fn is_namespaced(self) -> bool {
        match self {
            Kind::Namespace | Kind::ClusterPolicy(_) => false,
            Kind::Pod | Kind::NetworkPolicy | Kind::Service | Kind::EndpointSlice => true,
            Kind::Calico(kind) => kind.is_namespaced(),
            Kind::Staged(kind) => kind.is_namespaced(),
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

/// How a Calico staged policy custom resource's kind is named in errors and in the snapshot
/// digest: as Calico's other kinds are, with their API version.
fn staged_kind_name(kind: StagedKind) -> &'static str {
    match kind {
        StagedKind::GlobalNetworkPolicy => "StagedGlobalNetworkPolicy (crd.projectcalico.org/v1)",
        StagedKind::NetworkPolicy => "StagedNetworkPolicy (crd.projectcalico.org/v1)",
        StagedKind::KubernetesNetworkPolicy => {
            "StagedKubernetesNetworkPolicy (crd.projectcalico.org/v1)"
        }
    }
}

/// (kind, namespace, name); the namespace is empty for Namespaces.
type Key = (Kind, String, String);

#[derive(Debug, Clone)]
enum Object {
    // Shared with every snapshot that holds them unchanged (see `model::Cluster`).
    Namespace(Arc<model::Namespace>),
    Pod(Arc<model::Pod>),
    NetworkPolicy(Arc<model::NetworkPolicy>),
    Service(model::Service),
    EndpointSlice(model::EndpointSlice),
    Calico(CalicoResource),
    Staged(StagedPolicy),
    ClusterPolicy(ClusterPolicy),
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

impl From<ClusterPolicyError> for Rejection {
    /// An empty field (the whole object) is no field.
    fn from(e: ClusterPolicyError) -> Self {
        Rejection {
            field: Some(e.field).filter(|f| !f.is_empty()),
            message: e.message,
        }
    }
}

/// Calico's stores' objects, by kind.
pub(super) type CalicoObjects = [(calico::Kind, Vec<Arc<DynamicObject>>)];

/// Calico's staged policies' stores' objects, by kind.
pub(super) type StagedObjects = [(StagedKind, Vec<Arc<DynamicObject>>)];

/// network-policy-api's stores' objects, by kind.
pub(super) type ClusterPolicyObjects = [(ApiKind, Vec<Arc<DynamicObject>>)];

#[derive(Debug, Clone)]
struct Entry {
    resource_version: String,
    /// The version in force: this one if it was accepted, else the last accepted one.
    accepted: Option<Object>,
    /// Why this version was rejected.
    error: Option<ObjectError>,
}

/// The stores' objects, by kind.
pub(super) struct Stores<'a> {
    pub namespaces: &'a [Arc<core::Namespace>],
    pub pods: &'a [Arc<core::Pod>],
    pub policies: &'a [Arc<networking::NetworkPolicy>],
    pub services: &'a [Arc<core::Service>],
    pub endpoint_slices: &'a [Arc<discovery::EndpointSlice>],
    pub calico: &'a CalicoObjects,
    pub staged: &'a StagedObjects,
    pub cluster_policies: &'a ClusterPolicyObjects,
}

/// The conversion cache; lives as long as the datastore.
#[derive(Debug, Default)]
pub(super) struct Converted {
    entries: BTreeMap<Key, Entry>,
}

impl Converted {
    pub(super) fn snapshot(&mut self, stores: &Stores<'_>) -> Snapshot {
        let mut previous = std::mem::take(&mut self.entries);
        for ns in stores.namespaces {
            self.update(&mut previous, Kind::Namespace, ns.as_ref(), |o| {
                convert::namespace(o)
                    .map(|ns| Object::Namespace(Arc::new(ns)))
                    .map_err(Rejection::from)
            });
        }
        for pod in stores.pods {
            self.update(&mut previous, Kind::Pod, pod.as_ref(), |o| {
                convert::pod(o)
                    .map(|pod| Object::Pod(Arc::new(pod)))
                    .map_err(Rejection::from)
            });
        }
        for np in stores.policies {
            self.update(&mut previous, Kind::NetworkPolicy, np.as_ref(), |o| {
                convert::network_policy(o)
                    .map(|np| Object::NetworkPolicy(Arc::new(np)))
                    .map_err(Rejection::from)
            });
        }
        for svc in stores.services {
            self.update(&mut previous, Kind::Service, svc.as_ref(), |o| {
                convert::service(o)
                    .map(Object::Service)
                    .map_err(Rejection::from)
            });
        }
        for slice in stores.endpoint_slices {
            self.update(&mut previous, Kind::EndpointSlice, slice.as_ref(), |o| {
                convert::endpoint_slice(o)
                    .map(Object::EndpointSlice)
                    .map_err(Rejection::from)
            });
        }
        for (kind, objects) in stores.calico {
            for object in objects {
                self.update(&mut previous, Kind::Calico(*kind), object.as_ref(), |o| {
                    let document = to_v3(kind.as_str(), o).map_err(|e| Rejection {
                        field: None,
                        message: format!("converting to {}: {e}", calico::API_VERSION),
                    })?;
                    Ok(Object::Calico(calico::parse_value(document)?))
                });
            }
        }
        for (kind, objects) in stores.staged {
            for object in objects {
                self.update(&mut previous, Kind::Staged(*kind), object.as_ref(), |o| {
                    let document = to_v3(kind.as_str(), o).map_err(|e| Rejection {
                        field: None,
                        message: format!("converting to {}: {e}", calico::API_VERSION),
                    })?;
                    staged::parse_value(*kind, document)
                        .map(Object::Staged)
                        .map_err(|(field, message)| Rejection { field, message })
                });
            }
        }
        for (kind, objects) in stores.cluster_policies {
            for object in objects {
                self.update(
                    &mut previous,
                    Kind::ClusterPolicy(*kind),
                    object.as_ref(),
                    |o| {
                        let document = to_document(*kind, o);
                        Ok(Object::ClusterPolicy(cluster_policy::parse_value(
                            *kind, &document,
                        )?))
                    },
                );
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
                Some(Object::Service(s)) => {
                    cluster
                        .services
                        .insert((s.namespace.clone(), s.name.clone()), s.clone());
                }
                Some(Object::EndpointSlice(s)) => {
                    cluster
                        .endpoint_slices
                        .insert((s.namespace.clone(), s.name.clone()), s.clone());
                }
                Some(Object::Calico(resource)) => cluster.calico.insert(resource.clone()),
                Some(Object::Staged(policy)) => {
                    let key = (policy.kind, policy.namespace.clone(), policy.name.clone());
                    cluster.staged.insert(key, policy.clone());
                }
                Some(Object::ClusterPolicy(policy)) => {
                    cluster.insert_cluster_policy(policy.clone());
                }
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
mod tests;
