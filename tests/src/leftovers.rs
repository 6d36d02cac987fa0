//! What an incremental compile must not leave behind, checked against a fresh compile of the
//! same cluster.
//!
//! Entry counts of the endpoint and identity maps, and of the rule entries of unordered tables,
//! are a function of the cluster alone, so they must equal a fresh compile's. An ordered
//! table's entries depend also on the `ANY` cell it chose when it was created (the one most of
//! its peers shared then), so after changes an incremental compile may hold more or fewer than
//! a fresh one; for those the check is that every entry belongs to a table some endpoint lists
//! and to a peer identity some address carries.
//!
//! [`follow`] is the other half of checking an incremental compile: a copy of the maps carried
//! along by the reported changes alone must equal the compiler's maps.

use std::collections::BTreeSet;

use policy_agent::{
    compiler::{Compiled, LpmKey, MapContents},
    dataplane::{MapDelta, routes::Binding},
};
use policy_common::{
    endpoint::lookup,
    identity,
    rule::{RuleKey, RuleValue},
};

/// Brings `synced` along a compile the way the agent's sync does: only the keys the compile
/// reports changed are looked at.
pub fn follow(synced: &mut MapContents, compiled: &Compiled) {
    MapDelta::between(
        synced,
        &compiled.maps,
        &compiled.changes,
        &Binding::default(),
    )
    .apply_to(synced);
}

/// (endpoints, identities, rule entries of unordered tables).
pub fn counts(maps: &MapContents) -> (usize, usize, usize) {
    let ordered = maps.ordered_tables();
    let unordered_rules = maps
        .rules
        .keys()
        .filter(|key| !ordered.contains(&key.data.table))
        .count();
    (maps.endpoints.len(), maps.identities.len(), unordered_rules)
}

/// Rule entries of a table no endpoint lists, (in an ordered table) of a peer identity no
/// address carries, or source-port classes of a table that does not look them up.
pub fn orphans(maps: &MapContents) -> Vec<(LpmKey<RuleKey>, RuleValue)> {
    let listed: BTreeSet<u32> = maps.listed_tables().map(|t| t.table).collect();
    let with_source_ports: BTreeSet<u32> = maps
        .listed_tables()
        .filter(|t| t.lookups & lookup::SOURCE_PORTS != 0)
        .map(|t| t.table)
        .collect();
    let carried: BTreeSet<u32> = maps
        .identities
        .values()
        .flat_map(|v| [v.pod_identity, v.cidr_identity])
        .chain([identity::ANY, identity::WORLD])
        .collect();
    let ordered = maps.ordered_tables();
    maps.rules
        .iter()
        .filter(|(key, _)| {
            let (table, peer) = (key.data.table, key.data.peer_identity);
            !listed.contains(&table)
                || if peer == identity::SOURCE_PORTS {
                    !with_source_ports.contains(&table)
                } else {
                    ordered.contains(&table) && !carried.contains(&peer)
                }
        })
        .map(|(key, value)| (*key, *value))
        .collect()
}
