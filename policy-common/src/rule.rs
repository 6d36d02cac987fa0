//! `PALISADE_RULES` and `PALISADE_RULES_EXACT`: the verdict for (table, peer identity,
//! protocol, source-port class, destination port).
//!
//! The compiler produces one LPM table holding every rule table. The agent stores its fully
//! specified entries (one port, [`PREFIX_FULL`]) in the hash map `PALISADE_RULES_EXACT` and the
//! shorter prefixes (any protocol, any port, port ranges) in the trie `PALISADE_RULES`; the
//! datapath looks up the hash first and the trie only on a miss, which gives the trie's own
//! answer (a full key is the longest prefix) with a lookup whose cost does not grow with the
//! number of rules.
//!
//! A table is the compiled rules of the policies selecting an endpoint in one direction (see
//! [`crate::endpoint`]); endpoints with the same table share its entries, so entries grow with
//! distinct rule sets, not with pods. The key's prefix always covers `table` and
//! `peer_identity` completely (64 bits); beyond that it may stop
//!
//! * after 64 bits: any protocol, any port (a rule without `ports`);
//! * after 80 bits (protocol and the source-port class): any port of that protocol;
//! * after 80 + n bits: the ports sharing the top n bits of `port_be`, which is how a port
//!   range (`endPort`) becomes at most 30 prefixes instead of one entry per port.
//!
//! For each table of the endpoint (see [`crate::endpoint`]) the datapath looks up the peer's
//! pod identity, then its CIDR identity, then [`crate::identity::ANY`] (each only if the table
//! has such entries); the first lookup that matches gives the table's verdict, from its longest
//! matching prefix. Because the compiler can flatten a policy's ordered rules (Calico: Allow,
//! Deny, Pass) so that the most specific prefix holds the verdict of the first matching rule,
//! the same lookups serve ordered verdicts, not just additive allows. `table` and
//! `peer_identity` are always matched in full, so they are stored in host order (readable in
//! `bpftool` dumps); only the port, which is matched bit by bit, must be big-endian.
//!
//! Source ports (Calico's `source.ports`, rare) cost nothing in tables without them. A table
//! with them gets entries keyed by the reserved peer [`crate::identity::SOURCE_PORTS`] that
//! map (protocol, source-port prefix) to a class ([`action::SOURCE_CLASS`], the class in
//! `rule_ref`); the datapath looks the class up first and puts it in `source_class`, and the
//! table's verdict entries are then per class. A source port no entry covers is class 0.

/// Bits of the key covered when a rule applies to every protocol.
pub const PREFIX_ANY_PROTOCOL: u32 = 64;
/// Bits of the key covered when a rule applies to every port of one protocol.
pub const PREFIX_ANY_PORT: u32 = 80;
/// Bits of a fully specified key.
pub const PREFIX_FULL: u32 = 96;

/// Verdict values.
pub mod action {
    pub const ALLOW: u32 = 1;
    pub const DENY: u32 = 2;
    /// Not a verdict: an entry keyed by [`crate::identity::SOURCE_PORTS`], whose `rule_ref`
    /// is the source-port class of the ports its prefix covers.
    pub const SOURCE_CLASS: u32 = 3;
}

/// Bits of [`RuleValue::flags`].
pub mod flags {
    /// A Calico `Log` rule matched on the way to this verdict: write a flow event
    /// (`crate::flow`).
    pub const LOG: u32 = 1;
}

/// IP protocol numbers the compiler emits.
pub mod protocol {
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const SCTP: u8 = 132;
}

/// Key data of the trie (the kernel prepends the prefix length).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleKey {
    pub table: u32,
    pub peer_identity: u32,
    /// IP protocol number (IPv6: the upper-layer protocol).
    pub protocol: u8,
    /// The packet's source-port class in a table with source-port rules (Calico's
    /// `source.ports`/`source.notPorts`, see [`crate::endpoint::lookup::SOURCE_PORTS`]), else
    /// 0. Covered by every prefix that covers `protocol`, so a class has protocol and port
    /// entries of its own and shares only the table's any-protocol entry.
    pub source_class: u8,
    /// Destination port, big-endian. For ICMP and ICMPv6 the type (high byte) and code (low
    /// byte) instead, so that Calico's `icmp` matches are prefixes too. 0 for packets without
    /// ports (and non-first fragments, which only rules for every port of the protocol, or
    /// every protocol, can match).
    pub port_be: u16,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct RuleValue {
    /// One of [`action`].
    pub action: u32,
    /// The rule that produced the entry, so a verdict can be traced back to it: the index of
    /// the rule in its policy's `ingress`/`egress` list in the low 16 bits, and in the high 16
    /// bits which of a merged table's policies it belongs to (0 for a one-policy table). The
    /// endpoint's table list says which policy that is (`policy-agent explain`).
    pub rule_ref: u32,
    /// Bits of [`flags`].
    pub flags: u32,
}

/// [`RuleValue::rule_ref`]'s low half for a Calico tier's default action (the high half is
/// the tier's first policy): the implicit deny at the end of a tier, not a rule.
pub const TIER_DEFAULT_RULE: u32 = 0xffff;
/// [`RuleValue::rule_ref`] of the profile's allow: no tier applied, or the last one passed.
pub const PROFILE_RULE_REF: u32 = u32::MAX;

#[cfg(feature = "user")]
// SAFETY: repr(C); u32, u32, u8, u8, u16: 12 bytes, no padding.
unsafe impl aya::Pod for RuleKey {}
#[cfg(feature = "user")]
// SAFETY: repr(C), three u32s.
unsafe impl aya::Pod for RuleValue {}
