//! The upstream Kubernetes NetworkPolicy e2e suite (generated from tests/src/conformance/)
//! through the lab with the real agent, over real connections.
//!
//! The lab runs examples/conformance-services/: each of the 45 TCP and UDP cases with
//! upstream's Service per pod (`kubemanager.go`), every reachability matrix probed twice in the
//! same step, to the server pod's address (exactly the probes of the same file in
//! examples/conformance/) and through the server's Service ClusterIP (as upstream's
//! `probe.go`). Each case runs in one kube-proxy mode, `conformance::service_runs`: chosen
//! so that iptables and nftables mode each run every kind of case, and the two cases that are
//! alone of their kind (a namespace relabelled, policies deleted) run in both;
//! `PALISADE_LAB_KUBE_PROXY` runs every file once in the mode it names instead. One lab per
//! run carries both variants: the ClusterIP probes add no lab of their own, and a step's
//! probes run concurrently.
//!
//! Every scenario runs as `cargo xtask run <file> --json` runs it (`target/debug/lab run <file>
//! --agent <policy-agent> --json`), a few at a time; the test fails listing every probe that
//! did not observe what upstream expects, per scenario. A second test checks the committed
//! scenarios (these, examples/conformance/ and the BPF-only ones in examples/conformance-sctp/,
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
    conformance::{self, SERVICE_SCENARIO_DIR},
    lab::{KubeProxyMode, Scenario, agent_binary},
    workspace_root,
};
use serde_json::Value;

/// Scenarios run at once: each is a lab with 10 namespaces and its own agent; 3 keep 2 cores
/// busy without starving the probes (a deny probe waits out its whole timeout anyway).
const CONCURRENCY: usize = 3;

/// Lines of the lab's stderr shown when it could not run a scenario.
const STDERR_TAIL: usize = 30;

/// The environment variable with which the lab overrides every scenario's kube-proxy mode.
const KUBE_PROXY_ENV: &str = "PALISADE_LAB_KUBE_PROXY";

fn scenario_dir() -> PathBuf {
    workspace_root().join(SERVICE_SCENARIO_DIR)
}

#[test]
fn committed_scenarios_are_what_the_generator_writes() -> anyhow::Result<()> {
    let differences = conformance::differences(&workspace_root())?;
    assert!(
        differences.is_empty(),
        "examples/conformance*/ are not what tests/src/conformance/ generates; run \
         `cargo run -p palisade-tests --bin gen-conformance`:\n  {}",
        differences.join("\n  ")
    );
    Ok(())
}

/// What one scenario run observed.
struct Outcome {
    file: String,
    /// The kube-proxy mode the lab ran (the file's, or the environment's override).
    mode: Option<KubeProxyMode>,
    expected_probes: usize,
    probes: usize,
    /// Of `probes`, those to a Service (`to: service/...`).
    service_probes: usize,
    mismatches: Vec<String>,
    /// Of `mismatches`, those of probes to a Service.
    service_mismatches: usize,
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

/// Runs `path` in the lab, in kube-proxy mode `mode` when given (else the file's, or the
/// environment's override).
fn run_scenario(lab: &Path, agent: &Path, path: &Path, mode: Option<KubeProxyMode>) -> Outcome {
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
            outcome.mismatches.push(describe_line(&value));
            outcome.service_mismatches += usize::from(to_service);
        }
    }
    let code = output.status.code();
    let consistent = match code {
        Some(0) => outcome.mismatches.is_empty(),
        Some(1) => !outcome.mismatches.is_empty(),
        _ => false,
    };
    if !consistent || outcome.probes != outcome.expected_probes {
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
fn conformance_scenarios_are_enforced() -> anyhow::Result<()> {
    let Some(_turn) = crate::lab_turn("conformance_scenarios_are_enforced") else {
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
    let dir = scenario_dir();
    let files = conformance::scenario_files(&dir)?;
    anyhow::ensure!(!files.is_empty(), "no scenarios in {}", dir.display());
    // Each file in the modes `conformance::service_runs` gives it, unless the environment
    // forces one mode for every file.
    let runs: Vec<(PathBuf, Option<KubeProxyMode>)> = match std::env::var(KUBE_PROXY_ENV) {
        Ok(mode) => {
            let mode = mode
                .parse::<KubeProxyMode>()
                .map_err(|e| anyhow::anyhow!("{KUBE_PROXY_ENV}: {e}"))?;
            files.iter().map(|f| (f.clone(), Some(mode))).collect()
        }
        Err(_) => conformance::service_runs()
            .into_iter()
            .map(|(name, mode)| (dir.join(name), Some(mode)))
            .collect(),
    };
    for file in &files {
        anyhow::ensure!(
            runs.iter().any(|(path, _)| path == file),
            "{} is not run: regenerate with `cargo run -p palisade-tests --bin gen-conformance`",
            file.display()
        );
    }

    let start = Instant::now();
    let next = AtomicUsize::new(0);
    let outcomes: Mutex<Vec<Outcome>> = Mutex::new(Vec::new());
    thread::scope(|scope| {
        for _ in 0..CONCURRENCY.min(runs.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((path, mode)) = runs.get(i) else {
                        break;
                    };
                    let outcome = run_scenario(&lab, &agent, path, *mode);
                    eprintln!(
                        "{:>8}  {:>4} probes ({:>4} via Service, kube-proxy {})  {:>5.1} s  {}",
                        if outcome.failed() { "FAILED" } else { "ok" },
                        outcome.probes,
                        outcome.service_probes,
                        outcome.mode.map_or("?".to_owned(), |m| m.to_string()),
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
    outcomes.sort_by_key(|o| (o.file.clone(), o.mode.map(|m| m.to_string())));
    anyhow::ensure!(
        outcomes.len() == runs.len(),
        "{} of {} runs reported",
        outcomes.len(),
        runs.len()
    );

    let probes: usize = outcomes.iter().map(|o| o.probes).sum();
    let mismatched: usize = outcomes.iter().map(|o| o.mismatches.len()).sum();
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.failed()).collect();
    for mode in [KubeProxyMode::Iptables, KubeProxyMode::Nftables] {
        let in_mode: Vec<&Outcome> = outcomes.iter().filter(|o| o.mode == Some(mode)).collect();
        let service_probes: usize = in_mode.iter().map(|o| o.service_probes).sum();
        let pod_probes = in_mode.iter().map(|o| o.probes).sum::<usize>() - service_probes;
        let service_mismatches: usize = in_mode.iter().map(|o| o.service_mismatches).sum();
        let pod_mismatches =
            in_mode.iter().map(|o| o.mismatches.len()).sum::<usize>() - service_mismatches;
        eprintln!(
            "kube-proxy {mode}: {} runs, {pod_probes} probes to pod addresses \
             ({pod_mismatches} mismatches), {service_probes} through ClusterIPs \
             ({service_mismatches} mismatches)",
            in_mode.len()
        );
    }
    eprintln!(
        "\nconformance: {} runs of {} scenarios, {probes} probes, {mismatched} mismatches, {} runs \
         failed, {:.1} s wall time",
        outcomes.len(),
        files.len(),
        failed.len(),
        wall.as_secs_f64()
    );
    let mut report = String::new();
    for outcome in &failed {
        report.push_str(&format!(
            "\n{}, kube-proxy {} ({} mismatching probes, {} of them through a Service; \
             `target/debug/lab run {}/{} --kube-proxy {}` shows the tables and the agent's \
             errors):\n",
            outcome.file,
            outcome.mode.map_or("?".to_owned(), |m| m.to_string()),
            outcome.mismatches.len(),
            outcome.service_mismatches,
            SERVICE_SCENARIO_DIR,
            outcome.file,
            outcome.mode.map_or("?".to_owned(), |m| m.to_string()),
        ));
        if let Some(error) = &outcome.error {
            report.push_str(&format!("  error: {error}\n"));
        }
        for mismatch in &outcome.mismatches {
            report.push_str(&format!("  {mismatch}\n"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} conformance runs failed ({mismatched} mismatching probes of {probes}):{report}",
        failed.len(),
        outcomes.len()
    );
    Ok(())
}
