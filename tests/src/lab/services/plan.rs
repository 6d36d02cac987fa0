//! Planning a scenario's Services: addresses assigned as the API server would, ports
//! completed, and the target ports each pod serves.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use anyhow::Context as _;
use k8s_openapi::{
    api::core::v1::{Pod, Service},
    apimachinery::pkg::util::intstr::IntOrString,
};
use serde_json::{Value, json};

use crate::lab::{
    scenario::{
        DEFAULT_NAMESPACE, Family, Object, Probe, Protocol, Scenario, ScenarioError, ServiceTarget,
    },
    topology::DEFAULT_NODE,
};

use super::addresses::*;

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
pub(super) fn version_port(p: &k8s_openapi::api::core::v1::ServicePort) -> Option<PortPlan> {
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
pub(super) fn named_ports(pod: &Pod) -> BTreeMap<(String, Protocol), u16> {
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
pub(super) fn resolve_target(target: &IntOrString, protocol: Protocol, pod: &Pod) -> Option<u16> {
    match target {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => named_ports(pod).get(&(name.clone(), protocol)).copied(),
    }
}

pub(super) fn labels_match(
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
) -> anyhow::Result<BTreeMap<crate::lab::scenario::PodRef, BTreeSet<u16>>> {
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
    let mut out: BTreeMap<crate::lab::scenario::PodRef, BTreeSet<u16>> = BTreeMap::new();
    for object in &scenario.resources {
        let Some(pod) = object.as_pod() else { continue };
        let pod = pod?;
        let reference = crate::lab::scenario::PodRef {
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
