//! Random clusters, policies and flows for the property tests: every construct of the
//! NetworkPolicy API (selectors with every operator, namespace and pod peers, ipBlocks with
//! excepts in both families, numeric, ranged and named ports over TCP/UDP/SCTP, every
//! policyTypes form), over a small vocabulary so that selectors actually match things.
//!
//! Only valid objects are generated: validation has its own tests, and the point here is the
//! semantics of accepted policy.

use std::{collections::BTreeMap, net::IpAddr};

use k8s_openapi::{
    api::{
        core::v1::{Container, ContainerPort, Namespace, Pod, PodIP, PodSpec, PodStatus},
        networking::v1::{
            IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule,
            NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
        },
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, LabelSelectorRequirement, ObjectMeta},
        util::intstr::IntOrString,
    },
};
use policy_agent::model::{Cluster, convert};
use proptest::{prelude::*, sample::select};

use crate::reference::World;

/// A flow to check: indices into [`addresses`], protocol and port.
pub type FlowPick = (prop::sample::Index, prop::sample::Index, &'static str, u16);

pub fn flow_picks(max: usize) -> impl Strategy<Value = Vec<FlowPick>> {
    prop::collection::vec(
        (
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>(),
            select(PROTOCOLS.to_vec()),
            select(PORTS.to_vec()),
        ),
        1..max,
    )
}

pub const NAMESPACES: [&str; 3] = ["x", "y", "z"];
pub const NODE_V4: &str = "10.0.0.1";
pub const NODE_V6: &str = "fd00::1";
pub const EXTERNAL: [&str; 4] = ["192.0.2.7", "10.0.0.200", "2001:db8::7", "fd00::200"];
pub const PORTS: [u16; 6] = [53, 80, 81, 443, 8080, 9000];
pub const PROTOCOLS: [&str; 3] = ["TCP", "UDP", "SCTP"];

fn meta(name: String, namespace: Option<&str>, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: namespace.map(str::to_owned),
        labels: (!labels.is_empty()).then_some(labels),
        ..Default::default()
    }
}

pub fn labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    (
        prop::option::of(select(vec!["a", "b", "c"])),
        prop::option::of(select(vec!["1", "2"])),
    )
        .prop_map(|(app, tier)| {
            let mut labels = BTreeMap::new();
            if let Some(app) = app {
                labels.insert("app".to_owned(), app.to_owned());
            }
            if let Some(tier) = tier {
                labels.insert("tier".to_owned(), tier.to_owned());
            }
            labels
        })
}

pub fn selector() -> impl Strategy<Value = LabelSelector> {
    let expression = (
        select(vec!["app", "tier", "team"]),
        select(vec!["In", "NotIn", "Exists", "DoesNotExist"]),
        prop::collection::btree_set(select(vec!["a", "b", "1", "2"]), 1..3),
    )
        .prop_map(|(key, operator, values)| LabelSelectorRequirement {
            key: key.to_owned(),
            operator: operator.to_owned(),
            values: matches!(operator, "In" | "NotIn")
                .then(|| values.into_iter().map(str::to_owned).collect()),
        });
    (labels(), prop::collection::vec(expression, 0..2)).prop_map(|(match_labels, expressions)| {
        LabelSelector {
            match_labels: (!match_labels.is_empty()).then_some(match_labels),
            match_expressions: (!expressions.is_empty()).then_some(expressions),
        }
    })
}

pub fn ip_block() -> impl Strategy<Value = IPBlock> {
    select(vec![
        ("10.0.0.0/24", vec![]),
        ("10.0.0.0/24", vec!["10.0.0.8/29"]),
        ("10.0.0.0/28", vec!["10.0.0.12/32"]),
        ("0.0.0.0/0", vec!["10.0.0.0/24"]),
        ("10.0.0.11/32", vec![]),
        ("fd00::/64", vec!["fd00::10/126"]),
        ("::/0", vec![]),
        ("192.0.2.0/24", vec![]),
    ])
    .prop_map(|(cidr, except)| IPBlock {
        cidr: cidr.to_owned(),
        except: (!except.is_empty()).then(|| except.into_iter().map(str::to_owned).collect()),
    })
}

pub fn peer() -> impl Strategy<Value = NetworkPolicyPeer> {
    prop_oneof![
        selector().prop_map(|s| NetworkPolicyPeer {
            pod_selector: Some(s),
            ..Default::default()
        }),
        selector().prop_map(|s| NetworkPolicyPeer {
            namespace_selector: Some(s),
            ..Default::default()
        }),
        (selector(), selector()).prop_map(|(p, n)| NetworkPolicyPeer {
            pod_selector: Some(p),
            namespace_selector: Some(n),
            ..Default::default()
        }),
        ip_block().prop_map(|b| NetworkPolicyPeer {
            ip_block: Some(b),
            ..Default::default()
        }),
    ]
}

pub fn port() -> impl Strategy<Value = NetworkPolicyPort> {
    let protocol = prop::option::of(select(PROTOCOLS.to_vec()));
    let number = prop_oneof![
        Just((None, None)),
        select(PORTS.to_vec()).prop_map(|p| (Some(IntOrString::Int(i32::from(p))), None)),
        (select(PORTS.to_vec()), 0..2000i32).prop_map(|(p, extra)| (
            Some(IntOrString::Int(i32::from(p))),
            Some(i32::from(p) + extra)
        )),
        select(vec!["http", "dns", "web"])
            .prop_map(|n| (Some(IntOrString::String(n.to_owned())), None)),
    ];
    (protocol, number).prop_map(|(protocol, (port, end_port))| NetworkPolicyPort {
        protocol: protocol.map(str::to_owned),
        port,
        end_port,
    })
}

type RuleParts = (
    Option<Vec<NetworkPolicyPeer>>,
    Option<Vec<NetworkPolicyPort>>,
);

pub fn rule() -> impl Strategy<Value = RuleParts> {
    (
        prop::option::of(prop::collection::vec(peer(), 0..3)),
        prop::option::of(prop::collection::vec(port(), 0..3)),
    )
}

pub fn policy(index: usize) -> impl Strategy<Value = NetworkPolicy> {
    (
        select(NAMESPACES.to_vec()),
        selector(),
        select(vec![
            None,
            Some(vec!["Ingress"]),
            Some(vec!["Egress"]),
            Some(vec!["Ingress", "Egress"]),
        ]),
        prop::option::of(prop::collection::vec(rule(), 0..3)),
        prop::option::of(prop::collection::vec(rule(), 0..3)),
    )
        .prop_map(
            move |(ns, pod_selector, types, ingress, egress)| NetworkPolicy {
                metadata: meta(format!("np{index}"), Some(ns), BTreeMap::new()),
                spec: Some(NetworkPolicySpec {
                    pod_selector: Some(pod_selector),
                    policy_types: types.map(|t| t.into_iter().map(str::to_owned).collect()),
                    ingress: ingress.map(|rules| {
                        rules
                            .into_iter()
                            .map(|(from, ports)| NetworkPolicyIngressRule { from, ports })
                            .collect()
                    }),
                    egress: egress.map(|rules| {
                        rules
                            .into_iter()
                            .map(|(to, ports)| NetworkPolicyEgressRule { to, ports })
                            .collect()
                    }),
                }),
            },
        )
}

pub fn pod(index: usize) -> impl Strategy<Value = Pod> {
    let container_port = select(vec![
        ("http", 80, "TCP"),
        ("http", 8080, "TCP"),
        ("web", 81, "TCP"),
        ("dns", 53, "UDP"),
        ("dns", 53, "TCP"),
    ]);
    (
        select(NAMESPACES.to_vec()),
        labels(),
        prop::collection::vec(container_port, 0..3),
        any::<bool>(),
        prop::sample::select(vec!["Running", "Running", "Running", "Succeeded"]),
        prop::bool::weighted(0.1),
    )
        .prop_map(
            move |(ns, labels, ports, dual_stack, phase, host_network)| {
                // A host-network pod has the node's addresses: it is no endpoint and no peer, its
                // traffic is the node's.
                let mut ips = if host_network {
                    vec![NODE_V4.to_owned()]
                } else {
                    vec![format!("10.0.0.{}", 10 + index)]
                };
                if dual_stack {
                    ips.push(if host_network {
                        NODE_V6.to_owned()
                    } else {
                        format!("fd00::{:x}", 0x10 + index)
                    });
                }
                let mut seen = std::collections::BTreeSet::new();
                let ports: Vec<ContainerPort> = ports
                    .into_iter()
                    // The API server refuses two ports with one name in a pod.
                    .filter(|(name, _, _)| seen.insert(*name))
                    .map(|(name, number, protocol)| ContainerPort {
                        name: Some(name.to_owned()),
                        container_port: number,
                        protocol: Some(protocol.to_owned()),
                        ..Default::default()
                    })
                    .collect();
                Pod {
                    metadata: meta(format!("pod{index}"), Some(ns), labels),
                    spec: Some(PodSpec {
                        host_network: host_network.then_some(true),
                        containers: vec![Container {
                            name: "c".to_owned(),
                            ports: (!ports.is_empty()).then_some(ports),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                    status: Some(PodStatus {
                        phase: Some(phase.to_owned()),
                        pod_ip: Some(ips[0].clone()),
                        pod_ips: Some(ips.into_iter().map(|ip| PodIP { ip }).collect()),
                        ..Default::default()
                    }),
                }
            },
        )
}

pub fn world() -> impl Strategy<Value = World> {
    let namespaces =
        prop::collection::vec(prop::option::of(select(vec!["a", "b"])), 3).prop_map(|teams| {
            NAMESPACES
                .iter()
                .zip(teams)
                .map(|(name, team)| {
                    let mut labels = BTreeMap::new();
                    if let Some(team) = team {
                        labels.insert("team".to_owned(), team.to_owned());
                    }
                    Namespace {
                        metadata: meta((*name).to_owned(), None, labels),
                        ..Default::default()
                    }
                })
                .collect::<Vec<_>>()
        });
    let pods = (1usize..6).prop_flat_map(|n| (0..n).map(pod).collect::<Vec<_>>());
    let policies = (0usize..5).prop_flat_map(|n| (0..n).map(policy).collect::<Vec<_>>());
    (namespaces, pods, policies).prop_map(|(namespaces, pods, policies)| World {
        namespaces,
        pods,
        policies,
        node_addrs: vec![
            NODE_V4.parse().expect("addr"),
            NODE_V6.parse().expect("addr"),
        ],
    })
}

/// The cluster as the agent sees it: the same objects through the agent's own validation.
pub fn agent_cluster(world: &World) -> Cluster {
    let mut cluster = Cluster::default();
    for ns in &world.namespaces {
        let ns = convert::namespace(ns).expect("generated namespaces are valid");
        cluster.namespaces.insert(ns.name.clone(), ns.into());
    }
    for pod in &world.pods {
        let pod = convert::pod(pod).expect("generated pods are valid");
        cluster
            .pods
            .insert((pod.namespace.clone(), pod.name.clone()), pod.into());
    }
    for np in &world.policies {
        let np = convert::network_policy(np).expect("generated policies are valid");
        cluster
            .policies
            .insert((np.namespace.clone(), np.name.clone()), np.into());
    }
    cluster
}

pub fn addresses(world: &World) -> Vec<IpAddr> {
    let mut addrs: Vec<IpAddr> = world
        .pods
        .iter()
        .flat_map(|p| p.status.iter().flat_map(|s| s.pod_ips.iter().flatten()))
        .filter_map(|ip| ip.ip.parse().ok())
        .collect();
    addrs.extend(EXTERNAL.iter().map(|a| a.parse::<IpAddr>().expect("addr")));
    addrs.extend(world.node_addrs.iter().copied());
    addrs
}

pub fn protocol_number(protocol: &str) -> u8 {
    match protocol {
        "TCP" => 6,
        "UDP" => 17,
        _ => 132,
    }
}

pub fn cases_from_env(default: u32) -> u32 {
    std::env::var("PALISADE_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One change to a cluster, as the agent sees changes arrive (through the file or the
/// Kubernetes datastore): objects are relabelled, added and removed.
#[derive(Debug, Clone)]
pub enum Edit {
    RelabelPod(prop::sample::Index, BTreeMap<String, String>),
    RelabelNamespace(prop::sample::Index, Option<&'static str>),
    RemovePod(prop::sample::Index),
    AddPod(Box<Pod>),
    RemovePolicy(prop::sample::Index),
    AddPolicy(Box<NetworkPolicy>),
}

/// Up to `max` edits; added objects get indices from 20 on, apart from the world's own.
pub fn edits(max: usize) -> impl Strategy<Value = Vec<Edit>> {
    (1..max).prop_flat_map(|n| {
        (0..n)
            .map(|k| {
                prop_oneof![
                    3 => (any::<prop::sample::Index>(), labels())
                        .prop_map(|(i, l)| Edit::RelabelPod(i, l)),
                    1 => (any::<prop::sample::Index>(), prop::option::of(select(vec!["a", "b"])))
                        .prop_map(|(i, t)| Edit::RelabelNamespace(i, t)),
                    1 => any::<prop::sample::Index>().prop_map(Edit::RemovePod),
                    1 => pod(20 + k).prop_map(|p| Edit::AddPod(Box::new(p))),
                    1 => any::<prop::sample::Index>().prop_map(Edit::RemovePolicy),
                    2 => policy(20 + k).prop_map(|p| Edit::AddPolicy(Box::new(p))),
                ]
            })
            .collect::<Vec<_>>()
    })
}

impl Edit {
    pub fn apply(&self, world: &mut World) {
        match self {
            Edit::RelabelPod(i, labels) if !world.pods.is_empty() => {
                let index = i.index(world.pods.len());
                let pod = &mut world.pods[index];
                pod.metadata.labels = (!labels.is_empty()).then(|| labels.clone());
            }
            Edit::RelabelNamespace(i, team) => {
                let index = i.index(world.namespaces.len());
                let ns = &mut world.namespaces[index];
                let labels = ns.metadata.labels.get_or_insert_with(BTreeMap::new);
                match team {
                    Some(team) => labels.insert("team".to_owned(), (*team).to_owned()),
                    None => labels.remove("team"),
                };
            }
            Edit::RemovePod(i) if !world.pods.is_empty() => {
                world.pods.remove(i.index(world.pods.len()));
            }
            Edit::AddPod(pod) => world.pods.push((**pod).clone()),
            Edit::RemovePolicy(i) if !world.policies.is_empty() => {
                world.policies.remove(i.index(world.policies.len()));
            }
            Edit::AddPolicy(policy) => world.policies.push((**policy).clone()),
            _ => {}
        }
    }
}
