//! What the kernel holds, read back from an agent's pins, and what it should hold: a fresh
//! compile of the datastore as the agent of that node would make it.
//!
//! After a restart the agent builds its policy maps afresh, so once it has programmed the
//! datastore the pinned maps must hold what a fresh compile holds, by the measure of
//! [`crate::leftovers`] (an ordered table may be encoded differently and decide the same):
//! anything more is a leftover of an agent killed mid-write. The split tables are read from
//! both halves (the hash holds whole keys, the trie the rest).

use std::{collections::BTreeMap, net::IpAddr, path::Path};

use anyhow::Context as _;
use aya::maps::{HashMap, LpmTrie, Map, MapData};
use policy_agent::{
    compiler::{Compiler, LpmKey, MapContents, Scope},
    dataplane::{renumber::KernelMaps, routes},
    datastore::file::FileDatastore,
};
use policy_common::{
    identity::{IdentityKey, IdentitySlots},
    map_names,
    rule::PREFIX_FULL,
};

use crate::lab::netns::Netns;

/// The prefix length of a whole identity key (an IPv6 or IPv4-mapped address).
const IDENTITY_KEY_BITS: u32 = 128;

/// The policy maps pinned under `pin_dir`, as the programs read them: identities in the
/// slot of the numbering the endpoints are stamped with (a sync that finished stamps them all
/// alike), endpoints unstamped, as the compiler writes them.
pub fn read(pin_dir: &Path) -> anyhow::Result<MapContents> {
    let open = |name: &str| {
        let path = pin_dir.join(name);
        MapData::from_pin(&path).with_context(|| format!("opening {}", path.display()))
    };
    let mut kernel = KernelMaps::default();
    let endpoints: HashMap<MapData, _, _> =
        HashMap::try_from(Map::HashMap(open(map_names::ENDPOINTS)?)).context("the endpoint map")?;
    for entry in endpoints.iter() {
        let (key, value) = entry.context("reading the endpoint map")?;
        kernel.endpoints.insert(key, value);
    }
    kernel.identities = split::<IdentityKey, IdentitySlots>(
        open(map_names::ADDRESSES)?,
        open(map_names::IDENTITIES)?,
        IDENTITY_KEY_BITS,
    )?;
    kernel.rules = split(
        open(map_names::RULES_EXACT)?,
        open(map_names::RULES)?,
        PREFIX_FULL,
    )?;
    let numbering = kernel
        .endpoints
        .values()
        .next()
        .map_or(0, |value| value.ingress.numbering);
    Ok(kernel.view(numbering))
}

fn split<K: aya::Pod + Ord, V: aya::Pod>(
    exact: MapData,
    prefixes: MapData,
    full: u32,
) -> anyhow::Result<BTreeMap<LpmKey<K>, V>> {
    let mut out = BTreeMap::new();
    let exact: HashMap<MapData, K, V> =
        HashMap::try_from(Map::HashMap(exact)).context("a split table's hash")?;
    for entry in exact.iter() {
        let (data, value) = entry.context("reading a split table's hash")?;
        out.insert(
            LpmKey {
                prefix_len: full,
                data,
            },
            value,
        );
    }
    let prefixes: LpmTrie<MapData, K, V> =
        LpmTrie::try_from(Map::LpmTrie(prefixes)).context("a split table's trie")?;
    for entry in prefixes.iter() {
        let (key, value) = entry.context("reading a split table's trie")?;
        out.insert(
            LpmKey {
                prefix_len: key.prefix_len(),
                data: key.data(),
            },
            value,
        );
    }
    Ok(out)
}

/// A fresh compile of the datastore in `datastore` for the agent in `node` (every pod local,
/// as in a one-node lab), its endpoints bound to the interfaces `routes` (address to
/// interface) names there. The routes are given rather than read: `/proc/net/route` shows the
/// namespace of the process's main thread, not of the thread that entered `node`.
pub fn expected(
    datastore: &Path,
    node: &Netns,
    routes: &BTreeMap<IpAddr, String>,
) -> anyhow::Result<MapContents> {
    let snapshot = FileDatastore::new(datastore)
        .load()
        .with_context(|| format!("reading {}", datastore.display()))?;
    node.run(|| -> anyhow::Result<MapContents> {
        let scope = Scope {
            node_name: None,
            host_addrs: host_addresses()?,
        };
        let compiled = Compiler::new().compile(&snapshot.cluster, &scope);
        // Binding looks the interfaces up by name in the calling thread's namespace.
        Ok(routes::bind_endpoints(&compiled.maps, routes))
    })?
}

/// The addresses of the calling thread's namespace, as the agent lists its node's.
fn host_addresses() -> anyhow::Result<Vec<IpAddr>> {
    let mut addrs: Vec<IpAddr> = nix::ifaddrs::getifaddrs()
        .context("listing the node's addresses")?
        .filter_map(|ifaddr| {
            let address = ifaddr.address?;
            address
                .as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| address.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        })
        .collect();
    addrs.sort();
    addrs.dedup();
    Ok(addrs)
}

/// How two map contents differ, per map: (only in `have`, only in `want`, different values).
/// Endpoints' counter slots are the running agent's to give, not a compile's: `want`'s are
/// taken from `have`.
pub fn differences(have: &MapContents, want: &MapContents) -> Vec<String> {
    let mut out = Vec::new();
    let mut want_endpoints = want.endpoints.clone();
    for (key, value) in &mut want_endpoints {
        if let Some(had) = have.endpoints.get(key) {
            value.counter_slot = had.counter_slot;
        }
    }
    diff("endpoints", &have.endpoints, &want_endpoints, &mut out);
    diff("identities", &have.identities, &want.identities, &mut out);
    diff("rules", &have.rules, &want.rules, &mut out);
    out
}

fn diff<K: Ord + std::fmt::Debug, V: PartialEq + std::fmt::Debug>(
    map: &str,
    have: &BTreeMap<K, V>,
    want: &BTreeMap<K, V>,
    out: &mut Vec<String>,
) {
    for (key, value) in have {
        match want.get(key) {
            None => out.push(format!("{map}: leftover {key:?} = {value:?}")),
            Some(wanted) if wanted != value => {
                out.push(format!("{map}: {key:?} is {value:?}, want {wanted:?}"));
            }
            Some(_) => {}
        }
    }
    for (key, value) in want {
        if !have.contains_key(key) {
            out.push(format!("{map}: missing {key:?} = {value:?}"));
        }
    }
}
