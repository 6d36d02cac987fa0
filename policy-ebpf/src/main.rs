//! Palisade's datapath: two tc programs on each endpoint's host-side interface, and two on a
//! host endpoint's own interface.
//!
//! * `palisade_from_endpoint` (tc ingress of the host-side veth) sees what the endpoint sends and
//!   checks it against the endpoint's egress policy.
//! * `palisade_to_endpoint` (tc egress of the host-side veth) sees what is delivered to the
//!   endpoint and checks it against the endpoint's ingress policy.
//!
//! Pod-to-pod traffic on one node therefore passes both checks, as NetworkPolicy requires.
//!
//! * `palisade_host_ingress` / `palisade_host_egress` (tc ingress / egress of a Calico host
//!   endpoint's interface) check what reaches the host against its ingress policy and what it
//!   sends against its egress policy; packets of other addresses crossing that interface pass.
//! * `palisade_after_nat` (tc egress of every interface of the node, after netfilter) checks a
//!   local pod's flows to Services against its egress policy once kube-proxy has chosen the
//!   backend (see `policy_common::service`); everything else passes it.
//!
//! Every error path drops: a packet we cannot parse is a packet we cannot prove allowed.
//!
//! This file holds the programs, their common body ([`tc_verdict`]) and the per-interface
//! counters ([`count`]). The rest, one concern per module:
//!
//! * `maps`: every map (`#[btf_map]` static);
//! * `packet`: the parser, from an skb to a [`Flow`];
//! * `decision`: the order of a packet's decision (`decide`), and its per-CPU state;
//! * `conntrack`: connection tracking, and ICMP errors related to tracked flows;
//! * `fragments`: a first fragment's verdict, followed by the later fragments;
//! * `services`: Services and kube-proxy (deferred flows, masqueraded hairpins);
//! * `policy`: the policy lookup (`palisade_table_verdict`, a global function);
//! * `events`: drop reasons, flow events (`palisade_emit`), per-rule counts
//!   (`palisade_count_rule`);
//! * `clock`: the time entries and events are stamped with;
//! * `protocol`: the protocol numbers they share.
#![no_std]
#![no_main]

mod clock;
mod conntrack;
mod decision;
mod events;
mod fragments;
mod maps;
mod packet;
mod policy;
mod protocol;
mod services;

use aya_ebpf::{
    bindings::{TC_ACT_SHOT, TC_ACT_UNSPEC},
    macros::classifier,
    programs::TcContext,
};
use policy_common::{
    counters::{Counters, drop_reason},
    endpoint::{EndpointKey, IFINDEX_UNBOUND},
};

use crate::{
    decision::{Direction, Verdict},
    events::deny,
    maps::{PALISADE_COUNTER_SLOTS, PALISADE_COUNTERS, PALISADE_ENDPOINTS, PALISADE_SCRATCH},
    packet::{Flow, Parsed},
    services::link_service_flow,
};

#[classifier]
pub fn palisade_from_endpoint(ctx: TcContext) -> i32 {
    tc_verdict(&ctx, Direction::FromEndpoint, false)
}

#[classifier]
pub fn palisade_to_endpoint(ctx: TcContext) -> i32 {
    tc_verdict(&ctx, Direction::ToEndpoint, false)
}

/// tc ingress of a host endpoint's interface: packets delivered to the host.
#[classifier]
pub fn palisade_host_ingress(ctx: TcContext) -> i32 {
    tc_verdict(&ctx, Direction::ToEndpoint, true)
}

/// tc egress of a host endpoint's interface: packets the host sends.
#[classifier]
pub fn palisade_host_egress(ctx: TcContext) -> i32 {
    tc_verdict(&ctx, Direction::FromEndpoint, true)
}

/// tc egress of every interface of the node: a local pod's Service traffic, judged on the
/// backend kube-proxy chose. Only its verdicts on pods' packets are counted (the interface
/// may be an uplink carrying anything), and what it cannot parse passes: a pod's malformed
/// packets were dropped on the pod's own interface, and the rest is not its to judge.
#[classifier]
pub fn palisade_after_nat(ctx: TcContext) -> i32 {
    // SAFETY: the context's skb pointer is valid for the whole program run.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let Some(flow) = PALISADE_SCRATCH.get_ptr_mut(0) else {
        return TC_ACT_SHOT;
    };
    // SAFETY: this CPU's slot, used by nothing else during the program run.
    let flow = unsafe { &mut *flow };
    flow.frame_len = ctx.len();
    match packet::parse(&ctx, flow) {
        Ok(Parsed::Ip) => match decision::decide(flow, Direction::AfterNat, ifindex, false) {
            Verdict::Allow => TC_ACT_UNSPEC,
            Verdict::AllowNew => {
                link_service_flow(flow);
                TC_ACT_UNSPEC
            }
            Verdict::Deny => {
                // Counted on the sender's interface, where its other verdicts are.
                // SAFETY: only the ifindex is read.
                let sender = unsafe { PALISADE_ENDPOINTS.get(EndpointKey { addr: flow.src }) }
                    .map_or(ifindex, |e| e.ifindex);
                count(sender, 0, u32::from(dropped_for(flow)));
                TC_ACT_SHOT
            }
        },
        // Plumbing stays on its link (its own programs judged it on the pod's interface).
        Ok(Parsed::Infrastructure | Parsed::OwnInfrastructure) | Err(()) => TC_ACT_UNSPEC,
    }
}

#[inline(always)]
fn tc_verdict(ctx: &TcContext, direction: Direction, host: bool) -> i32 {
    // SAFETY: the context's skb pointer is valid for the whole program run.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let Some(flow) = PALISADE_SCRATCH.get_ptr_mut(0) else {
        // Not reachable (index 0 of a one-slot array); fail closed all the same.
        return TC_ACT_SHOT;
    };
    // SAFETY: this CPU's slot, used by nothing else during the program run.
    let flow = unsafe { &mut *flow };
    flow.frame_len = ctx.len();
    flow.counter_slot = 0;
    // What the packet is, through map memory (`flow.parsed`): the verifier does not track it,
    // so every kind of packet policy decides reaches the one `decide` call in one state, not
    // one walk of the decision per kind (which would take the program past its budget).
    flow.parsed = match packet::parse(ctx, flow) {
        Ok(Parsed::Ip) => parsed::DECIDE,
        Ok(Parsed::Infrastructure) => parsed::PLUMBING,
        Ok(Parsed::OwnInfrastructure) if own_plumbing(flow, direction, ifindex, host) => {
            parsed::PLUMBING
        }
        // Not plumbing here: an ICMPv6 packet like any other.
        Ok(Parsed::OwnInfrastructure) => parsed::DECIDE,
        // Truncated or malformed headers: fail closed.
        Err(()) => parsed::MALFORMED,
    };
    // SAFETY: a field of this CPU's slot; read back (volatile, so that the compiler does not
    // forward the value it just stored) as the verifier will see it: unknown.
    let parsed = unsafe { core::ptr::read_volatile(&flow.parsed) };
    let verdict = match parsed {
        parsed::PLUMBING => Verdict::Allow,
        parsed::DECIDE => decision::decide(flow, direction, ifindex, host),
        _ => deny(flow, drop_reason::MALFORMED),
    };
    match verdict {
        // TC_ACT_UNSPEC is TCX_NEXT: let any program after ours (a CNI's) have its say.
        Verdict::Allow | Verdict::AllowNew => {
            count(ifindex, counter_slot(flow), ALLOWED);
            TC_ACT_UNSPEC
        }
        Verdict::Deny => {
            count(ifindex, counter_slot(flow), u32::from(dropped_for(flow)));
            TC_ACT_SHOT
        }
    }
}

/// The reason the decision recorded for a drop, read back from map memory (volatile: as the
/// verifier sees it, unknown) and kept in range.
#[inline(always)]
fn dropped_for(flow: &Flow) -> u8 {
    // SAFETY: a field of this CPU's scratch slot.
    let reason = unsafe { core::ptr::read_volatile(&flow.drop_reason) };
    if (reason as usize) < drop_reason::COUNT {
        reason as u8
    } else {
        drop_reason::CAPACITY
    }
}

/// The slot of the interface's counters the decision found (0: none), read back from map
/// memory (volatile, as the verifier sees it).
#[inline(always)]
fn counter_slot(flow: &Flow) -> u32 {
    // SAFETY: a field of this CPU's scratch slot.
    unsafe { core::ptr::read_volatile(&flow.counter_slot) }
}

/// Whether on-link neighbour discovery carrying a routable address
/// ([`Parsed::OwnInfrastructure`]) is this interface's endpoint's plumbing: sent from the
/// endpoint's own address (to a link-scope destination), or delivered to it, where the address
/// is bound to this interface (the anti-spoofing binding every packet of an endpoint address is
/// held to); if not, the caller decides it by policy like any ICMPv6 packet. Delivered to a
/// link-scope destination, the routable source is the node's own, or was checked by its
/// sender's program: hop limit 255 proves nobody forwarded it. On a host endpoint's interface,
/// the host's plumbing and its neighbours' pass, as before.
#[inline(always)]
fn own_plumbing(flow: &Flow, direction: Direction, ifindex: u32, host: bool) -> bool {
    if host {
        return true;
    }
    // Multicast (the parser only lets link-scope groups through) or link-local unicast.
    let to_link = flow.dst[0] == 0xff || (flow.dst[0] == 0xfe && flow.dst[1] & 0xc0 == 0x80);
    let addr = match direction {
        Direction::FromEndpoint if to_link => flow.src,
        Direction::ToEndpoint if to_link => return true,
        Direction::ToEndpoint => flow.dst,
        // A routable destination from an endpoint: bound for another link, policy decides.
        _ => return false,
    };
    // SAFETY: only the interface is read, at once.
    unsafe { PALISADE_ENDPOINTS.get(EndpointKey { addr }) }
        .is_some_and(|e| e.ifindex == IFINDEX_UNBOUND || e.ifindex == ifindex)
}

/// Values of `Flow::parsed`.
mod parsed {
    pub const DECIDE: u32 = 1;
    pub const PLUMBING: u32 = 2;
    pub const MALFORMED: u32 = 3;
}

/// [`count`]'s outcome for a packet passed (any other is a `drop_reason`).
const ALLOWED: u32 = u32::MAX;

/// Counts the packet for its interface on this CPU (no atomics needed: per-CPU slots):
/// [`ALLOWED`], or dropped for a `drop_reason`; in the interface's `counter_slot` if it has
/// one (non-zero), else by its ifindex. Not inlined: a new interface's zeroed counters are
/// built on the stack (72 bytes), in a frame beside the decision's call chain rather than
/// under it (512 bytes of stack for the whole chain). Plain integer arguments: an `Option`
/// is two registers, and a call with `None` leaves the second unset, which the verifier
/// refuses to read.
#[inline(never)]
fn count(ifindex: u32, counter_slot: u32, outcome: u32) {
    if counter_slot != 0
        && let Some(slot) = PALISADE_COUNTER_SLOTS.get_ptr_mut(counter_slot)
    {
        // SAFETY: as below.
        add(unsafe { &mut *slot }, outcome);
        return;
    }
    let slot = match PALISADE_COUNTERS.get_ptr_mut(ifindex) {
        Some(slot) => slot,
        None => {
            // First packet on this interface (or the entry was evicted): start it. A failed
            // insert only loses this count.
            let _ = PALISADE_COUNTERS.insert(ifindex, Counters::default(), 0);
            match PALISADE_COUNTERS.get_ptr_mut(ifindex) {
                Some(slot) => slot,
                None => return,
            }
        }
    };
    // SAFETY: a per-CPU slot of this CPU, valid for the program run; nothing else writes it
    // concurrently.
    add(unsafe { &mut *slot }, outcome);
}

#[inline(always)]
fn add(counters: &mut Counters, outcome: u32) {
    if outcome == ALLOWED {
        counters.allowed += 1;
    } else if let Some(drops) = counters.drops.get_mut(outcome as usize) {
        *drops += 1;
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
