//! Kernel vs the Calico reference model: the generated worlds of `compiler_vs_calico_model`
//! (tiers, ordered Calico policies with Allow/Deny/Pass/Log, Kubernetes policies, network
//! sets), with the verdict from the real eBPF programs run by the kernel with
//! `BPF_PROG_TEST_RUN` on crafted IPv4/IPv6 TCP/UDP/SCTP/ICMP/ICMPv6 frames, and the maps filled by the
//! real agent code (compiler + incremental sync from the previous case's state). For every
//! flow, `policy-agent explain`'s walk must give the kernel's verdict too.
//!
//! Most worlds hold administrators' policy too (ClusterNetworkPolicy, AdminNetworkPolicy,
//! BaselineAdminNetworkPolicy); the test prints how many flows the model walked through the
//! tiers `kube-admin`/`kube-baseline` and how many a rule there decided.
//!
//! Privileged. `PALISADE_KERNEL_CASES` sets the number of worlds (default 300).

use std::cell::RefCell;

use palisade_tests::{
    generate::flow_picks,
    generate_calico::{calico_case, icmp_picks},
    kernel::ProgrammedDatapath,
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
fn kernel_verdicts_agree_with_the_calico_model() {
    if !require_root("kernel_verdicts_agree_with_the_calico_model") {
        return;
    }
    let pins = Pins::new("kernel-vs-calico");
    let datapath = RefCell::new(ProgrammedDatapath::load(&pins.0));
    let (flows_checked, denied) = (RefCell::new(0usize), RefCell::new(0usize));
    // Flows whose model walk went through the administrators' tiers, and decided there.
    let (through, decided) = (RefCell::new(0usize), RefCell::new(0usize));

    let mut runner = TestRunner::new(Config {
        cases: std::env::var("PALISADE_KERNEL_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(300),
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(
        &(calico_case(), flow_picks(24), icmp_picks(8)),
        |(case, picks, icmp)| {
            // The generator's world is the model's own reading of the case's YAML (Calico's
            // defaults applied by the model itself, not taken from the agent).
            let mut datapath = datapath.borrow_mut();
            let scope = Scope {
                node_name: None,
                host_addrs: case.world.node_addrs.clone(),
            };
            let cluster = case.agent_cluster();
            datapath
                .program(&cluster, &scope)
                .map_err(TestCaseError::fail)?;

            for flow in case.flows(&picks, &icmp) {
                let packet = Packet {
                    src: flow.src,
                    dst: flow.dst,
                    protocol: flow.protocol,
                    sport: flow.sport,
                    dport: flow.key_port,
                };
                let kernel = datapath.allows(&packet).map_err(TestCaseError::fail)?;
                let model = case.world.verdict(&flow.model);
                let explained = trace(
                    &cluster,
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
                    kernel,
                    "explain disagrees with the kernel on {}: {:?}",
                    flow.model,
                    explained
                );
                prop_assert_eq!(kernel, model.allowed, "{}\nmodel:\n{}", flow.model, model);
                *flows_checked.borrow_mut() += 1;
                *denied.borrow_mut() += usize::from(!kernel);
                *through.borrow_mut() += usize::from(model.through_cluster_tiers());
                *decided.borrow_mut() += usize::from(model.decided_by_cluster_policy());
            }
            Ok(())
        },
    );
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, (case, picks, icmp))) => {
            panic!(
                "{reason}\nminimal failing case:\n{}\nflows: {picks:?} {icmp:?}",
                case.yaml
            )
        }
        Err(e) => panic!("{e}"),
    }
    let (checked, denied) = (*flows_checked.borrow(), *denied.borrow());
    assert!(checked > 1000, "only {checked} flows were checked");
    // Both verdicts must be well represented, or the agreement says little.
    assert!(
        denied * 10 > checked && denied * 10 < checked * 9,
        "{denied} of {checked} flows denied"
    );
    let (through, decided) = (*through.borrow(), *decided.borrow());
    eprintln!(
        "kernel vs Calico model: {checked} flows agreed ({denied} denied); {through} through kube-admin/kube-baseline, {decided} decided by a ClusterNetworkPolicy/ANP/BANP rule"
    );
    assert!(
        // About 14% and 2% in practice: only pod-to-pod flows (and egress to `networks`) can
        // be decided there, and they are a minority of the random pairs.
        through * 10 > checked && decided * 100 > checked,
        "administrators' policy in too few flows ({through} and {decided} of {checked})"
    );
}
