//! Services: type, cluster IPs and families, ports, as kube-proxy will read them.

use std::{collections::BTreeSet, net::IpAddr};

use k8s_openapi::{api::core::v1 as core, apimachinery::pkg::util::intstr::IntOrString};

use crate::model::{Family, Service, ServicePort, ServiceType, TargetPort};

use super::fields::{
    ConvertError, invalid, is_dns1035_label, is_dns1123_label, is_dns1123_subdomain,
    is_iana_svc_name, object_name, object_namespace, parse_ip, port_number, protocol,
};

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

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::model::Labels;
    use crate::model::Protocol;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn parse_service(yaml: &str) -> Result<Service, ConvertError> {
        let svc: core::Service = serde_yaml::from_str(yaml).expect("test Service");
        service(&svc)
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
}
