//! Kubernetes Services in the lab: addresses assigned as the API server would (ClusterIPs from
//! `10.96.0.0/16` and `fd00:96::/108`, nodePorts from 30000-32767), EndpointSlices derived from
//! the pods a Service selects as the endpointslice controller does, and in every node namespace
//! the rules kube-proxy writes for them (see [`kube_proxy`]).
//!
//! The lab keeps the cluster's current objects ([`ServiceLab`]), so each step that changes a
//! pod's labels, deletes a pod, or adds, changes or deletes a Service or an EndpointSlice
//! rewrites the derived EndpointSlices in the datastore and the kube-proxy rules (one
//! `iptables-restore` or `nft -f` per family and node: atomic).

pub mod dns;
pub mod kube_proxy;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::{Arc, RwLock},
};

use anyhow::Context as _;
use k8s_openapi::{
    api::{
        core::v1::{Pod, Service},
        discovery::v1::EndpointSlice,
    },
    apimachinery::pkg::util::intstr::IntOrString,
};
use serde_json::{Value, json};

use super::{
    netns,
    scenario::{
        DEFAULT_NAMESPACE, Family, KubeProxyMode, Object, ObjectKey, Probe, Protocol, Scenario,
        ScenarioError, ServiceTarget,
    },
    topology::{DEFAULT_NODE, NodePlan, PodPlan},
};

/// Where the lab assigns ClusterIPs (the kube-apiserver's default `--service-cluster-ip-range`
/// for IPv4; a /108 for IPv6, as kubeadm's dual-stack examples use).
pub const SERVICE_RANGE_V4: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 96, 0, 0), 16);
pub const SERVICE_RANGE_V6: (Ipv6Addr, u8) = (Ipv6Addr::new(0xfd00, 0x96, 0, 0, 0, 0, 0, 0), 108);
/// The first address the lab hands out in each range (`.1` is the `kubernetes` Service's on a
/// real cluster; `.10` kube-dns's by convention, which scenarios may give explicitly).
const FIRST_ASSIGNED_HOST: u32 = 20;
/// The default `--service-node-port-range`.
pub const NODE_PORT_RANGE: (u16, u16) = (30000, 32767);
/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// The interface in every node namespace that the Service ranges are routed to (as a real
/// node's default route would take them), so that proxy ARP on the pods' interfaces answers
/// for ClusterIPs; it carries the node's address when the node has no fabric.
pub const SERVICE_IF: &str = "lab-svc0";
/// The other end of [`SERVICE_IF`].
const SERVICE_PEER: &str = "lab-svc1";
/// A container port of this name and protocol UDP serves DNS (the kube-dns pattern).
pub const DNS_PORT_NAME: &str = "dns";
/// The cluster domain the DNS responder answers for.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// One port of a Service, as the lab completed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortPlan {
    pub name: String,
    pub port: u16,
    pub protocol: Protocol,
    pub target: IntOrString,
    pub node_port: Option<u16>,
}

/// What the lab assigned to a Service (stable across the steps that apply new versions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePlan {
    pub namespace: String,
    pub name: String,
    /// Primary family first.
    pub families: Vec<Family>,
    pub cluster_ips: Vec<IpAddr>,
    pub policy: String,
    /// Every port any version of the Service declares, with its assigned nodePort for
    /// NodePort Services (kept when a later version drops and re-adds the port).
    pub ports: Vec<PortPlan>,
    pub node_port_type: bool,
    /// Whether any version has a selector (the lab derives its EndpointSlices).
    pub selector: bool,
}

impl ServicePlan {
    pub fn cluster_ip(&self, family: Family) -> Option<IpAddr> {
        self.cluster_ips
            .iter()
            .copied()
            .find(|ip| family_of(*ip) == family)
    }
}

/// Every Service of a scenario, by (namespace, name).
#[derive(Debug, Clone, Default)]
pub struct ServicePlans {
    pub services: BTreeMap<(String, String), ServicePlan>,
    /// Whether the scenario has Services or EndpointSlices at all (else the lab sets up
    /// nothing for them).
    pub any: bool,
}

pub fn family_of(ip: IpAddr) -> Family {
    if ip.is_ipv4() { Family::V4 } else { Family::V6 }
}

fn parse_family(at: &str, s: &str) -> Result<Family, ScenarioError> {
    match s {
        "IPv4" => Ok(Family::V4),
        "IPv6" => Ok(Family::V6),
        other => Err(bad(at, format!("ipFamilies: unknown family {other}"))),
    }
}

fn bad(at: &str, detail: String) -> ScenarioError {
    ScenarioError::BadService {
        at: at.to_owned(),
        detail,
    }
}

fn in_range(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let (net, len) = SERVICE_RANGE_V4;
            u32::from(v4) >> (32 - len) == u32::from(net) >> (32 - len)
        }
        IpAddr::V6(v6) => {
            let (net, len) = SERVICE_RANGE_V6;
            u128::from(v6) >> (128 - len) == u128::from(net) >> (128 - len)
        }
    }
}

fn parse_protocol(at: &str, p: Option<&str>) -> Result<Protocol, ScenarioError> {
    match p.unwrap_or("TCP") {
        "TCP" => Ok(Protocol::Tcp),
        "UDP" => Ok(Protocol::Udp),
        "SCTP" => Ok(Protocol::Sctp),
        other => Err(bad(at, format!("unknown protocol {other}"))),
    }
}

fn port_u16(at: &str, what: &str, n: i32) -> Result<u16, ScenarioError> {
    u16::try_from(n)
        .ok()
        .filter(|n| *n != 0)
        .ok_or_else(|| bad(at, format!("{what} {n} is out of range")))
}

/// Assigns every Service of the scenario (in `resources` or a step's `apply`, in order of
/// first appearance) its ClusterIPs and nodePorts, and checks what the lab depends on.
pub fn plan(scenario: &Scenario) -> Result<ServicePlans, ScenarioError> {
    let applied = scenario.steps.iter().enumerate().flat_map(|(s, step)| {
        step.apply
            .iter()
            .enumerate()
            .map(move |(i, o)| (format!("steps[{s}].apply[{i}]"), o))
    });
    let objects: Vec<(String, &Object)> = scenario
        .resources
        .iter()
        .enumerate()
        .map(|(i, o)| (format!("resources[{i}]"), o))
        .chain(applied)
        .collect();
    let mut plans = ServicePlans::default();
    let mut taken: BTreeSet<IpAddr> = BTreeSet::new();
    let mut taken_ports: BTreeSet<u16> = BTreeSet::new();
    let mut parsed: Vec<(String, Service)> = Vec::new();
    for (at, object) in &objects {
        match object.key.kind.as_str() {
            "EndpointSlice" => plans.any = true,
            "Service" => {
                plans.any = true;
                let service: Service = serde_json::from_value(object.manifest.clone())
                    .map_err(|e| bad(at, format!("invalid Service: {e}")))?;
                let spec = service.spec.clone().unwrap_or_default();
                for ip in spec
                    .cluster_ip
                    .iter()
                    .chain(spec.cluster_ips.iter().flatten())
                {
                    if ip == "None" || ip.is_empty() {
                        return Err(bad(at, "headless Services are not supported".to_owned()));
                    }
                    let ip: IpAddr = ip
                        .parse()
                        .map_err(|_| bad(at, format!("clusterIP {ip} is not an address")))?;
                    if !in_range(ip) {
                        return Err(bad(
                            at,
                            format!(
                                "clusterIP {ip} is outside the lab's Service ranges ({}/{}, {}/{})",
                                SERVICE_RANGE_V4.0,
                                SERVICE_RANGE_V4.1,
                                SERVICE_RANGE_V6.0,
                                SERVICE_RANGE_V6.1
                            ),
                        ));
                    }
                    taken.insert(ip);
                }
                for p in spec.ports.iter().flatten() {
                    if let Some(n) = p.node_port {
                        taken_ports.insert(port_u16(at, "nodePort", n)?);
                    }
                }
                parsed.push((at.clone(), service));
            }
            _ => {}
        }
    }
    let mut next_v4 = u32::from(SERVICE_RANGE_V4.0) + FIRST_ASSIGNED_HOST;
    let mut next_v6 = u128::from(SERVICE_RANGE_V6.0) + u128::from(FIRST_ASSIGNED_HOST);
    let mut next_port = NODE_PORT_RANGE.0;
    for (at, service) in parsed {
        let namespace = service
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        let name = service.metadata.name.clone().unwrap_or_default();
        let spec = service.spec.clone().unwrap_or_default();
        let kind = spec.type_.as_deref().unwrap_or("ClusterIP");
        if !matches!(kind, "ClusterIP" | "NodePort") {
            return Err(bad(
                &at,
                format!("type {kind}: the lab has ClusterIP and NodePort Services"),
            ));
        }
        let mut given: Vec<IpAddr> = Vec::new();
        for ip in spec
            .cluster_ip
            .iter()
            .chain(spec.cluster_ips.iter().flatten())
        {
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| bad(&at, format!("bad clusterIP {ip}")))?;
            if !given.contains(&ip) {
                given.push(ip);
            }
        }
        let policy = spec
            .ip_family_policy
            .clone()
            .unwrap_or_else(|| "SingleStack".to_owned());
        let mut families: Vec<Family> = Vec::new();
        for f in spec.ip_families.iter().flatten() {
            let f = parse_family(&at, f)?;
            if !families.contains(&f) {
                families.push(f);
            }
        }
        if families.is_empty() {
            families = given.iter().map(|ip| family_of(*ip)).collect();
        }
        if families.is_empty() {
            families.push(Family::V4);
        }
        match policy.as_str() {
            "SingleStack" => families.truncate(1),
            "PreferDualStack" | "RequireDualStack" => {
                let other = if families[0] == Family::V4 {
                    Family::V6
                } else {
                    Family::V4
                };
                if !families.contains(&other) {
                    families.push(other);
                }
            }
            other => return Err(bad(&at, format!("unknown ipFamilyPolicy {other}"))),
        }
        let key = (namespace.clone(), name.clone());
        let selector = spec.selector.as_ref().is_some_and(|s| !s.is_empty());
        if let Some(existing) = plans.services.get_mut(&key) {
            if !given.is_empty() && given != existing.cluster_ips {
                return Err(bad(
                    &at,
                    format!("Service {namespace}/{name} changes its clusterIPs (immutable)"),
                ));
            }
            if families != existing.families {
                return Err(bad(
                    &at,
                    format!("Service {namespace}/{name} changes its ipFamilies"),
                ));
            }
            existing.selector |= selector;
            existing.node_port_type |= kind == "NodePort";
        } else {
            let mut cluster_ips = Vec::new();
            for family in &families {
                let ip = match given.iter().find(|ip| family_of(**ip) == *family) {
                    Some(ip) => *ip,
                    None => match family {
                        Family::V4 => loop {
                            let ip = IpAddr::V4(Ipv4Addr::from(next_v4));
                            next_v4 += 1;
                            if !taken.contains(&ip) {
                                break ip;
                            }
                        },
                        Family::V6 => loop {
                            let ip = IpAddr::V6(Ipv6Addr::from(next_v6));
                            next_v6 += 1;
                            if !taken.contains(&ip) {
                                break ip;
                            }
                        },
                    },
                };
                taken.insert(ip);
                cluster_ips.push(ip);
            }
            plans.services.insert(
                key.clone(),
                ServicePlan {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    families,
                    cluster_ips,
                    policy,
                    ports: Vec::new(),
                    node_port_type: kind == "NodePort",
                    selector,
                },
            );
        }
        let Some(plan) = plans.services.get_mut(&key) else {
            continue;
        };
        let ports = spec.ports.clone().unwrap_or_default();
        if ports.is_empty() {
            return Err(bad(&at, format!("Service {namespace}/{name} has no ports")));
        }
        if ports.len() > 1
            && ports
                .iter()
                .any(|p| p.name.as_deref().unwrap_or("").is_empty())
        {
            return Err(bad(
                &at,
                format!(
                    "Service {namespace}/{name}: every port of a multi-port Service needs a name"
                ),
            ));
        }
        for (i, p) in ports.iter().enumerate() {
            let at = format!("{at}.spec.ports[{i}]");
            let port = port_u16(&at, "port", p.port)?;
            let protocol = parse_protocol(&at, p.protocol.as_deref())?;
            let target = match &p.target_port {
                None => IntOrString::Int(i32::from(port)),
                Some(IntOrString::Int(n)) => {
                    IntOrString::Int(i32::from(port_u16(&at, "targetPort", *n)?))
                }
                Some(IntOrString::String(s)) if s.parse::<u16>().is_ok() => IntOrString::Int(
                    i32::from(port_u16(&at, "targetPort", s.parse().unwrap_or(0))?),
                ),
                Some(IntOrString::String(s)) => IntOrString::String(s.clone()),
            };
            let port_name = p.name.clone().unwrap_or_default();
            let given_node_port = p
                .node_port
                .map(|n| port_u16(&at, "nodePort", n))
                .transpose()?;
            // Every (name, protocol, port) any version declares stays probeable; a version
            // that renumbers a port keeps its nodePort, as the API server does on update.
            if let Some(existing) = plan
                .ports
                .iter_mut()
                .find(|e| e.name == port_name && e.protocol == protocol && e.port == port)
            {
                existing.target = target;
                if given_node_port.is_some() {
                    existing.node_port = given_node_port;
                }
                continue;
            }
            let kept_node_port = plan
                .ports
                .iter()
                .find(|e| e.name == port_name && e.protocol == protocol)
                .and_then(|e| e.node_port);
            let node_port = if kind == "NodePort" || plan.node_port_type {
                match given_node_port.or(kept_node_port) {
                    Some(n) => Some(n),
                    None => {
                        while taken_ports.contains(&next_port) {
                            next_port += 1;
                        }
                        if next_port > NODE_PORT_RANGE.1 {
                            return Err(bad(&at, "no nodePort left".to_owned()));
                        }
                        taken_ports.insert(next_port);
                        Some(next_port)
                    }
                }
            } else {
                None
            };
            plan.ports.push(PortPlan {
                name: port_name,
                port,
                protocol,
                target,
                node_port,
            });
        }
    }
    Ok(plans)
}

impl ServicePlans {
    /// Checks a probe to a Service: the Service exists, has the probe's port and protocol (and
    /// a nodePort for `nodeport/`), an address of the probe's family, and the node exists.
    pub fn check_probe(
        &self,
        at: &str,
        probe: &Probe,
        target: &ServiceTarget,
        nodes: &BTreeSet<String>,
    ) -> Result<(), ScenarioError> {
        let (namespace, name) = target.service();
        let Some(plan) = self.services.get(&(namespace.to_owned(), name.to_owned())) else {
            return Err(bad(
                at,
                format!("no Service {namespace}/{name} in resources or any step's apply"),
            ));
        };
        if !matches!(probe.protocol, Protocol::Tcp | Protocol::Udp) {
            return Err(bad(
                at,
                "probes through a Service are TCP or UDP".to_owned(),
            ));
        }
        let port = plan
            .ports
            .iter()
            .find(|p| p.port == probe.port && p.protocol == probe.protocol)
            .ok_or_else(|| {
                bad(
                    at,
                    format!(
                        "Service {namespace}/{name} has no port {}/{}",
                        probe.port, probe.protocol
                    ),
                )
            })?;
        if plan.cluster_ip(probe.family).is_none() {
            return Err(bad(
                at,
                format!(
                    "Service {namespace}/{name} has no IPv{} ClusterIP",
                    probe.family.number()
                ),
            ));
        }
        if let ServiceTarget::NodePort { node, .. } = target {
            if port.node_port.is_none() {
                return Err(bad(
                    at,
                    format!("Service {namespace}/{name} is not of type NodePort"),
                ));
            }
            if node != DEFAULT_NODE && !nodes.contains(node) {
                return Err(bad(at, format!("no node {node} in the lab")));
            }
        }
        Ok(())
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<&ServicePlan> {
        self.services.get(&(namespace.to_owned(), name.to_owned()))
    }

    /// A Service manifest completed as the API server stores it: clusterIP(s), ipFamilies,
    /// ipFamilyPolicy, type, ports with protocol, targetPort and nodePort.
    pub fn complete(&self, manifest: &mut Value, namespace: &str, name: &str) {
        let Some(plan) = self.get(namespace, name) else {
            return;
        };
        let Some(root) = manifest.as_object_mut() else {
            return;
        };
        let spec = root.entry("spec").or_insert_with(|| json!({}));
        if !spec.is_object() {
            *spec = json!({});
        }
        let Some(spec) = spec.as_object_mut() else {
            return;
        };
        spec.insert("clusterIP".into(), json!(plan.cluster_ips[0].to_string()));
        spec.insert(
            "clusterIPs".into(),
            json!(
                plan.cluster_ips
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            ),
        );
        spec.insert(
            "ipFamilies".into(),
            json!(
                plan.families
                    .iter()
                    .map(|f| format!("IPv{}", f.number()))
                    .collect::<Vec<_>>()
            ),
        );
        spec.insert("ipFamilyPolicy".into(), json!(plan.policy));
        if !spec.contains_key("type") {
            spec.insert("type".into(), json!("ClusterIP"));
        }
        let node_port = spec.get("type").and_then(Value::as_str) == Some("NodePort");
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for port in ports.iter_mut().filter_map(Value::as_object_mut) {
                let protocol = port
                    .get("protocol")
                    .and_then(Value::as_str)
                    .unwrap_or("TCP")
                    .to_owned();
                port.insert("protocol".into(), json!(protocol));
                let name = port
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                let found = plan
                    .ports
                    .iter()
                    .find(|p| p.name == name && p.protocol.to_string() == protocol);
                // This version's own targetPort; the Service port when it gives none.
                if !port.contains_key("targetPort") {
                    let number = port.get("port").cloned().unwrap_or(Value::Null);
                    port.insert("targetPort".into(), number);
                }
                if let (true, false, Some(n)) = (
                    node_port,
                    port.contains_key("nodePort"),
                    found.and_then(|f| f.node_port),
                ) {
                    port.insert("nodePort".into(), json!(n));
                }
            }
        }
    }
}

/// A port of a (completed) Service version as written: name, port, protocol, targetPort
/// (a number written as a string is that number) and nodePort.
fn version_port(p: &k8s_openapi::api::core::v1::ServicePort) -> Option<PortPlan> {
    let port = u16::try_from(p.port).ok()?;
    let protocol = match p.protocol.as_deref().unwrap_or("TCP") {
        "UDP" => Protocol::Udp,
        "SCTP" => Protocol::Sctp,
        _ => Protocol::Tcp,
    };
    let target = match &p.target_port {
        None => IntOrString::Int(i32::from(port)),
        Some(IntOrString::String(s)) => match s.parse::<i32>() {
            Ok(n) => IntOrString::Int(n),
            Err(_) => IntOrString::String(s.clone()),
        },
        Some(other) => other.clone(),
    };
    Some(PortPlan {
        name: p.name.clone().unwrap_or_default(),
        port,
        protocol,
        target,
        node_port: p.node_port.and_then(|n| u16::try_from(n).ok()),
    })
}

/// A pod's named container ports: (name, protocol) → number.
fn named_ports(pod: &Pod) -> BTreeMap<(String, Protocol), u16> {
    let mut out = BTreeMap::new();
    for container in pod.spec.iter().flat_map(|s| &s.containers) {
        for port in container.ports.iter().flatten() {
            let (Some(name), Ok(number)) = (&port.name, u16::try_from(port.container_port)) else {
                continue;
            };
            let protocol = match port.protocol.as_deref().unwrap_or("TCP") {
                "UDP" => Protocol::Udp,
                "SCTP" => Protocol::Sctp,
                _ => Protocol::Tcp,
            };
            out.entry((name.clone(), protocol)).or_insert(number);
        }
    }
    out
}

/// The port `target` resolves to on `pod` for `protocol`, as `podutil.FindPort` does.
fn resolve_target(target: &IntOrString, protocol: Protocol, pod: &Pod) -> Option<u16> {
    match target {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => named_ports(pod).get(&(name.clone(), protocol)).copied(),
    }
}

fn labels_match(
    selector: &BTreeMap<String, String>,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// Ports each pod must serve for the Services that could send it traffic: every target port
/// of every version of a Service in its namespace, resolved on the pod (named ports through
/// its container ports), TCP and UDP alike like every served port. UDP ports a DNS responder
/// serves are left out (see [`dns_ports`]).
pub fn served_target_ports(
    scenario: &Scenario,
) -> anyhow::Result<BTreeMap<super::scenario::PodRef, BTreeSet<u16>>> {
    let versions = scenario
        .resources
        .iter()
        .chain(scenario.steps.iter().flat_map(|s| &s.apply))
        .filter(|o| o.key.kind == "Service");
    let mut targets: Vec<(String, PortPlan)> = Vec::new();
    for object in versions {
        let service: Service = serde_json::from_value(object.manifest.clone())
            .with_context(|| format!("reading {}", object.key))?;
        let namespace = object.key.namespace.clone().unwrap_or_default();
        for port in service.spec.iter().flat_map(|s| s.ports.iter().flatten()) {
            if let Some(port) = version_port(port) {
                targets.push((namespace.clone(), port));
            }
        }
    }
    let mut out: BTreeMap<super::scenario::PodRef, BTreeSet<u16>> = BTreeMap::new();
    for object in &scenario.resources {
        let Some(pod) = object.as_pod() else { continue };
        let pod = pod?;
        let reference = super::scenario::PodRef {
            namespace: object.key.namespace.clone().unwrap_or_default(),
            name: object.key.name.clone(),
        };
        for (_, port) in targets.iter().filter(|(ns, _)| *ns == reference.namespace) {
            if let Some(n) = resolve_target(&port.target, port.protocol, &pod) {
                out.entry(reference.clone()).or_default().insert(n);
            }
        }
    }
    Ok(out)
}

/// The UDP ports a pod answers DNS on: its container ports named `dns` with protocol UDP.
pub fn dns_ports(pod: &Pod) -> BTreeSet<u16> {
    named_ports(pod)
        .into_iter()
        .filter(|((name, protocol), _)| name == DNS_PORT_NAME && *protocol == Protocol::Udp)
        .map(|(_, n)| n)
        .collect()
}

/// Names the lab's DNS responders answer: `<service>.<namespace>.svc.cluster.local` → its
/// ClusterIPs, for the Services that exist now.
pub type DnsTable = Arc<RwLock<BTreeMap<String, Vec<IpAddr>>>>;

/// The cluster as the lab last wrote it, and what it derived from it.
pub struct ServiceLab {
    plans: ServicePlans,
    mode: KubeProxyMode,
    /// Completed manifests of the Pods, Services and EndpointSlices now in the datastore
    /// (the ones the scenario writes; derived slices are in `derived`).
    objects: BTreeMap<ObjectKey, Value>,
    /// EndpointSlices the lab derived and wrote, by key.
    derived: BTreeMap<ObjectKey, Value>,
    /// Node namespaces, and the rules last written there per family.
    nodes: Vec<String>,
    written: Option<kube_proxy::Rules>,
    pub dns: DnsTable,
}

impl ServiceLab {
    pub fn new(
        scenario: &Scenario,
        mode: KubeProxyMode,
        nodes: Vec<String>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            plans: plan(scenario)?,
            mode,
            objects: BTreeMap::new(),
            derived: BTreeMap::new(),
            nodes,
            written: None,
            dns: Arc::default(),
        })
    }

    pub fn plans(&self) -> &ServicePlans {
        &self.plans
    }

    pub fn active(&self) -> bool {
        self.plans.any
    }

    /// Completes a Service's manifest (others are left alone).
    pub fn complete(&self, object: &Object) -> Object {
        let mut object = object.clone();
        if object.key.kind == "Service" {
            let namespace = object.key.namespace.clone().unwrap_or_default();
            self.plans
                .complete(&mut object.manifest, &namespace, &object.key.name);
        }
        object
    }

    /// Records an object the lab wrote (already completed).
    pub fn applied(&mut self, key: &ObjectKey, manifest: Value) {
        if matches!(key.kind.as_str(), "Pod" | "Service" | "EndpointSlice") {
            self.objects.insert(key.clone(), manifest);
        }
    }

    pub fn deleted(&mut self, key: &ObjectKey) {
        self.objects.remove(key);
    }

    /// Derives the EndpointSlices of every selector Service from the pods as they are now,
    /// and returns what to write and what to remove from the datastore.
    pub fn derive_slices(&mut self) -> anyhow::Result<(Vec<Object>, Vec<ObjectKey>)> {
        let mut pods: Vec<(ObjectKey, Pod)> = Vec::new();
        let mut services: Vec<(ObjectKey, Service)> = Vec::new();
        for (key, manifest) in &self.objects {
            match key.kind.as_str() {
                "Pod" => pods.push((key.clone(), serde_json::from_value(manifest.clone())?)),
                "Service" => {
                    services.push((key.clone(), serde_json::from_value(manifest.clone())?))
                }
                _ => {}
            }
        }
        let mut wanted: BTreeMap<ObjectKey, Value> = BTreeMap::new();
        for (key, service) in &services {
            let namespace = key.namespace.clone().unwrap_or_default();
            let Some(plan) = self.plans.get(&namespace, &key.name) else {
                continue;
            };
            let spec = service.spec.clone().unwrap_or_default();
            let Some(selector) = spec.selector.filter(|s| !s.is_empty()) else {
                continue;
            };
            let ports: Vec<PortPlan> = spec
                .ports
                .iter()
                .flatten()
                .filter_map(version_port)
                .collect();
            for family in &plan.families {
                // Endpoints grouped by their resolved ports, one slice per group.
                let mut groups: BTreeMap<Vec<(String, u16, Protocol)>, Vec<Value>> =
                    BTreeMap::new();
                for (pod_key, pod) in &pods {
                    if pod_key.namespace.as_deref() != Some(namespace.as_str())
                        || !labels_match(&selector, pod.metadata.labels.as_ref())
                    {
                        continue;
                    }
                    let status = pod.status.as_ref();
                    let ip = status
                        .and_then(|s| s.pod_ips.as_ref())
                        .into_iter()
                        .flatten()
                        .filter_map(|p| p.ip.parse::<IpAddr>().ok())
                        .find(|ip| family_of(*ip) == *family);
                    let Some(ip) = ip else { continue };
                    let resolved: Vec<(String, u16, Protocol)> = ports
                        .iter()
                        .filter_map(|p| {
                            resolve_target(&p.target, p.protocol, pod)
                                .map(|n| (p.name.clone(), n, p.protocol))
                        })
                        .collect();
                    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
                    groups.entry(resolved).or_default().push(json!({
                        "addresses": [ip.to_string()],
                        "conditions": {"ready": true, "serving": true, "terminating": false},
                        "nodeName": node,
                        "targetRef": {"kind": "Pod", "namespace": namespace, "name": pod_key.name},
                    }));
                }
                let address_type = format!("IPv{}", family.number());
                let base = format!("{}-ipv{}", key.name, family.number());
                if groups.is_empty() {
                    // The controller keeps one placeholder slice for a Service without
                    // endpoints.
                    groups.insert(Vec::new(), Vec::new());
                }
                for (i, (resolved, endpoints)) in groups.into_iter().enumerate() {
                    let name = if i == 0 {
                        base.clone()
                    } else {
                        format!("{base}-{i}")
                    };
                    let slice_key = ObjectKey::new("EndpointSlice", Some(&namespace), &name);
                    let mut slice = json!({
                        "apiVersion": "discovery.k8s.io/v1",
                        "kind": "EndpointSlice",
                        "metadata": {
                            "name": name,
                            "namespace": namespace,
                            "labels": {SERVICE_NAME_LABEL: key.name, MANAGED_BY_LABEL: MANAGED_BY},
                            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": key.name, "uid": format!("lab-{namespace}-{}", key.name), "controller": true, "blockOwnerDeletion": true}],
                        },
                        "addressType": address_type,
                        "endpoints": endpoints,
                    });
                    if !(resolved.is_empty()
                        && slice["endpoints"].as_array().is_some_and(Vec::is_empty))
                    {
                        slice["ports"] = json!(
                            resolved
                                .iter()
                                .map(|(n, port, protocol)| json!({"name": n, "port": port, "protocol": protocol.to_string()}))
                                .collect::<Vec<_>>()
                        );
                    }
                    wanted.insert(slice_key, slice);
                }
            }
        }
        let mut write = Vec::new();
        for (key, slice) in &wanted {
            if self.derived.get(key) != Some(slice) {
                write.push(Object {
                    key: key.clone(),
                    manifest: slice.clone(),
                });
            }
        }
        let remove: Vec<ObjectKey> = self
            .derived
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        self.derived = wanted;
        Ok((write, remove))
    }

    /// What kube-proxy would see now: every Service port with the ready endpoints of its
    /// EndpointSlices (the lab's and the scenario's), per family.
    fn proxy_view(&self) -> anyhow::Result<Vec<kube_proxy::ServicePort>> {
        let mut slices: Vec<EndpointSlice> = Vec::new();
        for (key, manifest) in self
            .objects
            .iter()
            .filter(|(k, _)| k.kind == "EndpointSlice")
            .chain(self.derived.iter())
        {
            let mut slice: EndpointSlice = serde_json::from_value(manifest.clone())
                .with_context(|| format!("reading {key}"))?;
            if slice.metadata.namespace.is_none() {
                slice.metadata.namespace.clone_from(&key.namespace);
            }
            slices.push(slice);
        }
        let mut out = Vec::new();
        for (key, manifest) in self.objects.iter().filter(|(k, _)| k.kind == "Service") {
            let service: Service = serde_json::from_value(manifest.clone())?;
            let namespace = key.namespace.clone().unwrap_or_default();
            let Some(plan) = self.plans.get(&namespace, &key.name) else {
                continue;
            };
            let spec = service.spec.clone().unwrap_or_default();
            for pp in spec.ports.iter().flatten().filter_map(version_port) {
                let name = pp.name.clone();
                let protocol = pp.protocol.to_string();
                if pp.protocol == Protocol::Sctp {
                    continue;
                }
                for family in &plan.families {
                    let Some(cluster_ip) = plan.cluster_ip(*family) else {
                        continue;
                    };
                    let mut endpoints: BTreeSet<(IpAddr, u16)> = BTreeSet::new();
                    for slice in &slices {
                        let owned = slice.metadata.namespace.as_deref() == Some(namespace.as_str())
                            && slice
                                .metadata
                                .labels
                                .as_ref()
                                .and_then(|l| l.get(SERVICE_NAME_LABEL))
                                == Some(&key.name)
                            && slice.address_type == format!("IPv{}", family.number());
                        if !owned {
                            continue;
                        }
                        let Some(slice_port) = slice.ports.iter().flatten().find(|p| {
                            p.name.clone().unwrap_or_default() == name
                                && p.protocol.clone().unwrap_or_else(|| "TCP".to_owned())
                                    == protocol
                        }) else {
                            continue;
                        };
                        let Some(number) = slice_port.port.and_then(|n| u16::try_from(n).ok())
                        else {
                            continue;
                        };
                        for endpoint in &slice.endpoints {
                            let ready = endpoint
                                .conditions
                                .as_ref()
                                .and_then(|c| c.ready)
                                .unwrap_or(true);
                            if !ready {
                                continue;
                            }
                            if let Some(ip) = endpoint
                                .addresses
                                .first()
                                .and_then(|a| a.parse::<IpAddr>().ok())
                                && family_of(ip) == *family
                            {
                                endpoints.insert((ip, number));
                            }
                        }
                    }
                    out.push(kube_proxy::ServicePort {
                        namespace: namespace.clone(),
                        service: key.name.clone(),
                        port_name: name.clone(),
                        protocol: pp.protocol,
                        family: *family,
                        cluster_ip,
                        port: pp.port,
                        node_port: if spec.type_.as_deref() == Some("NodePort") {
                            pp.node_port
                        } else {
                            None
                        },
                        endpoints: endpoints.into_iter().collect(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Writes kube-proxy's rules in every node when they changed, and updates the DNS table.
    pub fn sync_rules(&mut self) -> anyhow::Result<()> {
        let view = self.proxy_view()?;
        let rules = kube_proxy::render(self.mode, &view);
        if self.written.as_ref() != Some(&rules) {
            for node in &self.nodes {
                kube_proxy::apply(node, self.mode, &rules).with_context(|| {
                    format!("writing kube-proxy ({}) rules in {node}", self.mode)
                })?;
            }
            self.written = Some(rules);
        }
        let mut table: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
        for key in self.objects.keys().filter(|k| k.kind == "Service") {
            let namespace = key.namespace.clone().unwrap_or_default();
            if let Some(plan) = self.plans.get(&namespace, &key.name) {
                table.insert(
                    format!("{}.{namespace}.svc.{CLUSTER_DOMAIN}", key.name),
                    plan.cluster_ips.clone(),
                );
            }
        }
        if let Ok(mut dns) = self.dns.write() {
            *dns = table;
        }
        Ok(())
    }
}

/// A node's address: its fabric address, else the same address given on [`SERVICE_IF`].
pub fn node_address(node: &NodePlan, family: Family) -> IpAddr {
    let host = u32::try_from(node.index + 1).unwrap_or(1);
    match family {
        Family::V4 => node.fabric_v4.map_or(
            IpAddr::V4(Ipv4Addr::from(
                u32::from(Ipv4Addr::new(198, 18, 0, 0)) + host,
            )),
            IpAddr::V4,
        ),
        Family::V6 => node.fabric_v6.map_or(
            IpAddr::V6(Ipv6Addr::from(
                u128::from(Ipv6Addr::new(0xfd00, 0xfab, 0, 0, 0, 0, 0, 0)) + u128::from(host),
            )),
            IpAddr::V6,
        ),
    }
}

/// Prepares every node for Services: the Service ranges routed to [`SERVICE_IF`] (one end of a
/// veth pair whose other end answers nothing, like an uplink with no router for them), the node's own address there when it has no fabric (the source address
/// masquerade picks for hairpin and NodePort traffic), and with IPv6, proxy NDP entries on
/// every pod interface for the IPv6 ClusterIPs and the nodes' IPv6 addresses.
pub fn set_up_nodes(
    id: &str,
    nodes: &[NodePlan],
    pods: &[PodPlan],
    plans: &ServicePlans,
) -> anyhow::Result<()> {
    let any_v6 = pods.iter().any(|p| p.ipv6.is_some())
        || plans
            .services
            .values()
            .any(|s| s.families.contains(&Family::V6));
    for node in nodes {
        let ns = node.netns(id);
        // A veth pair whose other end answers nothing: this kernel has no dummy interfaces.
        netns::ip_in(
            &ns,
            &[
                "link",
                "add",
                SERVICE_IF,
                "type",
                "veth",
                "peer",
                "name",
                SERVICE_PEER,
            ],
        )?;
        netns::ip_in(&ns, &["link", "set", SERVICE_PEER, "up"])?;
        netns::ip_in(&ns, &["link", "set", SERVICE_IF, "up"])?;
        let v4 = format!("{}/{}", SERVICE_RANGE_V4.0, SERVICE_RANGE_V4.1);
        netns::ip_in(&ns, &["route", "add", &v4, "dev", SERVICE_IF])?;
        if node.fabric_v4.is_none() {
            let address = format!("{}/32", node_address(node, Family::V4));
            netns::ip_in(&ns, &["addr", "add", &address, "dev", SERVICE_IF])?;
        }
        if any_v6 {
            let v6 = format!("{}/{}", SERVICE_RANGE_V6.0, SERVICE_RANGE_V6.1);
            netns::ip_in(&ns, &["-6", "route", "add", &v6, "dev", SERVICE_IF])?;
            if node.fabric_v6.is_none() {
                let address = format!("{}/128", node_address(node, Family::V6));
                netns::ip_in(
                    &ns,
                    &["-6", "addr", "add", &address, "dev", SERVICE_IF, "nodad"],
                )?;
            }
            let targets: Vec<IpAddr> = plans
                .services
                .values()
                .filter_map(|s| s.cluster_ip(Family::V6))
                .chain(nodes.iter().map(|n| node_address(n, Family::V6)))
                .collect();
            for pod in pods
                .iter()
                .filter(|p| p.node == node.name && p.ipv6.is_some())
            {
                for ip in &targets {
                    let ip = ip.to_string();
                    netns::ip_in(
                        &ns,
                        &["-6", "neigh", "add", "proxy", &ip, "dev", &pod.host_if()],
                    )?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{datastore, topology};

    const SCENARIO: &str = r#"
resources:
  - apiVersion: v1
    kind: Pod
    metadata: {name: a, labels: {app: a}}
    spec: {nodeName: n1, containers: [{name: c, image: x, ports: [{name: web, containerPort: 7000}]}]}
    status: {podIPs: [{ip: 10.42.0.10}, {ip: "fd00:42::10"}]}
  - apiVersion: v1
    kind: Pod
    metadata: {name: b, labels: {app: a}}
    spec: {containers: [{name: c, image: x, ports: [{name: web, containerPort: 7001}]}]}
    status: {podIPs: [{ip: 10.42.0.11}]}
  - apiVersion: v1
    kind: Pod
    metadata: {name: c, labels: {app: c}}
    spec: {containers: [{name: c, image: x}]}
  - apiVersion: v1
    kind: Service
    metadata: {name: a}
    spec: {type: NodePort, ipFamilyPolicy: PreferDualStack, selector: {app: a}, ports: [{port: 80, targetPort: web}]}
  - apiVersion: v1
    kind: Service
    metadata: {name: given}
    spec: {clusterIP: 10.96.0.20, selector: {app: c}, ports: [{name: x, port: 81, nodePort: 30000}]}
steps: []
"#;

    fn lab() -> anyhow::Result<(ServiceLab, Scenario)> {
        let scenario = Scenario::from_yaml(SCENARIO)?;
        let plans = topology::plan(&scenario.pods()?)?;
        let mut lab = ServiceLab::new(&scenario, KubeProxyMode::Iptables, Vec::new())?;
        for object in &scenario.resources {
            let object = lab.complete(object);
            let manifest = datastore::complete(&object, &plans)?;
            lab.applied(&object.key, manifest);
        }
        Ok((lab, scenario))
    }

    #[test]
    fn addresses_are_assigned_around_given_ones() -> anyhow::Result<()> {
        let (lab, _) = lab()?;
        let a = lab.plans().get("default", "a").context("a")?;
        // 10.96.0.20 is given to `given`: `a` gets the next one.
        assert_eq!(
            a.cluster_ips,
            vec!["10.96.0.21".parse::<IpAddr>()?, "fd00:96::14".parse()?]
        );
        assert_eq!(a.families, vec![Family::V4, Family::V6]);
        // 30000 is given to `given` (a ClusterIP Service, kept as written).
        assert_eq!(a.ports[0].node_port, Some(30001));
        let given = lab.plans().get("default", "given").context("given")?;
        assert_eq!(given.cluster_ips, vec!["10.96.0.20".parse::<IpAddr>()?]);
        Ok(())
    }

    #[test]
    fn slices_follow_the_endpointslice_controller() -> anyhow::Result<()> {
        let (mut lab, _) = lab()?;
        let (write, remove) = lab.derive_slices()?;
        assert!(remove.is_empty());
        let by_name: BTreeMap<String, &Value> = write
            .iter()
            .map(|o| (o.key.name.clone(), &o.manifest))
            .collect();
        // IPv4: a and b resolve `web` to different ports: one slice each.
        let a4 = by_name.get("a-ipv4").context("a-ipv4")?;
        let a4b = by_name.get("a-ipv4-1").context("a-ipv4-1")?;
        let ports: BTreeSet<i64> = [a4, a4b]
            .iter()
            .filter_map(|s| s["ports"][0]["port"].as_i64())
            .collect();
        assert_eq!(ports, BTreeSet::from([7000, 7001]));
        assert_eq!(a4["metadata"]["labels"][SERVICE_NAME_LABEL], "a");
        assert_eq!(a4["addressType"], "IPv4");
        // IPv6: only a has an IPv6 address; nodeName and targetRef as the controller sets them.
        let a6 = by_name.get("a-ipv6").context("a-ipv6")?;
        assert_eq!(a6["endpoints"].as_array().map(Vec::len), Some(1));
        assert_eq!(a6["endpoints"][0]["addresses"][0], "fd00:42::10");
        assert_eq!(a6["endpoints"][0]["nodeName"], "n1");
        assert_eq!(a6["endpoints"][0]["targetRef"]["name"], "a");
        // `given` selects c, which has no port named... its targetPort is the number 81.
        let given = by_name.get("given-ipv4").context("given-ipv4")?;
        assert_eq!(given["ports"][0]["port"], 81);
        // Nothing changed: nothing to write again.
        let (write, remove) = lab.derive_slices()?;
        assert!(write.is_empty() && remove.is_empty());
        // b leaves the Service: its slice goes.
        lab.deleted(&ObjectKey::new("Pod", Some("default"), "b"));
        let (_, remove) = lab.derive_slices()?;
        assert_eq!(remove.len(), 1);
        // kube-proxy's view: a's port over both families, one endpoint each now.
        let view = lab.proxy_view()?;
        let a: Vec<_> = view.iter().filter(|p| p.service == "a").collect();
        assert_eq!(a.len(), 2);
        assert!(
            a.iter()
                .all(|p| p.endpoints.len() == 1 && p.node_port == Some(30001))
        );
        Ok(())
    }

    #[test]
    fn each_version_keeps_its_own_ports() -> anyhow::Result<()> {
        let text = r#"
resources:
  - apiVersion: v1
    kind: Pod
    metadata: {name: a, labels: {app: a}}
    spec: {containers: [{name: c, image: x, ports: [{name: web, containerPort: 7000}]}]}
  - apiVersion: v1
    kind: Service
    metadata: {name: a}
    spec: {type: NodePort, selector: {app: a}, ports: [{name: p, port: 80, targetPort: 8000}]}
steps:
  - apply:
      - apiVersion: v1
        kind: Service
        metadata: {name: a}
        spec: {type: NodePort, selector: {app: a}, ports: [{name: p, port: 90, targetPort: web}]}
    probes:
      - {from: default/a, to: service/default/a, port: 90, expect: allow}
  - apply:
      - apiVersion: v1
        kind: Service
        metadata: {name: b}
        spec: {selector: {app: a}, ports: [{port: 100}]}
    probes:
      - {from: default/a, to: service/default/b, port: 100, expect: allow}
"#;
        let scenario = Scenario::from_yaml(text)?;
        let plans = topology::plan(&scenario.pods()?)?;
        let mut lab = ServiceLab::new(&scenario, KubeProxyMode::Nftables, Vec::new())?;
        let write = |lab: &mut ServiceLab, object: &Object| -> anyhow::Result<()> {
            let object = lab.complete(object);
            let manifest = datastore::complete(&object, &plans)?;
            lab.applied(&object.key, manifest);
            Ok(())
        };
        for object in &scenario.resources {
            write(&mut lab, object)?;
        }
        lab.derive_slices()?;
        let view = lab.proxy_view()?;
        assert_eq!(view.len(), 1);
        assert_eq!((view[0].port, view[0].node_port), (80, Some(30000)));
        assert_eq!(view[0].endpoints[0].1, 8000);
        // The new version: port 90 to the named port, same nodePort.
        write(&mut lab, &scenario.steps[0].apply[0])?;
        lab.derive_slices()?;
        let view = lab.proxy_view()?;
        assert_eq!((view[0].port, view[0].node_port), (90, Some(30000)));
        assert_eq!(view[0].endpoints[0].1, 7000);
        // A Service a step adds: its slice and its rules appear.
        write(&mut lab, &scenario.steps[1].apply[0])?;
        let (written, _) = lab.derive_slices()?;
        assert!(written.iter().any(|o| o.key.name == "b-ipv4"));
        let view = lab.proxy_view()?;
        let b = view.iter().find(|p| p.service == "b").context("b")?;
        assert_eq!((b.port, b.endpoints[0].1, b.node_port), (100, 100, None));
        assert_eq!(b.cluster_ip, "10.96.0.21".parse::<IpAddr>()?);
        Ok(())
    }
}
