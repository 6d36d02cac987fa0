//! The engine's output: the compiled maps, the keys a compile changed, and the explanations
//! of endpoint entries. Every write goes through here, so that no entry changes without its
//! key being recorded for the datapath to follow.

use std::{collections::BTreeMap, sync::Arc};

use policy_common::{
    endpoint::{EndpointKey, EndpointPolicy},
    identity::{IdentityKey, IdentityValue},
    rule::RuleKey,
};

use super::EndpointExplanation;
use crate::compiler::{LpmKey, MapChanges, MapContents, rules::Entries};

/// The maps as compiled so far, and what changed in them since a compile last handed its
/// changes out.
#[derive(Default)]
pub struct MapOutput {
    /// The compiled maps, shared with the last `Compiled` handed out: updated in place once
    /// that is dropped (a copy is made only while someone still holds it).
    pub maps: Arc<MapContents>,
    /// The keys written or removed since the last compile handed its changes out.
    pub changes: MapChanges,
    pub explanations: Arc<BTreeMap<EndpointKey, EndpointExplanation>>,
    /// The rule keys each (table, identity) pair owns.
    owners: BTreeMap<(u32, u32), Vec<LpmKey<RuleKey>>>,
}

impl MapOutput {
    /// Replaces the entries a (table, identity) pair owns.
    pub(super) fn set_entries(&mut self, table: u32, identity: u32, entries: Entries) {
        if let Some(old) = self.owners.remove(&(table, identity)) {
            let maps = Arc::make_mut(&mut self.maps);
            for key in old {
                maps.rules.remove(&key);
                self.changes.rules.insert(key);
            }
        }
        if entries.is_empty() {
            return;
        }
        let keys = entries.keys().copied().collect();
        self.changes.rules.extend(entries.keys().copied());
        Arc::make_mut(&mut self.maps).rules.extend(entries);
        self.owners.insert((table, identity), keys);
    }

    /// Removes every entry a table owns, whatever identity it is for.
    pub(super) fn clear_table(&mut self, table: u32) {
        let owned: Vec<(u32, u32)> = self
            .owners
            .range((table, 0)..=(table, u32::MAX))
            .map(|(k, _)| *k)
            .collect();
        for (table, identity) in owned {
            self.set_entries(table, identity, Entries::new());
        }
    }

    /// Sets (or, with `None`, removes) a prefix's identity entry.
    pub(super) fn write_identity(
        &mut self,
        key: LpmKey<IdentityKey>,
        value: Option<IdentityValue>,
    ) {
        match value {
            Some(value) => {
                Arc::make_mut(&mut self.maps).identities.insert(key, value);
            }
            None => {
                Arc::make_mut(&mut self.maps).identities.remove(&key);
            }
        }
        self.changes.identities.insert(key);
    }

    /// Sets (or, with `None`, removes) an address's endpoint entry and its explanation.
    pub(super) fn write_endpoint(
        &mut self,
        key: EndpointKey,
        entry: Option<(EndpointPolicy, EndpointExplanation)>,
    ) {
        self.changes.endpoints.insert(key);
        let explanations = Arc::make_mut(&mut self.explanations);
        match entry {
            Some((value, explanation)) => {
                Arc::make_mut(&mut self.maps).endpoints.insert(key, value);
                explanations.insert(key, explanation);
            }
            None => {
                Arc::make_mut(&mut self.maps).endpoints.remove(&key);
                explanations.remove(&key);
            }
        }
    }
}
