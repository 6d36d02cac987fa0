//! Running generated conformance scenarios through the lab binary, a few at a time, exactly as
//! `cargo xtask run <file> --json` runs them (`target/debug/lab run <file> --agent <agent>
//! --json`), and reading back what every probe observed. Shared by the lab tests of the
//! Kubernetes suite (`tests/lab/conformance.rs`) and of network-policy-api's
//! (`tests/lab/cnp_conformance.rs`).

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

use serde_json::Value;

use crate::{
    lab::{KubeProxyMode, Scenario},
    workspace_root,
};

/// Lines of the lab's stderr shown when it could not run a scenario.
const STDERR_TAIL: usize = 30;

/// What one scenario run observed.
pub struct Outcome {
    pub file: String,
    /// The kube-proxy mode the lab ran (the one asked for, else the file's; the lab's
    /// environment override, `PALISADE_LAB_KUBE_PROXY`, is the caller's business).
    pub mode: Option<KubeProxyMode>,
    pub expected_probes: usize,
    pub probes: usize,
    /// Of `probes`, those to a Service (`to: service/...`).
    pub service_probes: usize,
    pub mismatches: Vec<String>,
    /// Of `mismatches`, those of probes to a Service.
    pub service_mismatches: usize,
    /// The lab could not run the scenario, or its output was incomplete.
    pub error: Option<String>,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn failed(&self) -> bool {
        self.error.is_some() || !self.mismatches.is_empty()
    }
}

/// How strictly a suite reads the lab's lines.
#[derive(Debug, Clone, Copy, Default)]
pub struct Strictness {
    /// A denied probe must time out (network-policy-api's `doPokeServer`: a refusal or a reset
    /// fails a `shouldConnect=false` poke), so one the lab counts as matching is a mismatch
    /// here unless its detail is `timeout`.
    pub deny_must_time_out: bool,
    /// Show the end of the lab's stderr (the agent's errors, such as a rejected policy) for
    /// any mismatch, not only when the run itself went wrong.
    pub stderr_on_mismatch: bool,
}

/// One line of the lab's `--json` output, for a failure report.
pub fn describe_line(line: &Value) -> String {
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

/// The lab binary, `target/debug/lab`, or an error saying how to build it.
pub fn lab_binary() -> anyhow::Result<PathBuf> {
    let lab = workspace_root().join("target/debug/lab");
    anyhow::ensure!(
        lab.is_file(),
        "{} is missing: build it with `cargo build -p policy-agent -p palisade-tests --bins` (or \
         `cargo xtask test`)",
        lab.display()
    );
    Ok(lab)
}

/// Runs `path` in the lab, in kube-proxy mode `mode` when given (else the file's, or the
/// environment's override).
pub fn run_scenario(
    lab: &Path,
    agent: &Path,
    path: &Path,
    mode: Option<KubeProxyMode>,
    strictness: Strictness,
) -> Outcome {
    let start = Instant::now();
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut outcome = Outcome {
        file,
        mode,
        expected_probes: 0,
        probes: 0,
        service_probes: 0,
        mismatches: Vec::new(),
        service_mismatches: 0,
        error: None,
        elapsed: Duration::ZERO,
    };
    match Scenario::from_file(path) {
        Ok(scenario) => {
            outcome.expected_probes = scenario.steps.iter().map(|s| s.probes.len()).sum();
            outcome.mode = outcome.mode.or(Some(scenario.kube_proxy));
        }
        Err(e) => {
            outcome.error = Some(format!("{:#}", anyhow::Error::from(e)));
            return outcome;
        }
    }
    // Exactly what `cargo xtask run <file> --json [--kube-proxy MODE]` runs.
    let mut command = Command::new(lab);
    command
        .arg("run")
        .arg(path)
        .arg("--agent")
        .arg(agent)
        .arg("--json");
    if let Some(mode) = mode {
        command.arg("--kube-proxy").arg(mode.to_string());
    }
    let output = command.output();
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
        let to_service = value["to"]
            .as_str()
            .is_some_and(|to| to.starts_with("service/"));
        if value.get("from").is_some() {
            outcome.probes += 1;
            outcome.service_probes += usize::from(to_service);
        }
        if value["ok"] != Value::Bool(true) {
            lab_failures += 1;
            outcome.mismatches.push(describe_line(&value));
            outcome.service_mismatches += usize::from(to_service);
        } else if strictness.deny_must_time_out
            && value["expect"] == "deny"
            && value["detail"] != "timeout"
        {
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
    if !consistent
        || outcome.probes != outcome.expected_probes
        || (strictness.stderr_on_mismatch && !outcome.mismatches.is_empty())
    {
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

/// Runs every `(file, mode)` of `runs`, `concurrency` at a time, calling `progress` as each
/// finishes; the outcomes come back in completion order, with the wall time of the whole.
pub fn run_all(
    lab: &Path,
    agent: &Path,
    runs: &[(PathBuf, Option<KubeProxyMode>)],
    concurrency: usize,
    strictness: Strictness,
    progress: impl Fn(&Outcome) + Sync,
) -> anyhow::Result<(Vec<Outcome>, Duration)> {
    let start = Instant::now();
    let next = AtomicUsize::new(0);
    let outcomes: Mutex<Vec<Outcome>> = Mutex::new(Vec::new());
    thread::scope(|scope| {
        for _ in 0..concurrency.min(runs.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((path, mode)) = runs.get(i) else {
                        break;
                    };
                    let outcome = run_scenario(lab, agent, path, *mode, strictness);
                    progress(&outcome);
                    if let Ok(mut all) = outcomes.lock() {
                        all.push(outcome);
                    }
                }
            });
        }
    });
    let wall = start.elapsed();
    let outcomes = outcomes
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a scenario thread panicked"))?;
    Ok((outcomes, wall))
}
