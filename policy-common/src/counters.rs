//! `PALISADE_COUNTERS`: packets per endpoint interface and outcome, per CPU.
//!
//! Keyed by the ifindex of the host-side interface the program runs on (so packets too
//! malformed to name an endpoint still count somewhere); one slot per CPU, summed by readers
//! (`bpftool map dump pinned .../PALISADE_COUNTERS` shows each CPU's values). Every drop is
//! counted under its reason ([`drop_reason`]).

/// Why the datapath dropped a packet: the index of its count in [`Counters::drops`], and the
/// reason a flow event carries ([`crate::flow::FlowEvent::reason`]).
pub mod drop_reason {
    /// The endpoint is isolated in this direction and no rule allowed the packet:
    /// NetworkPolicy's implicit deny, or a Calico tier's default action (the end of a tier
    /// whose policies select the endpoint and did not decide).
    pub const NO_RULE: u8 = 0;
    /// A rule denied it: a Calico `Deny` rule, or an administrators' policy's.
    pub const DENY_RULE: u8 = 1;
    /// A tracked connection that the current policy no longer allows: cut at its next
    /// packet (and its tombstone's).
    pub const REVOKED: u8 = 2;
    /// The endpoint address is not one the maps know (not programmed yet, or gone).
    pub const UNKNOWN_ENDPOINT: u8 = 3;
    /// An endpoint's address seen on an interface that is not that endpoint's.
    pub const SPOOFED: u8 = 4;
    /// A later fragment whose first fragment was not seen allowed at this hook (under this
    /// policy).
    pub const FRAGMENT: u8 = 5;
    /// Headers that could not be parsed (truncated, lying lengths, unknown shapes).
    pub const MALFORMED: u8 = 6;
    /// State the decision needed was not there: a per-CPU slot missing, or a masqueraded
    /// hairpin's entry evicted from a full map.
    pub const CAPACITY: u8 = 7;
    /// How many reasons there are.
    pub const COUNT: usize = 8;

    /// The reason's name, as metrics and flow records show it.
    pub const fn name(reason: u8) -> &'static str {
        match reason {
            NO_RULE => "no_rule",
            DENY_RULE => "deny_rule",
            REVOKED => "revoked",
            UNKNOWN_ENDPOINT => "unknown_endpoint",
            SPOOFED => "spoofed",
            FRAGMENT => "fragment",
            MALFORMED => "malformed",
            CAPACITY => "capacity",
            _ => "unknown",
        }
    }

    /// Every reason, in index order.
    pub const ALL: [u8; COUNT] = [
        NO_RULE,
        DENY_RULE,
        REVOKED,
        UNKNOWN_ENDPOINT,
        SPOOFED,
        FRAGMENT,
        MALFORMED,
        CAPACITY,
    ];
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Counters {
    /// Packets passed (by policy, conntrack, or as link plumbing).
    pub allowed: u64,
    /// Packets dropped, by reason ([`drop_reason`]).
    pub drops: [u64; drop_reason::COUNT],
}

impl Counters {
    /// Well-formed packets dropped (by policy, or spoofed, or of no known endpoint...): every
    /// drop but the malformed ones.
    pub fn denied(&self) -> u64 {
        self.drops.iter().sum::<u64>() - self.malformed()
    }

    /// Packets dropped because their headers could not be parsed.
    pub fn malformed(&self) -> u64 {
        self.drops[drop_reason::MALFORMED as usize]
    }

    /// Adds `other`'s counts (another CPU's, another interface's).
    pub fn add(&mut self, other: &Counters) {
        self.allowed += other.allowed;
        for (total, count) in self.drops.iter_mut().zip(other.drops) {
            *total += count;
        }
    }
}

#[cfg(feature = "user")]
// SAFETY: repr(C), nine u64s.
unsafe impl aya::Pod for Counters {}
