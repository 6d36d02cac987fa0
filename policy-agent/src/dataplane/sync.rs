//! Bringing the maps from one compiled state to the next.
//!
//! Order matters, because the kernel reads the maps while we write them: first every entry a
//! new state adds or changes in the rule map, then identities, then endpoints (which is what
//! points an endpoint at a new policy id), and only then the deletions in the reverse order.
//! Policy and identity numbers are never reused (see `compiler::allocator`), so at every moment
//! each endpoint's policy id refers to a complete rule set: a change is make-before-break.
//! Last, the policy generation is bumped, so connections tracked under the old policy are
//! checked against the new one at their next packet.

use std::collections::BTreeMap;

use aya::maps::MapError;
use policy_common::map_names;

use super::{Datapath, DataplaneError};
use crate::compiler::MapContents;

/// How many entries a sync wrote and removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    pub written: usize,
    pub removed: usize,
}

impl Datapath {
    pub fn apply(
        &mut self,
        previous: &MapContents,
        desired: &MapContents,
    ) -> Result<SyncStats, DataplaneError> {
        let mut stats = SyncStats::default();
        let map_err = |operation, map| {
            move |source| DataplaneError::MapUpdate {
                operation,
                map,
                source,
            }
        };

        for (key, value) in changed(&previous.rules, &desired.rules) {
            self.rules.insert(key, value)?;
            stats.written += 1;
        }
        for (key, value) in changed(&previous.identities, &desired.identities) {
            self.identities.insert(key, value)?;
            stats.written += 1;
        }
        for (key, value) in changed(&previous.endpoints, &desired.endpoints) {
            self.endpoints
                .insert(key, value, 0)
                .map_err(map_err("insert", map_names::ENDPOINTS))?;
            stats.written += 1;
        }

        for key in removed(&previous.endpoints, &desired.endpoints) {
            ignore_missing(self.endpoints.remove(key))
                .map_err(map_err("remove", map_names::ENDPOINTS))?;
            stats.removed += 1;
        }
        for key in removed(&previous.identities, &desired.identities) {
            self.identities.remove(key)?;
            stats.removed += 1;
        }
        for key in removed(&previous.rules, &desired.rules) {
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

/// Entries of `desired` that `previous` lacks or holds with another value.
fn changed<'a, K: Ord, V: PartialEq>(
    previous: &'a BTreeMap<K, V>,
    desired: &'a BTreeMap<K, V>,
) -> impl Iterator<Item = (&'a K, &'a V)> {
    desired
        .iter()
        .filter(move |(k, v)| previous.get(k) != Some(v))
}

/// Keys of `previous` that `desired` no longer has.
fn removed<'a, K: Ord, V>(
    previous: &'a BTreeMap<K, V>,
    desired: &'a BTreeMap<K, V>,
) -> impl Iterator<Item = &'a K> {
    previous.keys().filter(move |k| !desired.contains_key(k))
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
    use super::*;

    #[test]
    fn diff_finds_changes_and_removals() {
        let previous = BTreeMap::from([(1, 'a'), (2, 'b'), (3, 'c')]);
        let desired = BTreeMap::from([(2, 'b'), (3, 'x'), (4, 'd')]);
        let changed: Vec<_> = changed(&previous, &desired).collect();
        assert_eq!(changed, vec![(&3, &'x'), (&4, &'d')]);
        let removed: Vec<_> = removed(&previous, &desired).collect();
        assert_eq!(removed, vec![&1]);
    }
}
