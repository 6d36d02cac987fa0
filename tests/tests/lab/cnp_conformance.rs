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
//! which `tests/conformance_bpf.rs` replays) are exactly what the Rust description generates.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use palisade_tests::{
    cnp_conformance::{self, SCENARIO_DIR},
    conformance::scenario_files,
    lab::{Scenario, agent_binary},
    workspace_root,
};
use serde_json::Value;

/// Scenarios run at once: four labs of 8 pods, each mostly waiting out deny probes' timeouts
/// (a step's probes run concurrently); running them all at once keeps the wall time to the
/// longest one's.
const CONCURRENCY: usize = 4;

/// Lines of the lab's stderr shown when it could not run a scenario.
const STDERR_TAIL: usize = 30;

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

/// What one scenario run observed.
struct Outcome {
    file: String,
    expected_probes: usize,
    probes: usize,
    mismatches: Vec<String>,
    /// The lab could not run the scenario, or its output was incomplete.
    error: Option<String>,
    elapsed: Duration,
}

impl Outcome {
    fn failed(&self) -> bool {
        self.error.is_some() || !self.mismatches.is_empty()
    }
}

fn describe_line(line: &Value) -> String {
    let text = |key: &str| line[key].as_str().unwrap_or("?").to_owned();
    let step = line["step"].as_u64().unwrap_or(0);
    if line.get("expectError").is_some() {
        return format!(
            "step {step} ({}): no agent error contains {:?}",
            text("name"),
            text("expectError")
        );
    }
    format!(
        "step {step} ({}): {} -> {}:{}/{} expected {} observed {} ({})",
        text("name"),
        text("from"),
        text("to"),
        line["port"].as_u64().unwrap_or(0),
        text("protocol"),
        text("expect"),
        text("observed"),
        text("detail"),
    )
}

fn run_scenario(lab: &Path, agent: &Path, path: &Path) -> Outcome {
    let start = Instant::now();
    let mut outcome = Outcome {
        file: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        expected_probes: 0,
        probes: 0,
        mismatches: Vec::new(),
        error: None,
        elapsed: Duration::ZERO,
    };
    match Scenario::from_file(path) {
        Ok(scenario) => {
            outcome.expected_probes = scenario.steps.iter().map(|s| s.probes.len()).sum();
        }
        Err(e) => {
            outcome.error = Some(format!("{:#}", anyhow::Error::from(e)));
            return outcome;
        }
    }
    // Exactly what `cargo xtask run <file> --json` runs.
    let output = Command::new(lab)
        .arg("run")
        .arg(path)
        .arg("--agent")
        .arg(agent)
        .arg("--json")
        .output();
    outcome.elapsed = start.elapsed();
    let output = match output {
        Ok(output) => output,
        Err(e) => {
            outcome.error = Some(format!("running {}: {e}", lab.display()));
            return outcome;
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    // Lines the lab itself reports as not matching (its exit status says whether any did).
    let mut lab_failures = 0usize;
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let value: Value = match serde_json::from_str(line) {
            Ok(value) => value,
            Err(e) => {
                outcome.error = Some(format!("unreadable output line {line:?}: {e}"));
                continue;
            }
        };
        if value.get("from").is_some() {
            outcome.probes += 1;
        }
        if value["ok"] != Value::Bool(true) {
            lab_failures += 1;
            outcome.mismatches.push(describe_line(&value));
        } else if value["expect"] == "deny" && value["detail"] != "timeout" {
            // Upstream's doPokeServer requires a denied connection to time out: a refusal
            // (or a reset) fails a shouldConnect=false poke, so it is a mismatch here too.
            outcome.mismatches.push(format!(
                "{}; upstream requires TIMEOUT",
                describe_line(&value)
            ));
        }
    }
    let consistent = match output.status.code() {
        Some(0) => lab_failures == 0,
        Some(1) => lab_failures > 0,
        _ => false,
    };
    // The lab's stderr carries the agent's errors (a policy it rejected): shown whenever the
    // run is not clean, since a rejected policy explains mismatching probes.
    if !consistent || outcome.probes != outcome.expected_probes || !outcome.mismatches.is_empty() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        let tail = lines[lines.len().saturating_sub(STDERR_TAIL)..].join("\n    ");
        let problem = format!(
            "lab exited with {} after reporting {} of {} probes; stderr:\n    {tail}",
            output.status, outcome.probes, outcome.expected_probes
        );
        outcome.error = Some(match outcome.error.take() {
            Some(earlier) => format!("{earlier}; {problem}"),
            None => problem,
        });
    }
    outcome
}

#[test]
fn cnp_conformance_scenarios_are_enforced() -> anyhow::Result<()> {
    let Some(_turn) = crate::lab_turn("cnp_conformance_scenarios_are_enforced") else {
        return Ok(());
    };
    let lab = workspace_root().join("target/debug/lab");
    anyhow::ensure!(
        lab.is_file(),
        "{} is missing: build it with `cargo build -p policy-agent -p palisade-tests --bins` (or \
         `cargo xtask test`)",
        lab.display()
    );
    let agent = agent_binary()?;
    let dir = workspace_root().join(SCENARIO_DIR);
    let files: Vec<PathBuf> = scenario_files(&dir)?;
    anyhow::ensure!(!files.is_empty(), "no scenarios in {}", dir.display());

    let start = Instant::now();
    let next = AtomicUsize::new(0);
    let outcomes: Mutex<Vec<Outcome>> = Mutex::new(Vec::new());
    thread::scope(|scope| {
        for _ in 0..CONCURRENCY.min(files.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = files.get(i) else {
                        break;
                    };
                    let outcome = run_scenario(&lab, &agent, path);
                    eprintln!(
                        "{:>8}  {:>4} probes  {:>5.1} s  {}",
                        if outcome.failed() { "FAILED" } else { "ok" },
                        outcome.probes,
                        outcome.elapsed.as_secs_f64(),
                        outcome.file
                    );
                    if let Ok(mut all) = outcomes.lock() {
                        all.push(outcome);
                    }
                }
            });
        }
    });
    let wall = start.elapsed();
    let mut outcomes = outcomes
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a scenario thread panicked"))?;
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
