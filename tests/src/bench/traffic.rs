//! Same policy, four enforcers, real traffic: new TCP connections per second (short
//! request/response, each a new flow) and small UDP packets per second, client pod to server
//! pod through the lab's node namespace, with the admitting rule placed last.
//!
//! Two labs run side by side: one without an agent, where the node namespace gets no rules
//! ("none"), the iptables set or the nftables set in turn, and one per rule count with the real
//! agent enforcing the same set as NetworkPolicies. Enforcers are interleaved within each
//! repetition, so their ratios come from the same minutes of the same machine.

use std::{net::Ipv4Addr, time::Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::{
    Budget, emit,
    procs::{Loadgen, run_in},
    rules::{self, SERVER_PORT},
};
use crate::lab::{
    Lab, LabOptions, Scenario,
    netns::Netns,
    scenario::Object,
    topology::{self, PodPlan},
};

/// The two pods every traffic lab has: client first, server second.
pub fn pods() -> anyhow::Result<Vec<Object>> {
    ["client", "server"]
        .into_iter()
        .map(|name| {
            Object::from_manifest(json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
            }))
            .context("building a pod manifest")
        })
        .collect()
}

/// A started lab with handles on the client's, server's and node's namespaces.
pub struct Testbed {
    pub lab: Lab,
    pub client: Netns,
    pub server: Netns,
    pub node: Netns,
    pub client_ip: Ipv4Addr,
    pub server_ip: Ipv4Addr,
    pub client_if: String,
    pub server_if: String,
}

impl Testbed {
    pub fn start(extra: Vec<Object>, agent: bool) -> anyhow::Result<Self> {
        Self::start_with(pods()?, extra, agent)
    }

    /// As [`Testbed::start`] with the given pods (client first, server second).
    pub fn start_with(pods: Vec<Object>, extra: Vec<Object>, agent: bool) -> anyhow::Result<Self> {
        let mut resources = pods;
        resources.extend(extra);
        let scenario = Scenario {
            kube_proxy: crate::lab::KubeProxyMode::default(),
            agent_args: Vec::new(),
            resources,
            steps: Vec::new(),
        };
        let lab = Lab::start(
            &scenario,
            &LabOptions {
                agent: None,
                no_agent: !agent,
            },
        )?;
        let plan = |i: usize| -> anyhow::Result<PodPlan> {
            lab.pods().get(i).cloned().context("the lab lost a pod")
        };
        let (client, server) = (plan(0)?, plan(1)?);
        Ok(Self {
            client: Netns::open(&client.netns(lab.id()))?,
            server: Netns::open(&server.netns(lab.id()))?,
            node: Netns::open(&topology::node_netns(lab.id()))?,
            client_ip: client.ipv4.context("client has no IPv4 address")?,
            server_ip: server.ipv4.context("server has no IPv4 address")?,
            client_if: client.host_if(),
            server_if: server.host_if(),
            lab,
        })
    }

    /// New TCP connections per second over `seconds`, to the server pod's address.
    pub fn tcp_rate(&self, seconds: f64) -> anyhow::Result<f64> {
        self.tcp_rate_to(&format!("{}:{SERVER_PORT}", self.server_ip), seconds)
    }

    /// Small UDP datagrams per second received by the server over `seconds` of sending, to
    /// the server pod's address.
    pub fn udp_rate(&self, seconds: f64) -> anyhow::Result<f64> {
        self.udp_rate_to(&format!("{}:{SERVER_PORT}", self.server_ip), seconds)
    }

    /// New TCP connections per second over `seconds`, the client connecting to `to` (the
    /// server's address, or an address kube-proxy translates to it); the server listens on
    /// [`SERVER_PORT`].
    pub fn tcp_rate_to(&self, to: &str, seconds: f64) -> anyhow::Result<f64> {
        let mut server = Loadgen::spawn(
            &self.server,
            &args(
                &["tcp-server", "--port", &SERVER_PORT.to_string()],
                seconds + 10.0,
            ),
        )?;
        server.next_line().context("waiting for the TCP server")?;
        let client = Loadgen::spawn(&self.client, &args(&["tcp", "--to", to], seconds))?;
        let result = client.finish()?;
        drop(server);
        let ok = result["ok"].as_u64().unwrap_or(0);
        if ok == 0 {
            bail!("no TCP connection completed: {result}");
        }
        rate(&result)
    }

    /// Small UDP datagrams per second received by the server (on [`SERVER_PORT`]) over
    /// `seconds` of sending to `to`.
    pub fn udp_rate_to(&self, to: &str, seconds: f64) -> anyhow::Result<f64> {
        let port = SERVER_PORT.to_string();
        let sink = Loadgen::spawn(
            &self.server,
            &args(&["udp-sink", "--port", &port], seconds + 10.0),
        )?;
        let mut sink = sink;
        sink.next_line().context("waiting for the UDP sink")?;
        let sent = Loadgen::spawn(&self.client, &args(&["udp", "--to", to], seconds))?.finish()?;
        let received = sink.finish()?;
        if received["received"].as_u64().unwrap_or(0) == 0 {
            bail!("no UDP datagram arrived (sent {sent})");
        }
        rate(&received)
    }

    /// Replaces whatever rules the node namespace has (`nft flush ruleset` clears iptables-nft
    /// and nftables alike).
    pub fn flush_rules(&self) -> anyhow::Result<()> {
        run_in(&self.node, "nft", &["flush", "ruleset"], "")
    }
}

fn args(list: &[&str], seconds: f64) -> Vec<String> {
    let mut out: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
    out.extend(["--seconds".to_owned(), format!("{seconds:.3}")]);
    out
}

fn rate(result: &Value) -> anyhow::Result<f64> {
    result["rate"]
        .as_f64()
        .with_context(|| format!("no rate in {result}"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Enforcer {
    None,
    Iptables,
    Nftables,
    Palisade,
}

impl Enforcer {
    fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Iptables => "iptables",
            Self::Nftables => "nftables",
            Self::Palisade => "palisade",
        }
    }
}

/// Runs the traffic suite and prints one JSON line per measurement (and per rule-set load).
pub fn run(budget: &Budget) -> anyhow::Result<()> {
    let plain = Testbed::start(Vec::new(), false).context("starting the lab without an agent")?;
    for &size in budget.sizes {
        let entries = rules::entries(size, plain.client_ip);
        let policies = rules::policies(&entries)
            .into_iter()
            .map(Object::from_manifest)
            .collect::<Result<Vec<_>, _>>()?;
        let started = Instant::now();
        let palisade = Testbed::start(policies, true)
            .with_context(|| format!("starting the lab with the agent and {size} policies"))?;
        eprintln!(
            "traffic: {size} rules: Palisade lab up in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        // The agent's own figure for reading, compiling and programming the set, beside the
        // iptables-restore and nft load times below.
        let status_file = std::env::temp_dir()
            .join(format!("palisade-lab-{}", palisade.lab.id()))
            .join("status.json");
        if let Ok(Some(status)) = policy_agent::status::Status::read(&status_file) {
            emit(
                &json!({"kind": "load", "tool": "palisade agent (full sync)", "rules": size,
                "rep": 0, "ms": status.sync_millis}),
            );
        }
        let ipt = rules::iptables(&entries, &plain.server_if, &plain.client_if);
        let nft = rules::nftables(&entries, &plain.server_if);
        for rep in 0..budget.reps {
            for enforcer in [
                Enforcer::None,
                Enforcer::Iptables,
                Enforcer::Nftables,
                Enforcer::Palisade,
            ] {
                let bed = if enforcer == Enforcer::Palisade {
                    &palisade
                } else {
                    &plain
                };
                if enforcer != Enforcer::Palisade {
                    plain.flush_rules()?;
                }
                let load =
                    |tool: &str, program: &str, args: &[&str], text: &str| -> anyhow::Result<()> {
                        let t = Instant::now();
                        run_in(&plain.node, program, args, text)?;
                        emit(
                            &json!({"kind": "load", "tool": tool, "rules": size, "rep": rep,
                        "ms": t.elapsed().as_secs_f64() * 1e3}),
                        );
                        Ok(())
                    };
                match enforcer {
                    Enforcer::Iptables => load("iptables-restore", "iptables-restore", &[], &ipt)?,
                    Enforcer::Nftables => load("nft -f", "nft", &["-f", "-"], &nft)?,
                    Enforcer::None | Enforcer::Palisade => {}
                }
                let tcp = bed
                    .tcp_rate(budget.seconds)
                    .with_context(|| format!("{} at {size} rules: TCP", enforcer.name()))?;
                let udp = bed
                    .udp_rate(budget.seconds)
                    .with_context(|| format!("{} at {size} rules: UDP", enforcer.name()))?;
                eprintln!(
                    "traffic: {size:>6} rules, rep {rep}: {:<9} {tcp:>9.0} conn/s {udp:>10.0} UDP pkt/s",
                    enforcer.name()
                );
                for (metric, value) in [("tcp_conn_per_s", tcp), ("udp_pkt_per_s", udp)] {
                    emit(
                        &json!({"kind": "traffic", "enforcer": enforcer.name(), "rules": size,
                        "rep": rep, "metric": metric, "value": value}),
                    );
                }
            }
        }
        plain.flush_rules()?;
        drop(palisade);
    }
    Ok(())
}
