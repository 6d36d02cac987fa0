//! Compiler vs reference model: random clusters, random policies using every construct, random
//! flows. For each flow, the userspace replay of the datapath's lookups on the compiler's map
//! contents must agree with the reference model evaluated on the raw API objects.
//!
//! The second property follows a cluster through random edits (relabelled pods and
//! namespaces, pods and policies added and removed) with one compiler, so every step is an
//! incremental update (or a rebuild where the edit changes what policies observe): after
//! each step the maps must agree with the model and hold exactly as many entries as a fresh
//! compile of the same cluster (nothing left behind), and a sync that writes only the keys
//! the compile reports changed must arrive at the same maps.
//!
//! `PALISADE_PROPTEST_CASES` raises the number of cases (default 2000) for a longer run;
//! failures shrink to a minimal cluster, printed as the API objects.

use std::{cell::Cell, net::IpAddr};

use palisade_tests::{
    generate::{
        FlowPick, addresses, agent_cluster, cases_from_env, edits, flow_picks, protocol_number,
        world,
    },
    leftovers,
    reference::{Flow, World},
};
use policy_agent::{
    compiler::{Compiler, MapContents, Scope},
    replay::{self, Direction, Packet},
};
use proptest::{
    prelude::*,
    test_runner::{Config, FileFailurePersistence, TestCaseError, TestError, TestRunner},
};

fn scope(world: &World) -> Scope {
    Scope {
        node_name: None,
        host_addrs: world.node_addrs.clone(),
    }
}

/// Checks each flow of `picks` between distinct addresses of one family; how many it checked.
fn check_flows(
    world: &World,
    maps: &MapContents,
    picks: &[FlowPick],
) -> Result<usize, TestCaseError> {
    let mut checked = 0;
    let addrs = addresses(world);
    for (src, dst, protocol, port) in picks {
        let (src, dst) = (*src.get(&addrs), *dst.get(&addrs));
        if src == dst || src.is_ipv4() != dst.is_ipv4() {
            continue;
        }
        let flow = Flow {
            src,
            dst,
            protocol,
            port: *port,
        };
        let packet = Packet {
            src,
            dst,
            protocol: protocol_number(protocol),
            sport: 40_000,
            dport: *port,
        };
        let endpoint = |ip: IpAddr| {
            maps.endpoints
                .contains_key(&policy_common::endpoint::EndpointKey {
                    addr: policy_agent::compiler::identity_addr(ip),
                })
        };
        let egress = !endpoint(src) || replay::allows(maps, &packet, Direction::FromEndpoint);
        let ingress = !endpoint(dst) || replay::allows(maps, &packet, Direction::ToEndpoint);
        prop_assert_eq!(
            egress && ingress,
            world.allows(&flow),
            "flow {:?} (egress {}, ingress {})",
            flow,
            egress,
            ingress
        );
        checked += 1;
    }
    Ok(checked)
}

/// Runs `test` on `cases` generated values; panics with the minimal failing one.
fn run<S: Strategy>(cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let mut runner = TestRunner::new(Config {
        cases,
        // Saved failures are replayed first. Named outright: by default proptest looks for
        // them beside the test binary's root (`tests/models/main.rs`), not beside this file.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/models/compiler_vs_model.proptest-regressions"
        )))),
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

#[test]
fn compiled_maps_agree_with_the_reference_model() {
    let checked = Cell::new(0usize);
    run(
        cases_from_env(2000),
        (world(), flow_picks(24)),
        |(world, picks)| {
            let maps = Compiler::new()
                .compile(&agent_cluster(&world), &scope(&world))
                .maps;
            checked.set(checked.get() + check_flows(&world, &maps, &picks)?);
            Ok(())
        },
    );
    let checked = checked.get();
    eprintln!("compiler vs model: {checked} flows agreed");
    // Picks between one address, or across families, are skipped (about three in five): not so
    // many that the test is hollow.
    assert!(checked > 5_000, "only {checked} flows were checked");
}

#[test]
fn incremental_compiles_agree_with_the_model_and_leave_nothing_behind() {
    let checked = Cell::new(0usize);
    run(
        cases_from_env(2000),
        (world(), edits(6), flow_picks(16)),
        |(world, edits, picks)| {
            let mut world = world;
            let mut compiler = Compiler::new();
            // What a sync that writes only the reported changes leaves in the maps.
            let mut synced = MapContents::default();
            leftovers::follow(
                &mut synced,
                &compiler.compile(&agent_cluster(&world), &scope(&world)),
            );
            for edit in &edits {
                edit.apply(&mut world);
                let cluster = agent_cluster(&world);
                let compiled = compiler.compile(&cluster, &scope(&world));
                leftovers::follow(&mut synced, &compiled);
                prop_assert!(
                    synced == *compiled.maps,
                    "the changes reported after {:?} miss entries",
                    edit
                );
                let maps = compiled.maps;
                checked.set(checked.get() + check_flows(&world, &maps, &picks)?);
                let fresh = Compiler::new().compile(&cluster, &scope(&world)).maps;
                prop_assert_eq!(
                    leftovers::counts(&maps),
                    leftovers::counts(&fresh),
                    "entries (endpoints, identities, unordered rules) after {:?}",
                    edit
                );
                let orphans = leftovers::orphans(&maps);
                prop_assert!(
                    orphans.is_empty(),
                    "entries left behind after {:?}: {:?}",
                    edit,
                    orphans
                );
            }
            Ok(())
        },
    );
    let checked = checked.get();
    eprintln!("incremental compiles vs model: {checked} flows agreed");
    assert!(checked > 5_000, "only {checked} flows were checked");
}
