//! Kernel decision cost for `cargo xtask bench`: `palisade_to_endpoint` on a conntrack hit, a
//! new allowed flow and new denied flows, at 10 to 100,000 policies, beside an empty tc program
//! of the same type (the floor: what `BPF_PROG_TEST_RUN` itself costs per run).
//!
//! Run as root: `cargo bench -p policy-agent --bench decision [-- --quick]`. Prints one JSON
//! object per measurement on stdout (what xtask reads) and a table on stderr. Without root it
//! says so and measures nothing (exit status 0, no JSON: xtask treats that as a failure).
//!
//! The cluster: one server pod on this node and N policies selecting it, policy i admitting
//! one peer on one TCP port. The peer is the /32 `ipBlock` of a client address (default, the
//! same set the real-traffic bench enforces), or with `--shape selector` the pod labelled
//! `client: c<i>` (one such pod each, elsewhere in the cluster, as in `datapath.rs`). The
//! allowed packet matches the *last* policy. Maps are filled by the real compiler and sync.
//! `--calico nets|source-ports` puts a Calico GlobalNetworkPolicy in front (see
//! [`CalicoFront`]), to compare an ordered table with and without source-port classes.
//! `--shape cluster` replaces the NetworkPolicies with ClusterNetworkPolicies (see
//! [`Shape::Cluster`]); its figures are JSON lines of kind `decision_cluster`.

#[path = "shared/raw_bpf.rs"]
#[allow(dead_code, reason = "the step-cost bench uses the rest")]
mod raw_bpf;

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use policy_agent::{
    compiler::{Compiler, MapContents, Scope},
    dataplane::Datapath,
    model::{
        Cluster, LabelSelector, NamespaceMatch, NetworkPolicy, Peer, Pod, PortMatch, Protocol,
        Rule, selector::Requirement,
    },
    replay::{Direction, Packet},
};
use raw_bpf::Program;

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
/// `Packet::to_frame` always uses source port 40000: a reply to a flow whose two ports are
/// 40000 is the same frame with the addresses swapped.
const REPLY_PORT: u16 = 40_000;

struct Settings {
    sizes: Vec<usize>,
    repeat: u32,
    runs: usize,
    shape: Shape,
    /// A Calico policy in front of the Kubernetes ones (`--calico nets|source-ports`).
    calico: Option<CalicoFront>,
    /// Only these cases (`--cases conntrack_hit,new_denied_port`), for profiling one path.
    cases: Option<Vec<String>>,
    /// Sizes whose compile takes, or is estimated to take, longer are not measured
    /// (`--compile-limit S`).
    compile_limit_s: f64,
}

impl Settings {
    /// `--quick` (CI smoke), `--shape selector|ipblock`, `--calico nets|source-ports`, `--sizes 10,100`,
    /// `--compile-limit SECONDS` and `--cases a,b` (for experiments).
    fn from_args() -> anyhow::Result<Self> {
        let args: Vec<String> = std::env::args().collect();
        let value = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1))
                .cloned()
        };
        let quick = args.iter().any(|a| a == "--quick");
        let shape = match value("--shape").as_deref() {
            None | Some("ipblock") => Shape::IpBlock,
            Some("selector") => Shape::Selector,
            Some("cluster") => Shape::Cluster,
            Some(other) => bail!("--shape {other}: expected selector, ipblock or cluster"),
        };
        let calico = match value("--calico").as_deref() {
            None => None,
            Some("nets") => Some(CalicoFront::Nets),
            Some("source-ports") => Some(CalicoFront::SourcePorts),
            Some(other) => bail!("--calico {other}: expected nets or source-ports"),
        };
        let sizes = match value("--sizes") {
            Some(list) => list
                .split(',')
                .map(|n| n.trim().parse::<usize>().context("--sizes takes numbers"))
                .collect::<anyhow::Result<Vec<_>>>()?,
            None if quick => vec![10, 1_000],
            None => vec![10, 100, 1_000, 10_000, 100_000],
        };
        ensure!(sizes.iter().all(|&n| n > 0), "--sizes must be positive");
        let compile_limit_s = match value("--compile-limit") {
            Some(v) => v.parse().context("--compile-limit takes seconds")?,
            None => 240.0,
        };
        Ok(Self {
            sizes,
            repeat: if quick { 100_000 } else { 1_000_000 },
            runs: if quick { 3 } else { 7 },
            shape,
            calico,
            compile_limit_s,
            cases: value("--cases").map(|list| list.split(',').map(str::to_owned).collect()),
        })
    }
}

fn client_ip(i: usize) -> Ipv4Addr {
    let i = u32::try_from(i).unwrap_or(u32::MAX).saturating_add(2);
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 201, 0, 0)).saturating_add(i))
}

/// Ports repeat past 50,000 policies; the (peer, port) pair stays unique.
fn client_port(i: usize) -> u16 {
    u16::try_from(10_000 + i % 50_000).unwrap_or(u16::MAX)
}

fn selector(key: &str, value: String) -> LabelSelector {
    LabelSelector {
        requirements: vec![Requirement::In {
            key: key.to_owned(),
            values: [value].into(),
        }],
    }
}

fn pod(name: String, labels: &[(&str, String)], ip: Ipv4Addr, node: &str) -> Pod {
    Pod {
        namespace: "default".into(),
        name,
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
        ips: BTreeSet::from([IpAddr::V4(ip)]),
        container_ports: Vec::new(),
        service_account: "default".into(),
        node_name: Some(node.to_owned()),
        host_network: false,
        terminated: false,
    }
}

/// How policy i names its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// A pod selector matching one client pod (`client: c<i>`).
    Selector,
    /// An `ipBlock` of that client's /32 (no client pods).
    IpBlock,
    /// Administrators' policy instead of NetworkPolicies: N Admin-tier ClusterNetworkPolicies,
    /// policy i accepting the client pod `client: c<i>` on one TCP port (priority i, at most
    /// 1000), and a Baseline one denying the server's ingress from every pod. The unknown
    /// peer is a pod (`client: stranger`): an address that is no pod matches no
    /// ClusterNetworkPolicy peer, and would be allowed.
    Cluster,
}

/// A GlobalNetworkPolicy selecting the server, at order 100 in tier `default` (before the
/// Kubernetes policies at 1000), that denies TCP from privileged source ports or from a
/// documentation network: the server's ingress becomes an ordered table, with or without
/// source-port classes, and the packets measured fall through it to the Kubernetes policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CalicoFront {
    Nets,
    SourcePorts,
}

impl CalicoFront {
    fn yaml(self) -> &'static str {
        match self {
            CalicoFront::Nets => {
                "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\n\
                 metadata: {name: front}\nspec:\n  order: 100\n  selector: app == 'server'\n\
                 \x20 types: [Ingress]\n  ingress:\n\
                 \x20   - {action: Deny, protocol: TCP, source: {nets: [198.51.100.0/24]}}\n"
            }
            CalicoFront::SourcePorts => {
                "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\n\
                 metadata: {name: front}\nspec:\n  order: 100\n  selector: app == 'server'\n\
                 \x20 types: [Ingress]\n  ingress:\n\
                 \x20   - {action: Deny, protocol: TCP, source: {ports: ['0:1023']}}\n"
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            CalicoFront::Nets => "calico-nets",
            CalicoFront::SourcePorts => "calico-source-ports",
        }
    }
}

/// The address of the pod no policy admits, and of the unknown peer of the other shapes.
const STRANGER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// [`Shape::Cluster`]'s policies and client pods, through the same parser and translation the
/// datastores use.
fn cluster_policies(cluster: &mut Cluster, policies: usize) -> anyhow::Result<()> {
    use policy_agent::cluster_policy::{self, ApiKind};

    let mut add = |yaml: String| -> anyhow::Result<()> {
        let value: serde_yaml::Value = serde_yaml::from_str(&yaml)?;
        let policy = cluster_policy::parse_value(ApiKind::ClusterNetworkPolicy, value)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        cluster.insert_cluster_policy(policy);
        Ok(())
    };
    for i in 0..policies {
        add(format!(
            "apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\n\
             metadata: {{name: allow-c{i}}}\nspec:\n  tier: Admin\n  priority: {}\n\
             \x20 subject: {{pods: {{podSelector: {{matchLabels: {{app: server}}}}}}}}\n\
             \x20 ingress:\n  - action: Accept\n    from: [{{pods: {{podSelector: {{matchLabels: {{client: c{i}}}}}}}}}]\n\
             \x20   protocols: [{{tcp: {{destinationPort: {{number: {}}}}}}}]\n",
            i.min(1000),
            client_port(i)
        ))?;
    }
    add(
        "apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\n\
         metadata: {name: baseline-deny}\nspec:\n  tier: Baseline\n  priority: 0\n\
         \x20 subject: {pods: {podSelector: {matchLabels: {app: server}}}}\n\
         \x20 ingress: [{action: Deny, from: [{namespaces: {}}]}]\n"
            .to_owned(),
    )?;
    for i in 0..policies {
        let client = pod(
            format!("client-{i}"),
            &[("client", format!("c{i}"))],
            client_ip(i),
            "elsewhere",
        );
        cluster
            .pods
            .insert(("default".into(), client.name.clone()), client.into());
    }
    let stranger = pod(
        "stranger".into(),
        &[("client", "stranger".into())],
        STRANGER,
        "elsewhere",
    );
    cluster
        .pods
        .insert(("default".into(), stranger.name.clone()), stranger.into());
    Ok(())
}

fn cluster(policies: usize, shape: Shape, calico: Option<CalicoFront>) -> anyhow::Result<Cluster> {
    let mut cluster = Cluster::default();
    if let Some(front) = calico {
        for resource in policy_agent::calico::resources::parse_documents(front.yaml()) {
            cluster
                .calico
                .insert(resource.map_err(|e| anyhow::anyhow!("{e}"))?);
        }
    }
    let server = pod("server".into(), &[("app", "server".into())], SERVER, "here");
    cluster
        .pods
        .insert(("default".into(), "server".into()), server.into());
    if shape == Shape::Cluster {
        cluster_policies(&mut cluster, policies)?;
        return Ok(cluster);
    }
    for i in 0..policies {
        let peer = match shape {
            Shape::Selector => {
                let client = pod(
                    format!("client-{i}"),
                    &[("client", format!("c{i}"))],
                    client_ip(i),
                    "elsewhere",
                );
                cluster
                    .pods
                    .insert(("default".into(), client.name.clone()), client.into());
                Peer::Pods {
                    namespaces: NamespaceMatch::Exactly("default".into()),
                    pods: selector("client", format!("c{i}")),
                }
            }
            Shape::IpBlock | Shape::Cluster => Peer::IpBlock {
                cidr: ipnet::IpNet::from(IpAddr::V4(client_ip(i))),
                except: Vec::new(),
            },
        };
        let port = client_port(i);
        let np = NetworkPolicy {
            namespace: "default".into(),
            name: format!("allow-c{i}"),
            pod_selector: selector("app", "server".into()),
            ingress: Some(vec![Rule {
                peers: Some(vec![peer]),
                ports: Some(vec![PortMatch::Range {
                    protocol: Protocol::Tcp,
                    first: port,
                    last: port,
                }]),
            }]),
            egress: None,
        };
        cluster
            .policies
            .insert(("default".into(), np.name.clone()), np.into());
    }
    Ok(cluster)
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("decision bench: SKIPPED, needs root to load BPF programs");
        return;
    }
    // `cargo bench` passes `--bench`; the rest is ours.
    let settings = match Settings::from_args() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("decision bench: {e:#}");
            std::process::exit(2);
        }
    };
    let pins = PathBuf::from(format!(
        "/sys/fs/bpf/palisade-decision-{}",
        std::process::id()
    ));
    // Interrupted (Ctrl-C, or xtask's time limit): remove the pinned maps before leaving.
    let on_signal = pins.clone();
    if let Err(e) = ctrlc::set_handler(move || {
        let _ = std::fs::remove_dir_all(&on_signal);
        std::process::exit(130);
    }) {
        eprintln!("decision bench: no Ctrl-C cleanup ({e})");
    }
    let result = run(&pins, &settings);
    if let Err(e) = std::fs::remove_dir_all(&pins)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        eprintln!("decision bench: could not remove {}: {e}", pins.display());
    }
    if let Err(e) = result {
        eprintln!("decision bench failed: {e:#}");
        std::process::exit(1);
    }
}

/// One measured case: the kernel's mean ns per run, for each of `runs` runs.
fn emit(case: &str, shape: &str, size: usize, rules: usize, mut samples: Vec<f64>) {
    samples.sort_by(f64::total_cmp);
    let median = samples[samples.len() / 2];
    eprintln!(
        "  {case:<14} {size:>7} policies {rules:>7} rules: median {median:>7.1} ns [{:.1}, {:.1}]",
        samples[0],
        samples[samples.len() - 1]
    );
    // Administrators' policy is its own series: xtask tables it beside the NetworkPolicy one.
    let kind = if shape == "cluster" {
        "decision_cluster"
    } else {
        "decision"
    };
    println!(
        "{}",
        serde_json::json!({
            "kind": kind,
            "case": case,
            "shape": shape,
            "policies": size,
            "rules": rules,
            "samples_ns": samples,
        })
    );
}

fn run(pins: &Path, settings: &Settings) -> anyhow::Result<()> {
    let empty = Program::empty().context("loading the empty tc program")?;
    let mut datapath = Datapath::load(pins)?;
    let mut programmed = MapContents::default();
    let scope = Scope {
        node_name: Some("here".into()),
        host_addrs: Vec::new(),
    };
    eprintln!("peers named by {:?}", settings.shape);
    // (policies, seconds) of the compiles so far: the compiler is superlinear in peers today,
    // so a size whose compile would blow the suite's time budget is reported, not run. The
    // growth exponent comes from the last two sizes, and is taken as at least 2.
    let mut compiles: Vec<(usize, f64)> = Vec::new();
    for &size in &settings.sizes {
        if let Some(&(n, secs)) = compiles.last() {
            #[expect(clippy::cast_precision_loss, reason = "policy counts are small")]
            let exponent = match compiles.len() {
                0 | 1 => 2.0,
                len => {
                    let (m, before) = compiles[len - 2];
                    ((secs / before.max(1e-3)).ln() / (n as f64 / m as f64).ln()).max(2.0)
                }
            };
            #[expect(clippy::cast_precision_loss, reason = "policy counts are small")]
            let estimate = secs * (size as f64 / n as f64).powf(exponent);
            if estimate > settings.compile_limit_s {
                eprintln!(
                    "{size} policies: SKIPPED, compiling would take ~{estimate:.0} s (from {n}: {secs:.1} s, growth exponent {exponent:.1}; limit {} s)",
                    settings.compile_limit_s
                );
                println!(
                    "{}",
                    serde_json::json!({"kind": "decision_skipped", "policies": size,
                        "estimated_compile_s": estimate, "limit_s": settings.compile_limit_s})
                );
                continue;
            }
        }
        let started = Instant::now();
        // The compile runs on its own thread so that the suite stays bounded in time: past
        // the limit the size is reported as not measured and the run ends (larger sizes would
        // only take longer); the thread dies with the process.
        let (done, compiled_maps) = std::sync::mpsc::channel();
        let cluster = cluster(size, settings.shape, settings.calico)?;
        let thread_scope = scope.clone();
        std::thread::spawn(move || {
            let maps = Compiler::new().compile(&cluster, &thread_scope).maps;
            let _ = done.send(maps);
        });
        let Ok(maps) =
            compiled_maps.recv_timeout(Duration::from_secs_f64(settings.compile_limit_s))
        else {
            eprintln!(
                "{size} policies: SKIPPED, the compile did not finish within {} s",
                settings.compile_limit_s
            );
            println!(
                "{}",
                serde_json::json!({"kind": "decision_skipped", "policies": size,
                    "compile_exceeded_s": settings.compile_limit_s, "limit_s": settings.compile_limit_s})
            );
            break;
        };
        let compiled = started.elapsed();
        compiles.push((size, compiled.as_secs_f64()));
        // The server's address bound to the interface test runs see (the namespace's
        // loopback), as the agent binds a pod's to its host-side interface: its packets are
        // counted in the slot the binding gives it, as a pod's are.
        let routes = std::collections::BTreeMap::from([(IpAddr::V4(SERVER), "lo".to_owned())]);
        let bound = datapath.bind_endpoints(&maps, &routes)?;
        datapath.apply(&programmed, &bound)?;
        programmed = bound;
        eprintln!(
            "{size} policies: compiled in {} ms, programmed in {} ms",
            compiled.as_millis(),
            started.elapsed().saturating_sub(compiled).as_millis()
        );
        let rules = programmed.rules.len();
        let last = size - 1;
        let allowed = Packet {
            src: IpAddr::V4(client_ip(last)),
            dst: IpAddr::V4(SERVER),
            protocol: 6,
            sport: 40_000,
            dport: client_port(last),
        };
        let denied_port = Packet {
            dport: 9,
            ..allowed
        };
        let denied_peer = Packet {
            src: IpAddr::V4(STRANGER),
            ..allowed
        };
        // The server opened a connection to the last client (its egress is not isolated, so
        // its own program records it); the client's answer is the conntrack hit.
        let opened = Packet {
            src: IpAddr::V4(SERVER),
            dst: IpAddr::V4(client_ip(last)),
            protocol: 6,
            sport: 40_000,
            dport: REPLY_PORT,
        };
        let reply = Packet {
            src: opened.dst,
            dst: opened.src,
            ..opened
        };

        let frame = allowed.to_frame();
        let mut floor = Vec::new();
        for _ in 0..settings.runs {
            floor.push(ns(empty.test_run(&frame, settings.repeat)?));
        }
        let mut shape = format!("{:?}", settings.shape).to_lowercase();
        if let Some(front) = settings.calico {
            shape = format!("{shape}+{}", front.name());
        }
        emit("empty", &shape, size, rules, floor);
        // The floor of a single run, taken as `new_allowed`'s samples are (each run after
        // the connection table is cleared): the timer's own cost and the caches the clearing
        // left cold, which a new flow's single run pays on top of its decision.
        if settings
            .cases
            .as_ref()
            .is_none_or(|only| only.iter().any(|c| c == "new_allowed"))
        {
            let mut singles_floor = Vec::new();
            for _ in 0..settings.runs {
                singles_floor.push(single_runs_median(&mut datapath, |_| {
                    Ok(ns(empty.test_run(&frame, 1)?))
                })?);
            }
            emit("empty_single", &shape, size, rules, singles_floor);
        }

        let cases = [
            ("conntrack_hit", reply, true, false),
            ("new_allowed", allowed, true, false),
            ("new_denied_port", denied_port, false, false),
            ("new_denied_peer", denied_peer, false, false),
            // The same with flow records on (`--ui-port`): every decision writes a flow event
            // (within the per-CPU budget; past it, a counter increment), named `<case>+events`.
            ("conntrack_hit", reply, true, true),
            ("new_allowed", allowed, true, true),
            ("new_denied_port", denied_port, false, true),
        ];
        for (base, packet, expect_allowed, events) in cases {
            if settings
                .cases
                .as_ref()
                .is_some_and(|only| !only.iter().any(|c| c == base))
            {
                continue;
            }
            datapath.set_flow_events(events)?;
            let case = if events {
                format!("{base}+events")
            } else {
                base.to_owned()
            };
            let case = case.as_str();
            let mut samples = Vec::new();
            if base == "new_allowed" {
                // An allowed flow is tracked after its first packet, and its later packets
                // take the tracked fast path, so repeating the packet would measure that. Each
                // sample is one run on an empty connection table instead (the median of many
                // single runs; it includes the kernel timer's own few tens of ns).
                let frame = packet.to_frame();
                for _ in 0..settings.runs {
                    samples.push(single_runs_median(&mut datapath, |datapath| {
                        let verdict = datapath.test_run(Direction::ToEndpoint, &frame, 1)?;
                        ensure!(verdict.allowed(), "{case} at {size} policies was dropped");
                        Ok(ns(verdict.per_run))
                    })?);
                }
                emit(case, &shape, size, rules, samples);
                continue;
            }
            for _ in 0..settings.runs {
                datapath.clear_conntrack()?;
                if base == "conntrack_hit" {
                    let out = datapath.test_run(Direction::FromEndpoint, &opened.to_frame(), 1)?;
                    ensure!(out.allowed(), "the server's own connection was dropped");
                }
                let verdict = datapath.test_run(
                    Direction::ToEndpoint,
                    &packet.to_frame(),
                    settings.repeat,
                )?;
                ensure!(
                    verdict.allowed() == expect_allowed,
                    "{case} at {size} policies: expected allowed={expect_allowed}"
                );
                samples.push(ns(verdict.per_run));
            }
            emit(case, &shape, size, rules, samples);
        }
    }
    Ok(())
}

/// Single runs per sample of a case that cannot be repeated in the kernel (a new allowed flow).
const SINGLE_RUNS: usize = 2001;

/// The median of [`SINGLE_RUNS`] timings by `run` (ns), each taken on an empty connection
/// table.
fn single_runs_median(
    datapath: &mut Datapath,
    mut run: impl FnMut(&Datapath) -> anyhow::Result<f64>,
) -> anyhow::Result<f64> {
    let mut singles = Vec::with_capacity(SINGLE_RUNS);
    for _ in 0..SINGLE_RUNS {
        datapath.clear_conntrack()?;
        singles.push(run(datapath)?);
    }
    singles.sort_by(f64::total_cmp);
    Ok(singles[singles.len() / 2])
}

fn ns(d: Duration) -> f64 {
    // Durations here are nanoseconds to microseconds: f64 is exact.
    #[expect(clippy::cast_precision_loss, reason = "values far below 2^52 ns")]
    let n = d.as_nanos() as f64;
    n
}
