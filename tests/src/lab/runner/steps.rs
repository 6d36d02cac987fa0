//! Running a scenario's steps: each step's changes, the wait for the agents to program
//! them, and its probes.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
};

use anyhow::Context as _;

use crate::lab::{
    agent::{self},
    netns::Netns,
    probes::{self, Prepared},
    report::{ErrorCheck, ProbeResult, StepReport},
    scenario::{Family, PodRef, Probe, ServiceTarget, Step},
    services::{self},
};

use super::{End, Lab, millis};

impl Lab {
    /// Runs `steps` in order, printing each step's table; the steps whose probes did not all
    /// see their expected verdict, as `step N`.
    pub fn run_steps(&mut self, steps: &[Step]) -> anyhow::Result<Vec<String>> {
        let mut failed = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            let report = self.run_step(i + 1, step)?;
            eprintln!("{}", report.render_table());
            if !report.all_ok() {
                failed.push(format!("step {}", i + 1));
            }
        }
        Ok(failed)
    }

    /// Applies a step's changes, waits until the agent programmed them, runs the probes and
    /// checks the expected errors.
    pub fn run_step(&mut self, number: usize, step: &Step) -> anyhow::Result<StepReport> {
        if let Some(action) = step.agent {
            self.agent_action(action)?;
        }
        self.write_step(step)?;

        let awaited = self.running_agents();
        let (programmed_ms, programmed_by_node, agent_errors) = if awaited.is_empty() {
            (None, BTreeMap::new(), Vec::new())
        } else {
            let digest = self.datastore.digest()?;
            let programmed = agent::wait_all_programmed(&awaited, &self.resources, &digest)?;
            // Programmed when the last agent is: that is when every node enforces the step.
            let all = programmed
                .iter()
                .map(|(_, took)| millis(*took))
                .max()
                .unwrap_or_default();
            let by_node: BTreeMap<String, u64> = if awaited.len() > 1 {
                awaited
                    .iter()
                    .zip(&programmed)
                    .map(|(a, (_, took))| (a.node.to_owned(), millis(*took)))
                    .collect()
            } else {
                BTreeMap::new()
            };
            let mut errors: Vec<String> = Vec::new();
            for e in programmed.iter().flat_map(|(status, _)| &status.errors) {
                let e = e.to_string();
                if !errors.contains(&e) {
                    errors.push(e);
                }
            }
            // A step the agent refused whole: the maps kept the previous step's state.
            for (status, _) in &programmed {
                if let Some(refused) = status.refused.as_ref().filter(|r| r.digest == digest) {
                    let e = format!("refused: {}", refused.error);
                    if !errors.contains(&e) {
                        errors.push(e);
                    }
                }
            }
            (Some(all), by_node, errors)
        };
        let probes = self.run_probes(number, &step.probes)?;
        let error_checks = step
            .expect_errors
            .iter()
            .map(|expected| ErrorCheck {
                expect_error: expected.clone(),
                ok: agent_errors.iter().any(|e| e.contains(expected.as_str())),
            })
            .collect();
        let report = StepReport {
            number,
            name: step.display_name(number),
            programmed_ms,
            programmed_by_node,
            probes,
            agent_errors,
            error_checks,
        };
        self.steps.push(report.clone());
        Ok(report)
    }

    /// Where a probe connects: its destination's address in the probe's family and port, a
    /// Service's ClusterIP and port, or a node's address and the Service port's nodePort.
    pub(super) fn destination(&self, probe: &Probe) -> anyhow::Result<SocketAddr> {
        let Some(target) = &probe.service else {
            return Ok(SocketAddr::new(
                self.address(&probe.to, probe.family)?,
                probe.port,
            ));
        };
        let (namespace, name) = target.service();
        let plan = self
            .services
            .plans()
            .get(namespace, name)
            .with_context(|| format!("no Service {namespace}/{name}"))?;
        match target {
            ServiceTarget::ClusterIp { .. } => {
                let ip = plan.cluster_ip(probe.family).with_context(|| {
                    format!(
                        "Service {namespace}/{name} has no IPv{} ClusterIP",
                        probe.family.number()
                    )
                })?;
                Ok(SocketAddr::new(ip, probe.port))
            }
            ServiceTarget::NodePort { node, .. } => {
                let node = self
                    .nodes
                    .iter()
                    .find(|n| n.name == *node)
                    .with_context(|| format!("node {node} is not in the lab"))?;
                let node_port = plan
                    .ports
                    .iter()
                    .find(|p| p.port == probe.port && p.protocol == probe.protocol)
                    .and_then(|p| p.node_port)
                    .with_context(|| {
                        format!(
                            "Service {namespace}/{name} has no nodePort for port {}",
                            probe.port
                        )
                    })?;
                Ok(SocketAddr::new(
                    services::node_address(node, probe.family),
                    node_port,
                ))
            }
        }
    }

    /// The address of a probe's end in the probe's family.
    pub(super) fn address(&self, end: &PodRef, family: Family) -> anyhow::Result<IpAddr> {
        let ip = match self.end(end)? {
            End::Pod(index) => {
                let plan = &self.plans[index];
                match family {
                    Family::V4 => plan.ipv4.map(IpAddr::V4),
                    Family::V6 => plan.ipv6.map(IpAddr::V6),
                }
            }
            End::HostEndpoint(hep) => hep.ip(family),
        };
        ip.with_context(|| format!("{end} has no IPv{} address", family.number()))
    }

    /// Creates a new probe's socket at its source: in the pod's namespace, or in the host
    /// endpoint's node's namespace bound to the host endpoint's address.
    pub(super) fn prepare(&self, probe: &Probe, payload: Vec<u8>) -> anyhow::Result<Prepared> {
        let destination = self.destination(probe)?;
        match self.end(&probe.from)? {
            End::Pod(index) => {
                probes::prepare(&self.pod_netns[index], probe, destination, None, payload)
            }
            End::HostEndpoint(hep) => {
                let source = self.address(&probe.from, probe.family)?;
                let node = Netns::open(&self.node_netns(&hep.node)?)?;
                probes::prepare(&node, probe, destination, Some(source), payload)
            }
        }
    }

    /// All probes of a step at once: sockets are made in the source namespaces first, then
    /// driven concurrently. Probes `over` a kept connection use it instead of a new one.
    pub(super) fn run_probes(
        &mut self,
        number: usize,
        probes: &[Probe],
    ) -> anyhow::Result<Vec<ProbeResult>> {
        enum Task {
            New(Prepared),
            Over(probes::Kept),
            /// The kept connection already failed in an earlier step.
            Gone,
        }
        let mut tasks: Vec<Task> = Vec::with_capacity(probes.len());
        let mut payloads = Vec::with_capacity(probes.len());
        for (i, probe) in probes.iter().enumerate() {
            let payload = format!(
                "palisade-lab {} step {number} probe {i}: {} -> {}:{}/{}\n",
                self.id, probe.from, probe.to, probe.port, probe.protocol
            );
            payloads.push(payload.clone().into_bytes());
            let task = match &probe.over {
                Some(name) => self.kept.remove(name).map_or(Task::Gone, Task::Over),
                None => Task::New(self.prepare(probe, payload.into_bytes())?),
            };
            tasks.push(task);
        }
        let runtime = self.runtime()?;
        let handles: Vec<_> = tasks
            .into_iter()
            .zip(probes.iter().zip(payloads))
            .map(|(task, (probe, payload))| {
                let limit = std::time::Duration::from_millis(probe.timeout_ms());
                runtime.spawn(async move {
                    match task {
                        Task::New(prepared) => prepared.run().await,
                        Task::Over(kept) => probes::run_over(kept, payload, limit).await,
                        Task::Gone => (
                            probes::Observation {
                                verdict: crate::lab::scenario::Verdict::Deny,
                                detail: "connection already broken".to_owned(),
                                elapsed_ms: 0,
                            },
                            None,
                        ),
                    }
                })
            })
            .collect();
        let observations = runtime.block_on(async {
            let mut out = Vec::with_capacity(handles.len());
            for handle in handles {
                out.push(handle.await);
            }
            out
        });
        let mut results = Vec::with_capacity(probes.len());
        for (probe, observation) in probes.iter().zip(observations) {
            let (observation, kept) = observation.context("a probe task failed")?;
            if let (Some(kept), Some(name)) = (kept, probe.keep.as_ref().or(probe.over.as_ref())) {
                self.kept.insert(name.clone(), kept);
            }
            results.push(ProbeResult {
                // `ns/pod:port` when the probe chose its source port.
                from: match probe.source_port {
                    Some(port) => format!("{}:{port}", probe.from),
                    None => probe.from.to_string(),
                },
                to: probe.to.to_string(),
                port: probe.port,
                protocol: probe.protocol,
                family: probe.family,
                expect: probe.expect,
                ok: observation.verdict == probe.expect,
                observed: observation.verdict,
                detail: observation.detail,
                elapsed_ms: observation.elapsed_ms,
            });
        }
        Ok(results)
    }
}
