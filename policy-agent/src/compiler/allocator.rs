//! Stable numbering of compiled objects (identities, policy shapes).
//!
//! An object that exists in two consecutive compiles keeps its number, so its map entries are
//! not rewritten. A new object always gets a number never used before: the agent writes the
//! new number's entries before pointing anything at it and removes the old number's entries
//! afterwards, so the kernel never sees a number whose meaning changed under it.

use std::collections::BTreeMap;

#[derive(Debug)]
pub struct Allocator<K: Ord> {
    assigned: BTreeMap<K, u32>,
    next: u32,
}

impl<K: Ord + Clone> Allocator<K> {
    pub fn new(first: u32) -> Self {
        Self {
            assigned: BTreeMap::new(),
            next: first,
        }
    }

    /// Numbers for exactly `keys`: existing numbers are kept, new keys get fresh numbers,
    /// numbers of keys no longer present are forgotten.
    pub fn assign(&mut self, keys: impl IntoIterator<Item = K>) -> BTreeMap<K, u32> {
        let mut current = BTreeMap::new();
        for key in keys {
            if current.contains_key(&key) {
                continue;
            }
            let id = match self.assigned.get(&key) {
                Some(id) => *id,
                None => {
                    let id = self.next;
                    self.next = self.next.wrapping_add(1).max(1);
                    id
                }
            };
            current.insert(key, id);
        }
        self.assigned = current.clone();
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_numbers_and_never_reuses_them() {
        let mut a = Allocator::new(10);
        let first = a.assign(["x", "y"]);
        assert_eq!(first, BTreeMap::from([("x", 10), ("y", 11)]));
        let second = a.assign(["y", "z"]);
        assert_eq!(second, BTreeMap::from([("y", 11), ("z", 12)]));
        let third = a.assign(["x"]);
        assert_eq!(third, BTreeMap::from([("x", 13)]));
    }
}
