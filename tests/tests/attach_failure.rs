//! An interface the programs cannot be attached to (issue 18), through the agent's test-only
//! seam `PALISADE_TEST_FAIL_ATTACH`: the failure used to abort the interface scan, so every
//! interface after the failing one stayed without programs (and an agent starting with one
//! such interface exited). The other interfaces are attached, their policy holds on real
//! traffic, and the failure is reported: status file, metric, log.
//! `examples/attach-failure/scenario.yaml`. Privileged: needs root (a failure under CI=true).

use std::path::Path;

use palisade_tests::{
    lab::{Lab, LabOptions, Scenario, agent::IFACE_PREFIX},
    require_root,
};
use policy_agent::dataplane::fault::FAIL_ATTACH_ENV;

#[test]
fn one_interface_failing_to_attach_leaves_the_others_enforced_and_is_reported() {
    if !require_root("one_interface_failing_to_attach_leaves_the_others_enforced_and_is_reported") {
        return;
    }
    // The second pod's host-side interface, in the lab's node namespace.
    // SAFETY: the only test in this binary, before the lab starts any thread; the agent it
    // spawns inherits the variable.
    unsafe { std::env::set_var(FAIL_ATTACH_ENV, format!("{IFACE_PREFIX}1")) };
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/attach-failure/scenario.yaml");
    let scenario = Scenario::from_file(&path).expect("the scenario");
    let mut lab = Lab::start(&scenario, &LabOptions::default()).expect("starting the lab");
    let broken = lab
        .pods()
        .iter()
        .find(|p| p.pod.name == "broken" && p.index == 1)
        .map(|p| p.host_if())
        .expect("the broken pod's plan");
    let mut failures = Vec::new();
    for (i, step) in scenario.steps.iter().enumerate() {
        let report = lab.run_step(i + 1, step).expect("running a step");
        eprintln!("{}", report.render_table());
        if !report.all_ok() {
            failures.push(format!("step {}", i + 1));
        }
    }
    let statuses = lab.agent_statuses().expect("the status file");
    let log = lab.agent_log_tail();
    lab.finish().expect("finishing the lab");
    assert!(
        failures.is_empty(),
        "failed: {failures:?}\n{}",
        log.join("\n")
    );

    let [(_, Some(status))] = statuses.as_slice() else {
        panic!("one node with a status file: {statuses:?}");
    };
    let failed: Vec<&str> = status
        .attach_failures
        .iter()
        .map(|f| f.interface.as_str())
        .collect();
    assert_eq!(failed, [broken.as_str()], "{:?}", status.attach_failures);
    assert!(
        status.attach_failures[0]
            .error
            .contains("failed on purpose"),
        "{:?}",
        status.attach_failures
    );
    // Both other pods' interfaces run the programs.
    assert_eq!(status.interfaces.len(), 2, "{:?}", status.interfaces);
    assert!(!status.interfaces.contains(&broken));
    assert!(
        log.iter()
            .any(|l| l.contains("could not attach the programs") && l.contains(&broken)),
        "no error line for {broken}:\n{}",
        log.join("\n")
    );
}
