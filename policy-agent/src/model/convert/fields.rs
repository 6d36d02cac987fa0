//! What the kinds' conversions share: the error naming the field at fault, object names
//! and namespaces, and the checks of ports, protocols, addresses and DNS names.

use std::{net::IpAddr, str::FromStr};

use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use thiserror::Error;

use crate::model::Protocol;

/// An object that failed validation: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("field {field}: {message}")]
pub struct ConvertError {
    pub field: String,
    pub message: String,
}

pub(super) fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConvertError {
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

pub(super) fn object_name(meta: &meta::ObjectMeta) -> Result<String, ConvertError> {
    match meta.name.as_deref() {
        Some(name) if !name.is_empty() => Ok(name.to_owned()),
        _ => Err(invalid("metadata.name", "required")),
    }
}

pub(super) fn is_port_name(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.bytes().any(|b| b.is_ascii_lowercase())
        && !name.starts_with('-')
        && !name.ends_with('-')
}

pub(super) fn protocol(value: Option<&str>, field: &str) -> Result<Protocol, ConvertError> {
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

pub(super) fn port_number(value: i32, field: &str) -> Result<u16, ConvertError> {
    match u16::try_from(value) {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(invalid(
            field,
            format!("{value} is not a valid port number (1-65535)"),
        )),
    }
}

pub(super) fn parse_ip(value: &str, field: &str) -> Result<IpAddr, ConvertError> {
    IpAddr::from_str(value).map_err(|_| invalid(field, format!("{value:?} is not an IP address")))
}

pub(super) fn parse_cidr(value: &str, field: &str) -> Result<IpNet, ConvertError> {
    IpNet::from_str(value)
        .map(|net| net.trunc())
        .map_err(|_| invalid(field, format!("{value:?} is not a CIDR (address/prefix)")))
}

/// A DNS-1123 label: 1-63 lowercase letters, digits and '-', starting and ending with a
/// letter or digit.
pub(super) fn is_dns1123_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1035 label: a DNS-1123 label starting with a letter.
pub(super) fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.starts_with(|c: char| c.is_ascii_lowercase())
}

/// A DNS-1123 subdomain: at most 253 characters of dot-separated DNS-1123 labels.
pub(super) fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// An IANA_SVC_NAME (the API server's `IsValidPortName`): 1-15 lowercase letters, digits and
/// '-', at least one letter, no leading, trailing or consecutive '-'.
pub(super) fn is_iana_svc_name(s: &str) -> bool {
    is_port_name(s) && !s.contains("--")
}
