//! The order of a sync's map writes, held (issue 18): the kernel reads the maps while the
//! agent writes them, so every state between two policies, one write at a time, must decide
//! each packet as the old policy or the new one does, never a third way.
//!
//! Random clusters go through random edits (relabelled pods and namespaces, which renumber
//! identities and move rules between tables; pods and policies added and removed) with one
//! compiler, as the agent follows a datastore. After each compile, the delta the agent would
//! write is applied one [`MapWrite`] at a time, in the order `Datapath::write` uses
//! ([`MapDelta::writes`]), and after every write the userspace replay of the programs'
//! lookups decides each sampled flow, at the sender's hook and at the receiver's.
//!
//! Incremental compiles hold this. A *rebuild* (a policy that changes what identities mean:
//! a new label key, named port or `ipBlock`) renumbers every identity and table at once, and
//! no order of single writes can switch an endpoint's tables and its peers' identities
//! together: between the identity writes and the endpoint writes, an old table meets a new
//! identity number. That known gap is the ignored test below (run it with `--ignored`); the
//! fix needs the datapath to pick an identity by the endpoint's epoch (docs/architecture.md,
//! "Write order").
//!
//! `PALISADE_PROPTEST_CASES` raises the number of cases (default 1500).

use std::{cell::Cell, net::IpAddr};

use palisade_tests::{
    generate::{
        addresses, agent_cluster, cases_from_env, edits, flow_picks, protocol_number, world,
    },
    reference::World,
};
use policy_agent::{
    compiler::{Compiler, MapChanges, MapContents, Scope},
    dataplane::{MapDelta, MapWrite, routes::Binding},
    replay::{self, Direction, Packet},
};
use proptest::{
    prelude::*,
    test_runner::{Config, TestCaseError, TestError, TestRunner},
};

fn scope(world: &World) -> Scope {
    Scope {
        node_name: None,
        host_addrs: world.node_addrs.clone(),
    }
}

/// What one intermediate state is checked against.
struct Transition<'a> {
    old: &'a MapContents,
    new: &'a MapContents,
    packets: &'a [Packet],
}

impl Transition<'_> {
    /// Every packet, at both hooks, decided in `state` as in the old or the new maps.
    fn check(
        &self,
        state: &MapContents,
        write: &MapWrite,
        checks: &Cell<usize>,
    ) -> Result<(), TestCaseError> {
        for packet in self.packets {
            for direction in [Direction::FromEndpoint, Direction::ToEndpoint] {
                let now = replay::allows(state, packet, direction);
                let old = replay::allows(self.old, packet, direction);
                let new = replay::allows(self.new, packet, direction);
                prop_assert!(
                    now == old || now == new,
                    "after {:?}, {:?} at {:?} is {} where the old maps say {} and the new {}",
                    write,
                    packet,
                    direction,
                    verdict(now),
                    verdict(old),
                    verdict(new)
                );
                checks.set(checks.get() + 1);
            }
        }
        Ok(())
    }
}

fn verdict(allowed: bool) -> &'static str {
    if allowed { "allowed" } else { "denied" }
}

/// Which compiles a run checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compiles {
    Incremental,
    Rebuilds,
}

#[test]
fn every_state_an_incremental_sync_passes_through_decides_as_the_old_or_the_new_policy() {
    let (writes, checks) = check_transitions(Compiles::Incremental);
    eprintln!(
        "write order, incremental compiles: {writes} intermediate states, {checks} packet decisions, each the old or the new one"
    );
    // Edits that change nothing and flows that are skipped must not hollow the test out.
    assert!(
        writes > 1_000,
        "only {writes} intermediate states were checked"
    );
    assert!(checks > 5_000, "only {checks} decisions were checked");
}

/// The known gap (see the module documentation): fails today.
#[test]
#[ignore = "a rebuild's renumbering is not atomic for packets yet (issue 18)"]
fn every_state_a_rebuild_passes_through_decides_as_the_old_or_the_new_policy() {
    let (writes, checks) = check_transitions(Compiles::Rebuilds);
    eprintln!("write order, rebuilds: {writes} intermediate states, {checks} packet decisions");
    assert!(
        writes > 1_000,
        "only {writes} intermediate states were checked"
    );
}

/// Runs the property over the compiles of one kind; the intermediate states and the packet
/// decisions checked.
fn check_transitions(kind: Compiles) -> (usize, usize) {
    let checks = Cell::new(0usize);
    let writes = Cell::new(0usize);
    let mut runner = TestRunner::new(Config {
        cases: cases_from_env(1500),
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(
        &(world(), edits(6), flow_picks(16)),
        |(world, edits, picks)| {
            let mut world = world;
            let mut compiler = Compiler::new();
            let mut synced = MapContents::default();
            let first = compiler.compile(&agent_cluster(&world), &scope(&world));
            MapDelta::full(&synced, &first.maps).apply_to(&mut synced);
            drop(first);
            for edit in &edits {
                edit.apply(&mut world);
                let compiled = compiler.compile(&agent_cluster(&world), &scope(&world));
                let delta = MapDelta::between(
                    &synced,
                    &compiled.maps,
                    &compiled.changes,
                    &Binding::default(),
                );
                let kind_here = if is_rebuild(&synced, &compiled.changes) {
                    Compiles::Rebuilds
                } else {
                    Compiles::Incremental
                };
                let new = (*compiled.maps).clone();
                drop(compiled);
                let mut state = synced.clone();
                if kind_here == kind {
                    let packets = packets(&world, &picks);
                    let transition = Transition {
                        old: &synced,
                        new: &new,
                        packets: &packets,
                    };
                    for write in delta.writes() {
                        write.apply_to(&mut state);
                        transition.check(&state, &write, &checks)?;
                        writes.set(writes.get() + 1);
                    }
                } else {
                    delta.apply_to(&mut state);
                }
                prop_assert!(
                    state == new,
                    "the writes of {:?} arrive at the compiled maps",
                    edit
                );
                synced = state;
            }
            Ok(())
        },
    );
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, (world, edits, picks))) => {
            panic!(
                "{reason}\nminimal failing case:\n{world:#?}\nedits: {edits:#?}\nflows: {picks:?}"
            )
        }
        Err(e) => panic!("{e}"),
    }
    (writes.get(), checks.get())
}

/// Whether a compile renumbered everything: it reports every key the maps held as changed
/// (`Compiler::compile` does exactly that after a rebuild, and an incremental compile of a
/// cluster with any policy keeps some).
fn is_rebuild(previous: &MapContents, changes: &MapChanges) -> bool {
    let all = MapChanges::all_of(previous);
    !previous.identities.is_empty()
        && all.identities.is_subset(&changes.identities)
        && all.rules.is_subset(&changes.rules)
}

/// The sampled flows between distinct addresses of one family, as first packets.
fn packets(world: &World, picks: &[palisade_tests::generate::FlowPick]) -> Vec<Packet> {
    let addrs = addresses(world);
    picks
        .iter()
        .filter_map(|(src, dst, protocol, port)| {
            let (src, dst): (IpAddr, IpAddr) = (*src.get(&addrs), *dst.get(&addrs));
            (src != dst && src.is_ipv4() == dst.is_ipv4()).then(|| Packet {
                src,
                dst,
                protocol: protocol_number(protocol),
                sport: 40_000,
                dport: *port,
            })
        })
        .collect()
}
