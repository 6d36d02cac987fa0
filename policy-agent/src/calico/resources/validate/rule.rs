//! One rule of a policy: action, IP version, protocols, ICMP fields, and the checks that
//! tie its two sides together (ports need a port protocol, CIDRs one IP version, a
//! destination Service its own ports); each side is [`super::entity`]'s.

use std::collections::BTreeMap;

use ipnet::IpNet;

use super::{checker::Checker, entity::entity_rule, fields::parse_protocol};
use crate::calico::resources::{Action, IcmpMatch, IpVersion, Protocol, Rule, raw};

/// The rules of one direction (`egress`: `spec.egress`) of a policy in `policy_ns` (None for a
/// GlobalNetworkPolicy).
pub(super) fn rules(
    c: &mut Checker,
    field: &str,
    raw: Vec<raw::Rule>,
    egress: bool,
    policy_ns: Option<&str>,
) -> Vec<Rule> {
    raw.into_iter()
        .enumerate()
        .filter_map(|(i, r)| rule(c, &format!("{field}[{i}]"), r, egress, policy_ns))
        .collect()
}

fn rule(
    c: &mut Checker,
    field: &str,
    raw: raw::Rule,
    egress: bool,
    policy_ns: Option<&str>,
) -> Option<Rule> {
    let before = c.errors.len();
    let action = match raw.action.as_deref() {
        Some("Allow") => Some(Action::Allow),
        Some("Deny") => Some(Action::Deny),
        Some("Log") => Some(Action::Log),
        Some("Pass") => Some(Action::Pass),
        Some(other) => {
            c.error(
                format!("{field}.action"),
                format!("'{other}' is not an action (Allow, Deny, Log or Pass)"),
            );
            None
        }
        None => {
            c.error(
                format!("{field}.action"),
                "required (Allow, Deny, Log or Pass)",
            );
            None
        }
    };
    let ip_version = match raw.ip_version {
        None => None,
        Some(4) => Some(IpVersion::V4),
        Some(6) => Some(IpVersion::V6),
        Some(other) => {
            c.error(
                format!("{field}.ipVersion"),
                format!("{other} is not 4 or 6"),
            );
            None
        }
    };
    let protocol = raw
        .protocol
        .as_ref()
        .and_then(|p| parse_protocol(c, &format!("{field}.protocol"), p));
    let not_protocol = raw
        .not_protocol
        .as_ref()
        .and_then(|p| parse_protocol(c, &format!("{field}.notProtocol"), p));
    let icmp = raw
        .icmp
        .as_ref()
        .map(|i| icmp_fields(c, &format!("{field}.icmp"), i));
    let not_icmp = raw
        .not_icmp
        .as_ref()
        .map(|i| icmp_fields(c, &format!("{field}.notICMP"), i));
    if icmp.is_some() && !matches!(protocol, Some(Protocol::ICMP | Protocol::ICMPV6)) {
        c.error(
            format!("{field}.icmp"),
            "rules that match ICMP fields must set protocol to ICMP or ICMPv6",
        );
    }
    for (p, want, name) in [
        (
            Protocol::ICMP,
            IpVersion::V4,
            "protocol ICMP needs ipVersion 4",
        ),
        (
            Protocol::ICMPV6,
            IpVersion::V6,
            "protocol ICMPv6 needs ipVersion 6",
        ),
    ] {
        if (protocol == Some(p) || not_protocol == Some(p)) && ip_version.is_some_and(|v| v != want)
        {
            c.error(format!("{field}.ipVersion"), name);
        }
    }
    if raw.http.is_some() {
        c.error(
            format!("{field}.http"),
            "HTTP matches need an application-layer proxy, which Palisade does not have",
        );
    }

    // Services only on the peer side (libcalico-go's policy spec validators): an ingress
    // rule's source, an egress rule's destination.
    let source = entity_rule(
        c,
        &format!("{field}.source"),
        raw.source.unwrap_or_default(),
        (!egress)
            .then_some(policy_ns)
            .ok_or("not allowed in an egress rule's source"),
    );
    let destination = entity_rule(
        c,
        &format!("{field}.destination"),
        raw.destination.unwrap_or_default(),
        egress
            .then_some(policy_ns)
            .ok_or("not allowed in an ingress rule's destination"),
    );
    // A destination Service brings its own ports (Calico's Rule CEL rule).
    if destination.services.is_some() {
        for (list, name) in [
            (&destination.ports, "ports"),
            (&destination.not_ports, "notPorts"),
        ] {
            if !list.is_empty() {
                c.error(
                    format!("{field}.destination.{name}"),
                    "ports and notPorts cannot be specified with services (the Service's \
                     endpoint ports are matched)",
                );
            }
        }
    }

    if !protocol.is_some_and(Protocol::has_ports) {
        for (side, rule) in [("source", &source), ("destination", &destination)] {
            for (list, name) in [(&rule.ports, "ports"), (&rule.not_ports, "notPorts")] {
                if !list.is_empty() {
                    c.error(
                        format!("{field}.{side}.{name}"),
                        "rules that match ports must set protocol to TCP, UDP, SCTP or UDPLite",
                    );
                }
            }
        }
    }

    // One rule is either IPv4 or IPv6: its CIDRs must agree with each other and ipVersion.
    let mut seen: Option<(IpVersion, String)> = None;
    for (side, rule) in [("source", &source), ("destination", &destination)] {
        for (list, name) in [(&rule.nets, "nets"), (&rule.not_nets, "notNets")] {
            let here = format!("{field}.{side}.{name}");
            for net in list {
                let version = match net {
                    IpNet::V4(_) => IpVersion::V4,
                    IpNet::V6(_) => IpVersion::V6,
                };
                if ip_version.is_some_and(|v| v != version) {
                    c.error(&here, format!("{net} does not match the rule's ipVersion"));
                } else if let Some((first, where_first)) = &seen
                    && *first != version
                {
                    c.error(
                        &here,
                        format!("{net}: the rule mixes IPv4 and IPv6 CIDRs (see {where_first})"),
                    );
                } else if seen.is_none() {
                    seen = Some((version, here.clone()));
                }
            }
        }
    }

    let annotations: BTreeMap<String, String> =
        raw.metadata.and_then(|m| m.annotations).unwrap_or_default();
    if c.errors.len() > before {
        return None;
    }
    Some(Rule {
        action: action?,
        ip_version,
        protocol,
        not_protocol,
        icmp,
        not_icmp,
        source,
        destination,
        annotations,
    })
}

fn icmp_fields(c: &mut Checker, field: &str, raw: &raw::IcmpFields) -> IcmpMatch {
    let icmp_type = raw.icmp_type.and_then(|t| match u8::try_from(t) {
        Ok(t) if t <= 254 => Some(t),
        _ => {
            c.error(
                format!("{field}.type"),
                format!("{t} is not an ICMP type (0-254)"),
            );
            None
        }
    });
    let code = raw.code.and_then(|code| match u8::try_from(code) {
        Ok(code) => Some(code),
        Err(_) => {
            c.error(
                format!("{field}.code"),
                format!("{code} is not an ICMP code (0-255)"),
            );
            None
        }
    });
    if raw.code.is_some() && raw.icmp_type.is_none() {
        c.error(format!("{field}.code"), "an ICMP code needs an ICMP type");
    }
    IcmpMatch { icmp_type, code }
}
