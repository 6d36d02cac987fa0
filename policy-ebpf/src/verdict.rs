//! The decision: endpoint lookup, peer identity, rule lookup.

use aya_ebpf::btf_maps::lpm_trie::Key;
use policy_common::{
    endpoint::{EndpointKey, POLICY_NONE},
    identity::{self, IdentityKey},
    rule::{PREFIX_FULL, RuleKey, action},
};

use crate::{PALISADE_ENDPOINTS, PALISADE_IDENTITIES, PALISADE_RULES, packet::Flow};

#[derive(Clone, Copy)]
pub enum Direction {
    /// The endpoint is the source: check its egress policy against the destination.
    FromEndpoint,
    /// The endpoint is the destination: check its ingress policy against the source.
    ToEndpoint,
}

pub enum Verdict {
    Allow,
    Deny,
}

#[inline(always)]
pub fn decide(flow: &Flow, direction: Direction) -> Verdict {
    let (endpoint_addr, peer_addr) = match direction {
        Direction::FromEndpoint => (flow.src, flow.dst),
        Direction::ToEndpoint => (flow.dst, flow.src),
    };
    // SAFETY: the value is copied out before any map update could reuse the slot.
    let Some(endpoint) = (unsafe {
        PALISADE_ENDPOINTS
            .get(EndpointKey {
                addr: endpoint_addr,
            })
            .copied()
    }) else {
        // Not an address of a known endpoint (spoofed, or not programmed yet): drop.
        return Verdict::Deny;
    };
    let policy = match direction {
        Direction::FromEndpoint => endpoint.egress_policy,
        Direction::ToEndpoint => endpoint.ingress_policy,
    };
    if policy == POLICY_NONE {
        return Verdict::Allow;
    }

    let peer_identity = PALISADE_IDENTITIES
        .get(&Key::new(128, IdentityKey { addr: peer_addr }))
        .map_or(identity::WORLD, |value| value.identity);
    if peer_identity == identity::HOST {
        return Verdict::Allow;
    }

    let mut key = RuleKey {
        policy,
        peer_identity,
        protocol: flow.protocol,
        _pad: 0,
        port_be: flow.dport.to_be(),
    };
    let rule = PALISADE_RULES.get(&Key::new(PREFIX_FULL, key)).or_else(|| {
        key.peer_identity = identity::ANY;
        PALISADE_RULES.get(&Key::new(PREFIX_FULL, key))
    });
    match rule {
        Some(value) if value.action == action::ALLOW => Verdict::Allow,
        // Explicit deny, an unknown action, or no matching rule in an isolated direction.
        _ => Verdict::Deny,
    }
}
