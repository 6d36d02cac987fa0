//! The kubernetes-sigs/network-policy-api conformance suite (ClusterNetworkPolicy v1alpha2 and
//! AdminNetworkPolicy/BaselineAdminNetworkPolicy v1alpha1; generated from
//! tests/src/cnp_conformance/) through the lab with the real agent, over real connections.
//!
//! Each scenario of examples/cnp-conformance/ (one per version and tier: every subtest of its
//! tests as consecutive steps, so one agent start per group) runs as `cargo xtask run <file>
//! --json` runs it (`target/debug/lab run <file> --agent <policy-agent> --json`), all at once;
//! the test fails listing every probe that did not observe what upstream expects, by scenario,
//! step and probe (a denied probe must time out, as upstream's `doPokeServer` requires: a
//! refused connection is a mismatch), with the end of the lab's log. A second test checks the
//! committed scenarios (these and the BPF-only SCTP ones in examples/cnp-conformance-sctp/,
//! which `tests/kernel/conformance_bpf.rs` replays) are exactly what the Rust description generates.

use std::path::PathBuf;

use palisade_tests::{
    cnp_conformance::{self, SCENARIO_DIR},
    conformance::{
        runner::{self, Outcome, Strictness},
        scenario_files,
    },
    lab::{KubeProxyMode, agent_binary},
    workspace_root,
};

/// Scenarios run at once: four labs of 8 pods, each mostly waiting out deny probes' timeouts
/// (a step's probes run concurrently); running them all at once keeps the wall time to the
/// longest one's.
const CONCURRENCY: usize = 4;

#[test]
fn committed_cnp_scenarios_are_what_the_generator_writes() -> anyhow::Result<()> {
    let differences = cnp_conformance::differences(&workspace_root())?;
    assert!(
        differences.is_empty(),
        "examples/cnp-conformance*/ are not what tests/src/cnp_conformance/ generates; run \
         `cargo run -p palisade-tests --bin gen-cnp-conformance`:\n  {}",
        differences.join("\n  ")
    );
    Ok(())
}

#[test]
fn cnp_conformance_scenarios_are_enforced() -> anyhow::Result<()> {
    let Some(_turn) = crate::lab_turn("cnp_conformance_scenarios_are_enforced") else {
        return Ok(());
    };
    let lab = runner::lab_binary()?;
    let agent = agent_binary()?;
    let dir = workspace_root().join(SCENARIO_DIR);
    let files: Vec<PathBuf> = scenario_files(&dir)?;
    anyhow::ensure!(!files.is_empty(), "no scenarios in {}", dir.display());

    let runs: Vec<(PathBuf, Option<KubeProxyMode>)> =
        files.iter().map(|f| (f.clone(), None)).collect();
    let (mut outcomes, wall) = runner::run_all(
        &lab,
        &agent,
        &runs,
        CONCURRENCY,
        Strictness {
            deny_must_time_out: true,
            stderr_on_mismatch: true,
        },
        |outcome| {
            eprintln!(
                "{:>8}  {:>4} probes  {:>5.1} s  {}",
                if outcome.failed() { "FAILED" } else { "ok" },
                outcome.probes,
                outcome.elapsed.as_secs_f64(),
                outcome.file
            );
        },
    )?;
    outcomes.sort_by(|a, b| a.file.cmp(&b.file));
    anyhow::ensure!(
        outcomes.len() == files.len(),
        "{} of {} scenarios reported",
        outcomes.len(),
        files.len()
    );

    let probes: usize = outcomes.iter().map(|o| o.probes).sum();
    let mismatched: usize = outcomes.iter().map(|o| o.mismatches.len()).sum();
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.failed()).collect();
    eprintln!(
        "\nnetwork-policy-api conformance: {} scenarios, {probes} probes, {mismatched} \
         mismatches, {} scenarios failed, {:.1} s wall time",
        outcomes.len(),
        failed.len(),
        wall.as_secs_f64()
    );
    let mut report = String::new();
    for outcome in &failed {
        report.push_str(&format!(
            "\n{} ({} mismatching probes; `target/debug/lab run {SCENARIO_DIR}/{}` shows the \
             tables and the agent's errors):\n",
            outcome.file,
            outcome.mismatches.len(),
            outcome.file,
        ));
        for mismatch in &outcome.mismatches {
            report.push_str(&format!("  {mismatch}\n"));
        }
        if let Some(error) = &outcome.error {
            report.push_str(&format!("  {error}\n"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} network-policy-api conformance scenarios failed ({mismatched} mismatching \
         probes of {probes}):{report}",
        failed.len(),
        outcomes.len()
    );
    Ok(())
}
