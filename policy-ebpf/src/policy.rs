//! The policy lookup: whether an endpoint's policy allows a packet ([`allows`]), by the peer's
//! identities and the endpoint's tables in order ([`policy_allows`]), each table's verdict from
//! its rule entries ([`palisade_table_verdict`], a global function: see its documentation).
//! `policy-agent`'s `replay` mirrors these lookups step by step.
//!
//! Apart from the decision because it is the part the agent's compiler and replay must agree
//! with, and the part the verifier checks on its own.

use aya_ebpf::btf_maps::lpm_trie::Key;
use policy_common::{
    endpoint::{EndpointPolicy, MAX_TABLES, PolicyList, lookup},
    identity::{self, IdentityKey},
    rule::{PREFIX_FULL, RuleKey, RuleValue, action, flags as rule_flags},
};

use crate::{
    decision::Tuples,
    maps::{PALISADE_ADDRESSES, PALISADE_IDENTITIES, PALISADE_RULES, PALISADE_RULES_EXACT},
};

/// Whether the endpoint's policy allows the packet `keys` asks about (`question`, `ports`,
/// `peer`): not isolated, or a table allows it.
#[inline(never)]
pub(crate) fn allows(endpoint: &EndpointPolicy, keys: &Tuples, decided: &mut Decided) -> bool {
    // SAFETY: fields of this CPU's slot; volatile, so that the values are read as the
    // verifier sees them (unknown), not forwarded from the caller's stores.
    let (question, ports) = unsafe {
        (
            core::ptr::read_volatile(&keys.question),
            core::ptr::read_volatile(&keys.ports),
        )
    };
    let policy = if question & 1 << 8 != 0 {
        &endpoint.egress
    } else {
        &endpoint.ingress
    };
    policy.isolated == 0 || policy_allows(question as u8, ports, policy, &keys.peer, decided)
}

/// Which entry decided a packet, for its flow event. `flags` holds only the bits the datapath
/// reads (`rule::flags::LOG`).
#[derive(Default)]
pub(crate) struct Decided {
    pub(crate) table: u32,
    pub(crate) rule_ref: u32,
    pub(crate) flags: u32,
}

#[inline(never)]
fn policy_allows(
    protocol: u8,
    ports: u32,
    policy: &PolicyList,
    peer_addr: &[u8; 16],
    decided: &mut Decided,
) -> bool {
    let (sport, dport) = ((ports >> 16) as u16, ports as u16);
    let peer = IdentityKey { addr: *peer_addr };
    // A whole address (a pod's) in the hash; shorter prefixes in the trie, only on a miss.
    // SAFETY: the value is copied out at once.
    let exact = unsafe { PALISADE_ADDRESSES.get(peer) }.copied();
    let (pod_identity, cidr_identity) = exact
        .or_else(|| PALISADE_IDENTITIES.get(&Key::new(128, peer)).copied())
        .map_or((identity::WORLD, identity::WORLD), |slots| {
            // The numbering this endpoint's tables were built for (see IdentitySlots).
            let value = slots.get(policy.numbering);
            (value.pod_identity, value.cidr_identity)
        });
    if pod_identity == identity::HOST {
        return true;
    }
    let packet = u64::from(protocol) | u64::from(sport) << 16 | u64::from(dport) << 32;
    // The endpoint's tables in order; the first with a verdict decides. A bounded loop the
    // verifier can check: at most MAX_TABLES calls of a function it has verified once.
    for slot in 0..MAX_TABLES {
        if slot as u32 >= policy.count {
            break;
        }
        let table = policy.tables[slot];
        let answer = palisade_table_verdict(
            table.table,
            table.lookups,
            pod_identity,
            cidr_identity,
            packet,
        );
        if answer & table_answer::FOUND != 0 {
            decided.table = table.table;
            decided.rule_ref = answer as u32;
            decided.flags = if answer & table_answer::LOG != 0 {
                rule_flags::LOG
            } else {
                0
            };
            // Explicit deny or an unknown action drops; only ALLOW passes.
            return answer & table_answer::ALLOW != 0;
        }
    }
    // Isolated, and no table has a verdict: drop.
    false
}

/// What [`palisade_table_verdict`] answers: 0 when the table has no entry for the packet,
/// else these bits over the entry's `rule_ref` (the low 32 bits).
mod table_answer {
    /// The table has an entry for the packet: it decides.
    pub const FOUND: u64 = 1 << 32;
    /// The entry's action is ALLOW (anything else drops).
    pub const ALLOW: u64 = 1 << 33;
    /// The entry's flags have `rule::flags::LOG` (the only flag the datapath reads).
    pub const LOG: u64 = 1 << 34;
}

/// One table's verdict for a packet from a peer with these identities (`packet`: the
/// protocol in the low byte, the source port at bit 16, the destination port, or ICMP type
/// and code, at bit 32); see [`table_answer`].
///
/// A global function (exported, so its BTF linkage is global): the verifier checks it once,
/// on its own, for any values of its arguments, and a call of it costs the caller one
/// instruction and an unknown result. As a static function it was walked again for every
/// state the table loop reached it in, and each of its lookups (hit or miss) multiplied the
/// states of the next iteration: the loop of 16 tables was most of the programs' verification
/// (about 500,000 of `palisade_from_endpoint`'s 570,000 instructions). Hence scalar arguments
/// and a scalar result only: a global function's pointer arguments are checked by type, not
/// by what the caller knows of them.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn palisade_table_verdict(
    table: u32,
    lookups: u32,
    pod_identity: u32,
    cidr_identity: u32,
    packet: u64,
) -> u64 {
    let protocol = packet as u8;
    let (sport, dport) = ((packet >> 16) as u16, (packet >> 32) as u16);
    let mut key = RuleKey {
        table,
        peer_identity: 0,
        protocol,
        source_class: if lookups & lookup::SOURCE_PORTS != 0 {
            source_class(table, protocol, sport)
        } else {
            0
        },
        port_be: dport.to_be(),
    };
    // Selector rules are keyed by pod identity, ipBlock rules by CIDR identity, rules
    // without peers by ANY: within a table, the first lookup that matches decides.
    let mut verdict = None;
    if lookups & lookup::ORDERED != 0 {
        key.peer_identity = if pod_identity != identity::WORLD {
            pod_identity
        } else {
            cidr_identity
        };
        verdict = rule_action(&key);
    }
    if verdict.is_none() && lookups & lookup::POD != 0 {
        key.peer_identity = pod_identity;
        verdict = rule_action(&key);
    }
    if verdict.is_none() && lookups & lookup::CIDR != 0 {
        key.peer_identity = cidr_identity;
        verdict = rule_action(&key);
    }
    if verdict.is_none() && lookups & lookup::ANY != 0 {
        key.peer_identity = identity::ANY;
        verdict = rule_action(&key);
    }
    let Some(value) = verdict else {
        return 0;
    };
    let mut answer = table_answer::FOUND | u64::from(value.rule_ref);
    if value.action == action::ALLOW {
        answer |= table_answer::ALLOW;
    }
    if value.flags & rule_flags::LOG != 0 {
        answer |= table_answer::LOG;
    }
    answer
}

/// The class of a source port in a table with source-port rules: its class entry's, or 0.
#[inline(never)]
fn source_class(table: u32, protocol: u8, sport: u16) -> u8 {
    let key = RuleKey {
        table,
        peer_identity: identity::SOURCE_PORTS,
        protocol,
        source_class: 0,
        port_be: sport.to_be(),
    };
    // Read in place rather than through `rule_action`'s copy: the verifier rejects the code
    // LLVM makes of a copied-out `Option` read only on the hit path.
    let class = |value: &RuleValue| {
        if value.action == action::SOURCE_CLASS {
            value.rule_ref as u8
        } else {
            0
        }
    };
    // SAFETY: the value is read at once.
    if let Some(value) = unsafe { PALISADE_RULES_EXACT.get(key) } {
        return class(value);
    }
    PALISADE_RULES
        .get(&Key::new(PREFIX_FULL, key))
        .map_or(0, class)
}

/// The longest rule entry matching `key`: the exact entry in the hash, else the trie's
/// longest prefix (see `policy_common::rule`).
#[inline(always)]
fn rule_action(key: &RuleKey) -> Option<RuleValue> {
    // SAFETY: the value is copied out at once.
    match unsafe { PALISADE_RULES_EXACT.get(key) } {
        Some(value) => Some(*value),
        None => PALISADE_RULES.get(&Key::new(PREFIX_FULL, *key)).copied(),
    }
}
