//! `lab run [SCENARIO]`: runs a scenario against the real agent in throwaway network namespaces
//! and prints what each probe observed.
//!
//! Exit status: 0 when every probe and error check matched, 1 when some did not, 2 when the lab
//! could not run, 130 when interrupted.

use std::{
    io::{IsTerminal as _, Write as _},
    path::PathBuf,
    process::ExitCode,
};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use palisade_tests::lab::{
    KubeProxyMode, Lab, LabOptions, Scenario, StepReport, run_scenario_with,
};

/// Overrides the scenario's `kubeProxy` when `--kube-proxy` is not given.
const KUBE_PROXY_ENV: &str = "PALISADE_LAB_KUBE_PROXY";
use tracing_subscriber::EnvFilter;

/// The default scenario, relative to the workspace root.
const DEFAULT_SCENARIO: &str = "examples/seed/scenario.yaml";

#[derive(Debug, Parser)]
#[command(
    name = "lab",
    about = "Palisade's local lab: pods in network namespaces, the real agent, real probes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a scenario (needs root).
    Run {
        /// Scenario file [default: examples/seed/scenario.yaml in the workspace].
        scenario: Option<PathBuf>,
        /// One JSON object per probe and error check, one per line, instead of tables.
        #[arg(long)]
        json: bool,
        /// The policy-agent binary [default: $PALISADE_AGENT_BIN, else target/debug/policy-agent
        /// next to this binary].
        #[arg(long, value_name = "PATH", conflicts_with = "no_agent")]
        agent: Option<PathBuf>,
        /// Run without the agent: nothing is enforced (for developing the lab itself).
        #[arg(long)]
        no_agent: bool,
        /// The kube-proxy mode whose rules the lab writes for Services, instead of the
        /// scenario's `kubeProxy` [default: $PALISADE_LAB_KUBE_PROXY, else the scenario's].
        #[arg(long, value_name = "iptables|nftables")]
        kube_proxy: Option<KubeProxyMode>,
        /// After the last step, keep the lab (namespaces, agent, pinned maps) up until Enter
        /// or Ctrl-C, to look at it with bpftool or `ip netns exec`.
        #[arg(long)]
        hold: bool,
    },
}

fn main() -> ExitCode {
    // The lab's own logs go to stderr; RUST_LOG also reaches the agent.
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            scenario,
            json,
            agent,
            no_agent,
            kube_proxy,
            hold,
        } => match run(
            scenario,
            json,
            hold,
            kube_proxy,
            LabOptions { agent, no_agent },
        ) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("lab: error: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}

fn run(
    scenario: Option<PathBuf>,
    json: bool,
    hold: bool,
    kube_proxy: Option<KubeProxyMode>,
    options: LabOptions,
) -> anyhow::Result<bool> {
    let path = scenario.unwrap_or_else(|| palisade_tests::workspace_root().join(DEFAULT_SCENARIO));
    let mut scenario =
        Scenario::from_file(&path).with_context(|| format!("loading {}", path.display()))?;
    let from_env = match std::env::var(KUBE_PROXY_ENV) {
        Ok(text) => Some(
            text.parse::<KubeProxyMode>()
                .map_err(|e| anyhow::anyhow!("{KUBE_PROXY_ENV}: {e}"))?,
        ),
        Err(_) => None,
    };
    if let Some(mode) = kube_proxy.or(from_env) {
        scenario.kube_proxy = mode;
    }
    if !nix::unistd::geteuid().is_root() {
        anyhow::bail!("lab run needs root (network namespaces, bpffs, BPF)");
    }
    if options.no_agent && !json {
        println!(
            "lab: running without the agent: nothing is enforced, deny probes will mismatch\n"
        );
    }
    let mut stdout = std::io::stdout();
    let mut print_step = |step: &StepReport| {
        let text = if json {
            step.json_lines().join("\n") + "\n"
        } else {
            step.render_table() + "\n"
        };
        // A closed stdout (e.g. `| head`) must not abort the run before cleanup.
        if let Err(e) = stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
        {
            tracing::debug!(error = %e, "writing the report");
        }
    };
    let report = if hold {
        let mut lab = Lab::start(&scenario, &options)?;
        for (i, step) in scenario.steps.iter().enumerate() {
            print_step(&lab.run_step(i + 1, step)?);
        }
        eprintln!("{}", held_message(&lab));
        let mut line = String::new();
        // EOF or an error both mean "done holding".
        let _ = std::io::stdin().read_line(&mut line);
        lab.finish()?
    } else {
        run_scenario_with(&scenario, &options, print_step)?
    };
    let ok = report.all_ok();
    if !json {
        let (passed, failed) = report.counts();
        if !ok && !report.agent_log_tail.is_empty() {
            println!("agent log (last {} lines):", report.agent_log_tail.len());
            for line in &report.agent_log_tail {
                println!("  | {line}");
            }
            println!();
        }
        println!("lab: {passed} passed, {failed} failed");
    }
    Ok(ok)
}

/// What a held lab offers to look at: each node's pinned maps and the namespaces.
fn held_message(lab: &Lab) -> String {
    let pins = lab.pin_dirs();
    let mut text = format!("lab {} is held.", lab.id());
    for (node, dir) in &pins {
        let label = if pins.len() > 1 {
            format!(" of node {node}")
        } else {
            String::new()
        };
        text.push_str(&format!(
            "\nPinned maps{label}: {dir}\n  bpftool map dump pinned {dir}/PALISADE_RULES",
            dir = dir.display()
        ));
    }
    text.push_str(&format!(
        "\n  ip netns list | grep pal-{}\nPress Enter (or Ctrl-C) to clean up.",
        lab.id()
    ));
    text
}
