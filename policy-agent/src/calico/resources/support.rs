//! What Palisade's datapath can enforce of a valid Calico resource.
//!
//! Calico's validation ([`super::validate`]) accepts some fields that Palisade's maps cannot
//! express exactly. Enforcing such a rule loosely would allow more (for a Deny) or less (for
//! an Allow) than it says, so a resource using one is rejected with the field named, exactly
//! like an invalid one: the version accepted before stays in force and nothing else is
//! disturbed. The datastores apply this after validation; the reference model does not, as
//! it describes Calico, not Palisade.

use super::{CalicoResource, FieldError, Policy, Rule};

/// Every field of `resource` that Palisade cannot enforce.
pub fn unsupported(resource: &CalicoResource) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let CalicoResource::GlobalNetworkPolicy(policy) | CalicoResource::NetworkPolicy(policy) =
        resource
    {
        policy_fields(policy, &mut errors);
    }
    errors
}

fn policy_fields(policy: &Policy, errors: &mut Vec<FieldError>) {
    let directions = [("ingress", &policy.ingress), ("egress", &policy.egress)];
    for (direction, rules) in directions {
        for (index, rule) in rules.iter().enumerate() {
            rule_fields(&format!("spec.{direction}[{index}]"), rule, errors);
        }
    }
}

fn rule_fields(path: &str, rule: &Rule, errors: &mut Vec<FieldError>) {
    let mut reject = |field: &str, message: &str| {
        errors.push(FieldError {
            field: format!("{path}.{field}"),
            message: message.to_owned(),
            position: None,
        });
    };
    // Rule entries are keyed by destination port only (one lookup per packet).
    const SOURCE_PORTS: &str = "not supported by Palisade: rules match destination ports only";
    if !rule.source.ports.is_empty() {
        reject("source.ports", SOURCE_PORTS);
    }
    if !rule.source.not_ports.is_empty() {
        reject("source.notPorts", SOURCE_PORTS);
    }
}
