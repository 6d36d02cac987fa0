//! Ports and protocols of a rule, in both API versions' shapes.

use super::schema::{V1ALPHA1, V1ALPHA2, error};
use crate::{
    cluster_policy::{ClusterPeer, ClusterPolicyError, ClusterPort, raw},
    model::Protocol,
};

/// The CRDs' CEL rule: a named port needs a pod to name it.
pub(super) fn named_ports_need_pods(
    peers: &[ClusterPeer],
    ports: Option<&[ClusterPort]>,
    at: &str,
    ports_field: &str,
) -> Result<(), ClusterPolicyError> {
    let named = ports.is_some_and(|ports| ports.iter().any(|p| matches!(p, ClusterPort::Named(_))));
    let networks = peers.iter().any(|p| matches!(p, ClusterPeer::Networks(_)));
    if named && networks {
        return Err(error(
            format!("{at}.{ports_field}"),
            "networks/nodes/domainNames peer cannot be set with namedPorts since there are no namedPorts for networks/nodes/domainNames",
        ));
    }
    Ok(())
}

pub(super) fn ports_list<T>(
    ports: Option<Vec<T>>,
    field: &str,
    max: usize,
) -> Result<Option<Vec<T>>, ClusterPolicyError> {
    match ports {
        None => Ok(None),
        Some(ports) if ports.is_empty() || ports.len() > max => Err(error(
            field,
            format!("{} items: between 1 and {max} are required", ports.len()),
        )),
        Some(ports) => Ok(Some(ports)),
    }
}

pub(super) fn cnp_protocols(
    protocols: Option<Vec<raw::CnpProtocol>>,
    at: &str,
) -> Result<Option<Vec<ClusterPort>>, ClusterPolicyError> {
    let field = format!("{at}.protocols");
    let Some(protocols) = ports_list(protocols, &field, V1ALPHA2.items)? else {
        return Ok(None);
    };
    protocols
        .into_iter()
        .enumerate()
        .map(|(k, p)| {
            let at = format!("{field}[{k}]");
            let named = p.destination_named_port.filter(|n| !n.is_empty());
            let set = [
                p.tcp.is_some(),
                p.udp.is_some(),
                p.sctp.is_some(),
                named.is_some(),
            ]
            .into_iter()
            .filter(|set| *set)
            .count();
            if set != 1 {
                return Err(error(
                    at,
                    "exactly one of tcp, udp, sctp or destinationNamedPort must be set",
                ));
            }
            if let Some(name) = named {
                return Ok(ClusterPort::Named(name));
            }
            let (protocol, name, ports) = match (p.tcp, p.udp, p.sctp) {
                (Some(ports), _, _) => (Protocol::Tcp, "tcp", ports),
                (_, Some(ports), _) => (Protocol::Udp, "udp", ports),
                (_, _, Some(ports)) => (Protocol::Sctp, "sctp", ports),
                _ => return Err(error(at, "no protocol")),
            };
            let at = format!("{at}.{name}");
            let port = ports
                .destination_port
                .ok_or_else(|| error(format!("{at}.destinationPort"), "required"))?;
            let at = format!("{at}.destinationPort");
            match (port.number, port.range) {
                (Some(number), None) => {
                    let port = port_number(number, &format!("{at}.number"))?;
                    Ok(ClusterPort::Range {
                        protocol,
                        first: port,
                        last: port,
                    })
                }
                (None, Some(range)) => {
                    let (first, last) = port_range(range.start, range.end, &format!("{at}.range"))?;
                    Ok(ClusterPort::Range {
                        protocol,
                        first,
                        last,
                    })
                }
                _ => Err(error(at, "exactly one of number or range must be set")),
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

pub(super) fn anp_ports(
    ports: Option<Vec<raw::AnpPort>>,
    at: &str,
) -> Result<Option<Vec<ClusterPort>>, ClusterPolicyError> {
    let field = format!("{at}.ports");
    let Some(ports) = ports_list(ports, &field, V1ALPHA1.items)? else {
        return Ok(None);
    };
    ports
        .into_iter()
        .enumerate()
        .map(|(k, p)| {
            let at = format!("{field}[{k}]");
            match (p.port_number, p.named_port, p.port_range) {
                (Some(number), None, None) => {
                    let at = format!("{at}.portNumber");
                    let protocol = protocol(number.protocol.as_deref(), &at)?;
                    let port = number
                        .port
                        .ok_or_else(|| error(format!("{at}.port"), "required"))?;
                    let port = port_number(port, &format!("{at}.port"))?;
                    Ok(ClusterPort::Range {
                        protocol,
                        first: port,
                        last: port,
                    })
                }
                (None, Some(name), None) if !name.is_empty() => Ok(ClusterPort::Named(name)),
                (None, None, Some(range)) => {
                    let at = format!("{at}.portRange");
                    let protocol = protocol(range.protocol.as_deref(), &at)?;
                    let (first, last) = port_range(range.start, range.end, &at)?;
                    Ok(ClusterPort::Range {
                        protocol,
                        first,
                        last,
                    })
                }
                _ => Err(error(
                    at,
                    "exactly one of portNumber, namedPort or portRange must be set",
                )),
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// `protocol` of a v1alpha1 port: the CRD defaults it to TCP.
pub(super) fn protocol(value: Option<&str>, at: &str) -> Result<Protocol, ClusterPolicyError> {
    match value {
        None | Some("TCP") => Ok(Protocol::Tcp),
        Some("UDP") => Ok(Protocol::Udp),
        Some("SCTP") => Ok(Protocol::Sctp),
        Some(other) => Err(error(
            format!("{at}.protocol"),
            format!("unsupported value {other:?}: expected \"TCP\", \"UDP\" or \"SCTP\""),
        )),
    }
}

pub(super) fn port_number(value: i64, field: &str) -> Result<u16, ClusterPolicyError> {
    u16::try_from(value)
        .ok()
        .filter(|p| *p >= 1)
        .ok_or_else(|| {
            error(
                field,
                format!("{value} is out of range: must be between 1 and 65535"),
            )
        })
}

pub(super) fn port_range(
    start: Option<i64>,
    end: Option<i64>,
    at: &str,
) -> Result<(u16, u16), ClusterPolicyError> {
    let start = start.ok_or_else(|| error(format!("{at}.start"), "required"))?;
    let end = end.ok_or_else(|| error(format!("{at}.end"), "required"))?;
    let first = port_number(start, &format!("{at}.start"))?;
    let last = port_number(end, &format!("{at}.end"))?;
    if first >= last {
        return Err(error(at, "Start port must be less than End port"));
    }
    Ok((first, last))
}
