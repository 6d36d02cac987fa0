//! Expansion of a policy shape into rule-map entries.
//!
//! Kubernetes rules only allow, so every entry is ALLOW and an isolated endpoint's default is
//! the miss. Where two items cover the same key, the first (in shape order) keeps its
//! explanation; the verdict is the same either way.

use std::collections::BTreeMap;

use policy_common::{
    identity as reserved,
    rule::{PREFIX_ANY_PORT, PREFIX_ANY_PROTOCOL, RuleKey, RuleValue, action},
};

use super::{
    LpmKey,
    identity::IdentityTable,
    ports::port_prefixes,
    shape::{Origin, Shape, ShapePort},
};

pub fn emit(
    policy: u32,
    shape: &Shape,
    table: &IdentityTable,
    explain: &mut impl FnMut(&Origin) -> u32,
    out: &mut BTreeMap<LpmKey<RuleKey>, RuleValue>,
) {
    for item in &shape.items {
        let value = RuleValue {
            action: action::ALLOW,
            rule_ref: explain(&item.origin),
        };
        let mut insert = |identity: u32, prefix_len: u32, protocol: u8, port: u16| {
            let key = LpmKey {
                prefix_len,
                data: RuleKey {
                    policy,
                    peer_identity: identity,
                    protocol,
                    _pad: 0,
                    port_be: port.to_be(),
                },
            };
            out.entry(key).or_insert(value);
        };
        let identities: &[u32] = match &item.peer {
            None => &[reserved::ANY],
            Some(peer) => table.identities_of(peer),
        };
        match &item.port {
            ShapePort::Any => {
                for &identity in identities {
                    insert(identity, PREFIX_ANY_PROTOCOL, 0, 0);
                }
            }
            ShapePort::AllPorts(protocol) => {
                for &identity in identities {
                    insert(identity, PREFIX_ANY_PORT, protocol.number(), 0);
                }
            }
            ShapePort::Range {
                protocol,
                first,
                last,
            } => {
                let blocks = port_prefixes(*first, *last);
                for &identity in identities {
                    for &(start, bits) in &blocks {
                        insert(identity, PREFIX_ANY_PORT + bits, protocol.number(), start);
                    }
                }
            }
            ShapePort::EgressNamed { protocol, name } => {
                // Resolved against each peer pod: only identities of pods that number the
                // name, and (unless the rule allows every peer) that the peer matches.
                let resolved = table
                    .by_named_port
                    .get(&(*protocol, name.clone()))
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                for &(identity, port) in resolved {
                    if item.peer.is_none() || identities.contains(&identity) {
                        insert(identity, PREFIX_ANY_PORT + 16, protocol.number(), port);
                    }
                }
            }
        }
    }
}
