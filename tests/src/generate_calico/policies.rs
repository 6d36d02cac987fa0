//! Calico policies: tiers, selectors, entity matches (nets, ports, services, ICMP), rules of
//! every action, and GlobalNetworkPolicies and NetworkPolicies at random orders.

use proptest::{prelude::*, sample::select};
use serde_json::{Value, json};

use crate::generate::NAMESPACES;

pub(super) const TIERS: [&str; 3] = ["default", "security", "platform"];

/// Tiers Calico policies are put in: the declared ones and, seldom, Calico's built-in tiers
/// of administrators' policy (which are never declared with other values). Seldom, because
/// those end in Pass where an undeclared tier ends in Deny: more would make denials rare.
pub(super) fn policy_tier() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        12 => select(TIERS.to_vec()),
        1 => select(vec!["kube-admin", "kube-baseline"]),
    ]
}

pub(super) fn tier() -> impl Strategy<Value = Option<Value>> {
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

pub(super) fn selector() -> impl Strategy<Value = &'static str> {
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

pub(super) fn namespace_selector() -> impl Strategy<Value = &'static str> {
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

pub(super) fn nets(v6: bool) -> impl Strategy<Value = Vec<&'static str>> {
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
pub(super) const SOURCE_PORTS: [u16; 10] = [40_000, 80, 81, 53, 90, 91, 999, 1000, 8080, 9001];

/// Which ports one side of a rule may match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ports {
    None,
    /// Numbers, ranges and names (destination ports, and an egress rule's own source ports).
    Any,
    /// Numbers and ranges: an ingress rule's source ports (the peer's; Palisade refuses a
    /// peer's port names).
    Numbers,
}

/// The Services rules match (`services`) and EndpointSlices are generated for.
pub(super) const SERVICES: [&str; 2] = ["svc-a", "svc-b"];

/// A `services` match: a Service, with or without its namespace (a GlobalNetworkPolicy's is
/// filled in by [`policy`]).
pub(super) fn service_match() -> impl Strategy<Value = Value> {
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
pub(super) fn entity(
    ports: Ports,
    destination: bool,
    v6: bool,
    peer: bool,
) -> impl Strategy<Value = Value> {
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
pub(super) fn icmp_match() -> impl Strategy<Value = Value> {
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
pub(super) fn rule(egress: bool) -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => any_rule(egress),
        2 => source_port_rule(egress),
        1 => service_rule(egress),
    ]
}

/// Allow, Deny or Pass by a `services` match on the peer side alone (and sometimes a
/// protocol, or an ingress rule's source ports), so that Services often decide.
pub(super) fn service_rule(egress: bool) -> impl Strategy<Value = Value> {
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
pub(super) fn source_port_rule(egress: bool) -> impl Strategy<Value = Value> {
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
pub(super) fn any_rule(egress: bool) -> impl Strategy<Value = Value> {
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

pub(super) fn policy(index: usize) -> impl Strategy<Value = Value> {
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
pub(super) fn name_service_namespaces(spec: &mut Value) {
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
