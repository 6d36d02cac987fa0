//! `PALISADE_CONNTRACK`: connections the policy allowed, their state, and when policy last
//! confirmed them.
//!
//! NetworkPolicy allows connections, not packets: the reply to an allowed connection must pass
//! even where its direction is isolated. Each check that allows a packet records the flow (as
//! sent, "original direction") with a bit saying which check allowed it:
//!
//! * the source endpoint's egress check sets [`ALLOWED_BY_EGRESS`];
//! * the destination endpoint's ingress check sets [`ALLOWED_BY_INGRESS`].
//!
//! Later packets of the flow pass their check without a policy lookup; a packet whose reversed
//! tuple is recorded is a reply: at the replying endpoint's egress it passes if the original
//! was allowed by that endpoint's ingress, and at the original sender's ingress if the original
//! was allowed by that sender's egress. ICMP errors quoting a tracked flow pass as related.
//!
//! Every entry carries, per check, the policy generation (`PALISADE_CONFIG`) at which policy
//! last allowed it. The agent bumps the generation after each change it programs; the next
//! packet of a flow whose stamp is older is checked against policy again, and a flow policy no
//! longer allows is cut (its entry removed, the packet dropped). So revoking an allow cuts
//! established connections at their next packet, where Calico and Cilium let them live on.
//!
//! Entries expire by protocol state ([`timeout`]); an expired or evicted (LRU) entry is simply
//! absent, and a packet without an entry is decided by policy like any first packet: losing an
//! entry can drop a reply, never pass one policy would not.

pub const ALLOWED_BY_EGRESS: u32 = 1;
pub const ALLOWED_BY_INGRESS: u32 = 1 << 1;
/// Not a connection of its own: kube-proxy's masquerade of a pod reaching itself through its
/// own Service, as delivered (masquerade address and port → the pod). Checks that meet it
/// judge the pod's own socket in its place (`PALISADE_SERVICE_HAIRPINS` names it; see
/// `crate::service`). It allows nothing by itself.
pub const MASQUERADED_HAIRPIN: u32 = 1 << 2;
/// A connection policy cut (a revoked allow), kept as a tombstone with the bit of the check
/// that cut it: while it lives (the protocol's timeout, renewed by every packet that meets
/// it) and policy has not changed since (`generation[0]` is the generation that cut it),
/// neither end may open a flow on its tuple again, except that check, in the tuple's own
/// direction, once its policy allows the packet again. Packets are still decided by policy
/// one by one, but no other is recorded, so none can turn the other direction's packets into
/// replies. It allows nothing by itself (its check bit never counts without `REVOKED` clear).
pub const REVOKED: u32 = 1 << 3;
/// The sender's own interface on this node recorded the tuple (its egress check, before any
/// translation: not the check after netfilter, which sees kube-proxy's rewrite). Says who
/// counts the connection's packets (see [`ConntrackValue::packets`]); allows nothing.
pub const SENT_HERE: u32 = 1 << 4;

/// Index of each check's generation stamp in [`ConntrackValue::generation`].
pub const EGRESS_CHECK: usize = 0;
pub const INGRESS_CHECK: usize = 1;

/// Connection states ([`ConntrackValue::state`]).
pub mod state {
    /// Opened (a TCP SYN, or the first packet of another protocol); no reply seen yet.
    pub const NEW: u32 = 0;
    /// A reply was seen.
    pub const ESTABLISHED: u32 = 1;
    /// TCP: a FIN was seen; the connection is closing.
    pub const CLOSING: u32 = 2;
    /// TCP: a RST was seen.
    pub const CLOSED: u32 = 3;
}

/// How long an entry lives after its last packet, by protocol and state, in nanoseconds.
pub mod timeout {
    const SECOND: u64 = 1_000_000_000;
    /// TCP before the reply (a SYN nobody answers).
    pub const TCP_NEW: u64 = 60 * SECOND;
    pub const TCP_ESTABLISHED: u64 = 2 * 60 * 60 * SECOND;
    pub const TCP_CLOSING: u64 = 30 * SECOND;
    pub const TCP_CLOSED: u64 = 10 * SECOND;
    /// UDP, ICMP echo and every other protocol.
    pub const OTHER: u64 = 60 * SECOND;
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConntrackKey {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// Host order; 0 for protocols without ports. ICMP echo: the request has the identifier
    /// as `sport` and 0 as `dport`, the reply the other way round, so one is the other's
    /// reversed tuple.
    pub sport: u16,
    pub dport: u16,
    pub protocol: u8,
    pub _pad: [u8; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ConntrackValue {
    /// [`ALLOWED_BY_EGRESS`] | [`ALLOWED_BY_INGRESS`].
    pub flags: u32,
    /// One of [`state`].
    pub state: u32,
    /// `bpf_ktime_get_ns` of the last packet.
    pub last_seen_ns: u64,
    /// Policy generation at which each check ([`EGRESS_CHECK`], [`INGRESS_CHECK`]) last
    /// allowed the flow.
    pub generation: [u32; 2],
    /// Packets of the tracked connection after the one its check decided, as sent
    /// ([`ORIGINAL`]) and as replied ([`REPLY`]): counted once per entry, by the sender's own
    /// interface if it met this tuple (the original's sender if [`SENT_HERE`] is set, the
    /// reply's if [`ALLOWED_BY_INGRESS`] is), else by the receiver's, so a same-node
    /// connection is not counted twice. A flow through a Service has two entries (as sent to
    /// the frontend, as delivered to the backend), each counted in full. The decided packets
    /// are in their flow events. Wrapping; readers take differences.
    pub packets: [u32; 2],
    /// Bytes of those packets as the interface carries them (the Ethernet header included, as
    /// Cilium's and Calico's eBPF connection tables count them). 32 bits, so that the value is
    /// 40 bytes and a table element (its 48-byte header and 40-byte key) two cache lines: at 48
    /// bytes a new flow's insert touched a third, cold one, about 100 ns. The flow records read
    /// every followed connection each second: the counters wrap between reads only past 4 GiB/s.
    pub bytes: [u32; 2],
}

/// [`ConntrackValue::packets`] and [`ConntrackValue::bytes`]: the connection's direction.
pub const ORIGINAL: usize = 0;
/// See [`ORIGINAL`].
pub const REPLY: usize = 1;

impl ConntrackValue {
    /// Whether this is a tombstone ([`REVOKED`]) that still holds at `generation` and
    /// `now_ns`.
    #[inline(always)]
    pub fn revoked(&self, protocol: u8, generation: u32, now_ns: u64) -> bool {
        self.flags & REVOKED != 0
            && self.generation[0] == generation
            && !self.expired(protocol, now_ns)
    }

    /// Whether the entry has outlived its state's timeout at `now_ns`.
    #[inline(always)]
    pub fn expired(&self, protocol: u8, now_ns: u64) -> bool {
        let ttl = if protocol == 6 {
            match self.state {
                state::ESTABLISHED => timeout::TCP_ESTABLISHED,
                state::CLOSING => timeout::TCP_CLOSING,
                state::CLOSED => timeout::TCP_CLOSED,
                _ => timeout::TCP_NEW,
            }
        } else {
            timeout::OTHER
        };
        now_ns.saturating_sub(self.last_seen_ns) > ttl
    }
}

#[cfg(feature = "user")]
// SAFETY: repr(C); 16 + 16 + 2 + 2 + 1 + 3 = 40 bytes, no padding.
unsafe impl aya::Pod for ConntrackKey {}
#[cfg(feature = "user")]
// SAFETY: repr(C); u32, u32, u64, [u32; 2], [u32; 2], [u32; 2]: 40 bytes, no padding.
unsafe impl aya::Pod for ConntrackValue {}

const _: () = assert!(core::mem::size_of::<ConntrackValue>() == 40);
