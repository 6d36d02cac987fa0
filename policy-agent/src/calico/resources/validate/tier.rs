//! Tier: its name (the prefix of its policies' names), order and default action, and the
//! fixed values of Calico's built-in tiers of administrators' policy.

use super::{
    checker::Checker,
    fields::order,
    names::{LABEL_RULE, is_dns_label, namespace, required_name},
};
use crate::calico::resources::{FieldError, Kind, Tier, TierAction, raw};

pub(in crate::calico::resources) fn tier(
    object: raw::Object<raw::TierSpec>,
) -> Result<Tier, Vec<FieldError>> {
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
