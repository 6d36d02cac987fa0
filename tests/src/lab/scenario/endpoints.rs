//! What the lab needs to know about the pods and host endpoints a scenario declares, read
//! from their manifests and checked.

use super::*;

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

pub(super) fn pod_info(at: &str, key: &ObjectKey, pod: &Pod) -> Result<PodInfo, ScenarioError> {
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
pub(super) fn host_endpoint_info(
    at: &str,
    object: &Object,
) -> Result<HostEndpointInfo, ScenarioError> {
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
    if name == "lo" || name.starts_with(crate::lab::agent::IFACE_PREFIX) {
        return Err("is taken by the lab in the node namespace (`lo`, and `plh*` for pods)");
    }
    Ok(name.to_owned())
}

/// Why a host endpoint address cannot be used, if it cannot: inside the lab's pod range, the
/// prefix of a pod's address, or the node fabric.
pub(super) fn outside_pods_and_fabric(ip: IpAddr, pods: &[PodInfo]) -> Option<String> {
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
