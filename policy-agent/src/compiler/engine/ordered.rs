//! Ordered (Calico) tables: their `ANY` entries hold the verdicts most peers share, and every
//! pod identity and CIDR class judged otherwise gets entries of its own, refreshed as
//! identities and classes come and go.

use std::collections::HashMap;

use ipnet::IpNet;
use policy_common::endpoint::lookup;
use policy_common::identity as reserved;

use super::{Engine, TableInfo};
use crate::compiler::{
    ordered::{
        CalicoContext,
        cells::{self, Peer as OrderedPeer, VerdictMemo},
        source_ports,
    },
    rules::Entries,
    tables::TableContent,
};

impl Engine {
    /// An ordered table: its `ANY` entries hold the verdicts most peers share, and every pod
    /// identity and CIDR class judged differently gets complete entries of its own.
    ///
    /// Which verdicts `ANY` holds decides how many entries the table costs: with a default
    /// deny and a few allows, most pods are judged alike (denied by the same rule) while an
    /// address outside the cluster is often judged by a rule of its own (`notNets`), so the
    /// table takes the cell whose peers would otherwise need the most entries.
    pub(super) fn ordered_table_created(&mut self, id: u32, content: &TableContent) {
        let (Some(ordered), Some(context)) = (content.ordered.clone(), self.calico.clone()) else {
            return;
        };
        let world: Vec<usize> = context.v4_world_block.into_iter().collect();
        let mut memo = VerdictMemo::new(&ordered);
        let mut lookups = lookup::ORDERED | lookup::ANY;
        if let Some(classes) = memo.source_classes() {
            lookups |= lookup::SOURCE_PORTS;
            let entries = source_ports::source_class_entries(id, classes);
            self.output.set_entries(id, reserved::SOURCE_PORTS, entries);
        }
        self.table_info.insert(
            id,
            TableInfo {
                peers: Vec::new(),
                lookups,
            },
        );
        // An address without any identity entry: judged as an IPv4 address outside every pod
        // and set (in Calico mode the `/0` blocks give every address a class, so this is a
        // safety net, not a path traffic takes).
        let unclassified = memo.number(
            &context,
            &OrderedPeer {
                view: None,
                owner_labels: None,
                blocks: &world,
                v6: Some(false),
            },
        );
        // Peers in number order (the maps they come from are hashed): the default cell's
        // tie-break goes to the first peer, so the same state compiles to the same entries.
        let mut peers: Vec<(u32, usize)> = Vec::new();
        let mut identities: Vec<u32> = self.members.keys().copied().collect();
        identities.sort_unstable();
        for identity in identities {
            if let Some(cell) = self.ordered_pod_cell(&mut memo, &context, identity) {
                peers.push((identity, cell));
            }
        }
        let mut classes: Vec<u32> = self.cidr_classes.iter().map(|(class, _)| class).collect();
        classes.sort_unstable();
        for class in classes {
            if let Some(cell) = self.ordered_cidr_cell(&mut memo, &context, class) {
                peers.push((class, cell));
            }
        }
        peers.push((reserved::WORLD, unclassified));
        let default = memo
            .get(most_entries_shared(&memo, &peers).unwrap_or(unclassified))
            .clone();
        self.output.set_entries(
            id,
            reserved::ANY,
            cells::entries(id, reserved::ANY, &default),
        );
        // Decided once per distinct cell, not per peer.
        let own_entries: Vec<bool> = (0..memo.len())
            .map(|number| !memo.get(number).same_as(&default))
            .collect();
        self.ordered_tables.insert(id, default);
        for (identity, number) in peers {
            let entries = if own_entries[number] {
                cells::entries(id, identity, memo.get(number))
            } else {
                Entries::new()
            };
            self.output.set_entries(id, identity, entries);
        }
    }

    /// Recomputes one peer's entries in an existing ordered table (`cell`:
    /// [`Engine::ordered_pod_cell`] or [`Engine::ordered_cidr_cell`]): none where the `ANY`
    /// entries already say the same.
    pub(super) fn refresh_ordered(&mut self, table: u32, peer: u32, cell: OrderedCellOf) {
        let (Some(content), Some(context)) = (
            self.tables.get(table).and_then(|c| c.ordered.clone()),
            self.calico.clone(),
        ) else {
            return;
        };
        let mut memo = VerdictMemo::new(&content);
        let (Some(number), Some(default)) = (
            cell(self, &mut memo, &context, peer),
            self.ordered_tables.get(&table),
        ) else {
            return;
        };
        let cell = memo.get(number);
        let entries = if cell.same_as(default) {
            Entries::new()
        } else {
            cells::entries(table, peer, cell)
        };
        self.output.set_entries(table, peer, entries);
    }

    /// The verdicts of an ordered table for a pod identity (their number in `memo`).
    pub(super) fn ordered_pod_cell(
        &self,
        memo: &mut VerdictMemo<'_>,
        context: &CalicoContext,
        identity: u32,
    ) -> Option<usize> {
        let view = self.identities.get(identity)?.first()?;
        let peer = OrderedPeer {
            view: Some(view),
            owner_labels: self.owner_labels.get(&identity),
            blocks: &view.blocks,
            v6: view.v6,
        };
        Some(memo.number(context, &peer))
    }

    /// The verdicts of an ordered table for a CIDR class (its family is that of the `/0`
    /// block it lies in).
    pub(super) fn ordered_cidr_cell(
        &self,
        memo: &mut VerdictMemo<'_>,
        context: &CalicoContext,
        class: u32,
    ) -> Option<usize> {
        let blocks = self.cidr_classes.get(class)?;
        let v6_block = self
            .relevance
            .block_index(&IpNet::V6(ipnet::Ipv6Net::default()), &[]);
        let v4_block = self
            .relevance
            .block_index(&IpNet::V4(ipnet::Ipv4Net::default()), &[]);
        let family = |block: Option<usize>| block.is_some_and(|b| blocks.contains(&b));
        let v6 = if family(v6_block) {
            Some(true)
        } else if family(v4_block) {
            Some(false)
        } else {
            None
        };
        let peer = OrderedPeer {
            view: None,
            owner_labels: None,
            blocks,
            v6,
        };
        Some(memo.number(context, &peer))
    }
}

/// Of the peers' cells (numbers in `memo`), the one whose entries, left to `ANY`, save the
/// most: cells with equal entries are one group, weighted by how many entries its peers would
/// otherwise need. Ties go to the group whose first peer comes first, so the choice is the
/// same on every compile of the same state.
fn most_entries_shared(memo: &VerdictMemo<'_>, peers: &[(u32, usize)]) -> Option<usize> {
    let mut count = vec![0usize; memo.len()];
    let mut first = vec![usize::MAX; memo.len()];
    for (index, (_, number)) in peers.iter().enumerate() {
        count[*number] += 1;
        first[*number] = first[*number].min(index);
    }
    // entries -> (first peer, its cell, weight)
    let mut groups: HashMap<Entries, (usize, usize, usize)> = HashMap::new();
    for number in (0..memo.len()).filter(|n| count[*n] > 0) {
        let entries = cells::entries(0, reserved::ANY, memo.get(number));
        let weight = count[number] * entries.len();
        let group = groups.entry(entries).or_insert((first[number], number, 0));
        if first[number] < group.0 {
            (group.0, group.1) = (first[number], number);
        }
        group.2 += weight;
    }
    groups
        .values()
        .max_by(|a, b| a.2.cmp(&b.2).then(b.0.cmp(&a.0)))
        .map(|(_, number, _)| *number)
}

/// How a peer's cell in an ordered table is found: by pod identity or by CIDR class.
type OrderedCellOf = fn(&Engine, &mut VerdictMemo<'_>, &CalicoContext, u32) -> Option<usize>;
