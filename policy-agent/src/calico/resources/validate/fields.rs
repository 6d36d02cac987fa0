//! Field checks more than one kind shares: `order`, protocols, ports and port names, and
//! network-set CIDRs.

use std::net::IpAddr;

use ipnet::IpNet;

use super::checker::Checker;
use crate::calico::resources::{PortMatch, Protocol, raw};

pub(super) fn order(c: &mut Checker, order: Option<f64>) -> Option<f64> {
    let order = order?;
    if !order.is_finite() {
        c.error("spec.order", "must be a finite number");
        return None;
    }
    Some(order)
}

pub(super) fn parse_protocol(
    c: &mut Checker,
    field: &str,
    raw: &raw::IntOrString,
) -> Option<Protocol> {
    let found = match raw {
        raw::IntOrString::Int(n) => u8::try_from(*n).ok().filter(|&n| n >= 1).map(Protocol),
        raw::IntOrString::String(s) => Protocol::from_name(s),
    };
    if found.is_none() {
        c.error(
            field,
            format!(
                "{raw} is not a protocol (TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or a number \
                 1-255)"
            ),
        );
    }
    found
}

/// Network-set CIDRs: a CIDR, or an address meaning its host prefix.
pub(super) fn set_nets(c: &mut Checker, field: &str, raw: Vec<String>) -> Vec<IpNet> {
    let mut nets = Vec::with_capacity(raw.len());
    for (i, text) in raw.iter().enumerate() {
        if let Ok(net) = text.parse::<IpNet>() {
            nets.push(net.trunc());
        } else if let Ok(ip) = text.parse::<IpAddr>() {
            nets.push(IpNet::from(ip));
        } else {
            c.error(
                format!("{field}[{i}]"),
                format!("'{text}' is not a CIDR or an IP address"),
            );
        }
    }
    nets
}

pub(super) fn parse_ports(
    c: &mut Checker,
    field: &str,
    raw: Vec<raw::IntOrString>,
) -> Vec<PortMatch> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, port) in raw.iter().enumerate() {
        match port_match(port) {
            Ok(p) => out.push(p),
            Err(message) => c.error(format!("{field}[{i}]"), message),
        }
    }
    out
}

/// Calico's `numorstring.Port`: a number, `"min:max"`, a number in a string, or a port name.
fn port_match(raw: &raw::IntOrString) -> Result<PortMatch, String> {
    let number =
        |n: i64| u16::try_from(n).map_err(|_| format!("{n} is not a port number (0-65535)"));
    match raw {
        raw::IntOrString::Int(n) => {
            let n = number(*n)?;
            Ok(PortMatch::Range { first: n, last: n })
        }
        raw::IntOrString::String(s) => {
            let parse = |part: &str| {
                part.parse::<u16>()
                    .map_err(|_| format!("'{s}': '{part}' is not a port number (0-65535)"))
            };
            if let Some((first, last)) = s.split_once(':') {
                let (first, last) = (parse(first)?, parse(last)?);
                if first > last {
                    return Err(format!(
                        "'{s}': the range starts at {first}, after its end {last}"
                    ));
                }
                Ok(PortMatch::Range { first, last })
            } else if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() {
                let n = parse(s)?;
                Ok(PortMatch::Range { first: n, last: n })
            } else if is_port_name(s) {
                Ok(PortMatch::Named(s.clone()))
            } else {
                Err(format!(
                    "'{s}' is not a port, a range 'min:max' or a port name (at most 15 \
                     lower-case alphanumeric characters or '-', with a letter)"
                ))
            }
        }
    }
}

/// Kubernetes' IANA_SVC_NAME, which Calico uses for port names.
pub(super) fn is_port_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 15
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && b.iter().any(u8::is_ascii_lowercase)
        && b.first() != Some(&b'-')
        && b.last() != Some(&b'-')
        && !s.contains("--")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(text: &str) -> Result<PortMatch, String> {
        port_match(&raw::IntOrString::String(text.to_owned()))
    }

    #[test]
    fn ports_numbers_ranges_and_names() {
        assert_eq!(
            port("80"),
            Ok(PortMatch::Range {
                first: 80,
                last: 80
            })
        );
        assert_eq!(
            port("80:90"),
            Ok(PortMatch::Range {
                first: 80,
                last: 90
            })
        );
        assert_eq!(port("http"), Ok(PortMatch::Named("http".to_owned())));
        assert_eq!(
            port("90:80"),
            Err("'90:80': the range starts at 90, after its end 80".to_owned())
        );
        assert!(port("80:").is_err());
        assert!(port("70000").is_err());
        assert!(port("Http").is_err());
        assert!(port("a--b").is_err());
        assert_eq!(
            port_match(&raw::IntOrString::Int(443)),
            Ok(PortMatch::Range {
                first: 443,
                last: 443
            })
        );
        assert!(port_match(&raw::IntOrString::Int(-1)).is_err());
    }
}
