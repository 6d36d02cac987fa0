//! The scenario file: Kubernetes manifests to start from, then steps that change them and probe
//! the result.
//!
//! Parsing is strict (unknown fields are errors, with the path of the offending field) and every
//! reference is checked before the lab creates anything, so a typo in a scenario fails in
//! milliseconds instead of after namespaces and an agent were set up.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt, fs,
    net::IpAddr,
    path::{Path, PathBuf},
    str::FromStr,
};

use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use serde_json::Value;
use thiserror::Error;

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

/// A parsed and checked scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scenario {
    /// Manifests written before the agent starts.
    #[serde(default)]
    pub resources: Vec<Object>,
    #[serde(default)]
    pub steps: Vec<Step>,
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

/// A `delete` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectRef {
    pub kind: String,
    #[serde(default)]
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(&self.kind, self.namespace.as_deref(), &self.name)
    }
}

/// Identity of an object in the datastore: kind, namespace (none for cluster-scoped kinds) and
/// name. `apply` replaces the object with the same key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectKey {
    /// Builds a key as the API server would see it: namespaced kinds default to `default`,
    /// cluster-scoped kinds have no namespace.
    pub fn new(kind: &str, namespace: Option<&str>, name: &str) -> Self {
        let namespace = if is_cluster_scoped(kind) {
            None
        } else {
            Some(namespace.unwrap_or(DEFAULT_NAMESPACE).to_owned())
        };
        Self {
            kind: kind.to_owned(),
            namespace,
            name: name.to_owned(),
        }
    }

    /// `<kind>-<namespace>-<name>.yaml` in lowercase (`namespace-<name>.yaml` for namespaces).
    pub fn file_name(&self) -> String {
        let name = match &self.namespace {
            Some(ns) => format!("{}-{}-{}.yaml", self.kind, ns, self.name),
            None => format!("{}-{}.yaml", self.kind, self.name),
        };
        name.to_lowercase()
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// Kinds without a namespace among those a scenario may plausibly hold (Calico's global
/// resources among them).
pub fn is_cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace" | "Node" | "GlobalNetworkPolicy" | "Tier" | "GlobalNetworkSet" | "HostEndpoint"
    )
}

/// A manifest with its key, kept as JSON so that fields the lab does not know are written out
/// unchanged for the agent to judge.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub key: ObjectKey,
    pub manifest: Value,
}

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let manifest = Value::deserialize(deserializer)?;
        Object::from_manifest(manifest).map_err(de::Error::custom)
    }
}

impl Object {
    /// Reads kind, namespace and name from a manifest.
    pub fn from_manifest(manifest: Value) -> Result<Self, ManifestError> {
        let text = |pointer: &'static str| -> Result<Option<String>, ManifestError> {
            match manifest.pointer(pointer) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
                Some(_) => Err(ManifestError::NotAString { field: pointer }),
            }
        };
        if !manifest.is_object() {
            return Err(ManifestError::NotAMapping);
        }
        if text("/apiVersion")?.is_none() {
            return Err(ManifestError::Missing {
                field: "apiVersion",
            });
        }
        let kind = text("/kind")?.ok_or(ManifestError::Missing { field: "kind" })?;
        let name = text("/metadata/name")?.ok_or(ManifestError::Missing {
            field: "metadata.name",
        })?;
        let namespace = text("/metadata/namespace")?;
        let key = ObjectKey::new(&kind, namespace.as_deref(), &name);
        Ok(Self { key, manifest })
    }

    /// The pod view of this object, when it is a Pod.
    pub fn as_pod(&self) -> Option<Result<Pod, serde_json::Error>> {
        (self.key.kind == "Pod").then(|| serde_json::from_value(self.manifest.clone()))
    }
}

/// Why a manifest is not usable as an object.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("a manifest must be a mapping")]
    NotAMapping,
    #[error("manifest has no {field}")]
    Missing { field: &'static str },
    #[error("manifest field {field} must be a non-empty string")]
    NotAString { field: &'static str },
}

/// `namespace/name`, or `name` in the default namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
}

impl FromStr for PodRef {
    type Err = PodRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (namespace, name) = match s.split_once('/') {
            Some((ns, name)) => (ns, name),
            None => (DEFAULT_NAMESPACE, s),
        };
        if namespace.is_empty() || name.is_empty() || name.contains('/') {
            return Err(PodRefError {
                value: s.to_owned(),
            });
        }
        Ok(Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }
}

impl<'de> Deserialize<'de> for PodRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(de::Error::custom)
    }
}

impl fmt::Display for PodRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("`{value}` is not a pod reference (namespace/name or name)")]
pub struct PodRefError {
    value: String,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Deserialize, Serialize,
)]
pub enum Protocol {
    #[default]
    #[serde(rename = "TCP", alias = "tcp")]
    Tcp,
    #[serde(rename = "UDP", alias = "udp")]
    Udp,
    /// Accepted in scenarios, but the lab cannot probe it (this kernel has no SCTP sockets):
    /// it refuses to run such a probe. `tests/conformance_bpf.rs` checks SCTP probes at the
    /// BPF level instead.
    #[serde(rename = "SCTP", alias = "sctp")]
    Sctp,
    /// An ICMP (or ICMPv6) echo request, answered by the destination's kernel; no port.
    #[serde(rename = "ICMP", alias = "icmp")]
    Icmp,
}

impl Protocol {
    /// The IP protocol number (TCP 6, UDP 17, SCTP 132; ICMP 1, whose IPv6 counterpart is
    /// ICMPv6, 58).
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
            Protocol::Icmp => 1,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
            Protocol::Icmp => "ICMP",
        })
    }
}

/// IP family of a probe: `4` or `6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Family {
    #[default]
    V4,
    V6,
}

impl Family {
    pub fn number(self) -> u8 {
        match self {
            Family::V4 => 4,
            Family::V6 => 6,
        }
    }
}

impl Serialize for Family {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(self.number())
    }
}

impl<'de> Deserialize<'de> for Family {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match u8::deserialize(deserializer)? {
            4 => Ok(Family::V4),
            6 => Ok(Family::V6),
            other => Err(de::Error::custom(format!(
                "family must be 4 or 6, not {other}"
            ))),
        }
    }
}

/// What a probe should observe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Deny,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
        })
    }
}

/// A real connection from one pod to another.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Probe {
    pub from: PodRef,
    pub to: PodRef,
    /// Required for TCP, UDP and SCTP; absent (0) for ICMP.
    #[serde(default)]
    pub port: u16,
    #[serde(default)]
    pub protocol: Protocol,
    #[serde(default)]
    pub family: Family,
    pub expect: Verdict,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Keep this probe's connection (TCP stream, connected UDP socket) open under this name,
    /// for probes of later steps to use with `over`.
    #[serde(default)]
    pub keep: Option<String>,
    /// Exchange over the connection an earlier step kept under this name instead of opening a
    /// new one: whether an established connection survives a change.
    #[serde(default)]
    pub over: Option<String>,
}

impl Probe {
    pub fn timeout_ms(&self) -> u64 {
        self.timeout_ms.unwrap_or(DEFAULT_PROBE_TIMEOUT_MS)
    }
}

/// What the lab needs to know about a pod declared in `resources`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    pub pod: PodRef,
    /// Addresses from `status.podIP` / `status.podIPs`, if the manifest gives any.
    pub ips: Vec<IpAddr>,
    /// Declared container ports with their protocols (SCTP is left out: no SCTP sockets in
    /// this kernel).
    pub ports: BTreeSet<(u16, Protocol)>,
    /// `spec.nodeName`: the node the pod is scheduled to; `None` puts it on the lab's default
    /// node.
    pub node: Option<String>,
}

/// Why a scenario cannot be run.
#[derive(Debug, Error)]
pub enum ScenarioError {
    #[error("reading scenario {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing scenario at {at}")]
    Parse {
        at: String,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("{at}: {key} is declared twice")]
    Duplicate { at: String, key: ObjectKey },
    #[error("{at}: invalid Pod manifest")]
    InvalidPod {
        at: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{at}: pod {pod} is in namespace {namespace}, which resources do not declare")]
    UndeclaredNamespace {
        at: String,
        pod: PodRef,
        namespace: String,
    },
    #[error("{at}: `{value}` is not an IP address")]
    BadAddress { at: String, value: String },
    #[error("{at}: {detail}")]
    BadPort { at: String, detail: String },
    #[error("address {address} is given to both {first} and {second}")]
    DuplicateAddress {
        address: IpAddr,
        first: PodRef,
        second: PodRef,
    },
    #[error("{count} pods declared; the lab runs at most {max}")]
    TooManyPods { count: usize, max: usize },
    #[error("{count} steps; the lab runs at most {max}")]
    TooManySteps { count: usize, max: usize },
    #[error("{at}: {count} probes; a step runs at most {max}")]
    TooManyProbes {
        at: String,
        count: usize,
        max: usize,
    },
    #[error(
        "{at}: pod {pod} is not declared in resources (steps may change a pod's labels, not add pods)"
    )]
    UnknownPod { at: String, pod: PodRef },
    #[error("{at}: pod {pod} changes its addresses; a step may only change labels")]
    PodAddressChanged { at: String, pod: PodRef },
    #[error("{at}: pod {pod} moves to another node; a step may only change labels")]
    PodNodeChanged { at: String, pod: PodRef },
    #[error(
        "{at}: `{value}` is not a node name (a DNS subdomain: lowercase letters, digits, `-` and `.`)"
    )]
    BadNodeName { at: String, value: String },
    #[error("{count} nodes named; the lab runs at most {max} besides its default node")]
    TooManyNodes { count: usize, max: usize },
    #[error("{at}: pod {pod} has no IPv6 address (list one in status.podIPs)")]
    NoIpv6 { at: String, pod: PodRef },
    #[error("{at}: pod {pod} has no IPv4 address")]
    NoIpv4 { at: String, pod: PodRef },
    #[error("{at}: port 0 cannot be probed")]
    PortZero { at: String },
    #[error("{at}: ICMP probes have no port")]
    IcmpPort { at: String },
    #[error(
        "{at}: keep {name:?}: only an allowed TCP or UDP probe opening a new connection can keep \
         it, under a name not kept before"
    )]
    BadKeep { at: String, name: String },
    #[error(
        "{at}: over {name:?}: no earlier step kept a connection by that name between these pods \
         on this port and protocol"
    )]
    BadOver { at: String, name: String },
    #[error("{at}: timeoutMs must be between 1 and {max}")]
    BadTimeout { at: String, max: u64 },
    #[error("{at}: {key} does not exist at this step")]
    DeleteMissing { at: String, key: ObjectKey },
    #[error(
        "{at}: `{name}` is not a plain file name (no `/`, no leading `.`, ending in .yaml, .yml or .json)"
    )]
    BadFileName { at: String, name: String },
    #[error("{at}: file `{name}` was not written by an earlier step")]
    RemoveMissing { at: String, name: String },
    #[error("{at}: an expected error must be a non-empty substring")]
    EmptyExpectedError { at: String },
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
        for (at, object) in declared.chain(applied) {
            if object.key.kind == "HostEndpoint"
                && let Some(node) = host_endpoint_node(&at, object)?
            {
                nodes.insert(node);
            }
        }
        Ok(nodes)
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
            for probe in step.probes.iter().filter(|p| p.protocol != Protocol::Icmp) {
                ports
                    .entry(probe.to.clone())
                    .or_default()
                    .insert(probe.port);
            }
        }
        Ok(ports)
    }

    /// Checks every reference before anything is created.
    fn validate(&self) -> Result<(), ScenarioError> {
        if self.steps.len() > MAX_STEPS {
            return Err(ScenarioError::TooManySteps {
                count: self.steps.len(),
                max: MAX_STEPS,
            });
        }
        let mut present: BTreeSet<ObjectKey> = BTreeSet::new();
        for (i, object) in self.resources.iter().enumerate() {
            if !present.insert(object.key.clone()) {
                return Err(ScenarioError::Duplicate {
                    at: format!("resources[{i}]"),
                    key: object.key.clone(),
                });
            }
        }
        let pods = self.pods()?;
        if pods.len() > MAX_PODS {
            return Err(ScenarioError::TooManyPods {
                count: pods.len(),
                max: MAX_PODS,
            });
        }
        let nodes = self.nodes()?;
        if nodes.len() > MAX_NODES {
            return Err(ScenarioError::TooManyNodes {
                count: nodes.len(),
                max: MAX_NODES,
            });
        }
        let namespaces = self.namespaces();
        let mut addresses: BTreeMap<IpAddr, &PodRef> = BTreeMap::new();
        for (i, pod) in pods.iter().enumerate() {
            if pod.pod.namespace != DEFAULT_NAMESPACE && !namespaces.contains(&pod.pod.namespace) {
                return Err(ScenarioError::UndeclaredNamespace {
                    at: format!("pod {i}"),
                    pod: pod.pod.clone(),
                    namespace: pod.pod.namespace.clone(),
                });
            }
            for ip in &pod.ips {
                if let Some(first) = addresses.insert(*ip, &pod.pod) {
                    return Err(ScenarioError::DuplicateAddress {
                        address: *ip,
                        first: first.clone(),
                        second: pod.pod.clone(),
                    });
                }
            }
        }
        let by_ref: BTreeMap<&PodRef, &PodInfo> = pods.iter().map(|p| (&p.pod, p)).collect();
        let mut files: BTreeSet<String> = BTreeSet::new();
        let mut kept: BTreeMap<&str, &Probe> = BTreeMap::new();
        for (s, step) in self.steps.iter().enumerate() {
            let at = format!("steps[{s}]");
            for (i, object) in step.apply.iter().enumerate() {
                let at = format!("{at}.apply[{i}]");
                if let Some(pod) = object.as_pod() {
                    let pod = pod.map_err(|source| ScenarioError::InvalidPod {
                        at: at.clone(),
                        source,
                    })?;
                    let info = pod_info(&at, &object.key, &pod)?;
                    let Some(declared) = by_ref.get(&info.pod) else {
                        return Err(ScenarioError::UnknownPod { at, pod: info.pod });
                    };
                    if !info.ips.is_empty() && info.ips != declared.ips {
                        return Err(ScenarioError::PodAddressChanged { at, pod: info.pod });
                    }
                    if info.node.is_some() && info.node != declared.node {
                        return Err(ScenarioError::PodNodeChanged { at, pod: info.pod });
                    }
                }
                present.insert(object.key.clone());
            }
            for (i, reference) in step.delete.iter().enumerate() {
                let key = reference.key();
                if !present.remove(&key) {
                    return Err(ScenarioError::DeleteMissing {
                        at: format!("{at}.delete[{i}]"),
                        key,
                    });
                }
            }
            for (i, file) in step.write_files.iter().enumerate() {
                if !is_plain_manifest_name(&file.name) {
                    return Err(ScenarioError::BadFileName {
                        at: format!("{at}.writeFiles[{i}]"),
                        name: file.name.clone(),
                    });
                }
                files.insert(file.name.clone());
            }
            for (i, name) in step.remove_files.iter().enumerate() {
                if !files.remove(name) {
                    return Err(ScenarioError::RemoveMissing {
                        at: format!("{at}.removeFiles[{i}]"),
                        name: name.clone(),
                    });
                }
            }
            if step.probes.len() > MAX_PROBES_PER_STEP {
                return Err(ScenarioError::TooManyProbes {
                    at,
                    count: step.probes.len(),
                    max: MAX_PROBES_PER_STEP,
                });
            }
            for (i, probe) in step.probes.iter().enumerate() {
                let at = format!("{at}.probes[{i}]");
                validate_probe(&at, probe, &by_ref)?;
                if let Some(name) = &probe.over {
                    // Kept by an earlier step, between the same pods on the same port.
                    let same = |k: &&Probe| {
                        (&k.from, &k.to, k.port, k.protocol, k.family)
                            == (
                                &probe.from,
                                &probe.to,
                                probe.port,
                                probe.protocol,
                                probe.family,
                            )
                    };
                    if !kept.get(name.as_str()).is_some_and(same) {
                        return Err(ScenarioError::BadOver {
                            at,
                            name: name.clone(),
                        });
                    }
                }
            }
            for (i, probe) in step.probes.iter().enumerate() {
                if let Some(name) = &probe.keep {
                    let at = format!("{at}.probes[{i}]");
                    let keepable = matches!(probe.protocol, Protocol::Tcp | Protocol::Udp)
                        && probe.over.is_none()
                        && probe.expect == Verdict::Allow;
                    if !keepable || kept.insert(name, probe).is_some() {
                        return Err(ScenarioError::BadKeep {
                            at,
                            name: name.clone(),
                        });
                    }
                }
            }
            for (i, expected) in step.expect_errors.iter().enumerate() {
                if expected.is_empty() {
                    return Err(ScenarioError::EmptyExpectedError {
                        at: format!("{at}.expectErrors[{i}]"),
                    });
                }
            }
        }
        Ok(())
    }
}

fn validate_probe(
    at: &str,
    probe: &Probe,
    pods: &BTreeMap<&PodRef, &PodInfo>,
) -> Result<(), ScenarioError> {
    match probe.protocol {
        Protocol::Icmp if probe.port != 0 => {
            return Err(ScenarioError::IcmpPort { at: at.to_owned() });
        }
        Protocol::Icmp => {}
        _ if probe.port == 0 => return Err(ScenarioError::PortZero { at: at.to_owned() }),
        _ => {}
    }
    if probe
        .timeout_ms
        .is_some_and(|t| t == 0 || t > MAX_PROBE_TIMEOUT_MS)
    {
        return Err(ScenarioError::BadTimeout {
            at: at.to_owned(),
            max: MAX_PROBE_TIMEOUT_MS,
        });
    }
    for pod in [&probe.from, &probe.to] {
        let Some(info) = pods.get(pod) else {
            return Err(ScenarioError::UnknownPod {
                at: at.to_owned(),
                pod: pod.clone(),
            });
        };
        match probe.family {
            Family::V6 if !info.ips.iter().any(IpAddr::is_ipv6) => {
                return Err(ScenarioError::NoIpv6 {
                    at: at.to_owned(),
                    pod: pod.clone(),
                });
            }
            // A pod without any address gets a lab-assigned IPv4 one.
            Family::V4 if !info.ips.is_empty() && !info.ips.iter().any(IpAddr::is_ipv4) => {
                return Err(ScenarioError::NoIpv4 {
                    at: at.to_owned(),
                    pod: pod.clone(),
                });
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether `name` is a file name the agent reads and the lab may write: no directories, no
/// leading `.` (the agent skips those, and the lab uses them for temporary files).
pub fn is_plain_manifest_name(name: &str) -> bool {
    !name.contains('/')
        && !name.contains('\0')
        && policy_agent::datastore::digest::is_manifest_name(name)
}

fn pod_info(at: &str, key: &ObjectKey, pod: &Pod) -> Result<PodInfo, ScenarioError> {
    let pod_ref = PodRef {
        namespace: key.namespace.clone().unwrap_or_default(),
        name: key.name.clone(),
    };
    let mut ips: Vec<IpAddr> = Vec::new();
    let status = pod.status.as_ref();
    let listed = status
        .and_then(|s| s.pod_ips.as_ref())
        .into_iter()
        .flatten()
        .map(|p| p.ip.as_str());
    for text in status
        .and_then(|s| s.pod_ip.as_deref())
        .into_iter()
        .chain(listed)
    {
        let ip: IpAddr = text.parse().map_err(|_| ScenarioError::BadAddress {
            at: format!("{at}.status"),
            value: text.to_owned(),
        })?;
        if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
            return Err(ScenarioError::BadAddress {
                at: format!("{at}.status"),
                value: text.to_owned(),
            });
        }
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    let mut ports = BTreeSet::new();
    let containers = pod.spec.iter().flat_map(|s| s.containers.iter());
    for (c, container) in containers.enumerate() {
        for (p, port) in container.ports.iter().flatten().enumerate() {
            let at = format!("{at}.spec.containers[{c}].ports[{p}]");
            let number = u16::try_from(port.container_port)
                .ok()
                .filter(|n| *n != 0)
                .ok_or_else(|| ScenarioError::BadPort {
                    at: at.clone(),
                    detail: format!("containerPort {} is out of range", port.container_port),
                })?;
            let protocol = match port.protocol.as_deref().unwrap_or("TCP") {
                "TCP" => Protocol::Tcp,
                "UDP" => Protocol::Udp,
                "SCTP" => {
                    tracing::warn!(%at, "SCTP container port not served (no SCTP in this kernel)");
                    continue;
                }
                other => {
                    return Err(ScenarioError::BadPort {
                        at,
                        detail: format!("unknown protocol {other}"),
                    });
                }
            };
            ports.insert((number, protocol));
        }
    }
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .map(|name| checked_node_name(&format!("{at}.spec.nodeName"), name))
        .transpose()?;
    Ok(PodInfo {
        pod: pod_ref,
        ips,
        ports,
        node,
    })
}

/// A Calico `HostEndpoint`'s `spec.node`, if it names one. Only the node is taken: the lab
/// creates it; enforcing on host endpoints is the agent's business.
fn host_endpoint_node(at: &str, object: &Object) -> Result<Option<String>, ScenarioError> {
    let at = format!("{at}.spec.node");
    match object.manifest.pointer("/spec/node") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(name)) => checked_node_name(&at, name).map(Some),
        Some(other) => Err(ScenarioError::BadNodeName {
            at,
            value: other.to_string(),
        }),
    }
}

/// A node name as Kubernetes accepts it (a DNS-1123 subdomain); the lab uses it in namespace,
/// file and bpffs directory names, which this keeps safe.
fn checked_node_name(at: &str, name: &str) -> Result<String, ScenarioError> {
    let label_ok = |label: &str| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if name.len() <= 253 && name.split('.').all(label_ok) {
        Ok(name.to_owned())
    } else {
        Err(ScenarioError::BadNodeName {
            at: at.to_owned(),
            value: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = include_str!("../../../examples/seed/scenario.yaml");

    fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        Scenario::from_yaml(text)
    }

    const TWO_PODS: &str = r#"
resources:
  - apiVersion: v1
    kind: Pod
    metadata: {name: a, labels: {app: a}}
    spec: {containers: [{name: c, image: x, ports: [{containerPort: 80}, {containerPort: 53, protocol: UDP}]}]}
  - apiVersion: v1
    kind: Pod
    metadata: {name: b, namespace: default}
    spec: {containers: [{name: c, image: x}]}
    status: {podIP: 10.42.0.99, podIPs: [{ip: 10.42.0.99}, {ip: "fd00:42::99"}]}
"#;

    fn with_steps(steps: &str) -> String {
        format!("{TWO_PODS}steps:\n{steps}")
    }

    #[test]
    fn seed_parses() -> anyhow::Result<()> {
        let scenario = parse(SEED)?;
        let pods = scenario.pods()?;
        let names: Vec<_> = pods.iter().map(|p| p.pod.to_string()).collect();
        assert_eq!(
            names,
            ["default/frontend", "default/backend", "default/other"]
        );
        assert_eq!(scenario.steps.len(), 3);
        let ports = scenario.served_ports()?;
        let backend = PodRef::from_str("default/backend")?;
        assert_eq!(ports.get(&backend), Some(&BTreeSet::from([80, 8000])));
        let third = &scenario.steps[2];
        assert_eq!(third.apply.len(), 1);
        assert_eq!(
            third.apply[0].key.file_name(),
            "networkpolicy-default-allow-frontend-to-backend.yaml"
        );
        assert!(third.probes.iter().all(|p| p.protocol == Protocol::Tcp));
        Ok(())
    }

    #[test]
    fn pod_details_are_read() -> anyhow::Result<()> {
        let scenario = parse(TWO_PODS)?;
        let pods = scenario.pods()?;
        assert_eq!(pods[0].ips, Vec::<IpAddr>::new());
        assert_eq!(
            pods[0].ports,
            BTreeSet::from([(53, Protocol::Udp), (80, Protocol::Tcp)])
        );
        assert_eq!(
            pods[1].ips,
            vec![
                IpAddr::from_str("10.42.0.99")?,
                IpAddr::from_str("fd00:42::99")?
            ]
        );
        Ok(())
    }

    #[test]
    fn probe_defaults_and_fields() -> anyhow::Result<()> {
        let scenario = parse(&with_steps(
            r#"
  - probes:
      - {from: a, to: default/b, port: 8000, expect: allow}
      - {from: b, to: a, port: 53, protocol: UDP, family: 4, expect: deny, timeoutMs: 300}
      - {from: b, to: a, port: 80, protocol: SCTP, expect: allow}
"#,
        ))?;
        let probes = &scenario.steps[0].probes;
        assert_eq!(probes[0].protocol, Protocol::Tcp);
        assert_eq!(probes[0].family, Family::V4);
        assert_eq!(probes[0].timeout_ms(), DEFAULT_PROBE_TIMEOUT_MS);
        assert_eq!(probes[0].from, PodRef::from_str("default/a")?);
        assert_eq!(probes[1].protocol, Protocol::Udp);
        assert_eq!(probes[1].expect, Verdict::Deny);
        assert_eq!(probes[1].timeout_ms(), 300);
        assert_eq!(probes[2].protocol, Protocol::Sctp);
        assert_eq!(probes[2].protocol.number(), 132);
        assert_eq!(scenario.steps[0].display_name(1), "step 1");
        Ok(())
    }

    #[test]
    fn unknown_fields_are_errors_with_their_path() {
        let err = parse(&with_steps(
            "  - probes: [{from: a, to: b, port: 1, expect: allow, protocl: UDP}]\n",
        ))
        .err()
        .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("parsing scenario at steps[0].probes[0].protocl")
        );
        let err = parse(&with_steps(
            "  - probes: [{from: a, to: b, port: 1, expect: maybe}]\n",
        ));
        assert!(
            matches!(err, Err(ScenarioError::Parse { at, .. }) if at == "steps[0].probes[0].expect")
        );
    }

    #[test]
    fn references_are_checked() {
        let cases = [
            "  - probes: [{from: a, to: c, port: 1, expect: allow}]\n",
            "  - probes: [{from: a, to: b, port: 0, expect: allow}]\n",
            "  - probes: [{from: a, to: b, port: 1, expect: allow, family: 6}]\n",
            "  - probes: [{from: a, to: b, port: 1, expect: allow, timeoutMs: 0}]\n",
            "  - delete: [{kind: NetworkPolicy, name: nope}]\n",
            "  - removeFiles: [nope.yaml]\n",
            "  - writeFiles: [{name: ../x.yaml, content: ''}]\n",
            "  - writeFiles: [{name: .hidden.yaml, content: ''}]\n",
            "  - expectErrors: ['']\n",
            "  - apply: [{apiVersion: v1, kind: Pod, metadata: {name: new}, spec: {containers: []}}]\n",
        ];
        for case in cases {
            let result = parse(&with_steps(case));
            assert!(result.is_err(), "accepted: {case}");
        }
    }

    #[test]
    fn family_must_be_4_or_6() {
        let result = parse(&with_steps(
            "  - probes: [{from: a, to: b, port: 1, expect: allow, family: 5}]\n",
        ));
        assert!(matches!(result, Err(ScenarioError::Parse { .. })));
    }

    #[test]
    fn ipv6_probe_needs_both_ends() {
        let scenario = r#"
resources:
  - {apiVersion: v1, kind: Pod, metadata: {name: a}, status: {podIPs: [{ip: "fd00:42::1"}]}}
  - {apiVersion: v1, kind: Pod, metadata: {name: b}, status: {podIPs: [{ip: 10.42.0.5}, {ip: "fd00:42::2"}]}}
steps:
  - probes: [{from: a, to: b, port: 1, expect: allow, family: 6}]
"#;
        assert!(parse(scenario).is_ok());
        let v4 = scenario.replace("family: 6", "family: 4");
        assert!(matches!(parse(&v4), Err(ScenarioError::NoIpv4 { .. })));
    }

    #[test]
    fn delete_and_files_follow_the_steps() -> anyhow::Result<()> {
        parse(&with_steps(
            r#"
  - apply: [{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p}, spec: {podSelector: {}}}]
    writeFiles: [{name: broken.yaml, content: "not: [valid"}]
  - delete: [{kind: NetworkPolicy, namespace: default, name: p}]
    removeFiles: [broken.yaml]
"#,
        ))?;
        Ok(())
    }

    #[test]
    fn duplicates_and_undeclared_namespaces_are_errors() {
        let dup = format!(
            "{TWO_PODS}  - {{apiVersion: v1, kind: Pod, metadata: {{name: a}}, spec: {{containers: []}}}}\n"
        );
        assert!(matches!(parse(&dup), Err(ScenarioError::Duplicate { .. })));
        let undeclared =
            "resources:\n  - {apiVersion: v1, kind: Pod, metadata: {name: a, namespace: prod}}\n";
        assert!(matches!(
            parse(undeclared),
            Err(ScenarioError::UndeclaredNamespace { .. })
        ));
        let declared = format!(
            "{undeclared}  - {{apiVersion: v1, kind: Namespace, metadata: {{name: prod}}}}\n"
        );
        assert!(parse(&declared).is_ok());
        let same_ip = "resources:\n  - {apiVersion: v1, kind: Pod, metadata: {name: a}, status: {podIP: 10.42.0.7}}\n  - {apiVersion: v1, kind: Pod, metadata: {name: b}, status: {podIP: 10.42.0.7}}\n";
        assert!(matches!(
            parse(same_ip),
            Err(ScenarioError::DuplicateAddress { .. })
        ));
    }

    #[test]
    fn nodes_come_from_pods_and_host_endpoints() -> anyhow::Result<()> {
        let scenario = parse(
            r#"
resources:
  - {apiVersion: v1, kind: Pod, metadata: {name: a}, spec: {nodeName: node-a, containers: []}}
  - {apiVersion: v1, kind: Pod, metadata: {name: b}, spec: {containers: []}}
  - {apiVersion: projectcalico.org/v3, kind: HostEndpoint, metadata: {name: h}, spec: {node: node-h, interfaceName: eth0}}
steps:
  - apply:
      - {apiVersion: projectcalico.org/v3, kind: HostEndpoint, metadata: {name: g}, spec: {node: gw.example}}
      - {apiVersion: v1, kind: Pod, metadata: {name: a, labels: {x: y}}, spec: {containers: []}}
"#,
        )?;
        let pods = scenario.pods()?;
        assert_eq!(pods[0].node.as_deref(), Some("node-a"));
        assert_eq!(pods[1].node, None);
        let nodes: Vec<_> = scenario.nodes()?.into_iter().collect();
        assert_eq!(nodes, ["gw.example", "node-a", "node-h"]);
        Ok(())
    }

    #[test]
    fn node_names_and_moves_are_checked() {
        let bad_names = [
            "resources: [{apiVersion: v1, kind: Pod, metadata: {name: a}, spec: {nodeName: Node_A}}]",
            "resources: [{apiVersion: v1, kind: Pod, metadata: {name: a}, spec: {nodeName: ../x}}]",
            "resources: [{apiVersion: projectcalico.org/v3, kind: HostEndpoint, metadata: {name: h}, spec: {node: -x}}]",
            "resources: [{apiVersion: projectcalico.org/v3, kind: HostEndpoint, metadata: {name: h}, spec: {node: 3}}]",
        ];
        for bad in bad_names {
            assert!(
                matches!(parse(bad), Err(ScenarioError::BadNodeName { .. })),
                "accepted: {bad}"
            );
        }
        let moved = r#"
resources:
  - {apiVersion: v1, kind: Pod, metadata: {name: a}, spec: {nodeName: node-a}}
steps:
  - apply: [{apiVersion: v1, kind: Pod, metadata: {name: a}, spec: {nodeName: node-b}}]
"#;
        assert!(matches!(
            parse(moved),
            Err(ScenarioError::PodNodeChanged { .. })
        ));
        let many: String = (0..=MAX_NODES)
            .map(|i| format!("  - {{apiVersion: v1, kind: Pod, metadata: {{name: p{i}}}, spec: {{nodeName: n{i}}}}}\n"))
            .collect();
        assert!(matches!(
            parse(&format!("resources:\n{many}")),
            Err(ScenarioError::TooManyNodes { .. })
        ));
    }

    #[test]
    fn manifests_need_kind_and_name() {
        for bad in [
            "resources: [{kind: Pod, metadata: {name: a}}]",
            "resources: [{apiVersion: v1, metadata: {name: a}}]",
            "resources: [{apiVersion: v1, kind: Pod, metadata: {}}]",
            "resources: [{apiVersion: v1, kind: Pod, metadata: {name: 3}}]",
            "resources: [[1, 2]]",
        ] {
            assert!(parse(bad).is_err(), "accepted: {bad}");
        }
    }

    #[test]
    fn file_names_follow_the_datastore_convention() {
        assert_eq!(
            ObjectKey::new("Namespace", Some("ignored"), "Prod").file_name(),
            "namespace-prod.yaml"
        );
        assert_eq!(
            ObjectKey::new("NetworkPolicy", None, "Deny").file_name(),
            "networkpolicy-default-deny.yaml"
        );
    }
}
