//! `cargo xtask bench`: the whole benchmark suite in one command. Runs the kernel decision
//! bench, the real-traffic comparison, the same traffic through a Service, the control-plane measurements and the compile bench,
//! prints the tables, and writes `docs/benchmarks.md` with PNG plots in `docs/plots/`
//! (`--quick`: a CI smoke run that writes to `target/bench-quick/` instead and checks that
//! every part produced figures, never what they are).

mod collect;
mod plot;
mod report;
mod stats;
mod tables;

use std::{path::Path, time::Instant};

use anyhow::{Context as _, Result};

use crate::{
    prereqs,
    process::{self, cargo},
};

/// Runs the suite (or, with `from`, reads a saved run) and writes the report.
pub fn run(root: &Path, quick: bool, from: Option<&Path>) -> Result<()> {
    let results = match from {
        Some(path) => collect::Results::load(path)?,
        None => measure(root, quick)?,
    };
    tables::check_complete(&results).context("the bench suite is incomplete")?;

    let out_dir = if quick {
        root.join("target/bench-quick")
    } else {
        root.join("docs")
    };
    let plots_dir = out_dir.join("plots");
    std::fs::create_dir_all(&plots_dir)
        .with_context(|| format!("creating {}", plots_dir.display()))?;
    // The raw figures beside the plots: `--from` re-renders them, and they say more than
    // the tables (every sample).
    if from.is_none() {
        results.save(&plots_dir.join("results.jsonl"))?;
    }
    let plots = report::plots(&results, &plots_dir)?;
    let doc = report::markdown(&results, quick, &plots);
    let doc_path = out_dir.join("benchmarks.md");
    std::fs::write(&doc_path, &doc).with_context(|| format!("writing {}", doc_path.display()))?;
    println!("{}", report::console(&results));
    eprintln!(
        "==> {} and {} plots in {}",
        doc_path.display(),
        plots.len(),
        plots_dir.display()
    );
    Ok(())
}

fn measure(root: &Path, quick: bool) -> Result<collect::Results> {
    let started = Instant::now();
    prereqs::ensure(prereqs::Needs::Everything)?;
    prereqs::ensure_bench(Path::new(plot::FONT))?;
    // Release builds: the agent's compile and sync times, and the load generator's own cost,
    // should be those of what would be deployed. The smoke run uses the debug binaries CI has.
    let mut build = cargo(root);
    build.arg("build");
    if !quick {
        build.arg("--release");
    }
    build.args([
        "--package",
        "policy-agent",
        "--package",
        "palisade-tests",
        "--bins",
    ]);
    process::run(build)?;

    let mut results = collect::Results::default();
    results.lines.extend(collect::decision(root, quick)?);
    results
        .lines
        .extend(collect::decision_cluster(root, quick)?);
    results.lines.extend(collect::step_costs(root, quick)?);
    results.lines.extend(collect::flow_records(root, quick)?);
    results
        .lines
        .extend(collect::netbench(root, "traffic", quick)?);
    results
        .lines
        .extend(collect::netbench(root, "services", quick)?);
    results
        .lines
        .extend(collect::netbench(root, "control", quick)?);
    if !quick {
        results
            .lines
            .push(collect::compile_report(root, "compile")?);
        results.lines.push(collect::compile_report(root, "calico")?);
    }
    results
        .lines
        .push(report::run_line(root, quick, started.elapsed()));
    eprintln!("==> bench ran in {:.0} s", started.elapsed().as_secs_f64());
    Ok(results)
}
