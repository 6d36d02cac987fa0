//! The decision: endpoint lookup, reply tracking, peer identity, rule lookup.

use aya_ebpf::btf_maps::lpm_trie::Key;
use aya_ebpf::helpers::bpf_ktime_get_ns;
use policy_common::{
    config,
    conntrack::{
        ALLOWED_BY_EGRESS, ALLOWED_BY_INGRESS, ConntrackKey, ConntrackValue, EGRESS_CHECK,
        INGRESS_CHECK, MASQUERADED_HAIRPIN, REVOKED, state,
    },
    counters::drop_reason,
    endpoint::{
        EndpointKey, EndpointPolicy, IFINDEX_UNBOUND, MAX_TABLES, PolicyList, kind, lookup,
    },
    flow::{self as flow_event, FlowEvent},
    fragment::{FragmentKey, FragmentValue},
    identity::{self, IdentityKey},
    rule::{PREFIX_FULL, RuleKey, RuleValue, TIER_DEFAULT_RULE, action, flags as rule_flags},
    rule_hits::{RuleHitKey, RuleHits},
    service::{ANY_BACKEND_PORT, BackendKey, HairpinKey, TransportAddr, frontend},
};

use crate::{
    PALISADE_ADDRESSES, PALISADE_CONFIG, PALISADE_CONNTRACK, PALISADE_ENDPOINTS,
    PALISADE_FLOW_BUDGET, PALISADE_FLOWS, PALISADE_FRAGMENTS, PALISADE_IDENTITIES,
    PALISADE_RULE_HITS, PALISADE_RULES, PALISADE_RULES_EXACT, PALISADE_SCRATCH,
    PALISADE_SERVICE_BACKENDS, PALISADE_SERVICE_FLOWS, PALISADE_SERVICE_HAIRPIN_PENDING,
    PALISADE_SERVICE_HAIRPINS, PALISADE_SERVICE_PENDING, PALISADE_SERVICES, PALISADE_TUPLES,
    packet::{Flow, Fragment, tcp_flags},
};

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_SCTP: u8 = 132;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_ICMPV6: u8 = 58;
const ETH_HDR_LEN: u32 = 14;

/// The type and code (as rule entries key them) of an echo request of `protocol`.
#[inline(always)]
fn echo_request(protocol: u8) -> u16 {
    if protocol == IPPROTO_ICMPV6 {
        128 << 8
    } else {
        8 << 8
    }
}

#[derive(Clone, Copy)]
pub enum Direction {
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
    fn egress(self) -> bool {
        !matches!(self, Direction::ToEndpoint)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Allowed by policy as a new flow, and recorded as such.
    AllowNew,
    /// Dropped; why is in the packet's `Flow::drop_reason`.
    Deny,
}

/// A drop for `reason` (`drop_reason`): recorded in the packet's scratch slot, where the
/// program's counter and flow event read it (map memory: no verifier state per reason).
#[inline(always)]
pub fn deny(flow: &mut Flow, reason: u8) -> Verdict {
    flow.drop_reason = u32::from(reason);
    Verdict::Deny
}

/// `host`: the program runs on a host endpoint's interface, where packets of other
/// addresses (forwarded pod traffic, the node's other addresses) are not this endpoint's to
/// judge and pass; the pods' own programs judge theirs.
///
/// `flow` may be rewritten: a masqueraded hairpin is judged as the pod sent it (see
/// `policy_common::service`), and its flow event says so.
#[inline(never)]
pub fn decide(flow: &mut Flow, direction: Direction, ifindex: u32, host: bool) -> Verdict {
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
    }
    match flow.fragment {
        // A later fragment follows its first fragment's verdict, or is dropped.
        Fragment::Later(id) => {
            // SAFETY: copied out at once.
            let first =
                unsafe { PALISADE_FRAGMENTS.get(fragment_key(flow, id, direction)) }.copied();
            match first {
                Some(first) if first.allowed == 1 && first.generation == current_generation() => {
                    Verdict::Allow
                }
                _ => deny_before_policy(flow, drop_reason::FRAGMENT, direction, ifindex),
            }
        }
        Fragment::First(_) | Fragment::No => decide_first(flow, direction, endpoint, ifindex),
    }
}

/// A drop before policy was asked (its reason recorded as [`deny`] does), with its flow event
/// when events of denies are on: policy's own drops write theirs where policy decides.
/// Its own frame, beside the decision's deep call chain rather than on it (512 bytes of stack
/// for the whole chain).
#[inline(never)]
fn deny_before_policy(flow: &mut Flow, reason: u8, direction: Direction, ifindex: u32) -> Verdict {
    flow.drop_reason = u32::from(reason);
    if events_for(false) {
        // SAFETY: a helper without arguments.
        let now = unsafe { bpf_ktime_get_ns() };
        palisade_emit(event_bits(direction, false), ifindex, 0, 0, now);
    }
    Verdict::Deny
}

/// The key a fragmented packet's first-fragment verdict is recorded under, at this hook.
#[inline(always)]
fn fragment_key(flow: &Flow, id: u32, direction: Direction) -> FragmentKey {
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

/// A packet with its transport header: decided, and a first fragment's verdict recorded for
/// the rest of its packet. One call of the decision for both, with what differs between them
/// kept in map memory: the verifier walks a decision once per way of reaching its call.
// The key is passed by reference: a copy would take 40 bytes of the stack.
#[allow(clippy::needless_borrows_for_generic_args)]
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
        let value = FragmentValue {
            allowed: u32::from(verdict != Verdict::Deny),
            generation: current_generation(),
        };
        // A failed insert (map full) only means the later fragments are dropped.
        let _ = PALISADE_FRAGMENTS.insert(&keys.fragment, value, 0);
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
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
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
    if decided.table != 0 {
        // SAFETY: as above.
        let opens = allowed
            && matches!(pending, Pending::New)
            && unsafe { core::ptr::read_volatile(&keys.tracking) } & 4 != 0;
        palisade_count_rule(
            decided.table,
            decided.rule_ref,
            u32::from(allowed) | u32::from(opens) << 1,
        );
    }
    if decided.flags & rule_flags::LOG != 0 || events_for(allowed) {
        // `flow` is this CPU's scratch slot, where the event (and its drop reason) is read
        // from.
        palisade_emit(
            event_bits(direction, allowed),
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
            remember(
                forward,
                flow,
                this_check | (this_index as u32) << 8,
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

/// The policy generation the agent last programmed.
#[inline(always)]
fn current_generation() -> u32 {
    PALISADE_CONFIG
        .get(config::GENERATION)
        .copied()
        .unwrap_or(0)
}

/// What a pod's new flow is sending to.
enum Frontend {
    /// Not a Service frontend: decided here like any flow.
    None,
    /// A frontend: the sender's egress is decided after kube-proxy's translation.
    Deferred,
    /// A frontend whose backends are all this node's addresses: delivered to the node itself,
    /// which no later hook sees, and always allowed (traffic with the own node is).
    OwnNode,
}

/// Whether a pod's new flow goes to a Service frontend; if it does (and kube-proxy will send
/// it past a later hook) the pod's socket and the frontend are recorded for
/// [`link_service_flow`].
#[inline(never)]
fn defer_to_service(flow: &Flow) -> Frontend {
    if flow.protocol != IPPROTO_TCP && flow.protocol != IPPROTO_UDP && flow.protocol != IPPROTO_SCTP
    {
        return Frontend::None;
    }
    let key = TransportAddr {
        addr: flow.dst,
        port: flow.dport,
        protocol: flow.protocol,
        _pad: 0,
    };
    // SAFETY: the flags are copied out at once.
    let Some(flags) = (unsafe { PALISADE_SERVICES.get(key) }).map(|v| v.flags) else {
        return Frontend::None;
    };
    if flags & frontend::HOST_BACKENDS != 0 {
        return Frontend::OwnNode;
    }
    if flags & frontend::NO_BACKENDS != 0 {
        // kube-proxy rejects it; nothing to link.
        return Frontend::Deferred;
    }
    let socket = TransportAddr {
        addr: flow.src,
        port: flow.sport,
        protocol: flow.protocol,
        _pad: 0,
    };
    // A failed insert (it is an LRU map: only under a storm of new flows) loses the link:
    // the flow is still decided after the translation, but its replies are judged as new
    // packets from the frontend, the safe side.
    let _ = PALISADE_SERVICE_PENDING.insert(socket, key, 0);
    // The sender is one of the frontend's backends: kube-proxy may send the packet back to it,
    // masqueraded, so remember the packet by what the masquerade leaves alone.
    let own = BackendKey {
        frontend: key,
        backend: TransportAddr {
            addr: flow.src,
            port: ANY_BACKEND_PORT,
            protocol: flow.protocol,
            _pad: 0,
        },
    };
    // SAFETY: only presence is read.
    if unsafe { PALISADE_SERVICE_BACKENDS.get(own) }.is_some() {
        let hairpin = HairpinKey {
            addr: flow.src,
            fingerprint: flow.fingerprint,
            protocol: flow.protocol,
            _pad: [0; 3],
        };
        // A failed insert: the hairpin is judged as the node's traffic, which is allowed.
        let _ = PALISADE_SERVICE_HAIRPIN_PENDING.insert(hairpin, u32::from(flow.sport), 0);
    }
    Frontend::Deferred
}

/// After netfilter, on a packet from an address that is not a local pod's: whether it is a
/// local pod's new flow to its own Service that kube-proxy masqueraded (the pod recorded the
/// packet's fingerprint, and its pending frontend has this destination as a backend). If it
/// is, `flow` becomes the packet as the pod sent it, to its backend, with the masquerade's
/// address and port kept for [`link_service_flow`].
#[inline(never)]
fn unmasquerade_new_hairpin(flow: &mut Flow) -> bool {
    let protocol = flow.protocol;
    if protocol == IPPROTO_TCP {
        if flow.tcp_flags & (tcp_flags::SYN | tcp_flags::ACK) != tcp_flags::SYN {
            return false;
        }
    } else if protocol != IPPROTO_UDP && protocol != IPPROTO_SCTP {
        return false;
    }
    let pending = HairpinKey {
        addr: flow.dst,
        fingerprint: flow.fingerprint,
        protocol,
        _pad: [0; 3],
    };
    // SAFETY: copied out at once.
    let Some(sport) = (unsafe { PALISADE_SERVICE_HAIRPIN_PENDING.get(pending) }).copied() else {
        return false;
    };
    let socket = TransportAddr {
        addr: flow.dst,
        port: sport as u16,
        protocol,
        _pad: 0,
    };
    // SAFETY: copied out at once.
    let Some(frontend) = (unsafe { PALISADE_SERVICE_PENDING.get(socket) }).copied() else {
        return false;
    };
    let pair = BackendKey {
        frontend,
        backend: TransportAddr {
            addr: flow.dst,
            port: flow.dport,
            protocol,
            _pad: 0,
        },
    };
    // SAFETY: only presence is read.
    if flow.dport == ANY_BACKEND_PORT || unsafe { PALISADE_SERVICE_BACKENDS.get(pair) }.is_none() {
        return false;
    }
    let _ = PALISADE_SERVICE_HAIRPIN_PENDING.remove(pending);
    flow.masquerade_addr = flow.src;
    flow.masquerade_port = flow.sport;
    flow.src = flow.dst;
    flow.sport = socket.port;
    true
}

/// Puts a masqueraded hairpin's pod socket in place of the masquerade address and port:
/// the source of a packet on its way in (`reply` false), the destination of a reply. Keeps
/// the marker alive as long as the connection (its state follows the packets). False when
/// the socket is no longer known.
#[inline(never)]
fn unmasquerade(
    flow: &mut Flow,
    delivered: &ConntrackKey,
    marker: *mut ConntrackValue,
    reply: bool,
    now: u64,
) -> bool {
    // SAFETY: copied out at once.
    let Some(socket) = (unsafe { PALISADE_SERVICE_HAIRPINS.get(delivered) }).copied() else {
        return false;
    };
    // SAFETY: a conntrack entry found by the caller, valid for the program run (RCU).
    track(unsafe { &mut *marker }, flow, reply, now);
    if reply {
        flow.dst = socket.addr;
        flow.dport = socket.port;
    } else {
        flow.src = socket.addr;
        flow.sport = socket.port;
    }
    true
}

/// After netfilter, on a flow policy just allowed: if the pod sent it to a frontend that has
/// this backend, the flow as the pod sent it is recorded as allowed by the pod's egress, so
/// that replies through kube-proxy's reverse translation (from the frontend) pass, and its
/// backend is kept for later checks against changed policy. Called by the program itself,
/// after the decision, to keep it out of the decision's stack.
#[inline(never)]
pub fn link_service_flow(flow: &Flow) {
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    let generation = current_generation();
    let socket = TransportAddr {
        addr: flow.src,
        port: flow.sport,
        protocol: flow.protocol,
        _pad: 0,
    };
    if flow.dport == ANY_BACKEND_PORT {
        return;
    }
    // SAFETY: copied out at once.
    let Some(frontend) = (unsafe { PALISADE_SERVICE_PENDING.get(socket) }).copied() else {
        return;
    };
    let pair = BackendKey {
        frontend,
        backend: TransportAddr {
            addr: flow.dst,
            port: flow.dport,
            protocol: flow.protocol,
            _pad: 0,
        },
    };
    // SAFETY: only presence is read.
    if unsafe { PALISADE_SERVICE_BACKENDS.get(pair) }.is_none() {
        // Not this frontend's backend: the socket's pending frontend is another flow's.
        return;
    }
    let sent = ConntrackKey {
        src: flow.src,
        dst: frontend.addr,
        sport: flow.sport,
        dport: frontend.port,
        protocol: flow.protocol,
        _pad: [0; 3],
    };
    remember(
        &sent,
        flow,
        ALLOWED_BY_EGRESS | (EGRESS_CHECK as u32) << 8,
        generation,
        now,
    );
    // A failed insert leaves the flow checked against the frontend after a policy change:
    // cut, the safe side.
    let _ = PALISADE_SERVICE_FLOWS.insert(sent, pair.backend, 0);
    let _ = PALISADE_SERVICE_PENDING.remove(socket);
    if flow.src == flow.dst {
        // A pod's packet reaches its own interface's egress from itself only as a hairpin
        // found masqueraded (a pod's packets to itself never leave it otherwise): the checks
        // that meet the delivered tuple judge the pod's socket in its place.
        let delivered = ConntrackKey {
            src: flow.masquerade_addr,
            dst: flow.dst,
            sport: flow.masquerade_port,
            dport: flow.dport,
            protocol: flow.protocol,
            _pad: [0; 3],
        };
        let marker = ConntrackValue {
            flags: MASQUERADED_HAIRPIN,
            state: state::NEW,
            last_seen_ns: now,
            generation: [0; 2],
        };
        // The socket first: a marker without it denies. A failed insert leaves the pod's
        // ingress judging the masquerade address (the node: allowed), as if no hairpin had
        // been recognised; its egress was decided above.
        if PALISADE_SERVICE_HAIRPINS
            .insert(delivered, socket, 0)
            .is_ok()
        {
            let _ = PALISADE_CONNTRACK.insert(delivered, marker, 0);
        }
    }
}

/// A packet's tuple as sent (`forward`) and reversed (`original`: the connection a reply
/// answers).
pub struct Tuples {
    pub forward: ConntrackKey,
    pub original: ConntrackKey,
    /// Bits of the decision in progress, kept here rather than in registers (see
    /// `decide_flow`): 1 look the tuple up, 2 look the reversed tuple up, 4 may open a flow.
    pub tracking: u32,
    /// What policy is asked about the packet (see `allows`): the protocol in the low byte,
    /// bit 8 set for the egress policy (else ingress); the source port in the high half of
    /// `ports`, the destination port (ICMP: type and code) in the low half; the peer.
    pub question: u32,
    pub ports: u32,
    pub peer: [u8; 16],
    /// Whether the packet is a first fragment (1), and the key its verdict is recorded under
    /// (see `decide_first`).
    pub first_fragment: u32,
    pub fragment: FragmentKey,
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

/// Whether an ICMP error is related: it travels back to the sender of the packet it quotes
/// (and, at an egress check, comes from that packet's destination), is no larger than a router may send (576 bytes IPv4, 1280 IPv6: RFC 1812, RFC 4443), is
/// not fragmented (so it unlocks no later fragments), and quotes a flow this endpoint's own
/// check allowed: as its original (`checks`' high byte: the counterpart check) or as a reply
/// to it (the low byte: this check). Or it is kube-proxy's rejection of a flow to a Service
/// frontend without backends, sent from that frontend.
#[inline(never)]
fn related(flow: &Flow, checks: u32) -> bool {
    let quoted = &flow.quoted;
    let largest = if flow.protocol == IPPROTO_ICMP {
        576
    } else {
        1280
    };
    // A pod sends errors only about packets it received (it routes nothing): at an egress
    // check the quoted packet was sent to the endpoint.
    let egress = checks & 0xff == ALLOWED_BY_EGRESS;
    if quoted.src != flow.dst
        || (egress && quoted.dst != flow.src)
        || !matches!(flow.fragment, Fragment::No)
        || flow.frame_len > largest + ETH_HDR_LEN
    {
        return false;
    }
    rejected_by_kube_proxy(flow)
        || tracked_by(
            &quoted.src,
            &quoted.dst,
            u32::from(quoted.sport) << 16 | u32::from(quoted.dport),
            quoted.protocol,
            checks >> 8,
        )
        || tracked_by(
            &quoted.dst,
            &quoted.src,
            u32::from(quoted.dport) << 16 | u32::from(quoted.sport),
            quoted.protocol,
            checks & 0xff,
        )
}

/// Whether the endpoint's policy allows the packet `keys` asks about (`question`, `ports`,
/// `peer`): not isolated, or a table allows it.
#[inline(never)]
fn allows(endpoint: &EndpointPolicy, keys: &Tuples, decided: &mut Decided) -> bool {
    // SAFETY: fields of this CPU's slot; volatile, so that the values are read as the
    // verifier sees them (unknown), not forwarded from the caller's stores.
    let (question, ports) = unsafe {
        (
            core::ptr::read_volatile(&keys.question),
            core::ptr::read_volatile(&keys.ports),
        )
    };
    let policy = if question & 1 << 8 != 0 {
        &endpoint.egress
    } else {
        &endpoint.ingress
    };
    policy.isolated == 0 || policy_allows(question as u8, ports, policy, &keys.peer, decided)
}

/// Which entry decided a packet, for its flow event. `flags` holds only the bits the datapath
/// reads (`rule::flags::LOG`).
#[derive(Default)]
struct Decided {
    table: u32,
    rule_ref: u32,
    flags: u32,
}

/// Whether a decision with this outcome writes a flow event (beyond `Log` rules): every one
/// when the agent keeps flow records, denies when it logs them.
#[inline(always)]
pub fn events_for(allowed: bool) -> bool {
    let asked = PALISADE_CONFIG.get(config::EVENTS).copied().unwrap_or(0);
    let wanted = if allowed {
        config::events::FLOWS
    } else {
        config::events::FLOWS | config::events::DENIES
    };
    asked & wanted != 0
}

/// [`palisade_emit`]'s first argument: the event's direction in the low byte, allowed in
/// the next.
#[inline(always)]
pub fn event_bits(direction: Direction, allowed: bool) -> u32 {
    let direction = if direction.egress() {
        flow_event::FROM_ENDPOINT
    } else {
        flow_event::TO_ENDPOINT
    };
    u32::from(direction) | u32::from(allowed) << 8
}

/// Writes a flow event for the packet being decided (the `Flow` in this CPU's
/// `PALISADE_SCRATCH` slot, as the decision left it), within this CPU's budget for the current
/// second. `bits`: the event's direction and whether it was allowed (see [`event_bits`]);
/// a denied one's reason is the slot's `drop_reason`. `table` and `rule_ref`: the entry that
/// decided it (see `Decided`; 0 for drops before policy). Returns 0.
///
/// A global function, verified once on its own (see [`palisade_table_verdict`]): it runs for
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
    let event = FlowEvent {
        time_ns: now,
        src: flow.src,
        dst: flow.dst,
        sport: flow.sport,
        dport: if icmp {
            flow.icmp_type_code
        } else {
            flow.dport
        },
        protocol: flow.protocol,
        direction: (bits & 0xff) as u8,
        allowed,
        reason: if allowed == 0 {
            flow.drop_reason as u8
        } else {
            0
        },
        ifindex,
        table,
        rule_ref,
    };
    if PALISADE_FLOWS.output(event, 0).is_ok() {
        budget.written += 1;
    } else {
        // The ring is full (no reader): the packet's verdict is unaffected.
        budget.dropped += 1;
    }
    0
}

/// Counts a packet against the rule entry that decided it (`policy_common::rule_hits`):
/// `outcome` has the verdict in bit 0 and, in bit 1, whether the packet opened a tracked
/// connection. Returns 0. A global function with scalar arguments, verified once on its own
/// (see [`palisade_table_verdict`]).
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

/// An ICMP error from a frontend without backends about a flow sent to it.
#[inline(always)]
fn rejected_by_kube_proxy(flow: &Flow) -> bool {
    let quoted = &flow.quoted;
    if quoted.dst != flow.src {
        return false;
    }
    let key = TransportAddr {
        addr: quoted.dst,
        port: quoted.dport,
        protocol: quoted.protocol,
        _pad: 0,
    };
    // SAFETY: the flags are read at once.
    unsafe { PALISADE_SERVICES.get(key) }.is_some_and(|v| v.flags & frontend::NO_BACKENDS != 0)
}

/// Whether the flow (`ports`: source in the high half) is tracked as allowed by `check`.
#[inline(always)]
fn tracked_by(src: &[u8; 16], dst: &[u8; 16], ports: u32, protocol: u8, check: u32) -> bool {
    let key = ConntrackKey {
        src: *src,
        dst: *dst,
        sport: (ports >> 16) as u16,
        dport: ports as u16,
        protocol,
        _pad: [0; 3],
    };
    // SAFETY: only the flags are read, at once.
    unsafe { PALISADE_CONNTRACK.get(key) }.is_some_and(|v| v.flags & (check | REVOKED) == check)
}

/// Follows a tracked connection's state with the packet just passed.
#[inline(always)]
fn track(entry: &mut ConntrackValue, flow: &Flow, reply: bool, now: u64) {
    entry.last_seen_ns = now;
    if flow.protocol == IPPROTO_TCP {
        let flags = flow.tcp_flags;
        if flags & tcp_flags::RST != 0 {
            entry.state = state::CLOSED;
        } else if flags & tcp_flags::FIN != 0 {
            entry.state = state::CLOSING;
        } else if !reply
            && flags & tcp_flags::SYN != 0
            && flags & tcp_flags::ACK == 0
            && entry.state >= state::CLOSING
        {
            // The tuple is reused for a new connection.
            entry.state = state::NEW;
        } else if reply && entry.state == state::NEW {
            entry.state = state::ESTABLISHED;
        }
    } else if reply {
        entry.state = state::ESTABLISHED;
    }
}

#[inline(never)]
fn policy_allows(
    protocol: u8,
    ports: u32,
    policy: &PolicyList,
    peer_addr: &[u8; 16],
    decided: &mut Decided,
) -> bool {
    let (sport, dport) = ((ports >> 16) as u16, ports as u16);
    let peer = IdentityKey { addr: *peer_addr };
    // A whole address (a pod's) in the hash; shorter prefixes in the trie, only on a miss.
    // SAFETY: the value is copied out at once.
    let exact = unsafe { PALISADE_ADDRESSES.get(peer) }.copied();
    let (pod_identity, cidr_identity) = exact
        .or_else(|| PALISADE_IDENTITIES.get(&Key::new(128, peer)).copied())
        .map_or((identity::WORLD, identity::WORLD), |slots| {
            // The numbering this endpoint's tables were built for (see IdentitySlots).
            let value = slots.get(policy.numbering);
            (value.pod_identity, value.cidr_identity)
        });
    if pod_identity == identity::HOST {
        return true;
    }
    let packet = u64::from(protocol) | u64::from(sport) << 16 | u64::from(dport) << 32;
    // The endpoint's tables in order; the first with a verdict decides. A bounded loop the
    // verifier can check: at most MAX_TABLES calls of a function it has verified once.
    for slot in 0..MAX_TABLES {
        if slot as u32 >= policy.count {
            break;
        }
        let table = policy.tables[slot];
        let answer = palisade_table_verdict(
            table.table,
            table.lookups,
            pod_identity,
            cidr_identity,
            packet,
        );
        if answer & table_answer::FOUND != 0 {
            decided.table = table.table;
            decided.rule_ref = answer as u32;
            decided.flags = if answer & table_answer::LOG != 0 {
                rule_flags::LOG
            } else {
                0
            };
            // Explicit deny or an unknown action drops; only ALLOW passes.
            return answer & table_answer::ALLOW != 0;
        }
    }
    // Isolated, and no table has a verdict: drop.
    false
}

/// What [`palisade_table_verdict`] answers: 0 when the table has no entry for the packet,
/// else these bits over the entry's `rule_ref` (the low 32 bits).
mod table_answer {
    /// The table has an entry for the packet: it decides.
    pub const FOUND: u64 = 1 << 32;
    /// The entry's action is ALLOW (anything else drops).
    pub const ALLOW: u64 = 1 << 33;
    /// The entry's flags have `rule::flags::LOG` (the only flag the datapath reads).
    pub const LOG: u64 = 1 << 34;
}

/// One table's verdict for a packet from a peer with these identities (`packet`: the
/// protocol in the low byte, the source port at bit 16, the destination port, or ICMP type
/// and code, at bit 32); see [`table_answer`].
///
/// A global function (exported, so its BTF linkage is global): the verifier checks it once,
/// on its own, for any values of its arguments, and a call of it costs the caller one
/// instruction and an unknown result. As a static function it was walked again for every
/// state the table loop reached it in, and each of its lookups (hit or miss) multiplied the
/// states of the next iteration: the loop of 16 tables was most of the programs' verification
/// (about 500,000 of `palisade_from_endpoint`'s 570,000 instructions). Hence scalar arguments
/// and a scalar result only: a global function's pointer arguments are checked by type, not
/// by what the caller knows of them.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn palisade_table_verdict(
    table: u32,
    lookups: u32,
    pod_identity: u32,
    cidr_identity: u32,
    packet: u64,
) -> u64 {
    let protocol = packet as u8;
    let (sport, dport) = ((packet >> 16) as u16, (packet >> 32) as u16);
    let mut key = RuleKey {
        table,
        peer_identity: 0,
        protocol,
        source_class: if lookups & lookup::SOURCE_PORTS != 0 {
            source_class(table, protocol, sport)
        } else {
            0
        },
        port_be: dport.to_be(),
    };
    // Selector rules are keyed by pod identity, ipBlock rules by CIDR identity, rules
    // without peers by ANY: within a table, the first lookup that matches decides.
    let mut verdict = None;
    if lookups & lookup::ORDERED != 0 {
        key.peer_identity = if pod_identity != identity::WORLD {
            pod_identity
        } else {
            cidr_identity
        };
        verdict = rule_action(&key);
    }
    if verdict.is_none() && lookups & lookup::POD != 0 {
        key.peer_identity = pod_identity;
        verdict = rule_action(&key);
    }
    if verdict.is_none() && lookups & lookup::CIDR != 0 {
        key.peer_identity = cidr_identity;
        verdict = rule_action(&key);
    }
    if verdict.is_none() && lookups & lookup::ANY != 0 {
        key.peer_identity = identity::ANY;
        verdict = rule_action(&key);
    }
    let Some(value) = verdict else {
        return 0;
    };
    let mut answer = table_answer::FOUND | u64::from(value.rule_ref);
    if value.action == action::ALLOW {
        answer |= table_answer::ALLOW;
    }
    if value.flags & rule_flags::LOG != 0 {
        answer |= table_answer::LOG;
    }
    answer
}

/// The class of a source port in a table with source-port rules: its class entry's, or 0.
#[inline(never)]
fn source_class(table: u32, protocol: u8, sport: u16) -> u8 {
    let key = RuleKey {
        table,
        peer_identity: identity::SOURCE_PORTS,
        protocol,
        source_class: 0,
        port_be: sport.to_be(),
    };
    // Read in place rather than through `rule_action`'s copy: the verifier rejects the code
    // LLVM makes of a copied-out `Option` read only on the hit path.
    let class = |value: &RuleValue| {
        if value.action == action::SOURCE_CLASS {
            value.rule_ref as u8
        } else {
            0
        }
    };
    // SAFETY: the value is read at once.
    if let Some(value) = unsafe { PALISADE_RULES_EXACT.get(key) } {
        return class(value);
    }
    PALISADE_RULES
        .get(&Key::new(PREFIX_FULL, key))
        .map_or(0, class)
}

/// The longest rule entry matching `key`: the exact entry in the hash, else the trie's
/// longest prefix (see `policy_common::rule`).
#[inline(always)]
fn rule_action(key: &RuleKey) -> Option<RuleValue> {
    // SAFETY: the value is copied out at once.
    match unsafe { PALISADE_RULES_EXACT.get(key) } {
        Some(value) => Some(*value),
        None => PALISADE_RULES.get(&Key::new(PREFIX_FULL, *key)).copied(),
    }
}

/// Records that a check allowed the flow at `generation`, so its later packets and replies
/// pass. `check_and_index`: the check's flag bit, and its stamp index in bits 8 and up (five
/// arguments is what a BPF subprogram can take).
#[inline(never)]
fn remember(key: &ConntrackKey, flow: &Flow, check_and_index: u32, generation: u32, now: u64) {
    let check = check_and_index & 0xff;
    let index = if check_and_index >> 8 == 0 { 0 } else { 1 };
    if let Some(entry) = PALISADE_CONNTRACK.get_ptr_mut(key) {
        // SAFETY: as in `decide_flow`.
        let entry = unsafe { &mut *entry };
        // (A tombstone of an older policy is simply replaced.)
        if !entry.expired(flow.protocol, now) && entry.flags & REVOKED == 0 {
            // The other end's check (same-node traffic) recorded it first.
            entry.flags |= check;
            entry.generation[index] = generation;
            track(entry, flow, false, now);
            return;
        }
    }
    let mut value = ConntrackValue {
        flags: check,
        state: state::NEW,
        last_seen_ns: now,
        generation: [0; 2],
    };
    value.generation[index] = generation;
    track(&mut value, flow, false, now);
    // A failed insert (map full of in-use entries) only means later packets and replies are
    // checked against policy like any other packet: the safe side.
    let _ = PALISADE_CONNTRACK.insert(key, value, 0);
}
