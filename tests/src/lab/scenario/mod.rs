//! The scenario file: Kubernetes manifests to start from, then steps that change them and probe
//! the result.
//!
//! Parsing is strict (unknown fields are errors, with the path of the offending field) and every
//! reference is checked before the lab creates anything, so a typo in a scenario fails in
//! milliseconds instead of after namespaces and an agent were set up.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt, fs,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    str::FromStr,
};

use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use serde_json::Value;
use thiserror::Error;

mod endpoints;
mod error;
mod objects;
mod probe;
#[cfg(test)]
mod tests;
mod validate;

pub use endpoints::*;
use endpoints::{host_endpoint_info, outside_pods_and_fabric, pod_info};
pub use error::*;
pub use objects::*;
pub use probe::*;
pub use validate::is_plain_manifest_name;

/// The namespace a namespaced object without `metadata.namespace` lands in, as with kubectl.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Probe timeout when the scenario gives none.
pub const DEFAULT_PROBE_TIMEOUT_MS: u64 = 1500;

/// Upper bounds that keep a scenario's cost bounded (and addresses within one /24).
pub const MAX_PODS: usize = 200;
pub const MAX_STEPS: usize = 200;
pub const MAX_PROBES_PER_STEP: usize = 500;
pub const MAX_PROBE_TIMEOUT_MS: u64 = 60_000;
/// Nodes besides the default one: each is a namespace and a running agent on a 2-core machine.
pub const MAX_NODES: usize = 8;

/// A probe's `from`/`to` of `hep/<name>` is the Calico `HostEndpoint` `<name>` (when the
/// scenario has one by that name), not a pod in a namespace `hep`.
pub const HOST_ENDPOINT_PREFIX: &str = "hep";

/// `spec.interfaceName` when a `HostEndpoint` gives none, as the agent reads it.
pub const DEFAULT_HOST_ENDPOINT_INTERFACE: &str = "eth0";

/// The lab's own pod address range (where pods without addresses get theirs): host endpoint
/// addresses may not be in it. Must agree with `topology::plan`.
const POD_RANGE_V4: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 42, 0, 0), 24);
/// Around every declared pod address, the prefix of this length counts as a pod range too (a
/// host's own address inside a pod subnet is a scenario mistake, not a plausible cluster).
const POD_PREFIX_V4: u8 = 24;
const POD_PREFIX_V6: u8 = 64;
/// The lab's node fabric (see `topology`): host endpoint addresses may not be in it either.
const FABRIC_RANGE_V4: (Ipv4Addr, u8) = (Ipv4Addr::new(198, 18, 0, 0), 24);
const FABRIC_RANGE_V6: (Ipv6Addr, u8) = (Ipv6Addr::new(0xfd00, 0xfab, 0, 0, 0, 0, 0, 0), 64);

/// A parsed and checked scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scenario {
    /// The kube-proxy mode whose rules the lab writes in every node for the scenario's
    /// Services: `iptables` (the default) or `nftables`.
    #[serde(default)]
    pub kube_proxy: KubeProxyMode,
    /// Extra arguments for every agent's `policy-agent run` (e.g. `--failsafe-inbound`).
    #[serde(default)]
    pub agent_args: Vec<String>,
    /// Manifests written before the agent starts.
    #[serde(default)]
    pub resources: Vec<Object>,
    #[serde(default)]
    pub steps: Vec<Step>,
}

/// Which kube-proxy's rules the lab writes for Services (see `services`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KubeProxyMode {
    #[default]
    Iptables,
    Nftables,
}

impl FromStr for KubeProxyMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "iptables" => Ok(Self::Iptables),
            "nftables" => Ok(Self::Nftables),
            other => Err(format!(
                "kube-proxy mode must be iptables or nftables, not {other}"
            )),
        }
    }
}

impl fmt::Display for KubeProxyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Iptables => "iptables",
            Self::Nftables => "nftables",
        })
    }
}

/// One step: change the datastore, wait until the agent programmed it, then check.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Step {
    #[serde(default)]
    pub name: String,
    /// What happens to the agent first: `stop` (its pinned programs and maps go on enforcing
    /// without it), `start` (after a stop) or `restart` (both at once, the way an upgrade
    /// rolls a DaemonSet pod).
    #[serde(default)]
    pub agent: Option<AgentAction>,
    /// Objects created or replaced, keyed by (kind, namespace, name).
    #[serde(default)]
    pub apply: Vec<Object>,
    #[serde(default)]
    pub delete: Vec<ObjectRef>,
    /// Raw files written verbatim into the datastore (invalid manifests on purpose).
    #[serde(default)]
    pub write_files: Vec<RawFile>,
    /// Raw files (by name) removed from the datastore.
    #[serde(default)]
    pub remove_files: Vec<String>,
    #[serde(default)]
    pub probes: Vec<Probe>,
    /// Substrings that must each occur in at least one of the agent's reported errors.
    #[serde(default)]
    pub expect_errors: Vec<String>,
}

/// See [`Step::agent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AgentAction {
    Stop,
    Start,
    Restart,
}

impl Step {
    /// The step's name, or `step N` when the scenario gave none.
    pub fn display_name(&self, number: usize) -> String {
        if self.name.is_empty() {
            format!("step {number}")
        } else {
            self.name.clone()
        }
    }
}

/// A file written as is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    pub name: String,
    pub content: String,
}

impl Scenario {
    /// Reads, parses and checks a scenario file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ScenarioError> {
        let path = path.as_ref();
        let text = fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml(&text)
    }

    /// Parses and checks a scenario.
    pub fn from_yaml(text: &str) -> Result<Self, ScenarioError> {
        let deserializer = serde_yaml::Deserializer::from_str(text);
        let scenario: Scenario =
            serde_path_to_error::deserialize(deserializer).map_err(|e| ScenarioError::Parse {
                at: match e.path().to_string() {
                    p if p == "." => "top level".to_owned(),
                    p => p,
                },
                source: e.into_inner(),
            })?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// The pods declared in `resources`, in declaration order (which fixes their index, their
    /// interface name and their lab-assigned address).
    pub fn pods(&self) -> Result<Vec<PodInfo>, ScenarioError> {
        let mut pods = Vec::new();
        for (i, object) in self.resources.iter().enumerate() {
            let at = format!("resources[{i}]");
            if let Some(pod) = object.as_pod() {
                let pod = pod.map_err(|source| ScenarioError::InvalidPod {
                    at: at.clone(),
                    source,
                })?;
                pods.push(pod_info(&at, &object.key, &pod)?);
            }
        }
        Ok(pods)
    }

    /// Namespaces declared in `resources`.
    pub fn namespaces(&self) -> BTreeSet<String> {
        self.resources
            .iter()
            .filter(|o| o.key.kind == "Namespace")
            .map(|o| o.key.name.clone())
            .collect()
    }

    /// Every node the scenario names, besides the default node: pods' `spec.nodeName` and
    /// Calico `HostEndpoint`s' `spec.node`, in `resources` or applied by a step (the lab
    /// creates every node at the start, as a cluster's nodes exist before its objects).
    pub fn nodes(&self) -> Result<BTreeSet<String>, ScenarioError> {
        let mut nodes: BTreeSet<String> = self.pods()?.into_iter().filter_map(|p| p.node).collect();
        nodes.extend(self.host_endpoints()?.into_iter().map(|h| h.node));
        Ok(nodes)
    }

    /// Every `HostEndpoint` the scenario declares, in `resources` or applied by a step, in
    /// order of first appearance. The lab builds their interfaces at the start (a host's
    /// interface exists before any object describes it), so every version of one must agree
    /// on node, interface and addresses; the addresses must stay clear of the pods' and the
    /// fabric's ranges, and one node's host endpoints must share its one fabric-facing
    /// interface.
    pub fn host_endpoints(&self) -> Result<Vec<HostEndpointInfo>, ScenarioError> {
        let applied = self.steps.iter().enumerate().flat_map(|(s, step)| {
            step.apply
                .iter()
                .enumerate()
                .map(move |(i, object)| (format!("steps[{s}].apply[{i}]"), object))
        });
        let declared = self
            .resources
            .iter()
            .enumerate()
            .map(|(i, object)| (format!("resources[{i}]"), object));
        let mut heps: Vec<HostEndpointInfo> = Vec::new();
        let mut first_at: Vec<String> = Vec::new();
        for (at, object) in declared.chain(applied) {
            if object.key.kind != "HostEndpoint" {
                continue;
            }
            let info = host_endpoint_info(&at, object)?;
            match heps.iter().find(|h| h.name == info.name) {
                Some(earlier) if *earlier != info => {
                    return Err(ScenarioError::HostEndpointChanged {
                        at,
                        name: info.name,
                    });
                }
                Some(_) => {}
                None => {
                    heps.push(info);
                    first_at.push(at);
                }
            }
        }
        let pods = self.pods()?;
        let mut owners: BTreeMap<IpAddr, &str> = BTreeMap::new();
        for (hep, at) in heps.iter().zip(&first_at) {
            for ip in &hep.ips {
                let bad = |why: String| ScenarioError::HostEndpointBadAddress {
                    at: format!("{at}.spec.expectedIPs"),
                    name: hep.name.clone(),
                    value: ip.to_string(),
                    why,
                };
                if let Some(why) = outside_pods_and_fabric(*ip, &pods) {
                    return Err(bad(why));
                }
                if let Some(other) = owners.insert(*ip, &hep.name) {
                    return Err(bad(format!("is HostEndpoint {other}'s too")));
                }
            }
        }
        let mut interfaces: BTreeMap<&str, &HostEndpointInfo> = BTreeMap::new();
        for hep in &heps {
            match interfaces.get(hep.node.as_str()) {
                Some(first) if first.interface != hep.interface => {
                    return Err(ScenarioError::HostEndpointInterfaceClash {
                        node: hep.node.clone(),
                        first: first.name.clone(),
                        first_interface: first.interface.clone(),
                        second: hep.name.clone(),
                        second_interface: hep.interface.clone(),
                    });
                }
                Some(_) => {}
                None => {
                    interfaces.insert(&hep.node, hep);
                }
            }
        }
        Ok(heps)
    }

    /// Ports each pod must serve: its declared container ports and every port a probe targets
    /// at it. Each is served on TCP and UDP alike.
    pub fn served_ports(&self) -> Result<BTreeMap<PodRef, BTreeSet<u16>>, ScenarioError> {
        let mut ports: BTreeMap<PodRef, BTreeSet<u16>> = BTreeMap::new();
        for pod in self.pods()? {
            let entry = ports.entry(pod.pod.clone()).or_default();
            entry.extend(pod.ports.iter().map(|(port, _)| *port));
        }
        for step in &self.steps {
            let to_pods = step
                .probes
                .iter()
                .filter(|p| p.protocol != Protocol::Icmp && p.service.is_none());
            for probe in to_pods {
                ports
                    .entry(probe.to.clone())
                    .or_default()
                    .insert(probe.port);
            }
        }
        Ok(ports)
    }
}
