//! EndpointSlices: endpoints, their conditions and ports, as kube-proxy reads them.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::discovery::v1 as discovery;

use crate::model::{Endpoint, EndpointPort, EndpointSlice, Family, services::SERVICE_NAME_LABEL};

use super::fields::{
    ConvertError, invalid, is_dns1123_label, is_dns1123_subdomain, object_name, object_namespace,
    parse_ip, port_number, protocol,
};

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

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::model::Protocol;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn parse_slice(yaml: &str) -> Result<EndpointSlice, ConvertError> {
        let slice: discovery::EndpointSlice = serde_yaml::from_str(yaml).expect("test slice");
        endpoint_slice(&slice)
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
