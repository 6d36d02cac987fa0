//! Calico rules matched field by field against the packet: `ipVersion`, protocols, ICMP, and
//! each side's nets, services, selectors (libcalico-go's combined selector with its namespace
//! restriction) and ports. Separate from the walk (`order.rs`): this only answers which field
//! of a rule does not hold, which the trace reports.

use std::net::IpAddr;

use policy_agent::calico::selector::Selector;

use super::{
    Ctx,
    endpoints::{
        Owner, named_port, owner_labels, owner_namespace, service_account, service_account_labels,
    },
    selector_matches,
};
use crate::calico_reference::resources::{
    EntityRule, Icmp as IcmpMatch, IpVersion, Port as PortMatch, Rule, Service as ServiceMatch,
};

impl<'a> Ctx<'a> {
    // ---- Calico rules ----

    /// The first field of `rule` that does not hold for the packet, or None when it matches.
    /// `policy_ns` is the namespace of a namespaced policy.
    pub(super) fn rule_mismatch(
        &self,
        rule: &Rule,
        policy_ns: Option<&str>,
    ) -> Option<&'static str> {
        let p = self.packet;
        if let Some(version) = rule.ip_version {
            let family_ok = match version {
                IpVersion::V4 => p.src.is_ipv4(),
                IpVersion::V6 => p.src.is_ipv6(),
            };
            if !family_ok {
                return Some("ipVersion");
            }
        }
        if rule.protocol.is_some_and(|proto| proto != p.protocol) {
            return Some("protocol");
        }
        if rule.not_protocol.is_some_and(|proto| proto == p.protocol) {
            return Some("notProtocol");
        }
        if let Some(icmp) = &rule.icmp
            && !icmp_is_empty(icmp)
            && !self.icmp_matches(icmp)
        {
            return Some("icmp");
        }
        if let Some(icmp) = &rule.not_icmp
            && !icmp_is_empty(icmp)
            && self.icmp_matches(icmp)
        {
            return Some("notICMP");
        }
        let sides = [
            (&rule.source, p.src, p.src_port, SOURCE_FIELDS),
            (&rule.destination, p.dst, p.dst_port, DESTINATION_FIELDS),
        ];
        for (entity, addr, port, fields) in sides {
            if let Some(field) = self.entity_mismatch(entity, addr, port, policy_ns, fields) {
                return Some(field);
            }
        }
        None
    }

    fn icmp_matches(&self, icmp: &IcmpMatch) -> bool {
        let p = self.packet;
        if !p.is_icmp() {
            return false;
        }
        let Some(header) = p.icmp else {
            return false;
        };
        icmp.icmp_type.is_none_or(|t| t == header.icmp_type)
            && icmp.code.is_none_or(|c| c == header.code)
    }

    fn entity_mismatch(
        &self,
        entity: &EntityRule,
        addr: IpAddr,
        port: u16,
        policy_ns: Option<&str>,
        fields: &EntityFields,
    ) -> Option<&'static str> {
        if !entity.nets.is_empty() && !entity.nets.iter().any(|n| n.contains(&addr)) {
            return Some(fields.nets);
        }
        if entity.not_nets.iter().any(|n| n.contains(&addr)) {
            return Some(fields.not_nets);
        }
        if let Some(service) = &entity.services
            && !self.service_matches(service, addr, port, fields.destination)
        {
            return Some(fields.services);
        }
        let owners = self.owners(addr);
        if !self.positive_selector_holds(entity, &owners, policy_ns) {
            return Some(fields.selector);
        }
        if let Some(not_selector) = &entity.not_selector
            && owners.iter().any(|o| {
                let (labels, namespaced) = owner_labels(*o);
                selector_matches(not_selector, &labels, namespaced)
            })
        {
            return Some(fields.not_selector);
        }
        let any_port = |list: &[PortMatch]| list.iter().any(|m| self.port_matches(m, addr, port));
        // Neither `ports` nor `notPorts` matches a packet without ports.
        let ports_ok = self.packet.has_ports() && any_port(&entity.ports);
        if !entity.ports.is_empty() && !ports_ok {
            return Some(fields.ports);
        }
        let not_ports_ok = self.packet.has_ports() && !any_port(&entity.not_ports);
        if !entity.not_ports.is_empty() && !not_ports_ok {
            return Some(fields.not_ports);
        }
        None
    }

    /// libcalico-go's combined selector: `selector`, `serviceAccounts` and the namespace
    /// restriction, on one owner of the address.
    fn positive_selector_holds(
        &self,
        entity: &EntityRule,
        owners: &[Owner<'a>],
        policy_ns: Option<&str>,
    ) -> bool {
        let service_accounts = entity
            .service_accounts
            .as_ref()
            .filter(|m| !m.names.is_empty() || m.selector.is_some());
        let any_selector_field = entity.selector.is_some()
            || service_accounts.is_some()
            || entity.not_selector.is_some()
            || entity.namespace_selector.is_some();
        if !any_selector_field {
            return true;
        }
        // The namespace restriction applies whenever a selector field is set (and there is a
        // namespace selector or the policy is namespaced).
        let namespace_ok = |owner: Owner<'a>| -> bool {
            let owner_ns = owner_namespace(owner);
            match (&entity.namespace_selector, policy_ns) {
                (Some(Selector::Global), _) => owner_ns.is_none(),
                (Some(ns_selector), _) => owner_ns.is_some_and(|ns| {
                    selector_matches(ns_selector, &self.namespace_labels(&ns), true)
                }),
                (None, Some(policy_ns)) => owner_ns.as_deref() == Some(policy_ns),
                (None, None) => true,
            }
        };
        let has_positive = entity.selector.is_some()
            || service_accounts.is_some()
            || entity.namespace_selector.is_some()
            || policy_ns.is_some();
        if !has_positive {
            // A global policy's notSelector-only rule: no positive part.
            return true;
        }
        owners.iter().any(|&owner| {
            let (labels, namespaced) = owner_labels(owner);
            namespace_ok(owner)
                && entity
                    .selector
                    .as_ref()
                    .is_none_or(|s| selector_matches(s, &labels, namespaced))
                && service_accounts.is_none_or(|m| match owner {
                    Owner::Pod(pod) => {
                        let sa = service_account(pod);
                        (m.names.is_empty() || m.names.contains(&sa))
                            && m.selector.as_ref().is_none_or(|s| {
                                selector_matches(s, &service_account_labels(&sa), true)
                            })
                    }
                    Owner::Set(_) | Owner::Host(_) => false,
                })
        })
    }

    /// A `services` match, as Felix's service index builds its IP sets: the EndpointSlices
    /// in the match's namespace labelled `kubernetes.io/service-name: <name>` (the Service
    /// object is not consulted); every address of every endpoint (whatever its conditions)
    /// that parses as an IP; as a destination, only with a port of the same slice that has a
    /// number, its protocol (TCP unless UDP or SCTP) and number those of the packet.
    fn service_matches(
        &self,
        service: &ServiceMatch,
        addr: IpAddr,
        port: u16,
        destination: bool,
    ) -> bool {
        self.world.endpoint_slices.iter().any(|slice| {
            let meta = &slice.metadata;
            let labelled = meta
                .labels
                .as_ref()
                .and_then(|l| l.get("kubernetes.io/service-name"))
                .is_some_and(|name| *name == service.name);
            if meta.namespace.as_deref().unwrap_or("default") != service.namespace || !labelled {
                return false;
            }
            let holds_addr = slice.endpoints.iter().any(|endpoint| {
                endpoint
                    .addresses
                    .iter()
                    .any(|a| a.parse::<IpAddr>().is_ok_and(|a| a == addr))
            });
            if !holds_addr {
                return false;
            }
            if !destination {
                return true;
            }
            slice.ports.iter().flatten().any(|p| {
                let protocol = match p.protocol.as_deref() {
                    Some("UDP") => 17,
                    Some("SCTP") => 132,
                    _ => 6,
                };
                p.port.is_some_and(|n| i64::from(n) == i64::from(port))
                    && protocol == self.packet.protocol
                    && self.packet.has_ports()
            })
        })
    }

    fn port_matches(&self, port_match: &PortMatch, addr: IpAddr, port: u16) -> bool {
        match port_match {
            PortMatch::Range { first, last } => (*first..=*last).contains(&port),
            PortMatch::Named(name) => {
                self.live_pod(addr)
                    .is_some_and(|pod| named_port(pod, name, self.packet.protocol, port))
                    || self.world.host_endpoints.iter().any(|host| {
                        host.expected_ips.contains(&addr)
                            && host.ports.iter().any(|p| {
                                p.name == *name
                                    && p.protocol == self.packet.protocol
                                    && p.port == port
                            })
                    })
            }
        }
    }
}

/// Field names of one side of a rule, for the trace.
struct EntityFields {
    nets: &'static str,
    not_nets: &'static str,
    selector: &'static str,
    not_selector: &'static str,
    ports: &'static str,
    not_ports: &'static str,
    services: &'static str,
    /// The destination side: a `services` match there also matches the endpoints' ports.
    destination: bool,
}

const SOURCE_FIELDS: &EntityFields = &EntityFields {
    nets: "source.nets",
    not_nets: "source.notNets",
    selector: "source.selector",
    not_selector: "source.notSelector",
    ports: "source.ports",
    not_ports: "source.notPorts",
    services: "source.services",
    destination: false,
};

const DESTINATION_FIELDS: &EntityFields = &EntityFields {
    nets: "destination.nets",
    not_nets: "destination.notNets",
    selector: "destination.selector",
    not_selector: "destination.notSelector",
    ports: "destination.ports",
    not_ports: "destination.notPorts",
    services: "destination.services",
    destination: true,
};

fn icmp_is_empty(icmp: &IcmpMatch) -> bool {
    icmp.icmp_type.is_none() && icmp.code.is_none()
}
