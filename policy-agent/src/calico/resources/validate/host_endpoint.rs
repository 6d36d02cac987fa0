//! HostEndpoint: node, interface, expected addresses and named ports.

use std::net::IpAddr;

use super::{
    checker::Checker,
    fields::{is_port_name, parse_protocol},
    names::{labels, namespace, subdomain_name},
};
use crate::calico::resources::{EndpointPort, FieldError, HostEndpoint, Kind, Protocol, raw};

pub(in crate::calico::resources) fn host_endpoint(
    object: raw::Object<raw::HostEndpointSpec>,
) -> Result<HostEndpoint, Vec<FieldError>> {
    let mut c = Checker::default();
    let name = subdomain_name(&mut c, &object.metadata);
    namespace(&mut c, &object.metadata, Kind::HostEndpoint);
    let labels = labels(&mut c, &object.metadata);
    let spec = object.spec.unwrap_or_default();

    let node = spec.node.clone().unwrap_or_default();
    if node.is_empty() {
        c.error("spec.node", "required");
    }
    let interface_name = spec.interface_name.clone().filter(|i| !i.is_empty());
    if let Some(iface) = &interface_name {
        let ok = iface == "*"
            || (iface.len() <= 15
                && iface
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')));
        if !ok {
            c.error(
                "spec.interfaceName",
                format!(
                    "'{iface}' is not an interface name ('*', or at most 15 characters of \
                     alphanumerics, '_', '.' and '-')"
                ),
            );
        }
    }
    let mut expected_ips = Vec::new();
    for (i, text) in spec.expected_ips.unwrap_or_default().iter().enumerate() {
        match text.parse::<IpAddr>() {
            Ok(ip) => expected_ips.push(ip),
            Err(_) => c.error(
                format!("spec.expectedIPs[{i}]"),
                format!("'{text}' is not an IP address"),
            ),
        }
    }
    if interface_name.is_none() && expected_ips.is_empty() {
        c.error(
            "spec.interfaceName",
            "a host endpoint needs an interfaceName or expectedIPs",
        );
    }
    let mut ports = Vec::new();
    for (i, port) in spec.ports.unwrap_or_default().iter().enumerate() {
        let field = format!("spec.ports[{i}]");
        let name = port.name.clone().unwrap_or_default();
        if !is_port_name(&name) {
            c.error(
                format!("{field}.name"),
                format!(
                    "'{name}' is not a port name (at most 15 lower-case alphanumeric characters \
                     or '-', with a letter)"
                ),
            );
        }
        let number = match port.port.map(u16::try_from) {
            Some(Ok(n)) if n > 0 => Some(n),
            Some(_) => {
                c.error(format!("{field}.port"), "must be a port number 1-65535");
                None
            }
            None => {
                c.error(format!("{field}.port"), "required");
                None
            }
        };
        let protocol = match &port.protocol {
            Some(p) => parse_protocol(&mut c, &format!("{field}.protocol"), p),
            None => {
                c.error(format!("{field}.protocol"), "required (TCP, UDP or SCTP)");
                None
            }
        };
        if let Some(p) = protocol
            && !matches!(p, Protocol::TCP | Protocol::UDP | Protocol::SCTP)
        {
            c.error(format!("{field}.protocol"), "must be TCP, UDP or SCTP");
        }
        if let (Some(port), Some(protocol)) = (number, protocol) {
            ports.push(EndpointPort {
                name,
                port,
                protocol,
            });
        }
    }
    c.finish(HostEndpoint {
        name,
        labels,
        node,
        interface_name,
        expected_ips,
        ports,
        profiles: spec.profiles.unwrap_or_default(),
    })
}
