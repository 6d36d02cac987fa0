//! Bringing the maps from one compiled state to the next.
//!
//! Order matters, because the kernel reads the maps while we write them: first every entry a
//! new state adds or changes in the rule map, then identities, then endpoints (which is what
//! points an endpoint at a new policy id), and only then the deletions in the reverse order.
//! Policy and identity numbers are never reused (see `compiler::allocator`), so at every moment
//! each endpoint's policy id refers to a complete rule set: a change is make-before-break.
//! Last, the policy generation is bumped, so connections tracked under the old policy are
//! checked against the new one at their next packet.

use std::collections::{BTreeMap, BTreeSet};

use aya::maps::MapError;
use policy_common::map_names;

use super::{Datapath, DataplaneError, routes::Binding};
use crate::compiler::{MapChanges, MapContents};

/// How many entries a sync wrote and removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    pub written: usize,
    pub removed: usize,
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

    /// Brings a copy of the maps' contents along.
    pub fn apply_to(&self, maps: &mut MapContents) {
        maps.endpoints.extend(&self.written.endpoints);
        maps.identities.extend(&self.written.identities);
        maps.rules.extend(&self.written.rules);
        for key in &self.removed.endpoints {
            maps.endpoints.remove(key);
        }
        for key in &self.removed.identities {
            maps.identities.remove(key);
        }
        for key in &self.removed.rules {
            maps.rules.remove(key);
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

    /// Writes a delta, in the make-before-break order the module documentation gives.
    pub fn write(&mut self, delta: &MapDelta) -> Result<SyncStats, DataplaneError> {
        let mut stats = SyncStats::default();
        let map_err = |operation, map| {
            move |source| DataplaneError::MapUpdate {
                operation,
                map,
                source,
            }
        };

        for (key, value) in &delta.written.rules {
            self.rules.insert(key, value)?;
            stats.written += 1;
        }
        for (key, value) in &delta.written.identities {
            self.identities.insert(key, value)?;
            stats.written += 1;
        }
        for (key, value) in &delta.written.endpoints {
            self.endpoints
                .insert(key, value, 0)
                .map_err(map_err("insert", map_names::ENDPOINTS))?;
            stats.written += 1;
        }

        for key in &delta.removed.endpoints {
            ignore_missing(self.endpoints.remove(key))
                .map_err(map_err("remove", map_names::ENDPOINTS))?;
            stats.removed += 1;
        }
        for key in &delta.removed.identities {
            self.identities.remove(key)?;
            stats.removed += 1;
        }
        for key in &delta.removed.rules {
            self.rules.remove(key)?;
            stats.removed += 1;
        }
        if stats.written + stats.removed > 0 {
            self.bump_generation()?;
        }
        Ok(stats)
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
}
