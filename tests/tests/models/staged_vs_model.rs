//! Pending verdicts vs the Calico reference model: the generated worlds of
//! `compiler_vs_calico_model`, each carrying staged policies (StagedGlobalNetworkPolicy,
//! StagedNetworkPolicy, StagedKubernetesNetworkPolicy: `Set` ones changing one of the
//! world's policies or adding one, `Delete` ones naming one of its policies or none). The
//! agent reads them with its own reader into `Cluster::staged` and compiles
//! `Cluster::pending()` as it does for the flow records' pending verdicts; the model reads
//! them itself and applies them in `CalicoWorld::pending`. For each flow:
//! * the userspace replay (`policy_agent::replay`, what gives a flow record its pending
//!   verdict) on the pending maps, and `explain`'s walk of the pending cluster (`explain
//!   --staged`), give the model's verdict on its pending world;
//! * the replay on the enforced maps (the cluster compiled with its staged policies in
//!   `Cluster::staged`) gives the model's enforced verdict, on its world with them kept apart:
//!   staged policies change nothing enforced; and those maps are, entry for entry, the ones
//!   compiled without the staged policies (compiles are deterministic:
//!   `deterministic_compile.rs`).
//!
//! The test prints how many flows the staged policies changed the verdict of and how many
//! staged policies of each sort were applied, and fails when too few were (a hollow test).
//! `PALISADE_PROPTEST_CASES` sets the number of worlds (default 400).

use std::{cell::Cell, net::IpAddr};

use palisade_tests::{
    calico_reference::{CalicoWorld, StagedChange, StagedKind, StagedPolicy},
    generate::{FlowPick, cases_from_env, flow_picks},
    generate_calico::{CalicoCase, IcmpPick, icmp_picks, staged_calico_case},
};
use policy_agent::{
    compiler::{
        Compiler, MapContents, Scope,
        trace::{TracePacket, trace},
    },
    replay::{self, Direction, Packet},
};
use proptest::{
    prelude::*,
    test_runner::{Config, TestCaseError, TestError, TestRunner},
};

/// About 15 s in debug on these machines.
const CASES: u32 = 400;

fn scope(case: &CalicoCase) -> Scope {
    Scope {
        node_name: None,
        host_addrs: case.world.node_addrs.clone(),
    }
}

/// What one run checked.
#[derive(Default)]
struct Counts {
    cases: Cell<usize>,
    flows: Cell<usize>,
    /// Flows whose pending verdict (the model's) differs from the enforced one: allowed
    /// pending and denied now, and the other way round.
    opened: Cell<usize>,
    closed: Cell<usize>,
    /// Flows the pending world denies.
    pending_denied: Cell<usize>,
    /// Staged policies by what they do to the enforced world.
    set_replacing: Cell<usize>,
    set_adding: Cell<usize>,
    delete_existing: Cell<usize>,
    delete_missing: Cell<usize>,
    /// Staged Kubernetes NetworkPolicies, of all sorts.
    kubernetes: Cell<usize>,
}

fn bump(cell: &Cell<usize>, by: bool) {
    cell.set(cell.get() + usize::from(by));
}

/// Whether `world` enforces a policy of the staged policy's kind, namespace and name.
fn enforced(world: &CalicoWorld, staged: &StagedPolicy) -> bool {
    match staged.kind {
        StagedKind::GlobalNetworkPolicy | StagedKind::NetworkPolicy => world
            .policies
            .iter()
            .any(|p| p.namespace == staged.namespace && p.name == staged.name),
        StagedKind::KubernetesNetworkPolicy => world.k8s_policies.iter().any(|np| {
            np.metadata.namespace == staged.namespace
                && np.metadata.name.as_deref() == Some(staged.name.as_str())
        }),
    }
}

/// Whether the maps let the flow through on both of its sides (a side that is no endpoint
/// of the maps is not checked), as `compiler_vs_calico_model` decides it.
fn replay_allows(maps: &MapContents, packet: &Packet) -> bool {
    let endpoint = |ip: IpAddr| {
        maps.endpoints
            .contains_key(&policy_common::endpoint::EndpointKey {
                addr: policy_agent::compiler::identity_addr(ip),
            })
    };
    let egress = !endpoint(packet.src) || replay::allows(maps, packet, Direction::FromEndpoint);
    let ingress = !endpoint(packet.dst) || replay::allows(maps, packet, Direction::ToEndpoint);
    egress && ingress
}

fn check(
    case: &CalicoCase,
    picks: &[FlowPick],
    icmp: &[IcmpPick],
    counts: &Counts,
) -> Result<(), TestCaseError> {
    let scope = scope(case);
    let cluster = case.agent_cluster();
    prop_assert_eq!(
        cluster.staged.len(),
        case.world.staged.len(),
        "the agent and the model hold different staged policies\n{}",
        case.yaml
    );
    let maps = Compiler::new().compile(&cluster, &scope).maps;
    // Staged policies change nothing enforced, to the entry: the compiler never reads them.
    let mut without = cluster.clone();
    without.staged.clear();
    prop_assert!(
        Compiler::new().compile(&without, &scope).maps == maps,
        "the staged policies changed the enforced maps\n{}",
        case.yaml
    );
    let pending_cluster = cluster.pending();
    let pending_maps = Compiler::new().compile(&pending_cluster, &scope).maps;
    let pending_world = case.world.pending();

    for staged in &case.world.staged {
        let exists = enforced(&case.world, staged);
        match staged.change {
            StagedChange::Set(_) => {
                bump(&counts.set_replacing, exists);
                bump(&counts.set_adding, !exists);
            }
            StagedChange::Delete => {
                bump(&counts.delete_existing, exists);
                bump(&counts.delete_missing, !exists);
            }
        }
        bump(
            &counts.kubernetes,
            staged.kind == StagedKind::KubernetesNetworkPolicy,
        );
    }

    for flow in case.flows(picks, icmp) {
        let packet = Packet {
            src: flow.src,
            dst: flow.dst,
            protocol: flow.protocol,
            sport: flow.sport,
            dport: flow.key_port,
        };
        let model = case.world.verdict(&flow.model);
        let compiled = replay_allows(&maps, &packet);
        prop_assert_eq!(
            compiled,
            model.allowed,
            "enforced verdict on {}\nmodel:\n{}\nresources:\n{}",
            flow.model,
            model,
            case.yaml
        );
        let pending_model = pending_world.verdict(&flow.model);
        let pending = replay_allows(&pending_maps, &packet);
        prop_assert_eq!(
            pending,
            pending_model.allowed,
            "pending verdict on {}\nmodel (pending):\n{}\nmodel (enforced):\n{}\nresources:\n{}",
            flow.model,
            pending_model,
            model,
            case.yaml
        );
        let explained = trace(
            &pending_cluster,
            &scope,
            &TracePacket {
                src: flow.src,
                dst: flow.dst,
                protocol: flow.protocol,
                sport: flow.sport,
                dport: flow.key_port,
            },
        );
        prop_assert_eq!(
            explained.allowed(),
            pending_model.allowed,
            "explain --staged on {}: {:?}\nresources:\n{}",
            flow.model,
            explained,
            case.yaml
        );
        bump(&counts.flows, true);
        bump(&counts.opened, pending_model.allowed && !model.allowed);
        bump(&counts.closed, !pending_model.allowed && model.allowed);
        bump(&counts.pending_denied, !pending_model.allowed);
    }
    bump(&counts.cases, true);
    Ok(())
}

#[test]
fn pending_verdicts_agree_with_the_calico_model_on_its_pending_world() {
    let counts = Counts::default();
    let cases = cases_from_env(CASES);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(
        &(staged_calico_case(), flow_picks(24), icmp_picks(8)),
        |(case, picks, icmp)| check(&case, &picks, &icmp, &counts),
    );
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, (case, picks, icmp))) => panic!(
            "{reason}\nminimal failing case:\n{}\nflows: {picks:?} {icmp:?}",
            case.yaml
        ),
        Err(e) => panic!("{e}"),
    }
    let get = |cell: &Cell<usize>| cell.get();
    let (flows, opened, closed, denied) = (
        get(&counts.flows),
        get(&counts.opened),
        get(&counts.closed),
        get(&counts.pending_denied),
    );
    let (replacing, adding, deleting, missing, kubernetes) = (
        get(&counts.set_replacing),
        get(&counts.set_adding),
        get(&counts.delete_existing),
        get(&counts.delete_missing),
        get(&counts.kubernetes),
    );
    eprintln!(
        "staged vs model: {} cases, {flows} flows agreed (enforced, pending and explain --staged); \
         {opened} allowed and {closed} denied by the staged policies where the enforced verdict \
         differs, {denied} denied pending; staged: {replacing} Set \
         replacing, {adding} Set adding, {deleting} Delete of a policy, {missing} Delete of none \
         ({kubernetes} of them Kubernetes)",
        get(&counts.cases)
    );
    // Not hollow: enough flows, a fair share of them changed by what was staged, both
    // pending verdicts, and every sort of staged policy.
    let floor = cases as usize;
    // About 12 flows a case, 3% of them changed either way and 12% denied pending in practice.
    assert!(flows > 6 * floor, "only {flows} flows were checked");
    assert!(
        opened * 400 > flows && closed * 400 > flows,
        "the staged policies changed too few of {flows} verdicts ({opened} opened, {closed} closed)"
    );
    assert!(
        denied * 20 > flows && denied * 10 < flows * 9,
        "{denied} of {flows} flows denied pending"
    );
    for (what, count) in [
        ("Set replacing a policy", replacing),
        ("Set adding a policy", adding),
        ("Delete of a policy", deleting),
        ("Delete of no policy", missing),
        ("staged Kubernetes NetworkPolicies", kubernetes),
    ] {
        assert!(count * 10 > floor, "only {count} {what} in {floor} cases");
    }
}
