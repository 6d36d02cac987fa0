//! What the programs recorded, read back (and cleared): tracked connections, packet counts
//! per interface (by counter slot or ifindex) and per rule entry, flow events lost.

use std::collections::BTreeMap;

use aya::maps::{HashMap, MapData};
use policy_common::{
    conntrack::{ConntrackKey, ConntrackValue},
    counters::Counters,
    map_names,
    rule_hits::{RuleHitKey, RuleHits},
};

use super::{DataplaneError, loader::Datapath};

impl Datapath {
    /// The tracked flows (original direction) and which checks allowed them.
    pub fn conntrack_entries(&self) -> Result<Vec<(ConntrackKey, ConntrackValue)>, DataplaneError> {
        self.conntrack
            .iter()
            .collect::<Result<_, _>>()
            .map_err(|source| DataplaneError::MapUpdate {
                operation: "iterate",
                map: map_names::CONNTRACK,
                source,
            })
    }

    /// The entry of one tracked flow, if there is one (a failed read is none: the flow
    /// records stop following it).
    pub fn conntrack_entry(&self, key: &ConntrackKey) -> Option<ConntrackValue> {
        self.conntrack.get(key, 0).ok()
    }

    /// How many connections are tracked (entries in `PALISADE_CONNTRACK`).
    pub fn conntrack_occupancy(&self) -> Result<usize, DataplaneError> {
        let mut entries = 0;
        for key in self.conntrack.keys() {
            key.map_err(|source| DataplaneError::MapUpdate {
                operation: "iterate",
                map: map_names::CONNTRACK,
                source,
            })?;
            entries += 1;
        }
        Ok(entries)
    }

    /// Packet counts per endpoint interface (ifindex), summed over CPUs: those counted by
    /// ifindex and those counted in the interface's slot.
    pub fn counters(&self) -> Result<BTreeMap<u32, Counters>, DataplaneError> {
        let mut totals = BTreeMap::new();
        for entry in self.counters.iter() {
            let (ifindex, per_cpu) = entry.map_err(|source| DataplaneError::MapUpdate {
                operation: "iterate",
                map: map_names::COUNTERS,
                source,
            })?;
            let total: &mut Counters = totals.entry(ifindex).or_default();
            for cpu in per_cpu.iter() {
                total.add(cpu);
            }
        }
        for (ifindex, slot) in self.counter_slots.iter() {
            let per_cpu =
                self.slot_counters
                    .get(&slot, 0)
                    .map_err(|source| DataplaneError::MapUpdate {
                        operation: "read",
                        map: map_names::COUNTER_SLOTS,
                        source,
                    })?;
            let total: &mut Counters = totals.entry(ifindex).or_default();
            for cpu in per_cpu.iter() {
                total.add(cpu);
            }
        }
        Ok(totals)
    }

    /// Packets decided per rule entry (and verdict), summed over CPUs.
    pub fn rule_hits(&self) -> Result<BTreeMap<RuleHitKey, RuleHits>, DataplaneError> {
        let mut totals = BTreeMap::new();
        for entry in self.rule_hits.iter() {
            let (key, per_cpu) = entry.map_err(|source| DataplaneError::MapUpdate {
                operation: "iterate",
                map: map_names::RULE_HITS,
                source,
            })?;
            let total: &mut RuleHits = totals.entry(key).or_default();
            for cpu in per_cpu.iter() {
                total.add(cpu);
            }
        }
        Ok(totals)
    }

    /// Flow events the programs did not write since they were loaded (each CPU's budget for
    /// the second spent, or the ring full), summed over CPUs.
    pub fn flow_events_dropped(&self) -> Result<u64, DataplaneError> {
        let per_cpu = self
            .flow_budget
            .get(&0, 0)
            .map_err(|source| DataplaneError::MapUpdate {
                operation: "read",
                map: map_names::FLOW_BUDGET,
                source,
            })?;
        Ok(per_cpu.iter().map(|cpu| cpu.dropped).sum())
    }

    /// Packet counts per attached interface, by name.
    pub fn packet_counts(&self) -> Result<BTreeMap<String, Counters>, DataplaneError> {
        let by_index = self.counters()?;
        Ok(self
            .attached
            .iter()
            .filter_map(|(name, (index, _, _))| by_index.get(index).map(|c| (name.clone(), *c)))
            .collect())
    }

    /// Forgets every recorded first-fragment verdict.
    pub fn clear_fragments(&mut self) -> Result<(), DataplaneError> {
        clear(&mut self.fragments, map_names::FRAGMENTS)
    }

    /// Forgets every tracked flow: replies are checked against policy again until their
    /// connections are re-established.
    pub fn clear_conntrack(&mut self) -> Result<(), DataplaneError> {
        clear(&mut self.conntrack, map_names::CONNTRACK)
    }
}

/// Removes every entry of a hash map (entries removed meanwhile by the kernel are fine).
fn clear<K: aya::Pod, V: aya::Pod>(
    map: &mut HashMap<MapData, K, V>,
    name: &'static str,
) -> Result<(), DataplaneError> {
    let keys: Vec<K> =
        map.keys()
            .collect::<Result<_, _>>()
            .map_err(|source| DataplaneError::MapUpdate {
                operation: "iterate",
                map: name,
                source,
            })?;
    for key in keys {
        match map.remove(&key) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
            Err(source) => {
                return Err(DataplaneError::MapUpdate {
                    operation: "remove",
                    map: name,
                    source,
                });
            }
        }
    }
    Ok(())
}

impl crate::flow_records::connections::ConnectionTable for Datapath {
    fn entry(&self, key: &ConntrackKey) -> Option<ConntrackValue> {
        self.conntrack_entry(key)
    }
}
