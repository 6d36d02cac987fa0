//! The lab itself: sets up pods, servers and the agent for a scenario, runs its steps, and
//! removes everything when dropped.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, bail};
use tokio::runtime::Runtime;

use super::{
    agent::{self, AgentPaths},
    cleanup::{self, Resources},
    datastore::Datastore,
    netns::{self, Netns},
    probes::{self, Prepared},
    report::{ErrorCheck, ProbeResult, Report, StepReport},
    scenario::{AgentAction, Family, PodRef, Probe, Protocol, Scenario, Step},
    servers::Servers,
    topology::{self, PodPlan},
};

/// How the lab runs.
#[derive(Debug, Clone, Default)]
pub struct LabOptions {
    /// The agent binary; `None` means [`agent::agent_binary`].
    pub agent: Option<PathBuf>,
    /// Run without an agent: nothing waits, nothing is enforced (for developing the lab).
    pub no_agent: bool,
}

/// A running lab. Dropping it stops the agent and servers and removes namespaces, pins and
/// files.
pub struct Lab {
    id: String,
    plans: Vec<PodPlan>,
    by_pod: BTreeMap<PodRef, usize>,
    /// Open handles on the pods' namespaces, indexed like `plans`.
    pod_netns: Vec<Netns>,
    netns_names: Vec<String>,
    datastore: Datastore,
    lab_dir: PathBuf,
    agent: Option<AgentPaths>,
    /// The agent's paths while a step has it stopped.
    stopped_agent: Option<AgentPaths>,
    servers: Servers,
    runtime: Option<Runtime>,
    steps: Vec<StepReport>,
    seen_errors: Vec<String>,
    resources: Resources,
    /// Connections probes kept open (`keep`), by name.
    kept: std::collections::HashMap<String, probes::Kept>,
}

/// Runs a whole scenario and returns what it observed. Errors mean the lab could not run
/// (setup failed, the agent exited or did not program a step in time), not that a probe
/// mismatched: check [`Report::all_ok`] for that.
pub fn run_scenario(scenario: &Scenario, options: &LabOptions) -> anyhow::Result<Report> {
    run_scenario_with(scenario, options, |_| {})
}

/// [`run_scenario`], calling `on_step` as each step completes (for streaming output).
pub fn run_scenario_with(
    scenario: &Scenario,
    options: &LabOptions,
    mut on_step: impl FnMut(&StepReport),
) -> anyhow::Result<Report> {
    let mut lab = Lab::start(scenario, options)?;
    for (i, step) in scenario.steps.iter().enumerate() {
        let number = i + 1;
        let report = lab
            .run_step(number, step)
            .with_context(|| format!("step {number} ({})", step.display_name(number)))?;
        on_step(&report);
    }
    lab.finish()
}

fn lab_dir_for(id: &str) -> PathBuf {
    std::env::temp_dir().join(format!("palisade-lab-{id}"))
}

fn pin_dir_for(id: &str) -> PathBuf {
    Path::new(agent::BPFFS).join(format!("palisade-lab-{id}"))
}

impl Lab {
    /// Creates the namespaces, starts the servers, writes the initial resources, starts the
    /// agent and waits until it has programmed them and attached to every pod interface.
    pub fn start(scenario: &Scenario, options: &LabOptions) -> anyhow::Result<Self> {
        // Refuse what cannot run before creating anything.
        if let Some(probe) = scenario
            .steps
            .iter()
            .flat_map(|step| &step.probes)
            .find(|probe| probe.protocol == Protocol::Sctp)
        {
            return Err(probes::sctp_unsupported(probe));
        }
        let pods = scenario.pods()?;
        let plans = topology::plan(&pods)?;
        // Resolve the agent before creating anything, so a missing binary costs nothing.
        let binary = match (&options.agent, options.no_agent) {
            (_, true) => None,
            (Some(path), false) => Some(path.clone()),
            (None, false) => Some(agent::agent_binary()?),
        };
        let id = cleanup::allocate_id(|id| {
            netns::exists(&topology::node_netns(id))
                || lab_dir_for(id).exists()
                || pin_dir_for(id).exists()
        })
        .context("no free lab id")?;
        tracing::info!(%id, "starting lab");
        let resources = Resources::new(&id);
        let lab_dir = lab_dir_for(&id);
        resources.lab_dir(&lab_dir)?;
        let store_dir = lab_dir.join("datastore");
        std::fs::create_dir(&store_dir)
            .with_context(|| format!("creating {}", store_dir.display()))?;

        topology::build(&id, &plans, &resources)?;
        let mut netns_names = vec![topology::node_netns(&id)];
        netns_names.extend(plans.iter().map(|p| p.netns(&id)));
        let pod_netns = plans
            .iter()
            .map(|p| Netns::open(&p.netns(&id)))
            .collect::<Result<Vec<_>, _>>()?;

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("lab-io")
            .enable_all()
            .build()
            .context("starting the tokio runtime")?;
        let mut lab = Self {
            by_pod: plans.iter().map(|p| (p.pod.clone(), p.index)).collect(),
            id,
            plans,
            pod_netns,
            netns_names,
            datastore: Datastore::new(store_dir),
            lab_dir,
            agent: None,
            stopped_agent: None,
            servers: Servers::default(),
            runtime: Some(runtime),
            steps: Vec::new(),
            seen_errors: Vec::new(),
            resources,
            kept: std::collections::HashMap::new(),
        };
        lab.start_servers(scenario)?;
        lab.write_initial(scenario)?;
        if let Some(binary) = binary {
            lab.start_agent(binary)?;
        }
        Ok(lab)
    }

    /// Where the agent pins its maps (`bpftool map dump pinned <dir>/PALISADE_RULES`).
    pub fn pin_dir(&self) -> PathBuf {
        pin_dir_for(&self.id)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn pods(&self) -> &[PodPlan] {
        &self.plans
    }

    fn runtime(&self) -> anyhow::Result<&Runtime> {
        self.runtime.as_ref().context("the lab's runtime is gone")
    }

    fn start_servers(&mut self, scenario: &Scenario) -> anyhow::Result<()> {
        let served = scenario.served_ports()?;
        let handle = self.runtime()?.handle().clone();
        for (pod, ports) in &served {
            let index = self.pod_index(pod)?;
            self.servers
                .start(&handle, &self.plans[index], &self.pod_netns[index], ports)?;
        }
        Ok(())
    }

    fn write_initial(&self, scenario: &Scenario) -> anyhow::Result<()> {
        Ok(self.datastore.write_resources(scenario, &self.plans)?)
    }

    fn start_agent(&mut self, binary: PathBuf) -> anyhow::Result<()> {
        if agent::ensure_bpffs()? {
            eprintln!(
                "lab: {} was not a bpffs; mounted one there (it stays mounted)",
                agent::BPFFS
            );
        }
        let pin_dir = pin_dir_for(&self.id);
        self.resources.pin_dir(&pin_dir)?;
        let paths = AgentPaths {
            binary,
            datastore: self.datastore.dir().to_owned(),
            pin_dir,
            status_file: self.lab_dir.join("status.json"),
            log_file: self.lab_dir.join("agent.log"),
        };
        self.spawn_agent(paths)
    }

    /// Starts the agent and waits until it has programmed the datastore as it is.
    fn spawn_agent(&mut self, paths: AgentPaths) -> anyhow::Result<()> {
        // A previous run's status would already name this datastore's digest.
        match std::fs::remove_file(&paths.status_file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(
                    anyhow::anyhow!(e).context(format!("removing {}", paths.status_file.display()))
                );
            }
        }
        let node = Netns::open(&topology::node_netns(&self.id))?;
        let pid = self.resources.agent(|| agent::spawn(&paths, node.file()))?;
        tracing::info!(pid, binary = %paths.binary.display(), "agent started");
        let digest = self.datastore.digest()?;
        let (status, took) =
            agent::wait_programmed(&paths, &self.resources, &digest, &self.interfaces())
                .context("waiting for the agent to program the resources")?;
        tracing::info!(
            ms = took.as_millis(),
            generation = status.generation,
            "resources programmed"
        );
        self.agent = Some(paths);
        Ok(())
    }

    /// Stops or (re)starts the agent for a step.
    fn agent_action(&mut self, action: AgentAction) -> anyhow::Result<()> {
        if matches!(action, AgentAction::Stop | AgentAction::Restart) {
            let paths = self
                .agent
                .take()
                .context("the step stops the agent, but no agent runs")?;
            self.resources.stop_agent();
            tracing::info!("agent stopped");
            self.stopped_agent = Some(paths);
        }
        if matches!(action, AgentAction::Start | AgentAction::Restart) {
            let paths = self
                .stopped_agent
                .take()
                .context("the step starts the agent, but it was not stopped")?;
            self.spawn_agent(paths)?;
            self.check_one_program_per_hook()?;
        }
        Ok(())
    }

    /// After a restart, every pod interface must carry exactly one Palisade program per
    /// direction: the new agent's links replaced the old ones instead of adding to them.
    fn check_one_program_per_hook(&self) -> anyhow::Result<()> {
        let node = Netns::open(&topology::node_netns(&self.id))?;
        let interfaces = self.interfaces();
        let counts = std::thread::scope(|scope| {
            scope
                .spawn(|| -> anyhow::Result<Vec<(String, &str, usize)>> {
                    nix::sched::setns(node.file(), nix::sched::CloneFlags::CLONE_NEWNET)
                        .context("entering the node namespace")?;
                    let mut counts = Vec::new();
                    for interface in &interfaces {
                        for (hook, attach_type) in [
                            ("ingress", aya::programs::TcAttachType::Ingress),
                            ("egress", aya::programs::TcAttachType::Egress),
                        ] {
                            let (_, programs) =
                                aya::programs::SchedClassifier::query_tcx(interface, attach_type)
                                    .with_context(|| format!("querying {interface} {hook}"))?;
                            let ours = programs
                                .iter()
                                .filter(|p| {
                                    p.name_as_str().is_some_and(|n| n.starts_with("palisade"))
                                })
                                .count();
                            counts.push((interface.clone(), hook, ours));
                        }
                    }
                    Ok(counts)
                })
                .join()
                .map_err(|_| anyhow::anyhow!("the tcx query thread panicked"))?
        })?;
        let wrong: Vec<String> = counts
            .iter()
            .filter(|(_, _, n)| *n != 1)
            .map(|(interface, hook, n)| format!("{interface} {hook}: {n}"))
            .collect();
        anyhow::ensure!(
            wrong.is_empty(),
            "after the agent started again, Palisade programs per hook (want 1): {}",
            wrong.join(", ")
        );
        Ok(())
    }

    fn interfaces(&self) -> Vec<String> {
        self.plans.iter().map(PodPlan::host_if).collect()
    }

    fn pod_index(&self, pod: &PodRef) -> anyhow::Result<usize> {
        self.by_pod
            .get(pod)
            .copied()
            .with_context(|| format!("pod {pod} is not in the lab"))
    }

    /// Applies a step's changes, waits until the agent programmed them, runs the probes and
    /// checks the expected errors.
    pub fn run_step(&mut self, number: usize, step: &Step) -> anyhow::Result<StepReport> {
        if let Some(action) = step.agent {
            self.agent_action(action)?;
        }
        self.datastore.write_step(step, &self.plans)?;

        let (programmed_ms, agent_errors) = match &self.agent {
            Some(paths) => {
                let digest = self.datastore.digest()?;
                let (status, took) =
                    agent::wait_programmed(paths, &self.resources, &digest, &self.interfaces())?;
                let errors: Vec<String> = status.errors.iter().map(ToString::to_string).collect();
                (Some(millis(took)), errors)
            }
            None => (None, Vec::new()),
        };
        for e in &agent_errors {
            if !self.seen_errors.contains(e) {
                self.seen_errors.push(e.clone());
            }
        }

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
            probes,
            agent_errors,
            error_checks,
        };
        self.steps.push(report.clone());
        Ok(report)
    }

    fn destination(&self, probe: &Probe) -> anyhow::Result<IpAddr> {
        let plan = &self.plans[self.pod_index(&probe.to)?];
        let ip = match probe.family {
            Family::V4 => plan.ipv4.map(IpAddr::V4),
            Family::V6 => plan.ipv6.map(IpAddr::V6),
        };
        ip.with_context(|| {
            format!(
                "pod {} has no IPv{} address",
                probe.to,
                probe.family.number()
            )
        })
    }

    /// All probes of a step at once: sockets are made in the source namespaces first, then
    /// driven concurrently. Probes `over` a kept connection use it instead of a new one.
    fn run_probes(&mut self, number: usize, probes: &[Probe]) -> anyhow::Result<Vec<ProbeResult>> {
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
                None => {
                    let source = &self.pod_netns[self.pod_index(&probe.from)?];
                    Task::New(probes::prepare(
                        source,
                        probe,
                        self.destination(probe)?,
                        payload.into_bytes(),
                    )?)
                }
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
                from: probe.from.to_string(),
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

    /// Checks the agent is still alive, stops everything, removes what the lab made and
    /// returns the report.
    pub fn finish(mut self) -> anyhow::Result<Report> {
        let tail = self
            .agent
            .as_ref()
            .map(|a| agent::log_tail(&a.log_file, agent::LOG_TAIL_LINES))
            .unwrap_or_default();
        if let Some(paths) = &self.agent
            && let Some(status) = self.resources.agent_exit()?
        {
            bail!(
                "the agent exited ({status}) during the run\n{}",
                agent::describe_tail(&paths.log_file)
            );
        }
        let report = Report {
            lab_id: self.id.clone(),
            netns: self.netns_names.clone(),
            pin_dir: self.agent.as_ref().map(|a| a.pin_dir.clone()),
            lab_dir: self.lab_dir.clone(),
            steps: std::mem::take(&mut self.steps),
            agent_errors: std::mem::take(&mut self.seen_errors),
            agent_log_tail: tail,
        };
        self.shut_down();
        Ok(report)
    }

    fn shut_down(&mut self) {
        // Servers and probes first (their sockets pin the pods' namespaces), then the rest.
        std::mem::take(&mut self.servers);
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
        self.pod_netns.clear();
        self.resources.clean_up();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.shut_down();
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
