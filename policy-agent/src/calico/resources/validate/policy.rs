//! GlobalNetworkPolicy and namespaced NetworkPolicy: the tier, name, namespace, selectors,
//! `types` and its defaulting, and the `doNotTrack`/`preDNAT`/`applyOnForward` combinations;
//! the rules are [`super::rule`]'s.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{
    checker::{Checker, GlobalUse},
    fields::order,
    names::{LABEL_RULE, is_dns_label, namespace, policy_name},
    rule::rules,
};
use crate::calico::resources::{DEFAULT_TIER, FieldError, Kind, Policy, PolicyTypes, raw};

pub(in crate::calico::resources) fn global_network_policy(
    object: raw::Object<raw::GlobalNetworkPolicySpec>,
) -> Result<Policy, Vec<FieldError>> {
    policy(
        object.metadata,
        object.spec.unwrap_or_default(),
        Kind::GlobalNetworkPolicy,
    )
}

pub(in crate::calico::resources) fn network_policy(
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
