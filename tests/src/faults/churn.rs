//! A cycle of policy states taken from a scenario file, and the flows that watch it.
//!
//! The scenario's last step must return to the state of its resources, so that its steps can
//! be applied round and round; each step's probes give that state's verdicts, which the
//! [`judge`](super::judge) holds every sample to (a flow the probes do not cover is an
//! error, not a guess).

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use super::{
    judge::{Change, Verdicts},
    prober::{Flow, FlowKind},
};
use crate::lab::{
    Lab, Scenario, Step,
    netns::Netns,
    scenario::{PodRef, Protocol, Verdict},
};

/// A flow between two of the scenario's pods.
#[derive(Debug, Clone)]
pub struct FlowPlan {
    pub kind: FlowKind,
    pub from: PodRef,
    pub to: PodRef,
    pub port: u16,
}

impl FlowPlan {
    pub fn new(kind: FlowKind, from: &str, to: &str, port: u16) -> anyhow::Result<Self> {
        Ok(Self {
            kind,
            from: from.parse().with_context(|| format!("pod {from}"))?,
            to: to.parse().with_context(|| format!("pod {to}"))?,
            port,
        })
    }

    fn protocol(&self) -> Protocol {
        match self.kind {
            FlowKind::NewTcp | FlowKind::KeptTcp => Protocol::Tcp,
            FlowKind::NewUdp | FlowKind::KeptUdp => Protocol::Udp,
        }
    }

    pub fn name(&self) -> String {
        let kind = match self.kind {
            FlowKind::NewTcp => "new connections",
            FlowKind::NewUdp => "new source ports",
            FlowKind::KeptUdp => "one socket",
            FlowKind::KeptTcp => "one connection",
        };
        format!(
            "{} -> {}:{}/{} ({kind})",
            self.from.name,
            self.to.name,
            self.port,
            self.protocol()
        )
    }
}

/// The scenario's steps as changes, and the verdicts of each state: state 0 is the initial
/// one (the same as after the last step), state `k` the one step `k` (1-based) leads to.
#[derive(Debug, Clone)]
pub struct Cycle {
    /// The steps without their probes: applying them is all a change does.
    pub changes: Vec<Step>,
    pub verdicts: Verdicts,
}

impl Cycle {
    pub fn new(scenario: &Scenario, flows: &[FlowPlan]) -> anyhow::Result<Self> {
        anyhow::ensure!(!scenario.steps.is_empty(), "the scenario has no steps");
        let mut passes = Vec::with_capacity(scenario.steps.len() + 1);
        for (i, step) in scenario.steps.iter().enumerate() {
            let verdicts = flows
                .iter()
                .map(|flow| {
                    step.probes
                        .iter()
                        .find(|p| {
                            p.from == flow.from
                                && p.to == flow.to
                                && p.port == flow.port
                                && p.protocol == flow.protocol()
                                && p.service.is_none()
                        })
                        .map(|p| p.expect == Verdict::Allow)
                        .with_context(|| format!("step {} has no probe for {}", i + 1, flow.name()))
                })
                .collect::<anyhow::Result<Vec<bool>>>()?;
            passes.push(verdicts);
        }
        // The last step returns to the initial state.
        let initial = passes.last().cloned().unwrap_or_default();
        passes.insert(0, initial);
        let changes = scenario
            .steps
            .iter()
            .map(|step| Step {
                probes: Vec::new(),
                ..step.clone()
            })
            .collect();
        Ok(Self {
            changes,
            verdicts: Verdicts { passes },
        })
    }

    /// The change made `n`-th (0-based) going round, and the state it leads to.
    pub fn nth(&self, n: usize) -> (&Step, usize) {
        let i = n % self.changes.len();
        (&self.changes[i], i + 1)
    }
}

/// Each flow with its source pod's namespace, its destination resolved in the lab.
pub fn flows(lab: &Lab, plans: &[FlowPlan]) -> anyhow::Result<Vec<(Flow, Netns)>> {
    plans
        .iter()
        .map(|plan| {
            let pod = |r: &PodRef| {
                lab.pods()
                    .iter()
                    .find(|p| p.pod == *r)
                    .with_context(|| format!("{r} is not a pod of the lab"))
            };
            let (from, to) = (pod(&plan.from)?, pod(&plan.to)?);
            let ip = to
                .ipv4
                .with_context(|| format!("{} has no IPv4", plan.to))?;
            let netns = Netns::open(&from.netns(lab.id()))?;
            let flow = Flow {
                name: plan.name(),
                kind: plan.kind,
                destination: SocketAddr::from((ip, plan.port)),
            };
            Ok((flow, netns))
        })
        .collect()
}

/// Applies change `n` of the cycle and waits until the agent reports it programmed: the
/// change's written and programmed instants. A change the agent refused, or reported an
/// error for, fails: its state would not be the one the verdicts describe.
pub fn apply(lab: &mut Lab, cycle: &Cycle, n: usize) -> anyhow::Result<Change> {
    let (step, state) = cycle.nth(n);
    let written = Instant::now();
    let report = lab
        .run_step(n + 1, step)
        .with_context(|| format!("change {n} ({})", step.name))?;
    let programmed = Instant::now();
    anyhow::ensure!(
        report.agent_errors.is_empty(),
        "change {n} ({}): the agent reported {:?}",
        step.name,
        report.agent_errors
    );
    Ok(Change {
        written,
        programmed,
        state,
    })
}

/// How long from written to programmed, as milliseconds: (median, maximum).
pub fn latency(changes: &[Change]) -> (f64, f64) {
    let mut ms: Vec<f64> = changes
        .iter()
        .map(|c| c.programmed.duration_since(c.written).as_secs_f64() * 1e3)
        .collect();
    ms.sort_by(f64::total_cmp);
    let median = ms.get(ms.len() / 2).copied().unwrap_or_default();
    (median, ms.last().copied().unwrap_or_default())
}

/// A count from the environment, else `default`.
pub fn env_count(var: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(var) {
        Ok(text) => text
            .parse()
            .with_context(|| format!("{var}={text}: not a count")),
        Err(_) => Ok(default),
    }
}

/// Sleeps `dwell`, or less if that would pass `deadline`.
pub fn hold(dwell: Duration, deadline: Instant) {
    let left = deadline.saturating_duration_since(Instant::now());
    std::thread::sleep(dwell.min(left));
}
