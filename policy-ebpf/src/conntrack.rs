//! Connection tracking (`policy_common::conntrack`): following a tracked connection's state
//! ([`track`]), recording a flow a check allowed ([`remember`]), asking whether a flow is
//! tracked as allowed ([`tracked_by`]), and ICMP errors related to a tracked flow
//! ([`related`]); and the policy generation that entries (and fragments' verdicts) are stamped
//! with ([`current_generation`]).
//!
//! Apart from the decision (`decision::decide_flow`, which looks its entries up in place)
//! because the Service handling records flows through it too (`services::link_service_flow`).

use policy_common::{
    config,
    conntrack::{
        ALLOWED_BY_EGRESS, ALLOWED_BY_INGRESS, ConntrackKey, ConntrackValue, ORIGINAL, REPLY,
        REVOKED, SENT_HERE, state,
    },
};

use crate::{
    decision::Direction,
    maps::{PALISADE_CONFIG, PALISADE_CONNTRACK},
    packet::{Flow, Fragment, tcp_flags},
    protocol::{ETH_HDR_LEN, IPPROTO_ICMP, IPPROTO_TCP},
    services::rejected_by_kube_proxy,
};

/// The policy generation the agent last programmed.
#[inline(always)]
pub(crate) fn current_generation() -> u32 {
    PALISADE_CONFIG
        .get(config::GENERATION)
        .copied()
        .unwrap_or(0)
}

/// Follows a tracked connection's state with the packet just passed.
#[inline(always)]
pub(crate) fn track(entry: &mut ConntrackValue, flow: &Flow, reply: bool, now: u64) {
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

/// Counts a packet of a tracked connection that passed without a decision, if this check is
/// the one that counts it (see `ConntrackValue::packets`): the sender's own interface always
/// does; the receiver's does unless the sender's own interface met the same tuple (the
/// entry's flags say so); the check after netfilter never does (the sender's interface came
/// first, before kube-proxy's translation).
#[inline(always)]
pub(crate) fn count_passed(
    entry: &mut ConntrackValue,
    direction: Direction,
    reply: bool,
    len: u32,
) {
    let first_on_node = match direction {
        Direction::FromEndpoint => true,
        Direction::ToEndpoint => {
            let sender_was_here = if reply { ALLOWED_BY_INGRESS } else { SENT_HERE };
            entry.flags & sender_was_here == 0
        }
        Direction::AfterNat => false,
    };
    if !first_on_node {
        return;
    }
    let (packets, bytes) = if reply {
        (&mut entry.packets[REPLY], &mut entry.bytes[REPLY])
    } else {
        (&mut entry.packets[ORIGINAL], &mut entry.bytes[ORIGINAL])
    };
    *packets = packets.wrapping_add(1);
    *bytes = bytes.wrapping_add(len);
}

/// [`remember`]'s `check_and_index`: the caller looked the key up in this program run and
/// found no entry, so there is none to merge with (one lookup fewer for a new flow).
pub(crate) const KNOWN_ABSENT: u32 = 1 << 9;

/// Records that a check allowed the flow at `generation`, so its later packets and replies
/// pass. `check_and_index`: the check's flag bits in the low byte, its stamp index in bit 8,
/// and [`KNOWN_ABSENT`] (five arguments is what a BPF subprogram can take).
#[inline(never)]
pub(crate) fn remember(
    key: &ConntrackKey,
    flow: &Flow,
    check_and_index: u32,
    generation: u32,
    now: u64,
) {
    let check = check_and_index & 0xff;
    let index = if (check_and_index >> 8) & 1 == 0 {
        0
    } else {
        1
    };
    let existing = if check_and_index & KNOWN_ABSENT != 0 {
        None
    } else {
        PALISADE_CONNTRACK.get_ptr_mut(key)
    };
    if let Some(entry) = existing {
        // SAFETY: as in `decision::decide_flow`.
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
        packets: [0; 2],
        bytes: [0; 2],
    };
    value.generation[index] = generation;
    track(&mut value, flow, false, now);
    // A failed insert (map full of in-use entries) only means later packets and replies are
    // checked against policy like any other packet: the safe side.
    let _ = PALISADE_CONNTRACK.insert(key, value, 0);
}

/// Whether the flow (`ports`: source in the high half) is tracked as allowed by `check`.
#[inline(always)]
pub(crate) fn tracked_by(
    src: &[u8; 16],
    dst: &[u8; 16],
    ports: u32,
    protocol: u8,
    check: u32,
) -> bool {
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

/// Whether an ICMP error is related: it travels back to the sender of the packet it quotes
/// (and, at an egress check, comes from that packet's destination), is no larger than a router may send (576 bytes IPv4, 1280 IPv6: RFC 1812, RFC 4443), is
/// not fragmented (so it unlocks no later fragments), and quotes a flow this endpoint's own
/// check allowed: as its original (`checks`' high byte: the counterpart check) or as a reply
/// to it (the low byte: this check). Or it is kube-proxy's rejection of a flow to a Service
/// frontend without backends, sent from that frontend.
#[inline(never)]
pub(crate) fn related(flow: &Flow, checks: u32) -> bool {
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
