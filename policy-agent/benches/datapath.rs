//! Per-packet cost of the real datapath against the number of policies, measured by the kernel
//! with `BPF_PROG_TEST_RUN` (its own per-run timer over a repeat count), on maps filled by the
//! real compiler and sync.
//!
//! Run as root: `cargo bench -p policy-agent --bench datapath`. Without root it says so and
//! measures nothing.
//!
//! The cluster: one server pod, and N policies selecting it, policy i allowing ingress from
//! pods labelled `client: c<i>` on TCP port 10000 + i (plus N client pods). Three packets: one
//! allowed by the last policy, one from an allowed peer to a port no policy opens, one from an
//! unknown address. The claim to check is that the cost does not grow with N.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr},
    path::PathBuf,
};

use policy_agent::{
    compiler::{Compiler, MapContents, Scope},
    dataplane::Datapath,
    model::{
        Cluster, LabelSelector, NamespaceMatch, NetworkPolicy, Peer, Pod, PortMatch, Protocol,
        Rule, selector::Requirement,
    },
    replay::{Direction, Packet},
};

const REPEAT: u32 = 1_000_000;
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);

fn client_ip(i: usize) -> Ipv4Addr {
    let i = u32::try_from(i).unwrap_or(u32::MAX) + 2;
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 201, 0, 0)) + i)
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

fn cluster(policies: usize) -> Cluster {
    let mut cluster = Cluster::default();
    // Only the server runs on this node; the clients are peers elsewhere in the cluster.
    let server = pod("server".into(), &[("app", "server".into())], SERVER, "here");
    cluster
        .pods
        .insert(("default".into(), "server".into()), server.into());
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
        let selector = |k: &str, v: String| LabelSelector {
            requirements: vec![Requirement::In {
                key: k.to_owned(),
                values: [v].into(),
            }],
        };
        let port = u16::try_from(10_000 + i).unwrap_or(u16::MAX);
        let np = NetworkPolicy {
            namespace: "default".into(),
            name: format!("allow-c{i}"),
            pod_selector: selector("app", "server".into()),
            ingress: Some(vec![Rule {
                peers: Some(vec![Peer::Pods {
                    namespaces: NamespaceMatch::Exactly("default".into()),
                    pods: selector("client", format!("c{i}")),
                }]),
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
    cluster
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("datapath bench: SKIPPED, needs root to load BPF programs");
        return;
    }
    // `cargo bench` passes `--bench`; nothing else to parse.
    let pins = PathBuf::from(format!("/sys/fs/bpf/palisade-bench-{}", std::process::id()));
    let result = run(&pins);
    let _ = std::fs::remove_dir_all(&pins);
    if let Err(e) = result {
        eprintln!("datapath bench failed: {e:#}");
        std::process::exit(1);
    }
}

fn run(pins: &std::path::Path) -> anyhow::Result<()> {
    let mut datapath = Datapath::load(pins)?;
    let mut programmed = MapContents::default();
    println!(
        "{:>9} {:>9} {:>12} {:>12} {:>12}",
        "policies", "rules", "allowed ns", "denied ns", "unknown ns"
    );
    for policies in [1usize, 10, 100, 1000, 5000] {
        let scope = Scope {
            node_name: Some("here".into()),
            host_addrs: Vec::new(),
        };
        let maps = Compiler::new().compile(&cluster(policies), &scope).maps;
        datapath.apply(&programmed, &maps)?;
        programmed = std::sync::Arc::unwrap_or_clone(maps);
        let last = policies - 1;
        let allowed = Packet {
            src: IpAddr::V4(client_ip(last)),
            dst: IpAddr::V4(SERVER),
            protocol: 6,
            sport: 40_000,
            dport: u16::try_from(10_000 + last).unwrap_or(u16::MAX),
        };
        let denied = Packet {
            dport: 9,
            ..allowed
        };
        let unknown = Packet {
            src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            ..allowed
        };
        let mut figures = Vec::new();
        for (packet, expect_allowed) in [(allowed, true), (denied, false), (unknown, false)] {
            // Median of 5 kernel-timed runs of REPEAT packets each.
            let mut runs = Vec::new();
            for _ in 0..5 {
                datapath.clear_conntrack()?;
                let verdict =
                    datapath.test_run(Direction::ToEndpoint, &packet.to_frame(), REPEAT)?;
                anyhow::ensure!(
                    verdict.allowed() == expect_allowed,
                    "{packet:?}: expected allowed={expect_allowed}"
                );
                runs.push(verdict.per_run.as_nanos());
            }
            runs.sort_unstable();
            figures.push(runs[runs.len() / 2]);
        }
        println!(
            "{policies:>9} {:>9} {:>12} {:>12} {:>12}",
            programmed.rules.len(),
            figures[0],
            figures[1],
            figures[2]
        );
    }
    Ok(())
}
