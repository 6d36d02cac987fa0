//! IP fragments (`policy_common::fragment`): a first fragment's verdict is recorded for the
//! later fragments of its packet, which carry no transport header to be decided by; a later
//! fragment follows it, or is dropped.
//!
//! Apart from the decision, which only says when (`decision::decide` for a later fragment,
//! `decision::decide_first` for a first), because the key and the record are the fragments'
//! own business.

use policy_common::{
    counters::drop_reason,
    fragment::{FragmentKey, FragmentValue},
};

use crate::{
    conntrack::current_generation,
    decision::{Direction, Tuples, Verdict},
    events::deny_before_policy,
    maps::PALISADE_FRAGMENTS,
    packet::Flow,
};

/// The key a fragmented packet's first-fragment verdict is recorded under, at this hook.
#[inline(always)]
pub(crate) fn fragment_key(flow: &Flow, id: u32, direction: Direction) -> FragmentKey {
    FragmentKey {
        src: flow.src,
        dst: flow.dst,
        id,
        protocol: flow.fragment_protocol(),
        hook: match direction {
            Direction::FromEndpoint => 0,
            Direction::ToEndpoint => 1,
            Direction::AfterNat => 2,
        },
        _pad: [0; 2],
    }
}

/// A later fragment (`id`): it follows its first fragment's verdict under the current policy,
/// or is dropped.
#[inline(always)]
pub(crate) fn follow_first(
    flow: &mut Flow,
    id: u32,
    direction: Direction,
    ifindex: u32,
) -> Verdict {
    // SAFETY: copied out at once.
    let first = unsafe { PALISADE_FRAGMENTS.get(fragment_key(flow, id, direction)) }.copied();
    match first {
        Some(first) if first.allowed == 1 && first.generation == current_generation() => {
            Verdict::Allow
        }
        _ => deny_before_policy(flow, drop_reason::FRAGMENT, direction, ifindex),
    }
}

/// Records a first fragment's verdict (`allowed`) for the rest of its packet, under the key
/// `decision::decide_first` put in the decision's per-CPU slot before the decision could
/// rewrite the packet.
// The key is passed by reference: a copy would take 40 bytes of the stack.
#[allow(clippy::needless_borrows_for_generic_args)]
#[inline(always)]
pub(crate) fn record_first(keys: &Tuples, allowed: bool) {
    let value = FragmentValue {
        allowed: u32::from(allowed),
        generation: current_generation(),
    };
    // A failed insert (map full) only means the later fragments are dropped.
    let _ = PALISADE_FRAGMENTS.insert(&keys.fragment, value, 0);
}
