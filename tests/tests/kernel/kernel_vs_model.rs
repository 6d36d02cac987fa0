//! Kernel vs reference model: the same generated clusters and flows as `compiler_vs_model`,
//! but the verdict comes from the real eBPF programs, run by the kernel with
//! `BPF_PROG_TEST_RUN` on crafted IPv4/IPv6 TCP/UDP/SCTP frames, with maps filled by the real
//! agent code (compiler + incremental sync from the previous case's state).
//! `policy-agent explain`'s walk must give the kernel's verdict on every flow too.
//!
//! Privileged. `PALISADE_KERNEL_CASES` sets the number of clusters (default 500).

use std::{cell::RefCell, net::IpAddr};

use palisade_tests::{
    generate::{addresses, agent_cluster, flow_picks, protocol_number, world},
    kernel::ProgrammedDatapath,
    reference::Flow,
    require_root,
    scratch::Pins,
};
use policy_agent::{
    compiler::{
        Scope,
        trace::{TracePacket, trace},
    },
    replay::Packet,
};
use proptest::{
    prelude::*,
    test_runner::{Config, TestError, TestRunner},
};

#[test]
fn kernel_verdicts_agree_with_the_reference_model() {
    if !require_root("kernel_verdicts_agree_with_the_reference_model") {
        return;
    }
    let pins = Pins::new("kernel-vs-model");
    let datapath = RefCell::new(ProgrammedDatapath::load(&pins.0));
    let flows_checked = RefCell::new(0usize);

    let mut runner = TestRunner::new(Config {
        cases: std::env::var("PALISADE_KERNEL_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(500),
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&(world(), flow_picks(24)), |(world, picks)| {
        let mut datapath = datapath.borrow_mut();
        let scope = Scope {
            node_name: None,
            host_addrs: world.node_addrs.clone(),
        };
        let cluster = agent_cluster(&world);
        datapath
            .program(&cluster, &scope)
            .map_err(TestCaseError::fail)?;

        let addrs = addresses(&world);
        for (src, dst, protocol, port) in picks {
            let (src, dst): (IpAddr, IpAddr) = (*src.get(&addrs), *dst.get(&addrs));
            if src == dst || src.is_ipv4() != dst.is_ipv4() {
                continue;
            }
            let packet = Packet {
                src,
                dst,
                protocol: protocol_number(protocol),
                sport: 40_000,
                dport: port,
            };
            let kernel = datapath.allows(&packet).map_err(TestCaseError::fail)?;
            let flow = Flow {
                src,
                dst,
                protocol,
                port,
            };
            // `policy-agent explain` walks Kubernetes policies as the default tier.
            let explained = trace(
                &cluster,
                &scope,
                &TracePacket {
                    src,
                    dst,
                    protocol: protocol_number(protocol),
                    sport: 40_000,
                    dport: port,
                },
            );
            prop_assert_eq!(
                explained.allowed(),
                kernel,
                "explain disagrees with the kernel on {:?}: {:?}",
                flow,
                explained
            );
            prop_assert_eq!(kernel, world.allows(&flow), "flow {:?}", flow);
            *flows_checked.borrow_mut() += 1;
        }
        Ok(())
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, (world, picks))) => {
            panic!("{reason}\nminimal failing case:\n{world:#?}\nflows: {picks:?}")
        }
        Err(e) => panic!("{e}"),
    }
    let checked = *flows_checked.borrow();
    assert!(checked > 1000, "only {checked} flows were checked");
    eprintln!("kernel vs model: {checked} flows agreed");
}
