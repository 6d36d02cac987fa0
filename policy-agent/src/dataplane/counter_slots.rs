//! Which slot of `PALISADE_COUNTER_SLOTS` counts each endpoint interface's packets (see
//! `EndpointPolicy::counter_slot`): a per-CPU array the programs index without a hash lookup.
//!
//! The agent gives a slot to each interface its endpoints are bound to, and keeps it while the
//! interface exists, so that the interface's counts only ever grow (a route that comes and
//! goes does not move them). A slot is given again only once its interface is gone (the
//! kernel does not soon reuse an ifindex), and its counters are zeroed before any endpoint
//! entry names it. Interfaces past the array's capacity get no slot: the programs count them
//! in `PALISADE_COUNTERS` by ifindex, as they count packets of no endpoint.

use std::collections::{BTreeMap, BTreeSet};

use policy_common::{capacity, endpoint::NO_COUNTER_SLOT};

/// Slot per interface (ifindex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterSlots {
    by_ifindex: BTreeMap<u32, u32>,
    free: BTreeSet<u32>,
}

impl Default for CounterSlots {
    fn default() -> Self {
        Self::with_capacity(capacity::COUNTER_SLOTS)
    }
}

impl CounterSlots {
    /// Slots 1 to `slots - 1` (slot 0 is [`NO_COUNTER_SLOT`]).
    pub fn with_capacity(slots: u32) -> Self {
        Self {
            by_ifindex: BTreeMap::new(),
            free: (1..slots).collect(),
        }
    }

    /// The slots a previous agent gave (ifindex, slot), as its endpoint entries name them: its
    /// counts stay with their interfaces. Slots out of range, or named for two interfaces,
    /// are left to be given afresh.
    pub fn taken_over(slots: u32, previous: impl IntoIterator<Item = (u32, u32)>) -> Self {
        let mut table = Self::with_capacity(slots);
        for (ifindex, slot) in previous {
            if slot != NO_COUNTER_SLOT
                && !table.by_ifindex.contains_key(&ifindex)
                && table.free.remove(&slot)
            {
                table.by_ifindex.insert(ifindex, slot);
            }
        }
        table
    }

    /// Gives every interface of `bound` a slot, keeping those it has. First takes the slots
    /// back from interfaces that are neither bound nor `exists` any more. Returns the slots
    /// given now: their counters must be zeroed before an endpoint entry names them.
    pub fn assign(&mut self, bound: &BTreeSet<u32>, exists: impl Fn(u32) -> bool) -> Vec<u32> {
        let gone: Vec<u32> = self
            .by_ifindex
            .keys()
            .copied()
            .filter(|ifindex| !bound.contains(ifindex) && !exists(*ifindex))
            .collect();
        for ifindex in gone {
            if let Some(slot) = self.by_ifindex.remove(&ifindex) {
                self.free.insert(slot);
            }
        }
        let mut given = Vec::new();
        for &ifindex in bound {
            if self.by_ifindex.contains_key(&ifindex) {
                continue;
            }
            let Some(slot) = self.free.pop_first() else {
                // Full: this interface is counted by ifindex.
                break;
            };
            self.by_ifindex.insert(ifindex, slot);
            given.push(slot);
        }
        given
    }

    /// The interface's slot, or [`NO_COUNTER_SLOT`].
    pub fn slot_of(&self, ifindex: u32) -> u32 {
        self.by_ifindex
            .get(&ifindex)
            .copied()
            .unwrap_or(NO_COUNTER_SLOT)
    }

    /// (ifindex, slot) of every interface with a slot.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.by_ifindex
            .iter()
            .map(|(&ifindex, &slot)| (ifindex, slot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ifindexes: &[u32]) -> BTreeSet<u32> {
        ifindexes.iter().copied().collect()
    }

    #[test]
    fn an_interface_keeps_its_slot_while_it_exists() {
        let mut slots = CounterSlots::with_capacity(4);
        assert_eq!(slots.assign(&set(&[10, 11]), |_| true), vec![1, 2]);
        assert_eq!((slots.slot_of(10), slots.slot_of(11)), (1, 2));
        // 10's route went away but the interface is still there: its slot stays.
        assert_eq!(slots.assign(&set(&[11]), |_| true), Vec::<u32>::new());
        assert_eq!(slots.slot_of(10), 1);
        assert_eq!(slots.assign(&set(&[10, 11]), |_| true), Vec::<u32>::new());
        assert_eq!(slots.slot_of(10), 1);
    }

    #[test]
    fn a_gone_interface_s_slot_is_given_again_and_the_full_table_gives_none() {
        let mut slots = CounterSlots::with_capacity(3);
        assert_eq!(slots.assign(&set(&[10, 11, 12]), |_| true), vec![1, 2]);
        // Only two slots: 12 is counted by ifindex.
        assert_eq!(slots.slot_of(12), NO_COUNTER_SLOT);
        // 10 is gone: its slot goes to 12, to be zeroed first.
        assert_eq!(slots.assign(&set(&[11, 12]), |i| i != 10), vec![1]);
        assert_eq!(
            (slots.slot_of(10), slots.slot_of(11), slots.slot_of(12)),
            (NO_COUNTER_SLOT, 2, 1)
        );
    }

    #[test]
    fn a_previous_agent_s_slots_are_taken_over_once_each() {
        // (ifindex, slot): 12 names 1 again, 13 names a slot out of range, 14 none.
        let slots = CounterSlots::taken_over(4, [(10, 1), (11, 3), (12, 1), (13, 9), (14, 0)]);
        assert_eq!(slots.iter().collect::<Vec<_>>(), vec![(10, 1), (11, 3)]);
        let mut slots = slots;
        assert_eq!(slots.assign(&set(&[10, 11, 12, 13]), |_| true), vec![2]);
        assert_eq!(slots.slot_of(12), 2);
        assert_eq!(slots.slot_of(13), NO_COUNTER_SLOT);
    }
}
