//! Names and metadata: DNS labels and subdomains, a policy's name against its tier, the
//! namespace of a namespaced resource, and labels.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::checker::Checker;
use crate::{
    calico::{
        resources::{DEFAULT_TIER, Kind},
        selector::check_label_key,
    },
    model::Labels,
};

/// RFC 1123 label: lower-case alphanumeric and '-', alphanumeric at both ends, 63 at most.
pub(super) fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// RFC 1123 subdomain: labels separated by '.', 253 at most.
pub(super) fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

pub(super) const SUBDOMAIN_RULE: &str =
    "must consist of lower-case alphanumeric characters, '-' or '.', alphanumeric at both ends";
pub(super) const LABEL_RULE: &str = "must consist of lower-case alphanumeric characters or '-', alphanumeric at both ends, at \
     most 63";

pub(super) fn required_name(c: &mut Checker, meta: &ObjectMeta) -> String {
    match meta.name.as_deref() {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => {
            c.error("metadata.name", "required");
            String::new()
        }
    }
}

pub(super) fn subdomain_name(c: &mut Checker, meta: &ObjectMeta) -> String {
    let name = required_name(c, meta);
    if !name.is_empty() && !is_dns_subdomain(&name) {
        c.error("metadata.name", format!("'{name}' {SUBDOMAIN_RULE}"));
    }
    name
}

/// The namespace of a namespaced resource (`default` when omitted, as calicoctl does), or a
/// complaint when a global resource names one.
pub(super) fn namespace(c: &mut Checker, meta: &ObjectMeta, kind: Kind) -> Option<String> {
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
pub(super) fn policy_name(c: &mut Checker, meta: &ObjectMeta, tier: &str, kind: Kind) -> String {
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

pub(super) fn labels(c: &mut Checker, meta: &ObjectMeta) -> Labels {
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

#[cfg(test)]
mod tests {
    use super::*;

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
