//! `PALISADE_ENDPOINTS`: which rule tables apply to a local endpoint, per direction.
//!
//! Hash map keyed by the endpoint's address. The tc program on the endpoint's host-side
//! interface looks up the source address of packets the endpoint sends and the destination
//! address of packets delivered to it; a miss means the packet does not belong to a known
//! endpoint and is dropped.
//!
//! Each direction carries an ordered list of rule tables (for Kubernetes policies one table,
//! the union of the policies selecting the endpoint; see the compiler's `tables.rs`). The
//! program consults them in order and the first table that has a verdict for the packet
//! decides; an isolated direction where no table decides drops. For Kubernetes policies every
//! verdict is ALLOW, so the order does not matter and this is the API's additive union;
//! Calico's ordered policies (Allow, Deny, Pass) need exactly the order.

/// How many tables one direction of one endpoint can list. The compiler merges what does not
/// fit (or more, to keep the datapath's lookups few) into the last slot.
pub const MAX_TABLES: usize = 16;

/// Which lookups a table needs (bits of [`TableRef::lookups`]): a table without `ipBlock`
/// peers never needs the CIDR lookup, and so on, so each table costs only the lookups its
/// rules can match.
pub mod lookup {
    /// Keyed by the peer's pod identity (selector peers, egress named ports).
    pub const POD: u32 = 1;
    /// Keyed by the peer's CIDR identity (`ipBlock` peers).
    pub const CIDR: u32 = 2;
    /// Keyed by [`crate::identity::ANY`] (rules without peers).
    pub const ANY: u32 = 4;
    /// Ordered tables (Calico tiers, Deny, Pass): one lookup keyed by the pod identity for a
    /// pod's address and by the CIDR identity otherwise, so that an earlier rule matching by
    /// `nets` is never beaten by a later one matching by selector. The compiler resolves the
    /// order into complete cells per identity (see `policy-agent/src/compiler/ordered/`).
    /// Tried before the other lookups.
    pub const ORDERED: u32 = 8;
    /// The table has source-port rules: before its lookups, the packet's source-port class
    /// is looked up under [`crate::identity::SOURCE_PORTS`] and keys the table's entries
    /// (`RuleKey::source_class`).
    pub const SOURCE_PORTS: u32 = 16;
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointKey {
    /// IPv6 address, or IPv4-mapped IPv6 for IPv4.
    pub addr: [u8; 16],
}

/// `ifindex` value meaning "not bound to an interface yet": the address is accepted on any
/// endpoint interface (the agent has not seen the route to it).
pub const IFINDEX_UNBOUND: u32 = 0;

/// `ifindex` of a host endpoint whose interface the agent has not found yet: the address is
/// accepted on no interface (pod interfaces drop it as spoofed, host interfaces leave it
/// alone), so a pod can never send as the host before the host's interface is bound.
pub const IFINDEX_NONE: u32 = u32::MAX;

/// What an endpoint is ([`EndpointPolicy::kind`]).
pub mod kind {
    /// A pod: its host-side interface runs `palisade_from_endpoint`/`palisade_to_endpoint`,
    /// and its Service traffic is decided after kube-proxy's translation
    /// (see [`crate::service`]).
    pub const POD: u32 = 0;
    /// A Calico host endpoint: judged on its own interface only.
    pub const HOST: u32 = 1;
}

/// One rule table in an endpoint's list.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct TableRef {
    /// The `table` of the table's entries in `PALISADE_RULES`.
    pub table: u32,
    /// Bits of [`lookup`].
    pub lookups: u32,
}

/// The policy of one direction of an endpoint.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct PolicyList {
    /// 0: no policy selects the endpoint for this direction, so it is not isolated and every
    /// packet passes (Kubernetes' default). 1: isolated: only what a table allows passes.
    pub isolated: u32,
    /// How many of `tables` are in use (at most [`MAX_TABLES`]).
    pub count: u32,
    pub tables: [TableRef; MAX_TABLES],
    /// Which slot of a peer's [`crate::identity::IdentitySlots`] the tables were numbered for
    /// (0 or 1). The compiler leaves it 0; the agent sets it when it writes the entry.
    pub numbering: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct EndpointPolicy {
    /// The endpoint's host-side interface: packets with this address as source are only
    /// accepted from it (and as destination only delivered through it), so one pod cannot
    /// send as another. [`IFINDEX_UNBOUND`] until the agent has seen the route.
    pub ifindex: u32,
    /// One of [`kind`].
    pub kind: u32,
    /// Checked for packets delivered to the endpoint.
    pub ingress: PolicyList,
    /// Checked for packets the endpoint sends.
    pub egress: PolicyList,
    /// The slot of `PALISADE_COUNTER_SLOTS` that counts the packets of the endpoint's
    /// interface (`ifindex`): a per-CPU array, cheaper on every packet than
    /// `PALISADE_COUNTERS`' hash, where the packets of interfaces without a slot (and those
    /// of no endpoint) are counted by ifindex. [`NO_COUNTER_SLOT`] until the agent binds the
    /// endpoint (the compiler leaves it so).
    pub counter_slot: u32,
}

/// [`EndpointPolicy::counter_slot`] of an endpoint counted in `PALISADE_COUNTERS` instead.
pub const NO_COUNTER_SLOT: u32 = 0;

#[cfg(feature = "user")]
// SAFETY: repr(C), only byte arrays and u32s, no padding.
unsafe impl aya::Pod for EndpointKey {}
#[cfg(feature = "user")]
// SAFETY: repr(C), u32s and arrays of structs of u32s only, no padding.
unsafe impl aya::Pod for EndpointPolicy {}
