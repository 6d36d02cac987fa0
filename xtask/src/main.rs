//! `cargo xtask`: the project's two front doors (`run`, `test`), the benchmark suite (`bench`)
//! and the chores behind them.
//!
//! Every command first makes sure the machine can build and load eBPF (see `prereqs`), so a
//! fresh Debian/Ubuntu machine needs no set-up beyond Rust itself.

mod bench;
mod prereqs;
mod process;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::process::{cargo, workspace_root};

#[derive(Parser)]
#[command(about = "Palisade's build, lab and test driver")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the agent and the eBPF object, then run a scenario in the netns lab.
    Run {
        /// Scenario file (default: examples/seed/scenario.yaml).
        scenario: Option<PathBuf>,
        /// One JSON object per probe per line instead of tables.
        #[arg(long)]
        json: bool,
        /// Keep the lab up after the last step until Enter, to inspect it with bpftool.
        #[arg(long)]
        hold: bool,
    },
    /// Run every test, privileged ones included.
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The lint checks CI runs: rustfmt, clippy on the host crates, clippy on the eBPF crate.
    Lint,
    /// Install what is missing (bpf-linker, rust-src, bpftool, bpffs) and stop.
    Setup,
    /// The benchmark suite: prints its tables, writes docs/benchmarks.md and docs/plots/.
    Bench {
        /// CI smoke run (about a minute): few sizes, short runs, output in target/bench-quick/;
        /// fails unless every part produced figures.
        #[arg(long)]
        quick: bool,
        /// Re-render the report from a saved run (`docs/plots/results.jsonl`) instead of
        /// measuring.
        #[arg(long)]
        from: Option<PathBuf>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root()?;
    match cli.command {
        Command::Setup => prereqs::ensure(prereqs::Needs::Everything),
        Command::Run {
            scenario,
            json,
            hold,
        } => {
            prereqs::ensure(prereqs::Needs::Everything)?;
            build_binaries(&root)?;
            let scenario = scenario.unwrap_or_else(|| root.join("examples/seed/scenario.yaml"));
            let mut lab = std::process::Command::new(root.join("target/debug/lab"));
            lab.arg("run")
                .arg(&scenario)
                .arg("--agent")
                .arg(root.join("target/debug/policy-agent"));
            if json {
                lab.arg("--json");
            }
            if hold {
                lab.arg("--hold");
            }
            process::run_exit_status(lab)
        }
        Command::Test { args } => {
            prereqs::ensure(prereqs::Needs::Everything)?;
            build_binaries(&root)?;
            let mut test = cargo(&root);
            test.args(["test", "--workspace", "--exclude", "policy-ebpf"])
                .args(&args)
                .env("PALISADE_AGENT_BIN", root.join("target/debug/policy-agent"));
            process::run(test)
        }
        Command::Bench { quick, from } => bench::run(&root, quick, from.as_deref()),
        Command::Lint => {
            prereqs::ensure(prereqs::Needs::Build)?;
            lint(&root)
        }
    }
}

/// The agent (whose build script builds and embeds the eBPF object) and the lab.
fn build_binaries(root: &std::path::Path) -> Result<()> {
    let mut build = cargo(root);
    build.args([
        "build",
        "--package",
        "policy-agent",
        "--package",
        "palisade-tests",
        "--bins",
    ]);
    process::run(build)
}

fn lint(root: &std::path::Path) -> Result<()> {
    let mut fmt = cargo(root);
    fmt.args(["fmt", "--all", "--", "--check"]);
    process::run(fmt)?;

    // Two clippy passes (as aya does): the host crates, then the eBPF crate for its own
    // target. One pass over both would unify policy-common's features and pull std into
    // the eBPF build.
    let mut host = cargo(root);
    host.args([
        "clippy",
        "--workspace",
        "--exclude",
        "policy-ebpf",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    process::run(host)?;

    let mut ebpf = std::process::Command::new("rustup");
    ebpf.current_dir(root.join("policy-ebpf")).args([
        "run",
        "nightly",
        "cargo",
        "clippy",
        "--package",
        "policy-ebpf",
        "--release",
        "--target",
        "bpfel-unknown-none",
        "-Z",
        "build-std=core",
        "--",
        "-D",
        "warnings",
    ]);
    process::run(ebpf)
}
