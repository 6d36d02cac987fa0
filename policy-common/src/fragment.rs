//! `PALISADE_FRAGMENTS`: the verdict of each fragmented packet's first fragment.
//!
//! Only the first fragment of an IPv4 or IPv6 packet carries the transport header, so only it
//! can be decided by port. The program decides the first fragment like any packet and records
//! the verdict under the packet's (addresses, identification, protocol, hook); later fragments
//! pass only if that record says their first fragment passed at the same hook, under the
//! policy generation that is still current. A later fragment that arrives before its first
//! one, whose record was evicted, or after a policy change (its first fragment's verdict may
//! no longer hold, and a later fragment has no ports to decide it again) is dropped: never
//! decided as a packet without ports.
//!
//! The key is what the kernel's reassembly keys a packet's fragments on: for IPv4 the
//! addresses, identification and protocol (all in every fragment's IP header); for IPv6 the
//! addresses and identification alone (`protocol` 0). What follows an IPv6 fragment header is
//! not the same in every fragment: the first fragment is decided on its transport protocol,
//! found after any destination options that follow the fragment header, while a later
//! fragment only has the fragment header's next header (60 when destination options follow).

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FragmentKey {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// IPv4 identification (16 bits) or IPv6 fragment identification (32 bits).
    pub id: u32,
    /// IPv4: the header's protocol. IPv6: 0 (see the module documentation).
    pub protocol: u8,
    /// 0: `palisade_from_endpoint`, 1: `palisade_to_endpoint`, 2: `palisade_after_nat`.
    pub hook: u8,
    pub _pad: [u8; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FragmentValue {
    /// 1 when the first fragment passed.
    pub allowed: u32,
    /// The policy generation (`config::GENERATION`) it was decided under.
    pub generation: u32,
}

#[cfg(feature = "user")]
// SAFETY: repr(C); 16 + 16 + 4 + 1 + 1 + 2 = 40 bytes, no padding.
unsafe impl aya::Pod for FragmentKey {}
#[cfg(feature = "user")]
// SAFETY: repr(C), two u32s.
unsafe impl aya::Pod for FragmentValue {}
