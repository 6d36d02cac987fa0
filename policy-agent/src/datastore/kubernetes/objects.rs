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
    Namespace(model::Namespace),
    Pod(model::Pod),
    NetworkPolicy(model::NetworkPolicy),
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
                    .map(Object::Namespace)
                    .map_err(Rejection::from)
            });
        }
        for pod in stores.pods {
            self.update(&mut previous, Kind::Pod, pod.as_ref(), |o| {
                convert::pod(o).map(Object::Pod).map_err(Rejection::from)
            });
        }
        for np in stores.policies {
            self.update(&mut previous, Kind::NetworkPolicy, np.as_ref(), |o| {
                convert::network_policy(o)
                    .map(Object::NetworkPolicy)
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
mod tests {
    use k8s_openapi::apimachinery::pkg::{apis::meta::v1::ObjectMeta, util::intstr::IntOrString};

    use serde_json::Value;

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

    fn snapshot(
        converted: &mut Converted,
        policies: &[Arc<networking::NetworkPolicy>],
        services: &[Arc<core::Service>],
        endpoint_slices: &[Arc<discovery::EndpointSlice>],
    ) -> Snapshot {
        converted.snapshot(&Stores {
            namespaces: &[],
            pods: &[],
            policies,
            services,
            endpoint_slices,
            calico: &[],
            staged: &[],
            cluster_policies: &[],
        })
    }

    fn service(version: &str, target_port: i32) -> Arc<core::Service> {
        Arc::new(core::Service {
            metadata: ObjectMeta {
                name: Some("web".to_owned()),
                namespace: Some("default".to_owned()),
                resource_version: Some(version.to_owned()),
                ..Default::default()
            },
            spec: Some(core::ServiceSpec {
                cluster_ip: Some("10.96.0.10".to_owned()),
                ports: Some(vec![core::ServicePort {
                    port: 80,
                    target_port: Some(IntOrString::Int(target_port)),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        })
    }

    fn endpoint_slice(version: &str, address: &str) -> Arc<discovery::EndpointSlice> {
        Arc::new(discovery::EndpointSlice {
            metadata: ObjectMeta {
                name: Some("web-1".to_owned()),
                namespace: Some("default".to_owned()),
                resource_version: Some(version.to_owned()),
                labels: Some([("kubernetes.io/service-name".to_owned(), "web".to_owned())].into()),
                ..Default::default()
            },
            address_type: "IPv4".to_owned(),
            endpoints: vec![discovery::Endpoint {
                addresses: vec![address.to_owned()],
                ..Default::default()
            }],
            ports: Some(vec![discovery::EndpointPort {
                port: Some(8080),
                ..Default::default()
            }]),
        })
    }

    #[test]
    fn services_and_endpoint_slices_are_converted_and_a_rejected_update_keeps_the_last() {
        let mut converted = Converted::default();
        let first = snapshot(
            &mut converted,
            &[],
            &[service("1", 8080)],
            &[endpoint_slice("2", "10.42.0.11")],
        );
        assert!(first.errors.is_empty(), "{:?}", first.errors);
        let key = ("default".to_owned(), "web".to_owned());
        assert_eq!(
            first.cluster.services[&key].ports[0].target_port,
            model::TargetPort::Number(8080)
        );
        let slice = &first.cluster.endpoint_slices[&("default".to_owned(), "web-1".to_owned())];
        assert_eq!(slice.service.as_deref(), Some("web"));
        assert_eq!(
            slice.endpoints[0].addresses,
            ["10.42.0.11".parse::<std::net::IpAddr>().expect("ip")]
        );

        let second = snapshot(
            &mut converted,
            &[],
            &[service("3", 70000)],
            &[endpoint_slice("4", "fd00::11")],
        );
        assert_eq!(second.cluster.services, first.cluster.services);
        assert_eq!(
            second.cluster.endpoint_slices,
            first.cluster.endpoint_slices
        );
        let rejected: Vec<_> = second
            .errors
            .iter()
            .map(|e| (e.object.as_deref(), e.field.as_deref()))
            .collect();
        assert_eq!(
            rejected,
            [
                (
                    Some("Service default/web"),
                    Some("spec.ports[0].targetPort")
                ),
                (
                    Some("EndpointSlice default/web-1"),
                    Some("endpoints[0].addresses[0]")
                ),
            ]
        );
        assert_ne!(first.digest, second.digest);

        let third = snapshot(&mut converted, &[], &[], &[]);
        assert!(third.cluster.services.is_empty() && third.cluster.endpoint_slices.is_empty());
        assert!(third.errors.is_empty());
    }

    #[test]
    fn a_rejected_update_keeps_the_accepted_version_and_names_object_and_field() {
        let mut converted = Converted::default();
        let first = snapshot(&mut converted, &[policy("web", "1", "TCP")], &[], &[]);
        assert!(first.errors.is_empty());
        let accepted = first.cluster.policies.clone();
        assert_eq!(accepted.len(), 1);

        let second = snapshot(
            &mut converted,
            &[policy("web", "2", "ICMP"), policy("new", "3", "ICMP")],
            &[],
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
        let third = snapshot(&mut converted, &[], &[], &[]);
        assert!(third.cluster.policies.is_empty());
        assert!(third.errors.is_empty());
    }

    fn cluster_policy(kind: ApiKind, name: &str, version: &str, spec: Value) -> Arc<DynamicObject> {
        let object = serde_json::json!({
            "apiVersion": kind.api_version(),
            "kind": kind.as_str(),
            "metadata": {"name": name, "resourceVersion": version},
            "spec": spec,
        });
        Arc::new(serde_json::from_value(object).unwrap_or_else(|e| panic!("object: {e}")))
    }

    fn guard(priority: Value) -> Value {
        serde_json::json!({
            "tier": "Admin",
            "priority": priority,
            "subject": {"namespaces": {"matchLabels": {"team": "db"}}},
            "ingress": [{"action": "Deny", "from": [{"namespaces": {}}]}],
        })
    }

    #[test]
    fn cluster_policies_are_translated_and_a_rejected_update_keeps_the_last() {
        let mut converted = Converted::default();
        let mut snapshot = |objects: Vec<(ApiKind, Vec<Arc<DynamicObject>>)>| {
            converted.snapshot(&Stores {
                namespaces: &[],
                pods: &[],
                policies: &[],
                services: &[],
                endpoint_slices: &[],
                calico: &[],
                staged: &[],
                cluster_policies: &objects,
            })
        };
        let baseline = serde_json::json!({
            "subject": {"namespaces": {}},
            "egress": [{"action": "Deny", "to": [{"networks": ["192.0.2.0/24"]}]}],
        });
        let first = snapshot(vec![
            (
                ApiKind::ClusterNetworkPolicy,
                vec![cluster_policy(
                    ApiKind::ClusterNetworkPolicy,
                    "guard",
                    "1",
                    guard(serde_json::json!(10)),
                )],
            ),
            (
                ApiKind::BaselineAdminNetworkPolicy,
                vec![cluster_policy(
                    ApiKind::BaselineAdminNetworkPolicy,
                    "default",
                    "2",
                    baseline,
                )],
            ),
        ]);
        assert!(first.errors.is_empty(), "{:?}", first.errors);
        let keys: Vec<_> = first.cluster.cluster_policies.keys().cloned().collect();
        assert_eq!(
            keys,
            [
                (ApiKind::ClusterNetworkPolicy, "guard".to_owned()),
                (ApiKind::BaselineAdminNetworkPolicy, "default".to_owned()),
            ]
        );
        // Each with the Calico translation the compiler reads.
        assert_eq!(first.cluster.calico.policies.len(), 2);

        // Priority out of range: reported with its field; the accepted version stays.
        let second = snapshot(vec![(
            ApiKind::ClusterNetworkPolicy,
            vec![cluster_policy(
                ApiKind::ClusterNetworkPolicy,
                "guard",
                "3",
                guard(serde_json::json!(1001)),
            )],
        )]);
        let rejected: Vec<_> = second
            .errors
            .iter()
            .map(|e| (e.source.as_str(), e.object.as_deref(), e.field.as_deref()))
            .collect();
        assert_eq!(
            rejected,
            [(
                "kubernetes",
                Some("ClusterNetworkPolicy guard"),
                Some("spec.priority")
            )]
        );
        assert!(
            second.errors[0]
                .message
                .ends_with("the previously accepted version stays in force")
        );
        let keys: Vec<_> = second.cluster.cluster_policies.keys().cloned().collect();
        assert_eq!(keys, [(ApiKind::ClusterNetworkPolicy, "guard".to_owned())]);
        assert_eq!(
            second.cluster.cluster_policies[&(ApiKind::ClusterNetworkPolicy, "guard".to_owned())]
                .priority,
            10
        );
        assert_eq!(
            second.digest,
            digest_versions([("ClusterNetworkPolicy", "", "guard", "3")])
        );
    }

    fn staged(
        kind: StagedKind,
        namespace: Option<&str>,
        name: &str,
        version: &str,
        spec: Value,
    ) -> Arc<DynamicObject> {
        let mut metadata = serde_json::json!({"name": name, "resourceVersion": version});
        if let Some(namespace) = namespace {
            metadata["namespace"] = serde_json::json!(namespace);
        }
        let object = serde_json::json!({
            "apiVersion": "crd.projectcalico.org/v1",
            "kind": kind.as_str(),
            "metadata": metadata,
            "spec": spec,
        });
        Arc::new(serde_json::from_value(object).unwrap_or_else(|e| panic!("object: {e}")))
    }

    #[test]
    fn staged_policies_are_read_and_a_rejected_update_keeps_the_last() {
        use crate::model::staged::StagedChange;

        let mut converted = Converted::default();
        let mut snapshot = |objects: Vec<(StagedKind, Vec<Arc<DynamicObject>>)>| {
            converted.snapshot(&Stores {
                namespaces: &[],
                pods: &[],
                policies: &[],
                services: &[],
                endpoint_slices: &[],
                calico: &[],
                staged: &objects,
                cluster_policies: &[],
            })
        };
        let deny = |selector: &str| serde_json::json!({"selector": selector, "ingress": [{"action": "Deny"}]});
        let first = snapshot(vec![
            (
                StagedKind::GlobalNetworkPolicy,
                vec![staged(
                    StagedKind::GlobalNetworkPolicy,
                    None,
                    "deny-db",
                    "1",
                    deny("app == 'db'"),
                )],
            ),
            (
                StagedKind::KubernetesNetworkPolicy,
                vec![staged(
                    StagedKind::KubernetesNetworkPolicy,
                    Some("shop"),
                    "web",
                    "2",
                    serde_json::json!({"stagedAction": "Delete"}),
                )],
            ),
        ]);
        assert!(first.errors.is_empty(), "{:?}", first.errors);
        let keys: Vec<_> = first.cluster.staged.keys().cloned().collect();
        assert_eq!(
            keys,
            [
                (
                    StagedKind::GlobalNetworkPolicy,
                    String::new(),
                    "deny-db".to_owned()
                ),
                (
                    StagedKind::KubernetesNetworkPolicy,
                    "shop".to_owned(),
                    "web".to_owned()
                ),
            ]
        );
        let delete = &first.cluster.staged[&keys[1]];
        assert_eq!(delete.change, StagedChange::Delete);
        // Staged policies are not enforced ones.
        assert!(first.cluster.calico.policies.is_empty() && first.cluster.policies.is_empty());
        assert_eq!(
            first.digest,
            digest_versions([
                (
                    "StagedGlobalNetworkPolicy (crd.projectcalico.org/v1)",
                    "",
                    "deny-db",
                    "1"
                ),
                (
                    "StagedKubernetesNetworkPolicy (crd.projectcalico.org/v1)",
                    "shop",
                    "web",
                    "2"
                ),
            ])
        );

        // A selector that does not parse: reported with the object and field; the accepted
        // version stays.
        let second = snapshot(vec![(
            StagedKind::GlobalNetworkPolicy,
            vec![staged(
                StagedKind::GlobalNetworkPolicy,
                None,
                "deny-db",
                "3",
                deny("app =="),
            )],
        )]);
        let rejected: Vec<_> = second
            .errors
            .iter()
            .map(|e| (e.source.as_str(), e.object.as_deref(), e.field.as_deref()))
            .collect();
        assert_eq!(
            rejected,
            [(
                "kubernetes",
                Some("StagedGlobalNetworkPolicy (crd.projectcalico.org/v1) deny-db"),
                Some("spec.selector")
            )]
        );
        assert!(
            second.errors[0]
                .message
                .ends_with("the previously accepted version stays in force")
        );
        let keys: Vec<_> = second.cluster.staged.keys().cloned().collect();
        assert_eq!(
            keys,
            [(
                StagedKind::GlobalNetworkPolicy,
                String::new(),
                "deny-db".to_owned()
            )]
        );
        assert_eq!(
            second.cluster.staged[&keys[0]],
            first.cluster.staged[&keys[0]]
        );
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
