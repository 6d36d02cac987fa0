//! The `#[repr(C)]` layouts of every BPF map Palisade's datapath reads.
//!
//! The agent writes these maps and the eBPF program reads them, so both sides compile this one
//! definition. Rules for everything here:
//!
//! * `#[repr(C)]`, no implicit padding (explicit `_pad`/`reserved` fields instead), because the
//!   kernel compares keys byte for byte and uninitialised padding would make equal keys differ.
//! * No `bool`, `enum` or `Option`: the kernel can hand back any bit pattern, so flags and
//!   verdicts are integers with named constants.
//! * Addresses are 16 bytes; IPv4 uses the IPv4-mapped IPv6 form `::ffff:a.b.c.d`, so one map
//!   serves both families and an IPv4 `/n` is the 16-byte prefix `/(96 + n)`.
#![no_std]

pub mod conntrack;
pub mod counters;
pub mod endpoint;
pub mod flow;
pub mod fragment;
pub mod identity;
pub mod rule;
pub mod rule_hits;
pub mod service;

/// Names of the maps in the eBPF object. They are also the file names of the pins under the
/// agent's bpffs directory, so `bpftool map dump pinned <dir>/<NAME>` works.
pub mod map_names {
    pub const ENDPOINTS: &str = "PALISADE_ENDPOINTS";
    pub const IDENTITIES: &str = "PALISADE_IDENTITIES";
    pub const ADDRESSES: &str = "PALISADE_ADDRESSES";
    pub const RULES: &str = "PALISADE_RULES";
    pub const RULES_EXACT: &str = "PALISADE_RULES_EXACT";
    pub const CONNTRACK: &str = "PALISADE_CONNTRACK";
    pub const FRAGMENTS: &str = "PALISADE_FRAGMENTS";
    pub const COUNTERS: &str = "PALISADE_COUNTERS";
    /// Per-interface counters by slot (see `endpoint::EndpointPolicy::counter_slot`).
    pub const COUNTER_SLOTS: &str = "PALISADE_COUNTER_SLOTS";
    pub const CONFIG: &str = "PALISADE_CONFIG";
    pub const FLOWS: &str = "PALISADE_FLOWS";
    pub const FLOW_BUDGET: &str = "PALISADE_FLOW_BUDGET";
    /// Packets decided per rule entry (see [`crate::rule_hits`]).
    pub const RULE_HITS: &str = "PALISADE_RULE_HITS";
    /// Service frontends (see [`crate::service`]).
    pub const SERVICES: &str = "PALISADE_SERVICES";
    /// Which backends each frontend has.
    pub const SERVICE_BACKENDS: &str = "PALISADE_SERVICE_BACKENDS";
    /// A pod socket's last new flow to a frontend, until kube-proxy's translation is seen.
    pub const SERVICE_PENDING: &str = "PALISADE_SERVICE_PENDING";
    /// The backend of each allowed flow to a frontend.
    pub const SERVICE_FLOWS: &str = "PALISADE_SERVICE_FLOWS";
    /// A pod's new flow to a frontend that may send it back to the pod, by fingerprint.
    pub const SERVICE_HAIRPIN_PENDING: &str = "PALISADE_SERVICE_HAIRPIN_PENDING";
    /// The pod's own socket behind each masqueraded hairpin flow.
    pub const SERVICE_HAIRPINS: &str = "PALISADE_SERVICE_HAIRPINS";

    /// Every map the agent pins.
    pub const ALL: [&str; 19] = [
        ENDPOINTS,
        IDENTITIES,
        ADDRESSES,
        RULES,
        RULES_EXACT,
        CONNTRACK,
        FRAGMENTS,
        COUNTERS,
        COUNTER_SLOTS,
        CONFIG,
        FLOWS,
        FLOW_BUDGET,
        RULE_HITS,
        SERVICES,
        SERVICE_BACKENDS,
        SERVICE_PENDING,
        SERVICE_FLOWS,
        SERVICE_HAIRPIN_PENDING,
        SERVICE_HAIRPINS,
    ];
}

/// `PALISADE_CONFIG`: an array of u32 settings the agent writes and the programs read.
pub mod config {
    /// The policy generation: bumped by the agent after every change it programs; tracked
    /// connections stamped with an older one are checked against policy again.
    pub const GENERATION: u32 = 0;
    /// Which decisions write a flow event to `PALISADE_FLOWS` beyond those of `Log` rules:
    /// bits of [`events`], one slot so that a decision reads one value.
    pub const EVENTS: u32 = 1;
    /// Number of slots.
    pub const LEN: u32 = 2;

    /// Bits of the [`EVENTS`] slot.
    pub mod events {
        /// Every denied packet policy decides (`policy-agent run --log-denies`).
        pub const DENIES: u32 = 1;
        /// Every packet policy decides, allowed or not, for the agent's flow records
        /// (`policy-agent run --ui-port`).
        pub const FLOWS: u32 = 1 << 1;
    }
}

/// Names of the programs in the eBPF object.
pub mod program_names {
    /// tc ingress of an endpoint's host-side interface: packets the endpoint sends.
    pub const FROM_ENDPOINT: &str = "palisade_from_endpoint";
    /// tc egress of an endpoint's host-side interface: packets delivered to the endpoint.
    pub const TO_ENDPOINT: &str = "palisade_to_endpoint";
    /// tc ingress of a host endpoint's interface: packets delivered to the host.
    pub const HOST_INGRESS: &str = "palisade_host_ingress";
    /// tc egress of a host endpoint's interface: packets the host sends.
    pub const HOST_EGRESS: &str = "palisade_host_egress";
    /// tc egress of every interface of the node, after netfilter: the sender's egress policy
    /// for a local pod's flows to Services, judged on the backend kube-proxy chose.
    pub const AFTER_NAT: &str = "palisade_after_nat";
}

/// Maximum entries per map, as the eBPF object declares them. Sized for a node with a few
/// hundred endpoints and a cluster of tens of thousands of pods. The agent raises the policy
/// maps' at load time (`run --rule-capacity`, `--identity-capacity`). The tries allocate as
/// entries are added; the hashes (`PALISADE_RULES_EXACT`, `PALISADE_ADDRESSES`) are
/// preallocated, so their capacity costs memory up front.
pub mod capacity {
    pub const ENDPOINTS: u32 = 4096;
    pub const IDENTITIES: u32 = 131_072;
    /// Whole addresses (pods, `/32` and `/128` blocks): the same budget as IDENTITIES.
    pub const ADDRESSES: u32 = 131_072;
    pub const RULES: u32 = 262_144;
    /// Rule entries for one port (or a protocol without ports): the same budget as RULES.
    pub const RULES_EXACT: u32 = 262_144;
    pub const CONNTRACK: u32 = 65_536;
    /// Fragmented packets in flight.
    pub const FRAGMENTS: u32 = 8192;
    /// Endpoint interfaces counted.
    pub const COUNTERS: u32 = 4096;
    /// Slots of `PALISADE_COUNTER_SLOTS`, slot 0 unused: endpoint interfaces counted in a
    /// per-CPU array (72 bytes a slot and CPU). Beyond these, interfaces are counted in
    /// `PALISADE_COUNTERS`.
    pub const COUNTER_SLOTS: u32 = 1024;
    /// Rule entries counted (an LRU: beyond this, the entries not hit for longest go, with
    /// what they had counted since the agent last read them).
    pub const RULE_HITS: u32 = 65_536;
    /// Service frontends (ClusterIPs, external IPs, node ports) × ports.
    pub const SERVICES: u32 = 65_536;
    /// (frontend, backend) pairs.
    pub const SERVICE_BACKENDS: u32 = 262_144;
    /// Pod sockets with a new flow to a frontend in flight.
    pub const SERVICE_PENDING: u32 = 16_384;
    /// Allowed flows to frontends: as many as tracked connections.
    pub const SERVICE_FLOWS: u32 = CONNTRACK;
    /// Pods' new flows that may come back to themselves, in flight.
    pub const SERVICE_HAIRPIN_PENDING: u32 = 4096;
    /// Masqueraded hairpin flows.
    pub const SERVICE_HAIRPINS: u32 = 16_384;
}

/// Protocol number the datapath matches a packet with when it cannot find the packet's
/// transport header (an IPv6 extension-header chain longer than it walks, or one it cannot
/// read past): reserved by IANA, so no rule names it, and only rules that allow every
/// protocol match it.
pub const PROTOCOL_UNKNOWN: u8 = 255;

/// The 16-byte form of an IPv4 address (`::ffff:a.b.c.d`).
#[inline(always)]
pub const fn ipv4_mapped(v4: [u8; 4]) -> [u8; 16] {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, v4[0], v4[1], v4[2], v4[3],
    ]
}

/// Bits that an IPv4 prefix length gains in the 16-byte mapped form.
pub const IPV4_MAPPED_PREFIX_BITS: u32 = 96;
