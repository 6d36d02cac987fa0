//! `policy-agent`: Palisade's node agent.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};
use policy_agent::{
    agent::{self, DatastoreConfig, InterfaceSelection},
    calico::resources::Protocol,
    compiler::{Compiler, Failsafe, Scope, trace::TracePacket},
    dataplane::Capacities,
    datastore::{
        file::FileDatastore,
        kubernetes::{self, KubernetesDatastore},
    },
    explain::{service, verdict},
    flow_records,
};
use tracing_subscriber::EnvFilter;

/// `--datastore kubernetes` selects the API server; anything else is a directory (write
/// `./kubernetes` for a directory of that name).
const KUBERNETES: &str = "kubernetes";

/// How long `compile --datastore kubernetes` waits for the first full list.
const COMPILE_LIST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Parser)]
#[command(version, about = "Palisade: Kubernetes NetworkPolicy enforced by eBPF")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct Source {
    /// `kubernetes` for the API server, else a directory of Kubernetes manifests
    /// (Namespaces, Pods, NetworkPolicies), watched.
    #[arg(long)]
    datastore: PathBuf,
    /// Kubeconfig for `--datastore kubernetes`; without it: $KUBECONFIG, ~/.kube/config, then
    /// the in-cluster service account.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Enforce only on pods whose spec.nodeName is this (default: $NODE_NAME). Required with
    /// `--datastore kubernetes`; with a directory, all pods are local when absent.
    #[arg(long)]
    node_name: Option<String>,
}

impl Source {
    fn datastore(&self) -> DatastoreConfig {
        if self.datastore.as_os_str() == KUBERNETES {
            DatastoreConfig::Kubernetes {
                kubeconfig: self.kubeconfig.clone(),
            }
        } else {
            DatastoreConfig::Files(self.datastore.clone())
        }
    }

    /// The node name; from the API server, every pod of the cluster would otherwise be local.
    fn node_name(&self) -> Result<Option<String>> {
        match self.datastore() {
            DatastoreConfig::Files(_) => Ok(self.node_name.clone()),
            DatastoreConfig::Kubernetes { .. } => {
                let name = self
                    .node_name
                    .clone()
                    .or_else(|| std::env::var("NODE_NAME").ok())
                    .filter(|n| !n.is_empty());
                match name {
                    Some(name) => Ok(Some(name)),
                    None => bail!(
                        "--datastore kubernetes needs --node-name or $NODE_NAME (the downward API's spec.nodeName)"
                    ),
                }
            }
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Enforce the policies of a datastore on this node's endpoint interfaces.
    Run {
        #[command(flatten)]
        source: Source,
        /// Directory in bpffs for this agent's pinned maps.
        #[arg(long, default_value = "/sys/fs/bpf/palisade")]
        bpffs: PathBuf,
        /// Attach to every interface whose name matches this glob (for example 'veth*' on
        /// flannel's bridge) instead of the interfaces the node routes its pods' addresses
        /// through.
        #[arg(long)]
        interface_pattern: Option<String>,
        /// Other interfaces that get the hook deciding pods' Service traffic after
        /// kube-proxy's translation (tc egress): every one but loopback (`*`, the default,
        /// which covers uplinks and tunnels whatever their names), a glob, or an empty
        /// string for none (Service traffic to backends off this node is then not judged on
        /// its backend: only for tests that must not touch the host's interfaces).
        #[arg(long, default_value = "*")]
        uplinks: String,
        /// Write a JSON status report here after every change.
        #[arg(long)]
        status_file: Option<PathBuf>,
        /// Serve /healthz, /readyz and Prometheus /metrics on this port (none when absent).
        #[arg(long)]
        metrics_port: Option<u16>,
        /// Address for --metrics-port: loopback by default; the DaemonSet uses the node's
        /// address (status.hostIP) so that Prometheus can scrape it.
        #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
        metrics_host: IpAddr,
        /// Write a flow event (see `flows`) for every packet policy denies, not only for
        /// Calico `Log` rules.
        #[arg(long)]
        log_denies: bool,
        /// Serve the web view on this port (`/`), with the flow records it shows (`/flows`,
        /// which `policy-agent flows --agent` reads) and explanations (`/explain`). The agent
        /// then reads the datapath's flow events itself. None when absent.
        #[arg(long)]
        ui_port: Option<u16>,
        /// Address for --ui-port: loopback by default. The view names workloads: bind it
        /// elsewhere only where that is wanted.
        #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
        ui_host: IpAddr,
        /// The flow records' aggregation window.
        #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
        flow_window_seconds: u64,
        /// Ports every host endpoint accepts whatever policy says (Calico's failsafe):
        /// `proto:port,...`; default Felix's: tcp:22, udp:68, tcp:179, 2379, 2380, 5473, 6443,
        /// 6666, 6667. Empty for none.
        #[arg(long)]
        failsafe_inbound: Option<String>,
        /// Ports every host endpoint may always send to: default udp:53, udp:67 and the same
        /// TCP ports as inbound.
        #[arg(long)]
        failsafe_outbound: Option<String>,
        /// Rule entries each of PALISADE_RULES_EXACT and PALISADE_RULES can hold: raise it
        /// for clusters whose compiled policy needs more (the agent says when it does). The
        /// hash is preallocated, so its capacity costs memory up front.
        #[arg(long, default_value_t = policy_common::capacity::RULES)]
        rule_capacity: u32,
        /// Address entries each of PALISADE_ADDRESSES and PALISADE_IDENTITIES can hold.
        #[arg(long, default_value_t = policy_common::capacity::IDENTITIES)]
        identity_capacity: u32,
        /// Every this many seconds, read the policy maps back and repair what differs from
        /// the state the agent applied (logged, and counted in palisade_drift_entries_total).
        /// 0 turns it off.
        #[arg(long, default_value_t = 600)]
        resync_seconds: u64,
        /// With `--datastore kubernetes`: while Calico's or network-policy-api's CRDs are not
        /// served, ask the API server again every this many seconds (a CRD installed later is
        /// then watched).
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
        crd_rediscovery_seconds: u64,
    },
    /// Print the datapath's flow events live: Calico `Log` rules, and denies with
    /// `run --log-denies`.
    Flows {
        /// Read the flow records of an agent run with `--ui-port` (HOST:PORT, e.g.
        /// 127.0.0.1:9098) instead of the raw events of the pinned ring: each window is printed
        /// once it closes.
        #[arg(long)]
        agent: Option<SocketAddr>,
        /// With --agent: only records with this namespace at either end.
        #[arg(long, requires = "agent")]
        namespace: Option<String>,
        /// With --agent: only records with this pod (NAME or NAMESPACE/NAME) at either end.
        #[arg(long, requires = "agent")]
        pod: Option<String>,
        /// With --agent: only `allow` or `deny` records.
        #[arg(long, requires = "agent", value_parser = ["allow", "deny"])]
        verdict: Option<String>,
        /// With --agent: only records whose deciding rule contains this text (a tier, a
        /// policy's name, `ingress[2]`).
        #[arg(long, requires = "agent")]
        policy: Option<String>,
        /// The running agent's --bpffs directory.
        #[arg(long, default_value = "/sys/fs/bpf/palisade")]
        bpffs: PathBuf,
        /// The running agent's --status-file, to name the policy rule behind each event.
        #[arg(long)]
        status_file: Option<PathBuf>,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
        /// Stop after this many seconds.
        #[arg(long)]
        seconds: Option<u64>,
    },
    /// Compile a datastore and print the map contents with explanations, without loading
    /// anything into the kernel.
    Compile {
        #[command(flatten)]
        source: Source,
        /// A running agent's status file (its --status-file): show what it counted for each
        /// rule (packets it decided, connections it opened).
        #[arg(long)]
        status_file: Option<PathBuf>,
    },
    /// Explain the verdict on one packet: every tier, policy and rule consulted for the
    /// source's egress and the destination's ingress, which one decided, and the verdict.
    Explain {
        #[command(flatten)]
        source: Source,
        /// The sender: `namespace/name` of a pod, or an address.
        #[arg(long)]
        from: String,
        /// The receiver: `namespace/name` of a pod, an address, or `service/NS/NAME`: a
        /// connection to the Service's cluster IP (of --family), explained for each of its
        /// ready backends as the datapath judges it, on the backend and its target port.
        #[arg(long)]
        to: String,
        /// Destination port (ICMP: type << 8 | code); with `--to service/NS/NAME`, the
        /// Service port.
        #[arg(long)]
        port: u16,
        /// Source port: only rules with `source.ports`/`source.notPorts` look at it. The
        /// default is the first port of Linux's ephemeral range, where a client's port comes
        /// from.
        #[arg(long, default_value_t = 32768)]
        source_port: u16,
        /// TCP, UDP, SCTP, ICMP, ICMPv6, UDPLite, or a protocol number.
        #[arg(long, default_value = "TCP")]
        protocol: String,
        /// Address family for pods given by name, and of a Service's cluster IP: 4 or 6.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(4..=6))]
        family: u8,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Also the pending verdict: the same packet with the datastore's staged policies
        /// (StagedGlobalNetworkPolicy, StagedNetworkPolicy, StagedKubernetesNetworkPolicy)
        /// applied, which the datapath does not enforce.
        #[arg(long)]
        staged: bool,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    match Cli::parse().command {
        Command::Run {
            source,
            bpffs,
            interface_pattern,
            uplinks,
            status_file,
            metrics_port,
            metrics_host,
            log_denies,
            ui_port,
            ui_host,
            flow_window_seconds,
            failsafe_inbound,
            failsafe_outbound,
            rule_capacity,
            identity_capacity,
            resync_seconds,
            crd_rediscovery_seconds,
        } => runtime.block_on(agent::run(agent::Config {
            resync: (resync_seconds > 0).then(|| Duration::from_secs(resync_seconds)),
            crd_rediscovery: Duration::from_secs(crd_rediscovery_seconds),
            capacities: Capacities {
                rules: rule_capacity,
                identities: identity_capacity,
            },
            failsafe: failsafe(failsafe_inbound.as_deref(), failsafe_outbound.as_deref())?,
            interfaces: match interface_pattern {
                None => InterfaceSelection::Routed,
                Some(pattern) => InterfaceSelection::Pattern(
                    glob::Pattern::new(&pattern)
                        .with_context(|| format!("--interface-pattern {pattern:?}"))?,
                ),
            },
            uplinks: if uplinks.is_empty() {
                None
            } else {
                Some(
                    glob::Pattern::new(&uplinks)
                        .with_context(|| format!("--uplinks {uplinks:?}"))?,
                )
            },
            datastore: source.datastore(),
            node_name: source.node_name()?,
            bpffs,
            status_file,
            health_addr: metrics_port.map(|port| SocketAddr::new(metrics_host, port)),
            log_denies,
            ui_addr: ui_port.map(|port| SocketAddr::new(ui_host, port)),
            flow_limits: policy_agent::flow_records::Limits {
                window: Duration::from_secs(flow_window_seconds),
                ..Default::default()
            },
        })),
        Command::Flows {
            agent: Some(agent),
            namespace,
            pod,
            verdict,
            policy,
            json,
            count,
            seconds,
            ..
        } => {
            let filter = flow_records::client::Filter {
                namespace,
                pod,
                verdict: verdict.map(|v| {
                    if v == "allow" {
                        flow_records::aggregate::Verdict::Allow
                    } else {
                        flow_records::aggregate::Verdict::Deny
                    }
                }),
                policy,
            };
            runtime.block_on(follow_records(agent, &filter, json, count, seconds))
        }
        Command::Flows {
            bpffs,
            status_file,
            json,
            count,
            seconds,
            ..
        } => follow_flows(&bpffs, status_file.as_deref(), json, count, seconds),
        Command::Compile {
            source,
            status_file,
        } => {
            let (snapshot, scope) = load(&runtime, &source)?;
            let compiled = Compiler::new().compile(&snapshot.cluster, &scope);
            print!("{}", policy_agent::explain::render(&compiled));
            let counted = match &status_file {
                Some(path) => Some(
                    policy_agent::status::Status::read(path)
                        .with_context(|| format!("reading {}", path.display()))?
                        .with_context(|| format!("{}: no status written yet", path.display()))?
                        .rule_hits,
                ),
                None => None,
            };
            let tables = policy_agent::flows::table_names(&compiled);
            let rules = policy_agent::rule_hits::rules_of(&compiled.maps, &tables);
            print!(
                "{}",
                policy_agent::rule_hits::render_counts(&rules, counted.as_deref())
            );
            Ok(())
        }
        Command::Explain {
            source,
            from,
            to,
            port,
            source_port,
            protocol,
            family,
            json,
            staged,
        } => {
            if family == 5 {
                bail!("--family must be 4 or 6");
            }
            let (snapshot, scope) = load(&runtime, &source)?;
            let cluster = &snapshot.cluster;
            let protocol = Protocol::from_name(&protocol)
                .map(|p| p.0)
                .or_else(|| protocol.parse::<u8>().ok())
                .with_context(|| format!("--protocol {protocol}: not a protocol name or number"))?;
            let from = verdict::resolve(cluster, &from, family).context("--from")?;
            if let Some(service) = service::parse(&to) {
                let explanation = service::explain(
                    cluster,
                    &scope,
                    from,
                    source_port,
                    &service,
                    port,
                    protocol,
                    family,
                )
                .context("--to")?;
                if json {
                    println!("{}", service::render_json(&explanation));
                } else {
                    print!("{}", service::render_text(&explanation));
                }
                return Ok(());
            }
            let to = verdict::resolve(cluster, &to, family).context("--to")?;
            let packet = TracePacket {
                src: from,
                dst: to,
                protocol,
                sport: source_port,
                dport: port,
            };
            let trace = verdict::explain(cluster, &scope, &packet)?;
            let pending = if staged {
                Some(verdict::explain(&cluster.pending(), &scope, &packet)?)
            } else {
                None
            };
            match (json, &pending) {
                (true, None) => println!("{}", verdict::render_json(&trace)),
                (true, Some(pending)) => println!(
                    "{}",
                    serde_json::json!({
                        "enforced": verdict::render_json(&trace),
                        "pending": verdict::render_json(pending),
                        "staged_policies": cluster.staged.len(),
                    })
                ),
                (false, None) => print!("{}", verdict::render_text(&trace)),
                (false, Some(pending)) => {
                    println!("enforced:");
                    print!("{}", verdict::render_text(&trace));
                    println!(
                        "\npending (with the {} staged policies applied; not enforced):",
                        cluster.staged.len()
                    );
                    print!("{}", verdict::render_text(pending));
                }
            }
            Ok(())
        }
    }
}

/// The failsafe ports from the flags, Calico's defaults for what is not given.
fn failsafe(inbound: Option<&str>, outbound: Option<&str>) -> Result<Failsafe> {
    let mut failsafe = Failsafe::default();
    if let Some(list) = inbound {
        failsafe.inbound =
            Failsafe::parse_ports(list).map_err(|e| anyhow::anyhow!("--failsafe-inbound {e}"))?;
    }
    if let Some(list) = outbound {
        failsafe.outbound =
            Failsafe::parse_ports(list).map_err(|e| anyhow::anyhow!("--failsafe-outbound {e}"))?;
    }
    Ok(failsafe)
}

/// Prints an agent's flow records window by window, as each closes, until `count` records or
/// `seconds` (else until killed). The first answer's closed windows are printed too.
async fn follow_records(
    agent: SocketAddr,
    filter: &flow_records::client::Filter,
    json: bool,
    count: Option<u64>,
    seconds: Option<u64>,
) -> Result<()> {
    use std::io::Write as _;
    let deadline = seconds.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let mut since = 0;
    let mut printed = 0u64;
    loop {
        let snapshot = flow_records::client::fetch(agent, since).await?;
        since = snapshot.next;
        let mut out = std::io::stdout().lock();
        for window in &snapshot.closed {
            if json {
                // The lines `GET /flows/stream` sends; a window's losses are a line of their
                // own, never silent.
                for line in flow_records::client::json_lines(window, filter) {
                    let record = line.get("record").is_some();
                    if record && count.is_some_and(|c| printed >= c) {
                        return Ok(());
                    }
                    writeln!(out, "{line}")?;
                    printed += u64::from(record);
                }
                continue;
            }
            for record in window.records.iter().filter(|r| filter.matches(r)) {
                if count.is_some_and(|c| printed >= c) {
                    return Ok(());
                }
                writeln!(out, "{}", flow_records::client::render_text(window, record))?;
                printed += 1;
            }
            if let Some(line) = flow_records::client::render_losses(window) {
                writeln!(out, "{line}")?;
            }
        }
        out.flush()?;
        drop(out);
        if count.is_some_and(|c| printed >= c)
            || deadline.is_some_and(|d| tokio::time::Instant::now() >= d)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Prints flow events as they come, until `count` events or `seconds` (else until killed).
fn follow_flows(
    bpffs: &std::path::Path,
    status_file: Option<&std::path::Path>,
    json: bool,
    count: Option<u64>,
    seconds: Option<u64>,
) -> Result<()> {
    use policy_agent::flows::{self, FlowReader};
    use std::io::Write as _;
    let mut reader = FlowReader::open(bpffs)?;
    let deadline = seconds.map(|s| std::time::Instant::now() + Duration::from_secs(s));
    let mut tables = Default::default();
    let mut tables_read: Option<std::time::Instant> = None;
    let mut printed = 0u64;
    let mut out = std::io::stdout().lock();
    loop {
        if count.is_some_and(|c| printed >= c)
            || deadline.is_some_and(|d| std::time::Instant::now() >= d)
        {
            return Ok(());
        }
        let Some(event) = reader.next_event() else {
            // A ring buffer has no blocking read here: poll it (events are rare by design).
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        // The table names change with policy: reread them at most once a second.
        if let Some(path) = status_file
            && tables_read.is_none_or(|t| t.elapsed() > Duration::from_secs(1))
        {
            tables = policy_agent::status::Status::read(path)
                .ok()
                .flatten()
                .map(|status| status.tables)
                .unwrap_or_default();
            tables_read = Some(std::time::Instant::now());
        }
        let line = if json {
            flows::render_json(&event, &tables).to_string()
        } else {
            flows::render_text(&event, &tables)
        };
        writeln!(out, "{line}").context("writing to stdout")?;
        out.flush().context("writing to stdout")?;
        printed += 1;
    }
}

/// The datastore's current state, once, and this node's scope.
fn load(
    runtime: &tokio::runtime::Runtime,
    source: &Source,
) -> Result<(policy_agent::datastore::Snapshot, Scope)> {
    let node_name = source.node_name()?;
    let snapshot = match source.datastore() {
        DatastoreConfig::Files(dir) => FileDatastore::new(&dir)
            .load()
            .with_context(|| format!("reading {}", dir.display()))?,
        DatastoreConfig::Kubernetes { kubeconfig } => runtime.block_on(list_once(kubeconfig))?,
    };
    for error in &snapshot.errors {
        eprintln!("rejected: {error}");
    }
    let scope = Scope {
        node_name,
        host_addrs: Vec::new(),
    };
    Ok((snapshot, scope))
}

/// One full list of every resource from the API server.
async fn list_once(kubeconfig: Option<PathBuf>) -> Result<policy_agent::datastore::Snapshot> {
    let client = agent::kube_client(kubeconfig.as_deref()).await?;
    let (changes, mut changed) = tokio::sync::mpsc::unbounded_channel();
    let mut store = KubernetesDatastore::start(client, kubernetes::Options::default(), changes);
    tokio::time::timeout(COMPILE_LIST_TIMEOUT, async {
        while !store.is_synced() && changed.recv().await.is_some() {}
    })
    .await
    .context("listing Namespaces, Pods and NetworkPolicies from the API server")?;
    Ok(store.snapshot())
}
