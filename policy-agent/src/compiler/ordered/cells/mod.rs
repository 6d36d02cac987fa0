//! The verdicts of an ordered table for one peer, over every (protocol, port), and the rule
//! entries that store them.
//!
//! For a peer, each rule is first matched on everything but protocol and port (once). The
//! protocols and port boundaries those rules name cut the (protocol, port) space into cells
//! whose verdict is constant; each cell is decided by walking the tiers once. The entries
//! are then an `ANY`-protocol entry (prefix 64) with the verdict of protocols no rule names, a
//! protocol entry (prefix 80) where a named protocol's most common verdict differs from it,
//! and aligned port prefixes where a range differs from its protocol's.
//!
//! One file per step: `matching.rs` matches each rule on everything but protocol and port,
//! `grid.rs` cuts the (protocol, port) space into cells and decides each, `walk.rs` is the
//! walk over the tiers that decides (and can trace) one packet, `memo.rs` computes each cell
//! once per kind of peer, and `entries.rs` writes a cell as rule entries. This file holds
//! what they share: the peer as a table observes it and the verdicts of one peer's cell.

mod entries;
mod grid;
mod matching;
mod memo;
mod walk;

use std::collections::{BTreeMap, BTreeSet};

pub use self::{
    entries::entries,
    memo::VerdictMemo,
    walk::{PolicyTrace, RuleTrace, TierEnd, TierTrace, trace},
};
use super::{Verdict, owners};
use crate::compiler::views::PodView;

/// What an ordered table can observe of a peer: a pod identity's view, or a CIDR class.
#[derive(Debug, Clone, Copy)]
pub struct Peer<'a> {
    /// The pod owning the address, as its identity sees it.
    pub view: Option<&'a PodView>,
    /// The view's labels as Calico selectors see them, when the caller keeps them (the
    /// engine does, per identity, so that a compile does not rebuild them per table).
    pub owner_labels: Option<&'a OwnerLabels>,
    /// Sorted numbers of the blocks covering the address.
    pub blocks: &'a [usize],
    /// The address family, when known.
    pub v6: Option<bool>,
}

/// A pod view's labels and its namespace's labels with Calico's own labels added
/// ([`owners::pod_labels`], [`owners::namespace_labels`]).
#[derive(Debug, Clone)]
pub struct OwnerLabels {
    pub labels: crate::model::Labels,
    pub namespace_labels: crate::model::Labels,
}

impl OwnerLabels {
    pub fn of(view: &PodView) -> Self {
        Self {
            labels: owners::pod_labels(&view.labels, &view.namespace, service_account(view)),
            namespace_labels: owners::namespace_labels(
                view.namespace_labels.clone(),
                &view.namespace,
            ),
        }
    }
}

/// A pod's service account as Calico sees it: `default` when the pod names none.
fn service_account(view: &PodView) -> &str {
    view.service_account.as_deref().unwrap_or("default")
}

/// One peer's verdicts in an ordered table over the whole (protocol, source-port class, port)
/// space, piecewise constant: what the comments here call the peer's cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerVerdicts {
    /// Protocols no rule names.
    pub other: Verdict,
    /// For each named protocol: (first port, verdict) intervals from port 0 on, adjacent
    /// intervals with the same verdict merged. Source-port class 0.
    pub protocols: BTreeMap<u8, Vec<(u32, Verdict)>>,
    /// Tables with source-port rules ([`SourceClasses`]): the same intervals for the named
    /// port protocols in source-port classes 1 and up, by (class, protocol).
    ///
    /// [`SourceClasses`]: super::source_ports::SourceClasses
    pub source_classes: BTreeMap<(u8, u8), Vec<(u32, Verdict)>>,
}

impl PeerVerdicts {
    /// The verdict for a packet of a source-port class, as the entries give it: a (class,
    /// protocol) without intervals falls to the any-protocol verdict.
    pub fn at_class(&self, class: u8, protocol: u8, port: u16) -> Verdict {
        let intervals = if class == 0 {
            self.protocols.get(&protocol)
        } else {
            self.source_classes.get(&(class, protocol))
        };
        match intervals {
            None => self.other,
            Some(intervals) => {
                let index = intervals.partition_point(|(start, _)| *start <= u32::from(port));
                intervals
                    .get(index.saturating_sub(1))
                    .map_or(self.other, |(_, v)| *v)
            }
        }
    }

    /// Every (class, protocol) the cell has intervals for, with them.
    fn all_intervals(&self) -> impl Iterator<Item = ((u8, u8), &Vec<(u32, Verdict)>)> {
        self.protocols
            .iter()
            .map(|(protocol, intervals)| ((0, *protocol), intervals))
            .chain(self.source_classes.iter().map(|(key, i)| (*key, i)))
    }

    /// Whether two cells give the same verdict everywhere.
    pub fn same_as(&self, other: &PeerVerdicts) -> bool {
        if self.other != other.other {
            return false;
        }
        let keys: BTreeSet<(u8, u8)> = self
            .all_intervals()
            .chain(other.all_intervals())
            .map(|(key, _)| key)
            .collect();
        keys.into_iter().all(|(class, protocol)| {
            let starts: BTreeSet<u32> = [&self, &other]
                .into_iter()
                .flat_map(|cell| cell.all_intervals())
                .filter(|(key, _)| *key == (class, protocol))
                .flat_map(|(_, intervals)| intervals)
                .map(|(start, _)| *start)
                .chain([0])
                .collect();
            starts.into_iter().all(|start| {
                let port = u16::try_from(start).unwrap_or(u16::MAX);
                self.at_class(class, protocol, port) == other.at_class(class, protocol, port)
            })
        })
    }
}
