//! What changed between two versions of the cluster, object by object.
//!
//! Objects are shared between versions (`model::Cluster`), so the comparison is mostly of
//! pointers: an object both versions share is unchanged without looking into it, and only
//! objects a datastore made anew are compared field by field.

use std::{collections::BTreeMap, sync::Arc};

use crate::model::Cluster;

/// Keys of the objects that were added, removed or changed.
#[derive(Debug, Default)]
pub struct Changes {
    pub namespaces: Vec<String>,
    pub pods: Vec<(String, String)>,
    pub policies: Vec<(String, String)>,
}

impl Changes {
    pub fn between(old: &Cluster, new: &Cluster) -> Self {
        Self {
            namespaces: changed_keys(&old.namespaces, &new.namespaces),
            pods: changed_keys(&old.pods, &new.pods),
            policies: changed_keys(&old.policies, &new.policies),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty() && self.pods.is_empty() && self.policies.is_empty()
    }

    /// Brings `copy` to `new` by cloning only the changed objects.
    pub fn apply_to(&self, copy: &mut Cluster, new: &Cluster) {
        sync(&mut copy.namespaces, &new.namespaces, &self.namespaces);
        sync(&mut copy.pods, &new.pods, &self.pods);
        sync(&mut copy.policies, &new.policies, &self.policies);
    }
}

/// One pass over both (sorted) maps.
fn changed_keys<K: Ord + Clone, V: PartialEq>(
    old: &BTreeMap<K, Arc<V>>,
    new: &BTreeMap<K, Arc<V>>,
) -> Vec<K> {
    let mut changed = Vec::new();
    let mut old_iter = old.iter().peekable();
    let mut new_iter = new.iter().peekable();
    loop {
        match (old_iter.peek(), new_iter.peek()) {
            (None, None) => break,
            (Some((k, _)), None) => {
                changed.push((*k).clone());
                old_iter.next();
            }
            (None, Some((k, _))) => {
                changed.push((*k).clone());
                new_iter.next();
            }
            (Some((ko, vo)), Some((kn, vn))) => match ko.cmp(kn) {
                std::cmp::Ordering::Less => {
                    changed.push((*ko).clone());
                    old_iter.next();
                }
                std::cmp::Ordering::Greater => {
                    changed.push((*kn).clone());
                    new_iter.next();
                }
                std::cmp::Ordering::Equal => {
                    if !Arc::ptr_eq(vo, vn) && vo != vn {
                        changed.push((*ko).clone());
                    }
                    old_iter.next();
                    new_iter.next();
                }
            },
        }
    }
    changed
}

/// Brings `copy` to `new` at `keys`, sharing `new`'s objects.
fn sync<K: Ord + Clone, V>(copy: &mut BTreeMap<K, Arc<V>>, new: &BTreeMap<K, Arc<V>>, keys: &[K]) {
    for key in keys {
        match new.get(key) {
            Some(value) => {
                copy.insert(key.clone(), Arc::clone(value));
            }
            None => {
                copy.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(u32, char)]) -> BTreeMap<u32, Arc<char>> {
        entries.iter().map(|&(k, v)| (k, Arc::new(v))).collect()
    }

    #[test]
    fn finds_added_removed_and_changed_keys() {
        let old = map(&[(1, 'a'), (2, 'b'), (3, 'c')]);
        let new = map(&[(2, 'b'), (3, 'x'), (4, 'd')]);
        assert_eq!(changed_keys(&old, &new), vec![1, 3, 4]);
        let mut copy = old.clone();
        sync(&mut copy, &new, &[1, 3, 4]);
        assert_eq!(copy, new);
        // The copy now shares the new objects: comparing them looks at pointers only.
        assert!(Arc::ptr_eq(&copy[&3], &new[&3]));
        assert!(changed_keys(&copy, &new).is_empty());
    }

    #[test]
    fn equal_objects_made_apart_are_unchanged() {
        // A datastore that converts an unchanged object again makes a new allocation.
        let old = map(&[(1, 'a')]);
        let new = map(&[(1, 'a')]);
        assert!(!Arc::ptr_eq(&old[&1], &new[&1]));
        assert!(changed_keys(&old, &new).is_empty());
    }
}
