//! The endpoint's own side of a rule: its addresses, labels, owners and named ports, so that
//! everything a rule says about the endpoint itself is decided at compile time. Separate from
//! the peer side, which the table's cells decide per peer identity.

use std::net::IpAddr;

use crate::{
    calico::resources::{self as calico, HostEndpoint, IpVersion},
    compiler::{
        ordered::{
            CalicoContext, PeerEntity, PortRule,
            owners::{self, Owner},
        },
        relevance::model_protocol,
        views::named_port,
    },
    model::{Cluster, Pod},
};

/// The endpoint as its own side of a rule sees it.
pub(super) struct Local<'a> {
    owner: LocalOwner<'a>,
    context: &'a CalicoContext,
    /// The endpoint's IPv4 and IPv6 address.
    pub(super) addrs: [Option<IpAddr>; 2],
}

enum LocalOwner<'a> {
    Pod {
        pod: &'a Pod,
        labels: crate::model::Labels,
        namespace_labels: crate::model::Labels,
    },
    Host(&'a HostEndpoint),
}

impl<'a> Local<'a> {
    pub(super) fn pod(pod: &'a Pod, cluster: &Cluster, context: &'a CalicoContext) -> Self {
        let family = |v6: bool| pod.ips.iter().copied().find(|ip| ip.is_ipv6() == v6);
        Local {
            owner: LocalOwner::Pod {
                pod,
                labels: owners::pod_labels(&pod.labels, &pod.namespace, &pod.service_account),
                namespace_labels: owners::namespace_labels(
                    cluster.namespace_labels(&pod.namespace),
                    &pod.namespace,
                ),
            },
            context,
            addrs: [family(false), family(true)],
        }
    }

    pub(super) fn host(host: &'a HostEndpoint, context: &'a CalicoContext) -> Self {
        let family = |v6: bool| {
            host.expected_ips
                .iter()
                .copied()
                .find(|ip| ip.is_ipv6() == v6)
        };
        Local {
            owner: LocalOwner::Host(host),
            context,
            addrs: [family(false), family(true)],
        }
    }

    /// Whether the endpoint side of a rule holds for the endpoint's address of each family.
    pub(super) fn holds(&self, entity: &PeerEntity, ip_version: Option<IpVersion>) -> [bool; 2] {
        [false, true].map(|v6| {
            let version_ok = match ip_version {
                None => true,
                Some(IpVersion::V4) => !v6,
                Some(IpVersion::V6) => v6,
            };
            let Some(addr) = self.addrs[usize::from(v6)] else {
                return false;
            };
            let mut owners = vec![match &self.owner {
                LocalOwner::Pod {
                    pod,
                    labels,
                    namespace_labels,
                } => Owner::Pod {
                    labels,
                    namespace: &pod.namespace,
                    namespace_labels,
                    service_account: &pod.service_account,
                },
                LocalOwner::Host(host) => Owner::Host {
                    labels: &host.labels,
                },
            }];
            owners.extend(owners::set_owners_by_address(self.context, addr));
            version_ok && owners::entity_holds(entity, |(net, _)| net.contains(&addr), &owners)
        })
    }

    /// The number of the endpoint's own port called `name` for `protocol`.
    pub(super) fn named_port(&self, protocol: crate::model::Protocol, name: &str) -> Option<u16> {
        match &self.owner {
            LocalOwner::Pod { pod, .. } => named_port(pod, protocol, name),
            LocalOwner::Host(host) => host
                .ports
                .iter()
                .find(|p| p.name == name && p.protocol.0 == protocol.number())
                .map(|p| p.port),
        }
    }

    /// A named port on the endpoint itself, for each protocol the rule can match.
    pub(super) fn named(&self, protocol: Option<calico::Protocol>, name: &str) -> Vec<PortRule> {
        let protocols = match protocol {
            Some(p) => model_protocol(p).into_iter().collect(),
            None => vec![
                crate::model::Protocol::Tcp,
                crate::model::Protocol::Udp,
                crate::model::Protocol::Sctp,
            ],
        };
        protocols
            .into_iter()
            .filter_map(|p| {
                self.named_port(p, name).map(|port| PortRule::Exact {
                    protocol: p.number(),
                    port,
                })
            })
            .collect()
    }
}
