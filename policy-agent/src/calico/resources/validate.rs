//! Calico's validation rules, from raw YAML types to the checked types.
//!
//! The rules are libcalico-go's v3 validator's: names, tiers and their name prefixes, `types`
//! and its defaulting, the `doNotTrack`/`preDNAT`/`applyOnForward` combinations, protocols,
//! ICMP fields, CIDRs and their IP version, ports and the protocols that have them, and where
//! `global()` may appear. Every problem in a resource is reported, not only the first.

use std::{collections::BTreeMap, net::IpAddr};

use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{
    Action, DEFAULT_TIER, EndpointPort, EntityRule, FieldError, HostEndpoint, IcmpMatch, IpVersion,
    Kind, NetworkSet, Policy, PolicyTypes, PortMatch, Protocol, Rule, ServiceAccountMatch,
    ServiceMatch, Tier, TierAction, raw,
};
use crate::{
    calico::selector::{Selector, check_label_key},
    model::Labels,
};

/// Collects the errors of one resource.
#[derive(Default)]
struct Checker {
    errors: Vec<FieldError>,
}

/// Where `global()` may appear in a selector field.
#[derive(Clone, Copy, PartialEq, Eq)]
enum GlobalUse {
    /// Everywhere but a rule's `namespaceSelector`.
    Forbidden,
    /// A rule's `namespaceSelector`: `global()` on its own only.
    Alone,
}

impl Checker {
    fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
            position: None,
        });
    }

    fn finish<T>(self, value: T) -> Result<T, Vec<FieldError>> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(self.errors)
        }
    }

    /// A selector field; None when omitted or empty (Go's zero value, which Calico treats as
    /// absent), or when it does not parse (then the error is recorded).
    fn selector(&mut self, field: &str, text: Option<&str>, global: GlobalUse) -> Option<Selector> {
        let text = text.filter(|t| !t.is_empty())?;
        let selector = match Selector::parse(text) {
            Ok(selector) => selector,
            Err(e) => {
                self.errors.push(FieldError {
                    field: field.to_owned(),
                    message: e.to_string(),
                    position: Some(e.position),
                });
                return None;
            }
        };
        if uses_global(&selector) {
            match global {
                GlobalUse::Forbidden => self.error(
                    field,
                    "global() can only be used in a rule's namespaceSelector",
                ),
                GlobalUse::Alone if selector != Selector::Global => {
                    self.error(field, "global() cannot be combined with other selectors")
                }
                GlobalUse::Alone => {}
            }
        }
        Some(selector)
    }
}

fn uses_global(selector: &Selector) -> bool {
    match selector {
        Selector::Global => true,
        Selector::Not(inner) => uses_global(inner),
        Selector::And(operands) | Selector::Or(operands) => operands.iter().any(uses_global),
        _ => false,
    }
}

// ---- names ----

/// RFC 1123 label: lower-case alphanumeric and '-', alphanumeric at both ends, 63 at most.
fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// RFC 1123 subdomain: labels separated by '.', 253 at most.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

const SUBDOMAIN_RULE: &str =
    "must consist of lower-case alphanumeric characters, '-' or '.', alphanumeric at both ends";
const LABEL_RULE: &str = "must consist of lower-case alphanumeric characters or '-', alphanumeric at both ends, at \
     most 63";

fn required_name(c: &mut Checker, meta: &ObjectMeta) -> String {
    match meta.name.as_deref() {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => {
            c.error("metadata.name", "required");
            String::new()
        }
    }
}

fn subdomain_name(c: &mut Checker, meta: &ObjectMeta) -> String {
    let name = required_name(c, meta);
    if !name.is_empty() && !is_dns_subdomain(&name) {
        c.error("metadata.name", format!("'{name}' {SUBDOMAIN_RULE}"));
    }
    name
}

/// The namespace of a namespaced resource (`default` when omitted, as calicoctl does), or a
/// complaint when a global resource names one.
fn namespace(c: &mut Checker, meta: &ObjectMeta, kind: Kind) -> Option<String> {
    let given = meta.namespace.as_deref().filter(|ns| !ns.is_empty());
    if !kind.is_namespaced() {
        if given.is_some() {
            c.error("metadata.namespace", format!("{kind} is not namespaced"));
        }
        return None;
    }
    let ns = given.unwrap_or("default");
    if !is_dns_label(ns) {
        c.error("metadata.namespace", format!("'{ns}' {LABEL_RULE}"));
    }
    Some(ns.to_owned())
}

/// Checks a policy's name against its tier: in a tier other than `default` the name must be
/// `<tier>.<name>` (Calico v3); in `default`, `default.` may be written or left out.
fn policy_name(c: &mut Checker, meta: &ObjectMeta, tier: &str, kind: Kind) -> String {
    let name = required_name(c, meta);
    if name.is_empty() {
        return name;
    }
    if name.len() > 253 {
        c.error("metadata.name", "must be at most 253 characters");
        return name;
    }
    if crate::cluster_policy::is_reserved_name(&name) {
        c.error(
            "metadata.name",
            format!(
                "'{name}' is reserved: Calico names its translations of ClusterNetworkPolicies and AdminNetworkPolicies so"
            ),
        );
        return name;
    }
    let base = if tier == DEFAULT_TIER {
        let base = name.strip_prefix("default.").unwrap_or(&name);
        // Kubernetes NetworkPolicies show up in Calico as `knp.default.<name>`.
        match kind {
            Kind::NetworkPolicy => base.strip_prefix("knp.default.").unwrap_or(base),
            _ => base,
        }
    } else {
        match name
            .strip_prefix(tier)
            .and_then(|rest| rest.strip_prefix('.'))
        {
            Some(base) => base,
            None => {
                c.error(
                    "metadata.name",
                    format!(
                        "a policy in tier '{tier}' must be named '{tier}.<name>', not '{name}'"
                    ),
                );
                return name;
            }
        }
    };
    if !is_dns_label(base) {
        c.error(
            "metadata.name",
            format!("'{base}' (the name after the tier prefix) {LABEL_RULE}"),
        );
    }
    name
}

fn labels(c: &mut Checker, meta: &ObjectMeta) -> Labels {
    let labels: Labels = meta.labels.clone().unwrap_or_default();
    for (key, value) in &labels {
        if let Err(why) = check_label_key(key) {
            c.error(
                format!("metadata.labels['{key}']"),
                format!("invalid label key: {why}"),
            );
        }
        if key == "projectcalico.org/namespace" {
            c.error(
                format!("metadata.labels['{key}']"),
                "projectcalico.org/namespace is reserved for Calico",
            );
        }
        if !is_label_value(value) {
            c.error(
                format!("metadata.labels['{key}']"),
                format!(
                    "invalid label value '{value}': at most 63 characters, alphanumeric at both \
                     ends, with only '-', '_' and '.' inside"
                ),
            );
        }
    }
    labels
}

fn is_label_value(v: &str) -> bool {
    let b = v.as_bytes();
    b.is_empty()
        || (b.len() <= 63
            && b.first().is_some_and(u8::is_ascii_alphanumeric)
            && b.last().is_some_and(u8::is_ascii_alphanumeric)
            && b.iter()
                .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')))
}

fn order(c: &mut Checker, order: Option<f64>) -> Option<f64> {
    let order = order?;
    if !order.is_finite() {
        c.error("spec.order", "must be a finite number");
        return None;
    }
    Some(order)
}

// ---- policies ----

pub(super) fn global_network_policy(
    object: raw::Object<raw::GlobalNetworkPolicySpec>,
) -> Result<Policy, Vec<FieldError>> {
    policy(
        object.metadata,
        object.spec.unwrap_or_default(),
        Kind::GlobalNetworkPolicy,
    )
}

pub(super) fn network_policy(
    object: raw::Object<raw::NetworkPolicySpec>,
) -> Result<Policy, Vec<FieldError>> {
    let spec = object.spec.unwrap_or_default().into();
    policy(object.metadata, spec, Kind::NetworkPolicy)
}

fn policy(
    meta: ObjectMeta,
    spec: raw::GlobalNetworkPolicySpec,
    kind: Kind,
) -> Result<Policy, Vec<FieldError>> {
    let mut c = Checker::default();
    let tier = match spec.tier.as_deref().filter(|t| !t.is_empty()) {
        None => DEFAULT_TIER.to_owned(),
        Some(tier) => {
            if !is_dns_label(tier) {
                c.error("spec.tier", format!("'{tier}' {LABEL_RULE}"));
            }
            tier.to_owned()
        }
    };
    let name = policy_name(&mut c, &meta, &tier, kind);
    let namespace = namespace(&mut c, &meta, kind);
    let order = order(&mut c, spec.order);
    let selector = c
        .selector(
            "spec.selector",
            spec.selector.as_deref(),
            GlobalUse::Forbidden,
        )
        .unwrap_or_default();
    let namespace_selector = c.selector(
        "spec.namespaceSelector",
        spec.namespace_selector.as_deref(),
        GlobalUse::Forbidden,
    );
    let service_account_selector = c.selector(
        "spec.serviceAccountSelector",
        spec.service_account_selector.as_deref(),
        GlobalUse::Forbidden,
    );

    let raw_ingress = spec.ingress.unwrap_or_default();
    let raw_egress = spec.egress.unwrap_or_default();
    let types = match &spec.types {
        Some(types) if !types.is_empty() => policy_types(&mut c, types),
        // Calico's defaulting: Egress when there are egress rules, Ingress when there are
        // ingress rules or no rules at all.
        _ => PolicyTypes {
            ingress: !raw_ingress.is_empty() || raw_egress.is_empty(),
            egress: !raw_egress.is_empty(),
        },
    };

    let do_not_track = spec.do_not_track.unwrap_or(false);
    let pre_dnat = spec.pre_dnat.unwrap_or(false);
    let apply_on_forward = spec.apply_on_forward.unwrap_or(false);
    if do_not_track && pre_dnat {
        c.error("spec.preDNAT", "preDNAT and doNotTrack cannot both be true");
    }
    if pre_dnat && !raw_egress.is_empty() {
        c.error("spec.egress", "a preDNAT policy cannot have egress rules");
    }
    if pre_dnat
        && spec
            .types
            .as_ref()
            .is_some_and(|t| t.iter().any(|t| t == "Egress"))
    {
        c.error("spec.types", "a preDNAT policy cannot have the Egress type");
    }
    if (do_not_track || pre_dnat) && !apply_on_forward {
        c.error(
            "spec.applyOnForward",
            "must be true when preDNAT or doNotTrack is true",
        );
    }

    let ns = namespace.as_deref();
    let ingress = rules(&mut c, "spec.ingress", raw_ingress, false, ns);
    let egress = rules(&mut c, "spec.egress", raw_egress, true, ns);
    c.finish(Policy {
        name,
        namespace,
        tier,
        order,
        selector,
        namespace_selector,
        service_account_selector,
        types,
        ingress,
        egress,
        do_not_track,
        pre_dnat,
        apply_on_forward,
    })
}

fn policy_types(c: &mut Checker, types: &[String]) -> PolicyTypes {
    let mut out = PolicyTypes::default();
    for (i, t) in types.iter().enumerate() {
        let slot = match t.as_str() {
            "Ingress" => &mut out.ingress,
            "Egress" => &mut out.egress,
            other => {
                c.error(
                    format!("spec.types[{i}]"),
                    format!("'{other}' is not a policy type (Ingress or Egress)"),
                );
                continue;
            }
        };
        if *slot {
            c.error(
                format!("spec.types[{i}]"),
                format!("'{t}' is listed more than once"),
            );
        }
        *slot = true;
    }
    out
}

/// The rules of one direction (`egress`: `spec.egress`) of a policy in `policy_ns` (None for a
/// GlobalNetworkPolicy).
fn rules(
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

fn parse_protocol(c: &mut Checker, field: &str, raw: &raw::IntOrString) -> Option<Protocol> {
    let found = match raw {
        raw::IntOrString::Int(n) => u8::try_from(*n).ok().filter(|&n| n >= 1).map(Protocol),
        raw::IntOrString::String(s) => Protocol::from_name(s),
    };
    if found.is_none() {
        c.error(
            field,
            format!(
                "{raw} is not a protocol (TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or a number \
                 1-255)"
            ),
        );
    }
    found
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

/// One side of a rule. `services`: where a `services` match may appear, with the policy's
/// namespace (None for a GlobalNetworkPolicy), or why it may not.
fn entity_rule(
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

/// Network-set CIDRs: a CIDR, or an address meaning its host prefix.
fn set_nets(c: &mut Checker, field: &str, raw: Vec<String>) -> Vec<IpNet> {
    let mut nets = Vec::with_capacity(raw.len());
    for (i, text) in raw.iter().enumerate() {
        if let Ok(net) = text.parse::<IpNet>() {
            nets.push(net.trunc());
        } else if let Ok(ip) = text.parse::<IpAddr>() {
            nets.push(IpNet::from(ip));
        } else {
            c.error(
                format!("{field}[{i}]"),
                format!("'{text}' is not a CIDR or an IP address"),
            );
        }
    }
    nets
}

fn parse_ports(c: &mut Checker, field: &str, raw: Vec<raw::IntOrString>) -> Vec<PortMatch> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, port) in raw.iter().enumerate() {
        match port_match(port) {
            Ok(p) => out.push(p),
            Err(message) => c.error(format!("{field}[{i}]"), message),
        }
    }
    out
}

/// Calico's `numorstring.Port`: a number, `"min:max"`, a number in a string, or a port name.
fn port_match(raw: &raw::IntOrString) -> Result<PortMatch, String> {
    let number =
        |n: i64| u16::try_from(n).map_err(|_| format!("{n} is not a port number (0-65535)"));
    match raw {
        raw::IntOrString::Int(n) => {
            let n = number(*n)?;
            Ok(PortMatch::Range { first: n, last: n })
        }
        raw::IntOrString::String(s) => {
            let parse = |part: &str| {
                part.parse::<u16>()
                    .map_err(|_| format!("'{s}': '{part}' is not a port number (0-65535)"))
            };
            if let Some((first, last)) = s.split_once(':') {
                let (first, last) = (parse(first)?, parse(last)?);
                if first > last {
                    return Err(format!(
                        "'{s}': the range starts at {first}, after its end {last}"
                    ));
                }
                Ok(PortMatch::Range { first, last })
            } else if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() {
                let n = parse(s)?;
                Ok(PortMatch::Range { first: n, last: n })
            } else if is_port_name(s) {
                Ok(PortMatch::Named(s.clone()))
            } else {
                Err(format!(
                    "'{s}' is not a port, a range 'min:max' or a port name (at most 15 \
                     lower-case alphanumeric characters or '-', with a letter)"
                ))
            }
        }
    }
}

/// Kubernetes' IANA_SVC_NAME, which Calico uses for port names.
fn is_port_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 15
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && b.iter().any(u8::is_ascii_lowercase)
        && b.first() != Some(&b'-')
        && b.last() != Some(&b'-')
        && !s.contains("--")
}

// ---- tiers, network sets, host endpoints ----

pub(super) fn tier(object: raw::Object<raw::TierSpec>) -> Result<Tier, Vec<FieldError>> {
    let mut c = Checker::default();
    let name = required_name(&mut c, &object.metadata);
    // The name becomes the prefix of its policies' names, so it cannot contain a '.'.
    if !name.is_empty() && !is_dns_label(&name) {
        c.error("metadata.name", format!("'{name}' {LABEL_RULE}"));
    }
    namespace(&mut c, &object.metadata, Kind::Tier);
    let spec = object.spec.unwrap_or_default();
    let order = order(&mut c, spec.order);
    let default_action = match spec.default_action.as_deref() {
        None | Some("Deny") => TierAction::Deny,
        Some("Pass") => TierAction::Pass,
        Some(other) => {
            c.error(
                "spec.defaultAction",
                format!("'{other}' is not a tier default action (Deny or Pass)"),
            );
            TierAction::Deny
        }
    };
    // Calico creates the tiers of administrators' policy itself, with fixed values that its
    // v3 API refuses to change; one declared here may only repeat them.
    let builtin = match name.as_str() {
        crate::cluster_policy::ADMIN_TIER => Some(crate::cluster_policy::ADMIN_TIER_ORDER),
        crate::cluster_policy::BASELINE_TIER => Some(crate::cluster_policy::BASELINE_TIER_ORDER),
        _ => None,
    };
    let (order, default_action) = match builtin {
        None => (order, default_action),
        Some(fixed) => {
            if order.is_some_and(|o| o != fixed) {
                c.error(
                    "spec.order",
                    format!("the built-in tier '{name}' has order {fixed} and no other"),
                );
            }
            if spec.default_action.as_deref().is_some_and(|a| a != "Pass") {
                c.error(
                    "spec.defaultAction",
                    format!("the built-in tier '{name}' has default action Pass and no other"),
                );
            }
            (Some(fixed), TierAction::Pass)
        }
    };
    c.finish(Tier {
        name,
        order,
        default_action,
    })
}

pub(super) fn network_set(
    object: raw::Object<raw::NetworkSetSpec>,
    kind: Kind,
) -> Result<NetworkSet, Vec<FieldError>> {
    let mut c = Checker::default();
    let name = subdomain_name(&mut c, &object.metadata);
    let namespace = namespace(&mut c, &object.metadata, kind);
    let labels = labels(&mut c, &object.metadata);
    let spec = object.spec.unwrap_or_default();
    let nets = set_nets(&mut c, "spec.nets", spec.nets.unwrap_or_default());
    c.finish(NetworkSet {
        name,
        namespace,
        labels,
        nets,
    })
}

pub(super) fn host_endpoint(
    object: raw::Object<raw::HostEndpointSpec>,
) -> Result<HostEndpoint, Vec<FieldError>> {
    let mut c = Checker::default();
    let name = subdomain_name(&mut c, &object.metadata);
    namespace(&mut c, &object.metadata, Kind::HostEndpoint);
    let labels = labels(&mut c, &object.metadata);
    let spec = object.spec.unwrap_or_default();

    let node = spec.node.clone().unwrap_or_default();
    if node.is_empty() {
        c.error("spec.node", "required");
    }
    let interface_name = spec.interface_name.clone().filter(|i| !i.is_empty());
    if let Some(iface) = &interface_name {
        let ok = iface == "*"
            || (iface.len() <= 15
                && iface
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')));
        if !ok {
            c.error(
                "spec.interfaceName",
                format!(
                    "'{iface}' is not an interface name ('*', or at most 15 characters of \
                     alphanumerics, '_', '.' and '-')"
                ),
            );
        }
    }
    let mut expected_ips = Vec::new();
    for (i, text) in spec.expected_ips.unwrap_or_default().iter().enumerate() {
        match text.parse::<IpAddr>() {
            Ok(ip) => expected_ips.push(ip),
            Err(_) => c.error(
                format!("spec.expectedIPs[{i}]"),
                format!("'{text}' is not an IP address"),
            ),
        }
    }
    if interface_name.is_none() && expected_ips.is_empty() {
        c.error(
            "spec.interfaceName",
            "a host endpoint needs an interfaceName or expectedIPs",
        );
    }
    let mut ports = Vec::new();
    for (i, port) in spec.ports.unwrap_or_default().iter().enumerate() {
        let field = format!("spec.ports[{i}]");
        let name = port.name.clone().unwrap_or_default();
        if !is_port_name(&name) {
            c.error(
                format!("{field}.name"),
                format!(
                    "'{name}' is not a port name (at most 15 lower-case alphanumeric characters \
                     or '-', with a letter)"
                ),
            );
        }
        let number = match port.port.map(u16::try_from) {
            Some(Ok(n)) if n > 0 => Some(n),
            Some(_) => {
                c.error(format!("{field}.port"), "must be a port number 1-65535");
                None
            }
            None => {
                c.error(format!("{field}.port"), "required");
                None
            }
        };
        let protocol = match &port.protocol {
            Some(p) => parse_protocol(&mut c, &format!("{field}.protocol"), p),
            None => {
                c.error(format!("{field}.protocol"), "required (TCP, UDP or SCTP)");
                None
            }
        };
        if let Some(p) = protocol
            && !matches!(p, Protocol::TCP | Protocol::UDP | Protocol::SCTP)
        {
            c.error(format!("{field}.protocol"), "must be TCP, UDP or SCTP");
        }
        if let (Some(port), Some(protocol)) = (number, protocol) {
            ports.push(EndpointPort {
                name,
                port,
                protocol,
            });
        }
    }
    c.finish(HostEndpoint {
        name,
        labels,
        node,
        interface_name,
        expected_ips,
        ports,
        profiles: spec.profiles.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(text: &str) -> Result<PortMatch, String> {
        port_match(&raw::IntOrString::String(text.to_owned()))
    }

    #[test]
    fn ports_numbers_ranges_and_names() {
        assert_eq!(
            port("80"),
            Ok(PortMatch::Range {
                first: 80,
                last: 80
            })
        );
        assert_eq!(
            port("80:90"),
            Ok(PortMatch::Range {
                first: 80,
                last: 90
            })
        );
        assert_eq!(port("http"), Ok(PortMatch::Named("http".to_owned())));
        assert_eq!(
            port("90:80"),
            Err("'90:80': the range starts at 90, after its end 80".to_owned())
        );
        assert!(port("80:").is_err());
        assert!(port("70000").is_err());
        assert!(port("Http").is_err());
        assert!(port("a--b").is_err());
        assert_eq!(
            port_match(&raw::IntOrString::Int(443)),
            Ok(PortMatch::Range {
                first: 443,
                last: 443
            })
        );
        assert!(port_match(&raw::IntOrString::Int(-1)).is_err());
    }

    #[test]
    fn dns_names() {
        assert!(is_dns_label("a-1"));
        assert!(!is_dns_label("a.b"));
        assert!(!is_dns_label("-a"));
        assert!(is_dns_subdomain("a.b-c"));
        assert!(!is_dns_subdomain("a..b"));
        assert!(!is_dns_subdomain("A"));
    }
}
