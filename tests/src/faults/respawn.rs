//! An agent of the test's own on a lab's pins and datastore, for what the lab's agent cannot
//! do: run with other arguments than the scenario's `agentArgs` (a larger `--rule-capacity`
//! after a refusal). The lab's agent must be stopped first (a step with `agent: stop`).
//!
//! Its status file and log live in a directory of its own, recorded with the process in a
//! [`Resources`] of its own: dropped (or interrupted) it stops the agent and removes them,
//! before the lab removes the pins the agent uses as long as it is dropped first.

use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;
use policy_agent::status::Status;

use crate::lab::{
    Lab,
    agent::{self, AgentPaths},
    cleanup::Resources,
    datastore::Datastore,
    netns::Netns,
    topology,
};

/// Where a lab keeps its datastore (the lab's own layout: `<tmp>/palisade-lab-<id>/datastore`).
pub fn datastore_dir(lab: &Lab) -> PathBuf {
    std::env::temp_dir()
        .join(format!("palisade-lab-{}", lab.id()))
        .join("datastore")
}

/// A running agent of the test's own.
pub struct OwnAgent {
    paths: AgentPaths,
    resources: Resources,
}

impl OwnAgent {
    /// Starts `policy-agent run` in the lab's node namespace, on its pins and datastore, with
    /// `extra_args`.
    pub fn start(lab: &Lab, binary: PathBuf, extra_args: &[&str]) -> anyhow::Result<Self> {
        let id = format!("{}-own", lab.id());
        let resources = Resources::new(&id);
        let dir = std::env::temp_dir().join(format!("palisade-faults-{id}"));
        resources.lab_dir(&dir)?;
        let paths = AgentPaths {
            binary,
            datastore: datastore_dir(lab),
            pin_dir: lab.pin_dir(),
            status_file: dir.join("status.json"),
            log_file: dir.join("agent.log"),
            extra_args: extra_args.iter().map(|a| (*a).to_owned()).collect(),
        };
        let node = Netns::open(&topology::node_netns(lab.id()))?;
        resources.agent(|| agent::spawn(&paths, node.file(), None))?;
        Ok(Self { paths, resources })
    }

    /// Waits until it reports the datastore as it is now programmed, with `interfaces`
    /// attached.
    pub fn wait_programmed(&self, interfaces: &[String]) -> anyhow::Result<(Status, Duration)> {
        let digest = Datastore::new(self.paths.datastore.clone())
            .digest()
            .context("the datastore's digest")?;
        agent::wait_programmed(&self.paths, &self.resources, &digest, interfaces)
    }

    pub fn log_tail(&self) -> Vec<String> {
        agent::log_tail(&self.paths.log_file, agent::LOG_TAIL_LINES)
    }

    /// Stops it (SIGTERM, then SIGKILL after a grace period) and removes its files.
    pub fn stop(self) {
        self.resources.clean_up();
    }
}
