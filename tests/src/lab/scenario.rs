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
/// resources, and policy.networking.k8s.io's ClusterNetworkPolicy (v1alpha2) and
/// AdminNetworkPolicy and BaselineAdminNetworkPolicy (v1alpha1), among them). By kind alone:
/// a `delete` entry names no apiVersion, and no namespaced kind shares these names.
pub fn is_cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace"
            | "Node"
            | "GlobalNetworkPolicy"
            | "Tier"
            | "GlobalNetworkSet"
            | "HostEndpoint"
            | "ClusterNetworkPolicy"
            | "AdminNetworkPolicy"
            | "BaselineAdminNetworkPolicy"
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

impl PodRef {
    /// `Some(name)` for `hep/<name>`: a host endpoint's name if the scenario has a
    /// `HostEndpoint` by that name (see [`HOST_ENDPOINT_PREFIX`]).
    pub fn host_endpoint_name(&self) -> Option<&str> {
        (self.namespace == HOST_ENDPOINT_PREFIX).then_some(self.name.as_str())
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

/// A real connection from one pod to another, or to a Service (`to: service/NS/NAME`,
/// `to: nodeport/NODE/NS/NAME`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawProbe")]
pub struct Probe {
    pub from: PodRef,
    /// The destination pod; for a Service target, `service/NS/NAME` (or
    /// `nodeport/NODE/NS/NAME`) as a reference no pod has (see [`Probe::service`]).
    pub to: PodRef,
    /// Set when `to` names a Service: connect to its ClusterIP (or a node's address and its
    /// nodePort) instead of a pod.
    pub service: Option<ServiceTarget>,
    /// Required for TCP, UDP and SCTP; absent (0) for ICMP. For a Service target, the
    /// Service port.
    pub port: u16,
    pub protocol: Protocol,
    pub family: Family,
    /// TCP and UDP: send from this source port (rules with `source.ports`); the kernel picks
    /// an ephemeral one when absent. Give each TCP probe its own port: a closed connection's
    /// TIME_WAIT would refuse the same tuple again.
    pub source_port: Option<u16>,
    pub expect: Verdict,
    pub timeout_ms: Option<u64>,
    /// Keep this probe's connection (TCP stream, connected UDP socket) open under this name,
    /// for probes of later steps to use with `over`.
    pub keep: Option<String>,
    /// Exchange over the connection an earlier step kept under this name instead of opening a
    /// new one: whether an established connection survives a change.
    pub over: Option<String>,
    /// UDP only: send a DNS query for this name (type A, or AAAA with `family: 6`) instead of
    /// an echo payload; `allow` only when a valid answer with an address comes back.
    pub dns_query: Option<String>,
}

/// A probe as written, before `to` is told apart into a pod or a Service.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawProbe {
    from: PodRef,
    to: String,
    #[serde(default)]
    port: u16,
    #[serde(default)]
    protocol: Protocol,
    #[serde(default)]
    family: Family,
    #[serde(default)]
    source_port: Option<u16>,
    expect: Verdict,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    keep: Option<String>,
    #[serde(default)]
    over: Option<String>,
    #[serde(default)]
    dns_query: Option<String>,
}

/// Where a probe to a Service connects.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceTarget {
    /// `service/NS/NAME`: the Service's ClusterIP of the probe's family, on the Service port.
    ClusterIp { namespace: String, name: String },
    /// `nodeport/NODE/NS/NAME`: NODE's address, on the nodePort of the Service port.
    NodePort {
        node: String,
        namespace: String,
        name: String,
    },
}

impl ServiceTarget {
    /// The Service's namespace and name.
    pub fn service(&self) -> (&str, &str) {
        match self {
            Self::ClusterIp { namespace, name }
            | Self::NodePort {
                namespace, name, ..
            } => (namespace, name),
        }
    }
}

impl TryFrom<RawProbe> for Probe {
    type Error = String;

    fn try_from(raw: RawProbe) -> Result<Self, Self::Error> {
        let parts: Vec<&str> = raw.to.split('/').collect();
        let nonempty = parts.iter().all(|p| !p.is_empty());
        let (to, service) = match parts.as_slice() {
            ["service", namespace, name] if nonempty => (
                PodRef {
                    namespace: "service".to_owned(),
                    name: format!("{namespace}/{name}"),
                },
                Some(ServiceTarget::ClusterIp {
                    namespace: (*namespace).to_owned(),
                    name: (*name).to_owned(),
                }),
            ),
            ["nodeport", node, namespace, name] if nonempty => (
                PodRef {
                    namespace: "nodeport".to_owned(),
                    name: format!("{node}/{namespace}/{name}"),
                },
                Some(ServiceTarget::NodePort {
                    node: (*node).to_owned(),
                    namespace: (*namespace).to_owned(),
                    name: (*name).to_owned(),
                }),
            ),
            _ => (
                raw.to.parse::<PodRef>().map_err(|e| {
                    format!("{e}, service/NAMESPACE/NAME or nodeport/NODE/NAMESPACE/NAME")
                })?,
                None,
            ),
        };
        Ok(Self {
            from: raw.from,
            to,
            service,
            port: raw.port,
            protocol: raw.protocol,
            family: raw.family,
            source_port: raw.source_port,
            expect: raw.expect,
            timeout_ms: raw.timeout_ms,
            keep: raw.keep,
            over: raw.over,
            dns_query: raw.dns_query,
        })
    }
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

/// What the lab needs to know about a Calico `HostEndpoint` (in `resources` or a step's
/// `apply`): the lab gives its node an interface of that name towards the fabric, carrying its
/// expected addresses, and probes can start or end there (`hep/<name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEndpointInfo {
    pub name: String,
    /// `spec.node` (required in the lab).
    pub node: String,
    /// `spec.interfaceName`, [`DEFAULT_HOST_ENDPOINT_INTERFACE`] when absent or empty.
    pub interface: String,
    /// `spec.expectedIPs` (required in the lab), in order, without repeats.
    pub ips: Vec<IpAddr>,
}

impl HostEndpointInfo {
    /// How probes name it: `hep/<name>`.
    pub fn reference(&self) -> PodRef {
        PodRef {
            namespace: HOST_ENDPOINT_PREFIX.to_owned(),
            name: self.name.clone(),
        }
    }

    /// Its first expected address of `family`: where it serves and what its probes leave from.
    pub fn ip(&self, family: Family) -> Option<IpAddr> {
        self.ips.iter().copied().find(|ip| match family {
            Family::V4 => ip.is_ipv4(),
            Family::V6 => ip.is_ipv6(),
        })
    }
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
    #[error("{at}: {detail}")]
    BadService { at: String, detail: String },
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
    #[error(
        "{at}: HostEndpoint {name} has no spec.node; the lab needs it to know which node's \
         interface the host endpoint is"
    )]
    HostEndpointNoNode { at: String, name: String },
    #[error(
        "{at}: HostEndpoint {name} has no spec.expectedIPs; the lab needs them to address the \
         host endpoint's interface (and probes to reach it)"
    )]
    HostEndpointNoAddresses { at: String, name: String },
    #[error("{at}: HostEndpoint {name}: expected IP `{value}` {why}")]
    HostEndpointBadAddress {
        at: String,
        name: String,
        value: String,
        why: String,
    },
    #[error("{at}: HostEndpoint {name}: interfaceName `{value}` {why}")]
    HostEndpointBadInterface {
        at: String,
        name: String,
        value: String,
        why: &'static str,
    },
    #[error(
        "HostEndpoints {first} (interface {first_interface}) and {second} (interface \
         {second_interface}) are both on node {node}: the lab gives a node one interface towards \
         the other nodes, named after its host endpoint, so host endpoints of one node must name \
         the same interface"
    )]
    HostEndpointInterfaceClash {
        node: String,
        first: String,
        first_interface: String,
        second: String,
        second_interface: String,
    },
    #[error(
        "{at}: HostEndpoint {name} changes its node, interfaceName or expectedIPs; the lab builds \
         host interfaces once, so a step may change only its labels, ports and profiles"
    )]
    HostEndpointChanged { at: String, name: String },
    #[error("{at}: HostEndpoint {name} has no IPv{family} address in spec.expectedIPs")]
    HostEndpointNoAddress {
        at: String,
        name: String,
        family: u8,
    },
    #[error(
        "{at}: `{reference}` names both HostEndpoint {name} and a pod in namespace \
         {HOST_ENDPOINT_PREFIX}; rename one"
    )]
    AmbiguousEndpoint {
        at: String,
        reference: PodRef,
        name: String,
    },
    #[error("{at}: `{reference}`: no HostEndpoint {name} in resources or any step's apply")]
    UnknownHostEndpoint {
        at: String,
        reference: PodRef,
        name: String,
    },
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
        let services = super::services::plan(self)?;
        let heps = self.host_endpoints()?;
        let heps: BTreeMap<&str, &HostEndpointInfo> =
            heps.iter().map(|h| (h.name.as_str(), h)).collect();
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
                validate_probe(&at, probe, &by_ref, &heps)?;
                if let Some(target) = &probe.service {
                    services.check_probe(&at, probe, target, &nodes)?;
                }
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
    heps: &BTreeMap<&str, &HostEndpointInfo>,
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
    if probe.dns_query.is_some() && probe.protocol != Protocol::Udp {
        return Err(ScenarioError::BadService {
            at: at.to_owned(),
            detail: "dnsQuery needs protocol UDP".to_owned(),
        });
    }
    let ends: &[&PodRef] = if probe.service.is_some() {
        &[&probe.from]
    } else {
        &[&probe.from, &probe.to]
    };
    for &pod in ends {
        if let Some(name) = pod.host_endpoint_name() {
            match (heps.get(name), pods.contains_key(pod)) {
                (Some(_), true) => {
                    return Err(ScenarioError::AmbiguousEndpoint {
                        at: at.to_owned(),
                        reference: pod.clone(),
                        name: name.to_owned(),
                    });
                }
                (Some(hep), false) => {
                    if hep.ip(probe.family).is_none() {
                        return Err(ScenarioError::HostEndpointNoAddress {
                            at: at.to_owned(),
                            name: name.to_owned(),
                            family: probe.family.number(),
                        });
                    }
                    continue;
                }
                (None, false) => {
                    return Err(ScenarioError::UnknownHostEndpoint {
                        at: at.to_owned(),
                        reference: pod.clone(),
                        name: name.to_owned(),
                    });
                }
                // A pod in a namespace `hep`, with no host endpoint of its name.
                (None, true) => {}
            }
        }
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

/// What the lab takes from a Calico `HostEndpoint`: node, interface and addresses, each
/// required or checked as far as the lab depends on it; the rest is the agent's to judge.
fn host_endpoint_info(at: &str, object: &Object) -> Result<HostEndpointInfo, ScenarioError> {
    let name = object.key.name.clone();
    let node = match object.manifest.pointer("/spec/node") {
        None | Some(Value::Null) => {
            return Err(ScenarioError::HostEndpointNoNode {
                at: at.to_owned(),
                name,
            });
        }
        Some(Value::String(node)) => checked_node_name(&format!("{at}.spec.node"), node)?,
        Some(other) => {
            return Err(ScenarioError::BadNodeName {
                at: format!("{at}.spec.node"),
                value: other.to_string(),
            });
        }
    };
    let bad_interface = |value: String, why| ScenarioError::HostEndpointBadInterface {
        at: format!("{at}.spec.interfaceName"),
        name: name.clone(),
        value,
        why,
    };
    let interface = match object.manifest.pointer("/spec/interfaceName") {
        None | Some(Value::Null) => DEFAULT_HOST_ENDPOINT_INTERFACE.to_owned(),
        Some(Value::String(s)) if s.is_empty() => DEFAULT_HOST_ENDPOINT_INTERFACE.to_owned(),
        Some(Value::String(s)) => {
            checked_interface_name(s).map_err(|why| bad_interface(s.clone(), why))?
        }
        Some(other) => return Err(bad_interface(other.to_string(), "is not a string")),
    };
    let listed = match object.manifest.pointer("/spec/expectedIPs") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(list)) => list.as_slice(),
        Some(other) => {
            return Err(ScenarioError::HostEndpointBadAddress {
                at: format!("{at}.spec.expectedIPs"),
                name,
                value: other.to_string(),
                why: "is not a list of addresses".to_owned(),
            });
        }
    };
    let mut ips: Vec<IpAddr> = Vec::new();
    for (i, entry) in listed.iter().enumerate() {
        let bad = |why: &str| ScenarioError::HostEndpointBadAddress {
            at: format!("{at}.spec.expectedIPs[{i}]"),
            name: name.clone(),
            value: entry
                .as_str()
                .map_or_else(|| entry.to_string(), str::to_owned),
            why: why.to_owned(),
        };
        let ip: IpAddr = entry
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("is not an IP address"))?;
        if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
            return Err(bad("cannot be a host's interface address"));
        }
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    if ips.is_empty() {
        return Err(ScenarioError::HostEndpointNoAddresses {
            at: at.to_owned(),
            name,
        });
    }
    Ok(HostEndpointInfo {
        name,
        node,
        interface,
        ips,
    })
}

/// An interface name the lab can create in a node namespace: what the agent accepts (at most
/// 15 characters of alphanumerics, `_`, `.`, `-`) except Calico's `*` (every interface: the
/// lab builds one), and none of the names the lab uses itself there.
fn checked_interface_name(name: &str) -> Result<String, &'static str> {
    if name == "*" {
        return Err(
            "means every interface of the host; the lab builds one named interface per host \
             endpoint",
        );
    }
    let charset = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if name.len() > 15 || !charset || name.starts_with(['-', '.']) {
        return Err(
            "is not an interface name (at most 15 characters of alphanumerics, `_`, `.` \
                    and `-`, not starting with `-` or `.`)",
        );
    }
    if name == "lo" || name.starts_with(super::agent::IFACE_PREFIX) {
        return Err("is taken by the lab in the node namespace (`lo`, and `plh*` for pods)");
    }
    Ok(name.to_owned())
}

/// Why a host endpoint address cannot be used, if it cannot: inside the lab's pod range, the
/// prefix of a pod's address, or the node fabric.
fn outside_pods_and_fabric(ip: IpAddr, pods: &[PodInfo]) -> Option<String> {
    let (fabric_v4, fabric_v4_len) = FABRIC_RANGE_V4;
    let (fabric_v6, fabric_v6_len) = FABRIC_RANGE_V6;
    let (pods_v4, pods_v4_len) = POD_RANGE_V4;
    let in_fabric = match ip {
        IpAddr::V4(_) => same_prefix(ip, IpAddr::V4(fabric_v4), fabric_v4_len),
        IpAddr::V6(_) => same_prefix(ip, IpAddr::V6(fabric_v6), fabric_v6_len),
    };
    if in_fabric {
        return Some(format!(
            "is inside the lab's node fabric ({fabric_v4}/{fabric_v4_len}, \
             {fabric_v6}/{fabric_v6_len}); give it another"
        ));
    }
    if same_prefix(ip, IpAddr::V4(pods_v4), pods_v4_len) {
        return Some(format!(
            "is inside the lab's pod range {pods_v4}/{pods_v4_len}; give it another"
        ));
    }
    for pod in pods {
        for pod_ip in &pod.ips {
            let len = if pod_ip.is_ipv4() {
                POD_PREFIX_V4
            } else {
                POD_PREFIX_V6
            };
            if same_prefix(ip, *pod_ip, len) {
                return Some(format!(
                    "is inside the pods' range {pod_ip}/{len} (pod {}); give it another",
                    pod.pod
                ));
            }
        }
    }
    None
}

/// Whether `a` and `b` are of one family and agree on their first `len` bits.
fn same_prefix(a: IpAddr, b: IpAddr, len: u8) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let shift = 32 - u32::from(len.min(32));
            u32::from(a).checked_shr(shift).unwrap_or(0)
                == u32::from(b).checked_shr(shift).unwrap_or(0)
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let shift = 128 - u32::from(len.min(128));
            u128::from(a).checked_shr(shift).unwrap_or(0)
                == u128::from(b).checked_shr(shift).unwrap_or(0)
        }
        _ => false,
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
  - {apiVersion: projectcalico.org/v3, kind: HostEndpoint, metadata: {name: h}, spec: {node: node-h, interfaceName: eth0, expectedIPs: [10.99.0.1]}}
steps:
  - apply:
      - {apiVersion: projectcalico.org/v3, kind: HostEndpoint, metadata: {name: g}, spec: {node: gw.example, expectedIPs: [10.99.0.2]}}
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

    /// Two pods (one dual-stack at 10.44.0.5 / fd00:44::5), then `extra` under `resources`.
    fn with_host_endpoints(extra: &str) -> String {
        format!(
            r#"
resources:
  - {{apiVersion: v1, kind: Pod, metadata: {{name: a}}, spec: {{containers: []}}}}
  - {{apiVersion: v1, kind: Pod, metadata: {{name: b}}, spec: {{containers: []}}, status: {{podIPs: [{{ip: 10.44.0.5}}, {{ip: "fd00:44::5"}}]}}}}
{extra}"#
        )
    }

    fn hep(name: &str, spec: &str) -> String {
        format!(
            "  - {{apiVersion: projectcalico.org/v3, kind: HostEndpoint, metadata: {{name: {name}}}, spec: {spec}}}\n"
        )
    }

    #[test]
    fn host_endpoints_are_read() -> anyhow::Result<()> {
        let text = with_host_endpoints(
            r#"  - apiVersion: projectcalico.org/v3
    kind: HostEndpoint
    metadata: {name: bm1}
    spec: {node: bm1, expectedIPs: [10.99.0.10, "fd00:99::10", 10.99.0.10]}
  - apiVersion: projectcalico.org/v3
    kind: HostEndpoint
    metadata: {name: bm1-lo}
    spec: {node: bm1, interfaceName: eth0, expectedIPs: [10.99.0.11]}
steps:
  # Re-applied unchanged but for labels, and a host endpoint only a step declares.
  - apply:
      - apiVersion: projectcalico.org/v3
        kind: HostEndpoint
        metadata: {name: bm1, labels: {x: y}}
        spec: {node: bm1, expectedIPs: [10.99.0.10, "fd00:99::10"]}
      - apiVersion: projectcalico.org/v3
        kind: HostEndpoint
        metadata: {name: gw}
        spec: {node: gw, interfaceName: bond0.7, expectedIPs: [10.98.0.1]}
    probes:
      - {from: a, to: hep/bm1, port: 22, expect: allow}
      - {from: hep/bm1, to: b, port: 53, protocol: UDP, family: 6, expect: allow}
      - {from: hep/gw, to: a, protocol: ICMP, expect: allow}
"#,
        );
        let scenario = parse(&text)?;
        let heps = scenario.host_endpoints()?;
        let summary: Vec<(&str, &str, &str, Vec<String>)> = heps
            .iter()
            .map(|h| {
                (
                    h.name.as_str(),
                    h.node.as_str(),
                    h.interface.as_str(),
                    h.ips.iter().map(ToString::to_string).collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "bm1",
                    "bm1",
                    "eth0",
                    vec!["10.99.0.10".to_owned(), "fd00:99::10".to_owned()]
                ),
                ("bm1-lo", "bm1", "eth0", vec!["10.99.0.11".to_owned()]),
                ("gw", "gw", "bond0.7", vec!["10.98.0.1".to_owned()]),
            ]
        );
        assert_eq!(heps[0].reference().to_string(), "hep/bm1");
        assert_eq!(
            heps[0].ip(Family::V6),
            Some(IpAddr::from_str("fd00:99::10")?)
        );
        let nodes: Vec<_> = scenario.nodes()?.into_iter().collect();
        assert_eq!(nodes, ["bm1", "gw"]);
        let served = scenario.served_ports()?;
        assert_eq!(
            served.get(&PodRef::from_str("hep/bm1")?),
            Some(&BTreeSet::from([22]))
        );
        Ok(())
    }

    /// Every way a host endpoint cannot be built in the lab is refused before anything is
    /// created, with the host endpoint named.
    #[test]
    fn unusable_host_endpoints_are_refused() {
        let refused = [
            ("no expectedIPs", hep("h", "{node: bm1}")),
            (
                "empty expectedIPs",
                hep("h", "{node: bm1, expectedIPs: []}"),
            ),
            ("no node", hep("h", "{expectedIPs: [10.99.0.1]}")),
            (
                "not an address",
                hep("h", "{node: bm1, expectedIPs: [10.99.0]}"),
            ),
            (
                "loopback",
                hep("h", "{node: bm1, expectedIPs: [127.0.0.1]}"),
            ),
            (
                "the lab's pod range",
                hep("h", "{node: bm1, expectedIPs: [10.42.0.200]}"),
            ),
            (
                "a pod's /24",
                hep("h", "{node: bm1, expectedIPs: [10.44.0.99]}"),
            ),
            (
                "a pod's /64",
                hep("h", "{node: bm1, expectedIPs: [\"fd00:44::99\"]}"),
            ),
            (
                "the IPv4 fabric",
                hep("h", "{node: bm1, expectedIPs: [198.18.0.9]}"),
            ),
            (
                "the IPv6 fabric",
                hep("h", "{node: bm1, expectedIPs: [\"fd00:fab::9\"]}"),
            ),
            (
                "`*`",
                hep(
                    "h",
                    "{node: bm1, interfaceName: \"*\", expectedIPs: [10.99.0.1]}",
                ),
            ),
            (
                "a pod's interface",
                hep(
                    "h",
                    "{node: bm1, interfaceName: plh0, expectedIPs: [10.99.0.1]}",
                ),
            ),
            (
                "too long",
                hep(
                    "h",
                    "{node: bm1, interfaceName: abcdefghijklmnop, expectedIPs: [10.99.0.1]}",
                ),
            ),
            (
                "a slash",
                hep(
                    "h",
                    "{node: bm1, interfaceName: a/b, expectedIPs: [10.99.0.1]}",
                ),
            ),
            (
                "two interfaces on one node",
                hep(
                    "h",
                    "{node: bm1, interfaceName: eth0, expectedIPs: [10.99.0.1]}",
                ) + &hep(
                    "g",
                    "{node: bm1, interfaceName: eth1, expectedIPs: [10.99.0.2]}",
                ),
            ),
            (
                "one address for two",
                hep("h", "{node: bm1, expectedIPs: [10.99.0.1]}")
                    + &hep("g", "{node: bm2, expectedIPs: [10.99.0.1]}"),
            ),
        ];
        for (why, resources) in refused {
            let result = parse(&with_host_endpoints(&resources));
            let Err(e) = result else {
                panic!("accepted a host endpoint with {why}");
            };
            let message = e.to_string();
            assert!(
                message.contains("HostEndpoint"),
                "{why}: the error does not name the host endpoint: {message}"
            );
            let expected = match why {
                "no expectedIPs" | "empty expectedIPs" => {
                    matches!(e, ScenarioError::HostEndpointNoAddresses { .. })
                }
                "no node" => matches!(e, ScenarioError::HostEndpointNoNode { .. }),
                "two interfaces on one node" => {
                    matches!(e, ScenarioError::HostEndpointInterfaceClash { .. })
                        && message.contains("eth0")
                        && message.contains("eth1")
                        && message.contains("bm1")
                }
                "`*`" | "a pod's interface" | "too long" | "a slash" => {
                    matches!(e, ScenarioError::HostEndpointBadInterface { .. })
                }
                _ => matches!(e, ScenarioError::HostEndpointBadAddress { .. }),
            };
            assert!(expected, "{why}: unexpected error {message}");
        }
    }

    #[test]
    fn host_endpoint_changes_and_probes_are_checked() {
        let h = hep("h", "{node: bm1, expectedIPs: [10.99.0.1]}");
        let steps = |rest: &str| with_host_endpoints(&format!("{h}steps:\n{rest}"));
        let moved = steps(&format!(
            "  - apply:\n{}",
            hep("h", "{node: bm2, expectedIPs: [10.99.0.1]}").replace("  - ", "      - ")
        ));
        assert!(matches!(
            parse(&moved),
            Err(ScenarioError::HostEndpointChanged { .. })
        ));
        let readdressed = steps(&format!(
            "  - apply:\n{}",
            hep("h", "{node: bm1, expectedIPs: [10.99.0.2]}").replace("  - ", "      - ")
        ));
        assert!(matches!(
            parse(&readdressed),
            Err(ScenarioError::HostEndpointChanged { .. })
        ));
        let no_v6 =
            steps("  - probes: [{from: hep/h, to: b, port: 53, family: 6, expect: allow}]\n");
        assert!(matches!(
            parse(&no_v6),
            Err(ScenarioError::HostEndpointNoAddress { family: 6, .. })
        ));
        let unknown = steps("  - probes: [{from: a, to: hep/nope, port: 22, expect: allow}]\n");
        assert!(matches!(
            parse(&unknown),
            Err(ScenarioError::UnknownHostEndpoint { .. })
        ));
        // A pod hep/h beside HostEndpoint h: `hep/h` in a probe could be either.
        let ambiguous = format!(
            "{}  - {{apiVersion: v1, kind: Namespace, metadata: {{name: hep}}}}\n  - {{apiVersion: v1, kind: Pod, metadata: {{name: h, namespace: hep}}, spec: {{containers: []}}}}\nsteps:\n  - probes: [{{from: a, to: hep/h, port: 22, expect: allow}}]\n",
            with_host_endpoints(&h)
        );
        assert!(matches!(
            parse(&ambiguous),
            Err(ScenarioError::AmbiguousEndpoint { .. })
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
    fn network_policy_api_kinds_are_cluster_scoped() -> anyhow::Result<()> {
        for (api_version, kind) in [
            ("policy.networking.k8s.io/v1alpha2", "ClusterNetworkPolicy"),
            ("policy.networking.k8s.io/v1alpha1", "AdminNetworkPolicy"),
            (
                "policy.networking.k8s.io/v1alpha1",
                "BaselineAdminNetworkPolicy",
            ),
        ] {
            let object = Object::from_manifest(serde_json::json!({
                "apiVersion": api_version,
                "kind": kind,
                "metadata": {"name": "default"},
                "spec": {},
            }))?;
            assert_eq!(object.key.namespace, None, "{kind}");
            assert_eq!(
                object.key.file_name(),
                format!("{}-default.yaml", kind.to_lowercase())
            );
            // A namespace given anyway is ignored, as the API server ignores it.
            let reference = ObjectRef {
                kind: kind.to_owned(),
                namespace: Some("prod".to_owned()),
                name: "default".to_owned(),
            };
            assert_eq!(reference.key(), object.key);
            let manifest = crate::lab::datastore::complete(&object, &[])?;
            assert!(manifest["metadata"].get("namespace").is_none(), "{kind}");
        }
        // The namespaced NetworkPolicy still defaults to `default`.
        assert_eq!(
            ObjectKey::new("NetworkPolicy", None, "p")
                .namespace
                .as_deref(),
            Some(DEFAULT_NAMESPACE)
        );
        Ok(())
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
