//! A longest-prefix table kept as two maps: its whole-key entries in a hash map, its shorter
//! prefixes in an LPM trie. The programs look up the hash first and the trie only on a miss.
//! A whole key is the longest prefix there is, so the answer is the trie's, but the common
//! lookup costs a hash lookup, which does not deepen as entries are added the way a trie walk
//! does (see `policy_common::identity` and `policy_common::rule`). A key never moves between
//! the two maps: its prefix length decides.

use std::collections::BTreeMap;

use aya::{
    Pod,
    maps::{HashMap, LpmTrie, MapData, MapError, lpm_trie::Key},
};

use super::DataplaneError;
use crate::compiler::LpmKey;

pub(super) struct SplitTable<K, V> {
    exact: HashMap<MapData, K, V>,
    prefixes: LpmTrie<MapData, K, V>,
    /// The prefix length of a whole key.
    full: u32,
    exact_name: &'static str,
    prefixes_name: &'static str,
}

impl<K: Pod, V: Pod> SplitTable<K, V> {
    pub(super) fn new(
        (exact, exact_name): (HashMap<MapData, K, V>, &'static str),
        (prefixes, prefixes_name): (LpmTrie<MapData, K, V>, &'static str),
        full: u32,
    ) -> Self {
        Self {
            exact,
            prefixes,
            full,
            exact_name,
            prefixes_name,
        }
    }

    pub(super) fn insert(&mut self, key: &LpmKey<K>, value: &V) -> Result<(), DataplaneError> {
        if key.prefix_len == self.full {
            self.exact
                .insert(key.data, value, 0)
                .map_err(update_error("insert", self.exact_name))
        } else {
            self.prefixes
                .insert(&Key::new(key.prefix_len, key.data), value, 0)
                .map_err(update_error("insert", self.prefixes_name))
        }
    }

    /// Removes an entry; one that is already gone is fine.
    pub(super) fn remove(&mut self, key: &LpmKey<K>) -> Result<(), DataplaneError> {
        let (result, map) = if key.prefix_len == self.full {
            (self.exact.remove(&key.data), self.exact_name)
        } else {
            (
                self.prefixes.remove(&Key::new(key.prefix_len, key.data)),
                self.prefixes_name,
            )
        };
        match result {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(source) => Err(update_error("remove", map)(source)),
        }
    }
}

impl<K: Pod + Ord, V: Pod> SplitTable<K, V> {
    /// Every entry both maps hold, as the compiler keys them.
    pub(super) fn entries(&self) -> Result<BTreeMap<LpmKey<K>, V>, DataplaneError> {
        let mut entries = BTreeMap::new();
        for entry in self.exact.iter() {
            let (data, value) = entry.map_err(update_error("read", self.exact_name))?;
            let key = LpmKey {
                prefix_len: self.full,
                data,
            };
            entries.insert(key, value);
        }
        for entry in self.prefixes.iter() {
            let (key, value) = entry.map_err(update_error("read", self.prefixes_name))?;
            let key = LpmKey {
                prefix_len: key.prefix_len(),
                data: key.data(),
            };
            entries.insert(key, value);
        }
        Ok(entries)
    }
}

fn update_error(
    operation: &'static str,
    map: &'static str,
) -> impl FnOnce(MapError) -> DataplaneError {
    move |source| DataplaneError::MapUpdate {
        operation,
        map,
        source,
    }
}
