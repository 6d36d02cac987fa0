//! Switching the maps to a new numbering without a packet ever getting a third verdict.
//!
//! A packet's verdict reads two entries: its endpoint's tables and its peer's identity. An
//! incremental compile changes them so that single writes in the order of
//! [`MapDelta::writes`](super::MapDelta::writes) keep every packet's verdict the old one or the
//! new one. A rebuild gives every identity and table a new number at once, and no order of
//! single writes can switch an endpoint's tables and its peers' identities together. So the
//! identity maps hold every prefix's value under two numberings
//! ([`IdentitySlots`]), each endpoint's policy lists name the numbering their tables were built
//! for, and a renumbering is written as:
//!
//! 1. the new rule entries (new table numbers: nothing refers to them yet);
//! 2. every prefix of the old and the new state, with the old numbering's slot holding what
//!    the old maps give for it and the new slot what the new maps give (for a prefix only one
//!    state has, the value of the longest prefix of the other state that covers it), so that
//!    either numbering reads exactly its own state whatever has been written so far;
//! 3. every endpoint, with its new tables and the new numbering: each switch is one write;
//! 4. the removals (endpoints, prefixes, rules of the old state only).
//!
//! `tests/tests/models/write_order.rs` replays every intermediate state of both kinds of sync.

use std::collections::BTreeMap;

use policy_common::{
    endpoint::{EndpointKey, EndpointPolicy},
    identity::{self, IdentityKey, IdentitySlots, IdentityValue},
    rule::{RuleKey, RuleValue},
};

use super::MapWrite;
use crate::compiler::{LpmKey, MapContents};

/// One write to the policy maps as the kernel holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelWrite {
    Rule(LpmKey<RuleKey>, RuleValue),
    Identity(LpmKey<IdentityKey>, IdentitySlots),
    /// (An endpoint's entry is ten times the size of the others.)
    Endpoint(EndpointKey, Box<EndpointPolicy>),
    RemoveEndpoint(EndpointKey),
    RemoveIdentity(LpmKey<IdentityKey>),
    RemoveRule(LpmKey<RuleKey>),
}

impl MapWrite<'_> {
    /// This write as the kernel takes it while endpoints read `numbering`: an identity the
    /// same under both numberings, an endpoint stamped with it.
    pub fn in_kernel(&self, numbering: u32) -> KernelWrite {
        match *self {
            MapWrite::Rule(key, value) => KernelWrite::Rule(*key, *value),
            MapWrite::Identity(key, value) => {
                KernelWrite::Identity(*key, IdentitySlots::both(*value))
            }
            MapWrite::Endpoint(key, value) => {
                KernelWrite::Endpoint(*key, Box::new(stamped(*value, numbering)))
            }
            MapWrite::RemoveEndpoint(key) => KernelWrite::RemoveEndpoint(*key),
            MapWrite::RemoveIdentity(key) => KernelWrite::RemoveIdentity(*key),
            MapWrite::RemoveRule(key) => KernelWrite::RemoveRule(*key),
        }
    }
}

/// An endpoint entry whose tables are read with `numbering`.
pub fn stamped(mut value: EndpointPolicy, numbering: u32) -> EndpointPolicy {
    value.ingress.numbering = numbering;
    value.egress.numbering = numbering;
    value
}

/// The writes that bring the kernel from `previous`, read with numbering `from`, to
/// `desired` (endpoints already bound to their interfaces), read with `to`, in the order of
/// the module documentation.
pub fn renumbering_writes(
    previous: &MapContents,
    desired: &MapContents,
    from: u32,
    to: u32,
) -> Vec<KernelWrite> {
    let mut writes = Vec::new();
    for (key, value) in &desired.rules {
        if previous.rules.get(key) != Some(value) {
            writes.push(KernelWrite::Rule(*key, *value));
        }
    }
    let prefixes = previous
        .identities
        .keys()
        .chain(desired.identities.keys())
        .collect::<std::collections::BTreeSet<_>>();
    for key in prefixes {
        let mut slots = IdentitySlots::default();
        slots.slots[slot(from)] = covering(&previous.identities, key);
        slots.slots[slot(to)] = covering(&desired.identities, key);
        writes.push(KernelWrite::Identity(*key, slots));
    }
    for (key, value) in &desired.endpoints {
        writes.push(KernelWrite::Endpoint(*key, Box::new(stamped(*value, to))));
    }
    for key in previous.endpoints.keys() {
        if !desired.endpoints.contains_key(key) {
            writes.push(KernelWrite::RemoveEndpoint(*key));
        }
    }
    for key in previous.identities.keys() {
        if !desired.identities.contains_key(key) {
            writes.push(KernelWrite::RemoveIdentity(*key));
        }
    }
    for key in previous.rules.keys() {
        if !desired.rules.contains_key(key) {
            writes.push(KernelWrite::RemoveRule(*key));
        }
    }
    writes
}

fn slot(numbering: u32) -> usize {
    usize::from(numbering & 1 == 1)
}

/// What a lookup of `key`'s addresses finds in `identities` (as the datapath's longest-prefix
/// match would, among prefixes no longer than `key`'s): the value of the longest prefix that
/// covers `key`, or [`identity::WORLD`] for both identities when none does.
fn covering(
    identities: &BTreeMap<LpmKey<IdentityKey>, IdentityValue>,
    key: &LpmKey<IdentityKey>,
) -> IdentityValue {
    for prefix_len in (0..=key.prefix_len.min(128)).rev() {
        let candidate = LpmKey {
            prefix_len,
            data: IdentityKey {
                addr: masked(&key.data.addr, prefix_len),
            },
        };
        if let Some(value) = identities.get(&candidate) {
            return *value;
        }
    }
    IdentityValue {
        pod_identity: identity::WORLD,
        cidr_identity: identity::WORLD,
    }
}

/// `addr` with the bits after the first `prefix_len` cleared (how prefixes are keyed).
fn masked(addr: &[u8; 16], prefix_len: u32) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (i, (out, byte)) in out.iter_mut().zip(addr).enumerate() {
        let bits_before = u32::try_from(i * 8).unwrap_or(u32::MAX);
        let keep = prefix_len.saturating_sub(bits_before).min(8);
        *out = if keep == 0 {
            0
        } else {
            byte & (0xffu8 << (8 - keep))
        };
    }
    out
}

/// The policy maps as the kernel holds them: identities under two numberings, endpoints
/// stamped with theirs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelMaps {
    pub endpoints: BTreeMap<EndpointKey, EndpointPolicy>,
    pub identities: BTreeMap<LpmKey<IdentityKey>, IdentitySlots>,
    pub rules: BTreeMap<LpmKey<RuleKey>, RuleValue>,
}

impl KernelMaps {
    /// What a program reading `numbering` sees, as the compiler writes maps: endpoint
    /// entries stamped with `numbering` unstamped (others keep their stamp, so they differ).
    pub fn view(&self, numbering: u32) -> MapContents {
        MapContents {
            endpoints: self
                .endpoints
                .iter()
                .map(|(key, value)| {
                    let read_with =
                        value.ingress.numbering == numbering && value.egress.numbering == numbering;
                    let value = if read_with {
                        stamped(*value, 0)
                    } else {
                        *value
                    };
                    (*key, value)
                })
                .collect(),
            identities: self
                .identities
                .iter()
                .map(|(key, slots)| (*key, slots.get(numbering)))
                .collect(),
            rules: self.rules.clone(),
        }
    }

    /// What `write` does to these contents.
    pub fn apply(&mut self, write: &KernelWrite) {
        match write {
            KernelWrite::Rule(key, value) => {
                self.rules.insert(*key, *value);
            }
            KernelWrite::Identity(key, slots) => {
                self.identities.insert(*key, *slots);
            }
            KernelWrite::Endpoint(key, value) => {
                self.endpoints.insert(*key, **value);
            }
            KernelWrite::RemoveEndpoint(key) => {
                self.endpoints.remove(key);
            }
            KernelWrite::RemoveIdentity(key) => {
                self.identities.remove(key);
            }
            KernelWrite::RemoveRule(key) => {
                self.rules.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_the_prefix_bits_only() {
        let addr = [0xff; 16];
        assert_eq!(masked(&addr, 0), [0; 16]);
        assert_eq!(masked(&addr, 128), addr);
        let m = masked(&addr, 100);
        assert_eq!(&m[..12], &[0xff; 12]);
        assert_eq!(m[12], 0xf0);
        assert_eq!(&m[13..], &[0; 3]);
    }

    #[test]
    fn a_prefix_one_state_lacks_gets_the_value_covering_it_there() {
        let value = |pod_identity| IdentityValue {
            pod_identity,
            cidr_identity: 7,
        };
        let key = |last: u8, prefix_len| {
            let mut addr = [0u8; 16];
            addr[0] = 10;
            addr[15] = last;
            LpmKey {
                prefix_len,
                data: IdentityKey { addr },
            }
        };
        let identities = BTreeMap::from([(key(0, 8), value(300))]);
        assert_eq!(covering(&identities, &key(5, 128)), value(300));
        assert_eq!(covering(&identities, &key(0, 8)), value(300));
        assert_eq!(
            covering(&identities, &key(0, 4)).pod_identity,
            identity::WORLD
        );
    }
}
