//! The lab's agents: started one per node, stopped, restarted and killed as steps ask, and
//! what they report.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::lab::{
    agent::{self, AgentPaths, Awaited},
    netns::Netns,
    scenario::AgentAction,
    topology::{self, PodPlan},
};

use super::{
    Lab, NodeAgent, node_file, node_pin_dir, palisade_programs_per_hook, remove_if_present,
};

impl Lab {
    /// Prepares one agent per node (pin directory, status file, log) and starts them all.
    pub(super) fn start_agents(
        &mut self,
        binary: PathBuf,
        extra_args: &[String],
    ) -> anyhow::Result<()> {
        if agent::ensure_bpffs()? {
            eprintln!(
                "lab: {} was not a bpffs; mounted one there (it stays mounted)",
                agent::BPFFS
            );
        }
        let several = topology::has_fabric(&self.nodes);
        for node in &self.nodes {
            let pin_dir = node_pin_dir(&self.id, node);
            self.resources.pin_dir(&pin_dir)?;
            self.agents.push(NodeAgent {
                node: node.name.clone(),
                netns: node.netns(&self.id),
                paths: AgentPaths {
                    binary: binary.clone(),
                    datastore: self.datastore.dir().to_owned(),
                    pin_dir,
                    status_file: node_file(&self.lab_dir, node, "status", "json"),
                    log_file: node_file(&self.lab_dir, node, "agent", "log"),
                    extra_args: extra_args.to_vec(),
                },
                interfaces: self
                    .plans
                    .iter()
                    .filter(|p| p.node == node.name)
                    .map(PodPlan::host_if)
                    .collect(),
                node_name: several.then(|| node.name.clone()),
                running: false,
            });
        }
        self.spawn_agents()
    }

    /// Starts every stopped agent and waits until each has programmed the datastore as it is.
    pub(super) fn spawn_agents(&mut self) -> anyhow::Result<()> {
        for agent in self.agents.iter_mut().filter(|a| !a.running) {
            // A previous run's status would already name this datastore's digest.
            remove_if_present(&agent.paths.status_file)?;
            let node = Netns::open(&agent.netns)?;
            let pid = self.resources.node_agent(&agent.node, || {
                agent::spawn(&agent.paths, node.file(), agent.node_name.as_deref())
            })?;
            tracing::info!(pid, node = %agent.node, binary = %agent.paths.binary.display(), "agent started");
            agent.running = true;
        }
        let digest = self.datastore.digest()?;
        let awaited: Vec<Awaited<'_>> = self.agents.iter().map(NodeAgent::awaited).collect();
        let programmed = agent::wait_all_programmed(&awaited, &self.resources, &digest)
            .context("waiting for the agents to program the resources")?;
        for (agent, (status, took)) in self.agents.iter().zip(&programmed) {
            tracing::info!(
                node = %agent.node,
                ms = took.as_millis(),
                generation = status.generation,
                "resources programmed"
            );
        }
        Ok(())
    }

    /// Stops or (re)starts every node's agent for a step.
    pub(super) fn agent_action(&mut self, action: AgentAction) -> anyhow::Result<()> {
        if matches!(action, AgentAction::Stop | AgentAction::Restart) {
            anyhow::ensure!(
                !self.agents.is_empty() && self.agents.iter().all(|a| a.running),
                "the step stops the agents, but they do not run"
            );
            for agent in &mut self.agents {
                self.resources.stop_node_agent(&agent.node);
                agent.running = false;
                tracing::info!(node = %agent.node, "agent stopped");
            }
        }
        if matches!(action, AgentAction::Start | AgentAction::Restart) {
            anyhow::ensure!(
                !self.agents.is_empty() && self.agents.iter().all(|a| !a.running),
                "the step starts the agents, but they were not stopped"
            );
            self.spawn_agents()?;
            self.check_one_program_per_hook()?;
        }
        Ok(())
    }

    /// After a restart, every pod interface must carry exactly one Palisade program on
    /// ingress and two on egress (the post-translation hook and the pod's ingress check):
    /// each node's new agent replaced its old links instead of adding to them.
    pub(super) fn check_one_program_per_hook(&self) -> anyhow::Result<()> {
        let mut wrong = Vec::new();
        for agent in &self.agents {
            let node = Netns::open(&agent.netns)?;
            let counts = node.run(|| palisade_programs_per_hook(&agent.interfaces))??;
            wrong.extend(
                counts
                    .iter()
                    .filter(|(_, hook, n)| *n != if *hook == "egress" { 2 } else { 1 })
                    .map(|(interface, hook, n)| format!("{} {interface} {hook}: {n}", agent.node)),
            );
        }
        anyhow::ensure!(
            wrong.is_empty(),
            "after the agents started again, Palisade programs per hook (want 1 on ingress, 2 on egress): {}",
            wrong.join(", ")
        );
        Ok(())
    }

    /// The running agents, to wait for.
    pub(super) fn running_agents(&self) -> Vec<Awaited<'_>> {
        self.agents
            .iter()
            .filter(|a| a.running)
            .map(NodeAgent::awaited)
            .collect()
    }

    /// Where each node's agent reads, pins, reports and logs, by node.
    pub fn agent_paths(&self) -> Vec<(String, AgentPaths)> {
        self.agents
            .iter()
            .map(|a| (a.node.clone(), a.paths.clone()))
            .collect()
    }

    /// The status file of each node's agent, by node (None: not written yet).
    pub fn agent_statuses(
        &self,
    ) -> anyhow::Result<Vec<(String, Option<policy_agent::status::Status>)>> {
        self.agents
            .iter()
            .map(|a| {
                let status = policy_agent::status::Status::read(&a.paths.status_file)
                    .with_context(|| format!("reading {}", a.paths.status_file.display()))?;
                Ok((a.node.clone(), status))
            })
            .collect()
    }

    /// The end of the agent's log; with several nodes, of each node's, every line prefixed
    /// with its node.
    pub fn agent_log_tail(&self) -> Vec<String> {
        match self.agents.as_slice() {
            [one] => agent::log_tail(&one.paths.log_file, agent::LOG_TAIL_LINES),
            several => several
                .iter()
                .flat_map(|a| {
                    agent::log_tail(&a.paths.log_file, agent::LOG_TAIL_LINES)
                        .into_iter()
                        .map(move |line| format!("[{}] {line}", a.node))
                })
                .collect(),
        }
    }
}
