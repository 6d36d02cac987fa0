//! Bringing the maps from one compiled state to the next.
//!
//! Order matters, because the kernel reads the maps while we write them. [`MapDelta::writes`]
//! is the one place that orders a delta, and both the kernel writes and the tests that hold
//! the order follow it:
//!
//! 1. every rule entry the new state adds or changes,
//! 2. then identities (an address's new identity finds its rules already there),
//! 3. then endpoints (what points an endpoint at a new table: its rules are complete),
//! 4. then the removals in the reverse order: endpoints, identities, rules.
//!
//! Policy and identity numbers are never reused (see `compiler::interner`), so at every
//! moment each endpoint's tables refer to complete rule sets: a change is make-before-break,
//! and a packet decided in the middle of a sync gets the old verdict or the new one
//! (`tests/tests/models/write_order.rs` replays every intermediate state to hold this). A compile
//! that renumbered everything, and a delta that changes both an endpoint's tables and an
//! address's identity ([`MapDelta::needs_switch`]), are written as a renumbering instead (see
//! [`super::renumber`]).
//! Last, the policy generation is bumped, so connections tracked under the old policy are
//! checked against the new one at their next packet.

use std::collections::{BTreeMap, BTreeSet};

use aya::maps::MapError;
use policy_common::map_names;

use policy_common::{
    endpoint::{EndpointKey, EndpointPolicy},
    identity::{IdentityKey, IdentityValue},
    rule::{RuleKey, RuleValue},
};

use super::{
    Datapath, DataplaneError,
    renumber::{KernelWrite, renumbering_writes},
    routes::Binding,
};
use crate::compiler::{LpmKey, MapChanges, MapContents};

/// How many entries a sync wrote and removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    pub written: usize,
    pub removed: usize,
}

impl SyncStats {
    fn count(&mut self, write: &KernelWrite) {
        match write {
            KernelWrite::Rule(..) | KernelWrite::Identity(..) | KernelWrite::Endpoint(..) => {
                self.written += 1;
            }
            KernelWrite::RemoveEndpoint(_)
            | KernelWrite::RemoveIdentity(_)
            | KernelWrite::RemoveRule(_) => self.removed += 1,
        }
    }
}

/// The entries to write and the keys to remove that bring the maps from one state to the
/// next.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MapDelta {
    pub written: MapContents,
    pub removed: MapChanges,
}

impl MapDelta {
    /// Among `keys` (the keys a compile reports changed, or every key), the entries `desired`
    /// has and `previous` lacks or holds differently, and the keys only `previous` has.
    /// `binding` turns a compiled endpoint entry into the one the map holds.
    pub fn between(
        previous: &MapContents,
        desired: &MapContents,
        keys: &MapChanges,
        binding: &Binding,
    ) -> Self {
        let mut delta = Self::default();
        diff(
            &previous.endpoints,
            &desired.endpoints,
            &keys.endpoints,
            |key, value| binding.bind(key, value),
            &mut delta.written.endpoints,
            &mut delta.removed.endpoints,
        );
        diff(
            &previous.identities,
            &desired.identities,
            &keys.identities,
            |_, value| value,
            &mut delta.written.identities,
            &mut delta.removed.identities,
        );
        diff(
            &previous.rules,
            &desired.rules,
            &keys.rules,
            |_, value| value,
            &mut delta.written.rules,
            &mut delta.removed.rules,
        );
        delta
    }

    /// The whole difference between two states.
    pub fn full(previous: &MapContents, desired: &MapContents) -> Self {
        let mut keys = MapChanges::all_of(previous);
        keys.include(desired);
        Self::between(previous, desired, &keys, &Binding::default())
    }

    pub fn is_empty(&self) -> bool {
        self.written == MapContents::default() && self.removed.is_empty()
    }

    /// The delta as single map writes, in the order the kernel must see them (see the
    /// module documentation).
    pub fn writes(&self) -> impl Iterator<Item = MapWrite<'_>> {
        let written = &self.written;
        let removed = &self.removed;
        (written.rules.iter().map(|(k, v)| MapWrite::Rule(k, v)))
            .chain(
                written
                    .identities
                    .iter()
                    .map(|(k, v)| MapWrite::Identity(k, v)),
            )
            .chain(
                written
                    .endpoints
                    .iter()
                    .map(|(k, v)| MapWrite::Endpoint(k, v)),
            )
            .chain(removed.endpoints.iter().map(MapWrite::RemoveEndpoint))
            .chain(removed.identities.iter().map(MapWrite::RemoveIdentity))
            .chain(removed.rules.iter().map(MapWrite::RemoveRule))
    }

    /// Whether single writes in the order of [`Self::writes`] could give a packet a third
    /// verdict, so that the delta must be written as a switch of numbering (see
    /// [`super::renumber`]) instead.
    ///
    /// That is when an endpoint already in `previous` gets new tables and some address's
    /// identity changes in the same delta. Between the two writes, a packet from that address
    /// to that endpoint is decided by the endpoint's old tables with the address's new
    /// identity (or the reverse), which neither state holds: a table that is going away has
    /// no entries for an identity only the new state has, so a Calico deny rule that selects
    /// the address there stops matching it while the table's allow for its network set still
    /// does. Each change alone is safe: unchanged tables get the new identities' entries
    /// before any address takes them, and new tables have entries for every identity that
    /// lives on.
    pub fn needs_switch(&self, previous: &MapContents) -> bool {
        let identities_change =
            !self.written.identities.is_empty() || !self.removed.identities.is_empty();
        identities_change
            && self
                .written
                .endpoints
                .keys()
                .any(|key| previous.endpoints.contains_key(key))
    }

    /// Brings a copy of the maps' contents along.
    pub fn apply_to(&self, maps: &mut MapContents) {
        for write in self.writes() {
            write.apply_to(maps);
        }
    }
}

/// One entry written to, or removed from, one of the policy maps (borrowed from a delta).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapWrite<'a> {
    Rule(&'a LpmKey<RuleKey>, &'a RuleValue),
    Identity(&'a LpmKey<IdentityKey>, &'a IdentityValue),
    Endpoint(&'a EndpointKey, &'a EndpointPolicy),
    RemoveEndpoint(&'a EndpointKey),
    RemoveIdentity(&'a LpmKey<IdentityKey>),
    RemoveRule(&'a LpmKey<RuleKey>),
}

impl MapWrite<'_> {
    /// What this write does to a copy of the maps' contents.
    pub fn apply_to(&self, maps: &mut MapContents) {
        match *self {
            MapWrite::Rule(key, value) => {
                maps.rules.insert(*key, *value);
            }
            MapWrite::Identity(key, value) => {
                maps.identities.insert(*key, *value);
            }
            MapWrite::Endpoint(key, value) => {
                maps.endpoints.insert(*key, *value);
            }
            MapWrite::RemoveEndpoint(key) => {
                maps.endpoints.remove(key);
            }
            MapWrite::RemoveIdentity(key) => {
                maps.identities.remove(key);
            }
            MapWrite::RemoveRule(key) => {
                maps.rules.remove(key);
            }
        }
    }
}

/// For each of `keys`: written if `desired` has it with a value `previous` does not hold,
/// removed if only `previous` has it.
fn diff<K: Ord + Copy, V: PartialEq + Copy>(
    previous: &BTreeMap<K, V>,
    desired: &BTreeMap<K, V>,
    keys: &BTreeSet<K>,
    stored: impl Fn(&K, V) -> V,
    written: &mut BTreeMap<K, V>,
    removed: &mut BTreeSet<K>,
) {
    for key in keys {
        match desired.get(key) {
            Some(value) => {
                let value = stored(key, *value);
                if previous.get(key) != Some(&value) {
                    written.insert(*key, value);
                }
            }
            None => {
                if previous.contains_key(key) {
                    removed.insert(*key);
                }
            }
        }
    }
}

impl Datapath {
    /// Programs `desired` over `previous` (the whole difference).
    pub fn apply(
        &mut self,
        previous: &MapContents,
        desired: &MapContents,
    ) -> Result<SyncStats, DataplaneError> {
        self.capacities.check(desired)?;
        self.write(&MapDelta::full(previous, desired))
    }

    /// Whether `maps` fit the policy maps (see [`super::Capacities::check`]).
    pub fn check_fits(&self, maps: &MapContents) -> Result<(), DataplaneError> {
        self.capacities.check(maps)
    }

    /// Writes a delta, in the make-before-break order of [`MapDelta::writes`], then bumps the
    /// policy generation.
    pub fn write(&mut self, delta: &MapDelta) -> Result<SyncStats, DataplaneError> {
        let mut stats = SyncStats::default();
        for write in delta.writes() {
            let write = write.in_kernel(self.numbering);
            self.write_kernel(&write)?;
            stats.count(&write);
        }
        if stats.written + stats.removed > 0 {
            self.bump_generation()?;
        }
        Ok(stats)
    }

    /// Switches the maps from `previous` to `desired` (endpoints bound to their interfaces),
    /// a compile that gave identities and tables new numbers, as a renumbering (see
    /// [`super::renumber`]). After a failure, calling it again with the same `previous`
    /// finishes the same switch.
    pub fn write_renumbering(
        &mut self,
        previous: &MapContents,
        desired: &MapContents,
    ) -> Result<SyncStats, DataplaneError> {
        self.capacities.check(desired)?;
        // Endpoints may already read the target numbering if the last attempt failed after
        // switching some: the same target then, never back.
        let to = if self.switching {
            self.numbering
        } else {
            self.numbering ^ 1
        };
        let from = to ^ 1;
        let mut stats = SyncStats::default();
        for write in renumbering_writes(previous, desired, from, to) {
            if matches!(write, KernelWrite::Endpoint(..)) && !self.switching {
                self.switching = true;
                self.numbering = to;
            }
            self.write_kernel(&write)?;
            stats.count(&write);
        }
        self.switching = false;
        self.numbering = to;
        self.bump_generation()?;
        Ok(stats)
    }

    /// Arms the test-only write failures (see [`super::fault`]).
    pub fn inject_write_faults(&mut self, faults: super::fault::WriteFaults) {
        self.faults = faults;
    }

    fn write_kernel(&mut self, write: &KernelWrite) -> Result<(), DataplaneError> {
        if self.faults.next_fails() {
            return Err(DataplaneError::InjectedFault);
        }
        let map_err = |operation, map| {
            move |source| DataplaneError::MapUpdate {
                operation,
                map,
                source,
            }
        };
        match write {
            KernelWrite::Rule(key, value) => self.rules.insert(key, value),
            KernelWrite::Identity(key, slots) => self.identities.insert(key, slots),
            KernelWrite::Endpoint(key, value) => self
                .endpoints
                .insert(key, value.as_ref(), 0)
                .map_err(map_err("insert", map_names::ENDPOINTS)),
            KernelWrite::RemoveEndpoint(key) => ignore_missing(self.endpoints.remove(key))
                .map_err(map_err("remove", map_names::ENDPOINTS)),
            KernelWrite::RemoveIdentity(key) => self.identities.remove(key),
            KernelWrite::RemoveRule(key) => self.rules.remove(key),
        }
    }

    /// Tells the programs that policy changed: tracked connections are checked against it
    /// again at their next packet (see `policy_common::conntrack`).
    pub fn bump_generation(&mut self) -> Result<(), DataplaneError> {
        let next = self.generation.wrapping_add(1);
        self.config
            .set(policy_common::config::GENERATION, next, 0)
            .map_err(|source| DataplaneError::MapUpdate {
                operation: "update",
                map: map_names::CONFIG,
                source,
            })?;
        self.generation = next;
        Ok(())
    }
}

/// Removing an entry that is already gone is what we wanted anyway.
fn ignore_missing(result: Result<(), MapError>) -> Result<(), MapError> {
    match result {
        Err(MapError::KeyNotFound) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use policy_common::identity::{IdentityKey, IdentityValue};

    use super::*;
    use crate::compiler::LpmKey;

    fn identity(byte: u8) -> LpmKey<IdentityKey> {
        LpmKey {
            prefix_len: 128,
            data: IdentityKey { addr: [byte; 16] },
        }
    }

    fn value(pod_identity: u32) -> IdentityValue {
        IdentityValue {
            pod_identity,
            cidr_identity: 2,
        }
    }

    fn maps(entries: &[(u8, u32)]) -> MapContents {
        MapContents {
            identities: entries
                .iter()
                .map(|(k, v)| (identity(*k), value(*v)))
                .collect(),
            ..MapContents::default()
        }
    }

    #[test]
    fn full_delta_finds_changes_and_removals() {
        let previous = maps(&[(1, 10), (2, 20), (3, 30)]);
        let desired = maps(&[(2, 20), (3, 31), (4, 40)]);
        let delta = MapDelta::full(&previous, &desired);
        assert_eq!(delta.written, maps(&[(3, 31), (4, 40)]));
        assert_eq!(delta.removed.identities, BTreeSet::from([identity(1)]));
        let mut copy = previous.clone();
        delta.apply_to(&mut copy);
        assert_eq!(copy, desired);
    }

    #[test]
    fn delta_looks_only_at_the_keys_it_is_given() {
        let previous = maps(&[(1, 10), (2, 20)]);
        let desired = maps(&[(2, 21), (3, 30)]);
        let keys = MapChanges {
            identities: BTreeSet::from([identity(2)]),
            ..MapChanges::default()
        };
        let delta = MapDelta::between(&previous, &desired, &keys, &Binding::default());
        assert_eq!(delta.written, maps(&[(2, 21)]));
        assert!(delta.removed.is_empty());
    }

    /// A namespace relabel that moves an endpoint from one Calico policy's table to
    /// another's and gives a peer a new identity (the deny rules select its namespace's
    /// labels) in the same compile (the failure CI's write-order property found): the plain
    /// order would
    /// let the peer through the dying table (no entry for its new identity, so the deny that
    /// selects it misses and the allow of its block matches), so the delta is switched, and
    /// the switch decides every intermediate state as the old policy or the new one.
    #[test]
    fn a_delta_moving_tables_and_identities_is_switched() {
        use crate::{
            compiler::{Compiler, Scope},
            dataplane::renumber::{KernelMaps, renumbering_writes},
            datastore::file::load_for_test,
            replay::{self, Direction, Packet},
        };
        let cluster = |team: &str| {
            let yaml = format!(
                r#"
apiVersion: v1
kind: Namespace
metadata: {{name: x, labels: {{team: {team}}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: db, namespace: x, labels: {{app: db}}}}
spec: {{containers: [{{name: c, image: db}}]}}
status: {{podIP: 10.0.0.10}}
---
apiVersion: v1
kind: Pod
metadata: {{name: bad, namespace: x, labels: {{app: bad}}}}
spec: {{containers: [{{name: c, image: busybox}}]}}
status: {{podIP: 10.0.0.11}}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {{name: team-a}}
spec:
  selector: app == 'db'
  namespaceSelector: team == 'a'
  ingress:
    - {{action: Deny, source: {{selector: app == 'bad', namespaceSelector: team == 'a'}}}}
    - {{action: Allow, source: {{nets: [10.0.0.0/8]}}}}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {{name: team-b}}
spec:
  selector: app == 'db'
  namespaceSelector: team == 'b'
  ingress:
    - {{action: Deny, source: {{selector: app == 'bad', namespaceSelector: team == 'b'}}}}
    - {{action: Allow, source: {{nets: [10.0.0.0/16]}}}}
"#
            );
            load_for_test(&format!("switch-{team}"), &yaml).cluster
        };
        let scope = Scope {
            node_name: None,
            host_addrs: Vec::new(),
        };
        let packet = Packet {
            src: "10.0.0.11".parse().expect("an address"),
            dst: "10.0.0.10".parse().expect("an address"),
            protocol: 6,
            sport: 40000,
            dport: 5432,
        };
        let mut compiler = Compiler::new();
        let old = (*compiler.compile(&cluster("a"), &scope).maps).clone();
        let compiled = compiler.compile(&cluster("b"), &scope);
        assert!(!compiled.renumbered, "an incremental compile");
        let new = (*compiled.maps).clone();
        let allows = |maps: &MapContents| replay::allows(maps, &packet, Direction::ToEndpoint);
        assert!(
            !allows(&old) && !allows(&new),
            "both policies deny the peer"
        );

        let delta = MapDelta::between(&old, &new, &compiled.changes, &Binding::default());
        assert!(delta.needs_switch(&old));
        // Why: written one at a time in the plain order, some state lets the peer in.
        let mut maps = old.clone();
        let third = delta.writes().any(|write| {
            write.apply_to(&mut maps);
            allows(&maps)
        });
        assert!(third, "the plain order passes through a third verdict");

        let mut kernel = KernelMaps::default();
        for write in renumbering_writes(&MapContents::default(), &old, 1, 0) {
            kernel.apply(&write);
        }
        for write in renumbering_writes(&old, &new, 0, 1) {
            kernel.apply(&write);
            let endpoint = kernel
                .endpoints
                .get(&EndpointKey {
                    addr: crate::compiler::identity_addr(packet.dst),
                })
                .map_or(0, |value| value.ingress.numbering);
            assert!(!allows(&kernel.view(endpoint)), "after {write:?}");
        }
        assert_eq!(kernel.view(1), new);
    }

    fn rule(table: u32) -> LpmKey<RuleKey> {
        LpmKey {
            prefix_len: policy_common::rule::PREFIX_FULL,
            data: RuleKey {
                table,
                peer_identity: 0,
                protocol: 6,
                source_class: 0,
                port_be: 80u16.to_be(),
            },
        }
    }

    fn endpoint(byte: u8) -> EndpointKey {
        EndpointKey { addr: [byte; 16] }
    }

    #[test]
    fn writes_make_before_break() {
        let mut delta = MapDelta::default();
        delta.written.rules.insert(rule(1), RuleValue::default());
        delta.written.identities.insert(identity(1), value(1));
        delta
            .written
            .endpoints
            .insert(endpoint(1), EndpointPolicy::default());
        delta.removed.rules.insert(rule(2));
        delta.removed.identities.insert(identity(2));
        delta.removed.endpoints.insert(endpoint(2));
        let rank = |write: &MapWrite| match write {
            MapWrite::Rule(..) => 0,
            MapWrite::Identity(..) => 1,
            MapWrite::Endpoint(..) => 2,
            MapWrite::RemoveEndpoint(_) => 3,
            MapWrite::RemoveIdentity(_) => 4,
            MapWrite::RemoveRule(_) => 5,
        };
        let ranks: Vec<_> = delta.writes().map(|w| rank(&w)).collect();
        assert_eq!(ranks, [0, 1, 2, 3, 4, 5]);
    }
}
