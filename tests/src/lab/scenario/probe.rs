//! Probes: who connects to whom, how, and what is expected.

use super::*;

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
    /// it refuses to run such a probe. `tests/kernel/conformance_bpf.rs` checks SCTP probes at the
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
