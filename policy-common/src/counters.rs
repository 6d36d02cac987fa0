//! `PALISADE_COUNTERS`: packets per endpoint interface and outcome, per CPU.
//!
//! Keyed by the ifindex of the host-side interface the program runs on (so packets too
//! malformed to name an endpoint still count somewhere); one slot per CPU, summed by readers
//! (`bpftool map dump pinned .../PALISADE_COUNTERS` shows each CPU's values).

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Counters {
    /// Packets passed (by policy, conntrack, or as link plumbing).
    pub allowed: u64,
    /// Well-formed packets policy dropped (or spoofed, or of no known endpoint).
    pub denied: u64,
    /// Packets dropped because their headers could not be parsed.
    pub malformed: u64,
}

#[cfg(feature = "user")]
// SAFETY: repr(C), three u64s.
unsafe impl aya::Pod for Counters {}
