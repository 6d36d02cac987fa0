//! What a decision records beside its verdict: the drop reason, in the packet's scratch slot
//! where the program's counter reads it ([`deny`], [`deny_before_policy`]); flow events for
//! `policy-agent flows` (`policy_common::flow`: [`events_for`], [`event_bits`],
//! [`palisade_emit`]); per-rule counts (`policy_common::rule_hits`: [`palisade_count_rule`]).
//!
//! Apart from the decision because the two global functions here are verified once on their
//! own, outside the decision's states, and keep their exported names.

use policy_common::{
    config, flow as flow_event,
    rule_hits::{RuleHitKey, RuleHits},
};

use crate::{
    clock::now_ns,
    decision::{Direction, Verdict},
    maps::{
        PALISADE_CONFIG, PALISADE_FLOW_BUDGET, PALISADE_FLOWS, PALISADE_RULE_HITS, PALISADE_SCRATCH,
    },
    packet::Flow,
    protocol::{IPPROTO_ICMP, IPPROTO_ICMPV6},
    services::addressed_frontend,
};

/// A drop for `reason` (`drop_reason`): recorded in the packet's scratch slot, where the
/// program's counter and flow event read it (map memory: no verifier state per reason).
#[inline(always)]
pub(crate) fn deny(flow: &mut Flow, reason: u8) -> Verdict {
    flow.drop_reason = u32::from(reason);
    Verdict::Deny
}

/// A drop before policy was asked (its reason recorded as [`deny`] does), with its flow event
/// when events of denies are on: policy's own drops write theirs where policy decides.
/// Its own frame, beside the decision's deep call chain rather than on it (512 bytes of stack
/// for the whole chain).
#[inline(never)]
pub(crate) fn deny_before_policy(
    flow: &mut Flow,
    reason: u8,
    direction: Direction,
    ifindex: u32,
) -> Verdict {
    flow.drop_reason = u32::from(reason);
    if events_for(false) {
        let now = now_ns();
        palisade_emit(event_bits(direction, false), ifindex, 0, 0, now);
    }
    Verdict::Deny
}

/// Whether a decision with this outcome writes a flow event (beyond `Log` rules): every one
/// when the agent keeps flow records, denies when it logs them.
#[inline(always)]
pub(crate) fn events_for(allowed: bool) -> bool {
    let asked = PALISADE_CONFIG.get(config::EVENTS).copied().unwrap_or(0);
    let wanted = if allowed {
        config::events::FLOWS
    } else {
        config::events::FLOWS | config::events::DENIES
    };
    asked & wanted != 0
}

/// [`event_bits`]: the check after netfilter decided (a pod's flow to a Service).
const AFTER_NAT: u32 = 1 << 9;
/// [`event_bits`]: the decision opened a tracked connection (`flow_event::OPENED`).
pub(crate) const OPENED: u32 = 1 << 10;

/// [`palisade_emit`]'s first argument: the event's direction in the low byte, allowed in
/// bit 8, [`AFTER_NAT`] in bit 9; the caller may add [`OPENED`].
#[inline(always)]
pub(crate) fn event_bits(direction: Direction, allowed: bool) -> u32 {
    let after_nat = if matches!(direction, Direction::AfterNat) {
        AFTER_NAT
    } else {
        0
    };
    let direction = if direction.egress() {
        flow_event::FROM_ENDPOINT
    } else {
        flow_event::TO_ENDPOINT
    };
    u32::from(direction) | u32::from(allowed) << 8 | after_nat
}

/// Writes a flow event for the packet being decided (the `Flow` in this CPU's
/// `PALISADE_SCRATCH` slot, as the decision left it), within this CPU's budget for the current
/// second. `bits`: the event's direction and whether it was allowed (see [`event_bits`]);
/// a denied one's reason is the slot's `drop_reason`. `table` and `rule_ref`: the entry that
/// decided it (see `policy::Decided`; 0 for drops before policy). Returns 0.
///
/// A global function, verified once on its own (see [`crate::policy::palisade_table_verdict`]): it runs for
/// new flows only, and only when asked (Calico `Log` rules, `--log-denies`, flow records), but
/// as a static function the
/// verifier walked it again for every state the decision reached it in, a fifth of what was
/// left of the programs' verification. Hence scalar arguments, and the packet read from the
/// scratch slot rather than passed by pointer.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn palisade_emit(
    bits: u32,
    ifindex: u32,
    table: u32,
    rule_ref: u32,
    now: u64,
) -> u32 {
    // The budget first: past it (a flood), this is all an event costs.
    let Some(budget) = PALISADE_FLOW_BUDGET.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: this CPU's slot, used by nothing else during the program run.
    let budget = unsafe { &mut *budget };
    if now.wrapping_sub(budget.window_start_ns) >= 1_000_000_000 {
        budget.window_start_ns = now;
        budget.written = 0;
    }
    if budget.written >= flow_event::EVENTS_PER_SECOND {
        budget.dropped += 1;
        return 0;
    }
    let Some(flow) = PALISADE_SCRATCH.get_ptr(0) else {
        return 0;
    };
    // SAFETY: this CPU's slot, which the program run that called us is using; read only.
    let flow = unsafe { &*flow };
    let icmp = flow.protocol == IPPROTO_ICMP || flow.protocol == IPPROTO_ICMPV6;
    let allowed = ((bits >> 8) & 1) as u8;
    // The budget bounds attempts, not successes: with nobody reading, the ring stays full and
    // every decision would otherwise pay for building an event and failing to reserve room.
    budget.written += 1;
    // Written in place in the ring, field by field: an 88-byte event on this function's
    // stack took the deepest call chain past the 512 bytes all of its frames share.
    let Some(mut entry) = PALISADE_FLOWS.reserve(0) else {
        // The ring is full (no reader): the packet's verdict is unaffected.
        budget.dropped += 1;
        return 0;
    };
    let event = entry.as_mut_ptr();
    // SAFETY: `event` is the reserved record, ours until it is submitted; every field is
    // written before it is.
    unsafe {
        (*event).time_ns = now;
        (*event).src = flow.src;
        (*event).dst = flow.dst;
        (*event).sport = flow.sport;
        (*event).dport = if icmp {
            flow.icmp_type_code
        } else {
            flow.dport
        };
        (*event).protocol = flow.protocol;
        (*event).direction = (bits & 0xff) as u8;
        (*event).allowed = allowed;
        (*event).reason = if allowed == 0 {
            flow.drop_reason as u8
        } else {
            0
        };
        (*event).ifindex = ifindex;
        (*event).table = table;
        (*event).rule_ref = rule_ref;
        (*event).len = flow.frame_len;
        (*event).flags = if bits & OPENED != 0 {
            flow_event::OPENED
        } else {
            0
        };
        (*event)._pad = [0; 5];
        (*event).service = [0; 16];
        (*event).service_port = 0;
        if bits & AFTER_NAT != 0
            && let Some(frontend) = addressed_frontend(flow)
        {
            (*event).service = frontend.addr;
            (*event).service_port = frontend.port;
        }
    }
    entry.submit(0);
    0
}

/// Counts a packet against the rule entry that decided it (`policy_common::rule_hits`):
/// `outcome` has the verdict in bit 0 and, in bit 1, whether the packet opened a tracked
/// connection. Returns 0. A global function with scalar arguments, verified once on its own
/// (see [`crate::policy::palisade_table_verdict`]).
// The key and value are passed to the map helpers by reference, as the other lookups do: a
// copy would take their size again on the stack.
#[allow(clippy::needless_borrows_for_generic_args)]
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn palisade_count_rule(table: u32, rule_ref: u32, outcome: u32) -> u32 {
    let key = RuleHitKey {
        table,
        rule_ref,
        allowed: outcome & 1,
    };
    let opened = u64::from((outcome >> 1) & 1);
    match PALISADE_RULE_HITS.get_ptr_mut(&key) {
        Some(hits) => {
            // SAFETY: this CPU's slot of a live entry; nothing else writes it concurrently.
            let hits = unsafe { &mut *hits };
            hits.packets += 1;
            hits.flows += opened;
        }
        None => {
            let hits = RuleHits {
                packets: 1,
                flows: opened,
            };
            // A failed insert only loses this count.
            let _ = PALISADE_RULE_HITS.insert(&key, &hits, 0);
        }
    }
    0
}
