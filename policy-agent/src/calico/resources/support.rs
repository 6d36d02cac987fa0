//! What Palisade's datapath can enforce of a valid Calico resource.
//!
//! Calico's validation ([`super::validate`]) accepts some fields that Palisade's maps cannot
//! express exactly. Enforcing such a rule loosely would allow more (for a Deny) or less (for
//! an Allow) than it says, so a resource using one is rejected with the field named, exactly
//! like an invalid one: the version accepted before stays in force and nothing else is
//! disturbed. The datastores apply this after validation; the reference model does not, as
//! it describes Calico, not Palisade.

use super::{CalicoResource, FieldError, Policy, PortMatch, Rule};

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
    for (index, rule) in policy.ingress.iter().enumerate() {
        ingress_rule_fields(&format!("spec.ingress[{index}]"), rule, errors);
    }
}

fn ingress_rule_fields(path: &str, rule: &Rule, errors: &mut Vec<FieldError>) {
    // An ingress rule's source ports are the peer's. Source-port classes are per table,
    // before the peer is known, so a port name (whose number differs from pod to pod) cannot
    // be one; an egress rule's named source ports are the endpoint's own and work.
    const PEER_NAMED_SOURCE_PORT: &str = "not supported by Palisade: a named source port of \
        the peer (use the port number, or name the port in an egress rule of the peer)";
    for (list, name) in [
        (&rule.source.ports, "ports"),
        (&rule.source.not_ports, "notPorts"),
    ] {
        for (index, port) in list.iter().enumerate() {
            if matches!(port, PortMatch::Named(_)) {
                errors.push(FieldError {
                    field: format!("{path}.source.{name}[{index}]"),
                    message: PEER_NAMED_SOURCE_PORT.to_owned(),
                    position: None,
                });
            }
        }
    }
}
