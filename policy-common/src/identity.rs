//! `PALISADE_IDENTITIES`: the peer identity of an address.
//!
//! LPM trie from address prefix to identity. An identity is a number standing for "every address
//! that all the selectors of the compiled policies treat alike": pods whose labels (and namespace
//! labels) match the same peer selectors share one identity, and so do the addresses an `ipBlock`
//! covers. Rules are keyed by identity, so the rule map grows with distinct selector shapes,
//! not with pods. An address with no entry is [`WORLD`].

/// Wildcard in rule keys: "any peer". Never stored for an address.
pub const ANY: u32 = 0;
/// The node itself. Traffic between an endpoint and its own node is always allowed.
pub const HOST: u32 = 1;
/// Addresses matched by no entry: outside every pod and every `ipBlock` the policies name.
pub const WORLD: u32 = 2;
/// First identity the compiler allocates for selector classes.
pub const FIRST_ALLOCATED: u32 = 256;

/// Key data of the trie (the kernel prepends the prefix length).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdentityKey {
    /// Address bytes in network order (the trie matches bits from the first byte on).
    pub addr: [u8; 16],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct IdentityValue {
    pub identity: u32,
}

#[cfg(feature = "user")]
// SAFETY: repr(C), byte array, no padding.
unsafe impl aya::Pod for IdentityKey {}
#[cfg(feature = "user")]
// SAFETY: repr(C), one u32.
unsafe impl aya::Pod for IdentityValue {}
