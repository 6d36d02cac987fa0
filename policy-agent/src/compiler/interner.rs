//! Reference-counted numbering of compiled objects (identities, CIDR classes, peers, tables).
//!
//! An object keeps its number for as long as anything uses it, so its map entries are not
//! rewritten. A new object always gets a number never used before: the agent writes the new
//! number's entries before pointing anything at it and removes the old number's entries
//! afterwards, so the kernel never sees a number whose meaning changed under it.

use std::{collections::HashMap, hash::Hash};

#[derive(Debug)]
pub struct Interner<K> {
    ids: HashMap<K, u32>,
    entries: HashMap<u32, (K, usize)>,
}

impl<K> Default for Interner<K> {
    fn default() -> Self {
        Self {
            ids: HashMap::new(),
            entries: HashMap::new(),
        }
    }
}

/// What [`Interner::acquire`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// The object already had a number; one more user.
    Existing(u32),
    /// The object is new: its entries must be computed.
    Created(u32),
}

impl<K: Eq + Hash + Clone> Interner<K> {
    /// One more user of `key`; a new key takes `*next` (which then advances, never wrapping
    /// into the reserved numbers below `floor`).
    pub fn acquire(&mut self, key: &K, next: &mut u32, floor: u32) -> Acquired {
        if let Some(&id) = self.ids.get(key) {
            if let Some(entry) = self.entries.get_mut(&id) {
                entry.1 += 1;
            }
            return Acquired::Existing(id);
        }
        let id = *next;
        *next = next.wrapping_add(1).max(floor);
        self.ids.insert(key.clone(), id);
        self.entries.insert(id, (key.clone(), 1));
        Acquired::Created(id)
    }

    /// One user fewer; the key when that was the last one (the number is then retired).
    pub fn release(&mut self, id: u32) -> Option<K> {
        let entry = self.entries.get_mut(&id)?;
        entry.1 -= 1;
        if entry.1 > 0 {
            return None;
        }
        let (key, _) = self.entries.remove(&id)?;
        self.ids.remove(&key);
        Some(key)
    }

    pub fn get(&self, id: u32) -> Option<&K> {
        self.entries.get(&id).map(|(key, _)| key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, &K)> {
        self.entries.iter().map(|(id, (key, _))| (*id, key))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_users_and_never_reuses_numbers() {
        let mut interner = Interner::default();
        let mut next = 10;
        assert_eq!(interner.acquire(&"x", &mut next, 10), Acquired::Created(10));
        assert_eq!(
            interner.acquire(&"x", &mut next, 10),
            Acquired::Existing(10)
        );
        assert_eq!(interner.acquire(&"y", &mut next, 10), Acquired::Created(11));
        assert_eq!(interner.release(10), None);
        assert_eq!(interner.release(10), Some("x"));
        assert_eq!(interner.get(10), None);
        assert_eq!(interner.acquire(&"x", &mut next, 10), Acquired::Created(12));
        assert_eq!(interner.len(), 2);
    }
}
