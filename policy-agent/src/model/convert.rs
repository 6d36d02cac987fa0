//! Kubernetes objects (k8s-openapi types) to the validated model.
//!
//! Every check the API server's validation would make on these fields is made here too, so a
//! hand-written manifest gets the same answer a cluster would give, with the path of the field
//! at fault (`spec.ingress[0].ports[1].endPort`).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    str::FromStr,
};

use ipnet::IpNet;
use k8s_openapi::{
    api::{
        core::v1 as core,
        discovery::v1 as discovery,
        networking::v1::{self as networking, NetworkPolicyPeer, NetworkPolicyPort},
    },
    apimachinery::pkg::{apis::meta::v1 as meta, util::intstr::IntOrString},
};
use thiserror::Error;

use super::{
    ContainerPort, Endpoint, EndpointPort, EndpointSlice, Family, LabelSelector,
    NAMESPACE_NAME_LABEL, Namespace, NamespaceMatch, NetworkPolicy, Peer, Pod, PortMatch, Protocol,
    Rule, Service, ServicePort, ServiceType, TargetPort, selector::Requirement,
    services::SERVICE_NAME_LABEL,
};

/// An object that failed validation: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("field {field}: {message}")]
pub struct ConvertError {
    pub field: String,
    pub message: String,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConvertError {
    ConvertError {
        field: field.into(),
        message: message.into(),
    }
}

/// Namespace of a namespaced object; a manifest without one lands in `default`, as with
/// `kubectl apply`.
pub fn object_namespace(meta: &meta::ObjectMeta) -> String {
    meta.namespace
        .clone()
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| "default".to_owned())
}

fn object_name(meta: &meta::ObjectMeta) -> Result<String, ConvertError> {
    match meta.name.as_deref() {
        Some(name) if !name.is_empty() => Ok(name.to_owned()),
        _ => Err(invalid("metadata.name", "required")),
    }
}

pub fn namespace(ns: &core::Namespace) -> Result<Namespace, ConvertError> {
    let name = object_name(&ns.metadata)?;
    let mut labels = ns.metadata.labels.clone().unwrap_or_default();
    // The API server sets this label on every namespace and refuses other values.
    labels.insert(NAMESPACE_NAME_LABEL.to_owned(), name.clone());
    Ok(Namespace { name, labels })
}

pub fn pod(pod: &core::Pod) -> Result<Pod, ConvertError> {
    let name = object_name(&pod.metadata)?;
    let namespace = object_namespace(&pod.metadata);
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();

    let mut ips = BTreeSet::new();
    match status.and_then(|s| s.pod_ips.as_ref()) {
        Some(pod_ips) if !pod_ips.is_empty() => {
            for (i, pod_ip) in pod_ips.iter().enumerate() {
                ips.insert(parse_ip(&pod_ip.ip, &format!("status.podIPs[{i}].ip"))?);
            }
        }
        _ => {
            if let Some(ip) = status.and_then(|s| s.pod_ip.as_deref()) {
                ips.insert(parse_ip(ip, "status.podIP")?);
            }
        }
    }

    let mut container_ports = Vec::new();
    for (c, container) in spec
        .map(|s| s.containers.as_slice())
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        for (p, port) in container.ports.iter().flatten().enumerate() {
            let field = format!("spec.containers[{c}].ports[{p}]");
            container_ports.push(ContainerPort {
                name: port.name.clone().filter(|n| !n.is_empty()),
                port: port_number(port.container_port, &format!("{field}.containerPort"))?,
                protocol: protocol(port.protocol.as_deref(), &format!("{field}.protocol"))?,
            });
        }
    }

    let phase = status.and_then(|s| s.phase.as_deref());
    Ok(Pod {
        namespace,
        name,
        labels: pod.metadata.labels.clone().unwrap_or_default(),
        ips,
        container_ports,
        service_account: spec
            .and_then(|s| s.service_account_name.as_deref())
            .or_else(|| spec.and_then(|s| s.service_account.as_deref()))
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_owned(),
        node_name: spec.and_then(|s| s.node_name.clone()),
        host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
        terminated: matches!(phase, Some("Succeeded" | "Failed")),
    })
}

pub fn network_policy(np: &networking::NetworkPolicy) -> Result<NetworkPolicy, ConvertError> {
    let name = object_name(&np.metadata)?;
    let namespace = object_namespace(&np.metadata);
    let spec = np
        .spec
        .as_ref()
        .ok_or_else(|| invalid("spec", "required"))?;
    let pod_selector = label_selector(spec.pod_selector.as_ref(), "spec.podSelector")?;

    let mut ingress_rules = Vec::new();
    for (i, rule) in spec.ingress.iter().flatten().enumerate() {
        let field = format!("spec.ingress[{i}]");
        ingress_rules.push(convert_rule(
            rule.from.as_deref(),
            rule.ports.as_deref(),
            &namespace,
            &field,
            "from",
        )?);
    }
    let mut egress_rules = Vec::new();
    for (i, rule) in spec.egress.iter().flatten().enumerate() {
        let field = format!("spec.egress[{i}]");
        egress_rules.push(convert_rule(
            rule.to.as_deref(),
            rule.ports.as_deref(),
            &namespace,
            &field,
            "to",
        )?);
    }

    // policyTypes defaulting, as the API documents it: without the field a policy always
    // applies to ingress, and to egress only when it has egress rules.
    let (has_ingress, has_egress) = match &spec.policy_types {
        None => (true, !egress_rules.is_empty()),
        Some(types) => {
            let mut ingress = false;
            let mut egress = false;
            for (i, t) in types.iter().enumerate() {
                match t.as_str() {
                    "Ingress" => ingress = true,
                    "Egress" => egress = true,
                    other => {
                        return Err(invalid(
                            format!("spec.policyTypes[{i}]"),
                            format!(
                                "unsupported value {other:?}: expected \"Ingress\" or \"Egress\""
                            ),
                        ));
                    }
                }
            }
            (ingress, egress)
        }
    };

    Ok(NetworkPolicy {
        namespace,
        name,
        pod_selector,
        ingress: has_ingress.then_some(ingress_rules),
        egress: has_egress.then_some(egress_rules),
    })
}

fn convert_rule(
    peers: Option<&[NetworkPolicyPeer]>,
    ports: Option<&[NetworkPolicyPort]>,
    namespace: &str,
    field: &str,
    peers_field: &str,
) -> Result<Rule, ConvertError> {
    // An empty list means the same as an absent one: match all.
    let peers = match peers {
        None | Some([]) => None,
        Some(peers) => Some(
            peers
                .iter()
                .enumerate()
                .map(|(i, p)| peer(p, namespace, &format!("{field}.{peers_field}[{i}]")))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let ports = match ports {
        None | Some([]) => None,
        Some(ports) => Some(
            ports
                .iter()
                .enumerate()
                .map(|(i, p)| port(p, &format!("{field}.ports[{i}]")))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    Ok(Rule { peers, ports })
}

fn peer(peer: &NetworkPolicyPeer, namespace: &str, field: &str) -> Result<Peer, ConvertError> {
    if let Some(block) = &peer.ip_block {
        if peer.pod_selector.is_some() || peer.namespace_selector.is_some() {
            return Err(invalid(
                field,
                "ipBlock cannot be combined with podSelector or namespaceSelector",
            ));
        }
        return ip_block(block, &format!("{field}.ipBlock"));
    }
    let pods = label_selector(peer.pod_selector.as_ref(), &format!("{field}.podSelector"))?;
    let namespaces = match &peer.namespace_selector {
        Some(sel) => NamespaceMatch::Selector(label_selector(
            Some(sel),
            &format!("{field}.namespaceSelector"),
        )?),
        None if peer.pod_selector.is_some() => NamespaceMatch::Exactly(namespace.to_owned()),
        None => {
            return Err(invalid(
                field,
                "must specify one of podSelector, namespaceSelector or ipBlock",
            ));
        }
    };
    Ok(Peer::Pods { namespaces, pods })
}

fn ip_block(block: &networking::IPBlock, field: &str) -> Result<Peer, ConvertError> {
    let cidr = parse_cidr(&block.cidr, &format!("{field}.cidr"))?;
    let mut except = Vec::new();
    for (i, e) in block.except.iter().flatten().enumerate() {
        let e_field = format!("{field}.except[{i}]");
        let e = parse_cidr(e, &e_field)?;
        if !cidr.contains(&e) || e.prefix_len() <= cidr.prefix_len() {
            return Err(invalid(
                e_field,
                format!("{e} must be a strict subset of cidr {cidr}"),
            ));
        }
        except.push(e);
    }
    except.sort();
    except.dedup();
    Ok(Peer::IpBlock { cidr, except })
}

fn port(port: &NetworkPolicyPort, field: &str) -> Result<PortMatch, ConvertError> {
    let protocol = protocol(port.protocol.as_deref(), &format!("{field}.protocol"))?;
    match &port.port {
        None => {
            if port.end_port.is_some() {
                return Err(invalid(
                    format!("{field}.endPort"),
                    "may not be specified without port",
                ));
            }
            Ok(PortMatch::AllPorts(protocol))
        }
        Some(IntOrString::Int(first)) => {
            let first = port_number(*first, &format!("{field}.port"))?;
            let last = match port.end_port {
                None => first,
                Some(end) => {
                    let end = port_number(end, &format!("{field}.endPort"))?;
                    if end < first {
                        return Err(invalid(
                            format!("{field}.endPort"),
                            format!("{end} must be greater than or equal to port {first}"),
                        ));
                    }
                    end
                }
            };
            Ok(PortMatch::Range {
                protocol,
                first,
                last,
            })
        }
        Some(IntOrString::String(name)) => {
            if port.end_port.is_some() {
                return Err(invalid(
                    format!("{field}.endPort"),
                    "may not be specified with a named port",
                ));
            }
            if let Ok(number) = name.parse::<i32>() {
                // "80" as a string is how some tools write numeric ports.
                let number = port_number(number, &format!("{field}.port"))?;
                return Ok(PortMatch::Range {
                    protocol,
                    first: number,
                    last: number,
                });
            }
            if !is_port_name(name) {
                return Err(invalid(
                    format!("{field}.port"),
                    format!(
                        "{name:?} is not a valid port name (1-15 lowercase letters, digits and '-', with at least one letter)"
                    ),
                ));
            }
            Ok(PortMatch::Named {
                protocol,
                name: name.clone(),
            })
        }
    }
}

fn is_port_name(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.bytes().any(|b| b.is_ascii_lowercase())
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn protocol(value: Option<&str>, field: &str) -> Result<Protocol, ConvertError> {
    match value {
        None | Some("TCP") => Ok(Protocol::Tcp),
        Some("UDP") => Ok(Protocol::Udp),
        Some("SCTP") => Ok(Protocol::Sctp),
        Some(other) => Err(invalid(
            field,
            format!("unsupported protocol {other:?}: expected \"TCP\", \"UDP\" or \"SCTP\""),
        )),
    }
}

fn port_number(value: i32, field: &str) -> Result<u16, ConvertError> {
    match u16::try_from(value) {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(invalid(
            field,
            format!("{value} is not a valid port number (1-65535)"),
        )),
    }
}

fn parse_ip(value: &str, field: &str) -> Result<IpAddr, ConvertError> {
    IpAddr::from_str(value).map_err(|_| invalid(field, format!("{value:?} is not an IP address")))
}

fn parse_cidr(value: &str, field: &str) -> Result<IpNet, ConvertError> {
    IpNet::from_str(value)
        .map(|net| net.trunc())
        .map_err(|_| invalid(field, format!("{value:?} is not a CIDR (address/prefix)")))
}

pub(crate) fn label_selector(
    selector: Option<&meta::LabelSelector>,
    field: &str,
) -> Result<LabelSelector, ConvertError> {
    let Some(selector) = selector else {
        return Ok(LabelSelector::default());
    };
    let mut requirements = Vec::new();
    for (key, value) in selector.match_labels.iter().flatten() {
        requirements.push(Requirement::In {
            key: key.clone(),
            values: BTreeSet::from([value.clone()]),
        });
    }
    for (i, expr) in selector.match_expressions.iter().flatten().enumerate() {
        let field = format!("{field}.matchExpressions[{i}]");
        let values: BTreeSet<String> = expr.values.iter().flatten().cloned().collect();
        let key = expr.key.clone();
        if key.is_empty() {
            return Err(invalid(format!("{field}.key"), "required"));
        }
        let requirement = match expr.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                return Err(invalid(
                    format!("{field}.values"),
                    format!("must be non-empty for operator {}", expr.operator),
                ));
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                return Err(invalid(
                    format!("{field}.values"),
                    format!("must be empty for operator {}", expr.operator),
                ));
            }
            "In" => Requirement::In { key, values },
            "NotIn" => Requirement::NotIn { key, values },
            "Exists" => Requirement::Exists { key },
            "DoesNotExist" => Requirement::DoesNotExist { key },
            other => {
                return Err(invalid(
                    format!("{field}.operator"),
                    format!(
                        "unsupported operator {other:?}: expected In, NotIn, Exists or DoesNotExist"
                    ),
                ));
            }
        };
        requirements.push(requirement);
    }
    requirements.sort();
    requirements.dedup();
    Ok(LabelSelector { requirements })
}

/// A Service, validated as the API server validates one (`ValidateService`): type, cluster
/// IPs (`None` for headless) and their families, ports (names, numbers, protocols, target
/// ports, node ports, duplicates), external IPs, traffic policies and load-balancer ingress
/// addresses.
pub fn service(svc: &core::Service) -> Result<Service, ConvertError> {
    let name = object_name(&svc.metadata)?;
    if !is_dns1035_label(&name) {
        return Err(invalid(
            "metadata.name",
            format!(
                "{name:?} is not a valid Service name (a DNS-1035 label: at most 63 lowercase letters, digits and '-', starting with a letter, ending with a letter or digit)"
            ),
        ));
    }
    let namespace = object_namespace(&svc.metadata);
    let spec = svc
        .spec
        .as_ref()
        .ok_or_else(|| invalid("spec", "required"))?;

    let service_type = match spec.type_.as_deref() {
        None | Some("ClusterIP") => ServiceType::ClusterIp,
        Some("NodePort") => ServiceType::NodePort,
        Some("LoadBalancer") => ServiceType::LoadBalancer,
        Some("ExternalName") => ServiceType::ExternalName,
        Some(other) => {
            return Err(invalid(
                "spec.type",
                format!(
                    "unsupported value {other:?}: expected \"ClusterIP\", \"NodePort\", \"LoadBalancer\" or \"ExternalName\""
                ),
            ));
        }
    };

    let (cluster_ips, headless) = cluster_ips(spec)?;
    match service_type {
        ServiceType::ExternalName => {
            if !cluster_ips.is_empty() || headless {
                return Err(invalid(
                    "spec.clusterIP",
                    "may not be set for ExternalName services",
                ));
            }
            match spec.external_name.as_deref() {
                Some(external) if is_dns1123_subdomain(external.trim_end_matches('.')) => {}
                Some(external) => {
                    return Err(invalid(
                        "spec.externalName",
                        format!("{external:?} is not a DNS name (a DNS-1123 subdomain)"),
                    ));
                }
                None => return Err(invalid("spec.externalName", "required")),
            }
        }
        ServiceType::NodePort | ServiceType::LoadBalancer if headless => {
            return Err(invalid(
                "spec.clusterIPs[0]",
                format!(
                    "may not be \"None\" for {} services",
                    spec.type_.as_deref().unwrap_or_default()
                ),
            ));
        }
        _ => {}
    }

    let raw_ports = spec.ports.as_deref().unwrap_or_default();
    if raw_ports.is_empty() && !headless && service_type != ServiceType::ExternalName {
        return Err(invalid("spec.ports", "required"));
    }
    let mut ports = Vec::new();
    let mut names = BTreeSet::new();
    let mut numbers = BTreeSet::new();
    let mut node_ports = BTreeSet::new();
    for (i, raw) in raw_ports.iter().enumerate() {
        let field = format!("spec.ports[{i}]");
        let port = service_port(raw, raw_ports.len() > 1, service_type, &field)?;
        if !port.name.is_empty() && !names.insert(port.name.clone()) {
            return Err(invalid(
                format!("{field}.name"),
                format!("duplicate port name {:?}", port.name),
            ));
        }
        if !numbers.insert((port.port, port.protocol)) {
            return Err(invalid(
                field,
                format!(
                    "duplicate port {} with protocol {:?}",
                    port.port, port.protocol
                ),
            ));
        }
        if let Some(node_port) = port.node_port
            && !node_ports.insert((node_port, port.protocol))
        {
            return Err(invalid(
                format!("{field}.nodePort"),
                format!(
                    "duplicate node port {node_port} with protocol {:?}",
                    port.protocol
                ),
            ));
        }
        ports.push(port);
    }

    let mut external_ips = Vec::new();
    for (i, ip) in spec.external_ips.iter().flatten().enumerate() {
        let field = format!("spec.externalIPs[{i}]");
        let ip = parse_ip(ip, &field)?;
        if let Some(reason) = special_ip(&ip) {
            return Err(invalid(field, format!("{ip} may not be {reason}")));
        }
        external_ips.push(ip);
    }

    let internal_traffic_local = match spec.internal_traffic_policy.as_deref() {
        None | Some("Cluster") => false,
        Some("Local") => true,
        Some(other) => {
            return Err(invalid(
                "spec.internalTrafficPolicy",
                format!("unsupported value {other:?}: expected \"Cluster\" or \"Local\""),
            ));
        }
    };
    if let Some(other) = spec
        .external_traffic_policy
        .as_deref()
        .filter(|p| !matches!(*p, "Cluster" | "Local"))
    {
        return Err(invalid(
            "spec.externalTrafficPolicy",
            format!("unsupported value {other:?}: expected \"Cluster\" or \"Local\""),
        ));
    }

    let mut load_balancer_ips = Vec::new();
    let ingress = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_deref())
        .unwrap_or_default();
    for (i, point) in ingress.iter().enumerate() {
        let field = format!("status.loadBalancer.ingress[{i}]");
        let ip = match point.ip.as_deref().filter(|ip| !ip.is_empty()) {
            Some(ip) => Some(parse_ip(ip, &format!("{field}.ip"))?),
            None => None,
        };
        let vip = match point.ip_mode.as_deref() {
            None | Some("VIP") => true,
            Some("Proxy") => false,
            Some(other) => {
                return Err(invalid(
                    format!("{field}.ipMode"),
                    format!("unsupported value {other:?}: expected \"VIP\" or \"Proxy\""),
                ));
            }
        };
        if point.ip_mode.is_some() && ip.is_none() {
            return Err(invalid(
                format!("{field}.ipMode"),
                "may only be set when ip is set",
            ));
        }
        if let Some(ip) = ip
            && vip
        {
            load_balancer_ips.push(ip);
        }
    }

    Ok(Service {
        namespace,
        name,
        service_type,
        cluster_ips,
        external_ips,
        load_balancer_ips,
        selector: spec.selector.clone().filter(|s| !s.is_empty()),
        ports,
        internal_traffic_local,
    })
}

/// The Service's cluster IPs (`spec.clusterIPs`, else `spec.clusterIP`) checked against each
/// other and `spec.ipFamilies`, and whether it is headless (`None`).
fn cluster_ips(spec: &core::ServiceSpec) -> Result<(Vec<IpAddr>, bool), ConvertError> {
    let single = spec.cluster_ip.as_deref().filter(|ip| !ip.is_empty());
    let listed = spec.cluster_ips.as_deref().unwrap_or_default();
    let (values, field): (Vec<&str>, &str) = if listed.is_empty() {
        (single.into_iter().collect(), "spec.clusterIP")
    } else {
        if let Some(single) = single
            && single != listed[0]
        {
            return Err(invalid(
                "spec.clusterIPs[0]",
                format!("{:?} must match clusterIP {single:?}", listed[0]),
            ));
        }
        (
            listed.iter().map(String::as_str).collect(),
            "spec.clusterIPs",
        )
    };
    let at = |i: usize| {
        if field == "spec.clusterIP" {
            field.to_owned()
        } else {
            format!("{field}[{i}]")
        }
    };
    if values.len() > 2 {
        return Err(invalid(
            field,
            "may hold at most two addresses, one per family",
        ));
    }
    if values.contains(&"None") {
        if values.len() > 1 {
            return Err(invalid(
                at(values.iter().position(|v| *v == "None").unwrap_or(0)),
                "\"None\" must be the only value",
            ));
        }
        return Ok((Vec::new(), true));
    }
    let mut ips = Vec::new();
    for (i, value) in values.iter().enumerate() {
        ips.push(parse_ip(value, &at(i))?);
    }
    if ips.len() == 2 && Family::of(&ips[0]) == Family::of(&ips[1]) {
        return Err(invalid(
            at(1),
            "may hold no more than one address per family",
        ));
    }

    let families = spec.ip_families.as_deref().unwrap_or_default();
    if families.len() > 2 {
        return Err(invalid("spec.ipFamilies", "may hold at most two families"));
    }
    let mut seen = BTreeSet::new();
    for (i, family) in families.iter().enumerate() {
        let family = match family.as_str() {
            "IPv4" => Family::Ipv4,
            "IPv6" => Family::Ipv6,
            other => {
                return Err(invalid(
                    format!("spec.ipFamilies[{i}]"),
                    format!("unsupported value {other:?}: expected \"IPv4\" or \"IPv6\""),
                ));
            }
        };
        if !seen.insert(family) {
            return Err(invalid(
                format!("spec.ipFamilies[{i}]"),
                format!("duplicate family {}", family.api_name()),
            ));
        }
        if let Some(ip) = ips.get(i)
            && Family::of(ip) != family
        {
            return Err(invalid(
                at(i),
                format!(
                    "{ip} is not an {} address as ipFamilies[{i}] says",
                    family.api_name()
                ),
            ));
        }
    }
    Ok((ips, false))
}

fn service_port(
    raw: &core::ServicePort,
    several: bool,
    service_type: ServiceType,
    field: &str,
) -> Result<ServicePort, ConvertError> {
    let name = raw.name.clone().unwrap_or_default();
    if name.is_empty() {
        if several {
            return Err(invalid(
                format!("{field}.name"),
                "required when the Service has more than one port",
            ));
        }
    } else if !is_dns1123_label(&name) {
        return Err(invalid(
            format!("{field}.name"),
            format!(
                "{name:?} is not a valid port name (a DNS-1123 label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)"
            ),
        ));
    }
    let port = port_number(raw.port, &format!("{field}.port"))?;
    let protocol = protocol(raw.protocol.as_deref(), &format!("{field}.protocol"))?;
    // The API server defaults an unset (or zero, or empty) targetPort to the port.
    let target_port = match &raw.target_port {
        None | Some(IntOrString::Int(0)) => TargetPort::Number(port),
        Some(IntOrString::String(s)) if s.is_empty() => TargetPort::Number(port),
        Some(IntOrString::Int(n)) => {
            TargetPort::Number(port_number(*n, &format!("{field}.targetPort"))?)
        }
        Some(IntOrString::String(s)) => {
            if !is_iana_svc_name(s) {
                return Err(invalid(
                    format!("{field}.targetPort"),
                    format!(
                        "{s:?} is not a valid port name (an IANA_SVC_NAME: 1-15 lowercase letters, digits and '-', at least one letter, no leading, trailing or doubled '-')"
                    ),
                ));
            }
            TargetPort::Name(s.clone())
        }
    };
    let node_port = match raw.node_port {
        None | Some(0) => None,
        Some(n) => {
            let n = port_number(n, &format!("{field}.nodePort"))?;
            if matches!(
                service_type,
                ServiceType::ClusterIp | ServiceType::ExternalName
            ) {
                return Err(invalid(
                    format!("{field}.nodePort"),
                    "may only be set for NodePort and LoadBalancer services",
                ));
            }
            Some(n)
        }
    };
    Ok(ServicePort {
        name,
        protocol,
        port,
        target_port,
        node_port,
    })
}

/// Why an external IP is refused (the API server's `ValidateNonSpecialIP`).
fn special_ip(ip: &IpAddr) -> Option<&'static str> {
    let link_local = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    };
    if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else if link_local {
        Some("link-local")
    } else if ip.is_multicast() {
        Some("multicast")
    } else {
        None
    }
}

/// An EndpointSlice, validated as the API server validates one (`ValidateEndpointSlice`):
/// `addressType`, every address (parsed, of that type), the endpoints' and ports' counts, port
/// names, numbers and protocols.
pub fn endpoint_slice(slice: &discovery::EndpointSlice) -> Result<EndpointSlice, ConvertError> {
    let name = object_name(&slice.metadata)?;
    let namespace = object_namespace(&slice.metadata);
    let family = match slice.address_type.as_str() {
        "IPv4" => Some(Family::Ipv4),
        "IPv6" => Some(Family::Ipv6),
        "FQDN" => None,
        "" => return Err(invalid("addressType", "required")),
        other => {
            return Err(invalid(
                "addressType",
                format!("unsupported value {other:?}: expected \"IPv4\", \"IPv6\" or \"FQDN\""),
            ));
        }
    };
    if slice.endpoints.len() > 1000 {
        return Err(invalid("endpoints", "may hold at most 1000 endpoints"));
    }
    let mut endpoints = Vec::new();
    for (i, raw) in slice.endpoints.iter().enumerate() {
        let field = format!("endpoints[{i}]");
        if raw.addresses.is_empty() {
            return Err(invalid(format!("{field}.addresses"), "required"));
        }
        if raw.addresses.len() > 100 {
            return Err(invalid(
                format!("{field}.addresses"),
                "may hold at most 100 addresses",
            ));
        }
        let mut addresses = Vec::new();
        for (j, address) in raw.addresses.iter().enumerate() {
            let field = format!("{field}.addresses[{j}]");
            match family {
                None => {
                    if !is_dns1123_subdomain(address) {
                        return Err(invalid(
                            field,
                            format!("{address:?} is not a DNS name (a DNS-1123 subdomain)"),
                        ));
                    }
                }
                Some(family) => {
                    let ip = parse_ip(address, &field)?;
                    if Family::of(&ip) != family {
                        return Err(invalid(
                            field,
                            format!(
                                "{ip} is not an {} address as addressType says",
                                family.api_name()
                            ),
                        ));
                    }
                    addresses.push(ip);
                }
            }
        }
        if family.is_none() {
            continue;
        }
        let conditions = raw.conditions.as_ref();
        endpoints.push(Endpoint {
            addresses,
            ready: conditions.and_then(|c| c.ready).unwrap_or(true),
            serving: conditions.and_then(|c| c.serving).unwrap_or(true),
            terminating: conditions.and_then(|c| c.terminating).unwrap_or(false),
            node_name: raw.node_name.clone().filter(|n| !n.is_empty()),
            pod: raw
                .target_ref
                .as_ref()
                .filter(|r| r.kind.as_deref() == Some("Pod"))
                .and_then(|r| r.name.clone()),
        });
    }

    let raw_ports = slice.ports.as_deref().unwrap_or_default();
    if raw_ports.len() > 100 {
        return Err(invalid("ports", "may hold at most 100 ports"));
    }
    let mut ports = Vec::new();
    let mut names = BTreeSet::new();
    for (i, raw) in raw_ports.iter().enumerate() {
        let field = format!("ports[{i}]");
        let name = raw.name.clone().unwrap_or_default();
        if !name.is_empty() && !is_dns1123_label(&name) {
            return Err(invalid(
                format!("{field}.name"),
                format!("{name:?} is not a valid port name (a DNS-1123 label)"),
            ));
        }
        if !names.insert(name.clone()) {
            return Err(invalid(
                format!("{field}.name"),
                format!("duplicate port name {name:?}"),
            ));
        }
        let protocol = protocol(raw.protocol.as_deref(), &format!("{field}.protocol"))?;
        // No number means "all ports", which kube-proxy ignores; so does the model.
        if let Some(port) = raw.port {
            ports.push(EndpointPort {
                name,
                protocol,
                port: port_number(port, &format!("{field}.port"))?,
            });
        }
    }

    let labels: Option<&BTreeMap<String, String>> = slice.metadata.labels.as_ref();
    Ok(EndpointSlice {
        namespace,
        name,
        service: labels
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
            .filter(|s| !s.is_empty())
            .cloned(),
        family,
        endpoints,
        ports,
    })
}

/// A DNS-1123 label: 1-63 lowercase letters, digits and '-', starting and ending with a
/// letter or digit.
fn is_dns1123_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1035 label: a DNS-1123 label starting with a letter.
fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.starts_with(|c: char| c.is_ascii_lowercase())
}

/// A DNS-1123 subdomain: at most 253 characters of dot-separated DNS-1123 labels.
fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// An IANA_SVC_NAME (the API server's `IsValidPortName`): 1-15 lowercase letters, digits and
/// '-', at least one letter, no leading, trailing or consecutive '-'.
fn is_iana_svc_name(s: &str) -> bool {
    is_port_name(s) && !s.contains("--")
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::model::Labels;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn parse_service(yaml: &str) -> Result<Service, ConvertError> {
        let svc: core::Service = serde_yaml::from_str(yaml).expect("test Service");
        service(&svc)
    }

    fn parse_slice(yaml: &str) -> Result<EndpointSlice, ConvertError> {
        let slice: discovery::EndpointSlice = serde_yaml::from_str(yaml).expect("test slice");
        endpoint_slice(&slice)
    }

    const SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: NodePort
  selector: {app: web}
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10, "fd00:96::10"]
  ipFamilies: [IPv4, IPv6]
  externalIPs: [192.0.2.7]
  internalTrafficPolicy: Local
  ports:
  - {name: http, port: 80, targetPort: http-alt, nodePort: 30080}
  - {name: dns, port: 53, protocol: UDP, targetPort: 5353}
  - {name: plain, port: 8443, protocol: SCTP}
status:
  loadBalancer:
    ingress:
    - {ip: 198.51.100.1}
    - {ip: 198.51.100.2, ipMode: Proxy}
    - {hostname: lb.example.com}
"#;

    #[test]
    fn a_service_converts_with_defaults_filled_in() {
        let svc = parse_service(SERVICE).expect("valid");
        assert_eq!(
            svc,
            Service {
                namespace: "shop".into(),
                name: "web".into(),
                service_type: ServiceType::NodePort,
                cluster_ips: vec![ip("10.96.0.10"), ip("fd00:96::10")],
                external_ips: vec![ip("192.0.2.7")],
                // The Proxy-mode ingress point is not captured by kube-proxy.
                load_balancer_ips: vec![ip("198.51.100.1")],
                selector: Some(Labels::from([("app".into(), "web".into())])),
                ports: vec![
                    ServicePort {
                        name: "http".into(),
                        protocol: Protocol::Tcp,
                        port: 80,
                        target_port: TargetPort::Name("http-alt".into()),
                        node_port: Some(30080),
                    },
                    ServicePort {
                        name: "dns".into(),
                        protocol: Protocol::Udp,
                        port: 53,
                        target_port: TargetPort::Number(5353),
                        node_port: None,
                    },
                    ServicePort {
                        name: "plain".into(),
                        protocol: Protocol::Sctp,
                        port: 8443,
                        target_port: TargetPort::Number(8443),
                        node_port: None,
                    },
                ],
                internal_traffic_local: true,
            }
        );
    }

    #[test]
    fn headless_selectorless_and_external_name_services() {
        let headless =
            parse_service("metadata: {name: db}\nspec: {clusterIP: None, selector: {app: db}}")
                .expect("a headless Service needs no ports");
        assert!(headless.cluster_ips.is_empty());
        assert_eq!(headless.namespace, "default");
        let manual = parse_service(
            "metadata: {name: kubernetes}\nspec: {clusterIP: 10.96.0.1, selector: {}, ports: [{port: 443, targetPort: 6443}]}",
        )
        .expect("valid");
        assert_eq!(manual.selector, None, "an empty selector is no selector");
        assert_eq!(manual.ports[0].name, "");
        assert_eq!(manual.ports[0].target_port, TargetPort::Number(6443));
        let external = parse_service(
            "metadata: {name: ext}\nspec: {type: ExternalName, externalName: db.example.com.}",
        )
        .expect("valid");
        assert_eq!(external.service_type, ServiceType::ExternalName);
        assert!(external.cluster_ips.is_empty());
        // A targetPort of 0 or "" is defaulted to the port, as the API server does.
        let zero = parse_service(
            "metadata: {name: z}\nspec: {ports: [{port: 80, targetPort: 0}], clusterIPs: [\"fd00::1\"]}",
        )
        .expect("valid");
        assert_eq!(zero.ports[0].target_port, TargetPort::Number(80));
        assert_eq!(zero.cluster_ips, vec![ip("fd00::1")]);
    }

    /// Each case: a change to [`SERVICE`] (text replaced), the field the rejection names.
    #[test]
    fn invalid_services_are_rejected_naming_the_field() {
        let cases: &[(&str, &str, &str)] = &[
            ("name: web,", "name: Web,", "metadata.name"),
            ("name: web,", "name: 1web,", "metadata.name"),
            ("type: NodePort", "type: Internal", "spec.type"),
            (
                "clusterIP: 10.96.0.10",
                "clusterIP: 10.96.0.300",
                "spec.clusterIPs[0]",
            ),
            (
                "clusterIPs: [10.96.0.10, ",
                "clusterIPs: [10.96.0.11, ",
                "spec.clusterIPs[0]",
            ),
            ("\"fd00:96::10\"", "not-an-ip", "spec.clusterIPs[1]"),
            ("\"fd00:96::10\"", "10.96.0.11", "spec.clusterIPs[1]"),
            (
                "\"fd00:96::10\"]",
                "\"fd00:96::10\", 10.96.0.12]",
                "spec.clusterIPs",
            ),
            ("[IPv4, IPv6]", "[IPv6, IPv4]", "spec.clusterIPs[0]"),
            ("[IPv4, IPv6]", "[IPv4, IPv5]", "spec.ipFamilies[1]"),
            ("[IPv4, IPv6]", "[IPv4, IPv4]", "spec.ipFamilies[1]"),
            (
                "[192.0.2.7]",
                "[192.0.2.7, 127.0.0.1]",
                "spec.externalIPs[1]",
            ),
            ("[192.0.2.7]", "[example.com]", "spec.externalIPs[0]"),
            (
                "internalTrafficPolicy: Local",
                "internalTrafficPolicy: Node",
                "spec.internalTrafficPolicy",
            ),
            (
                "internalTrafficPolicy: Local",
                "externalTrafficPolicy: Global",
                "spec.externalTrafficPolicy",
            ),
            ("port: 80,", "port: 0,", "spec.ports[0].port"),
            ("port: 80,", "port: 65536,", "spec.ports[0].port"),
            ("protocol: UDP", "protocol: ICMP", "spec.ports[1].protocol"),
            (
                "targetPort: http-alt",
                "targetPort: 70000",
                "spec.ports[0].targetPort",
            ),
            (
                "targetPort: http-alt",
                "targetPort: -1",
                "spec.ports[0].targetPort",
            ),
            (
                "targetPort: http-alt",
                "targetPort: HTTP",
                "spec.ports[0].targetPort",
            ),
            (
                "targetPort: http-alt",
                "targetPort: http--alt",
                "spec.ports[0].targetPort",
            ),
            (
                "targetPort: http-alt",
                "targetPort: a-very-long-port-name",
                "spec.ports[0].targetPort",
            ),
            (
                "targetPort: http-alt",
                "targetPort: \"8080\"",
                "spec.ports[0].targetPort",
            ),
            (
                "nodePort: 30080",
                "nodePort: 70000",
                "spec.ports[0].nodePort",
            ),
            ("{name: dns,", "{name: http,", "spec.ports[1].name"),
            ("{name: dns,", "{", "spec.ports[1].name"),
            ("{name: dns,", "{name: DNS,", "spec.ports[1].name"),
            (
                "{name: plain, port: 8443, protocol: SCTP}",
                "{name: plain, port: 80}",
                "spec.ports[2]",
            ),
            (
                "type: NodePort",
                "type: ClusterIP",
                "spec.ports[0].nodePort",
            ),
            (
                "{ip: 198.51.100.1}",
                "{ip: 198.51.100.256}",
                "status.loadBalancer.ingress[0].ip",
            ),
            (
                "ipMode: Proxy",
                "ipMode: Direct",
                "status.loadBalancer.ingress[1].ipMode",
            ),
            (
                "{hostname: lb.example.com}",
                "{hostname: lb.example.com, ipMode: VIP}",
                "status.loadBalancer.ingress[2].ipMode",
            ),
        ];
        for (from, to, field) in cases {
            assert!(
                SERVICE.contains(from),
                "{from:?} is not in the test Service"
            );
            let yaml = SERVICE.replacen(from, to, 1);
            match parse_service(&yaml) {
                Ok(_) => panic!("{from:?} -> {to:?} was accepted"),
                Err(e) => assert_eq!(&e.field, field, "{from:?} -> {to:?}: {e}"),
            }
        }

        let whole: &[(&str, &str)] = &[
            ("metadata: {name: x}", "spec"),
            (
                "metadata: {name: x}\nspec: {clusterIP: 10.96.0.1}",
                "spec.ports",
            ),
            (
                "metadata: {name: x}\nspec: {clusterIPs: [None, 10.96.0.1], ports: [{port: 1}]}",
                "spec.clusterIPs[0]",
            ),
            (
                "metadata: {name: x}\nspec: {type: NodePort, clusterIP: None, ports: [{port: 1}]}",
                "spec.clusterIPs[0]",
            ),
            (
                "metadata: {name: x}\nspec: {type: ExternalName}",
                "spec.externalName",
            ),
            (
                "metadata: {name: x}\nspec: {type: ExternalName, externalName: \"not a name\"}",
                "spec.externalName",
            ),
            (
                "metadata: {name: x}\nspec: {type: ExternalName, externalName: a.b, clusterIP: 10.96.0.1}",
                "spec.clusterIP",
            ),
            (
                "metadata: {name: x}\nspec: {type: ExternalName, externalName: a.b, ports: [{port: 1, nodePort: 30001}]}",
                "spec.ports[0].nodePort",
            ),
            (
                "metadata: {name: x}\nspec: {type: NodePort, ports: [{name: a, port: 1, nodePort: 30001}, {name: b, port: 2, nodePort: 30001}]}",
                "spec.ports[1].nodePort",
            ),
        ];
        for (yaml, field) in whole {
            match parse_service(yaml) {
                Ok(_) => panic!("{yaml} was accepted"),
                Err(e) => assert_eq!(&e.field, field, "{yaml}: {e}"),
            }
        }
    }

    const SLICE: &str = r#"
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abcde
  namespace: shop
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
endpoints:
- addresses: [10.42.0.11]
  conditions: {ready: true}
  nodeName: node-a
  targetRef: {kind: Pod, name: web-1, namespace: shop}
- addresses: [10.42.1.12, 10.42.1.13]
  conditions: {ready: false, serving: true, terminating: true}
- addresses: [10.42.1.14]
ports:
- {name: http, port: 8080}
- {name: dns, port: 5353, protocol: UDP}
- {name: any}
"#;

    #[test]
    fn an_endpoint_slice_converts_with_conditions_defaulted_as_kube_proxy_reads_them() {
        let slice = parse_slice(SLICE).expect("valid");
        assert_eq!(
            slice,
            EndpointSlice {
                namespace: "shop".into(),
                name: "web-abcde".into(),
                service: Some("web".into()),
                family: Some(Family::Ipv4),
                endpoints: vec![
                    Endpoint {
                        addresses: vec![ip("10.42.0.11")],
                        ready: true,
                        serving: true,
                        terminating: false,
                        node_name: Some("node-a".into()),
                        pod: Some("web-1".into()),
                    },
                    Endpoint {
                        addresses: vec![ip("10.42.1.12"), ip("10.42.1.13")],
                        ready: false,
                        serving: true,
                        terminating: true,
                        node_name: None,
                        pod: None,
                    },
                    Endpoint {
                        addresses: vec![ip("10.42.1.14")],
                        ready: true,
                        serving: true,
                        terminating: false,
                        node_name: None,
                        pod: None,
                    },
                ],
                // The port without a number ("all ports") is not kept.
                ports: vec![
                    EndpointPort {
                        name: "http".into(),
                        protocol: Protocol::Tcp,
                        port: 8080,
                    },
                    EndpointPort {
                        name: "dns".into(),
                        protocol: Protocol::Udp,
                        port: 5353,
                    },
                ],
            }
        );
        let fqdn = parse_slice(
            "metadata: {name: f}\naddressType: FQDN\nendpoints: [{addresses: [db.example.com]}]",
        )
        .expect("valid");
        assert_eq!((fqdn.family, fqdn.endpoints.len()), (None, 0));
        assert_eq!(fqdn.service, None);
    }

    #[test]
    fn invalid_endpoint_slices_are_rejected_naming_the_field() {
        let cases: &[(&str, &str, &str)] = &[
            ("addressType: IPv4", "addressType: IP", "addressType"),
            (
                "addressType: IPv4",
                "addressType: IPv6",
                "endpoints[0].addresses[0]",
            ),
            ("[10.42.0.11]", "[10.42.0.256]", "endpoints[0].addresses[0]"),
            ("10.42.1.13]", "fd00::13]", "endpoints[1].addresses[1]"),
            ("[10.42.1.14]", "[]", "endpoints[2].addresses"),
            (
                "{name: http, port: 8080}",
                "{name: http, port: 0}",
                "ports[0].port",
            ),
            (
                "{name: http, port: 8080}",
                "{name: http, port: 65536}",
                "ports[0].port",
            ),
            ("protocol: UDP", "protocol: ICMP", "ports[1].protocol"),
            ("{name: dns,", "{name: http,", "ports[1].name"),
            ("{name: dns,", "{name: Dns,", "ports[1].name"),
            ("name: web-abcde", "name: \"\"", "metadata.name"),
        ];
        for (from, to, field) in cases {
            assert!(SLICE.contains(from), "{from:?} is not in the test slice");
            let yaml = SLICE.replacen(from, to, 1);
            match parse_slice(&yaml) {
                Ok(_) => panic!("{from:?} -> {to:?} was accepted"),
                Err(e) => assert_eq!(&e.field, field, "{from:?} -> {to:?}: {e}"),
            }
        }
        for (yaml, field) in [
            ("metadata: {name: f}\nendpoints: []", "addressType"),
            (
                "metadata: {name: f}\naddressType: FQDN\nendpoints: [{addresses: [\"not a name\"]}]",
                "endpoints[0].addresses[0]",
            ),
        ] {
            match parse_slice(yaml) {
                Ok(_) => panic!("{yaml} was accepted"),
                Err(e) => assert_eq!(e.field, field, "{yaml}: {e}"),
            }
        }
    }
}
