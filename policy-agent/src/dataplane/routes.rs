//! Which host-side interface each endpoint address lives behind, read from the node's routes.
//!
//! A CNI routes every pod address to the pod's host-side interface with a host route (`/32`,
//! `/128`). The datapath drops packets that carry an endpoint's address on any other endpoint
//! interface, so a pod cannot send as its neighbour; this module supplies the bindings from
//! `/proc/net/route` and `/proc/net/ipv6_route` of the agent's network namespace (the kernel's
//! main routing table). The same routes tell the agent, by default, which interfaces to attach
//! to: the ones its endpoints' addresses are routed through ([`endpoint_interfaces`]).
//!
//! [`Datapath::binding`] turns routes into the [`Binding`] the agent writes endpoint entries
//! with: each address's interface, and the slot that counts the interface's packets
//! (`counter_slots`).

use std::{
    collections::{BTreeMap, BTreeSet},
    fs, io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use nix::net::if_::if_nametoindex;
use policy_common::{
    counters::Counters,
    endpoint::{EndpointKey, EndpointPolicy, NO_COUNTER_SLOT},
    map_names,
};

use super::{DataplaneError, counter_slots::CounterSlots, loader::Datapath};
use crate::compiler::{MapContents, identity_addr};

/// Host routes (`/32`, `/128`) through the interfaces `wanted` accepts: address → interface
/// name.
pub fn host_routes(wanted: &dyn Fn(&str) -> bool) -> io::Result<BTreeMap<IpAddr, String>> {
    let mut routes = parse_ipv4_routes(&fs::read_to_string("/proc/net/route")?, wanted);
    // A kernel without IPv6 has no such file: no IPv6 routes.
    match fs::read_to_string("/proc/net/ipv6_route") {
        Ok(text) => routes.extend(parse_ipv6_routes(&text, wanted)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(routes)
}

/// `/proc/net/route`: `Iface Destination Gateway Flags RefCnt Use Metric Mask ...`, addresses
/// as host-order hex of the network-order bytes.
fn parse_ipv4_routes(text: &str, wanted: &dyn Fn(&str) -> bool) -> BTreeMap<IpAddr, String> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (iface, destination, mask) = (fields.first()?, fields.get(1)?, fields.get(7)?);
            if !wanted(iface) || *mask != "FFFFFFFF" {
                return None;
            }
            let raw = u32::from_str_radix(destination, 16).ok()?;
            Some((
                IpAddr::V4(Ipv4Addr::from(raw.to_le_bytes())),
                (*iface).to_owned(),
            ))
        })
        .collect()
}

/// `/proc/net/ipv6_route`: `dest dest_len src src_len next_hop metric refcnt use flags iface`,
/// addresses as 32 hex digits, lengths as 2.
fn parse_ipv6_routes(text: &str, wanted: &dyn Fn(&str) -> bool) -> BTreeMap<IpAddr, String> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (destination, length, iface) = (fields.first()?, fields.get(1)?, fields.get(9)?);
            if !wanted(iface) || *length != "80" {
                return None;
            }
            let raw = u128::from_str_radix(destination, 16).ok()?;
            Some((IpAddr::V6(Ipv6Addr::from(raw)), (*iface).to_owned()))
        })
        .collect()
}

/// The interfaces that carry a host route to an endpoint's address: the pods' host-side
/// interfaces on a routed CNI.
pub fn endpoint_interfaces(
    maps: &MapContents,
    routes: &BTreeMap<IpAddr, String>,
) -> BTreeSet<String> {
    routes
        .iter()
        .filter(|(addr, _)| {
            maps.endpoints.contains_key(&EndpointKey {
                addr: identity_addr(**addr),
            })
        })
        .map(|(_, iface)| iface.clone())
        .collect()
}

/// Which interface each routed endpoint address is bound to, and which slot counts each such
/// interface's packets (see `counter_slots`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Binding {
    ifindex_of: BTreeMap<EndpointKey, u32>,
    slot_of: BTreeMap<u32, u32>,
}

impl Binding {
    /// The interfaces of `routes` that exist now.
    pub fn of(routes: &BTreeMap<IpAddr, String>) -> Self {
        let mut ifindex_of = BTreeMap::new();
        for (addr, iface) in routes {
            if let Ok(index) = if_nametoindex(iface.as_str()) {
                ifindex_of.insert(
                    EndpointKey {
                        addr: identity_addr(*addr),
                    },
                    index,
                );
            }
        }
        Self {
            ifindex_of,
            slot_of: BTreeMap::new(),
        }
    }

    /// The interfaces endpoint addresses are bound to.
    pub fn interfaces(&self) -> BTreeSet<u32> {
        self.ifindex_of.values().copied().collect()
    }

    /// The same binding, with each interface's counter slot.
    pub fn with_counter_slots(mut self, slots: &CounterSlots) -> Self {
        self.slot_of = self
            .interfaces()
            .into_iter()
            .map(|ifindex| (ifindex, slots.slot_of(ifindex)))
            .filter(|&(_, slot)| slot != NO_COUNTER_SLOT)
            .collect();
        self
    }

    /// A compiled endpoint entry as the map holds it. Unrouted addresses keep what the
    /// compiler gave them: unbound for pods, bound to no interface for host endpoints, and
    /// counted by ifindex.
    pub fn bind(&self, key: &EndpointKey, mut value: EndpointPolicy) -> EndpointPolicy {
        if let Some(&ifindex) = self.ifindex_of.get(key) {
            value.ifindex = ifindex;
            value.counter_slot = self
                .slot_of
                .get(&ifindex)
                .copied()
                .unwrap_or(NO_COUNTER_SLOT);
        }
        value
    }

    /// `maps` with every endpoint entry bound ([`Binding::bind`]).
    pub fn bind_all(&self, mut maps: MapContents) -> MapContents {
        for (key, value) in &mut maps.endpoints {
            *value = self.bind(key, *value);
        }
        maps
    }
}

/// `maps` with each endpoint address bound to the interface its host route goes through;
/// addresses without such a route stay unbound.
pub fn bind_endpoints(maps: &MapContents, routes: &BTreeMap<IpAddr, String>) -> MapContents {
    Binding::of(routes).bind_all(maps.clone())
}

impl Datapath {
    /// The endpoints' binding to the interfaces `routes` names (address to interface), with
    /// each interface's counter slot: slots are given to interfaces that have none (their
    /// counters zeroed first) and taken back from interfaces that are gone.
    pub fn binding(
        &mut self,
        routes: &BTreeMap<IpAddr, String>,
    ) -> Result<Binding, DataplaneError> {
        let binding = Binding::of(routes);
        let given = self.counter_slots.assign(&binding.interfaces(), |ifindex| {
            nix::net::if_::if_indextoname(ifindex).is_ok()
        });
        if let Some(&first) = given.first() {
            // The possible CPUs, counted once for every slot given.
            let cpus =
                aya::util::nr_cpus().map_err(|(_, source)| DataplaneError::ZeroCounterSlot {
                    slot: first,
                    source,
                })?;
            for slot in given {
                let zeroed = aya::maps::PerCpuValues::try_from(vec![Counters::default(); cpus])
                    .map_err(|source| DataplaneError::ZeroCounterSlot { slot, source })?;
                self.slot_counters.set(slot, zeroed, 0).map_err(|source| {
                    DataplaneError::MapUpdate {
                        operation: "zero a slot",
                        map: map_names::COUNTER_SLOTS,
                        source,
                    }
                })?;
            }
        }
        Ok(binding.with_counter_slots(&self.counter_slots))
    }

    /// `maps` with each endpoint address bound as [`Datapath::binding`] binds it.
    pub fn bind_endpoints(
        &mut self,
        maps: &MapContents,
        routes: &BTreeMap<IpAddr, String>,
    ) -> Result<MapContents, DataplaneError> {
        Ok(self.binding(routes)?.bind_all(maps.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_host_routes_through_endpoint_interfaces_only() {
        let v4 = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                  plh0\t0A002A0A\t00000000\t0005\t0\t0\t0\tFFFFFFFF\t0\t0\t0\n\
                  plh1\t00002A0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                  eth0\t0B002A0A\t00000000\t0005\t0\t0\t0\tFFFFFFFF\t0\t0\t0\n";
        let plh = |iface: &str| iface.starts_with("plh");
        let routes = parse_ipv4_routes(v4, &plh);
        assert_eq!(
            routes,
            BTreeMap::from([("10.42.0.10".parse().expect("addr"), "plh0".to_owned())])
        );
        let v6 = "fd000042000000000000000000000020 80 00000000000000000000000000000000 00 \
                  00000000000000000000000000000000 00000400 00000001 00000000 00000001     plh2\n\
                  fd000042000000000000000000000000 40 00000000000000000000000000000000 00 \
                  00000000000000000000000000000000 00000100 00000001 00000000 00000001     plh2\n";
        let routes = parse_ipv6_routes(v6, &plh);
        assert_eq!(
            routes,
            BTreeMap::from([("fd00:42::20".parse().expect("addr"), "plh2".to_owned())])
        );
    }
}
