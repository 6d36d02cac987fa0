//! Kubernetes Services: judging Service traffic on the backend kube-proxy chose.
//!
//! A pod reaches a Service at a *frontend* (a ClusterIP, an external IP, or one of this node's
//! addresses with a nodePort), and kube-proxy rewrites the destination to a *backend* (a pod's
//! address and target port, or any endpoint address) in netfilter, after the tc ingress hook of
//! the pod's host-side interface where the pod's egress policy is checked. So that check cannot
//! know the backend yet. Palisade defers it:
//!
//! 1. `palisade_from_endpoint` sees a new flow to a frontend ([`PALISADE_SERVICES`]): it does not
//!    decide the sender's egress, records the sender's socket and the frontend in
//!    [`PALISADE_SERVICE_PENDING`], and lets the packet on to kube-proxy.
//! 2. `palisade_after_nat` runs at tc egress of every interface of the node (the pods' host-side
//!    interfaces and the uplinks), after netfilter: a packet a local pod sent whose flow (as
//!    rewritten) is not tracked as allowed by the sender's egress is decided there, against the
//!    backend and its port, exactly as if the pod had connected to it directly. If it passes and
//!    the pending frontend does have that backend ([`PALISADE_SERVICE_BACKENDS`]), the flow as
//!    the pod sent it (to the frontend) is recorded in `PALISADE_CONNTRACK` as allowed by the
//!    sender's egress, and its backend in [`PALISADE_SERVICE_FLOWS`].
//! 3. Replies come back through kube-proxy's reverse translation with the frontend as source,
//!    and pass as replies to that recorded flow. When policy changes, a recorded flow is checked
//!    again against the backend [`PALISADE_SERVICE_FLOWS`] names, not the frontend.
//!
//! The backend's own ingress policy is checked where it always is: on the backend's interface,
//! after the translation.
//!
//! **A pod reaching itself through its own Service (hairpin).** kube-proxy masquerades that
//! flow to the node's address before any tc hook sees it translated, so neither hook would see
//! the pod as its source. Calico's iptables dataplane judges it before the masquerade, as the
//! pod's egress to itself and its ingress from itself, and so does Palisade:
//!
//! 4. When `palisade_from_endpoint` defers a flow to a frontend that has the sender's own
//!    address among its backends (a pair with port 0 in [`PALISADE_SERVICE_BACKENDS`]), it
//!    also records the packet's [`HairpinKey`] (the sender's address and the packet's
//!    NAT-proof fingerprint: TCP's sequence number, the first bytes of a UDP payload) in
//!    [`PALISADE_SERVICE_HAIRPIN_PENDING`], with the sender's port.
//! 5. `palisade_after_nat` sees a packet from an address that is not a local pod's, to that
//!    pod, with that fingerprint: the hairpin, masqueraded. If the pod's pending frontend has
//!    the destination as a backend, it records the delivered tuple (masquerade address and
//!    port → pod) in [`PALISADE_SERVICE_HAIRPINS`] with the pod's own socket, marks it in
//!    `PALISADE_CONNTRACK` (`MASQUERADED_HAIRPIN`), and decides the packet as the pod sent it
//!    to its backend, like any flow in step 2.
//! 6. From then on every check that meets that marked tuple (the pod's ingress on the way in,
//!    its egress for the replies) first puts the pod's socket back in place of the masquerade
//!    address, so the connection is tracked, re-checked after policy changes and cut as the
//!    pod talking to itself.
//!
//! [`PALISADE_SERVICE_HAIRPIN_PENDING`]: crate::map_names::SERVICE_HAIRPIN_PENDING
//! [`PALISADE_SERVICE_HAIRPINS`]: crate::map_names::SERVICE_HAIRPINS
//!
//! [`PALISADE_SERVICES`]: crate::map_names::SERVICES
//! [`PALISADE_SERVICE_PENDING`]: crate::map_names::SERVICE_PENDING
//! [`PALISADE_SERVICE_BACKENDS`]: crate::map_names::SERVICE_BACKENDS
//! [`PALISADE_SERVICE_FLOWS`]: crate::map_names::SERVICE_FLOWS

/// An address, a port and a protocol: a frontend, a backend, or a pod's socket.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TransportAddr {
    /// IPv6, or IPv4-mapped IPv6.
    pub addr: [u8; 16],
    /// Host order.
    pub port: u16,
    pub protocol: u8,
    pub _pad: u8,
}

/// Bits of [`FrontendValue::flags`].
pub mod frontend {
    /// Every backend of the frontend is an address of this node: kube-proxy's translation
    /// delivers the packet to the node itself, which no tc egress hook sees, so the sender's
    /// egress is decided at once (traffic with the own node is always allowed) and the flow
    /// recorded, so that replies pass.
    pub const HOST_BACKENDS: u32 = 1;
    /// The frontend has no backends: kube-proxy rejects (or drops) what is sent to it. The
    /// packet is let on to kube-proxy, and its ICMP rejection, sent back from the frontend
    /// itself, passes as related to it.
    pub const NO_BACKENDS: u32 = 2;
}

/// `PALISADE_SERVICES` value.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FrontendValue {
    /// Bits of [`frontend`].
    pub flags: u32,
}

/// `PALISADE_SERVICE_BACKENDS` key: one backend of one frontend (the value is 1). Every
/// backend address also has a pair with port [`ANY_BACKEND_PORT`], which says only that the
/// address is one of the frontend's backends (a sender that may reach itself through it).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct BackendKey {
    pub frontend: TransportAddr,
    /// The backend's address and port; its protocol is the frontend's (`_pad` fields zero).
    pub backend: TransportAddr,
}

/// The backend port of the address-only pairs of `PALISADE_SERVICE_BACKENDS`: no Service has
/// a target port 0, so kube-proxy never translates to it.
pub const ANY_BACKEND_PORT: u16 = 0;

/// `PALISADE_SERVICE_HAIRPIN_PENDING` key: a packet a pod sent to a frontend that may send it
/// back to the pod itself, by what survives kube-proxy's DNAT and masquerade. The value is the
/// pod's source port (as u32).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct HairpinKey {
    /// The sending pod's address: after the translation, the packet's destination.
    pub addr: [u8; 16],
    /// The packet's NAT-proof fingerprint (TCP sequence number, first four bytes of a UDP
    /// payload, an SCTP packet's first chunk value).
    pub fingerprint: u32,
    pub protocol: u8,
    pub _pad: [u8; 3],
}

#[cfg(feature = "user")]
// SAFETY: repr(C); 16 + 4 + 1 + 3 = 24 bytes, no padding.
unsafe impl aya::Pod for HairpinKey {}
#[cfg(feature = "user")]
// SAFETY: repr(C); 16 + 2 + 1 + 1 = 20 bytes, no padding.
unsafe impl aya::Pod for TransportAddr {}
#[cfg(feature = "user")]
// SAFETY: repr(C), one u32.
unsafe impl aya::Pod for FrontendValue {}
#[cfg(feature = "user")]
// SAFETY: repr(C); two 20-byte TransportAddrs, no padding.
unsafe impl aya::Pod for BackendKey {}
