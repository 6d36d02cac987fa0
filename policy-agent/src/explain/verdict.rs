//! `policy-agent explain`: one packet's verdict, as text or JSON.
//!
//! The walk itself is [`crate::compiler::trace`]; this module finds the packet's addresses
//! from what the user typed (`ns/name` or an address) and prints the walk.

use std::{fmt::Write as _, net::IpAddr};

use serde_json::{Value, json};
use thiserror::Error;

use crate::{
    calico::resources::Action,
    compiler::{
        PROFILE_RULE_REF, Scope, TierEnd, TierTrace,
        trace::{PacketTrace, SideTrace, TracePacket, trace},
    },
    model::Cluster,
};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ExplainError {
    #[error("{given}: no such pod in the datastore")]
    UnknownPod { given: String },
    #[error("{given}: pod has no IPv{family} address (status.podIPs)")]
    NoAddress { given: String, family: u8 },
    #[error("{given}: expected namespace/name or an IP address")]
    Unparsable { given: String },
    #[error("--from {from} and --to {to} are not of one address family")]
    MixedFamilies { from: IpAddr, to: IpAddr },
}

/// `ns/name` (a pod, its address of `family`) or an address.
pub fn resolve(cluster: &Cluster, given: &str, family: u8) -> Result<IpAddr, ExplainError> {
    if let Ok(ip) = given.parse::<IpAddr>() {
        return Ok(ip);
    }
    let Some((namespace, name)) = given.split_once('/') else {
        return Err(ExplainError::Unparsable {
            given: given.to_owned(),
        });
    };
    let pod = cluster
        .pods
        .get(&(namespace.to_owned(), name.to_owned()))
        .ok_or_else(|| ExplainError::UnknownPod {
            given: given.to_owned(),
        })?;
    pod.ips
        .iter()
        .copied()
        .find(|ip| ip.is_ipv6() == (family == 6))
        .ok_or(ExplainError::NoAddress {
            given: given.to_owned(),
            family,
        })
}

/// The walk for `packet`.
pub fn explain(
    cluster: &Cluster,
    scope: &Scope,
    packet: &TracePacket,
) -> Result<PacketTrace, ExplainError> {
    if packet.src.is_ipv6() != packet.dst.is_ipv6() {
        return Err(ExplainError::MixedFamilies {
            from: packet.src,
            to: packet.dst,
        });
    }
    Ok(trace(cluster, scope, packet))
}

fn action(action: Action) -> &'static str {
    match action {
        Action::Allow => "Allow",
        Action::Deny => "Deny",
        Action::Log => "Log",
        Action::Pass => "Pass",
    }
}

fn verdict_word(allow: bool) -> &'static str {
    if allow { "allow" } else { "deny" }
}

/// What decided, in words.
fn decided_by(tiers: &[TierTrace], rule_ref: u32, direction: &str) -> String {
    if rule_ref == PROFILE_RULE_REF {
        return "the profile (no tier decided)".to_owned();
    }
    let Some(last) = tiers.last() else {
        return "nothing".to_owned();
    };
    match last.end {
        TierEnd::DefaultAction => format!("the default action of tier {}", last.tier),
        _ => last
            .policies
            .last()
            .and_then(|p| {
                p.rules.last().map(|r| {
                    format!(
                        "{} {direction}[{}] ({})",
                        p.policy,
                        r.index,
                        action(r.action)
                    )
                })
            })
            .unwrap_or_else(|| "nothing".to_owned()),
    }
}

/// The walk as text.
pub fn render_text(trace: &PacketTrace) -> String {
    let mut out = String::new();
    let p = &trace.packet;
    let _ = writeln!(
        out,
        "packet: protocol {} {} -> {} port {} (source port {})",
        p.protocol, p.src, p.dst, p.dport, p.sport
    );
    for (name, side) in [("egress", &trace.egress), ("ingress", &trace.ingress)] {
        match side {
            SideTrace::NotLocal => {
                let _ = writeln!(out, "{name}: not a local endpoint (not checked here)");
            }
            SideTrace::NodeTraffic { endpoint } => {
                let _ = writeln!(
                    out,
                    "{name} of {}/{}: traffic with its own node, always allowed",
                    endpoint.0, endpoint.1
                );
            }
            SideTrace::Walked {
                endpoint,
                tiers,
                verdict,
            } => {
                let _ = writeln!(out, "{name} of {}/{}:", endpoint.0, endpoint.1);
                if tiers.is_empty() {
                    let _ = writeln!(out, "  no policy applies");
                }
                for tier in tiers {
                    let _ = writeln!(out, "  tier {}", tier.tier);
                    for policy in &tier.policies {
                        let _ = writeln!(out, "    {}", policy.policy);
                        for rule in &policy.rules {
                            let outcome = match rule.mismatch {
                                None => "matches".to_owned(),
                                Some(why) => format!("no match ({why})"),
                            };
                            let _ = writeln!(
                                out,
                                "      {name}[{}] {:<5} {outcome}",
                                rule.index,
                                action(rule.action)
                            );
                        }
                    }
                    let end = match tier.end {
                        TierEnd::Decided => "decided",
                        TierEnd::Passed => "passed to the next tier",
                        TierEnd::DefaultAction => "no rule decided: the tier's default action",
                    };
                    let _ = writeln!(out, "    -> {end}");
                }
                let _ = writeln!(
                    out,
                    "  {}: {}",
                    verdict_word(verdict.allow),
                    decided_by(tiers, verdict.rule_ref, name)
                );
            }
        }
    }
    let _ = writeln!(out, "verdict: {}", verdict_word(trace.allowed()));
    out
}

/// The walk as one JSON object.
pub fn render_json(trace: &PacketTrace) -> Value {
    let side = |side: &SideTrace, direction: &str| -> Value {
        match side {
            SideTrace::NotLocal => json!({ "checked": false }),
            SideTrace::NodeTraffic { endpoint } => json!({
                "checked": true,
                "endpoint": format!("{}/{}", endpoint.0, endpoint.1),
                "allowed": true,
                "decided_by": "node traffic",
            }),
            SideTrace::Walked {
                endpoint,
                tiers,
                verdict,
            } => json!({
                "checked": true,
                "endpoint": format!("{}/{}", endpoint.0, endpoint.1),
                "allowed": verdict.allow,
                "decided_by": decided_by(tiers, verdict.rule_ref, direction),
                "tiers": tiers.iter().map(|tier| json!({
                    "tier": tier.tier,
                    "end": match tier.end {
                        TierEnd::Decided => "decided",
                        TierEnd::Passed => "passed",
                        TierEnd::DefaultAction => "default action",
                    },
                    "policies": tier.policies.iter().map(|p| json!({
                        "policy": p.policy.to_string(),
                        "rules": p.rules.iter().map(|r| json!({
                            "index": r.index,
                            "action": action(r.action),
                            "matched": r.mismatch.is_none(),
                            "mismatch": r.mismatch,
                        })).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            }),
        }
    };
    let p = &trace.packet;
    json!({
        "src": p.src.to_string(),
        "dst": p.dst.to_string(),
        "protocol": p.protocol,
        "port": p.dport,
        "source_port": p.sport,
        "egress": side(&trace.egress, "egress"),
        "ingress": side(&trace.ingress, "ingress"),
        "allowed": trace.allowed(),
    })
}
