//! Random Calico resources on top of [`crate::generate`]'s clusters, for the property tests of
//! ordered tables: tiers with either default action, GlobalNetworkPolicies and namespaced
//! Calico NetworkPolicies at random orders in those tiers, rules with every action and the
//! entity fields Palisade enforces (nets, notNets, selector, notSelector, namespaceSelector
//! including `global()`, destination and source ports and notPorts with ranges and named
//! ports, serviceAccounts, protocol, notProtocol, ipVersion, icmp and notICMP types and
//! codes, `services` on the peer side), and network sets and host endpoints (as peers) that
//! rule selectors match by label, and EndpointSlices of the Services rules match, whose
//! endpoints are the world's addresses.
//!
//! Administrators' policy comes with them: network-policy-api ClusterNetworkPolicies in both
//! tiers (priorities from a small pool, so that they collide), AdminNetworkPolicies and the
//! BaselineAdminNetworkPolicy, with Accept/Allow, Deny and Pass, `namespaces`, `pods` and
//! `networks` peers, ports, ranges and named ports, and Calico policies placed in their tiers
//! `kube-admin` and `kube-baseline` too. A sixteenth of the cases have no Calico tiers or
//! policies, so that the translations alone make the tables ordered.
//!
//! A quarter of the cases ([`calico_case`]; every one of [`staged_calico_case`]) carry staged
//! policies too (StagedGlobalNetworkPolicy, StagedNetworkPolicy,
//! StagedKubernetesNetworkPolicy), as YAML beside the rest: `Set` ones copying one of the
//! case's policies with some of its fields changed, or adding a new one; `Delete` ones naming
//! one of the case's policies, or a kind, namespace and name that may name none. The agent
//! reads them with `policy_agent::model::staged::parse_value` ([`CalicoCase::agent_cluster`]
//! fills `Cluster::staged`), the model with its own reader.
//!
//! Resources are generated as v3 YAML and read with the agent's own parser, so only valid
//! resources reach the tests; what the datastore refuses (a peer's named source port in an
//! ingress rule) is never generated.

use proptest::{prelude::*, sample::select};
use serde_json::{Value, json};

use crate::{
    calico_reference::CalicoWorld,
    generate::{NAMESPACES, agent_cluster, world},
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use policy_agent::{
    calico::resources::{CalicoResource, parse_documents},
    cluster_policy::{self, ApiKind, ClusterPolicy},
    model::{
        Cluster,
        staged::{self, StagedKind},
    },
};

/// A Kubernetes world with Calico resources, and their YAML (what a failure prints).
#[derive(Debug, Clone)]
pub struct CalicoCase {
    pub world: CalicoWorld,
    pub yaml: String,
    pub resources: Vec<CalicoResource>,
}

impl CalicoCase {
    /// The cluster as the agent sees it.
    pub fn agent_cluster(&self) -> Cluster {
        let mut cluster = agent_cluster(&self.kubernetes_world());
        for resource in &self.resources {
            cluster.calico.insert(resource.clone());
        }
        for policy in &self.world.cluster_policies {
            cluster.insert_cluster_policy(policy.clone());
        }
        for slice in &self.world.endpoint_slices {
            let slice = policy_agent::model::convert::endpoint_slice(slice)
                .expect("generated EndpointSlices are valid");
            cluster
                .endpoint_slices
                .insert((slice.namespace.clone(), slice.name.clone()), slice);
        }
        for policy in self.agent_staged() {
            let key = (policy.kind, policy.namespace.clone(), policy.name.clone());
            cluster.staged.insert(key, policy);
        }
        cluster
    }

    /// The staged policies among the case's YAML, read by the agent's own reader
    /// ([`staged::parse_value`], what its file datastore calls): one per kind, namespace and
    /// name, the last one.
    pub fn agent_staged(&self) -> Vec<staged::StagedPolicy> {
        if !self.yaml.contains("kind: Staged") {
            return Vec::new();
        }
        let mut out = Vec::new();
        for document in serde_yaml::Deserializer::from_str(&self.yaml) {
            let value = <serde_yaml::Value as serde::Deserialize>::deserialize(document)
                .unwrap_or_else(|e| panic!("the case's YAML: {e}\n{}", self.yaml));
            let kind = value
                .get("apiVersion")
                .and_then(serde_yaml::Value::as_str)
                .filter(|v| v.starts_with("projectcalico.org/"))
                .and_then(|_| value.get("kind"))
                .and_then(serde_yaml::Value::as_str)
                .and_then(StagedKind::from_name);
            if let Some(kind) = kind {
                out.push(staged::parse_value(kind, value).unwrap_or_else(|e| {
                    panic!("generated an invalid staged policy: {e:?}\n{}", self.yaml)
                }));
            }
        }
        out
    }
}

const TIERS: [&str; 3] = ["default", "security", "platform"];

/// Tiers Calico policies are put in: the declared ones and, seldom, Calico's built-in tiers
/// of administrators' policy (which are never declared with other values). Seldom, because
/// those end in Pass where an undeclared tier ends in Deny: more would make denials rare.
fn policy_tier() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        12 => select(TIERS.to_vec()),
        1 => select(vec!["kube-admin", "kube-baseline"]),
    ]
}

fn tier() -> impl Strategy<Value = Option<Value>> {
    (
        select(TIERS.to_vec()),
        select(vec![Value::Null, json!(100), json!(200), json!(2_000_000)]),
        select(vec!["Deny", "Pass"]),
        prop::bool::weighted(0.6),
    )
        .prop_map(|(name, order, action, declared)| {
            declared.then(|| {
                let mut spec = json!({ "defaultAction": action });
                if !order.is_null() {
                    spec["order"] = order;
                }
                json!({
                    "apiVersion": "projectcalico.org/v3",
                    "kind": "Tier",
                    "metadata": { "name": name },
                    "spec": spec,
                })
            })
        })
}

fn selector() -> impl Strategy<Value = &'static str> {
    select(vec![
        "all()",
        "app == 'a'",
        "app != 'b'",
        "has(tier)",
        "!has(app)",
        "app in {'a', 'c'}",
        "tier not in {'1'}",
        "app == 'a' || tier == '2'",
        "has(app) && !(tier == '1')",
        "projectcalico.org/namespace == 'y'",
        "app starts with 'b'",
        "role == 'blocked'",
        "role == 'bare-metal'",
        "has(role)",
        "role == 'dns' || app == 'c'",
    ])
}

fn namespace_selector() -> impl Strategy<Value = &'static str> {
    select(vec![
        "all()",
        "team == 'a'",
        "has(team)",
        "!has(team)",
        "projectcalico.org/name == 'x'",
        "kubernetes.io/metadata.name in {'y', 'z'}",
        "global()",
    ])
}

fn nets(v6: bool) -> impl Strategy<Value = Vec<&'static str>> {
    let pool = if v6 {
        vec!["fd00::/64", "fd00::10/126", "::/0", "2001:db8::/32"]
    } else {
        vec![
            "10.0.0.0/24",
            "10.0.0.8/29",
            "10.0.0.12/32",
            "0.0.0.0/0",
            "192.0.2.0/24",
            "10.0.0.200/32",
        ]
    };
    prop::collection::vec(select(pool), 1..3)
}

/// Source ports the flows use: the edges of the generated rules' ports and ranges, the
/// pods' named port numbers, and a client's ephemeral port.
const SOURCE_PORTS: [u16; 10] = [40_000, 80, 81, 53, 90, 91, 999, 1000, 8080, 9001];

/// Which ports one side of a rule may match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ports {
    None,
    /// Numbers, ranges and names (destination ports, and an egress rule's own source ports).
    Any,
    /// Numbers and ranges: an ingress rule's source ports (the peer's; Palisade refuses a
    /// peer's port names).
    Numbers,
}

/// The Services rules match (`services`) and EndpointSlices are generated for.
const SERVICES: [&str; 2] = ["svc-a", "svc-b"];

/// A `services` match: a Service, with or without its namespace (a GlobalNetworkPolicy's is
/// filled in by [`policy`]).
fn service_match() -> impl Strategy<Value = Value> {
    (
        select(SERVICES.to_vec()),
        prop::option::weighted(
            0.6,
            select(vec![NAMESPACES[0], NAMESPACES[0], NAMESPACES[1]]),
        ),
    )
        .prop_map(|(name, namespace)| match namespace {
            Some(ns) => json!({ "name": name, "namespace": ns }),
            None => json!({ "name": name }),
        })
}

/// One side of a rule; `peer`: the side a `services` match may be on (an ingress rule's
/// source, an egress rule's destination), which it then is on alone, but for a source's
/// ports (Calico's validation).
fn entity(ports: Ports, destination: bool, v6: bool, peer: bool) -> impl Strategy<Value = Value> {
    let mut pool = vec![
        json!(80),
        json!(81),
        json!(53),
        json!("80:90"),
        json!("1000:9000"),
    ];
    if ports == Ports::Any {
        pool.extend([json!("http"), json!("dns"), json!("web")]);
    }
    let port = select(pool);
    let with_ports = ports != Ports::None;
    // Source ports are rarer in real policies than destination ports; a third of the rules
    // with ports still sets them.
    let ports_weight = if ports == Ports::Numbers || !destination {
        0.2
    } else {
        0.4
    };
    (
        prop::option::weighted(0.3, nets(v6)),
        prop::option::weighted(0.15, nets(v6)),
        prop::option::weighted(0.4, selector()),
        prop::option::weighted(0.15, selector()),
        prop::option::weighted(0.25, namespace_selector()),
        prop::option::weighted(ports_weight, prop::collection::vec(port.clone(), 1..3)),
        prop::option::weighted(ports_weight / 2.0, prop::collection::vec(port, 1..2)),
        prop::bool::weighted(0.1),
        prop::option::weighted(0.25, service_match()),
    )
        .prop_map(
            move |(
                nets,
                not_nets,
                selector,
                not_selector,
                ns,
                ports,
                not_ports,
                accounts,
                service,
            )| {
                if let Some(service) = service.filter(|_| peer) {
                    let mut out = json!({ "services": service });
                    if with_ports && !destination {
                        if let Some(p) = ports {
                            out["ports"] = json!(p);
                        }
                        if let Some(p) = not_ports {
                            out["notPorts"] = json!(p);
                        }
                    }
                    return out;
                }
                let mut out = json!({});
                if let Some(nets) = nets {
                    out["nets"] = json!(nets);
                }
                if let Some(nets) = not_nets {
                    out["notNets"] = json!(nets);
                }
                if let Some(s) = selector {
                    out["selector"] = json!(s);
                }
                if let Some(s) = not_selector {
                    out["notSelector"] = json!(s);
                }
                if let Some(s) = ns {
                    out["namespaceSelector"] = json!(s);
                }
                if with_ports {
                    if let Some(p) = ports {
                        out["ports"] = json!(p);
                    }
                    if let Some(p) = not_ports {
                        out["notPorts"] = json!(p);
                    }
                }
                if accounts {
                    out["serviceAccounts"] = json!({ "names": ["default"] });
                }
                out
            },
        )
}

/// An `icmp`/`notICMP` match over the types the flows use.
fn icmp_match() -> impl Strategy<Value = Value> {
    (
        select(vec![0u8, 3, 8, 11, 128, 129]),
        prop::option::of(select(vec![0u8, 1])),
    )
        .prop_map(|(kind, code)| match code {
            Some(code) => json!({ "type": kind, "code": code }),
            None => json!({ "type": kind }),
        })
}

/// ICMP flows to check: indices into the addresses, type and code (the protocol follows the
/// family).
pub type IcmpPick = (prop::sample::Index, prop::sample::Index, u8, u8);

pub fn icmp_picks(max: usize) -> impl Strategy<Value = Vec<IcmpPick>> {
    prop::collection::vec(
        (
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>(),
            select(vec![0u8, 3, 8, 11, 128, 129]),
            select(vec![0u8, 1]),
        ),
        1..max,
    )
}

/// A rule of an ingress (`egress` false) or egress list: mostly [`any_rule`], sometimes a
/// rule that matches on little but source ports, so that the flows' source ports often
/// decide (a source-port list in a rule with every other field is rarely reached).
fn rule(egress: bool) -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => any_rule(egress),
        2 => source_port_rule(egress),
        1 => service_rule(egress),
    ]
}

/// Allow, Deny or Pass by a `services` match on the peer side alone (and sometimes a
/// protocol, or an ingress rule's source ports), so that Services often decide.
fn service_rule(egress: bool) -> impl Strategy<Value = Value> {
    (
        select(vec!["Allow", "Deny", "Pass"]),
        select(vec![None, Some("TCP"), Some("UDP")]),
        service_match(),
        prop::option::weighted(0.3, select(vec![json!(["0:1023"]), json!([40_000, 53])])),
    )
        .prop_map(move |(action, protocol, service, source_ports)| {
            let mut rule = json!({ "action": action });
            if let Some(p) = protocol {
                rule["protocol"] = json!(p);
            }
            if egress {
                rule["destination"] = json!({ "services": service });
            } else {
                rule["source"] = json!({ "services": service });
                if let (Some(ports), Some(_)) = (source_ports, protocol) {
                    rule["source"]["ports"] = ports;
                }
            }
            rule
        })
}

/// Allow or Deny by protocol and source ports (and sometimes a destination port).
fn source_port_rule(egress: bool) -> impl Strategy<Value = Value> {
    let mut pool = vec![
        json!(80),
        json!(53),
        json!("80:90"),
        json!("1000:9000"),
        json!("0:1023"),
    ];
    if egress {
        // Named source ports of an egress rule are the endpoint's own.
        pool.extend([json!("http"), json!("dns")]);
    }
    (
        select(vec!["Allow", "Deny", "Pass"]),
        select(vec!["TCP", "UDP", "SCTP"]),
        prop::collection::vec(select(pool.clone()), 1..3),
        any::<bool>(),
        prop::option::weighted(0.3, select(vec![80u16, 53, 8080])),
    )
        .prop_map(|(action, protocol, ports, negated, destination)| {
            let field = if negated { "notPorts" } else { "ports" };
            let mut rule = json!({
                "action": action,
                "protocol": protocol,
                "source": { field: ports },
            });
            if let Some(port) = destination {
                rule["destination"] = json!({ "ports": [port] });
            }
            rule
        })
}

/// A rule using any of the fields.
fn any_rule(egress: bool) -> impl Strategy<Value = Value> {
    (
        select(vec!["Allow", "Allow", "Deny", "Pass", "Log"]),
        select(vec![
            None,
            Some("TCP"),
            Some("UDP"),
            Some("SCTP"),
            Some("ICMP"),
            Some("ICMPv6"),
        ]),
        prop::option::weighted(0.1, select(vec!["UDP", "TCP"])),
        prop::option::weighted(0.15, select(vec![4, 6])),
        any::<bool>(),
        prop::option::weighted(0.5, icmp_match()),
        prop::option::weighted(0.2, icmp_match()),
    )
        .prop_flat_map(
            move |(action, protocol, not_protocol, ip_version, v6_nets, icmp, not_icmp)| {
                // ICMP is IPv4's and ICMPv6 IPv6's.
                let icmp_family = match protocol {
                    Some("ICMP") => Some(false),
                    Some("ICMPv6") => Some(true),
                    _ => None,
                };
                let ip_version = match icmp_family {
                    Some(v6) => ip_version.map(|_| if v6 { 6 } else { 4 }),
                    None => ip_version,
                };
                let v6_nets = icmp_family.unwrap_or(v6_nets);
                // `icmp` and `notICMP` need an ICMP protocol.
                let (icmp, not_icmp) = if icmp_family.is_some() {
                    (icmp, not_icmp)
                } else {
                    (None, None)
                };
                let v6 = match ip_version {
                    Some(version) => version == 6,
                    None => v6_nets,
                };
                let with_ports = matches!(protocol, Some("TCP" | "UDP" | "SCTP"));
                let (source_ports, destination_ports) = match (with_ports, egress) {
                    (false, _) => (Ports::None, Ports::None),
                    (true, true) => (Ports::Any, Ports::Any),
                    (true, false) => (Ports::Numbers, Ports::Any),
                };
                (
                    entity(source_ports, false, v6, !egress),
                    entity(destination_ports, true, v6, egress),
                )
                    .prop_map(move |(source, destination)| {
                        let mut rule = json!({ "action": action });
                        if let Some(p) = protocol {
                            rule["protocol"] = json!(p);
                        }
                        if let Some(p) = not_protocol.filter(|p| Some(*p) != protocol) {
                            rule["notProtocol"] = json!(p);
                        }
                        if let Some(v) = ip_version {
                            rule["ipVersion"] = json!(v);
                        }
                        if let Some(m) = &icmp {
                            rule["icmp"] = m.clone();
                        }
                        if let Some(m) = &not_icmp {
                            rule["notICMP"] = m.clone();
                        }
                        if source != json!({}) {
                            rule["source"] = source;
                        }
                        if destination != json!({}) {
                            rule["destination"] = destination;
                        }
                        rule
                    })
            },
        )
}

fn policy(index: usize) -> impl Strategy<Value = Value> {
    (
        prop::option::of(select(NAMESPACES.to_vec())),
        policy_tier(),
        select(vec![
            Value::Null,
            json!(10),
            json!(100),
            json!(1000),
            json!(1000.5),
        ]),
        selector(),
        prop::option::weighted(0.2, namespace_selector()),
        prop::option::weighted(
            0.3,
            select(vec![
                vec!["Ingress"],
                vec!["Egress"],
                vec!["Ingress", "Egress"],
            ]),
        ),
        prop::collection::vec(rule(false), 0..4),
        prop::collection::vec(rule(true), 0..4),
    )
        .prop_map(
            move |(namespace, tier, order, selector, ns_selector, types, ingress, egress)| {
                let name = if tier == "default" {
                    format!("p{index}")
                } else {
                    format!("{tier}.p{index}")
                };
                let mut spec =
                    json!({ "selector": selector, "ingress": ingress, "egress": egress });
                if tier != "default" {
                    spec["tier"] = json!(tier);
                }
                if !order.is_null() {
                    spec["order"] = order;
                }
                if let Some(types) = types {
                    spec["types"] = json!(types);
                }
                let mut metadata = json!({ "name": name });
                let kind = match namespace {
                    Some(ns) => {
                        metadata["namespace"] = json!(ns);
                        "NetworkPolicy"
                    }
                    None => {
                        if let Some(s) = ns_selector.filter(|s| *s != "global()") {
                            spec["namespaceSelector"] = json!(s);
                        }
                        name_service_namespaces(&mut spec);
                        "GlobalNetworkPolicy"
                    }
                };
                json!({
                    "apiVersion": "projectcalico.org/v3",
                    "kind": kind,
                    "metadata": metadata,
                    "spec": spec,
                })
            },
        )
}

/// A global policy's `services` must name the namespace: fills it in where it is missing
/// (adding no field to a rule without `services`).
fn name_service_namespaces(spec: &mut Value) {
    for (list, side) in [("ingress", "source"), ("egress", "destination")] {
        let rules = spec.get_mut(list).and_then(Value::as_array_mut);
        for rule in rules.into_iter().flatten() {
            let service = rule
                .get_mut(side)
                .and_then(|side| side.get_mut("services"))
                .and_then(Value::as_object_mut);
            if let Some(service) = service {
                service
                    .entry("namespace")
                    .or_insert_with(|| json!(NAMESPACES[0]));
            }
        }
    }
}

// ---- Staged policies ----

/// One staged policy before the case's policies are known (see [`staged_documents`]).
#[derive(Debug, Clone)]
enum StagedPick {
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
fn staged_picks(count: std::ops::Range<usize>) -> impl Strategy<Value = Vec<StagedPick>> {
    count.prop_flat_map(|n| (0..n).map(staged_pick).collect::<Vec<_>>())
}

fn staged_pick(index: usize) -> impl Strategy<Value = StagedPick> {
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
fn staged_document(kind: StagedKind, document: &Value, action: Option<&str>) -> Value {
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
fn kubernetes_document(np: &NetworkPolicy) -> Value {
    serde_json::to_value(np).expect("a generated NetworkPolicy serializes")
}

/// The staged documents of `picks` over the case's Calico policies (`calico`, their
/// documents) and Kubernetes NetworkPolicies: one per kind, namespace and name (the last).
fn staged_documents(
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

// ---- Administrators' policy (network-policy-api) ----

/// Namespace selectors over the generated namespaces' labels (`team`, the name label).
fn k8s_namespace_selector() -> impl Strategy<Value = Value> {
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
fn k8s_pod_selector() -> impl Strategy<Value = Value> {
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
fn pod_group(v1alpha1: bool) -> impl Strategy<Value = Value> {
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
fn networks_peer() -> impl Strategy<Value = Value> {
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
fn cluster_port(v1alpha1: bool) -> impl Strategy<Value = Value> {
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
fn cluster_rule(
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
fn cluster_rules(
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
fn cluster_policy_document(index: usize) -> impl Strategy<Value = Value> {
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
fn cluster_policy_of(document: &Value) -> ClusterPolicy {
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

fn network_set(index: usize) -> impl Strategy<Value = Value> {
    (
        prop::option::of(select(NAMESPACES.to_vec())),
        select(vec!["blocked", "dns"]),
        any::<bool>(),
    )
        .prop_flat_map(move |(namespace, role, v6)| {
            nets(v6).prop_map(move |nets| {
                let mut metadata =
                    json!({ "name": format!("set{index}"), "labels": { "role": role } });
                let kind = match namespace {
                    Some(ns) => {
                        metadata["namespace"] = json!(ns);
                        "NetworkSet"
                    }
                    None => "GlobalNetworkSet",
                };
                json!({
                    "apiVersion": "projectcalico.org/v3",
                    "kind": kind,
                    "metadata": metadata,
                    "spec": { "nets": nets },
                })
            })
        })
}

/// A host endpoint as a peer: labelled like pods and sets, expecting outside addresses the
/// flows use. `interfaceName: "*"` (all interfaces) is one
/// Palisade does not enforce on, and the reference model enforces on none: both judge only
/// the traffic of others towards it and from it.
fn host_endpoint(index: usize) -> impl Strategy<Value = Value> {
    (
        select(vec!["blocked", "dns", "bare-metal"]),
        prop::option::of(select(vec!["a", "b"])),
        prop::collection::vec(select(crate::generate::EXTERNAL.to_vec()), 1..3),
        // Named ports as the rules name them (`http`, `dns`, `web`), at numbers the flows use.
        prop::option::of(select(vec![
            json!([{ "name": "http", "port": 8080, "protocol": "TCP" }]),
            json!([{ "name": "dns", "port": 53, "protocol": "UDP" }, { "name": "web", "port": 80, "protocol": "TCP" }]),
        ])),
    )
        .prop_map(move |(role, app, ips, ports)| {
            let mut labels = json!({ "role": role });
            if let Some(app) = app {
                labels["app"] = json!(app);
            }
            let mut ips = ips;
            ips.sort_unstable();
            ips.dedup();
            let mut spec = json!({ "node": "elsewhere", "interfaceName": "*", "expectedIPs": ips });
            if let Some(ports) = &ports {
                spec["ports"] = ports.clone();
            }
            json!({
                "apiVersion": "projectcalico.org/v3",
                "kind": "HostEndpoint",
                "metadata": { "name": format!("host{index}"), "labels": labels },
                "spec": spec,
            })
        })
}

/// The ports of a generated EndpointSlice: at the flows' ports, over each protocol, and
/// none, or one without a number (no port for Calico's destination match).
fn slice_ports() -> impl Strategy<Value = Value> {
    select(vec![
        json!([{ "name": "http", "port": 80, "protocol": "TCP" }]),
        json!([{ "port": 53, "protocol": "UDP" }]),
        json!([{ "name": "a", "port": 8080 }, { "name": "b", "port": 53, "protocol": "UDP" }]),
        json!([{ "port": 9000, "protocol": "SCTP" }, { "name": "x", "port": 443, "protocol": "TCP" }]),
        json!([]),
        json!([{ "name": "all" }]),
    ])
}

/// An EndpointSlice before its addresses are known: namespace, Service, family, the
/// picks of its endpoints' addresses (of that family, from the world's), their ports, and
/// whether the endpoints are ready (Calico does not look).
type SliceSpec = (
    &'static str,
    &'static str,
    bool,
    Vec<prop::sample::Index>,
    Value,
    bool,
);

fn slice_spec() -> impl Strategy<Value = SliceSpec> {
    (
        select(vec![
            NAMESPACES[0],
            NAMESPACES[0],
            NAMESPACES[1],
            NAMESPACES[2],
        ]),
        select(SERVICES.to_vec()),
        prop::bool::weighted(0.3),
        prop::collection::vec(any::<prop::sample::Index>(), 1..6),
        slice_ports(),
        prop::bool::weighted(0.8),
    )
}

/// The addresses of one family the picks choose among the world's; none when it has none.
fn pick_addresses(
    addrs: &[std::net::IpAddr],
    v6: bool,
    picks: &[prop::sample::Index],
) -> Vec<String> {
    let family: Vec<_> = addrs.iter().filter(|a| a.is_ipv6() == v6).collect();
    if family.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<String> = picks
        .iter()
        .map(|pick| pick.get(&family).to_string())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// An EndpointSlice object as the endpointslice controller writes one.
fn endpoint_slice(
    index: usize,
    spec: &SliceSpec,
    addrs: &[std::net::IpAddr],
) -> Option<k8s_openapi::api::discovery::v1::EndpointSlice> {
    let (namespace, service, v6, picks, ports, ready) = spec;
    let addresses = pick_addresses(addrs, *v6, picks);
    if addresses.is_empty() {
        return None;
    }
    let endpoints: Vec<Value> = addresses
        .iter()
        .map(|a| json!({ "addresses": [a], "conditions": { "ready": ready } }))
        .collect();
    let value = json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": format!("{service}-{index}"),
            "namespace": namespace,
            "labels": { "kubernetes.io/service-name": service },
        },
        "addressType": if *v6 { "IPv6" } else { "IPv4" },
        "endpoints": endpoints,
        "ports": ports,
    });
    Some(serde_json::from_value(value).expect("a generated EndpointSlice"))
}

/// A random world with Calico resources (and Kubernetes NetworkPolicies among them), and
/// administrators' policy in most; a quarter of them carry staged policies.
pub fn calico_case() -> impl Strategy<Value = CalicoCase> {
    calico_case_with(prop_oneof![3 => Just(Vec::new()), 1 => staged_picks(1..4)])
}

/// A world of [`calico_case`]'s that carries one to four staged picks (a pick that would
/// change or delete one of the case's policies when it has none is dropped, so a few cases
/// have none staged).
pub fn staged_calico_case() -> impl Strategy<Value = CalicoCase> {
    calico_case_with(staged_picks(1..5))
}

fn calico_case_with(
    staged: impl Strategy<Value = Vec<StagedPick>>,
) -> impl Strategy<Value = CalicoCase> {
    let tiers = prop::collection::vec(tier(), 0..3);
    let policies = (1usize..5).prop_flat_map(|n| (0..n).map(policy).collect::<Vec<_>>());
    let sets = (0usize..3).prop_flat_map(|n| (0..n).map(network_set).collect::<Vec<_>>());
    let hosts = (0usize..3).prop_flat_map(|n| (0..n).map(host_endpoint).collect::<Vec<_>>());
    let sets = (sets, hosts)
        .prop_map(|(sets, hosts)| sets.into_iter().chain(hosts).collect::<Vec<Value>>());
    let slices = prop::collection::vec(slice_spec(), 0..6);
    // One or two administrators' policies in most worlds: each costs its translation's
    // compile, and the test's run time is to stay about what it was without them.
    let cluster = prop_oneof![1 => Just(0usize), 4 => 1usize..3]
        .prop_flat_map(|n| (0..n).map(cluster_policy_document).collect::<Vec<_>>());
    // A sixteenth of the worlds have no Calico tiers or policies: administrators' policy
    // (when there is some) and NetworkPolicies alone. Few, as they deny little (the kernel
    // test wants a tenth of its flows denied); elsewhere the endpoints no Calico policy
    // applies to already get ordered tables from the translations alone.
    let calico = prop_oneof![
        1 => Just((Vec::new(), Vec::new())),
        15 => (tiers, policies),
    ];
    (world(), calico, sets, slices, cluster, staged).prop_map(
        |(kubernetes, (tiers, policies), sets, slices, cluster, staged)| {
            let staged = staged_documents(&staged, &policies, &kubernetes.policies);
            let mut seen = std::collections::BTreeSet::new();
            let documents: Vec<Value> = tiers
                .into_iter()
                .flatten()
                // One declaration per tier name.
                .filter(|t| seen.insert(t["metadata"]["name"].to_string()))
                .chain(policies)
                .chain(sets)
                .collect();
            let to_yaml = |documents: &[Value]| {
                documents
                    .iter()
                    .map(|d| serde_yaml::to_string(d).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("---\n")
            };
            let mut yaml = to_yaml(&documents);
            let resources: Vec<CalicoResource> = parse_documents(&yaml)
                .into_iter()
                .map(|r| r.unwrap_or_else(|e| panic!("generated an invalid resource: {e}\n{yaml}")))
                .collect();
            // The staged policies follow the enforced resources, read by each side with its
            // own reader (the agent's in `CalicoCase::agent_cluster`).
            if !staged.is_empty() {
                yaml.push_str("---\n");
                yaml.push_str(&to_yaml(&staged));
            }
            // The model reads the resources from the YAML itself, applying Calico's defaults
            // on its own rather than taking the ones the agent checked.
            let mut world = CalicoWorld::read(&kubernetes, &yaml)
                .unwrap_or_else(|e| panic!("the model cannot read the case: {e}\n{yaml}"));
            // One object per kind and name, the last generated one: as the API server holds
            // them.
            let mut cluster_documents: Vec<Value> = Vec::new();
            for document in cluster.into_iter().rev() {
                let key = |d: &Value| (d["kind"].clone(), d["metadata"]["name"].clone());
                if !cluster_documents.iter().any(|d| key(d) == key(&document)) {
                    cluster_documents.push(document);
                }
            }
            cluster_documents.reverse();
            for document in &cluster_documents {
                world.cluster_policies.push(cluster_policy_of(document));
                yaml.push_str("---\n");
                yaml.push_str(&serde_yaml::to_string(document).unwrap_or_default());
            }
            let addrs = crate::generate::addresses(&kubernetes);
            world.endpoint_slices = slices
                .iter()
                .enumerate()
                .filter_map(|(index, spec)| endpoint_slice(index, spec, &addrs))
                .collect();
            for slice in &world.endpoint_slices {
                yaml.push_str("---\n");
                yaml.push_str(&serde_yaml::to_string(slice).unwrap_or_default());
            }
            CalicoCase {
                world,
                yaml,
                resources,
            }
        },
    )
}

/// A change to a case's Calico policies, for the incremental tests: what an operator's
/// `calicoctl apply` or `delete` of one policy does.
#[derive(Debug, Clone)]
pub enum CalicoEdit {
    /// Deletes one of the case's Calico policies (none when it has none).
    RemovePolicy(prop::sample::Index),
    /// Applies a generated policy, given as its v3 YAML: added, or replacing the one of the
    /// same name and namespace. The agent parses the YAML as it does a datastore's, the
    /// model reads it as written.
    PutPolicy(String),
    /// Replaces the CIDRs of one of the case's network sets (none when it has none), labels
    /// kept: the change a block list's updates make.
    SetNets(prop::sample::Index, Vec<ipnet::IpNet>),
    /// Replaces the endpoints of one of the case's EndpointSlices (none when it has none)
    /// with addresses of its family picked from the world's, or empties it: a Service's pods
    /// coming and going.
    SetEndpoints(prop::sample::Index, Vec<prop::sample::Index>),
    /// Deletes one of the case's administrators' policies (none when it has none).
    RemoveClusterPolicy(prop::sample::Index),
    /// Applies an administrators' policy (its YAML for the failure's listing): added, or
    /// replacing the one of the same kind and name.
    PutClusterPolicy(Box<ClusterPolicy>, String),
}

pub fn calico_edit() -> impl Strategy<Value = CalicoEdit> {
    prop_oneof![
        any::<prop::sample::Index>().prop_map(CalicoEdit::RemoveClusterPolicy),
        cluster_policy()
            .prop_map(|(policy, yaml)| CalicoEdit::PutClusterPolicy(Box::new(policy), yaml)),
        any::<prop::sample::Index>().prop_map(CalicoEdit::RemovePolicy),
        (0usize..5).prop_flat_map(policy).prop_map(|document| {
            let yaml = serde_yaml::to_string(&document).unwrap_or_default();
            agent_policy(&yaml);
            CalicoEdit::PutPolicy(yaml)
        }),
        (
            any::<prop::sample::Index>(),
            prop::collection::vec(any::<prop::sample::Index>(), 0..3)
        )
            .prop_map(|(index, picks)| CalicoEdit::SetEndpoints(index, picks)),
        (any::<prop::sample::Index>(), any::<bool>()).prop_flat_map(|(index, v6)| {
            nets(v6).prop_map(move |nets| {
                let nets = nets
                    .iter()
                    .map(|n| n.parse::<ipnet::IpNet>().map(|n| n.trunc()))
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap_or_default();
                CalicoEdit::SetNets(index, nets)
            })
        }),
    ]
}

/// The one policy of `yaml` as the agent parses it (every generated one is valid).
fn agent_policy(yaml: &str) -> CalicoResource {
    match parse_documents(yaml).pop() {
        Some(Ok(resource)) => resource,
        other => panic!("generated an invalid policy: {other:?}\n{yaml}"),
    }
}

/// A network set's key: namespace (none for global) and name.
fn set_key(resource: &CalicoResource) -> Option<(Option<String>, String)> {
    match resource {
        CalicoResource::GlobalNetworkSet(s) | CalicoResource::NetworkSet(s) => {
            Some((s.namespace.clone(), s.name.clone()))
        }
        _ => None,
    }
}

/// A Calico policy's key: namespace (empty for global) and name.
fn policy_key(resource: &CalicoResource) -> Option<(Option<String>, String)> {
    match resource {
        CalicoResource::GlobalNetworkPolicy(p) | CalicoResource::NetworkPolicy(p) => {
            Some((p.namespace.clone(), p.name.clone()))
        }
        _ => None,
    }
}

impl CalicoCase {
    /// Applies an edit to the resources, the model's world and the YAML a failure prints.
    pub fn apply(&mut self, edit: &CalicoEdit) {
        match edit {
            CalicoEdit::RemoveClusterPolicy(index) => {
                let count = self.world.cluster_policies.len();
                if count > 0 {
                    let removed = self.world.cluster_policies.remove(index.index(count));
                    self.yaml
                        .push_str(&format!("# then deleted: {}\n", removed.describe()));
                }
                return;
            }
            CalicoEdit::PutClusterPolicy(policy, yaml) => {
                let policies = &mut self.world.cluster_policies;
                policies.retain(|p| (p.kind, &p.name) != (policy.kind, &policy.name));
                policies.push(policy.as_ref().clone());
                // Commented out, as the other edits are: the listing stays the first world.
                self.yaml.push_str("# then applied:\n");
                for line in yaml.lines() {
                    self.yaml.push_str(&format!("#   {line}\n"));
                }
                return;
            }
            _ => {}
        }
        if let CalicoEdit::SetEndpoints(index, picks) = edit {
            let count = self.world.endpoint_slices.len();
            if count == 0 {
                return;
            }
            let addrs = crate::generate::addresses(&self.kubernetes_world());
            let slice = &mut self.world.endpoint_slices[index.index(count)];
            let v6 = slice.address_type == "IPv6";
            let addresses = pick_addresses(&addrs, v6, picks);
            slice.endpoints = addresses
                .iter()
                .map(|a| k8s_openapi::api::discovery::v1::Endpoint {
                    addresses: vec![a.clone()],
                    ..Default::default()
                })
                .collect();
            self.yaml.push_str(&format!(
                "# then set EndpointSlice {:?}/{:?}'s endpoints to {addresses:?}\n",
                slice.metadata.namespace, slice.metadata.name
            ));
            return;
        }
        if let CalicoEdit::SetNets(index, nets) = edit {
            let keys: Vec<_> = self.resources.iter().filter_map(set_key).collect();
            if keys.is_empty() {
                return;
            }
            let key = keys[index.index(keys.len())].clone();
            for resource in &mut self.resources {
                if set_key(resource).as_ref() == Some(&key)
                    && let CalicoResource::GlobalNetworkSet(set) | CalicoResource::NetworkSet(set) =
                        resource
                {
                    set.nets = nets.clone();
                }
            }
            for set in &mut self.world.network_sets {
                if (set.namespace.clone(), set.name.clone()) == key {
                    set.nets = nets.clone();
                }
            }
            self.yaml.push_str(&format!(
                "# then set {:?}/{}'s nets to {nets:?}\n",
                key.0, key.1
            ));
            return;
        }
        let put = match edit {
            CalicoEdit::PutPolicy(yaml) => Some(agent_policy(yaml)),
            _ => None,
        };
        let removed = match edit {
            CalicoEdit::RemovePolicy(index) => {
                let keys: Vec<_> = self.resources.iter().filter_map(policy_key).collect();
                if keys.is_empty() {
                    return;
                }
                keys[index.index(keys.len())].clone()
            }
            CalicoEdit::PutPolicy(_) => match put.as_ref().and_then(policy_key) {
                Some(key) => key,
                None => return,
            },
            CalicoEdit::SetNets(..)
            | CalicoEdit::SetEndpoints(..)
            | CalicoEdit::RemoveClusterPolicy(_)
            | CalicoEdit::PutClusterPolicy(..) => return,
        };
        self.resources
            .retain(|r| policy_key(r).as_ref() != Some(&removed));
        self.world
            .policies
            .retain(|p| (p.namespace.clone(), p.name.clone()) != removed);
        let (namespace, name) = &removed;
        let namespace = namespace.as_deref().unwrap_or("(global)");
        match edit {
            CalicoEdit::RemovePolicy(_) => {
                self.yaml
                    .push_str(&format!("# then deleted: {namespace}/{name}\n"));
            }
            CalicoEdit::PutPolicy(yaml) => {
                self.resources.extend(put);
                self.world
                    .extend_from_yaml(yaml)
                    .unwrap_or_else(|e| panic!("the model cannot read a policy: {e}\n{yaml}"));
                // Commented out, as the other edits are: the listing stays the first world.
                self.yaml
                    .push_str(&format!("# then applied {namespace}/{name}:\n"));
                for line in yaml.lines() {
                    self.yaml.push_str(&format!("#   {line}\n"));
                }
            }
            CalicoEdit::SetNets(..)
            | CalicoEdit::SetEndpoints(..)
            | CalicoEdit::RemoveClusterPolicy(_)
            | CalicoEdit::PutClusterPolicy(..) => {}
        }
    }
}

/// A flow of the Calico tests: the datapath's view (protocol, and the destination port or
/// ICMP type << 8 | code) and the model's packet.
#[derive(Debug, Clone, Copy)]
pub struct CalicoFlow {
    pub src: std::net::IpAddr,
    pub dst: std::net::IpAddr,
    pub protocol: u8,
    /// The source port (0 for ICMP).
    pub sport: u16,
    pub key_port: u16,
    pub model: crate::calico_reference::Packet,
}

impl CalicoCase {
    /// The Kubernetes part of the world, for the Kubernetes-side helpers.
    pub fn kubernetes_world(&self) -> crate::reference::World {
        crate::reference::World {
            namespaces: self.world.namespaces.clone(),
            pods: self.world.pods.clone(),
            policies: self.world.k8s_policies.clone(),
            node_addrs: self.world.node_addrs.clone(),
        }
    }

    /// The picked flows between this world's addresses (same family, not to itself).
    pub fn flows(&self, picks: &[crate::generate::FlowPick], icmp: &[IcmpPick]) -> Vec<CalicoFlow> {
        use crate::{calico_reference::Packet, generate::protocol_number};
        use policy_agent::calico::resources::Protocol;
        let addrs = crate::generate::addresses(&self.kubernetes_world());
        let usable = |src: std::net::IpAddr, dst: std::net::IpAddr| {
            src != dst && src.is_ipv4() == dst.is_ipv4()
        };
        let mut flows = Vec::new();
        for (i, (src, dst, protocol, port)) in picks.iter().enumerate() {
            let (src, dst) = (*src.get(&addrs), *dst.get(&addrs));
            if usable(src, dst) {
                let number = protocol_number(protocol);
                // The source ports the generated rules' `source.ports` cut at, and a client's
                // ephemeral port, spread over the picks.
                let sport = SOURCE_PORTS[(i + usize::from(*port)) % SOURCE_PORTS.len()];
                flows.push(CalicoFlow {
                    src,
                    dst,
                    protocol: number,
                    sport,
                    key_port: *port,
                    model: Packet::new(src, dst, Protocol(number), sport, *port),
                });
            }
        }
        // Flows to and from the Services' endpoints at their slices' ports (random pairs
        // rarely land on one with its port): what `services` matches decide.
        for (i, slice) in self.world.endpoint_slices.iter().enumerate() {
            let Some(endpoint) = slice
                .endpoints
                .first()
                .and_then(|e| e.addresses.first())
                .and_then(|a| a.parse::<std::net::IpAddr>().ok())
            else {
                continue;
            };
            let (number, port) = slice
                .ports
                .iter()
                .flatten()
                .find_map(|p| {
                    let number = match p.protocol.as_deref() {
                        Some("UDP") => 17,
                        Some("SCTP") => 132,
                        _ => 6,
                    };
                    p.port
                        .and_then(|n| u16::try_from(n).ok())
                        .map(|n| (number, n))
                })
                .unwrap_or((6, 80));
            let peers: Vec<_> = addrs
                .iter()
                .copied()
                .filter(|a| usable(*a, endpoint))
                .collect();
            if peers.is_empty() {
                continue;
            }
            let peer = peers[(i * 7 + usize::from(port)) % peers.len()];
            let sport = SOURCE_PORTS[i % SOURCE_PORTS.len()];
            for (src, dst) in [(peer, endpoint), (endpoint, peer)] {
                flows.push(CalicoFlow {
                    src,
                    dst,
                    protocol: number,
                    sport,
                    key_port: port,
                    model: Packet::new(src, dst, Protocol(number), sport, port),
                });
            }
        }
        for (src, dst, kind, code) in icmp {
            let (src, dst) = (*src.get(&addrs), *dst.get(&addrs));
            if usable(src, dst) {
                let model = Packet::icmp(src, dst, *kind, *code);
                flows.push(CalicoFlow {
                    src,
                    dst,
                    protocol: model.protocol,
                    sport: 0,
                    key_port: u16::from(*kind) << 8 | u16::from(*code),
                    model,
                });
            }
        }
        flows
    }
}
