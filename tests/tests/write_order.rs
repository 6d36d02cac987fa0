//! The order of a sync's map writes, held (issue 18): the kernel reads the maps while the
//! agent writes them, so every state between two policies, one write at a time, must decide
//! each packet as the old policy or the new one does, never a third way.
//!
//! Random clusters go through random edits (relabelled pods and namespaces, which renumber
//! identities and move rules between tables; pods and policies added and removed, some of
//! which make the compiler rebuild with new numbers for everything) with one compiler, as the
//! agent follows a datastore. After each compile, the kernel writes the agent would make are
//! applied one at a time to a model of the kernel's maps (identities under two numberings,
//! endpoints stamped with theirs): [`MapDelta::writes`] for an incremental compile,
//! [`renumbering_writes`] for a rebuild, exactly what `Datapath::write` and
//! `Datapath::write_renumbering` execute. After every write, the userspace replay of the
//! programs' lookups decides each sampled flow at the sender's hook and at the receiver's,
//! reading the identity slot of that endpoint's numbering as the programs do.
//!
//! `PALISADE_PROPTEST_CASES` raises the number of cases (default 4000).

use std::{cell::Cell, net::IpAddr};

use palisade_tests::{
    generate::{
        FlowPick, addresses, agent_cluster, cases_from_env, edits, flow_picks, protocol_number,
        world,
    },
    reference::World,
};
use policy_agent::{
    compiler::{Compiler, MapContents, Scope, identity_addr},
    dataplane::{
        MapDelta,
        renumber::{KernelMaps, KernelWrite, renumbering_writes},
        routes::Binding,
    },
    replay::{self, Direction, Packet},
};
use policy_common::endpoint::EndpointKey;
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

/// What every intermediate state of one sync is checked against.
struct Transition<'a> {
    old: &'a MapContents,
    new: &'a MapContents,
    packets: &'a [Packet],
}

impl Transition<'_> {
    /// Every packet, at both hooks, decided in `kernel` as in the old or the new maps.
    fn check(
        &self,
        kernel: &KernelMaps,
        write: &KernelWrite,
        counts: &Counts,
    ) -> Result<(), TestCaseError> {
        // What a program reads under each numbering.
        let views = [kernel.view(0), kernel.view(1)];
        for packet in self.packets {
            for direction in [Direction::FromEndpoint, Direction::ToEndpoint] {
                let endpoint = match direction {
                    Direction::FromEndpoint => packet.src,
                    Direction::ToEndpoint => packet.dst,
                };
                let key = EndpointKey {
                    addr: identity_addr(endpoint),
                };
                let numbering = kernel
                    .endpoints
                    .get(&key)
                    .map_or(0, |value| value.ingress.numbering & 1);
                let state = &views[numbering as usize];
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
                counts.decisions.set(counts.decisions.get() + 1);
            }
        }
        counts.states.set(counts.states.get() + 1);
        Ok(())
    }
}

fn verdict(allowed: bool) -> &'static str {
    if allowed { "allowed" } else { "denied" }
}

/// Intermediate states and decisions checked, per kind of sync.
#[derive(Default)]
struct Counts {
    states: Cell<usize>,
    decisions: Cell<usize>,
}

#[test]
fn every_state_a_sync_passes_through_decides_as_the_old_or_the_new_policy() {
    let incremental = Counts::default();
    let renumbering = Counts::default();
    let mut runner = TestRunner::new(Config {
        cases: cases_from_env(4000),
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(
        &(world(), edits(6), flow_picks(16)),
        |(world, edits, picks)| {
            let mut world = world;
            let mut compiler = Compiler::new();
            let mut synced = MapContents::default();
            let mut kernel = KernelMaps::default();
            let mut numbering = 0;
            let first = compiler.compile(&agent_cluster(&world), &scope(&world));
            for write in renumbering_writes(&synced, &first.maps, numbering, numbering ^ 1) {
                kernel.apply(&write);
            }
            numbering ^= 1;
            synced = (*first.maps).clone();
            drop(first);
            for edit in &edits {
                edit.apply(&mut world);
                let compiled = compiler.compile(&agent_cluster(&world), &scope(&world));
                let new = (*compiled.maps).clone();
                let (writes, counts, next) = if compiled.renumbered {
                    let writes = renumbering_writes(&synced, &new, numbering, numbering ^ 1);
                    (writes, &renumbering, numbering ^ 1)
                } else {
                    let delta = MapDelta::between(
                        &synced,
                        &compiled.maps,
                        &compiled.changes,
                        &Binding::default(),
                    );
                    let writes = delta.writes().map(|w| w.in_kernel(numbering)).collect();
                    (writes, &incremental, numbering)
                };
                drop(compiled);
                let packets = packets(&world, &picks);
                let transition = Transition {
                    old: &synced,
                    new: &new,
                    packets: &packets,
                };
                for write in &writes {
                    kernel.apply(write);
                    transition.check(&kernel, write, counts)?;
                }
                numbering = next;
                prop_assert!(
                    kernel.view(numbering) == new,
                    "the writes after {:?} arrive at the compiled maps",
                    edit
                );
                synced = new;
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
    for (kind, counts) in [("incremental", &incremental), ("renumbering", &renumbering)] {
        let (states, decisions) = (counts.states.get(), counts.decisions.get());
        eprintln!(
            "write order, {kind} syncs: {states} intermediate states, {decisions} packet decisions, each the old or the new one"
        );
        // Edits that change nothing and flows that are skipped must not hollow the test out.
        assert!(states > 1_000, "only {states} {kind} states were checked");
        assert!(
            decisions > 5_000,
            "only {decisions} {kind} decisions were checked"
        );
    }
}

/// The sampled flows between distinct addresses of one family, as first packets.
fn packets(world: &World, picks: &[FlowPick]) -> Vec<Packet> {
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
