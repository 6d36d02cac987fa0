//! The decision: endpoint lookup, reply tracking, peer identity, rule lookup.

use aya_ebpf::btf_maps::lpm_trie::Key;
use aya_ebpf::helpers::bpf_ktime_get_ns;
use policy_common::{
    config,
    conntrack::{
        ALLOWED_BY_EGRESS, ALLOWED_BY_INGRESS, ConntrackKey, ConntrackValue, EGRESS_CHECK,
        INGRESS_CHECK, state,
    },
    endpoint::{EndpointKey, EndpointPolicy, IFINDEX_UNBOUND, MAX_TABLES, PolicyList, lookup},
    flow::{self as flow_event, FlowEvent},
    fragment::{FragmentKey, FragmentValue},
    identity::{self, IdentityKey},
    rule::{PREFIX_FULL, RuleKey, RuleValue, action, flags as rule_flags},
};

use crate::{
    PALISADE_ADDRESSES, PALISADE_CONFIG, PALISADE_CONNTRACK, PALISADE_ENDPOINTS,
    PALISADE_FLOW_BUDGET, PALISADE_FLOWS, PALISADE_FRAGMENTS, PALISADE_IDENTITIES, PALISADE_RULES,
    PALISADE_RULES_EXACT,
    packet::{Flow, Fragment, tcp_flags},
};

const IPPROTO_TCP: u8 = 6;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_ICMPV6: u8 = 58;

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
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
}

/// `host`: the program runs on a host endpoint's interface, where packets of other
/// addresses (forwarded pod traffic, the node's other addresses) are not this endpoint's to
/// judge and pass; the pods' own programs judge theirs.
#[inline(never)]
pub fn decide(flow: &Flow, direction: Direction, ifindex: u32, host: bool) -> Verdict {
    let not_ours = if host { Verdict::Allow } else { Verdict::Deny };
    let (endpoint_addr, peer_addr) = match direction {
        Direction::FromEndpoint => (flow.src, flow.dst),
        Direction::ToEndpoint => (flow.dst, flow.src),
    };
    // SAFETY: the value is read in place (it is too large to copy onto the 512-byte stack);
    // the agent replaces an endpoint's value with one map update, never field by field.
    let Some(endpoint) = (unsafe {
        PALISADE_ENDPOINTS.get(EndpointKey {
            addr: endpoint_addr,
        })
    }) else {
        // Not an address of a known endpoint (spoofed, or not programmed yet): drop, unless
        // this is a host interface, where it is simply someone else's traffic.
        return not_ours;
    };
    if endpoint.ifindex != IFINDEX_UNBOUND && endpoint.ifindex != ifindex {
        // Another endpoint's address on this interface: spoofed on a pod's interface (drop),
        // another endpoint's traffic crossing a host interface (theirs to judge).
        return not_ours;
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
            let verdict = decide_flow(flow, direction, endpoint, &peer_addr, ifindex);
            let value = FragmentValue {
                allowed: u32::from(verdict == Verdict::Allow),
            };
            // A failed insert (map full) only means the later fragments are dropped.
            let _ = PALISADE_FRAGMENTS.insert(fragment_key(id), value, 0);
            verdict
        }
        Fragment::No => decide_flow(flow, direction, endpoint, &peer_addr, ifindex),
    }
}

/// The verdict for a packet of a known endpoint: a tracked connection, a related ICMP error,
/// or policy. Not inlined, like the parser, for its own stack frame.
#[inline(never)]
fn decide_flow(
    flow: &Flow,
    direction: Direction,
    endpoint: &EndpointPolicy,
    peer_addr: &[u8; 16],
    ifindex: u32,
) -> Verdict {
    let this_check = match direction {
        Direction::FromEndpoint => ALLOWED_BY_EGRESS,
        Direction::ToEndpoint => ALLOWED_BY_INGRESS,
    };
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    let generation = PALISADE_CONFIG
        .get(config::GENERATION)
        .copied()
        .unwrap_or(0);
    let (this_index, counterpart_check, counterpart_index) = match direction {
        // We send: a reply we send answers what came in through our ingress check.
        Direction::FromEndpoint => (EGRESS_CHECK, ALLOWED_BY_INGRESS, INGRESS_CHECK),
        // We receive: a reply we receive answers what left through our egress check.
        Direction::ToEndpoint => (INGRESS_CHECK, ALLOWED_BY_EGRESS, EGRESS_CHECK),
    };
    let (this_policy, counterpart_policy) = match direction {
        Direction::FromEndpoint => (&endpoint.egress, &endpoint.ingress),
        Direction::ToEndpoint => (&endpoint.ingress, &endpoint.egress),
    };
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

    // The verifier walks every path through the rule loop once per call site, so the
    // decision below needs policy at most once, from a single call: first find out what to
    // ask it (and about which tracked entry), then ask.
    let mut pending = Pending::New;
    let mut tracked: *mut ConntrackValue = core::ptr::null_mut();

    // A later packet of a flow this check allowed: no policy lookup, unless policy changed
    // since (then it is checked again, and cut if no longer allowed).
    if let Some(entry) = PALISADE_CONNTRACK.get_ptr_mut(forward) {
        // SAFETY: the entry stays valid for the program run (RCU); concurrent updates of
        // its fields by another CPU are benign races on plain integers.
        let value = unsafe { &mut *entry };
        if value.flags & this_check != 0 && !value.expired(flow.protocol, now) {
            if value.generation[this_index] == generation {
                track(value, flow, false, now);
                return Verdict::Allow;
            }
            pending = Pending::Forward;
            tracked = entry;
        }
    }

    // A reply: this endpoint's side of the connection was allowed when it was opened. The
    // original's destination port is our reply's source port.
    if matches!(pending, Pending::New)
        && let Some(entry) = PALISADE_CONNTRACK.get_ptr_mut(original)
    {
        // SAFETY: as above.
        let value = unsafe { &mut *entry };
        if value.flags & counterpart_check != 0 && !value.expired(flow.protocol, now) {
            if value.generation[counterpart_index] == generation {
                track(value, flow, true, now);
                return Verdict::Allow;
            }
            pending = Pending::Reply;
            tracked = entry;
        }
    }

    // An ICMP error about a tracked flow, on its way back to that flow's sender: related.
    if matches!(pending, Pending::New) && flow.quoted.valid && related(flow) {
        return Verdict::Allow;
    }

    // Rule entries key ICMP on type and code where other protocols have the destination port.
    // A reply re-checked against a newer policy is checked as the packet it answers: for
    // ICMP that is an echo request (only echoes are tracked as connections).
    // The source port only matters to tables with source-port rules (port protocols only).
    let icmp = flow.protocol == IPPROTO_ICMP || flow.protocol == IPPROTO_ICMPV6;
    let (policy, sport, port) = match pending {
        Pending::Reply if icmp => (counterpart_policy, 0, echo_request(flow.protocol)),
        Pending::Reply => (counterpart_policy, flow.dport, flow.sport),
        _ if icmp => (this_policy, 0, flow.icmp_type_code),
        _ => (this_policy, flow.sport, flow.dport),
    };
    let ports = u32::from(sport) << 16 | u32::from(port);
    let mut decided = Decided::default();
    let allowed = allows(flow.protocol, ports, policy, peer_addr, &mut decided);
    if decided.flags & rule_flags::LOG != 0 || (!allowed && log_denies()) {
        let direction_bit = match direction {
            Direction::FromEndpoint => u32::from(flow_event::FROM_ENDPOINT),
            Direction::ToEndpoint => u32::from(flow_event::TO_ENDPOINT),
        };
        emit(
            flow,
            direction_bit | u32::from(allowed) << 8,
            ifindex,
            &decided,
            now,
        );
    }
    match pending {
        Pending::New => {
            if !allowed {
                return Verdict::Deny;
            }
            remember(
                &forward,
                flow,
                this_check | (this_index as u32) << 8,
                generation,
                now,
            );
        }
        Pending::Forward | Pending::Reply => {
            let (key, index, reply) = match pending {
                Pending::Forward => (&forward, this_index, false),
                _ => (&original, counterpart_index, true),
            };
            if !allowed {
                // Policy no longer allows the connection: cut it.
                let _ = PALISADE_CONNTRACK.remove(key);
                return Verdict::Deny;
            }
            // SAFETY: set from a successful lookup above, valid for the program run.
            let value = unsafe { &mut *tracked };
            value.generation[index] = generation;
            track(value, flow, reply, now);
        }
    }
    Verdict::Allow
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

/// Whether an ICMP error quotes a tracked flow and travels back to that flow's sender.
#[inline(never)]
fn related(flow: &Flow) -> bool {
    let quoted = &flow.quoted;
    quoted.src == flow.dst
        && (is_tracked(
            &quoted.src,
            &quoted.dst,
            quoted.sport,
            quoted.dport,
            quoted.protocol,
        ) || is_tracked(
            &quoted.dst,
            &quoted.src,
            quoted.dport,
            quoted.sport,
            quoted.protocol,
        ))
}

/// Whether a direction's policy allows a packet: not isolated, or a table allows it.
/// `ports`: the source port in the high half, the destination port (ICMP: type and code) in
/// the low half (five arguments is what a BPF subprogram can take).
#[inline(always)]
fn allows(
    protocol: u8,
    ports: u32,
    policy: &PolicyList,
    peer_addr: &[u8; 16],
    decided: &mut Decided,
) -> bool {
    policy.isolated == 0 || policy_allows(protocol, ports, policy, peer_addr, decided)
}

/// Which entry decided a packet, for its flow event.
#[derive(Default)]
struct Decided {
    table: u32,
    rule_ref: u32,
    flags: u32,
}

#[inline(always)]
fn log_denies() -> bool {
    PALISADE_CONFIG
        .get(config::LOG_DENIES)
        .is_some_and(|v| *v != 0)
}

/// Writes a flow event, within this CPU's budget for the current second.
/// `direction_and_allowed`: the event's direction in the low byte, allowed in the next (five
/// arguments is what a BPF subprogram can take).
#[inline(never)]
fn emit(flow: &Flow, direction_and_allowed: u32, ifindex: u32, decided: &Decided, now: u64) {
    let Some(budget) = PALISADE_FLOW_BUDGET.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's slot, used by nothing else during the program run.
    let budget = unsafe { &mut *budget };
    if now.wrapping_sub(budget.window_start_ns) >= 1_000_000_000 {
        budget.window_start_ns = now;
        budget.written = 0;
    }
    if budget.written >= flow_event::EVENTS_PER_SECOND {
        budget.dropped += 1;
        return;
    }
    let icmp = flow.protocol == IPPROTO_ICMP || flow.protocol == IPPROTO_ICMPV6;
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
        direction: (direction_and_allowed & 0xff) as u8,
        allowed: ((direction_and_allowed >> 8) & 1) as u8,
        _pad: 0,
        ifindex,
        table: decided.table,
        rule_ref: decided.rule_ref,
    };
    if PALISADE_FLOWS.output(event, 0).is_ok() {
        budget.written += 1;
    } else {
        // The ring is full (no reader): the packet's verdict is unaffected.
        budget.dropped += 1;
    }
}

#[inline(always)]
fn is_tracked(src: &[u8; 16], dst: &[u8; 16], sport: u16, dport: u16, protocol: u8) -> bool {
    let key = ConntrackKey {
        src: *src,
        dst: *dst,
        sport,
        dport,
        protocol,
        _pad: [0; 3],
    };
    // SAFETY: only presence is read.
    unsafe { PALISADE_CONNTRACK.get(key).is_some() }
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
        .map_or((identity::WORLD, identity::WORLD), |value| {
            (value.pod_identity, value.cidr_identity)
        });
    if pod_identity == identity::HOST {
        return true;
    }
    let mut key = RuleKey {
        table: 0,
        peer_identity: 0,
        protocol,
        source_class: 0,
        port_be: dport.to_be(),
    };
    // The endpoint's tables in order; the first with a verdict decides. A bounded loop the
    // verifier can check: at most MAX_TABLES tables of at most four lookups each.
    for slot in 0..MAX_TABLES {
        if slot as u32 >= policy.count {
            break;
        }
        let table = policy.tables[slot];
        key.table = table.table;
        key.source_class = if table.lookups & lookup::SOURCE_PORTS != 0 {
            source_class(table.table, protocol, sport)
        } else {
            0
        };
        // Selector rules are keyed by pod identity, ipBlock rules by CIDR identity, rules
        // without peers by ANY: within a table, the first lookup that matches decides.
        let mut verdict = None;
        if table.lookups & lookup::ORDERED != 0 {
            key.peer_identity = if pod_identity != identity::WORLD {
                pod_identity
            } else {
                cidr_identity
            };
            verdict = rule_action(&key);
        }
        if verdict.is_none() && table.lookups & lookup::POD != 0 {
            key.peer_identity = pod_identity;
            verdict = rule_action(&key);
        }
        if verdict.is_none() && table.lookups & lookup::CIDR != 0 {
            key.peer_identity = cidr_identity;
            verdict = rule_action(&key);
        }
        if verdict.is_none() && table.lookups & lookup::ANY != 0 {
            key.peer_identity = identity::ANY;
            verdict = rule_action(&key);
        }
        if let Some(value) = verdict {
            decided.table = table.table;
            decided.rule_ref = value.rule_ref;
            decided.flags = value.flags;
            // Explicit deny or an unknown action drops; only ALLOW passes.
            return value.action == action::ALLOW;
        }
    }
    // Isolated, and no table has a verdict: drop.
    false
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
        if !entry.expired(flow.protocol, now) {
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
