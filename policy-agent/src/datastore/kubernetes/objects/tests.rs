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
    let deny =
        |selector: &str| serde_json::json!({"selector": selector, "ingress": [{"action": "Deny"}]});
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
