//! `PALISADE_RULE_HITS`: how many packets each rule entry decided, per CPU.
//!
//! Keyed by the deciding entry's table and `rule_ref` (which name one rule of one policy, or a
//! tier's default action: see [`crate::rule::RuleValue::rule_ref`]) and the verdict. Counted
//! where policy decides a packet: a new flow's first packet, a tracked flow re-checked after a
//! policy change, and packets that are never tracked (ICMP errors that are not related, TCP
//! segments that cannot open a flow); `flows` counts those that opened a tracked connection.
//! Later packets of a tracked connection pass without a policy lookup and are not counted
//! against a rule, as in Calico's iptables dataplane, where rules see only a connection's
//! first packet. One hash lookup per decision, whatever the number of rules.
//!
//! The agent sums the CPUs, turns (table, `rule_ref`) into (policy, rule) with the tables'
//! names and keeps totals per rule across table renumberings; a new agent starts the map
//! empty (table numbers are each agent's own).

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RuleHitKey {
    pub table: u32,
    pub rule_ref: u32,
    /// 1: the entry allowed the packet; 0: it denied it.
    pub allowed: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct RuleHits {
    /// Packets the entry decided.
    pub packets: u64,
    /// Of those, first packets that opened a tracked connection.
    pub flows: u64,
}

impl RuleHits {
    /// Adds `other`'s counts (another CPU's).
    pub fn add(&mut self, other: &RuleHits) {
        self.packets += other.packets;
        self.flows += other.flows;
    }
}

#[cfg(feature = "user")]
// SAFETY: repr(C), three u32s.
unsafe impl aya::Pod for RuleHitKey {}
#[cfg(feature = "user")]
// SAFETY: repr(C), two u64s.
unsafe impl aya::Pod for RuleHits {}
