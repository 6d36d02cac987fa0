//! The lab itself: sets up nodes, pods, servers and one agent per node for a scenario, runs
//! its steps, and removes everything when dropped. The agents are in [`agents`], the steps in
//! [`steps`].

mod agents;
mod steps;

use std::{
    collections::BTreeMap,
    net::IpAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, bail};
use tokio::runtime::Runtime;

use super::{
    agent::{self, AgentPaths, Awaited},
    cleanup::{self, Resources},
    datastore::Datastore,
    netns::{self, Netns},
    probes::{self},
    report::{Report, StepReport},
    scenario::{HostEndpointInfo, PodRef, Protocol, Scenario, Step},
    servers::Servers,
    services::{self, ServiceLab},
    topology::{self, NodePlan, PodPlan},
};

/// How the lab runs.
#[derive(Debug, Clone, Default)]
pub struct LabOptions {
    /// The agent binary; `None` means [`agent::agent_binary`].
    pub agent: Option<PathBuf>,
    /// Run without an agent: nothing waits, nothing is enforced (for developing the lab).
    pub no_agent: bool,
}

/// A running lab. Dropping it stops the agents and servers and removes namespaces, pins and
/// files.
pub struct Lab {
    id: String,
    /// The default node first, then the nodes the scenario names.
    nodes: Vec<NodePlan>,
    plans: Vec<PodPlan>,
    by_pod: BTreeMap<PodRef, usize>,
    /// The scenario's host endpoints by their probe name (`hep/<name>`).
    host_endpoints: BTreeMap<PodRef, HostEndpointInfo>,
    /// Open handles on the pods' namespaces, indexed like `plans`.
    pod_netns: Vec<Netns>,
    netns_names: Vec<String>,
    datastore: Datastore,
    lab_dir: PathBuf,
    /// One agent per node, in `nodes`' order; empty without an agent.
    agents: Vec<NodeAgent>,
    servers: Servers,
    runtime: Option<Runtime>,
    steps: Vec<StepReport>,
    seen_errors: Vec<String>,
    resources: Resources,
    /// Connections probes kept open (`keep`), by name.
    kept: std::collections::HashMap<String, probes::Kept>,
    /// Services, their EndpointSlices and kube-proxy's rules (see `services`).
    services: ServiceLab,
}

/// A node's agent: where it reads, pins and reports, what it must attach to, and whether it
/// runs (a step may stop it).
struct NodeAgent {
    node: String,
    netns: String,
    paths: AgentPaths,
    /// The host-side interfaces of the pods scheduled to this node, which the agent must
    /// report attached before probes run. Not the node's host endpoint interface: an agent
    /// that does not enforce host endpoints never attaches there, and the lab must run with
    /// it too.
    interfaces: Vec<String>,
    /// `--node-name`: only in a lab with a fabric, i.e. several nodes or a host endpoint (one
    /// node enforces on every pod, as the lab always did; host endpoints are matched to their
    /// agent by node name).
    node_name: Option<String>,
    running: bool,
}

impl NodeAgent {
    fn awaited(&self) -> Awaited<'_> {
        Awaited {
            node: &self.node,
            paths: &self.paths,
            interfaces: &self.interfaces,
        }
    }
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

/// A node's pin directory: the default node keeps the one-node lab's.
fn node_pin_dir(id: &str, node: &NodePlan) -> PathBuf {
    if node.is_default() {
        pin_dir_for(id)
    } else {
        Path::new(agent::BPFFS).join(format!("palisade-lab-{id}-{}", node.name))
    }
}

/// A file of the lab directory for `node`: `<stem>.<ext>` for the default node (as in a
/// one-node lab), `<stem>-<node>.<ext>` for the others.
fn node_file(lab_dir: &Path, node: &NodePlan, stem: &str, ext: &str) -> PathBuf {
    if node.is_default() {
        lab_dir.join(format!("{stem}.{ext}"))
    } else {
        lab_dir.join(format!("{stem}-{}.{ext}", node.name))
    }
}

impl Lab {
    /// Creates the namespaces, starts the servers, writes the initial resources, starts every
    /// node's agent and waits until each has programmed them and attached to its pods'
    /// interfaces.
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
        let host_endpoints = scenario.host_endpoints()?;
        let nodes = topology::plan_nodes(&scenario.nodes()?, &plans, &host_endpoints)?;
        // Resolve the agent before creating anything, so a missing binary costs nothing.
        let binary = match (&options.agent, options.no_agent) {
            (_, true) => None,
            (Some(path), false) => Some(path.clone()),
            (None, false) => Some(agent::agent_binary()?),
        };
        if binary.is_some() && nodes.len() > 1 && super::datastore::publisher().is_some() {
            bail!(
                "the scenario names {} nodes, but this lab publishes through a datastore \
                 publisher, which serves one node's agent",
                nodes.len()
            );
        }
        let id = cleanup::allocate_id(|id| {
            netns::exists(&topology::node_netns(id))
                || lab_dir_for(id).exists()
                || pin_dir_for(id).exists()
        })
        .context("no free lab id")?;
        tracing::info!(%id, nodes = nodes.len(), "starting lab");
        let resources = Resources::new(&id);
        let lab_dir = lab_dir_for(&id);
        resources.lab_dir(&lab_dir)?;
        let store_dir = lab_dir.join("datastore");
        std::fs::create_dir(&store_dir)
            .with_context(|| format!("creating {}", store_dir.display()))?;

        topology::build(&id, &nodes, &plans, &resources)?;
        let services = ServiceLab::new(
            scenario,
            scenario.kube_proxy,
            nodes.iter().map(|n| n.netns(&id)).collect(),
        )?;
        if services.active() {
            services::set_up_nodes(&id, &nodes, &plans, services.plans())
                .context("setting up the nodes for Services")?;
        }
        let mut netns_names: Vec<String> = nodes.iter().map(|n| n.netns(&id)).collect();
        if topology::has_fabric(&nodes) {
            netns_names.push(topology::fabric_netns(&id));
        }
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
            host_endpoints: host_endpoints
                .into_iter()
                .map(|h| (h.reference(), h))
                .collect(),
            id,
            nodes,
            plans,
            pod_netns,
            netns_names,
            datastore: Datastore::new(store_dir),
            lab_dir,
            agents: Vec::new(),
            servers: Servers::default(),
            runtime: Some(runtime),
            steps: Vec::new(),
            seen_errors: Vec::new(),
            resources,
            kept: std::collections::HashMap::new(),
            services,
        };
        lab.start_servers(scenario)?;
        lab.start_node_endpoint_servers(scenario)?;
        lab.write_initial(scenario)?;
        if let Some(binary) = binary {
            lab.start_agents(binary, &scenario.agent_args)?;
        }
        Ok(lab)
    }

    /// Where the default node's agent pins its maps (`bpftool map dump pinned
    /// <dir>/PALISADE_RULES`); [`Lab::pin_dirs`] has every node's.
    pub fn pin_dir(&self) -> PathBuf {
        pin_dir_for(&self.id)
    }

    /// Every node's pin directory, by node name, the default node first.
    pub fn pin_dirs(&self) -> Vec<(String, PathBuf)> {
        self.nodes
            .iter()
            .map(|n| (n.name.clone(), node_pin_dir(&self.id, n)))
            .collect()
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn pods(&self) -> &[PodPlan] {
        &self.plans
    }

    /// The nodes, the default node first.
    pub fn nodes(&self) -> &[NodePlan] {
        &self.nodes
    }

    fn runtime(&self) -> anyhow::Result<&Runtime> {
        self.runtime.as_ref().context("the lab's runtime is gone")
    }

    fn start_servers(&mut self, scenario: &Scenario) -> anyhow::Result<()> {
        let mut served = scenario.served_ports()?;
        for (pod, ports) in services::served_target_ports(scenario)? {
            served.entry(pod).or_default().extend(ports);
        }
        let dns_ports: BTreeMap<PodRef, std::collections::BTreeSet<u16>> = scenario
            .resources
            .iter()
            .filter_map(|o| {
                let pod = o.as_pod()?.ok()?;
                let reference = PodRef {
                    namespace: o.key.namespace.clone().unwrap_or_default(),
                    name: o.key.name.clone(),
                };
                Some((reference, services::dns_ports(&pod)))
            })
            .filter(|(_, ports)| !ports.is_empty())
            .collect();
        let handle = self.runtime()?.handle().clone();
        for (end, ports) in &served {
            match self.end(end)? {
                End::Pod(index) => {
                    let dns = dns_ports.get(end).cloned().unwrap_or_default();
                    self.servers.start(
                        &handle,
                        &self.plans[index],
                        &self.pod_netns[index],
                        ports,
                        &dns,
                        &self.services.dns,
                    )?;
                }
                End::HostEndpoint(hep) => {
                    // Cloned: the servers are borrowed mutably below.
                    let hep = hep.clone();
                    let netns = Netns::open(&self.node_netns(&hep.node)?)?;
                    self.servers
                        .start_host_endpoint(&handle, &hep, &netns, ports)?;
                }
            }
        }
        Ok(())
    }

    /// Serves the ports of scenario-written EndpointSlices' endpoints that are a node's own
    /// address (the API-server pattern: a host-network endpoint outside the pods), in that
    /// node's namespace on that address.
    fn start_node_endpoint_servers(&mut self, scenario: &Scenario) -> anyhow::Result<()> {
        let mut wanted: BTreeMap<(usize, IpAddr), std::collections::BTreeSet<u16>> =
            BTreeMap::new();
        let objects = scenario
            .resources
            .iter()
            .chain(scenario.steps.iter().flat_map(|s| &s.apply))
            .filter(|o| o.key.kind == "EndpointSlice");
        for object in objects {
            let slice: k8s_openapi::api::discovery::v1::EndpointSlice =
                serde_json::from_value(object.manifest.clone())
                    .with_context(|| format!("reading {}", object.key))?;
            let ports: Vec<u16> = slice
                .ports
                .iter()
                .flatten()
                .filter_map(|p| p.port.and_then(|n| u16::try_from(n).ok()))
                .collect();
            for address in slice.endpoints.iter().flat_map(|e| &e.addresses) {
                let Ok(ip) = address.parse::<IpAddr>() else {
                    continue;
                };
                let family = services::family_of(ip);
                if let Some(node) = self
                    .nodes
                    .iter()
                    .position(|n| services::node_address(n, family) == ip)
                {
                    wanted.entry((node, ip)).or_default().extend(&ports);
                }
            }
        }
        let handle = self.runtime()?.handle().clone();
        for ((node, ip), ports) in wanted {
            let netns = Netns::open(&self.nodes[node].netns(&self.id))?;
            self.servers.start_on(&handle, &netns, &[ip], &ports)?;
        }
        Ok(())
    }

    fn write_initial(&mut self, scenario: &Scenario) -> anyhow::Result<()> {
        if !scenario
            .namespaces()
            .contains(super::scenario::DEFAULT_NAMESPACE)
        {
            self.write_object(&super::datastore::default_namespace())?;
        }
        for object in &scenario.resources {
            self.write_object(object)?;
        }
        self.sync_services()
    }

    /// Writes an object to the datastore (a Service completed with what the lab assigned it)
    /// and follows it for the Services.
    fn write_object(&mut self, object: &super::scenario::Object) -> anyhow::Result<()> {
        let object = self.services.complete(object);
        self.datastore.write_object(&object, &self.plans)?;
        let manifest = super::datastore::complete(&object, &self.plans)?;
        self.services.applied(&object.key, manifest);
        Ok(())
    }

    /// A step's datastore changes, in the lab's order: `apply`, `delete`, `writeFiles`,
    /// `removeFiles`; then the Services' derived EndpointSlices and kube-proxy's rules.
    fn write_step(&mut self, step: &Step) -> anyhow::Result<()> {
        for object in &step.apply {
            self.write_object(object)?;
        }
        for reference in &step.delete {
            let key = reference.key();
            self.datastore.remove_object(&key)?;
            self.services.deleted(&key);
        }
        for file in &step.write_files {
            self.datastore
                .write_file(&file.name, file.content.as_bytes())?;
        }
        for name in &step.remove_files {
            self.datastore.remove_file(name)?;
        }
        self.sync_services()
    }

    /// Writes the EndpointSlices the lab derives for selector Services (and removes stale
    /// ones), then kube-proxy's rules in every node.
    fn sync_services(&mut self) -> anyhow::Result<()> {
        if !self.services.active() {
            return Ok(());
        }
        let (write, remove) = self.services.derive_slices()?;
        for slice in &write {
            self.datastore.write_object(slice, &self.plans)?;
        }
        for key in &remove {
            self.datastore.remove_object(key)?;
        }
        self.services.sync_rules()
    }

    /// A probe's end: a pod, else (`hep/<name>`) a host endpoint. The scenario refused
    /// probes that could mean either.
    fn end(&self, end: &PodRef) -> anyhow::Result<End<'_>> {
        if let Some(index) = self.by_pod.get(end) {
            return Ok(End::Pod(*index));
        }
        self.host_endpoints
            .get(end)
            .map(End::HostEndpoint)
            .with_context(|| format!("{end} is neither a pod nor a host endpoint of the lab"))
    }

    /// The namespace name of node `node`.
    fn node_netns(&self, node: &str) -> anyhow::Result<String> {
        self.nodes
            .iter()
            .find(|n| n.name == node)
            .map(|n| n.netns(&self.id))
            .with_context(|| format!("node {node} is not in the lab"))
    }

    /// Checks the agents are still alive, stops everything, removes what the lab made and
    /// returns the report.
    pub fn finish(mut self) -> anyhow::Result<Report> {
        let tail = self.agent_log_tail();
        if let Some((node, status)) = self.resources.exited_agent()? {
            let log = self
                .agents
                .iter()
                .find(|a| a.node == node)
                .map(|a| agent::describe_tail(&a.paths.log_file))
                .unwrap_or_default();
            bail!("the agent of node {node} exited ({status}) during the run\n{log}");
        }
        let report = Report {
            lab_id: self.id.clone(),
            netns: self.netns_names.clone(),
            pin_dir: self.agents.first().map(|a| a.paths.pin_dir.clone()),
            pin_dirs: self
                .agents
                .iter()
                .map(|a| a.paths.pin_dir.clone())
                .collect(),
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

/// Where a probe starts or ends.
enum End<'a> {
    /// A pod, by index into the plans.
    Pod(usize),
    HostEndpoint(&'a HostEndpointInfo),
}

/// Removes a file; one that is not there is fine.
fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(anyhow::anyhow!(e).context(format!("removing {}", path.display())))
        }
        _ => Ok(()),
    }
}

/// How many Palisade programs each of `interfaces` carries per tcx hook, queried from the
/// calling thread's network namespace.
fn palisade_programs_per_hook(
    interfaces: &[String],
) -> anyhow::Result<Vec<(String, &'static str, usize)>> {
    let mut counts = Vec::new();
    for interface in interfaces {
        for (hook, attach_type) in [
            ("ingress", aya::programs::TcAttachType::Ingress),
            ("egress", aya::programs::TcAttachType::Egress),
        ] {
            let (_, programs) = aya::programs::SchedClassifier::query_tcx(interface, attach_type)
                .with_context(|| format!("querying {interface} {hook}"))?;
            let ours = programs
                .iter()
                .filter(|p| p.name_as_str().is_some_and(|n| n.starts_with("palisade")))
                .count();
            counts.push((interface.clone(), hook, ours));
        }
    }
    Ok(counts)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
