//! The decision: the order in which a packet's verdict is reached. [`decide`] finds the
//! endpoint and checks its address, lets a later fragment follow its first
//! ([`crate::fragments`]), and [`decide_flow`] asks connection tracking ([`crate::conntrack`]),
//! the Service handling ([`crate::services`]) and policy ([`crate::policy`]) in turn, recording
//! drop reasons, flow events and rule counts ([`crate::events`]) on the way.
//!
//! Kept apart from the steps it calls because this is where the verifier's cost is decided:
//! which state goes through map memory ([`Tuples`]), and the single call of policy.

use policy_common::{
    conntrack::{
        ALLOWED_BY_EGRESS, ALLOWED_BY_INGRESS, ConntrackKey, ConntrackValue, EGRESS_CHECK,
        INGRESS_CHECK, MASQUERADED_HAIRPIN, REVOKED, SENT_HERE, state,
    },
    counters::drop_reason,
    endpoint::{EndpointKey, EndpointPolicy, IFINDEX_UNBOUND, kind},
    fragment::FragmentKey,
    rule::{TIER_DEFAULT_RULE, flags as rule_flags},
};

use crate::{
    clock::now_ns,
    conntrack::{KNOWN_ABSENT, count_passed, current_generation, related, remember, track},
    events::{
        OPENED, deny, deny_before_policy, event_bits, events_for, palisade_count_rule,
        palisade_emit,
    },
    fragments::{self, fragment_key},
    maps::{PALISADE_CONNTRACK, PALISADE_ENDPOINTS, PALISADE_SERVICE_FLOWS, PALISADE_TUPLES},
    packet::{Flow, Fragment, tcp_flags},
    policy::{Decided, allows},
    protocol::{IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP},
    services::{Frontend, defer_to_service, unmasquerade, unmasquerade_new_hairpin},
};

/// Which of its endpoint's checks a program makes: by where it runs.
#[derive(Clone, Copy)]
pub(crate) enum Direction {
    /// The endpoint is the source: check its egress policy against the destination.
    FromEndpoint,
    /// The endpoint is the destination: check its ingress policy against the source.
    ToEndpoint,
    /// After netfilter (tc egress of any interface): the source, if it is a local pod, has
    /// its egress policy checked against the destination as kube-proxy rewrote it, unless
    /// the flow is already tracked as allowed by it (see `policy_common::service`).
    AfterNat,
}

impl Direction {
    /// Whether the check is the endpoint's egress (the endpoint is the packet's source).
    #[inline(always)]
    pub(crate) fn egress(self) -> bool {
        !matches!(self, Direction::ToEndpoint)
    }
}

/// A packet's verdict.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Allow,
    /// Allowed by policy as a new flow, and recorded as such.
    AllowNew,
    /// Dropped; why is in the packet's `Flow::drop_reason`.
    Deny,
}

/// `host`: the program runs on a host endpoint's interface, where packets of other
/// addresses (forwarded pod traffic, the node's other addresses) are not this endpoint's to
/// judge and pass; the pods' own programs judge theirs.
///
/// `flow` may be rewritten: a masqueraded hairpin is judged as the pod sent it (see
/// `policy_common::service`), and its flow event says so.
#[inline(never)]
pub(crate) fn decide(flow: &mut Flow, direction: Direction, ifindex: u32, host: bool) -> Verdict {
    // After netfilter, packets of anyone but a local pod (remote pods' replies, the node's own
    // traffic, forwarded traffic) are not this hook's to judge.
    let after_nat = matches!(direction, Direction::AfterNat);
    let not_ours = host || after_nat;
    let endpoint_addr = if direction.egress() {
        flow.src
    } else {
        flow.dst
    };
    // SAFETY: the value is read in place (it is too large to copy onto the 512-byte stack);
    // the agent replaces an endpoint's value with one map update, never field by field.
    let mut found = unsafe {
        PALISADE_ENDPOINTS.get(EndpointKey {
            addr: endpoint_addr,
        })
    };
    if found.is_none() && after_nat && unmasquerade_new_hairpin(flow) {
        // A pod's packet to its own Service, masqueraded: now as the pod sent it.
        // SAFETY: as above.
        found = unsafe { PALISADE_ENDPOINTS.get(EndpointKey { addr: flow.src }) };
    }
    let Some(endpoint) = found else {
        // Not an address of a known endpoint (spoofed, or not programmed yet): drop, unless
        // this is a host interface, where it is simply someone else's traffic.
        if not_ours {
            return Verdict::Allow;
        }
        return deny_before_policy(flow, drop_reason::UNKNOWN_ENDPOINT, direction, ifindex);
    };
    if after_nat {
        // The sender's own interface checked the address (anti-spoofing) on the way in; only
        // pods' Service traffic is decided here, host endpoints are judged on their interface.
        if endpoint.kind != kind::POD {
            return Verdict::Allow;
        }
    } else if endpoint.ifindex != IFINDEX_UNBOUND && endpoint.ifindex != ifindex {
        // Another endpoint's address on this interface: spoofed on a pod's interface (drop),
        // another endpoint's traffic crossing a host interface (theirs to judge).
        if not_ours {
            return Verdict::Allow;
        }
        return deny_before_policy(flow, drop_reason::SPOOFED, direction, ifindex);
    } else if endpoint.ifindex == ifindex {
        // The endpoint's own interface: its packets are counted in the slot the agent gave it.
        flow.counter_slot = endpoint.counter_slot;
    }
    match flow.fragment {
        // A later fragment follows its first fragment's verdict, or is dropped.
        Fragment::Later(id) => fragments::follow_first(flow, id, direction, ifindex),
        Fragment::First(_) | Fragment::No => decide_first(flow, direction, endpoint, ifindex),
    }
}

/// A packet with its transport header: decided, and a first fragment's verdict recorded for
/// the rest of its packet. One call of the decision for both, with what differs between them
/// kept in map memory: the verifier walks a decision once per way of reaching its call.
#[inline(always)]
fn decide_first(
    flow: &mut Flow,
    direction: Direction,
    endpoint: &EndpointPolicy,
    ifindex: u32,
) -> Verdict {
    let Some(keys) = PALISADE_TUPLES.get_ptr_mut(0) else {
        return deny(flow, drop_reason::CAPACITY);
    };
    // SAFETY: this CPU's slot; `decide_flow` uses its other fields.
    let keys = unsafe { &mut *keys };
    // Keyed as the later fragments will be, before the decision may rewrite `flow`.
    keys.first_fragment = if let Fragment::First(id) = flow.fragment {
        keys.fragment = fragment_key(flow, id, direction);
        1
    } else {
        0
    };
    let verdict = decide_flow(flow, direction, endpoint, ifindex);
    // SAFETY: as above; volatile, read as the verifier sees it.
    if unsafe { core::ptr::read_volatile(&keys.first_fragment) } != 0 {
        fragments::record_first(keys, verdict != Verdict::Deny);
    }
    verdict
}

/// The verdict for a packet of a known endpoint: a tracked connection, a related ICMP error,
/// or policy. Not inlined, like the parser, for its own stack frame.
// Keys are passed to lookups by reference: a copy would take 40 bytes of the stack.
#[allow(clippy::needless_borrows_for_generic_args)]
#[inline(never)]
fn decide_flow(
    flow: &mut Flow,
    direction: Direction,
    endpoint: &EndpointPolicy,
    ifindex: u32,
) -> Verdict {
    let egress = direction.egress();
    let this_check = if egress {
        ALLOWED_BY_EGRESS
    } else {
        ALLOWED_BY_INGRESS
    };
    let now = now_ns();
    let generation = current_generation();
    let (this_index, counterpart_check, counterpart_index) = if egress {
        // We send: a reply we send answers what came in through our ingress check.
        (EGRESS_CHECK, ALLOWED_BY_INGRESS, INGRESS_CHECK)
    } else {
        // We receive: a reply we receive answers what left through our egress check.
        (INGRESS_CHECK, ALLOWED_BY_EGRESS, EGRESS_CHECK)
    };
    // The flow's tuple and its reverse, in per-CPU map memory rather than on the stack
    // (512 bytes for the whole call chain), written field by field.
    let Some(keys) = PALISADE_TUPLES.get_ptr_mut(0) else {
        return deny(flow, drop_reason::CAPACITY);
    };
    // SAFETY: this CPU's slot, used by nothing else during the program run.
    let keys = unsafe { &mut *keys };
    keys.fill(flow);

    // Which packets are tracked (see `conntrack`): a first packet opens a flow only if it can
    // open one (a TCP SYN, an echo request, a datagram); an echo reply only ever matches as a
    // reply and an echo request only as its own flow, so the identifier is paired with the
    // type; other ICMP (errors, neighbour discovery, unknown types) is never tracked and is
    // decided packet by packet (errors may pass as related, below).
    let icmp = flow.protocol == IPPROTO_ICMP || flow.protocol == IPPROTO_ICMPV6;
    let (lookup_forward, lookup_reply, opens) = if icmp {
        let icmp_type = flow.icmp_type_code >> 8;
        let (request, reply) = if flow.protocol == IPPROTO_ICMPV6 {
            (128, 129)
        } else {
            (8, 0)
        };
        (
            icmp_type == request,
            icmp_type == reply,
            icmp_type == request,
        )
    } else if flow.protocol == IPPROTO_TCP {
        // Only a SYN opens: a segment in the middle of a connection nobody tracks is decided
        // by policy but opens nothing, so it cannot make the other side's packets replies.
        let flags = flow.tcp_flags & (tcp_flags::SYN | tcp_flags::ACK | tcp_flags::RST);
        (true, true, flags == tcp_flags::SYN)
    } else {
        (true, true, true)
    };

    // Through map memory, which the verifier does not track: the three kinds of packet
    // converge here instead of each walking the rest of the decision with its own constants
    // (which would take the program past the verifier's budget).
    keys.tracking =
        u32::from(lookup_forward) | u32::from(lookup_reply) << 1 | u32::from(opens) << 2;
    // SAFETY: a field of this CPU's slot; volatile, so that the compiler does not forward the
    // value it just stored.
    let tracking = unsafe { core::ptr::read_volatile(&keys.tracking) };
    let lookup_forward = tracking & 1 != 0;
    let lookup_reply = tracking & 2 != 0;

    // A masqueraded hairpin (kube-proxy's rewrite of a pod's flow to its own Service) is
    // judged as the pod's own socket: the delivered tuple on its way in, the reversed one for
    // its replies. Other packets pay nothing more: these are the lookups they need anyway.
    let mut forward_entry = if lookup_forward {
        PALISADE_CONNTRACK.get_ptr_mut(&keys.forward)
    } else {
        None
    };
    if lookup_forward && forward_entry.is_none() {
        // Nothing to merge with if the flow is remembered below: no second lookup then (kept
        // only while the tuple stays the one looked up).
        keys.tracking |= 8;
    }
    let mut original_entry = None;
    let mut original_looked_up = !lookup_reply;
    if let Some(entry) = forward_entry
        // SAFETY: as below; only the flags are read.
        && unsafe { (*entry).flags } & MASQUERADED_HAIRPIN != 0
    {
        if !unmasquerade(flow, &keys.forward, entry, false, now) {
            // We no longer know whose it is (its entry was evicted): the safe side.
            return deny(flow, drop_reason::CAPACITY);
        }
        keys.fill(flow);
        forward_entry = PALISADE_CONNTRACK.get_ptr_mut(&keys.forward);
        if forward_entry.is_none() {
            keys.tracking |= 8;
        }
    } else if forward_entry.is_none() && lookup_reply {
        original_entry = PALISADE_CONNTRACK.get_ptr_mut(&keys.original);
        original_looked_up = true;
        if let Some(entry) = original_entry
            // SAFETY: as above.
            && unsafe { (*entry).flags } & MASQUERADED_HAIRPIN != 0
        {
            if !unmasquerade(flow, &keys.original, entry, true, now) {
                return deny(flow, drop_reason::CAPACITY);
            }
            keys.fill(flow);
            // A new tuple, not looked up.
            keys.tracking &= !8;
            // The reply's original is now the pod's own flow to itself; the pod has no other
            // flow from the backend's port to its own client socket to find forward.
            original_entry = PALISADE_CONNTRACK.get_ptr_mut(&keys.original);
        }
    }
    let (forward, original) = (&keys.forward, &keys.original);
    let peer_addr = if egress { &flow.dst } else { &flow.src };

    // The verifier walks every path through the rule loop once per call site, so the
    // decision below needs policy at most once, from a single call: first find out what to
    // ask it (and about which tracked entry), then ask.
    let mut pending = Pending::New;
    let mut tracked: *mut ConntrackValue = core::ptr::null_mut();

    // A later packet of a flow this check allowed: no policy lookup, unless policy changed
    // since (then it is checked again, and cut if no longer allowed).
    if let Some(entry) = forward_entry {
        // SAFETY: the entry stays valid for the program run (RCU); concurrent updates of
        // its fields by another CPU are benign races on plain integers.
        let value = unsafe { &mut *entry };
        if value.flags & (this_check | REVOKED) == this_check && !value.expired(flow.protocol, now)
        {
            if value.generation[this_index] == generation {
                track(value, flow, false, now);
                count_passed(value, direction, false, flow.frame_len);
                return Verdict::Allow;
            }
            pending = Pending::Forward;
            tracked = entry;
        } else if value.revoked(flow.protocol, generation, now) {
            value.last_seen_ns = now;
            // Only the check that cut the flow may open it again, in its own direction, and
            // only if its policy now allows it (the maps may hold a new policy a moment
            // before the generation says so).
            if value.flags & this_check == 0 {
                keys.tracking &= !4;
            }
        }
    }

    // A reply: this endpoint's side of the connection was allowed when it was opened. The
    // original's destination port is our reply's source port.
    if matches!(pending, Pending::New)
        && let Some(entry) = if original_looked_up {
            original_entry
        } else {
            PALISADE_CONNTRACK.get_ptr_mut(original)
        }
    {
        // SAFETY: as above.
        let value = unsafe { &mut *entry };
        if value.flags & (counterpart_check | REVOKED) == counterpart_check
            && !value.expired(flow.protocol, now)
        {
            if value.generation[counterpart_index] == generation {
                track(value, flow, true, now);
                count_passed(value, direction, true, flow.frame_len);
                return Verdict::Allow;
            }
            pending = Pending::Reply;
            tracked = entry;
        } else if value.revoked(flow.protocol, generation, now) {
            value.last_seen_ns = now;
            keys.tracking &= !4;
        }
    }

    // An ICMP error about a flow this endpoint's own check allowed, on its way back to that
    // flow's sender: related.
    if matches!(pending, Pending::New)
        && flow.quoted.valid
        && related(flow, this_check | counterpart_check << 8)
    {
        return Verdict::Allow;
    }

    // A pod's new flow to a Service frontend: its egress is decided after kube-proxy has
    // chosen the backend (`palisade_after_nat`), unless the backends are this node itself.
    let mut to_own_node = false;
    if matches!(pending, Pending::New)
        && matches!(direction, Direction::FromEndpoint)
        && endpoint.kind == kind::POD
    {
        match defer_to_service(flow) {
            Frontend::None => {}
            Frontend::Deferred => return Verdict::Allow,
            Frontend::OwnNode => to_own_node = true,
        }
    }

    // Rule entries key ICMP on type and code where other protocols have the destination port.
    // A reply re-checked against a newer policy is checked as the packet it answers: for
    // ICMP that is an echo request (only echoes are tracked as connections).
    // The source port only matters to tables with source-port rules (port protocols only).
    let (counterpart, sport, mut port) = match pending {
        Pending::Reply if icmp => (true, 0, echo_request(flow.protocol)),
        Pending::Reply => (true, flow.dport, flow.sport),
        _ if icmp => (false, 0, flow.icmp_type_code),
        _ => (false, flow.sport, flow.dport),
    };
    // A tracked flow to a Service frontend is checked again against the backend it was
    // allowed to, not the frontend.
    let mut peer = peer_addr;
    if !icmp && !matches!(pending, Pending::New) {
        let key = match pending {
            Pending::Forward => forward,
            _ => original,
        };
        // SAFETY: map values stay valid for the program run (RCU); read, not kept.
        if let Some(backend) = unsafe { PALISADE_SERVICE_FLOWS.get(key) } {
            peer = &backend.addr;
            port = backend.port;
        }
    }
    // The question for policy goes through map memory, which the verifier does not track:
    // however many ways there are to get here (new or re-checked, sent or replied, via a
    // Service, a hairpin, a tombstone), the rule loop is walked in one state, not one per way
    // (which would take the program past the verifier's budget).
    // Copied without overlap (`peer` is the packet's or a Service flow's, never `keys`):
    // written as an assignment, LLVM makes it a call of a byte-at-a-time `memmove` loop,
    // which the verifier walked again for each of the 20 states that reach it (4,000
    // instructions, an eighth of the program) and every new flow ran; this is 16 loads and
    // stores inline.
    // SAFETY: two distinct 16-byte arrays.
    unsafe { core::ptr::copy_nonoverlapping(peer.as_ptr(), keys.peer.as_mut_ptr(), 16) };
    keys.ports = u32::from(sport) << 16 | u32::from(port);
    keys.question = u32::from(flow.protocol) | u32::from(egress != counterpart) << 8;
    let mut decided = Decided::default();
    let allowed = to_own_node || allows(endpoint, keys, &mut decided);
    // Why, if denied: a tracked flow re-checked is revoked; a new one met a Deny entry, or
    // no entry at all.
    // A Calico tier's default action is the implicit deny too, not a rule.
    flow.drop_reason = u32::from(if !matches!(pending, Pending::New) {
        drop_reason::REVOKED
    } else if decided.table != 0 && decided.rule_ref & 0xffff != TIER_DEFAULT_RULE {
        drop_reason::DENY_RULE
    } else {
        drop_reason::NO_RULE
    });
    // SAFETY: as above.
    let opens = allowed
        && matches!(pending, Pending::New)
        && unsafe { core::ptr::read_volatile(&keys.tracking) } & 4 != 0;
    if decided.table != 0 {
        palisade_count_rule(
            decided.table,
            decided.rule_ref,
            u32::from(allowed) | u32::from(opens) << 1,
        );
    }
    if decided.flags & rule_flags::LOG != 0 || events_for(allowed) {
        // `flow` is this CPU's scratch slot, where the event (and its drop reason) is read
        // from.
        let opened = if opens { OPENED } else { 0 };
        palisade_emit(
            event_bits(direction, allowed) | opened,
            ifindex,
            decided.table,
            decided.rule_ref,
            now,
        );
    }
    match pending {
        Pending::New => {
            if !allowed {
                return Verdict::Deny;
            }
            // SAFETY: as above.
            if unsafe { core::ptr::read_volatile(&keys.tracking) } & 4 == 0 {
                // Allowed, but not a packet that opens a flow, or on a revoked tuple.
                return Verdict::Allow;
            }
            // The sender's own interface marks the tuple it met (who counts its packets).
            let sent_here = if matches!(direction, Direction::FromEndpoint) {
                SENT_HERE
            } else {
                0
            };
            // SAFETY: as above.
            let absent = if unsafe { core::ptr::read_volatile(&keys.tracking) } & 8 != 0 {
                KNOWN_ABSENT
            } else {
                0
            };
            remember(
                forward,
                flow,
                this_check | sent_here | absent | (this_index as u32) << 8,
                generation,
                now,
            );
            return Verdict::AllowNew;
        }
        Pending::Forward | Pending::Reply => {
            let (index, reply, check) = match pending {
                Pending::Forward => (this_index, false, this_check),
                _ => (counterpart_index, true, counterpart_check),
            };
            // SAFETY: set from a successful lookup above, valid for the program run.
            let value = unsafe { &mut *tracked };
            if !allowed {
                // Policy no longer allows the connection: cut it, and leave a tombstone so
                // that neither end re-opens it under this policy by speaking first.
                // Another CPU may be reading the entry (the other direction's packets): the
                // stamp first, the flags last, in this order (volatile: the compiler keeps
                // it). A reader in between sees a connection still allowed for one more
                // packet, never an allow-less entry of an old generation, which it would
                // take for no tombstone at all and open a flow over.
                // SAFETY: fields of a live map value, written in place.
                unsafe {
                    core::ptr::write_volatile(&mut value.generation, [generation; 2]);
                    core::ptr::write_volatile(&mut value.last_seen_ns, now);
                    core::ptr::write_volatile(&mut value.state, state::CLOSED);
                    // With the check that cut it: the one that may open it again.
                    core::ptr::write_volatile(&mut value.flags, REVOKED | check);
                }
                return Verdict::Deny;
            }
            value.generation[index] = generation;
            track(value, flow, reply, now);
        }
    }
    Verdict::Allow
}

/// The type and code (as rule entries key them) of an echo request of `protocol`.
#[inline(always)]
fn echo_request(protocol: u8) -> u16 {
    if protocol == IPPROTO_ICMPV6 {
        128 << 8
    } else {
        8 << 8
    }
}

/// What the packet's decision waits on policy for.
#[derive(Clone, Copy)]
enum Pending {
    /// Nothing tracked: a first packet.
    New,
    /// A tracked flow of this check, stamped with an older policy generation.
    Forward,
    /// A reply to a tracked flow, stamped with an older policy generation.
    Reply,
}

/// A packet's tuple as sent (`forward`) and reversed (`original`: the connection a reply
/// answers).
pub(crate) struct Tuples {
    pub(crate) forward: ConntrackKey,
    pub(crate) original: ConntrackKey,
    /// Bits of the decision in progress, kept here rather than in registers (see
    /// `decide_flow`): 1 look the tuple up, 2 look the reversed tuple up, 4 may open a flow,
    /// 8 the tuple was looked up and has no entry.
    pub(crate) tracking: u32,
    /// What policy is asked about the packet (see `policy::allows`): the protocol in the low byte,
    /// bit 8 set for the egress policy (else ingress); the source port in the high half of
    /// `ports`, the destination port (ICMP: type and code) in the low half; the peer.
    pub(crate) question: u32,
    pub(crate) ports: u32,
    pub(crate) peer: [u8; 16],
    /// Whether the packet is a first fragment (1), and the key its verdict is recorded under
    /// (see `decide_first`).
    pub(crate) first_fragment: u32,
    pub(crate) fragment: FragmentKey,
}

impl Tuples {
    /// Both tuples of `flow`, written field by field (see the parser's module documentation
    /// on zeroed arrays).
    #[inline(always)]
    fn fill(&mut self, flow: &Flow) {
        self.forward.src = flow.src;
        self.forward.dst = flow.dst;
        self.forward.sport = flow.sport;
        self.forward.dport = flow.dport;
        self.forward.protocol = flow.protocol;
        self.forward._pad = [0; 3];
        self.original.src = flow.dst;
        self.original.dst = flow.src;
        self.original.sport = flow.dport;
        self.original.dport = flow.sport;
        self.original.protocol = flow.protocol;
        self.original._pad = [0; 3];
    }
}
