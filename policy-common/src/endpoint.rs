//! `PALISADE_ENDPOINTS`: which policy applies to a local endpoint, per direction.
//!
//! Hash map keyed by the endpoint's address. The tc program on the endpoint's host-side
//! interface looks up the source address of packets the endpoint sends and the destination
//! address of packets delivered to it; a miss means the packet does not belong to a known
//! endpoint and is dropped.

/// Policy id meaning "this direction is not isolated": no policy selects the endpoint for it,
/// so every packet is allowed (Kubernetes' default).
pub const POLICY_NONE: u32 = 0;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointKey {
    /// IPv6 address, or IPv4-mapped IPv6 for IPv4.
    pub addr: [u8; 16],
}

/// `ifindex` value meaning "not bound to an interface yet": the address is accepted on any
/// endpoint interface (the agent has not seen the route to it).
pub const IFINDEX_UNBOUND: u32 = 0;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct EndpointPolicy {
    /// Policy id checked for packets delivered to the endpoint, or [`POLICY_NONE`].
    pub ingress_policy: u32,
    /// Policy id checked for packets the endpoint sends, or [`POLICY_NONE`].
    pub egress_policy: u32,
    /// The endpoint's host-side interface: packets with this address as source are only
    /// accepted from it (and as destination only delivered through it), so one pod cannot
    /// send as another. [`IFINDEX_UNBOUND`] until the agent has seen the route.
    pub ifindex: u32,
}

#[cfg(feature = "user")]
// SAFETY: repr(C), only byte arrays and u32s, no padding.
unsafe impl aya::Pod for EndpointKey {}
#[cfg(feature = "user")]
// SAFETY: repr(C), three u32s, no padding.
unsafe impl aya::Pod for EndpointPolicy {}
