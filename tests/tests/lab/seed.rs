//! The example scenarios through the lab with the real agent: the seed walkthrough
//! (examples/seed/), dual stack (examples/dual-stack/) and connection tracking on real traffic
//! (examples/stateful/: replies through isolation both ways, ICMP echo, established
//! connections kept across a change and cut when their allow is revoked) and restarts
//! (examples/restart/), Calico's tiers, global policies and network sets (examples/calico/),
//! Calico's source ports (examples/calico-source-ports/), administrators' ClusterNetworkPolicies
//! (examples/admin-guard-rails/), and
//! several nodes, each enforcing its own pods with its own agent (examples/multi-node/), and a
//! Calico host endpoint reached from pods and reaching them across the fabric
//! (examples/hep-plumbing/).
//! Every probe must observe what the scenario expects.

use std::path::Path;

use palisade_tests::lab::{LabOptions, Report, Scenario, run_scenario, scenario::AgentAction};

#[test]
fn seed_scenario_is_enforced() -> anyhow::Result<()> {
    let Some(_turn) = crate::lab_turn("seed_scenario_is_enforced") else {
        return Ok(());
    };
    run_example("seed").map(drop)
}

#[test]
fn dual_stack_scenario_is_enforced() -> anyhow::Result<()> {
    let Some(_turn) = crate::lab_turn("dual_stack_scenario_is_enforced") else {
        return Ok(());
    };
    run_example("dual-stack").map(drop)
}

#[test]
fn stateful_scenario_is_enforced() -> anyhow::Result<()> {
    let Some(_turn) = crate::lab_turn("stateful_scenario_is_enforced") else {
        return Ok(());
    };
    run_example("stateful").map(drop)
}

/// Stop, start and restart the agent between steps: the pinned programs enforce without it,
/// a new agent replaces their links (one program per hook, checked by the lab) and keeps the
/// connection table.
#[test]
fn restart_scenario_is_enforced() -> anyhow::Result<()> {
    let Some(_turn) = crate::lab_turn("restart_scenario_is_enforced") else {
        return Ok(());
    };
    run_example("restart").map(drop)
}

/// Calico's resources from files: a cluster-wide default deny with DNS allowed, Kubernetes
/// policies in the default tier before it, a security tier with a network-set block list that
/// Passes the rest.
#[test]
fn calico_scenario_is_enforced() -> anyhow::Result<()> {
    let Some(_turn) = crate::lab_turn("calico_scenario_is_enforced") else {
        return Ok(());
    };
    run_example("calico").map(drop)
}

/// Pods on two named nodes and the default one, each node its own namespace and agent, routed
/// over a fabric: cross-node allows, a deny by the destination node's ingress and one by the
/// source node's egress, IPv4 and IPv6, and a restart of every node's agent.
#[test]
fn multi_node_scenario_is_enforced() -> anyhow::Result<()> {
    let Some(_turn) = crate::lab_turn("multi_node_scenario_is_enforced") else {
        return Ok(());
    };
    let report = run_example("multi-node")?;
    assert_eq!(
        report.pin_dirs.len(),
        3,
        "one agent per node: {:?}",
        report.pin_dirs
    );
    for step in report.steps.iter().filter(|s| s.programmed_ms.is_some()) {
        let nodes: Vec<&str> = step.programmed_by_node.keys().map(String::as_str).collect();
        assert_eq!(
            nodes,
            ["lab-node", "node-a", "node-b"],
            "step {}",
            step.name
        );
    }
    Ok(())
}

/// A HostEndpoint on node bm1 (no pods): bm1 faces the fabric through the host endpoint's
/// `eth0`, carrying its expected addresses; pods on the default node reach its servers and it
/// reaches theirs from its own address, on Calico's failsafe ports only (so this holds
/// whether or not the agent enforces host endpoints), IPv4 and IPv6; then a
/// GlobalNetworkPolicy denies a pod the host endpoint by a selector on its labels.
#[test]
fn hep_plumbing_scenario_is_enforced() -> anyhow::Result<()> {
    let Some(_turn) = crate::lab_turn("hep_plumbing_scenario_is_enforced") else {
        return Ok(());
    };
    let report = run_example("hep-plumbing")?;
    // Both nodes run an agent, and the fabric exists.
    assert_eq!(report.pin_dirs.len(), 2, "{:?}", report.pin_dirs);
    let fabric = format!("pal-{}-fabric", report.lab_id);
    assert!(report.netns.contains(&fabric), "{:?}", report.netns);
    let probes = report.steps.iter().flat_map(|s| &s.probes);
    assert!(
        probes.clone().any(|p| p.from == "hep/bm1-eth0")
            && probes.clone().any(|p| p.to == "hep/bm1-eth0"),
        "the report names the host endpoint"
    );
    Ok(())
}

/// A bare-metal host protected by host-endpoint policy: SSH from the admin network only, the
/// failsafe ports open before any policy, the host's own egress limited to its mirror.
#[test]
fn host_endpoint_scenario_is_enforced() -> anyhow::Result<()> {
    let Some(_turn) = crate::lab_turn("host_endpoint_scenario_is_enforced") else {
        return Ok(());
    };
    run_example("host-endpoint").map(drop)
}

/// Calico's source ports on real connections from chosen source ports: a server's
/// privileged-port deny (with a `notPorts` hole) and a client's egress from a source-port range.
#[test]
fn calico_source_ports_scenario_is_enforced() -> anyhow::Result<()> {
    let Some(_turn) = crate::lab_turn("calico_source_ports_scenario_is_enforced") else {
        return Ok(());
    };
    run_example("calico-source-ports").map(drop)
}

/// Administrators' policy (ClusterNetworkPolicy): an Admin guard-rail no NetworkPolicy
/// overrides, Admin Pass to the namespace owners, a Baseline deny a NetworkPolicy relaxes.
#[test]
fn admin_guard_rails_scenario_is_enforced() -> anyhow::Result<()> {
    let Some(_turn) = crate::lab_turn("admin_guard_rails_scenario_is_enforced") else {
        return Ok(());
    };
    run_example("admin-guard-rails").map(drop)
}

fn run_example(name: &str) -> anyhow::Result<Report> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
        .join("scenario.yaml");
    let scenario = Scenario::from_file(&path)?;
    let report = run_scenario(&scenario, &LabOptions::default())?;
    for step in &report.steps {
        eprintln!("{}", step.render_table());
    }
    assert_eq!(report.steps.len(), scenario.steps.len());
    // Every step is programmed by the agent, except one that stops it: then nobody does.
    for (step, report) in scenario.steps.iter().zip(&report.steps) {
        let stopped = step.agent == Some(AgentAction::Stop);
        assert_eq!(
            report.programmed_ms.is_none(),
            stopped,
            "step {}: programmed by the agent unless it stops the agent",
            report.name
        );
    }
    assert!(
        report.all_ok(),
        "mismatches:\n{}\nagent log:\n{}",
        report.mismatches().join("\n"),
        report.agent_log_tail.join("\n")
    );
    Ok(report)
}
