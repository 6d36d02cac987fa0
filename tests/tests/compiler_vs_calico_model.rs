//! Compiler vs the Calico reference model: random clusters with random tiers, Calico
//! policies (global and namespaced, every action), Kubernetes NetworkPolicies and network
//! sets. For each flow, the userspace replay of the datapath's lookups on the compiler's maps
//! must agree with `palisade_tests::calico_reference`, evaluated on the resources themselves.
//!
//! `PALISADE_PROPTEST_CASES` raises the number of cases (default 2000).

use std::net::IpAddr;

use palisade_tests::{
    calico_reference::Packet as ModelPacket,
    generate::{FlowPick, addresses, cases_from_env, flow_picks, protocol_number},
    generate_calico::{CalicoCase, calico_case},
    reference::World,
};
use policy_agent::{
    calico::resources::Protocol,
    compiler::{Compiler, MapContents, Scope},
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
    maps: &MapContents,
    picks: &[FlowPick],
) -> Result<(), TestCaseError> {
    let kubernetes = World {
        namespaces: case.world.namespaces.clone(),
        pods: case.world.pods.clone(),
        policies: case.world.k8s_policies.clone(),
        node_addrs: case.world.node_addrs.clone(),
    };
    let addrs = addresses(&kubernetes);
    for (src, dst, protocol, port) in picks {
        let (src, dst) = (*src.get(&addrs), *dst.get(&addrs));
        if src == dst || src.is_ipv4() != dst.is_ipv4() {
            continue;
        }
        let number = protocol_number(protocol);
        let model =
            case.world
                .verdict(&ModelPacket::new(src, dst, Protocol(number), 40_000, *port));
        let packet = Packet {
            src,
            dst,
            protocol: number,
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
            model.allowed,
            "{} {}:{} -> {}: compiled egress {} ingress {}\nmodel:\n{}\nresources:\n{}",
            protocol,
            src,
            40_000,
            dst,
            egress,
            ingress,
            model,
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
    ) {
        let maps = Compiler::new().compile(&case.agent_cluster(), &scope(&case)).maps;
        check_flows(&case, &maps, &picks)?;
    }
}
