//! `PALISADE_FLOWS`: flow events from the datapath, read by `policy-agent flows`.
//!
//! A ring buffer. The programs write one [`FlowEvent`] when policy decides a packet and the
//! deciding entry carries [`crate::rule::flags::LOG`] (a Calico `Log` rule matched on the way
//! to the decision), or the packet is denied and [`crate::config::events::DENIES`] is set, or
//! [`crate::config::events::FLOWS`] is (the agent keeps flow records: every decision).
//! Drops before policy (an unknown endpoint, a spoofed address, a fragment without its first)
//! write one too under either setting, with their reason; malformed packets do not (their
//! addresses may be half parsed) and are only counted.
//! Only packets policy is asked about produce events (new flows, and tracked ones rechecked
//! after a policy change), never packets of tracked connections, and each CPU writes at most
//! [`EVENTS_PER_SECOND`] events a second ([`FlowBudget`]), so a flood costs the datapath a
//! counter increment per packet beyond that and never fills the ring for long.

/// Most events one CPU writes per second; the rest are counted in [`FlowBudget::dropped`].
pub const EVENTS_PER_SECOND: u64 = 2000;
/// Bytes of the ring buffer (a power of two, a multiple of the page size).
pub const RING_BYTES: u32 = 256 * 1024;

/// [`FlowEvent::direction`]: the endpoint sent the packet (its egress policy decided).
pub const FROM_ENDPOINT: u8 = 0;
/// [`FlowEvent::direction`]: the packet was delivered to the endpoint (its ingress policy).
pub const TO_ENDPOINT: u8 = 1;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowEvent {
    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC) when the packet was decided.
    pub time_ns: u64,
    /// IPv6, or IPv4-mapped IPv6.
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: u16,
    /// Destination port; ICMP type << 8 | code for ICMP and ICMPv6.
    pub dport: u16,
    pub protocol: u8,
    /// [`FROM_ENDPOINT`] or [`TO_ENDPOINT`].
    pub direction: u8,
    /// 1: allowed, 0: denied.
    pub allowed: u8,
    /// Denied: why ([`crate::counters::drop_reason`]); 0 when allowed.
    pub reason: u8,
    /// The interface the program ran on.
    pub ifindex: u32,
    /// The rule table that decided (0: none: the peer was unknown or no table had an entry).
    pub table: u32,
    /// The deciding entry's `rule_ref` (see `policy_common::rule::RuleValue`).
    pub rule_ref: u32,
    /// The decided packet's length as the interface carries it (see
    /// `crate::conntrack::ConntrackValue::bytes`).
    pub len: u32,
    /// A pod's flow to a Service, decided after kube-proxy chose the backend (`dst`): the
    /// frontend the pod addressed (cluster IP, node port or external address, IPv4-mapped
    /// for IPv4) and its port; all zero otherwise.
    pub service: [u8; 16],
    pub service_port: u16,
    /// [`OPENED`].
    pub flags: u8,
    pub _pad: [u8; 5],
}

/// [`FlowEvent::flags`]: the decision opened a tracked connection (its entry in
/// `PALISADE_CONNTRACK` counts the connection's later packets from zero; see
/// `crate::conntrack::ConntrackValue::packets`). Not set for a tracked connection re-checked
/// after a policy change, whose entry holds what it counted before.
pub const OPENED: u8 = 1;

/// Per CPU: the current one-second window and what it spent.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowBudget {
    pub window_start_ns: u64,
    /// Events tried this second (written or not): what the budget bounds.
    pub written: u64,
    /// Events not written because the window's budget was spent or the ring was full.
    pub dropped: u64,
}

#[cfg(feature = "user")]
// SAFETY: repr(C); u64, two [u8; 16], two u16, four u8, four u32, [u8; 16], u16, u8,
// [u8; 5]: 88 bytes, no padding.
unsafe impl aya::Pod for FlowEvent {}
#[cfg(feature = "user")]
// SAFETY: repr(C), three u64s.
unsafe impl aya::Pod for FlowBudget {}

const _: () = assert!(core::mem::size_of::<FlowEvent>() == 88);
