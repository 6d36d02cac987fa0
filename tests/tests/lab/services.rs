//! examples/services (scenario.yaml, single-node.yaml) through the lab in both kube-proxy modes: Services, their EndpointSlices
//! derived by the lab, kube-proxy's rules in every node, probes through ClusterIPs and
//! NodePorts, DNS through the kube-dns ClusterIP.
//!
//! - `services_*_enforced`: the real agent; every probe must observe what Kubernetes semantics
//!   say when traffic to a Service is judged on the backend kube-proxy chose and on its target
//!   port (issue 16).
//! - `services_*_wiring`: without the agent, every probe expected to allow must get through
//!   kube-proxy's DNAT (and its replies back through the reverse NAT), and every node must
//!   carry the mode's chains. Deny expectations are not checked: nothing enforces.

use std::{path::Path, process::Command};

use anyhow::Context as _;
use palisade_tests::lab::{
    KubeProxyMode, Lab, LabOptions, Report, Scenario, run_scenario, scenario::Verdict,
};

/// The scenario files of examples/services.
const FILES: [&str; 2] = ["scenario.yaml", "single-node.yaml"];

fn scenario(file: &str, mode: KubeProxyMode) -> anyhow::Result<Scenario> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/services")
        .join(file);
    let mut scenario = Scenario::from_file(&path)?;
    scenario.kube_proxy = mode;
    Ok(scenario)
}

/// Every file runs; the test fails listing each file's mismatches.
fn enforced(mode: KubeProxyMode) -> anyhow::Result<()> {
    let failed: Vec<String> = FILES
        .iter()
        .filter_map(|file| enforced_file(file, mode).err())
        .map(|e| format!("{e:#}"))
        .collect();
    anyhow::ensure!(failed.is_empty(), "{}", failed.join("\n\n"));
    Ok(())
}

fn enforced_file(file: &str, mode: KubeProxyMode) -> anyhow::Result<Report> {
    let scenario = scenario(file, mode)?;
    let report = run_scenario(&scenario, &LabOptions::default())?;
    for step in &report.steps {
        eprintln!("{}", step.render_table());
    }
    anyhow::ensure!(report.steps.len() == scenario.steps.len());
    anyhow::ensure!(
        report.steps.iter().all(|s| s.programmed_ms.is_some()),
        "every step is programmed by the agents"
    );
    anyhow::ensure!(
        report.all_ok(),
        "{file}, kube-proxy {mode}: mismatches:\n{}\nagent log:\n{}",
        report.mismatches().join("\n"),
        report.agent_log_tail.join("\n")
    );
    Ok(report)
}

#[test]
fn services_iptables_enforced() -> anyhow::Result<()> {
    let Some(_turn) = crate::lab_turn("services_iptables_enforced") else {
        return Ok(());
    };
    enforced(KubeProxyMode::Iptables)
}

#[test]
fn services_nftables_enforced() -> anyhow::Result<()> {
    let Some(_turn) = crate::lab_turn("services_nftables_enforced") else {
        return Ok(());
    };
    enforced(KubeProxyMode::Nftables)
}

/// What `ip netns exec NETNS PROGRAM ARGS` prints.
fn output_in(netns: &str, program: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("ip")
        .args(["netns", "exec", netns, program])
        .args(args)
        .output()
        .with_context(|| format!("running {program} in {netns}"))?;
    anyhow::ensure!(
        output.status.success(),
        "{program} in {netns}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn wiring(mode: KubeProxyMode) -> anyhow::Result<()> {
    for file in FILES {
        wiring_file(file, mode)?;
    }
    Ok(())
}

/// Every allowed probe of `file` gets through; for scenario.yaml, the rules are checked too.
fn wiring_file(file: &str, mode: KubeProxyMode) -> anyhow::Result<()> {
    let scenario = scenario(file, mode)?;
    let check_rules = file == "scenario.yaml";
    let options = LabOptions {
        no_agent: true,
        ..LabOptions::default()
    };
    let mut lab = Lab::start(&scenario, &options)?;
    let mut failed = Vec::new();
    let mut allowed = 0;
    for (i, step) in scenario.steps.iter().enumerate() {
        let report = lab.run_step(i + 1, step)?;
        eprintln!("{}", report.render_table());
        for probe in report.probes.iter().filter(|p| p.expect == Verdict::Allow) {
            allowed += 1;
            if !probe.ok {
                failed.push(format!(
                    "step {}: {} -> {}:{}/{} v{}: {}",
                    i + 1,
                    probe.from,
                    probe.to,
                    probe.port,
                    probe.protocol,
                    probe.family.number(),
                    probe.detail
                ));
            }
        }
        if check_rules && i == 0 {
            // Every node carries the mode's chains for the Services of the first step.
            for node in lab.nodes() {
                let netns = node.netns(lab.id());
                match mode {
                    KubeProxyMode::Iptables => {
                        let v4 = output_in(&netns, "iptables-save", &[])?;
                        for needle in [
                            "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
                            "-j KUBE-SVC-",
                            "-j KUBE-SEP-",
                            "-j DNAT --to-destination 10.42.0.20:8080",
                            "-j DNAT --to-destination 198.18.0.2:6443",
                            "-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS",
                            "-j MASQUERADE --random-fully",
                            "\"default/empty has no endpoints\"",
                            "--reject-with icmp-port-unreachable",
                        ] {
                            anyhow::ensure!(
                                v4.contains(needle),
                                "{netns}: iptables-save lacks {needle}:\n{v4}"
                            );
                        }
                        let v6 = output_in(&netns, "ip6tables-save", &[])?;
                        anyhow::ensure!(
                            v6.contains("-j DNAT --to-destination [fd00:42::20]:8080"),
                            "{netns}: ip6tables-save lacks the IPv6 backend:\n{v6}"
                        );
                    }
                    KubeProxyMode::Nftables => {
                        let v4 = output_in(&netns, "nft", &["list", "table", "ip", "kube-proxy"])?;
                        for needle in [
                            "map service-ips",
                            "map service-nodeports",
                            "map no-endpoint-services",
                            "numgen random mod 1 vmap",
                            "dnat to 10.42.0.20:8080",
                            "masquerade fully-random",
                            "goto reject-chain",
                        ] {
                            anyhow::ensure!(
                                v4.contains(needle),
                                "{netns}: nft ip kube-proxy lacks {needle}:\n{v4}"
                            );
                        }
                        let v6 = output_in(&netns, "nft", &["list", "table", "ip6", "kube-proxy"])?;
                        anyhow::ensure!(
                            v6.contains("dnat to [fd00:42::20]:8080"),
                            "{netns}: nft ip6 kube-proxy lacks the IPv6 backend:\n{v6}"
                        );
                    }
                }
            }
        }
        if check_rules && i == 3 {
            // spare was relabelled into web's Service: two endpoints, half each.
            let netns = lab.nodes()[0].netns(lab.id());
            match mode {
                KubeProxyMode::Iptables => {
                    let v4 = output_in(&netns, "iptables-save", &["-t", "nat"])?;
                    anyhow::ensure!(
                        v4.contains("--probability 0.5000000000")
                            && v4.contains("--to-destination 10.42.0.31:8000"),
                        "web's Service does not spread over two endpoints:\n{v4}"
                    );
                }
                KubeProxyMode::Nftables => {
                    let v4 = output_in(&netns, "nft", &["list", "table", "ip", "kube-proxy"])?;
                    anyhow::ensure!(
                        v4.contains("numgen random mod 2 vmap")
                            && v4.contains("dnat to 10.42.0.31:8000"),
                        "web's Service does not spread over two endpoints:\n{v4}"
                    );
                }
            }
        }
    }
    lab.finish()?;
    assert!(allowed > 0);
    assert!(
        failed.is_empty(),
        "{file}, kube-proxy {mode}: allowed probes that did not get through the Service:\n{}",
        failed.join("\n")
    );
    Ok(())
}

#[test]
fn services_iptables_wiring() -> anyhow::Result<()> {
    let Some(_turn) = crate::lab_turn("services_iptables_wiring") else {
        return Ok(());
    };
    wiring(KubeProxyMode::Iptables)
}

#[test]
fn services_nftables_wiring() -> anyhow::Result<()> {
    let Some(_turn) = crate::lab_turn("services_nftables_wiring") else {
        return Ok(());
    };
    wiring(KubeProxyMode::Nftables)
}
