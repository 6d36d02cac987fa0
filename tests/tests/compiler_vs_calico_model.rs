//! Compiler vs the Calico reference model: random clusters with random tiers, Calico
//! policies (global and namespaced, every action), Kubernetes NetworkPolicies and network
//! sets. For each flow (TCP, UDP, SCTP, and ICMP/ICMPv6 by type and code), the userspace
//! replay of the datapath's lookups on the compiler's maps must agree with
//! `palisade_tests::calico_reference`, evaluated on the resources themselves, and so must
//! `policy-agent explain`'s walk.
//!
//! The second property follows such a world through random edits with one compiler, each
//! step an edit of its Kubernetes objects (pods relabelled, added and removed, namespaces
//! relabelled, NetworkPolicies added and removed) and then of its Calico policies (one
//! applied or deleted): pod edits update ordered tables incrementally (new identities get
//! their cells in every ordered table), policy edits re-evaluate the endpoints' tables, and
//! after each step the maps must agree with the
//! model, a sync that writes only the keys the compile reports changed must arrive at the
//! same maps, and nothing may be left behind (`palisade_tests::leftovers`).
//!
//! `PALISADE_PROPTEST_CASES` raises the number of cases (default 2000, 500 for the edits).

use std::net::IpAddr;

use palisade_tests::{
    generate::{FlowPick, cases_from_env, edits, flow_picks},
    generate_calico::{CalicoCase, IcmpPick, calico_case, calico_edit, icmp_picks},
    leftovers,
};
use policy_agent::{
    compiler::{
        Compiler, MapContents, Scope,
        trace::{TracePacket, trace},
    },
    model::Cluster,
    replay::{self, Direction, Packet},
};
use proptest::{prelude::*, test_runner::TestCaseError};

fn scope(case: &CalicoCase) -> Scope {
    Scope {
        node_name: None,
        host_addrs: case.world.node_addrs.clone(),
    }
}

fn check_flows(
    case: &CalicoCase,
    cluster: &Cluster,
    maps: &MapContents,
    picks: &[FlowPick],
    icmp: &[IcmpPick],
) -> Result<(), TestCaseError> {
    for flow in case.flows(picks, icmp) {
        let model = case.world.verdict(&flow.model);
        let packet = Packet {
            src: flow.src,
            dst: flow.dst,
            protocol: flow.protocol,
            sport: flow.sport,
            dport: flow.key_port,
        };
        let endpoint = |ip: IpAddr| {
            maps.endpoints
                .contains_key(&policy_common::endpoint::EndpointKey {
                    addr: policy_agent::compiler::identity_addr(ip),
                })
        };
        let egress = !endpoint(flow.src) || replay::allows(maps, &packet, Direction::FromEndpoint);
        let ingress = !endpoint(flow.dst) || replay::allows(maps, &packet, Direction::ToEndpoint);
        prop_assert_eq!(
            egress && ingress,
            model.allowed,
            "{}: compiled egress {} ingress {}\nmodel:\n{}\nresources:\n{}",
            flow.model,
            egress,
            ingress,
            model,
            case.yaml
        );
        let explained = trace(
            cluster,
            &scope(case),
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
            model.allowed,
            "explain on {}: {:?}\nresources:\n{}",
            flow.model,
            explained,
            case.yaml
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases_from_env(2000), ..ProptestConfig::default() })]

    #[test]
    fn compiled_ordered_tables_agree_with_the_calico_model(
        case in calico_case(),
        picks in flow_picks(24),
        icmp in icmp_picks(8),
    ) {
        let cluster = case.agent_cluster();
        let maps = Compiler::new().compile(&cluster, &scope(&case)).maps;
        check_flows(&case, &cluster, &maps, &picks, &icmp)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases_from_env(2000) / 4, ..ProptestConfig::default() })]

    #[test]
    fn incremental_ordered_compiles_agree_with_the_model_and_leave_nothing_behind(
        case in calico_case(),
        edits in edits(6),
        calico_edits in prop::collection::vec(calico_edit(), 6),
        picks in flow_picks(16),
        icmp in icmp_picks(4),
    ) {
        let mut case = case;
        let mut compiler = Compiler::new();
        // What a sync that writes only the reported changes leaves in the maps.
        let mut synced = MapContents::default();
        leftovers::follow(&mut synced, &compiler.compile(&case.agent_cluster(), &scope(&case)));
        // Each step edits the Kubernetes objects, then the Calico policies.
        for (edit, calico_edit) in edits.iter().zip(&calico_edits) {
            let mut kubernetes = case.kubernetes_world();
            edit.apply(&mut kubernetes);
            case.world.namespaces = kubernetes.namespaces;
            case.world.pods = kubernetes.pods;
            case.world.k8s_policies = kubernetes.policies;
            step(&mut compiler, &mut synced, &case, &picks, &icmp, &format!("{edit:?}"))?;
            case.apply(calico_edit);
            step(&mut compiler, &mut synced, &case, &picks, &icmp, &format!("{calico_edit:?}"))?;
        }
    }
}

/// One incremental compile after `edit`: the maps agree with the model, a sync of only the
/// reported changes arrives at them, and nothing is left behind.
fn step(
    compiler: &mut Compiler,
    synced: &mut MapContents,
    case: &CalicoCase,
    picks: &[FlowPick],
    icmp: &[IcmpPick],
    edit: &str,
) -> Result<(), TestCaseError> {
    let cluster = case.agent_cluster();
    let compiled = compiler.compile(&cluster, &scope(case));
    leftovers::follow(synced, &compiled);
    prop_assert!(
        *synced == *compiled.maps,
        "the changes reported after {} miss entries",
        edit
    );
    let maps = compiled.maps;
    check_flows(case, &cluster, &maps, picks, icmp)?;
    let fresh = Compiler::new().compile(&cluster, &scope(case)).maps;
    prop_assert_eq!(
        leftovers::counts(&maps),
        leftovers::counts(&fresh),
        "entries (endpoints, identities, unordered rules) after {}",
        edit
    );
    let orphans = leftovers::orphans(&maps);
    prop_assert!(
        orphans.is_empty(),
        "entries left behind after {}: {:?}",
        edit,
        orphans
    );
    Ok(())
}
