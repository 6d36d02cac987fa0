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
//! [`renumbering_writes`] for a rebuild or a delta that [`MapDelta::needs_switch`], exactly
//! what `Datapath::write` and `Datapath::write_renumbering` execute. After every write, the userspace replay of the
//! programs' lookups decides each sampled flow at the sender's hook and at the receiver's,
//! reading the identity slot of that endpoint's numbering as the programs do.
//!
//! `PALISADE_PROPTEST_CASES` raises the number of cases (default 4000 Kubernetes cases, and a
//! sixteenth as many Calico ones).

use std::{cell::Cell, net::IpAddr};

use palisade_tests::{
    generate::{
        FlowPick, addresses, agent_cluster, cases_from_env, edits, flow_picks, protocol_number,
        world,
    },
    generate_calico::{CalicoCase, IcmpPick, calico_case, calico_edit, icmp_picks},
    reference::World,
};
use policy_agent::{
    compiler::{Compiler, MapContents, Scope, identity_addr},
    dataplane::{
        MapDelta,
        renumber::{KernelMaps, KernelWrite, renumbering_writes},
        routes::Binding,
    },
    model::Cluster,
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

/// One compiler followed through a sequence of clusters, as the agent follows a datastore,
/// with a model of what the kernel holds.
struct Follower {
    compiler: Compiler,
    synced: MapContents,
    kernel: KernelMaps,
    numbering: u32,
}

impl Follower {
    fn new() -> Self {
        Self {
            compiler: Compiler::new(),
            synced: MapContents::default(),
            kernel: KernelMaps::default(),
            numbering: 0,
        }
    }

    /// Compiles `cluster` and applies the kernel writes the agent would make one at a time,
    /// checking `packets` after each (the first compile is not checked: nothing was there).
    fn step(
        &mut self,
        cluster: &Cluster,
        scope: &Scope,
        packets: &[Packet],
        counts: (&Counts, &Counts),
        what: &str,
    ) -> Result<(), TestCaseError> {
        let compiled = self.compiler.compile(cluster, scope);
        let new = (*compiled.maps).clone();
        let first = self.synced == MapContents::default();
        // As the agent chooses (`State::sync`).
        let delta = (!compiled.renumbered)
            .then(|| {
                MapDelta::between(
                    &self.synced,
                    &compiled.maps,
                    &compiled.changes,
                    &Binding::default(),
                )
            })
            .filter(|delta| !delta.needs_switch(&self.synced));
        let (writes, counts, next) = if let Some(delta) = delta {
            let writes = delta
                .writes()
                .map(|w| w.in_kernel(self.numbering))
                .collect();
            (writes, counts.0, self.numbering)
        } else {
            let writes = renumbering_writes(&self.synced, &new, self.numbering, self.numbering ^ 1);
            (writes, counts.1, self.numbering ^ 1)
        };
        drop(compiled);
        let transition = Transition {
            old: &self.synced,
            new: &new,
            packets,
        };
        for write in &writes {
            self.kernel.apply(write);
            if !first {
                transition.check(&self.kernel, write, counts)?;
            }
        }
        self.numbering = next;
        prop_assert!(
            self.kernel.view(self.numbering) == new,
            "the writes after {} arrive at the compiled maps",
            what
        );
        self.synced = new;
        Ok(())
    }
}

/// Runs `strategy`'s cases through `test`; panics with the minimal failing case.
fn run<S: Strategy>(cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    match runner.run(&strategy, test) {
        Ok(()) => {}
        Err(TestError::Fail(reason, value)) => {
            panic!("{reason}\nminimal failing case:\n{value:#?}")
        }
        Err(e) => panic!("{e}"),
    }
}

fn report(counts: [(&str, &Counts); 2], floor: usize) {
    for (kind, counts) in counts {
        let (states, decisions) = (counts.states.get(), counts.decisions.get());
        eprintln!(
            "write order, {kind} syncs: {states} intermediate states, {decisions} packet decisions, each the old or the new one"
        );
        // Edits that change nothing and flows that are skipped must not hollow the test out.
        assert!(states > floor, "only {states} {kind} states were checked");
        assert!(
            decisions > 5 * floor,
            "only {decisions} {kind} decisions were checked"
        );
    }
}

#[test]
fn every_state_a_sync_passes_through_decides_as_the_old_or_the_new_policy() {
    let counts = (Counts::default(), Counts::default());
    run(
        cases_from_env(4000),
        (world(), edits(6), flow_picks(16)),
        |(world, edits, picks)| {
            let mut world = world;
            let mut follower = Follower::new();
            let counts = (&counts.0, &counts.1);
            follower.step(
                &agent_cluster(&world),
                &scope(&world),
                &[],
                counts,
                "the start",
            )?;
            for edit in &edits {
                edit.apply(&mut world);
                let packets = packets(&world, &picks);
                let what = format!("{edit:?}");
                follower.step(
                    &agent_cluster(&world),
                    &scope(&world),
                    &packets,
                    counts,
                    &what,
                )?;
            }
            Ok(())
        },
    );
    report(
        [("incremental", &counts.0), ("renumbering", &counts.1)],
        1_000,
    );
}

/// The same with Calico tiers, policies, network sets (whose CIDR changes update identities
/// in place) and Services.
#[test]
fn every_state_a_calico_sync_passes_through_decides_as_the_old_or_the_new_policy() {
    let counts = (Counts::default(), Counts::default());
    let strategy = (
        calico_case(),
        edits(4),
        prop::collection::vec(calico_edit(), 4),
        flow_picks(16),
        icmp_picks(4),
    );
    // A Calico case costs about sixteen Kubernetes ones.
    run(
        cases_from_env(4000) / 16,
        strategy,
        |(case, edits, calico_edits, picks, icmp)| {
            let mut case = case;
            let scope = Scope {
                node_name: None,
                host_addrs: case.world.node_addrs.clone(),
            };
            let mut follower = Follower::new();
            let counts = (&counts.0, &counts.1);
            follower.step(&case.agent_cluster(), &scope, &[], counts, "the start")?;
            for (edit, calico_edit) in edits.iter().zip(&calico_edits) {
                let mut kubernetes = case.kubernetes_world();
                edit.apply(&mut kubernetes);
                case.world.namespaces = kubernetes.namespaces;
                case.world.pods = kubernetes.pods;
                case.world.k8s_policies = kubernetes.policies;
                let packets = calico_packets(&case, &picks, &icmp);
                follower.step(
                    &case.agent_cluster(),
                    &scope,
                    &packets,
                    counts,
                    &format!("{edit:?}"),
                )?;
                case.apply(calico_edit);
                let packets = calico_packets(&case, &picks, &icmp);
                let what = format!("{calico_edit:?}");
                follower.step(&case.agent_cluster(), &scope, &packets, counts, &what)?;
            }
            Ok(())
        },
    );
    report(
        [
            ("Calico incremental", &counts.0),
            ("Calico renumbering", &counts.1),
        ],
        200,
    );
}

fn calico_packets(case: &CalicoCase, picks: &[FlowPick], icmp: &[IcmpPick]) -> Vec<Packet> {
    case.flows(picks, icmp)
        .iter()
        .map(|flow| Packet {
            src: flow.src,
            dst: flow.dst,
            protocol: flow.protocol,
            sport: flow.sport,
            dport: flow.key_port,
        })
        .collect()
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
