//! The lab leaves nothing behind: no namespace, no pin directory, no temporary directory, after
//! a normal run (one node or several, or with a host endpoint interface) and after a panic; and
//! two labs run side by side without touching each other.

use std::{panic, path::Path, process::Command, thread};

use palisade_tests::lab::{Lab, LabOptions, Report, Scenario, netns, run_scenario};

const TINY: &str = r#"
resources:
  - {apiVersion: v1, kind: Pod, metadata: {name: a, labels: {app: a}}, spec: {containers: [{name: c, image: x}]}}
  - {apiVersion: v1, kind: Pod, metadata: {name: b, labels: {app: b}}, spec: {containers: [{name: c, image: x}]}}
steps:
  - name: a reaches b
    probes:
      - {from: a, to: b, port: 8080, expect: allow}
      - {from: b, to: a, port: 53, protocol: UDP, expect: allow}
"#;

fn leftovers(id: &str) -> anyhow::Result<Vec<String>> {
    let prefix = format!("pal-{id}-");
    Ok(netns::list()?
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect())
}

fn assert_clean(report: &Report) -> anyhow::Result<()> {
    assert_eq!(leftovers(&report.lab_id)?, Vec::<String>::new());
    assert_eq!(
        report.netns.len(),
        3,
        "node and two pods: {:?}",
        report.netns
    );
    if let Some(pin_dir) = &report.pin_dir {
        assert!(!pin_dir.exists(), "{} remains", pin_dir.display());
    }
    assert!(
        !report.lab_dir.exists(),
        "{} remains",
        report.lab_dir.display()
    );
    Ok(())
}

#[test]
fn nothing_remains_after_a_run_with_the_agent() -> anyhow::Result<()> {
    let Some(_turn) = crate::lab_turn("nothing_remains_after_a_run_with_the_agent") else {
        return Ok(());
    };
    let report = run_scenario(&Scenario::from_yaml(TINY)?, &LabOptions::default())?;
    assert!(report.pin_dir.is_some());
    assert_clean(&report)?;
    assert!(report.all_ok(), "{}", report.mismatches().join("\n"));
    Ok(())
}

/// Two named nodes besides the default one: three node namespaces, the fabric, three agents
/// with a pin directory each; all gone after the run.
const THREE_NODES: &str = r#"
resources:
  - {apiVersion: v1, kind: Pod, metadata: {name: a, labels: {app: a}}, spec: {nodeName: node-a, containers: [{name: c, image: x}]}}
  - {apiVersion: v1, kind: Pod, metadata: {name: b, labels: {app: b}}, spec: {nodeName: node-b, containers: [{name: c, image: x}]}}
  - {apiVersion: v1, kind: Pod, metadata: {name: c, labels: {app: c}}, spec: {containers: [{name: c, image: x}]}}
steps:
  - name: a reaches b and c across nodes
    probes:
      - {from: a, to: b, port: 8080, expect: allow}
      - {from: a, to: c, port: 53, protocol: UDP, expect: allow}
"#;

#[test]
fn nothing_remains_after_a_multi_node_run() -> anyhow::Result<()> {
    let Some(_turn) = crate::lab_turn("nothing_remains_after_a_multi_node_run") else {
        return Ok(());
    };
    let report = run_scenario(&Scenario::from_yaml(THREE_NODES)?, &LabOptions::default())?;
    assert!(report.all_ok(), "{}", report.mismatches().join("\n"));
    assert_eq!(leftovers(&report.lab_id)?, Vec::<String>::new());
    // Three nodes, the fabric, three pods.
    assert_eq!(report.netns.len(), 7, "{:?}", report.netns);
    assert_eq!(report.pin_dirs.len(), 3, "{:?}", report.pin_dirs);
    for pin_dir in &report.pin_dirs {
        assert!(!pin_dir.exists(), "{} remains", pin_dir.display());
    }
    assert!(
        !report.lab_dir.exists(),
        "{} remains",
        report.lab_dir.display()
    );
    Ok(())
}

/// A host endpoint on the default node, the only node: the lab still builds the fabric (the
/// host endpoint's interface faces it, named `ens3` here), and runs the agent with
/// `--node-name`. Its addresses are on that interface in the node's namespace only.
const HOST_ENDPOINT: &str = r#"
resources:
  - {apiVersion: v1, kind: Pod, metadata: {name: a, labels: {app: a}}, spec: {containers: [{name: c, image: x}]}}
  - {apiVersion: v1, kind: Pod, metadata: {name: b, labels: {app: b}}, spec: {containers: [{name: c, image: x}]}}
  - apiVersion: projectcalico.org/v3
    kind: HostEndpoint
    metadata: {name: host}
    spec: {node: lab-node, interfaceName: ens3, expectedIPs: [10.97.0.1, "fd00:97::1"]}
steps:
  - name: the pods and the host endpoint reach each other
    probes:
      - {from: a, to: hep/host, port: 22, expect: allow}
      - {from: hep/host, to: b, port: 53, protocol: UDP, expect: allow}
"#;

/// The machine's root namespace, as `ip -o addr` shows it.
fn root_addresses() -> anyhow::Result<String> {
    let output = Command::new("ip").args(["-o", "addr", "show"]).output()?;
    anyhow::ensure!(output.status.success(), "ip -o addr show failed");
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn nothing_remains_after_a_run_with_a_host_endpoint() -> anyhow::Result<()> {
    let Some(_turn) = crate::lab_turn("nothing_remains_after_a_run_with_a_host_endpoint") else {
        return Ok(());
    };
    let scenario = Scenario::from_yaml(HOST_ENDPOINT)?;
    let lab = Lab::start(&scenario, &LabOptions::default())?;
    let id = lab.id().to_owned();
    // The node, the fabric, two pods; nothing of it in the root namespace.
    assert_eq!(leftovers(&id)?.len(), 4, "{:?}", leftovers(&id)?);
    let root = root_addresses()?;
    assert!(
        !root.contains("10.97.0.1") && !root.contains("fd00:97::1"),
        "a host endpoint address reached the root namespace:\n{root}"
    );
    let report = {
        let mut lab = lab;
        let step = lab.run_step(1, &scenario.steps[0])?;
        assert!(step.all_ok(), "{}", step.render_table());
        lab.finish()?
    };
    assert_eq!(leftovers(&id)?, Vec::<String>::new());
    assert_eq!(report.pin_dirs.len(), 1, "{:?}", report.pin_dirs);
    for pin_dir in &report.pin_dirs {
        assert!(!pin_dir.exists(), "{} remains", pin_dir.display());
    }
    assert!(
        !report.lab_dir.exists(),
        "{} remains",
        report.lab_dir.display()
    );
    Ok(())
}

#[test]
fn nothing_remains_after_a_panic() -> anyhow::Result<()> {
    let Some(_turn) = crate::lab_turn("nothing_remains_after_a_panic") else {
        return Ok(());
    };
    let scenario = Scenario::from_yaml(TINY)?;
    let options = LabOptions {
        no_agent: true,
        ..LabOptions::default()
    };
    let lab = Lab::start(&scenario, &options)?;
    let id = lab.id().to_owned();
    assert_eq!(leftovers(&id)?.len(), 3);
    let outcome = panic::catch_unwind(panic::AssertUnwindSafe(move || {
        let _lab = lab;
        panic!("deliberate panic while the lab runs");
    }));
    assert!(outcome.is_err());
    assert_eq!(leftovers(&id)?, Vec::<String>::new());
    let lab_dir = std::env::temp_dir().join(format!("palisade-lab-{id}"));
    assert!(!Path::new(&lab_dir).exists());
    Ok(())
}

/// With several nodes and their agents running: every agent, namespace and pin directory goes.
#[test]
fn nothing_remains_after_a_panic_with_several_nodes() -> anyhow::Result<()> {
    let Some(_turn) = crate::lab_turn("nothing_remains_after_a_panic_with_several_nodes") else {
        return Ok(());
    };
    let scenario = Scenario::from_yaml(THREE_NODES)?;
    let lab = Lab::start(&scenario, &LabOptions::default())?;
    let id = lab.id().to_owned();
    let pin_dirs: Vec<_> = lab.pin_dirs().into_iter().map(|(_, dir)| dir).collect();
    assert_eq!(leftovers(&id)?.len(), 7);
    assert!(pin_dirs.iter().all(|d| d.exists()), "{pin_dirs:?}");
    let outcome = panic::catch_unwind(panic::AssertUnwindSafe(move || {
        let _lab = lab;
        panic!("deliberate panic while the lab runs");
    }));
    assert!(outcome.is_err());
    assert_eq!(leftovers(&id)?, Vec::<String>::new());
    for dir in &pin_dirs {
        assert!(!dir.exists(), "{} remains", dir.display());
    }
    let lab_dir = std::env::temp_dir().join(format!("palisade-lab-{id}"));
    assert!(!Path::new(&lab_dir).exists());
    Ok(())
}

#[test]
fn two_labs_run_at_once() -> anyhow::Result<()> {
    let Some(_turn) = crate::lab_turn("two_labs_run_at_once") else {
        return Ok(());
    };
    let scenario = Scenario::from_yaml(TINY)?;
    let options = LabOptions {
        no_agent: true,
        ..LabOptions::default()
    };
    let reports = thread::scope(|scope| {
        let runs: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| run_scenario(&scenario, &options)))
            .collect();
        runs.into_iter()
            .map(|r| {
                r.join()
                    .map_err(|_| anyhow::anyhow!("a lab thread panicked"))?
            })
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    assert_ne!(reports[0].lab_id, reports[1].lab_id);
    for report in &reports {
        assert!(report.all_ok(), "{}", report.mismatches().join("\n"));
        assert_clean(report)?;
    }
    Ok(())
}
