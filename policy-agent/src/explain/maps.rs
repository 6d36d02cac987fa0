//! Human-readable rendering of compiled map contents: what `policy-agent compile` prints.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    net::Ipv6Addr,
};

use policy_common::{
    endpoint::{MAX_TABLES, PolicyList, lookup},
    identity,
    rule::{PREFIX_ANY_PORT, PREFIX_ANY_PROTOCOL, action},
};

use crate::compiler::{Compiled, PROFILE_RULE_REF, PolicyDirection, TIER_DEFAULT_RULE};

fn address(addr: [u8; 16], prefix_len: Option<u32>) -> String {
    let v6 = Ipv6Addr::from(addr);
    match (v6.to_ipv4_mapped(), prefix_len) {
        (Some(v4), Some(p)) if p >= 96 => format!("{v4}/{}", p - 96),
        (Some(v4), None) => v4.to_string(),
        (_, Some(p)) => format!("{v6}/{p}"),
        (_, None) => v6.to_string(),
    }
}

fn identity_name(id: u32) -> String {
    match id {
        identity::ANY => "any".to_owned(),
        identity::HOST => "host".to_owned(),
        identity::WORLD => "world".to_owned(),
        identity::SOURCE_PORTS => "source-ports".to_owned(),
        other => other.to_string(),
    }
}

fn lookups(bits: u32) -> String {
    let names: Vec<&str> = [
        (lookup::ORDERED, "ordered"),
        (lookup::POD, "pod"),
        (lookup::CIDR, "cidr"),
        (lookup::ANY, "any"),
        (lookup::SOURCE_PORTS, "source-ports"),
    ]
    .into_iter()
    .filter(|(bit, _)| bits & bit != 0)
    .map(|(_, name)| name)
    .collect();
    names.join("+")
}

pub fn render(compiled: &Compiled) -> String {
    let mut out = String::new();
    let maps = &compiled.maps;
    // Which policies (and direction) each table stands for, from the endpoints using it: the
    // policies of a slot in order (several for a merged slot), and the direction.
    let mut used_by: BTreeMap<u32, BTreeSet<(Vec<String>, PolicyDirection)>> = BTreeMap::new();

    let _ = writeln!(out, "endpoints ({}):", maps.endpoints.len());
    for (key, value) in &maps.endpoints {
        let _ = writeln!(out, "  {}", address(key.addr, None));
        let explanation = compiled.explanations.get(key);
        for (direction, list) in [
            (PolicyDirection::Ingress, &value.ingress),
            (PolicyDirection::Egress, &value.egress),
        ] {
            let names = explanation.map(|e| match direction {
                PolicyDirection::Ingress => &e.ingress,
                PolicyDirection::Egress => &e.egress,
            });
            let _ = writeln!(
                out,
                "    {direction:<7} {}",
                describe_list(list, direction, names, &mut used_by)
            );
        }
    }

    let _ = writeln!(out, "identities ({}):", maps.identities.len());
    for (key, value) in &maps.identities {
        let _ = writeln!(
            out,
            "  {:<40} pod identity {:<6} cidr identity {}",
            address(key.data.addr, Some(key.prefix_len)),
            identity_name(value.pod_identity),
            identity_name(value.cidr_identity)
        );
    }

    let _ = writeln!(out, "tables ({}):", used_by.len());
    for (table, users) in &used_by {
        let users: Vec<String> = users
            .iter()
            .map(|(policies, direction)| format!("{} {direction}", policies.join(" + ")))
            .collect();
        let _ = writeln!(out, "  table {table:<4} {}", users.join("; "));
    }

    let _ = writeln!(out, "rules ({}):", maps.rules.len());
    for (key, value) in &maps.rules {
        let k = key.data;
        let ports = if key.prefix_len <= PREFIX_ANY_PROTOCOL {
            "any protocol".to_owned()
        } else if key.prefix_len <= PREFIX_ANY_PORT {
            format!("proto {} any port", k.protocol)
        } else {
            let bits = key.prefix_len - PREFIX_ANY_PORT;
            let first = u16::from_be(k.port_be);
            let last = u32::from(first) + (1u32 << (16 - bits)) - 1;
            if bits == 16 {
                format!("proto {} port {first}", k.protocol)
            } else {
                format!("proto {} ports {first}-{last}", k.protocol)
            }
        };
        // A source-port class entry: the class of the source ports it covers.
        let source = if k.source_class != 0 {
            format!("source class {} ", k.source_class)
        } else {
            String::new()
        };
        let ports = format!("{source}{ports}");
        if value.action == action::SOURCE_CLASS {
            let _ = writeln!(
                out,
                "  table {:<4} source ports of {:<28} class {}",
                k.table,
                ports.replace("port", "source port"),
                value.rule_ref
            );
            continue;
        }
        let verdict = match value.action {
            action::ALLOW => "allow",
            action::DENY => "deny",
            _ => "?",
        };
        // The policy rule behind the entry, for every policy using the table.
        let member = (value.rule_ref >> 16) as usize;
        let rule = value.rule_ref & 0xffff;
        let why: Vec<String> = used_by
            .get(&k.table)
            .into_iter()
            .flatten()
            .filter_map(|(policies, direction)| {
                // Ordered tables: the profile's allow, and a tier's default action.
                if value.rule_ref == PROFILE_RULE_REF {
                    return Some("profile (no tier decided)".to_owned());
                }
                policies.get(member).map(|policy| {
                    if rule == TIER_DEFAULT_RULE {
                        format!("default action of the tier of {policy} ({direction})")
                    } else {
                        format!("{policy} {direction}[{rule}]")
                    }
                })
            })
            .collect();
        let why = why.join("; ");
        let _ = writeln!(
            out,
            "  table {:<4} peer {:<6} {:<28} {verdict:<5} {why}",
            k.table,
            identity_name(k.peer_identity),
            ports
        );
    }
    out
}

fn describe_list(
    list: &PolicyList,
    direction: PolicyDirection,
    names: Option<&Vec<std::sync::Arc<Vec<crate::compiler::PolicyName>>>>,
    used_by: &mut BTreeMap<u32, BTreeSet<(Vec<String>, PolicyDirection)>>,
) -> String {
    if list.isolated == 0 {
        return "not isolated (no policy selects it)".to_owned();
    }
    let count = (list.count as usize).min(MAX_TABLES);
    if count == 0 {
        return "isolated, nothing allowed".to_owned();
    }
    let mut parts = Vec::new();
    for (slot, table) in list.tables[..count].iter().enumerate() {
        let policies: Vec<String> = names
            .and_then(|n| n.get(slot))
            .map(|p| p.iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        used_by
            .entry(table.table)
            .or_default()
            .insert((policies.clone(), direction));
        parts.push(format!(
            "table {} [{}] ({})",
            table.table,
            lookups(table.lookups),
            policies.join(" + ")
        ));
    }
    format!("isolated: {}", parts.join(", "))
}
