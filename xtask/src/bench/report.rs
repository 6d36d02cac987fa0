//! docs/benchmarks.md, the console summary and the plots, from one run's results.

use std::{fmt::Write as _, path::Path, time::Duration};

use anyhow::Result;

use super::{
    collect::{CALICO_BENCH, COMPILE_BENCH, Results},
    plot::{self, Series},
    tables::{self, DECISION_CASES, ENFORCERS, METRICS},
};
use crate::process::output;

/// Draws the plots; returns (file name, caption) of each.
pub fn plots(results: &Results, dir: &Path) -> Result<Vec<(String, String)>> {
    let mut made = Vec::new();
    let sizes = tables::sizes(results.of_kind("decision"), "policies");
    #[expect(clippy::cast_precision_loss, reason = "rule counts are small")]
    let series: Vec<Series> = DECISION_CASES
        .iter()
        .map(|case| Series {
            name: (*case).replace('_', " "),
            points: sizes
                .iter()
                .filter_map(|&n| Some((n as f64, tables::decision(results, case, n)?.median)))
                .collect(),
        })
        .collect();
    let name = "decision-ns.png";
    plot::lines(
        &dir.join(name),
        "Kernel decision cost (BPF_PROG_TEST_RUN, palisade_to_endpoint)",
        (
            "policies selecting the endpoint (one rule each)",
            "ns per packet (median)",
        ),
        plotters::prelude::SeriesLabelPosition::MiddleRight,
        &series,
    )?;
    made.push((
        name.to_owned(),
        "Kernel decision cost against the number of policies".to_owned(),
    ));

    let sizes = tables::sizes(results.of_kind("traffic"), "rules");
    for (metric, title) in METRICS {
        // Per-packet (per-connection) cost: the inverse of the measured rate.
        #[expect(clippy::cast_precision_loss, reason = "rule counts are small")]
        let series: Vec<Series> = ENFORCERS
            .iter()
            .map(|e| Series {
                name: (*e).to_owned(),
                points: sizes
                    .iter()
                    .filter_map(|&n| {
                        let rate = tables::traffic(results, e, metric, n)?.median;
                        (rate > 0.0).then(|| (n as f64, 1e6 / rate))
                    })
                    .collect(),
            })
            .collect();
        let (file, y) = if metric == "tcp_conn_per_s" {
            (
                "traffic-tcp-us.png",
                "µs per new connection (1 / median rate)",
            )
        } else {
            ("traffic-udp-us.png", "µs per UDP packet (1 / median rate)")
        };
        plot::lines(
            &dir.join(file),
            &format!("Real traffic: {title}"),
            ("rules (admitting rule last)", y),
            plotters::prelude::SeriesLabelPosition::UpperLeft,
            &series,
        )?;
        made.push((
            file.to_owned(),
            format!(
                "Cost per {}, four enforcers",
                if metric == "tcp_conn_per_s" {
                    "new TCP connection"
                } else {
                    "UDP packet"
                }
            ),
        ));
    }
    Ok(made)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_owned())
        })
        .unwrap_or_default();
    let ipt = output("iptables", &["--version"]).unwrap_or_default();
    let nft = output("nft", &["--version"]).unwrap_or_default();
    format!(
        "{cpu}, {cores} cores, kernel {}, {os}; {} / {}",
        kernel.trim(),
        ipt.trim(),
        nft.trim()
    )
}

/// Where, when and how long: recorded with the figures, so a re-render keeps them.
pub fn run_line(root: &Path, quick: bool, took: Duration) -> serde_json::Value {
    let date = output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
    let rev = std::process::Command::new("git")
        .current_dir(root)
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let dirty = std::process::Command::new("git")
        .current_dir(root)
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .is_ok_and(|o| !o.stdout.is_empty());
    let rev = if dirty {
        format!("{rev} + uncommitted changes")
    } else {
        rev
    };
    serde_json::json!({"kind": "run", "date": date.trim(), "commit": rev, "quick": quick,
        "seconds": took.as_secs_f64(), "machine": machine()})
}

pub fn markdown(results: &Results, quick: bool, plots: &[(String, String)]) -> String {
    let mut md = String::new();
    let run = results.of_kind("run").next().cloned().unwrap_or_default();
    let text = |key: &str| run[key].as_str().unwrap_or("unknown").to_owned();
    let command = if quick {
        "cargo xtask bench --quick"
    } else {
        "cargo xtask bench"
    };
    let _ = write!(
        md,
        "# Benchmarks\n\n\
         Generated by `{command}` (as root; it installs iptables, nftables and a font for the plots \
         if missing, builds in release mode and runs every part below). Do not edit by hand: rerun it.\n\n\
         - Measured: {} at commit `{}`, in {:.0} s\n\
         - Machine: {}\n\
         - Medians over repeated runs, with [min, max]; every ratio compares figures taken in the same run.\n\
         - Every sample: [`plots/results.jsonl`](plots/results.jsonl) (`cargo xtask bench --from FILE` re-renders it).\n\n",
        text("date"),
        text("commit"),
        run["seconds"].as_f64().unwrap_or(0.0),
        text("machine"),
    );
    if quick {
        md.push_str(
            "**Quick (smoke) run: short and few repetitions; the figures are not meaningful.**\n\n",
        );
    }

    md.push_str("## Kernel decision cost\n\n`cargo bench -p policy-agent --bench decision` (root; `policy-agent/benches/decision.rs`)\n\n");
    md.push_str(
        "The real `palisade_to_endpoint` program, run by the kernel with `BPF_PROG_TEST_RUN` (its own \
         per-run timer over 1,000,000 repetitions; 7 such runs), on maps filled by the compiler and sync. \
         One server pod on the node; N policies select it, policy i admitting one /32 `ipBlock` peer \
         on one TCP port (the set the traffic runs enforce; `-- --shape selector` names the peers by \
         pod selector instead). *empty program*: a two-instruction \
         `SCHED_CLS` program (`r0 = -1; exit`) loaded with the raw bpf() call, run on the same frame: \
         the floor that test-run itself costs. *conntrack hit*: a reply to a connection the server opened. \
         *new allowed*: a SYN admitted by the last policy, each sample the median of 2,001 single \
         runs on an empty connection table (a repeated packet would be tracked after its first run \
         and take the fast path; single runs include the kernel timer's own cost and caches the clearing left cold, hence the *single-run floor* below). \
         *new denied*: an admitted peer on a port no policy opens, and an address no policy names. \
         Nanoseconds per packet:\n\n",
    );
    tables::decision_section(results, &mut md);
    md.push('\n');
    md.push_str(
        "**What each step costs** (`cargo bench -p policy-agent --bench step_costs`; \
         `policy-agent/benches/step_costs.rs`): this machine has no hardware performance \
         counters, so `bpftool prog profile` and `perf` cannot sample the programs by \
         instruction; instead each step is measured alone. A tc program made with the raw bpf() \
         call does one map lookup (of a map with our map's type, key and value sizes and \
         capacity, holding the key looked up), update or helper call 8 times; its cost is its \
         test run less the empty program's in the same round, divided by 8. Medians of 7 \
         rounds of 1,000,000 runs; nanoseconds per step:\n\n",
    );
    tables::steps_section(results, &mut md);
    md.push('\n');
    md.push_str(
        "**With flow records on** (`--ui-port`): the same cases with the `events::FLOWS` setting, \
         so that every decision writes a flow event to the ring (within each CPU's budget of \
         2,000 a second; past it, a counter increment), measured in the same run. The drop \
         reasons and the per-rule counters are always on (one per-CPU hash lookup per \
         decision). Nanoseconds per packet:\n\n",
    );
    tables::events_section(results, &mut md);
    md.push('\n');
    md.push_str(
        "**The agent's flow records under a flood** (`cargo bench -p policy-agent --bench \
         flow_records`): distinct flows, no two in one record, fed to the agent's aggregation \
         as the ring hands them over, over five windows of event time; memory as counted by the \
         bench's own allocator beyond what was allocated before the first event:\n\n",
    );
    tables::flow_records_section(results, &mut md);
    md.push('\n');
    md.push_str(
        "**With ClusterNetworkPolicies** (`-- --shape cluster`): the same server, N Admin-tier \
         ClusterNetworkPolicies, policy i accepting the client pod `client: c<i>` on one TCP \
         port (priority i), and a Baseline policy denying the server's ingress from every pod; \
         the unknown peer is a pod no policy accepts. The policies are translated into Calico \
         tiers and compiled into one ordered table, looked up with the same hash lookups:\n\n",
    );
    tables::cluster_decision_section(results, &mut md);
    md.push_str(
        "What bounds these figures: on a new flow the program parses the headers, looks up \
         ENDPOINTS (hash), the tuple and the reversed tuple in CONNTRACK (LRU hash), the peer in \
         ADDRESSES (hash; the IDENTITIES trie only on a miss), then, in the endpoint's table, the \
         rule for the peer's identities (RULES_EXACT hash; the RULES trie only on a miss, for port \
         ranges and any-port rules), and records an allowed flow in CONNTRACK. Every lookup on the \
         way of these cases is a hash lookup, whose cost does not grow with the entries (the \
         unknown peer's miss goes on to a trie that holds only prefixes shorter than an address, \
         none in this set), hence the level rows; a trie walk deepens one node per branching bit as entries are added, which is \
         why whole keys are kept out of the tries. A tracked packet stops at the conntrack \
         lookups. The empty program is the fixed cost of test-run itself, so \"≤ 3× empty\" leaves \
         room for about two map lookups, not the six a new flow needs; and *new allowed*, timed as \
         single runs, also carries the kernel timer's own overhead, which the repeated empty \
         program does not.\n\n",
    );
    if let Some((file, caption)) = plots.first() {
        let _ = writeln!(md, "![{caption}](plots/{file})\n");
    }

    md.push_str("## Same policy, four enforcers, real traffic\n\n`target/release/netbench traffic` (root; `tests/src/bench/traffic.rs`, load from `tests/src/bin/loadgen.rs`)\n\n");
    md.push_str(
        "Two lab pods (network namespaces) joined to a node namespace, client → server through it. \
         The policy set is N entries (peer /32, port, TCP and UDP) admitting ingress to the server; the \
         one naming the real client is *last*. Enforced by: **none**; **iptables** (`iptables-restore`, \
         Debian's nf_tables backend) shaped like Calico's dataplane: INVALID drop and RELATED,ESTABLISHED \
         accept first, dispatch by interface to a per-endpoint chain of 2N linear rules ending in DROP; \
         **nftables** shaped like kube-network-policies: established first, an interface → chain \
         verdict map, one `saddr . l4proto . dport` set lookup; **Palisade**: the release agent with the \
         N entries as NetworkPolicies (`ipBlock` /32 peers). The first three share one lab, the agent \
         runs in its own beside it, and the four are interleaved within every repetition. TCP: two \
         threads opening connections, 32-byte request and echo, closed by reset (every connection a new \
         flow, no TIME_WAIT). UDP: two threads sending 32-byte datagrams to a sink that counts what \
         arrives over the time it received (one flow per thread; the sink never answers, so \
         conntrack keeps each flow unreplied and iptables and nftables evaluate their rules on every \
         packet, while Palisade's tracked flow skips policy after its first packet). Per-packet \
         costs in the plots are 1 / median rate, so they include the whole path (veths, routing, \
         sockets), not only the enforcer.\n\n",
    );
    tables::traffic_section(results, &mut md);
    for (file, caption) in plots.iter().skip(1) {
        let _ = writeln!(md, "![{caption}](plots/{file})\n");
    }

    md.push_str("## Through a Service\n\n`target/release/netbench services` (root; `tests/src/bench/services.rs`, load from `tests/src/bin/loadgen.rs`)\n\n");
    md.push_str(
        "The same two pods and the same load as above (TCP: new connections, 32-byte request and \
         echo, closed by reset; UDP: 32-byte datagrams counted at the sink), addressed either to \
         the server's **pod IP** (port 8080) or to the ClusterIP of a **Service** in front of it \
         (`10.96.0.80:80` → `targetPort` 8080, TCP and UDP, one backend: the server pod, named by a \
         hand-written EndpointSlice, the Service in a namespace without pods because the lab \
         serves every Service target port on the pods of the Service's namespace, which would \
         take the server's port), whose DNAT is done by \
         the kube-proxy-shaped iptables rules the lab writes in the node namespace (`KUBE-SERVICES` \
         → `KUBE-SVC-*` → `KUBE-SEP-*`, `kubeProxy: iptables`). **none**: no agent (kube-proxy's \
         rules only). **Palisade**: the release agent enforcing two NetworkPolicies that isolate \
         the client's egress and the server's ingress and admit each other by pod selector on port \
         8080 only; to the pod IP both are decided at the client's and the server's interfaces, \
         to the ClusterIP the client's egress decision is deferred at its interface (tc ingress) \
         and taken by `palisade_after_nat` on tc egress of the server's interface, after the DNAT, \
         on the backend and its target port. Both labs hold the same pods, Service and policies; \
         the four cases are interleaved within every repetition. Ratios are of medians: \
         *Service ÷ pod IP* is what the ClusterIP (kube-proxy's DNAT, and with Palisade the \
         deferred decision) costs; *Palisade ÷ none* is what enforcement costs on each path. \
         Figures include the whole path (veths, routing, netfilter, sockets). The \
         section states when it was measured and how busy the machine was (it may come from a \
         later run than the rest of this page, appended to `results.jsonl`).\n\n",
    );
    tables::services_section(results, &mut md);

    md.push_str("## Control plane\n\n`target/release/netbench control` (root; `tests/src/bench/control.rs`)\n\n");
    md.push_str(
        "Latency: the lab with the agent, the server isolated by a default-deny policy, and a file of \
         1,000 pods and 200 policies in the datastore (every pod an endpoint: the lab's agent has no \
         node name). A prober in the client pod sends a numbered UDP datagram every 0.5 ms to an echo \
         server in the server pod. Each change writes (or removes) one policy admitting the client, \
         atomically, as the lab does; its latency runs from just before the write to the send time of \
         the first datagram that saw the new verdict (for a revocation: the first of a run of ≥10 lost). \
         Footprint: the release agent on its own with `--node-name`, given N pods (100 on its node) and \
         the same 200 policies; RSS read from /proc once it reports the datastore programmed.\n\n",
    );
    tables::control_section(results, &mut md);

    md.push_str("## Compiler at scale\n\n");
    compile_section(
        results,
        "compile",
        COMPILE_BENCH,
        "`policy-agent/benches/compile.rs`: Kubernetes NetworkPolicies",
        &mut md,
    );
    md.push_str("\n## Calico at scale\n\n");
    compile_section(
        results,
        "calico",
        CALICO_BENCH,
        "`policy-agent/benches/calico/`: 10,000 pods, 1,000 GlobalNetworkPolicies in 3 tiers, \
         two GlobalNetworkSets of 5,000 CIDRs; the full compile also written into the real \
         datapath, with each map's entries and kernel memory",
        &mut md,
    );
    md
}

/// A compiler bench's report, verbatim: its own lines on stderr and criterion's estimates.
fn compile_section(results: &Results, bench: &str, command: &str, what: &str, md: &mut String) {
    match results.compile_report(bench) {
        Some((stderr, stdout)) => {
            let _ = writeln!(
                md,
                "`{command}` ({what}), its report on stderr verbatim \
                 (criterion's progress lines left out):\n\n```text"
            );
            for line in &stderr {
                md.push_str(line);
                md.push('\n');
            }
            md.push_str("```\n\ncriterion's estimates (stdout), verbatim:\n\n```text\n");
            for line in &stdout {
                md.push_str(line);
                md.push('\n');
            }
            md.push_str("```\n");
        }
        None => {
            let _ = writeln!(md, "Not run in `--quick` mode (`{command}`).");
        }
    }
}

/// What the console gets: the same tables without the prose.
pub fn console(results: &Results) -> String {
    let mut out = String::from("\nKernel decision cost (ns per packet)\n\n");
    tables::decision_section(results, &mut out);
    out.push_str("\nWhat each step costs\n\n");
    tables::steps_section(results, &mut out);
    out.push_str("\nWith flow records on (ns per packet)\n\n");
    tables::events_section(results, &mut out);
    out.push_str("\nFlow records under a flood\n\n");
    tables::flow_records_section(results, &mut out);
    out.push_str("\nWith ClusterNetworkPolicies (ns per packet)\n\n");
    tables::cluster_decision_section(results, &mut out);
    out.push_str("\nReal traffic\n\n");
    tables::traffic_section(results, &mut out);
    out.push_str("Through a Service\n\n");
    tables::services_section(results, &mut out);
    out.push_str("Control plane\n\n");
    tables::control_section(results, &mut out);
    out
}
