//! Human-readable rendering of compiled map contents: what `policy-agent compile` prints.

use std::{fmt::Write as _, net::Ipv6Addr};

use policy_common::{
    identity,
    rule::{PREFIX_ANY_PORT, PREFIX_ANY_PROTOCOL, action},
};

use crate::compiler::Compiled;

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
        other => other.to_string(),
    }
}

pub fn render(compiled: &Compiled) -> String {
    let mut out = String::new();
    let maps = &compiled.maps;
    let _ = writeln!(out, "endpoints ({}):", maps.endpoints.len());
    for (key, value) in &maps.endpoints {
        let _ = writeln!(
            out,
            "  {:<40} ingress policy {:<4} egress policy {}",
            address(key.addr, None),
            value.ingress_policy,
            value.egress_policy
        );
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
        let verdict = match value.action {
            action::ALLOW => "allow",
            action::DENY => "deny",
            _ => "?",
        };
        let why = compiled
            .explanations
            .get(value.rule_ref as usize)
            .map(String::as_str)
            .unwrap_or("");
        let _ = writeln!(
            out,
            "  policy {:<4} peer {:<6} {:<28} {verdict:<5} {why}",
            k.policy,
            identity_name(k.peer_identity),
            ports
        );
    }
    out
}
