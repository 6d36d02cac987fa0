//! Naming an address as the workload behind it, from the agent's view of the cluster.
//!
//! In order: a pod that owns the address (a running pod with an address of its own), a host
//! endpoint that expects it, the network set with the longest prefix containing it (Calico's
//! GlobalNetworkSet / NetworkSet: how a Calico user names external peers), else the address
//! itself. Built once per applied state; each lookup is a hash lookup, then a walk of the
//! network sets' prefixes from the longest (bounded by 129 prefix lengths).

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    net::IpAddr,
};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::{model::Cluster, services::ServiceTable};

/// What a flow record names as one end of a flow.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Workload {
    Pod {
        namespace: String,
        name: String,
    },
    HostEndpoint {
        name: String,
    },
    /// A GlobalNetworkSet (no namespace) or a NetworkSet.
    NetworkSet {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        name: String,
    },
    /// Nothing the cluster names: the address.
    Address {
        address: IpAddr,
    },
}

impl Workload {
    /// The namespace, for filters (a pod's or a namespaced network set's).
    pub fn namespace(&self) -> Option<&str> {
        match self {
            Self::Pod { namespace, .. } => Some(namespace),
            Self::NetworkSet { namespace, .. } => namespace.as_deref(),
            Self::HostEndpoint { .. } | Self::Address { .. } => None,
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pod { namespace, name } => write!(f, "{namespace}/{name}"),
            Self::HostEndpoint { name } => write!(f, "hep/{name}"),
            Self::NetworkSet {
                namespace: Some(namespace),
                name,
            } => write!(f, "networkset/{namespace}/{name}"),
            Self::NetworkSet {
                namespace: None,
                name,
            } => write!(f, "globalnetworkset/{name}"),
            Self::Address { address } => write!(f, "{address}"),
        }
    }
}

/// A Service port a flow addressed: what Calico's flow logs call `dest_service_namespace`,
/// `dest_service_name` and `dest_service_port` (the port's name, else its number).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
    pub port: String,
}

impl fmt::Display for ServiceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "service/{}/{}:{}", self.namespace, self.name, self.port)
    }
}

/// Addresses to workloads, and frontends to Services, for one state of the cluster.
#[derive(Debug, Default, Clone)]
pub struct Directory {
    exact: HashMap<IpAddr, Workload>,
    /// Network sets' prefixes, longest first; ties by name (a stable answer).
    sets: Vec<(IpNet, Workload)>,
    /// (address, protocol, port) of each frontend kube-proxy programs on this node.
    services: HashMap<(IpAddr, u8, u16), ServiceRef>,
}

impl Directory {
    pub fn of(cluster: &Cluster) -> Self {
        let mut exact = HashMap::new();
        for endpoint in cluster.calico.host_endpoints.values() {
            for ip in &endpoint.expected_ips {
                exact.insert(
                    *ip,
                    Workload::HostEndpoint {
                        name: endpoint.name.clone(),
                    },
                );
            }
        }
        // Pods last: a pod's own address names the pod, whatever else claims it.
        for pod in cluster.pods.values().filter(|p| p.is_endpoint()) {
            for ip in &pod.ips {
                exact.insert(
                    *ip,
                    Workload::Pod {
                        namespace: pod.namespace.clone(),
                        name: pod.name.clone(),
                    },
                );
            }
        }
        let mut by_net: BTreeMap<(std::cmp::Reverse<u8>, IpNet, Workload), ()> = BTreeMap::new();
        for set in cluster.calico.network_sets.values() {
            let workload = Workload::NetworkSet {
                namespace: set.namespace.clone(),
                name: set.name.clone(),
            };
            for net in &set.nets {
                by_net.insert(
                    (
                        std::cmp::Reverse(net.prefix_len()),
                        net.trunc(),
                        workload.clone(),
                    ),
                    (),
                );
            }
        }
        let sets = by_net
            .into_keys()
            .map(|(_, net, workload)| (net, workload))
            .collect();
        Self {
            exact,
            sets,
            services: HashMap::new(),
        }
    }

    /// Names the frontends of `table` (what kube-proxy programs on this node: cluster IPs,
    /// node ports, external addresses) as their Services.
    pub fn with_services(mut self, table: &ServiceTable) -> Self {
        self.services = table
            .frontends
            .iter()
            .map(|(frontend, info)| {
                let (namespace, name) = info.service.clone();
                let port = if info.port_name.is_empty() {
                    frontend.port.to_string()
                } else {
                    info.port_name.clone()
                };
                (
                    (frontend.addr, frontend.protocol.number(), frontend.port),
                    ServiceRef {
                        namespace,
                        name,
                        port,
                    },
                )
            })
            .collect();
        self
    }

    /// The Service whose frontend is `address`, `protocol`, `port`.
    pub fn service(&self, address: IpAddr, protocol: u8, port: u16) -> Option<ServiceRef> {
        self.services.get(&(address, protocol, port)).cloned()
    }

    /// The workload behind `address`.
    pub fn name(&self, address: IpAddr) -> Workload {
        if let Some(workload) = self.exact.get(&address) {
            return workload.clone();
        }
        self.sets
            .iter()
            .find(|(net, _)| net.contains(&address))
            .map_or(Workload::Address { address }, |(_, workload)| {
                workload.clone()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datastore::file::load_for_test;

    const CLUSTER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {containers: [{name: web, image: nginx}]}
status: {podIP: 10.42.0.20}
---
apiVersion: v1
kind: Pod
metadata: {name: done, namespace: shop}
spec: {containers: [{name: c, image: busybox}]}
status: {phase: Succeeded, podIP: 10.42.0.21}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: internet}
spec: {nets: [0.0.0.0/0]}
---
apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata: {name: partners, namespace: shop}
spec: {nets: [192.0.2.0/24, 10.42.0.0/16]}
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: node1-eth0}
spec: {node: node1, interfaceName: eth0, expectedIPs: [10.0.0.1]}
"#;

    fn directory() -> Directory {
        Directory::of(&load_for_test("workloads", CLUSTER).cluster)
    }

    #[test]
    fn names_pods_host_endpoints_sets_then_addresses() {
        let directory = directory();
        let name = |a: &str| directory.name(a.parse().expect("an address")).to_string();
        assert_eq!(name("10.42.0.20"), "shop/web");
        // A finished pod no longer owns its address: the longest set containing it names it.
        assert_eq!(name("10.42.0.21"), "networkset/shop/partners");
        assert_eq!(name("10.0.0.1"), "hep/node1-eth0");
        assert_eq!(name("192.0.2.7"), "networkset/shop/partners");
        assert_eq!(name("198.51.100.1"), "globalnetworkset/internet");
        assert_eq!(name("2001:db8::1"), "2001:db8::1");
    }
}
