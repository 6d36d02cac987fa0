//! `PALISADE_IDENTITIES` and `PALISADE_ADDRESSES`: the peer identity of an address.
//!
//! The compiler produces one LPM table from address prefix to two identities; the agent stores
//! its whole-address entries (`/128`: every pod address, and `/32`/`/128` blocks) in the hash
//! map `PALISADE_ADDRESSES` and the shorter prefixes in the trie `PALISADE_IDENTITIES`. The
//! datapath looks up the hash first and the trie only on a miss. A whole address is the
//! longest prefix there is, so this is the same answer as one trie, at the cost of one hash
//! lookup for every pod peer instead of a trie walk whose depth grows with the entries. An identity is a number standing for "every
//! address that a kind of peer selector treats alike":
//!
//! * the **pod identity** of a pod's address: pods whose labels (and namespace labels) match
//!   the same pod/namespace selectors share one, wherever their addresses are;
//! * the **CIDR identity** of any address: addresses covered by the same `ipBlock`s share one.
//!
//! Rules whose peer is a selector are keyed by pod identity, rules whose peer is an `ipBlock`
//! by CIDR identity, so neither kind multiplies the other: an `ipBlock` that covers every pod
//! costs one rule entry, not one per pod class. An address with no entry is [`WORLD`] for both.

/// Wildcard in rule keys: "any peer". Never stored for an address.
pub const ANY: u32 = 0;
/// The node itself. Traffic between an endpoint and its own node is always allowed.
pub const HOST: u32 = 1;
/// Addresses matched by no entry: outside every pod and every `ipBlock` the policies name.
pub const WORLD: u32 = 2;
/// Not a peer: the key of a table's source-port class entries (see [`crate::rule`]). Never
/// stored for an address.
pub const SOURCE_PORTS: u32 = 3;
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
    /// Class of the pod owning exactly this address; [`WORLD`] for no pod, [`HOST`] for the
    /// node's own addresses.
    pub pod_identity: u32,
    /// Class of the `ipBlock`s covering the address; [`WORLD`] for none.
    pub cidr_identity: u32,
}

/// What `PALISADE_ADDRESSES` and `PALISADE_IDENTITIES` hold for a prefix: its identities
/// under two numberings. An endpoint's policy lists name the numbering their tables were built
/// for ([`crate::endpoint::PolicyList::numbering`]), and the datapath reads that slot.
///
/// Between renumberings both slots hold the same value. A renumbering (a compiler rebuild, which
/// gives every identity and table a new number) first fills the other slot of every prefix,
/// then switches the endpoints over one by one, so a packet never meets a table of one
/// numbering with a peer identity of the other: it gets the old verdict or the new one.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct IdentitySlots {
    pub slots: [IdentityValue; 2],
}

impl IdentitySlots {
    /// The same value under both numberings.
    pub const fn both(value: IdentityValue) -> Self {
        Self {
            slots: [value, value],
        }
    }

    /// The value under `numbering` (its low bit).
    #[inline(always)]
    pub fn get(&self, numbering: u32) -> IdentityValue {
        if numbering & 1 == 0 {
            self.slots[0]
        } else {
            self.slots[1]
        }
    }
}

#[cfg(feature = "user")]
// SAFETY: repr(C), byte array, no padding.
unsafe impl aya::Pod for IdentityKey {}
#[cfg(feature = "user")]
// SAFETY: repr(C), an array of two structs of two u32s.
unsafe impl aya::Pod for IdentitySlots {}
#[cfg(feature = "user")]
// SAFETY: repr(C), two u32s.
unsafe impl aya::Pod for IdentityValue {}
