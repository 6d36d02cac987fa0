//! Services and kube-proxy (`policy_common::service`): a pod's new flow to a frontend is
//! deferred to `palisade_after_nat`, which judges it on the backend kube-proxy chose
//! ([`defer_to_service`], then [`link_service_flow`] once allowed); a pod's flow to its own
//! Service that kube-proxy masqueraded (a hairpin) is judged as the pod sent it
//! ([`unmasquerade_new_hairpin`], [`unmasquerade`]); kube-proxy's rejection of a flow to a
//! frontend without backends passes as related ([`rejected_by_kube_proxy`]).
//!
//! Apart from the decision because none of it is policy: it only changes which tuple the
//! decision judges, and when.

use policy_common::{
    conntrack::{
        ALLOWED_BY_EGRESS, ConntrackKey, ConntrackValue, EGRESS_CHECK, MASQUERADED_HAIRPIN,
        SENT_HERE, state,
    },
    service::{ANY_BACKEND_PORT, BackendKey, HairpinKey, TransportAddr, frontend},
};

use crate::{
    clock::now_ns,
    conntrack::{current_generation, remember, track},
    maps::{
        PALISADE_CONNTRACK, PALISADE_SERVICE_BACKENDS, PALISADE_SERVICE_FLOWS,
        PALISADE_SERVICE_HAIRPIN_PENDING, PALISADE_SERVICE_HAIRPINS, PALISADE_SERVICE_PENDING,
        PALISADE_SERVICES,
    },
    packet::{Flow, tcp_flags},
    protocol::{IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP},
};

/// What a pod's new flow is sending to.
pub(crate) enum Frontend {
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
pub(crate) fn defer_to_service(flow: &Flow) -> Frontend {
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
pub(crate) fn unmasquerade_new_hairpin(flow: &mut Flow) -> bool {
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
pub(crate) fn unmasquerade(
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
pub(crate) fn link_service_flow(flow: &Flow) {
    let now = now_ns();
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
    // The socket's pending frontend, if it has this backend (else it is another flow's).
    let Some(frontend) = addressed_frontend(flow) else {
        return;
    };
    let backend = TransportAddr {
        addr: flow.dst,
        port: flow.dport,
        protocol: flow.protocol,
        _pad: 0,
    };
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
        ALLOWED_BY_EGRESS | SENT_HERE | (EGRESS_CHECK as u32) << 8,
        generation,
        now,
    );
    // A failed insert leaves the flow checked against the frontend after a policy change:
    // cut, the safe side.
    let _ = PALISADE_SERVICE_FLOWS.insert(sent, backend, 0);
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
            packets: [0; 2],
            bytes: [0; 2],
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

/// The frontend a pod's new flow addressed, at the check after netfilter: the pod's socket's
/// pending frontend (see [`defer_to_service`]), if it has the packet's destination as a
/// backend. For the flow's event, before [`link_service_flow`] takes the pending entry.
#[inline(always)]
pub(crate) fn addressed_frontend(flow: &Flow) -> Option<TransportAddr> {
    let socket = TransportAddr {
        addr: flow.src,
        port: flow.sport,
        protocol: flow.protocol,
        _pad: 0,
    };
    // SAFETY: copied out at once.
    let frontend = unsafe { PALISADE_SERVICE_PENDING.get(socket) }.copied()?;
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
    unsafe { PALISADE_SERVICE_BACKENDS.get(pair) }
        .is_some()
        .then_some(frontend)
}

/// An ICMP error from a frontend without backends about a flow sent to it.
#[inline(always)]
pub(crate) fn rejected_by_kube_proxy(flow: &Flow) -> bool {
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
