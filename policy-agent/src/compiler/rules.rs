//! The rule-map entries of one table for one peer identity.
//!
//! Entries are always computed for a (table, identity) pair as a whole, so an identity or a
//! table that appears or disappears touches exactly its own entries. Kubernetes rules only
//! allow, so every entry is ALLOW and an isolated endpoint's default is the miss.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use policy_common::{
    identity as reserved,
    rule::{PREFIX_ANY_PORT, PREFIX_ANY_PROTOCOL, RuleKey, RuleValue, action},
};

use super::{
    LpmKey,
    ports::port_prefixes,
    tables::{PortSpec, TableItem},
    views::PodView,
};

pub type PeerId = u32;

/// How an item's peer is looked up in the datapath.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemPeer {
    /// No peer: every address ([`reserved::ANY`]).
    Any,
    /// A selector peer: by pod identity.
    Pods(PeerId),
    /// An `ipBlock` peer: by CIDR identity (or by pod identity with an egress named port).
    Block { peer: PeerId, block: usize },
    /// A peer that matches no address, so its rule allows nothing: what an `ipBlock` the
    /// relevance does not list would be (it lists every block of every policy, so this only
    /// keeps a broken invariant on the safe side).
    Nothing,
}

impl ItemPeer {
    pub fn id(self) -> Option<PeerId> {
        match self {
            ItemPeer::Any | ItemPeer::Nothing => None,
            ItemPeer::Pods(id) | ItemPeer::Block { peer: id, .. } => Some(id),
        }
    }
}

pub type Entries = BTreeMap<LpmKey<RuleKey>, RuleValue>;

struct Emitter<'a> {
    table: u32,
    identity: u32,
    out: &'a mut Entries,
}

impl Emitter<'_> {
    fn insert(&mut self, prefix_len: u32, protocol: u8, port: u16, rule_ref: u32) {
        let key = LpmKey {
            prefix_len,
            data: RuleKey {
                table: self.table,
                peer_identity: self.identity,
                protocol,
                source_class: 0,
                port_be: port.to_be(),
            },
        };
        // The first item covering a key keeps its explanation.
        self.out.entry(key).or_insert(RuleValue {
            action: action::ALLOW,
            rule_ref,
            flags: 0,
        });
    }

    fn port(&mut self, port: &PortSpec, rule_ref: u32) {
        match port {
            PortSpec::Any => self.insert(PREFIX_ANY_PROTOCOL, 0, 0, rule_ref),
            PortSpec::AllPorts(protocol) => {
                self.insert(PREFIX_ANY_PORT, protocol.number(), 0, rule_ref);
            }
            PortSpec::Range {
                protocol,
                first,
                last,
            } => {
                for (start, bits) in port_prefixes(*first, *last) {
                    self.insert(PREFIX_ANY_PORT + bits, protocol.number(), start, rule_ref);
                }
            }
            // Resolved per pod identity by the caller.
            PortSpec::EgressNamed { .. } => {}
        }
    }
}

/// Entries of a table for a pod identity whose views are `views` and whose matching peers
/// are `members`.
pub fn pod_identity_entries(
    table: u32,
    identity: u32,
    items: &[TableItem],
    peers: &[ItemPeer],
    members: &BTreeSet<PeerId>,
    views: &[Arc<PodView>],
) -> Entries {
    let mut out = Entries::new();
    let mut emit = Emitter {
        table,
        identity,
        out: &mut out,
    };
    for (item, peer) in items.iter().zip(peers) {
        let member = peer.id().is_some_and(|id| members.contains(&id));
        match (&item.port, peer) {
            // A named port resolves against the peer pod; the rule's peer (if any) must match
            // it too. This is also how an ipBlock with a named port matches: by pod identity.
            (PortSpec::EgressNamed { protocol, name }, _) if member || *peer == ItemPeer::Any => {
                let numbers = views.iter().flat_map(|view| &view.named_ports);
                for (p, n, number) in numbers {
                    if p == protocol && n == name {
                        emit.insert(
                            PREFIX_ANY_PORT + 16,
                            protocol.number(),
                            *number,
                            item.rule_ref,
                        );
                    }
                }
            }
            (port, ItemPeer::Pods(_)) if member => emit.port(port, item.rule_ref),
            _ => {}
        }
    }
    out
}

/// Entries of a table for a CIDR class (the blocks covering an address).
pub fn cidr_entries(
    table: u32,
    identity: u32,
    items: &[TableItem],
    peers: &[ItemPeer],
    blocks: &[usize],
) -> Entries {
    let mut out = Entries::new();
    let mut emit = Emitter {
        table,
        identity,
        out: &mut out,
    };
    for (item, peer) in items.iter().zip(peers) {
        if let ItemPeer::Block { block, .. } = peer
            && blocks.contains(block)
            && !matches!(item.port, PortSpec::EgressNamed { .. })
        {
            emit.port(&item.port, item.rule_ref);
        }
    }
    out
}

/// Entries of a table for rules without peers.
pub fn any_entries(table: u32, items: &[TableItem], peers: &[ItemPeer]) -> Entries {
    let mut out = Entries::new();
    let mut emit = Emitter {
        table,
        identity: reserved::ANY,
        out: &mut out,
    };
    for (item, peer) in items.iter().zip(peers) {
        if *peer == ItemPeer::Any {
            emit.port(&item.port, item.rule_ref);
        }
    }
    out
}
