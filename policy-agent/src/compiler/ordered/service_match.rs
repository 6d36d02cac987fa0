//! What a Calico rule's `services` match stands for: the endpoints of a Service's
//! EndpointSlices, as Felix's service index reads them.
//!
//! Felix groups EndpointSlices by their `kubernetes.io/service-name` label (in the slice's
//! namespace; the Service object itself is not read) and makes, for a `source` match, an IP
//! set of every endpoint address, and for a `destination` match an IP set of (address,
//! protocol, port) for every endpoint address and every port of its slice that has a number
//! (protocol TCP unless UDP or SCTP). Readiness is not looked at. Palisade's model keeps the
//! same: every address of every endpoint of an IPv4/IPv6 slice, ports without a number left
//! out, protocol defaulted to TCP.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use crate::{calico::resources::ServiceMatch, model::Cluster};

/// (protocol number, port) pairs.
pub type ServicePorts = BTreeSet<(u8, u16)>;

/// The Service's endpoint addresses, grouped by the ports their slices give them (a
/// destination match is one (addresses, ports) pair per group). Slices without ports make a
/// group with no ports: they count for a source match only.
pub fn endpoint_groups(
    cluster: &Cluster,
    service: &ServiceMatch,
) -> BTreeMap<ServicePorts, BTreeSet<IpAddr>> {
    let mut groups: BTreeMap<ServicePorts, BTreeSet<IpAddr>> = BTreeMap::new();
    let slices = cluster
        .endpoint_slices
        .range((service.namespace.clone(), String::new())..)
        .take_while(|((ns, _), _)| *ns == service.namespace)
        .map(|(_, slice)| slice)
        .filter(|slice| slice.family.is_some() && slice.service.as_deref() == Some(&service.name));
    for slice in slices {
        let ports: ServicePorts = slice
            .ports
            .iter()
            .map(|p| (p.protocol.number(), p.port))
            .collect();
        groups.entry(ports).or_default().extend(
            slice
                .endpoints
                .iter()
                .flat_map(|e| e.addresses.iter().copied()),
        );
    }
    groups.retain(|_, addrs| !addrs.is_empty());
    groups
}

/// Every endpoint address of the Service (a source match).
pub fn addresses(cluster: &Cluster, service: &ServiceMatch) -> BTreeSet<IpAddr> {
    endpoint_groups(cluster, service)
        .into_values()
        .flatten()
        .collect()
}

/// The Services the Calico policies' rules match (peer side only: validation allows no
/// other), with what each stands for: what a compile has to follow.
pub fn matched(
    cluster: &Cluster,
) -> BTreeMap<ServiceMatch, BTreeMap<ServicePorts, BTreeSet<IpAddr>>> {
    cluster
        .calico
        .policies
        .values()
        .flat_map(|policy| {
            policy
                .ingress
                .iter()
                .map(|rule| &rule.source)
                .chain(policy.egress.iter().map(|rule| &rule.destination))
        })
        .filter_map(|side| side.services.as_ref())
        .map(|service| (service.clone(), endpoint_groups(cluster, service)))
        .collect()
}
