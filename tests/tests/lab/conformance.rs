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
//! which `tests/kernel/conformance_bpf.rs` replays) are exactly what the Rust description generates.

use std::path::PathBuf;

use palisade_tests::{
    conformance::{
        self, SERVICE_SCENARIO_DIR,
        runner::{self, Outcome, Strictness},
    },
    lab::{KubeProxyMode, agent_binary},
    workspace_root,
};

/// Scenarios run at once: each is a lab with 10 namespaces and its own agent; 3 keep 2 cores
/// busy without starving the probes (a deny probe waits out its whole timeout anyway).
const CONCURRENCY: usize = 3;

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

#[test]
fn conformance_scenarios_are_enforced() -> anyhow::Result<()> {
    let Some(_turn) = crate::lab_turn("conformance_scenarios_are_enforced") else {
        return Ok(());
    };
    let lab = runner::lab_binary()?;
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

    let (mut outcomes, wall) = runner::run_all(
        &lab,
        &agent,
        &runs,
        CONCURRENCY,
        Strictness::default(),
        |outcome| {
            eprintln!(
                "{:>8}  {:>4} probes ({:>4} via Service, kube-proxy {})  {:>5.1} s  {}",
                if outcome.failed() { "FAILED" } else { "ok" },
                outcome.probes,
                outcome.service_probes,
                outcome.mode.map_or("?".to_owned(), |m| m.to_string()),
                outcome.elapsed.as_secs_f64(),
                outcome.file
            );
        },
    )?;
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
