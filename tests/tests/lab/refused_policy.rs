//! A policy that does not fit the maps is refused whole, on real traffic (issue 18): the
//! previous policy stays enforced, the refusal is reported (status file, `expectErrors`), the
//! agent retries it with backoff, and an interface appearing meanwhile (as a CNI adds a pod)
//! binds nothing from the refused compile. `examples/refused/scenario.yaml`, with the
//! interface added by this test between steps 2 and 3.
//! Privileged: needs root (a failure under CI=true).

use std::{path::Path, time::Duration};

use palisade_tests::lab::{Lab, LabOptions, Scenario, netns, topology};

#[test]
fn a_refused_policy_is_never_half_enforced() {
    let Some(_turn) = crate::lab_turn("a_refused_policy_is_never_half_enforced") else {
        return;
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/refused/scenario.yaml");
    let scenario = Scenario::from_file(&path).expect("the scenario");
    let mut lab = Lab::start(&scenario, &LabOptions::default()).expect("starting the lab");
    let mut failures = Vec::new();
    let mut applied_at = Vec::new();
    for (i, step) in scenario.steps.iter().enumerate() {
        if i == 2 {
            applied_at.push(applied_at_while_refused(&lab));
            // A CNI adds a pod: a veth and a host route in the node. The agent rescans on the
            // link event; before issue 18 it bound endpoints from the refused compile here.
            let node = topology::node_netns(lab.id());
            netns::ip_in(
                &node,
                &[
                    "link", "add", "palrf0", "type", "veth", "peer", "name", "palrf1",
                ],
            )
            .expect("a veth in the node namespace");
            netns::ip_in(&node, &["link", "set", "palrf0", "up"]).expect("up");
            netns::ip_in(&node, &["route", "add", "10.44.0.99/32", "dev", "palrf0"])
                .expect("a host route");
            // Bounded: the agent takes the link event after a 20 ms debounce; retries of the
            // refused sync (1 s, then about 2 s) happen meanwhile.
            std::thread::sleep(Duration::from_secs(4));
            applied_at.push(applied_at_while_refused(&lab));
        }
        let report = lab.run_step(i + 1, step).expect("running a step");
        eprintln!("{}", report.render_table());
        if !report.all_ok() {
            failures.push(format!("step {}", i + 1));
        }
    }
    let log = lab.agent_log_tail().join("\n");
    let report = lab.finish().expect("finishing the lab");
    assert!(failures.is_empty(), "failed: {failures:?}\n{log}");
    assert!(
        !log.contains("endpoints bound to their interfaces"),
        "nothing was bound from the refused compile:\n{log}"
    );
    // Retried on its own, with no datastore event: at least the 1 s and the 2 s retries.
    assert!(
        log.matches("sync failed").count() >= 3,
        "the refused sync is retried with backoff:\n{log}"
    );
    drop(report);
    // The status file dates the state the kernel still holds, not the refused retries.
    assert!(
        applied_at[0] > 0 && applied_at[0] == applied_at[1],
        "applied_at_unix_ms moved while the change stayed refused: {applied_at:?}"
    );
}

/// The status file's `applied_at_unix_ms`, checking that a refusal is in force.
fn applied_at_while_refused(lab: &Lab) -> u64 {
    let statuses = lab.agent_statuses().expect("the status file");
    let [(_, Some(status))] = statuses.as_slice() else {
        panic!("one node with a status file: {statuses:?}");
    };
    assert!(
        status.refused.is_some(),
        "step 2's change is refused: {status:?}"
    );
    status.applied_at_unix_ms
}
