//! The Service maps: which destinations are Service frontends, and which backends each has
//! (see `policy_common::service` for how the programs use them).
//!
//! They describe what kube-proxy does, not policy, so they are kept apart from the compiler's
//! maps and synced on their own: a new backend's pair is written before its frontend, and a
//! frontend is removed before its pairs, so a frontend in the map always has its backends.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use aya::maps::{HashMap, MapData, MapError};
use policy_common::{
    map_names,
    service::{ANY_BACKEND_PORT, BackendKey, FrontendValue, TransportAddr, frontend},
};

use super::{Datapath, DataplaneError, sync::SyncStats};
use crate::{
    compiler::{Scope, identity_addr},
    model::Cluster,
    services::service_table,
};

/// One Service frontend as kube-proxy on this node programs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendSpec {
    pub addr: IpAddr,
    /// IP protocol number (6, 17, 132).
    pub protocol: u8,
    pub port: u16,
    /// The backends kube-proxy may choose (address, target port); empty: kube-proxy rejects.
    pub backends: BTreeSet<(IpAddr, u16)>,
}

/// The contents of `PALISADE_SERVICES` and `PALISADE_SERVICE_BACKENDS`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceMaps {
    pub frontends: BTreeMap<TransportAddr, FrontendValue>,
    pub backends: BTreeSet<BackendKey>,
}

impl ServiceMaps {
    /// The maps for `frontends` on a node whose own addresses are `node_addresses`.
    pub fn build<'a>(
        frontends: impl IntoIterator<Item = &'a FrontendSpec>,
        node_addresses: &BTreeSet<IpAddr>,
    ) -> Self {
        let mut maps = Self::default();
        for spec in frontends {
            let key = transport(spec.addr, spec.port, spec.protocol);
            let mut flags = 0;
            if spec.backends.is_empty() {
                flags |= frontend::NO_BACKENDS;
            } else if spec
                .backends
                .iter()
                .all(|(addr, _)| node_addresses.contains(addr))
            {
                flags |= frontend::HOST_BACKENDS;
            }
            maps.frontends.insert(key, FrontendValue { flags });
            for (addr, port) in &spec.backends {
                maps.backends.insert(BackendKey {
                    frontend: key,
                    backend: transport(*addr, *port, spec.protocol),
                });
                // The address-only pair: a pod that is a backend may reach itself through the
                // frontend (see `policy_common::service`, hairpin).
                maps.backends.insert(BackendKey {
                    frontend: key,
                    backend: transport(*addr, ANY_BACKEND_PORT, spec.protocol),
                });
            }
        }
        maps
    }
}

/// The Service maps for what kube-proxy programs on the node of `scope` (see
/// `crate::services::service_table`): node ports captured on every address of the node.
pub fn service_maps(cluster: &Cluster, scope: &Scope) -> ServiceMaps {
    let table = service_table(cluster, scope.node_name.as_deref(), &scope.host_addrs);
    let specs: Vec<FrontendSpec> = table
        .frontends
        .iter()
        .map(|(frontend, info)| FrontendSpec {
            addr: frontend.addr,
            protocol: frontend.protocol.number(),
            port: frontend.port,
            backends: info.backends.iter().map(|b| (b.addr, b.port)).collect(),
        })
        .collect();
    let node: BTreeSet<IpAddr> = scope.host_addrs.iter().copied().collect();
    ServiceMaps::build(&specs, &node)
}

fn transport(addr: IpAddr, port: u16, protocol: u8) -> TransportAddr {
    TransportAddr {
        addr: identity_addr(addr),
        port,
        protocol,
        _pad: 0,
    }
}

/// The two maps, as the datapath holds them.
pub(super) struct ServiceMapHandles {
    pub(super) frontends: HashMap<MapData, TransportAddr, FrontendValue>,
    pub(super) backends: HashMap<MapData, BackendKey, u32>,
    /// What they hold (this agent wrote everything in them).
    pub(super) held: ServiceMaps,
}

impl Datapath {
    /// Brings the Service maps to `desired`, in the order the module documentation gives.
    pub fn sync_services(&mut self, desired: &ServiceMaps) -> Result<SyncStats, DataplaneError> {
        let handles = &mut self.services;
        let mut stats = SyncStats::default();
        let err = |operation, map| {
            move |source| DataplaneError::MapUpdate {
                operation,
                map,
                source,
            }
        };
        let new: Vec<BackendKey> = desired
            .backends
            .difference(&handles.held.backends)
            .copied()
            .collect();
        for pair in &new {
            handles
                .backends
                .insert(pair, 1, 0)
                .map_err(err("insert", map_names::SERVICE_BACKENDS))?;
            handles.held.backends.insert(*pair);
            stats.written += 1;
        }
        for (key, value) in &desired.frontends {
            if handles.held.frontends.get(key) != Some(value) {
                handles
                    .frontends
                    .insert(key, value, 0)
                    .map_err(err("insert", map_names::SERVICES))?;
                handles.held.frontends.insert(*key, *value);
                stats.written += 1;
            }
        }
        let gone: Vec<TransportAddr> = handles
            .held
            .frontends
            .keys()
            .filter(|key| !desired.frontends.contains_key(key))
            .copied()
            .collect();
        for key in gone {
            ignore_missing(handles.frontends.remove(&key))
                .map_err(err("remove", map_names::SERVICES))?;
            handles.held.frontends.remove(&key);
            stats.removed += 1;
        }
        let gone: Vec<BackendKey> = handles
            .held
            .backends
            .difference(&desired.backends)
            .copied()
            .collect();
        for pair in gone {
            ignore_missing(handles.backends.remove(&pair))
                .map_err(err("remove", map_names::SERVICE_BACKENDS))?;
            handles.held.backends.remove(&pair);
            stats.removed += 1;
        }
        Ok(stats)
    }

    /// What the Service maps hold.
    pub fn services(&self) -> &ServiceMaps {
        &self.services.held
    }
}

fn ignore_missing(result: Result<(), MapError>) -> Result<(), MapError> {
    match result {
        Err(MapError::KeyNotFound) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(addr: &str, port: u16, backends: &[(&str, u16)]) -> FrontendSpec {
        FrontendSpec {
            addr: addr.parse().expect("an address"),
            protocol: 6,
            port,
            backends: backends
                .iter()
                .map(|(a, p)| (a.parse().expect("an address"), *p))
                .collect(),
        }
    }

    #[test]
    fn frontends_are_flagged_by_where_their_backends_are() {
        let node: BTreeSet<IpAddr> = ["198.18.0.1".parse().expect("an address")].into();
        let specs = [
            spec(
                "10.96.0.10",
                53,
                &[("10.42.0.5", 5353), ("10.42.0.6", 5353)],
            ),
            spec("10.96.0.1", 443, &[("198.18.0.1", 6443)]),
            spec(
                "10.96.0.2",
                443,
                &[("198.18.0.1", 6443), ("198.18.0.2", 6443)],
            ),
            spec("10.96.0.3", 80, &[]),
        ];
        let maps = ServiceMaps::build(&specs, &node);
        let flags = |addr: &str, port| {
            maps.frontends[&transport(addr.parse().expect("an address"), port, 6)].flags
        };
        assert_eq!(flags("10.96.0.10", 53), 0);
        assert_eq!(flags("10.96.0.1", 443), frontend::HOST_BACKENDS);
        // One backend elsewhere: decided after the translation like any.
        assert_eq!(flags("10.96.0.2", 443), 0);
        assert_eq!(flags("10.96.0.3", 80), frontend::NO_BACKENDS);
        // Five (frontend, backend) pairs, each with its address-only pair.
        assert_eq!(maps.backends.len(), 10);
        assert!(maps.backends.contains(&BackendKey {
            frontend: transport("10.96.0.10".parse().expect("an address"), 53, 6),
            backend: transport("10.42.0.6".parse().expect("an address"), 5353, 6),
        }));
        assert!(maps.backends.contains(&BackendKey {
            frontend: transport("10.96.0.10".parse().expect("an address"), 53, 6),
            backend: transport(
                "10.42.0.6".parse().expect("an address"),
                ANY_BACKEND_PORT,
                6
            ),
        }));
    }
}
