//! The real-traffic and control-plane parts of `cargo xtask bench` (see `palisade_tests::bench`).
//! As root: `netbench traffic|services|control [--quick]`. Prints JSON lines on stdout, progress on
//! stderr; everything it creates is removed on exit, error, panic and Ctrl-C.

use anyhow::{Result, bail};
use clap::{Parser, ValueEnum};
use palisade_tests::bench::{self, Budget};

#[derive(Parser)]
struct Cli {
    part: Part,
    /// The CI smoke budget: fewer sizes, one repetition, short runs.
    #[arg(long)]
    quick: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Part {
    Traffic,
    Services,
    Control,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if !nix::unistd::geteuid().is_root() {
        bail!("netbench needs root (network namespaces, BPF, iptables)");
    }
    let budget: Budget = if cli.quick { bench::QUICK } else { bench::FULL };
    match cli.part {
        Part::Traffic => bench::traffic::run(&budget),
        Part::Services => bench::services::run(&budget),
        Part::Control => {
            bench::control::latency(&budget)?;
            for &pods in budget.pod_counts {
                bench::control::agent_footprint(pods)?;
            }
            Ok(())
        }
    }
}
