//! The one way into the model that is *not* independent of the agent's validation: a
//! [`CalicoResource`] already checked and defaulted by `policy_agent::calico::resources`,
//! taken field for field. It exists for callers that only hold checked resources (the
//! generator's edits in `generate_calico.rs`, which apply a generated policy after the world
//! was built); a world read with [`super::CalicoWorld::from_yaml`] or
//! [`super::CalicoWorld::add_document`] never passes through here. Prefer those: a defaulting
//! bug in the agent is invisible to anything built here.

use policy_agent::calico::resources::{self as agent, CalicoResource};

use super::resources::{
    Action, EntityRule, HostEndpoint, Icmp, IpVersion, NamedPort, NetworkSet, Policy, Port,
    Resource, Rule, Service, ServiceAccounts, Tier, TierAction, Types,
};

impl From<CalicoResource> for Resource {
    fn from(resource: CalicoResource) -> Self {
        match resource {
            CalicoResource::GlobalNetworkPolicy(p) | CalicoResource::NetworkPolicy(p) => {
                Resource::Policy(Box::new(policy(p)))
            }
            CalicoResource::Tier(t) => Resource::Tier(Tier {
                name: t.name,
                order: t.order,
                default_action: match t.default_action {
                    agent::TierAction::Deny => TierAction::Deny,
                    agent::TierAction::Pass => TierAction::Pass,
                },
            }),
            CalicoResource::GlobalNetworkSet(s) | CalicoResource::NetworkSet(s) => {
                Resource::NetworkSet(NetworkSet {
                    name: s.name,
                    namespace: s.namespace,
                    labels: s.labels,
                    nets: s.nets,
                })
            }
            CalicoResource::HostEndpoint(h) => Resource::HostEndpoint(HostEndpoint {
                name: h.name,
                labels: h.labels,
                expected_ips: h.expected_ips,
                ports: h
                    .ports
                    .into_iter()
                    .map(|p| NamedPort {
                        name: p.name,
                        port: p.port,
                        protocol: p.protocol.0,
                    })
                    .collect(),
            }),
        }
    }
}

fn policy(p: agent::Policy) -> Policy {
    Policy {
        name: p.name,
        namespace: p.namespace,
        tier: p.tier,
        order: p.order,
        selector: p.selector,
        namespace_selector: p.namespace_selector,
        service_account_selector: p.service_account_selector,
        types: Types {
            ingress: p.types.ingress,
            egress: p.types.egress,
        },
        ingress: p.ingress.into_iter().map(rule).collect(),
        egress: p.egress.into_iter().map(rule).collect(),
        do_not_track: p.do_not_track,
        pre_dnat: p.pre_dnat,
    }
}

fn rule(r: agent::Rule) -> Rule {
    let icmp = |m: agent::IcmpMatch| Icmp {
        icmp_type: m.icmp_type,
        code: m.code,
    };
    Rule {
        action: match r.action {
            agent::Action::Allow => Action::Allow,
            agent::Action::Deny => Action::Deny,
            agent::Action::Log => Action::Log,
            agent::Action::Pass => Action::Pass,
        },
        ip_version: r.ip_version.map(|v| match v {
            agent::IpVersion::V4 => IpVersion::V4,
            agent::IpVersion::V6 => IpVersion::V6,
        }),
        protocol: r.protocol.map(|p| p.0),
        not_protocol: r.not_protocol.map(|p| p.0),
        icmp: r.icmp.map(icmp),
        not_icmp: r.not_icmp.map(icmp),
        source: entity(r.source),
        destination: entity(r.destination),
    }
}

fn entity(e: agent::EntityRule) -> EntityRule {
    let ports = |list: Vec<agent::PortMatch>| {
        list.into_iter()
            .map(|p| match p {
                agent::PortMatch::Range { first, last } => Port::Range { first, last },
                agent::PortMatch::Named(name) => Port::Named(name),
            })
            .collect()
    };
    EntityRule {
        nets: e.nets,
        not_nets: e.not_nets,
        selector: e.selector,
        not_selector: e.not_selector,
        namespace_selector: e.namespace_selector,
        ports: ports(e.ports),
        not_ports: ports(e.not_ports),
        service_accounts: e.service_accounts.map(|m| ServiceAccounts {
            names: m.names,
            selector: m.selector,
        }),
        services: e.services.map(|s| Service {
            name: s.name,
            namespace: s.namespace,
        }),
    }
}
