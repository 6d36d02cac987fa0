//! `PALISADE_CONNTRACK`: connections the policy allowed, so their replies pass.
//!
//! NetworkPolicy allows connections, not packets: the reply to an allowed connection must pass
//! even where its direction is isolated. Each check that allows a packet records the flow (as
//! sent, "original direction") with a bit saying which check allowed it:
//!
//! * the source endpoint's egress check sets [`ALLOWED_BY_EGRESS`];
//! * the destination endpoint's ingress check sets [`ALLOWED_BY_INGRESS`].
//!
//! A packet whose reversed tuple is recorded is a reply: at the replying endpoint's egress it
//! passes if the original was allowed by that endpoint's ingress, and at the original sender's
//! ingress it passes if the original was allowed by that sender's egress. Packets in the
//! original direction are checked against policy every time, so removing a policy stops them.
//! LRU hash: under pressure the oldest flows are forgotten (their replies are then checked
//! against policy like any packet). TCP state and timeouts come with the stateful issue.

pub const ALLOWED_BY_EGRESS: u32 = 1;
pub const ALLOWED_BY_INGRESS: u32 = 1 << 1;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConntrackKey {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// Host order; 0 for protocols without ports.
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
}

#[cfg(feature = "user")]
// SAFETY: repr(C); 16 + 16 + 2 + 2 + 1 + 3 = 40 bytes, no padding.
unsafe impl aya::Pod for ConntrackKey {}
#[cfg(feature = "user")]
// SAFETY: repr(C), one u32.
unsafe impl aya::Pod for ConntrackValue {}
