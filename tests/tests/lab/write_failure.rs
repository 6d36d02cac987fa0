//! A kernel map write that fails (issue 18), through the agent's test-only seam
//! `PALISADE_TEST_FAIL_WRITES`: the sync that hits it is refused after writing part of its
//! delta, the old policy holds for every packet meanwhile, the agent retries on its own with
//! backoff (no datastore event), and the change then goes in whole.
//! `examples/write-failure/scenario.yaml`. Privileged: needs root (a failure under CI=true).

use std::{
    path::Path,
    time::{Duration, Instant},
};

use palisade_tests::lab::{Lab, LabOptions, Scenario};
use policy_agent::dataplane::fault::FAIL_WRITES_ENV;

use crate::AgentSeam;

/// Retries at about 1, 3 and 7 s after the change (±20%): the last one succeeds.
const CONVERGENCE_DEADLINE: Duration = Duration::from_secs(20);

#[test]
fn a_failed_map_write_is_retried_and_the_old_policy_holds_meanwhile() {
    let Some(_turn) =
        crate::lab_turn("a_failed_map_write_is_retried_and_the_old_policy_holds_meanwhile")
    else {
        return;
    };
    let _seam = AgentSeam::set(FAIL_WRITES_ENV, "2:1:3");
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/write-failure/scenario.yaml");
    let scenario = Scenario::from_file(&path).expect("the scenario");
    let mut lab = Lab::start(&scenario, &LabOptions::default()).expect("starting the lab");
    let mut failures = Vec::new();
    let mut changed_at = Instant::now();
    for (i, step) in scenario.steps.iter().enumerate() {
        if i == 1 {
            changed_at = Instant::now();
        }
        if i == 2 {
            // Until a sync after the three failures programmed the change.
            loop {
                let log = lab.agent_log_tail();
                let failed = log.iter().filter(|l| l.contains("sync failed")).count();
                let last_failure = log.iter().rposition(|l| l.contains("sync failed"));
                let programmed_after = last_failure
                    .is_some_and(|at| log[at..].iter().any(|l| l.contains("programmed")));
                if failed >= 3 && programmed_after {
                    break;
                }
                assert!(
                    changed_at.elapsed() < CONVERGENCE_DEADLINE,
                    "not converged within {CONVERGENCE_DEADLINE:?}:\n{}",
                    log.join("\n")
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            eprintln!("converged {:?} after the change", changed_at.elapsed());
        }
        let report = lab.run_step(i + 1, step).expect("running a step");
        eprintln!("{}", report.render_table());
        if !report.all_ok() {
            failures.push(format!("step {}", i + 1));
        }
    }
    let log = lab.agent_log_tail().join("\n");
    lab.finish().expect("finishing the lab");
    assert!(failures.is_empty(), "failed: {failures:?}\n{log}");
    let failed = log.matches("sync failed").count();
    assert_eq!(failed, 3, "three failed attempts, then success:\n{log}");
}
