//! Administrators' policy (network-policy-api): ClusterNetworkPolicies in both tiers,
//! AdminNetworkPolicies and the BaselineAdminNetworkPolicy.

use proptest::{prelude::*, sample::select};
use serde_json::{Value, json};

use policy_agent::cluster_policy::{self, ApiKind, ClusterPolicy};

/// Namespace selectors over the generated namespaces' labels (`team`, the name label).
pub(super) fn k8s_namespace_selector() -> impl Strategy<Value = Value> {
    select(vec![
        json!({}),
        json!({}),
        json!({ "matchLabels": { "team": "a" } }),
        json!({ "matchExpressions": [{ "key": "team", "operator": "DoesNotExist" }] }),
        json!({ "matchExpressions": [{ "key": "team", "operator": "In", "values": ["a", "b"] }] }),
        json!({ "matchLabels": { "kubernetes.io/metadata.name": "y" } }),
        json!({ "matchExpressions": [{ "key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["x"] }] }),
    ])
}

/// Pod selectors over the generated pods' labels (`app`, `tier`).
pub(super) fn k8s_pod_selector() -> impl Strategy<Value = Value> {
    select(vec![
        json!({}),
        json!({ "matchLabels": { "app": "a" } }),
        json!({ "matchLabels": { "app": "b", "tier": "1" } }),
        json!({ "matchExpressions": [{ "key": "tier", "operator": "NotIn", "values": ["1"] }] }),
        json!({ "matchExpressions": [{ "key": "app", "operator": "Exists" }] }),
    ])
}

/// A `subject`, or a `namespaces`/`pods` peer (the same shape); `v1alpha1` requires a pod's
/// `namespaceSelector`.
pub(super) fn pod_group(v1alpha1: bool) -> impl Strategy<Value = Value> {
    (
        any::<bool>(),
        prop::option::weighted(0.7, k8s_namespace_selector()),
        k8s_namespace_selector(),
        k8s_pod_selector(),
    )
        .prop_map(move |(by_namespace, pod_namespaces, namespaces, pods)| {
            // v1alpha1 has no default for it: all namespaces is `{}` there.
            let pod_namespaces = pod_namespaces.or_else(|| v1alpha1.then(|| json!({})));
            if by_namespace {
                return json!({ "namespaces": namespaces });
            }
            let mut selector = json!({ "podSelector": pods });
            if let Some(namespaces) = pod_namespaces {
                selector["namespaceSelector"] = namespaces;
            }
            json!({ "pods": selector })
        })
}

/// A `networks` peer: pods' addresses, parts of them, the outside and everything.
pub(super) fn networks_peer() -> impl Strategy<Value = Value> {
    prop::collection::btree_set(
        select(vec![
            "10.0.0.0/24",
            "10.0.0.8/29",
            "10.0.0.12/32",
            "0.0.0.0/0",
            "192.0.2.0/24",
            "fd00::/64",
            "fd00::10/126",
            "::/0",
            "2001:db8::/32",
        ]),
        1..3,
    )
    .prop_map(|nets| json!({ "networks": nets }))
}

/// A port of a rule, in its version's shape: numbers and ranges at the flows' ports on each
/// protocol, and the pods' port names.
pub(super) fn cluster_port(v1alpha1: bool) -> impl Strategy<Value = Value> {
    if v1alpha1 {
        select(vec![
            json!({ "portNumber": { "port": 80 } }),
            json!({ "portNumber": { "protocol": "UDP", "port": 53 } }),
            json!({ "portNumber": { "protocol": "SCTP", "port": 9000 } }),
            json!({ "portRange": { "start": 80, "end": 443 } }),
            json!({ "portRange": { "protocol": "UDP", "start": 50, "end": 8080 } }),
            json!({ "namedPort": "http" }),
            json!({ "namedPort": "dns" }),
        ])
    } else {
        select(vec![
            json!({ "tcp": { "destinationPort": { "number": 80 } } }),
            json!({ "tcp": { "destinationPort": { "range": { "start": 81, "end": 8080 } } } }),
            json!({ "udp": { "destinationPort": { "number": 53 } } }),
            json!({ "udp": { "destinationPort": { "range": { "start": 443, "end": 9000 } } } }),
            json!({ "sctp": { "destinationPort": { "range": { "start": 53, "end": 9000 } } } }),
            json!({ "destinationNamedPort": "http" }),
            json!({ "destinationNamedPort": "dns" }),
            json!({ "destinationNamedPort": "web" }),
        ])
    }
}

/// One rule: `actions` are the kind's, peers of `namespaces`/`pods` (and `networks` in
/// egress), and ports in two rules out of three. A named port with a `networks` peer is
/// refused by the CRDs: such a rule keeps its numbers, or loses its networks.
pub(super) fn cluster_rule(
    egress: bool,
    actions: Vec<&'static str>,
    v1alpha1: bool,
) -> impl Strategy<Value = Value> {
    // Every pod, often: selective peers alone would seldom meet a flow's random pair.
    let every_pod = Just(json!({ "namespaces": {} }));
    let peer = if egress {
        // Networks often: flows to addresses outside the pods are many, and only they decide
        // those.
        prop_oneof![1 => every_pod, 2 => pod_group(v1alpha1), 2 => networks_peer()].boxed()
    } else {
        prop_oneof![1 => every_pod, 2 => pod_group(v1alpha1)].boxed()
    };
    (
        select(actions),
        prop::collection::vec(peer, 1..3),
        prop::option::weighted(0.65, prop::collection::vec(cluster_port(v1alpha1), 1..3)),
        prop::option::weighted(0.2, select(vec!["guard", "to-owners"])),
    )
        .prop_map(move |(action, peers, ports, name)| {
            let named =
                |p: &Value| p.get("namedPort").is_some() || p.get("destinationNamedPort").is_some();
            let mut peers = peers;
            let mut ports = ports;
            let networks = peers.iter().any(|p| p.get("networks").is_some());
            if networks && ports.as_ref().is_some_and(|ports| ports.iter().any(named)) {
                let others: Vec<Value> = peers
                    .iter()
                    .filter(|p| p.get("networks").is_none())
                    .cloned()
                    .collect();
                if others.is_empty() {
                    ports = ports
                        .map(|ports| ports.into_iter().filter(|p| !named(p)).collect::<Vec<_>>())
                        .filter(|ports| !ports.is_empty());
                } else {
                    peers = others;
                }
            }
            let mut rule = json!({ "action": action });
            rule[if egress { "to" } else { "from" }] = json!(peers);
            if let Some(ports) = ports {
                rule[if v1alpha1 { "ports" } else { "protocols" }] = json!(ports);
            }
            if let Some(name) = name {
                rule["name"] = json!(name);
            }
            rule
        })
}

/// The rules of one direction: none (a direction the policy leaves alone) in a quarter of
/// them. Few, as the compile of their translation is most of a case's cost.
pub(super) fn cluster_rules(
    egress: bool,
    actions: Vec<&'static str>,
    v1alpha1: bool,
) -> impl Strategy<Value = Vec<Value>> {
    select(vec![0usize, 1, 1, 2]).prop_flat_map(move |n| {
        prop::collection::vec(cluster_rule(egress, actions.clone(), v1alpha1), n)
    })
}

/// A ClusterNetworkPolicy (in either tier), an AdminNetworkPolicy or the
/// BaselineAdminNetworkPolicy (`default`, the only name it may have), as YAML would hold it.
pub(super) fn cluster_policy_document(index: usize) -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => Just(ApiKind::ClusterNetworkPolicy),
        2 => Just(ApiKind::AdminNetworkPolicy),
        1 => Just(ApiKind::BaselineAdminNetworkPolicy),
    ]
    .prop_flat_map(move |kind| {
        let v1alpha1 = kind != ApiKind::ClusterNetworkPolicy;
        let actions = match kind {
            // Mostly Deny: an Admin Accept overrides every NetworkPolicy and Calico tier
            // after it, and the tests want both verdicts well represented.
            ApiKind::ClusterNetworkPolicy => {
                vec!["Accept", "Deny", "Deny", "Deny", "Deny", "Pass"]
            }
            ApiKind::AdminNetworkPolicy => vec!["Allow", "Deny", "Deny", "Deny", "Pass"],
            ApiKind::BaselineAdminNetworkPolicy => vec!["Allow", "Deny", "Deny"],
        };
        (
            Just(kind),
            any::<bool>(),
            // Few values, so that equal priorities (and the names' tie-break) are common.
            select(vec![0u32, 5, 5, 10, 1000]),
            // Two names per kind: a later policy may replace an earlier one.
            select(vec!["p", "q"]),
            pod_group(v1alpha1),
            cluster_rules(false, actions.clone(), v1alpha1),
            cluster_rules(true, actions, v1alpha1),
        )
    })
    .prop_map(
        move |(kind, baseline, priority, name, subject, ingress, egress)| {
            let name = match kind {
                ApiKind::BaselineAdminNetworkPolicy => "default".to_owned(),
                _ => format!("{name}{}", index % 2),
            };
            let mut spec = json!({ "subject": subject, "ingress": ingress, "egress": egress });
            match kind {
                ApiKind::ClusterNetworkPolicy => {
                    spec["tier"] = json!(if baseline { "Baseline" } else { "Admin" });
                    spec["priority"] = json!(priority);
                }
                ApiKind::AdminNetworkPolicy => spec["priority"] = json!(priority),
                ApiKind::BaselineAdminNetworkPolicy => {}
            }
            json!({
                "apiVersion": kind.api_version(),
                "kind": kind.as_str(),
                "metadata": { "name": name },
                "spec": spec,
            })
        },
    )
}

/// The document as the agent validates it (every generated one is valid).
pub(super) fn cluster_policy_of(document: &Value) -> ClusterPolicy {
    let field = |name: &str| document[name].as_str().unwrap_or_default();
    let kind = ApiKind::from_api(field("apiVersion"), field("kind")).expect("a generated kind");
    cluster_policy::parse_value(kind, document.clone()).unwrap_or_else(|e| {
        panic!(
            "generated an invalid {kind}: {e}\n{}",
            serde_yaml::to_string(document).unwrap_or_default()
        )
    })
}

/// A generated administrators' policy and its YAML.
pub fn cluster_policy() -> impl Strategy<Value = (ClusterPolicy, String)> {
    (0usize..4)
        .prop_flat_map(cluster_policy_document)
        .prop_map(|document| {
            (
                cluster_policy_of(&document),
                serde_yaml::to_string(&document).unwrap_or_default(),
            )
        })
}
