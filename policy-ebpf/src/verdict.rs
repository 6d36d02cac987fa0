//! The decision: endpoint lookup, reply tracking, peer identity, rule lookup.

use aya_ebpf::btf_maps::lpm_trie::Key;
use policy_common::{
    conntrack::{ALLOWED_BY_EGRESS, ALLOWED_BY_INGRESS, ConntrackKey, ConntrackValue},
    endpoint::{EndpointKey, EndpointPolicy, IFINDEX_UNBOUND, MAX_TABLES, PolicyList, lookup},
    fragment::{FragmentKey, FragmentValue},
    identity::{self, IdentityKey},
    rule::{PREFIX_FULL, RuleKey, action},
};

use crate::{
    PALISADE_CONNTRACK, PALISADE_ENDPOINTS, PALISADE_FRAGMENTS, PALISADE_IDENTITIES,
    PALISADE_RULES,
    packet::{Flow, Fragment},
};

#[derive(Clone, Copy)]
pub enum Direction {
    /// The endpoint is the source: check its egress policy against the destination.
    FromEndpoint,
    /// The endpoint is the destination: check its ingress policy against the source.
    ToEndpoint,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
}

#[inline(always)]
pub fn decide(flow: &Flow, direction: Direction, ifindex: u32) -> Verdict {
    let (endpoint_addr, peer_addr, this_check) = match direction {
        Direction::FromEndpoint => (flow.src, flow.dst, ALLOWED_BY_EGRESS),
        Direction::ToEndpoint => (flow.dst, flow.src, ALLOWED_BY_INGRESS),
    };
    // SAFETY: the value is read in place (it is too large to copy onto the 512-byte stack);
    // the agent replaces an endpoint's value with one map update, never field by field.
    let Some(endpoint) = (unsafe {
        PALISADE_ENDPOINTS.get(EndpointKey {
            addr: endpoint_addr,
        })
    }) else {
        // Not an address of a known endpoint (spoofed, or not programmed yet): drop.
        return Verdict::Deny;
    };
    if endpoint.ifindex != IFINDEX_UNBOUND && endpoint.ifindex != ifindex {
        // Another endpoint's address on this interface: spoofed, drop.
        return Verdict::Deny;
    }
    let fragment_key = |id| FragmentKey {
        src: flow.src,
        dst: flow.dst,
        id,
        protocol: flow.protocol,
        hook: match direction {
            Direction::FromEndpoint => 0,
            Direction::ToEndpoint => 1,
        },
        _pad: [0; 2],
    };
    match flow.fragment {
        // A later fragment follows its first fragment's verdict, or is dropped.
        Fragment::Later(id) => {
            // SAFETY: only the flag is read, immediately.
            let first_passed =
                unsafe { PALISADE_FRAGMENTS.get(fragment_key(id)).map(|v| v.allowed) };
            if first_passed == Some(1) {
                Verdict::Allow
            } else {
                Verdict::Deny
            }
        }
        Fragment::First(id) => {
            let verdict = decide_flow(flow, direction, endpoint, peer_addr, this_check);
            let value = FragmentValue {
                allowed: u32::from(verdict == Verdict::Allow),
            };
            // A failed insert (map full) only means the later fragments are dropped.
            let _ = PALISADE_FRAGMENTS.insert(fragment_key(id), value, 0);
            verdict
        }
        Fragment::No => decide_flow(flow, direction, endpoint, peer_addr, this_check),
    }
}

/// The verdict for a packet of a known endpoint: a reply of an allowed connection, or policy.
#[inline(always)]
fn decide_flow(
    flow: &Flow,
    direction: Direction,
    endpoint: &EndpointPolicy,
    peer_addr: [u8; 16],
    this_check: u32,
) -> Verdict {
    // A reply: this endpoint's side of the connection was allowed when it was opened
    // (at our egress for a reply delivered to us, at our ingress for a reply we send).
    let forward = ConntrackKey {
        src: flow.src,
        dst: flow.dst,
        sport: flow.sport,
        dport: flow.dport,
        protocol: flow.protocol,
        _pad: [0; 3],
    };
    let original = ConntrackKey {
        src: flow.dst,
        dst: flow.src,
        sport: flow.dport,
        dport: flow.sport,
        protocol: flow.protocol,
        _pad: [0; 3],
    };
    // SAFETY: only the flags are read, immediately.
    let original_flags = unsafe { PALISADE_CONNTRACK.get(original).map(|v| v.flags) };
    let reply_flag = match direction {
        // We send the reply: the original came in through our ingress check.
        Direction::FromEndpoint => ALLOWED_BY_INGRESS,
        // The reply comes to us: the original left through our egress check.
        Direction::ToEndpoint => ALLOWED_BY_EGRESS,
    };
    if original_flags.is_some_and(|f| f & reply_flag != 0) {
        return Verdict::Allow;
    }

    let policy = match direction {
        Direction::FromEndpoint => &endpoint.egress,
        Direction::ToEndpoint => &endpoint.ingress,
    };
    let allowed = policy.isolated == 0 || policy_allows(flow, policy, peer_addr);
    if !allowed {
        return Verdict::Deny;
    }
    remember(&forward, this_check);
    Verdict::Allow
}

#[inline(always)]
fn policy_allows(flow: &Flow, policy: &PolicyList, peer_addr: [u8; 16]) -> bool {
    let (pod_identity, cidr_identity) = PALISADE_IDENTITIES
        .get(&Key::new(128, IdentityKey { addr: peer_addr }))
        .map_or((identity::WORLD, identity::WORLD), |value| {
            (value.pod_identity, value.cidr_identity)
        });
    if pod_identity == identity::HOST {
        return true;
    }
    let mut key = RuleKey {
        table: 0,
        peer_identity: 0,
        protocol: flow.protocol,
        _pad: 0,
        port_be: flow.dport.to_be(),
    };
    // The endpoint's tables in order; the first with a verdict decides. A bounded loop the
    // verifier can check: at most MAX_TABLES tables of at most three lookups each.
    for slot in 0..MAX_TABLES {
        if slot as u32 >= policy.count {
            break;
        }
        let table = policy.tables[slot];
        key.table = table.table;
        // Selector rules are keyed by pod identity, ipBlock rules by CIDR identity, rules
        // without peers by ANY: within a table, the first lookup that matches decides.
        let mut verdict = None;
        if table.lookups & lookup::POD != 0 {
            key.peer_identity = pod_identity;
            verdict = PALISADE_RULES
                .get(&Key::new(PREFIX_FULL, key))
                .map(|v| v.action);
        }
        if verdict.is_none() && table.lookups & lookup::CIDR != 0 {
            key.peer_identity = cidr_identity;
            verdict = PALISADE_RULES
                .get(&Key::new(PREFIX_FULL, key))
                .map(|v| v.action);
        }
        if verdict.is_none() && table.lookups & lookup::ANY != 0 {
            key.peer_identity = identity::ANY;
            verdict = PALISADE_RULES
                .get(&Key::new(PREFIX_FULL, key))
                .map(|v| v.action);
        }
        if let Some(action) = verdict {
            // Explicit deny or an unknown action drops; only ALLOW passes.
            return action == action::ALLOW;
        }
    }
    // Isolated, and no table has a verdict: drop.
    false
}

/// Records that `check` allowed the flow, so its replies pass. Writes only when the bit is
/// new, keeping established flows off the map-update path.
#[inline(always)]
fn remember(flow: &ConntrackKey, check: u32) {
    // SAFETY: only the flags are read, immediately.
    let flags = unsafe { PALISADE_CONNTRACK.get(flow).map_or(0, |v| v.flags) };
    if flags & check == 0 {
        // A failed insert (map full of in-use entries) only means replies get checked
        // against policy like any other packet: the safe side.
        let _ = PALISADE_CONNTRACK.insert(
            flow,
            ConntrackValue {
                flags: flags | check,
            },
            0,
        );
    }
}
