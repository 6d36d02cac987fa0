//! `cargo xtask bench`: the whole benchmark suite in one command. Runs the kernel decision
//! bench, the real-traffic comparison, the control-plane measurements and the compile bench,
//! prints the tables, and writes `docs/benchmarks.md` with PNG plots in `docs/plots/`
//! (`--quick`: a CI smoke run that writes to `target/bench-quick/` instead and checks that
//! every part produced figures, never what they are).

mod collect;
mod plot;
mod report;
mod stats;
mod tables;

pub use plot::FONT;

use std::{path::Path, time::Instant};

use anyhow::{Context as _, Result};

use crate::{
    prereqs,
    process::{self, cargo},
};

pub fn run(root: &Path, quick: bool) -> Result<()> {
    let started = Instant::now();
    prereqs::ensure(prereqs::Needs::Everything)?;
    prereqs::ensure_bench()?;
    // Release builds: the agent's compile and sync times, and the load generator's own cost,
    // should be those of what would be deployed.
    let mut build = cargo(root);
    build.args([
        "build",
        "--release",
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
        .extend(collect::netbench(root, "traffic", quick)?);
    results
        .lines
        .extend(collect::netbench(root, "control", quick)?);
    if !quick {
        results.compile_report = Some(collect::compile_report(root)?);
    }
    tables::check_complete(&results).context("the bench suite is incomplete")?;

    let out_dir = if quick {
        root.join("target/bench-quick")
    } else {
        root.join("docs")
    };
    let plots_dir = out_dir.join("plots");
    std::fs::create_dir_all(&plots_dir)
        .with_context(|| format!("creating {}", plots_dir.display()))?;
    let plots = report::plots(&results, &plots_dir)?;
    let doc = report::markdown(root, &results, quick, &plots, started.elapsed())?;
    let doc_path = out_dir.join("benchmarks.md");
    std::fs::write(&doc_path, &doc).with_context(|| format!("writing {}", doc_path.display()))?;
    println!("{}", report::console(&results));
    eprintln!(
        "==> bench done in {:.0} s: {} and {} plots in {}",
        started.elapsed().as_secs_f64(),
        doc_path.display(),
        plots.len(),
        plots_dir.display()
    );
    Ok(())
}
