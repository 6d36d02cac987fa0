//! Calico's walk over an ordered table: tiers in order, policies in order, rules in order,
//! until a rule or a tier's default action decides, else the profile; and its trace, the
//! tiers, policies and rules it consulted for one packet. Separate from the matching it
//! relies on (`matching.rs`) and from the cells it decides (`grid.rs`).

use super::{Peer, matching::PeerMatches};
use crate::{
    calico::resources::{Action, TierAction},
    compiler::{
        ordered::{
            CalicoContext, Matcher, OrderedContent, PROFILE_RULE_REF, TIER_DEFAULT_RULE, Verdict,
            source_ports::source_ports_match,
        },
        policy_name::PolicyName,
    },
};

/// One tier as the walk saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierTrace {
    pub tier: String,
    pub policies: Vec<PolicyTrace>,
    pub end: TierEnd,
}

/// How a tier the walk entered ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierEnd {
    /// A rule allowed or denied.
    Decided,
    /// A rule passed to the next tier.
    Passed,
    /// No rule decided: the tier's default action (Deny ends the walk, Pass goes on).
    DefaultAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyTrace {
    pub policy: PolicyName,
    pub rules: Vec<RuleTrace>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleTrace {
    pub index: u16,
    pub action: Action,
    /// `None`: the rule matched; else which part did not.
    pub mismatch: Option<&'static str>,
}

/// The verdict for one packet, with every tier, policy and rule consulted.
pub fn trace(
    content: &OrderedContent,
    context: &CalicoContext,
    peer: &Peer<'_>,
    protocol: u8,
    sport: u16,
    port: u16,
) -> (Verdict, Vec<TierTrace>) {
    let mut tiers = Vec::new();
    let verdict =
        PeerMatches::new(content, context, peer).walk(protocol, sport, port, Some(&mut tiers));
    (verdict, tiers)
}

impl<'a> PeerMatches<'a> {
    /// Calico's walk: tiers in order, policies in order, rules in order.
    pub(super) fn decide(&self, protocol: u8, sport: u16, port: u16) -> Verdict {
        self.walk(protocol, sport, port, None)
    }

    /// The walk, recording every tier, policy and rule consulted when `trace` is given.
    fn walk(
        &self,
        protocol: u8,
        sport: u16,
        port: u16,
        mut trace: Option<&mut Vec<TierTrace>>,
    ) -> Verdict {
        let mut index = 0usize;
        // A `Log` rule that matched on the way: the verdict is logged, whoever decides it.
        let mut log = false;
        for tier in &self.content.tiers {
            let first = index;
            index = first + tier.policies.len();
            let mut tier_trace = trace.as_ref().map(|_| TierTrace {
                tier: tier.name.clone(),
                policies: Vec::new(),
                end: TierEnd::DefaultAction,
            });
            let mut outcome = None;
            'policies: for (offset, policy) in tier.policies.iter().enumerate() {
                let slot = first + offset;
                if let Some(t) = tier_trace.as_mut() {
                    t.policies.push(PolicyTrace {
                        policy: policy.name.clone(),
                        rules: Vec::new(),
                    });
                }
                for (rule, matched) in policy.rules.iter().zip(&self.matches[slot]) {
                    let mismatch = if !matched {
                        Some(self.peer_mismatch(&rule.matcher))
                    } else if !self.protocol_port_match(&rule.matcher, protocol, port) {
                        Some("protocol or port")
                    } else if let Matcher::Calico(calico) = &rule.matcher
                        && !source_ports_match(calico, protocol, sport)
                    {
                        Some("source port")
                    } else {
                        None
                    };
                    if let Some(policy_trace) =
                        tier_trace.as_mut().and_then(|t| t.policies.last_mut())
                    {
                        policy_trace.rules.push(RuleTrace {
                            index: rule.index,
                            action: rule.action,
                            mismatch,
                        });
                    }
                    if mismatch.is_some() {
                        continue;
                    }
                    let rule_ref = (ref_index(slot) << 16) | u32::from(rule.index);
                    match rule.action {
                        Action::Allow | Action::Deny => {
                            outcome = Some(Some(Verdict {
                                allow: rule.action == Action::Allow,
                                rule_ref,
                                log,
                            }));
                            break 'policies;
                        }
                        Action::Pass => {
                            outcome = Some(None);
                            break 'policies;
                        }
                        Action::Log => log = true,
                    }
                }
            }
            let verdict = match outcome {
                Some(Some(verdict)) => {
                    if let Some(t) = tier_trace.as_mut() {
                        t.end = TierEnd::Decided;
                    }
                    Some(verdict)
                }
                Some(None) => {
                    if let Some(t) = tier_trace.as_mut() {
                        t.end = TierEnd::Passed;
                    }
                    None
                }
                None => (tier.default_action == TierAction::Deny).then_some(Verdict {
                    allow: false,
                    rule_ref: (ref_index(first) << 16) | TIER_DEFAULT_RULE,
                    log,
                }),
            };
            if let (Some(trace), Some(t)) = (trace.as_mut(), tier_trace) {
                trace.push(t);
            }
            if let Some(verdict) = verdict {
                return verdict;
            }
        }
        Verdict {
            allow: self.content.profile_allows,
            rule_ref: PROFILE_RULE_REF,
            log,
        }
    }

    /// Why a rule's match on everything but protocol and port failed.
    fn peer_mismatch(&self, matcher: &Matcher) -> &'static str {
        match matcher {
            Matcher::Calico(rule)
                if !self
                    .peer
                    .v6
                    .is_some_and(|v6| rule.local_ok[usize::from(v6)]) =>
            {
                "ipVersion or the endpoint's side"
            }
            Matcher::Calico(_) => "the peer's side",
            Matcher::Kubernetes(_) => "peers",
        }
    }
}

fn ref_index(slot: usize) -> u32 {
    u32::try_from(slot).unwrap_or(u32::MAX).min(0xfffe)
}
