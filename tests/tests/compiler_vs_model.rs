//! Compiler vs reference model: random clusters, random policies using every construct, random
//! flows. For each flow, the userspace replay of the datapath's lookups on the compiler's map
//! contents must agree with the reference model evaluated on the raw API objects.
//!
//! `PALISADE_PROPTEST_CASES` raises the number of cases (default 2000) for a longer run;
//! failures shrink to a minimal cluster, printed as the API objects.

use std::net::IpAddr;

use palisade_tests::{
    generate::{addresses, agent_cluster, cases_from_env, flow_picks, protocol_number, world},
    reference::Flow,
};
use policy_agent::{
    compiler::{Compiler, Scope},
    replay::{self, Direction, Packet},
};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: cases_from_env(2000), ..ProptestConfig::default() })]

    #[test]
    fn compiled_maps_agree_with_the_reference_model(
        world in world(),
        picks in flow_picks(24),
    ) {
        let scope = Scope {
            node_name: None,
            host_addrs: world.node_addrs.clone(),
        };
        let maps = Compiler::new().compile(&agent_cluster(&world), &scope).maps;
        let addrs = addresses(&world);
        for (src, dst, protocol, port) in picks {
            let (src, dst) = (*src.get(&addrs), *dst.get(&addrs));
            if src == dst || src.is_ipv4() != dst.is_ipv4() {
                continue;
            }
            let flow = Flow { src, dst, protocol, port };
            let packet = Packet { src, dst, protocol: protocol_number(protocol), dport: port };
            let endpoint = |ip: IpAddr| maps.endpoints.contains_key(&policy_common::endpoint::EndpointKey {
                addr: policy_agent::compiler::identity_addr(ip),
            });
            let egress = !endpoint(src) || replay::allows(&maps, &packet, Direction::FromEndpoint);
            let ingress = !endpoint(dst) || replay::allows(&maps, &packet, Direction::ToEndpoint);
            prop_assert_eq!(
                egress && ingress,
                world.allows(&flow),
                "flow {:?} (egress {}, ingress {})",
                flow,
                egress,
                ingress
            );
        }
    }
}
