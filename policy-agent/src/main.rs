//! `policy-agent`: Palisade's node agent.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use policy_agent::{
    agent,
    compiler::{Compiler, Scope},
    datastore::file::FileDatastore,
};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(version, about = "Palisade: Kubernetes NetworkPolicy enforced by eBPF")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enforce the policies of a datastore on this node's endpoint interfaces.
    Run {
        /// Directory of Kubernetes manifests (Namespaces, Pods, NetworkPolicies); watched.
        #[arg(long)]
        datastore: PathBuf,
        /// Directory in bpffs for this agent's pinned maps.
        #[arg(long, default_value = "/sys/fs/bpf/palisade")]
        bpffs: PathBuf,
        /// Host-side endpoint interfaces start with this (Calico: cali, Cilium: lxc).
        #[arg(long, default_value = "cali")]
        iface_prefix: String,
        /// Write a JSON status report here after every change.
        #[arg(long)]
        status_file: Option<PathBuf>,
        /// Enforce only on pods whose spec.nodeName is this; all pods when absent.
        #[arg(long)]
        node_name: Option<String>,
    },
    /// Compile a datastore and print the map contents with explanations, without loading
    /// anything into the kernel.
    Compile {
        #[arg(long)]
        datastore: PathBuf,
        #[arg(long)]
        node_name: Option<String>,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Run {
            datastore,
            bpffs,
            iface_prefix,
            status_file,
            node_name,
        } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the runtime")?
            .block_on(agent::run(agent::Config {
                datastore,
                bpffs,
                iface_prefix,
                status_file,
                node_name,
            })),
        Command::Compile {
            datastore,
            node_name,
        } => {
            let snapshot = FileDatastore::new(&datastore)
                .load()
                .with_context(|| format!("reading {}", datastore.display()))?;
            for error in &snapshot.errors {
                eprintln!("rejected: {error}");
            }
            let compiled = Compiler::new().compile(
                &snapshot.cluster,
                &Scope {
                    node_name,
                    host_addrs: Vec::new(),
                },
            );
            print!("{}", policy_agent::explain::render(&compiled));
            Ok(())
        }
    }
}
