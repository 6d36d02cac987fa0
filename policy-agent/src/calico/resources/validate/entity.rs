//! One side of a rule (`source`, `destination`): CIDRs, selectors, ports, service accounts,
//! and `services` with Calico's restrictions on it.

use ipnet::IpNet;

use super::{
    checker::{Checker, GlobalUse},
    fields::parse_ports,
    names::{SUBDOMAIN_RULE, is_dns_subdomain},
};
use crate::calico::resources::{EntityRule, ServiceAccountMatch, ServiceMatch, raw};

/// One side of a rule. `services`: where a `services` match may appear, with the policy's
/// namespace (None for a GlobalNetworkPolicy), or why it may not.
pub(super) fn entity_rule(
    c: &mut Checker,
    field: &str,
    raw: raw::EntityRule,
    services: Result<Option<&str>, &str>,
) -> EntityRule {
    let services = raw
        .services
        .as_ref()
        .and_then(|m| service_match(c, field, m, &raw, services));
    let nets = rule_nets(c, &format!("{field}.nets"), raw.nets.unwrap_or_default());
    let not_nets = rule_nets(
        c,
        &format!("{field}.notNets"),
        raw.not_nets.unwrap_or_default(),
    );
    let selector = c.selector(
        &format!("{field}.selector"),
        raw.selector.as_deref(),
        GlobalUse::Forbidden,
    );
    let not_selector = c.selector(
        &format!("{field}.notSelector"),
        raw.not_selector.as_deref(),
        GlobalUse::Forbidden,
    );
    let namespace_selector = c.selector(
        &format!("{field}.namespaceSelector"),
        raw.namespace_selector.as_deref(),
        GlobalUse::Alone,
    );
    let ports = parse_ports(c, &format!("{field}.ports"), raw.ports.unwrap_or_default());
    let not_ports = parse_ports(
        c,
        &format!("{field}.notPorts"),
        raw.not_ports.unwrap_or_default(),
    );
    let service_accounts = raw.service_accounts.map(|sa| ServiceAccountMatch {
        names: sa.names.unwrap_or_default(),
        selector: c.selector(
            &format!("{field}.serviceAccounts.selector"),
            sa.selector.as_deref(),
            GlobalUse::Forbidden,
        ),
    });
    EntityRule {
        nets,
        not_nets,
        selector,
        not_selector,
        namespace_selector,
        ports,
        not_ports,
        service_accounts,
        services,
    }
}

/// `services`, with Calico's restrictions: a name, a namespace in a GlobalNetworkPolicy
/// (defaulted to the policy's in a NetworkPolicy), and no other address match on the same side
/// (the EntityRule CEL rules of Calico's v3 API).
fn service_match(
    c: &mut Checker,
    field: &str,
    m: &raw::ServiceMatch,
    side: &raw::EntityRule,
    allowed: Result<Option<&str>, &str>,
) -> Option<ServiceMatch> {
    let before = c.errors.len();
    let policy_ns = match allowed {
        Ok(policy_ns) => policy_ns,
        Err(why) => {
            c.error(format!("{field}.services"), why);
            None
        }
    };
    let name = m.name.clone().unwrap_or_default();
    if name.is_empty() {
        c.error(
            format!("{field}.services.name"),
            "required: services must specify a service name",
        );
    } else if !is_dns_subdomain(&name) {
        c.error(
            format!("{field}.services.name"),
            format!("'{name}' {SUBDOMAIN_RULE}"),
        );
    }
    let namespace = match m.namespace.as_deref().filter(|ns| !ns.is_empty()) {
        Some(ns) => {
            if !is_dns_subdomain(ns) {
                c.error(
                    format!("{field}.services.namespace"),
                    format!("'{ns}' {SUBDOMAIN_RULE}"),
                );
            }
            ns.to_owned()
        }
        None => match policy_ns {
            Some(ns) => ns.to_owned(),
            None => {
                if allowed.is_ok() {
                    c.error(
                        format!("{field}.services.namespace"),
                        "must specify a namespace (a GlobalNetworkPolicy has none of its own)",
                    );
                }
                String::new()
            }
        },
    };
    let set = |text: &Option<String>| text.as_deref().is_some_and(|t| !t.is_empty());
    let listed = |list: &Option<Vec<String>>| list.as_ref().is_some_and(|l| !l.is_empty());
    let conflicts = [
        ("selector", set(&side.selector)),
        ("notSelector", set(&side.not_selector)),
        ("namespaceSelector", set(&side.namespace_selector)),
        ("nets", listed(&side.nets)),
        ("notNets", listed(&side.not_nets)),
        ("serviceAccounts", side.service_accounts.is_some()),
    ];
    for (other, present) in conflicts {
        if present {
            c.error(
                format!("{field}.{other}"),
                "cannot be specified with services on the same side of a rule",
            );
        }
    }
    (c.errors.len() == before).then_some(ServiceMatch { name, namespace })
}

/// Rule CIDRs: Calico's rule validator wants a CIDR (`10.0.0.1` alone is refused there,
/// unlike in network sets). Host bits are cleared.
fn rule_nets(c: &mut Checker, field: &str, raw: Vec<String>) -> Vec<IpNet> {
    let mut nets = Vec::with_capacity(raw.len());
    for (i, text) in raw.iter().enumerate() {
        match text.parse::<IpNet>() {
            Ok(net) => nets.push(net.trunc()),
            Err(_) => c.error(format!("{field}[{i}]"), format!("'{text}' is not a CIDR")),
        }
    }
    nets
}
