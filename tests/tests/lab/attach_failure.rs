//! An interface the programs cannot be attached to (issue 18), through the agent's test-only
//! seam `PALISADE_TEST_FAIL_ATTACH`: the failure used to abort the interface scan, so every
//! interface after the failing one stayed without programs (and an agent starting with one
//! such interface exited). The other interfaces are attached, their policy holds on real
//! traffic, and the failure is reported: status file, metric, log.
//! `examples/attach-failure/scenario.yaml`. Then a failure that lasts three attempts
//! (`examples/attach-retry/scenario.yaml`): the agent scans again after 100 ms, doubling,
//! without waiting for a link event, so that pod's own policy holds by the first probe.
//! Privileged: needs root (a failure under CI=true).

use std::{
    path::Path,
    thread,
    time::{Duration, Instant},
};

use palisade_tests::lab::{Lab, LabOptions, Scenario, agent::IFACE_PREFIX};
use policy_agent::dataplane::fault::FAIL_ATTACH_ENV;

use crate::AgentSeam;

/// Both cases in one test: the seam is an environment variable the spawned agent inherits,
/// so they must not run side by side.
#[test]
fn attach_failures_leave_the_others_enforced_are_reported_and_retried() {
    let Some(_turn) =
        crate::lab_turn("attach_failures_leave_the_others_enforced_are_reported_and_retried")
    else {
        return;
    };
    one_interface_failing_to_attach_leaves_the_others_enforced_and_is_reported();
    a_failure_that_passes_is_retried_without_a_link_event();
}

fn one_interface_failing_to_attach_leaves_the_others_enforced_and_is_reported() {
    // The second pod's host-side interface, in the lab's node namespace.
    let _seam = AgentSeam::set(FAIL_ATTACH_ENV, &format!("{IFACE_PREFIX}1"));
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
    let failures = lab.run_steps(&scenario.steps).expect("running the steps");
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

fn a_failure_that_passes_is_retried_without_a_link_event() {
    // The first three attachments to the second pod's interface fail.
    // The previous lab and its agent are gone.
    let _seam = AgentSeam::set(FAIL_ATTACH_ENV, &format!("{IFACE_PREFIX}1:3"));
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/attach-retry/scenario.yaml");
    let scenario = Scenario::from_file(&path).expect("the scenario");
    let mut lab = Lab::start(&scenario, &LabOptions::default()).expect("starting the lab");
    let flaky = lab
        .pods()
        .iter()
        .find(|p| p.pod.name == "flaky" && p.index == 1)
        .map(|p| p.host_if())
        .expect("the flaky pod's plan");
    // Nothing but the agent's own retries can attach it now: no interface or route changes
    // until the lab finishes. Bounded well above the 100 + 200 ms the retries take.
    let started = Instant::now();
    let attached = loop {
        let statuses = lab.agent_statuses().expect("the status file");
        let attached = matches!(
            statuses.as_slice(),
            [(_, Some(status))] if status.interfaces.contains(&flaky)
        );
        if attached || started.elapsed() > Duration::from_secs(10) {
            break attached;
        }
        thread::sleep(Duration::from_millis(20));
    };
    eprintln!(
        "attach retry: {flaky} attached {} ms after the lab was up",
        started.elapsed().as_millis()
    );
    assert!(attached, "{flaky} was never attached");
    let failures = lab.run_steps(&scenario.steps).expect("running the steps");
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
    assert!(
        status.attach_failures.is_empty(),
        "{:?}",
        status.attach_failures
    );
    assert!(
        status.interfaces.contains(&flaky),
        "{:?}",
        status.interfaces
    );
    // The seam did fail it: three failures, each followed by a scan of its own.
    let failed = log
        .iter()
        .filter(|l| l.contains("could not attach the programs") && l.contains(&flaky))
        .count();
    let rescans = log
        .iter()
        .filter(|l| l.contains("interface scan: retrying"))
        .count();
    // Failures 1 and 2 at start-up (the first attachment, the first scan), 3 at the first
    // retry; the second retry attaches it.
    assert!(
        failed >= 1 && rescans >= 2,
        "{failed} failure lines for {flaky}, {rescans} retried scans:\n{}",
        log.join("\n")
    );
}
