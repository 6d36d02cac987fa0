//! Loading the embedded eBPF object and pinning its maps.

use std::{
    collections::BTreeMap,
    fs, io,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf,
    maps::{Array, HashMap, LpmTrie, MapData, PerCpuHashMap},
    programs::{SchedClassifier, tc::SchedClassifierLinkId},
};
use policy_common::{
    conntrack::{ConntrackKey, ConntrackValue},
    counters::Counters,
    endpoint::{EndpointKey, EndpointPolicy},
    identity::{IdentityKey, IdentityValue},
    map_names, program_names,
    rule::{RuleKey, RuleValue},
};
use tracing::info;

use super::DataplaneError;

/// The object `build.rs` produced with aya-build.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/policy-ebpf"));

/// The loaded datapath: programs, maps, and where the programs are attached.
pub struct Datapath {
    /// Owns the programs; dropping it detaches them.
    pub(super) ebpf: Ebpf,
    pub(super) endpoints: HashMap<MapData, EndpointKey, EndpointPolicy>,
    pub(super) identities: LpmTrie<MapData, IdentityKey, IdentityValue>,
    pub(super) rules: LpmTrie<MapData, RuleKey, RuleValue>,
    pub(super) conntrack: HashMap<MapData, ConntrackKey, ConntrackValue>,
    pub(super) fragments: HashMap<
        MapData,
        policy_common::fragment::FragmentKey,
        policy_common::fragment::FragmentValue,
    >,
    pub(super) counters: PerCpuHashMap<MapData, u32, Counters>,
    pub(super) config: Array<MapData, u32>,
    /// The policy generation last written to `PALISADE_CONFIG`.
    pub(super) generation: u32,
    /// Interface name to (ifindex, links), so a re-created interface is attached again.
    pub(super) attached: BTreeMap<String, (u32, Vec<SchedClassifierLinkId>)>,
    pin_dir: PathBuf,
}

impl Datapath {
    /// Loads the programs and creates fresh maps pinned under `pin_dir` (one directory per
    /// agent instance; pins left there by an earlier run are replaced).
    pub fn load(pin_dir: &Path) -> Result<Self, DataplaneError> {
        if EBPF_OBJECT.is_empty() {
            return Err(DataplaneError::NoObject);
        }
        let mut ebpf = Ebpf::load(EBPF_OBJECT).map_err(DataplaneError::Load)?;
        for name in [program_names::FROM_ENDPOINT, program_names::TO_ENDPOINT] {
            classifier_mut(&mut ebpf, name)?
                .load()
                .map_err(|source| DataplaneError::Program { name, source })?;
        }

        fs::create_dir_all(pin_dir).map_err(|source| DataplaneError::PinDir {
            path: pin_dir.to_owned(),
            source,
        })?;
        for name in map_names::ALL {
            let path = pin_dir.join(name);
            match fs::remove_file(&path) {
                Ok(()) => info!(path = %path.display(), "replaced a stale pin"),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(DataplaneError::PinDir { path, source }),
            }
            let map = ebpf
                .map(name)
                .ok_or(DataplaneError::Missing { kind: "map", name })?;
            map.pin(&path)
                .map_err(|source| DataplaneError::Pin { name, path, source })?;
        }

        let endpoints = typed_map(&mut ebpf, map_names::ENDPOINTS)?;
        let identities = typed_map(&mut ebpf, map_names::IDENTITIES)?;
        let rules = typed_map(&mut ebpf, map_names::RULES)?;
        let conntrack = typed_map(&mut ebpf, map_names::CONNTRACK)?;
        let fragments = typed_map(&mut ebpf, map_names::FRAGMENTS)?;
        let counters = typed_map(&mut ebpf, map_names::COUNTERS)?;
        let config = typed_map(&mut ebpf, map_names::CONFIG)?;
        info!(pin_dir = %pin_dir.display(), "datapath loaded, maps pinned");
        Ok(Self {
            ebpf,
            endpoints,
            identities,
            rules,
            conntrack,
            fragments,
            counters,
            config,
            generation: 0,
            attached: BTreeMap::new(),
            pin_dir: pin_dir.to_owned(),
        })
    }

    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// The tracked flows (original direction) and which checks allowed them.
    pub fn conntrack_entries(&self) -> Result<Vec<(ConntrackKey, ConntrackValue)>, DataplaneError> {
        self.conntrack
            .iter()
            .collect::<Result<_, _>>()
            .map_err(|source| DataplaneError::MapUpdate {
                operation: "iterate",
                map: map_names::CONNTRACK,
                source,
            })
    }

    /// How many connections are tracked (entries in `PALISADE_CONNTRACK`).
    pub fn conntrack_occupancy(&self) -> Result<usize, DataplaneError> {
        let mut entries = 0;
        for key in self.conntrack.keys() {
            key.map_err(|source| DataplaneError::MapUpdate {
                operation: "iterate",
                map: map_names::CONNTRACK,
                source,
            })?;
            entries += 1;
        }
        Ok(entries)
    }

    /// Packet counts per endpoint interface (ifindex), summed over CPUs.
    pub fn counters(&self) -> Result<BTreeMap<u32, Counters>, DataplaneError> {
        let mut totals = BTreeMap::new();
        for entry in self.counters.iter() {
            let (ifindex, per_cpu) = entry.map_err(|source| DataplaneError::MapUpdate {
                operation: "iterate",
                map: map_names::COUNTERS,
                source,
            })?;
            let total: &mut Counters = totals.entry(ifindex).or_default();
            for cpu in per_cpu.iter() {
                total.allowed += cpu.allowed;
                total.denied += cpu.denied;
                total.malformed += cpu.malformed;
            }
        }
        Ok(totals)
    }

    /// Packet counts per attached interface, by name.
    pub fn packet_counts(&self) -> Result<BTreeMap<String, Counters>, DataplaneError> {
        let by_index = self.counters()?;
        Ok(self
            .attached
            .iter()
            .filter_map(|(name, (index, _))| by_index.get(index).map(|c| (name.clone(), *c)))
            .collect())
    }

    /// Forgets every recorded first-fragment verdict.
    pub fn clear_fragments(&mut self) -> Result<(), DataplaneError> {
        clear(&mut self.fragments, map_names::FRAGMENTS)
    }

    /// Forgets every tracked flow: replies are checked against policy again until their
    /// connections are re-established.
    pub fn clear_conntrack(&mut self) -> Result<(), DataplaneError> {
        clear(&mut self.conntrack, map_names::CONNTRACK)
    }
}

/// Removes every entry of a hash map (entries removed meanwhile by the kernel are fine).
fn clear<K: aya::Pod, V: aya::Pod>(
    map: &mut HashMap<MapData, K, V>,
    name: &'static str,
) -> Result<(), DataplaneError> {
    let keys: Vec<K> =
        map.keys()
            .collect::<Result<_, _>>()
            .map_err(|source| DataplaneError::MapUpdate {
                operation: "iterate",
                map: name,
                source,
            })?;
    for key in keys {
        match map.remove(&key) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
            Err(source) => {
                return Err(DataplaneError::MapUpdate {
                    operation: "remove",
                    map: name,
                    source,
                });
            }
        }
    }
    Ok(())
}

/// One of our tc programs, by name.
pub(super) fn classifier<'a>(
    ebpf: &'a Ebpf,
    name: &'static str,
) -> Result<&'a SchedClassifier, DataplaneError> {
    ebpf.program(name)
        .ok_or(DataplaneError::Missing {
            kind: "program",
            name,
        })?
        .try_into()
        .map_err(|source| DataplaneError::Program { name, source })
}

pub(super) fn classifier_mut<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut SchedClassifier, DataplaneError> {
    ebpf.program_mut(name)
        .ok_or(DataplaneError::Missing {
            kind: "program",
            name,
        })?
        .try_into()
        .map_err(|source| DataplaneError::Program { name, source })
}

/// Takes a map out of the object as the typed handle `T` (HashMap, LpmTrie, ...).
fn typed_map<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, DataplaneError>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf
        .take_map(name)
        .ok_or(DataplaneError::Missing { kind: "map", name })?;
    T::try_from(map).map_err(|source| DataplaneError::MapType { name, source })
}
