//! Loading the embedded eBPF object and pinning its maps.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, MapInfo, PerCpuArray, PerCpuHashMap},
    programs::SchedClassifier,
};
use policy_common::{
    capacity, config,
    conntrack::{ConntrackKey, ConntrackValue},
    counters::Counters,
    endpoint::{EndpointKey, EndpointPolicy},
    identity::{IdentityKey, IdentitySlots},
    map_names, program_names,
    rule::{PREFIX_FULL, RuleKey, RuleValue},
    rule_hits::{RuleHitKey, RuleHits},
    service::{HairpinKey, TransportAddr},
};

/// The prefix length of a whole identity key: an IPv6 (or IPv4-mapped) address.
const IDENTITY_KEY_BITS: u32 = 128;
use tracing::{info, warn};

use super::{
    DataplaneError,
    counter_slots::CounterSlots,
    pins::{AttachedLink, LINKS_DIR, Role, STAGING_DIR, remove_pin},
    services::ServiceMapHandles,
    split_table::SplitTable,
    verifier,
};
use crate::compiler::MapContents;

/// The object `build.rs` produced with aya-build.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/policy-ebpf"));

/// How many entries the policy maps can hold (`run --rule-capacity`, `--identity-capacity`).
/// Each is a hash (preallocated: its capacity costs memory up front) and a trie (allocated as
/// entries are added).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacities {
    /// `PALISADE_RULES_EXACT` and `PALISADE_RULES`, each.
    pub rules: u32,
    /// `PALISADE_ADDRESSES` and `PALISADE_IDENTITIES`, each.
    pub identities: u32,
}

impl Default for Capacities {
    fn default() -> Self {
        Self {
            rules: capacity::RULES,
            identities: capacity::IDENTITIES,
        }
    }
}

impl Capacities {
    /// Whether compiled maps fit, before any of them is written: otherwise an error naming the
    /// map, what it needs and the option that raises it (and the maps keep what they hold).
    pub fn check(&self, maps: &MapContents) -> Result<(), DataplaneError> {
        check_split(
            maps.rules.len(),
            || {
                maps.rules
                    .keys()
                    .filter(|key| key.prefix_len == PREFIX_FULL)
                    .count()
            },
            self.rules,
            (map_names::RULES_EXACT, map_names::RULES),
            "--rule-capacity",
        )?;
        check_split(
            maps.identities.len(),
            || {
                maps.identities
                    .keys()
                    .filter(|key| key.prefix_len == IDENTITY_KEY_BITS)
                    .count()
            },
            self.identities,
            (map_names::ADDRESSES, map_names::IDENTITIES),
            "--identity-capacity",
        )
    }
}

/// A table split over a hash (whole keys) and a trie (the rest), each of `capacity`: counting
/// the whole keys only when the total does not obviously fit.
fn check_split(
    total: usize,
    whole: impl FnOnce() -> usize,
    capacity: u32,
    (hash, trie): (&'static str, &'static str),
    option: &'static str,
) -> Result<(), DataplaneError> {
    let limit = capacity as usize;
    if total <= limit {
        return Ok(());
    }
    let whole = whole();
    for (map, needed) in [(hash, whole), (trie, total - whole)] {
        if needed > limit {
            return Err(DataplaneError::Capacity {
                map,
                needed,
                capacity,
                option,
            });
        }
    }
    Ok(())
}

/// The loaded datapath: programs, maps, and where the programs are attached.
pub struct Datapath {
    /// What the policy maps were created to hold.
    pub(super) capacities: Capacities,
    /// Owns the programs (their links are taken out and pinned, so dropping it detaches
    /// nothing).
    pub(super) ebpf: Ebpf,
    pub(super) endpoints: HashMap<MapData, EndpointKey, EndpointPolicy>,
    /// `PALISADE_ADDRESSES` and `PALISADE_IDENTITIES`.
    pub(super) identities: SplitTable<IdentityKey, IdentitySlots>,
    /// `PALISADE_RULES_EXACT` and `PALISADE_RULES`.
    pub(super) rules: SplitTable<RuleKey, RuleValue>,
    pub(super) conntrack: HashMap<MapData, ConntrackKey, ConntrackValue>,
    pub(super) fragments: HashMap<
        MapData,
        policy_common::fragment::FragmentKey,
        policy_common::fragment::FragmentValue,
    >,
    pub(super) counters: PerCpuHashMap<MapData, u32, Counters>,
    /// `PALISADE_COUNTER_SLOTS`, and which interface each slot counts.
    pub(super) slot_counters: PerCpuArray<MapData, Counters>,
    pub(super) counter_slots: CounterSlots,
    pub(super) rule_hits: PerCpuHashMap<MapData, RuleHitKey, RuleHits>,
    pub(super) flow_budget: PerCpuArray<MapData, policy_common::flow::FlowBudget>,
    pub(super) config: Array<MapData, u32>,
    /// `PALISADE_SERVICES` and `PALISADE_SERVICE_BACKENDS`.
    pub(super) services: ServiceMapHandles,
    /// `PALISADE_FLOWS`, until a reader takes it ([`Datapath::take_flows`]).
    pub(super) flows: Option<aya::maps::RingBuf<MapData>>,
    /// The policy generation last written to `PALISADE_CONFIG`.
    pub(super) generation: u32,
    /// The identity numbering endpoints are stamped with (see `renumber`).
    pub(super) numbering: u32,
    /// A renumbering has switched some endpoints to `numbering` and not finished.
    pub(super) switching: bool,
    /// Map writes to fail on purpose (tests only, see `fault`).
    pub(super) faults: super::fault::WriteFaults,
    /// Interfaces whose attachment fails on purpose (see [`super::fault::FAIL_ATTACH_ENV`]).
    pub(super) fail_attach: Option<super::fault::AttachFaults>,
    /// Interface name to (ifindex, pinned links), so a re-created interface is attached again.
    pub(super) attached: BTreeMap<String, (u32, Role, Vec<AttachedLink>)>,
    /// Host endpoints' interfaces: attached with the host programs (see
    /// [`Datapath::set_host_interfaces`]).
    pub(super) host_interfaces: std::collections::BTreeSet<String>,
    /// The policy maps wait in the staging directory until the first attach has replaced the
    /// previous agent's programs (see [`Datapath::load`]).
    pub(super) policy_maps_staged: bool,
    pub(super) pin_dir: PathBuf,
    /// Each program loaded, with what it cost the verifier.
    pub(super) programs: Vec<verifier::ProgramLoad>,
}

/// Maps a restarted agent takes over from the previous one as they are: tracked connections
/// (and fragments, and counts) outlive a restart, so established connections keep working.
/// They hold addresses and ports, none of the compiler's numbers. Each with the layout this
/// build gives it, which a previous agent's pin must have to be reused.
const KEPT_MAPS: [KeptMap; 8] = [
    KeptMap {
        name: map_names::CONNTRACK,
        key_size: size_of::<ConntrackKey>(),
        value_size: size_of::<ConntrackValue>(),
        max_entries: capacity::CONNTRACK,
    },
    KeptMap {
        name: map_names::FRAGMENTS,
        key_size: size_of::<policy_common::fragment::FragmentKey>(),
        value_size: size_of::<policy_common::fragment::FragmentValue>(),
        max_entries: capacity::FRAGMENTS,
    },
    KeptMap {
        name: map_names::COUNTERS,
        key_size: size_of::<u32>(),
        value_size: size_of::<Counters>(),
        max_entries: capacity::COUNTERS,
    },
    // Which interface each slot counts is read back from the previous agent's endpoint
    // entries (`previous_counter_slots`).
    KeptMap {
        name: map_names::COUNTER_SLOTS,
        key_size: size_of::<u32>(),
        value_size: size_of::<Counters>(),
        max_entries: capacity::COUNTER_SLOTS,
    },
    // Connection state of flows to Services, like the connections themselves.
    KeptMap {
        name: map_names::SERVICE_PENDING,
        key_size: size_of::<TransportAddr>(),
        value_size: size_of::<TransportAddr>(),
        max_entries: capacity::SERVICE_PENDING,
    },
    KeptMap {
        name: map_names::SERVICE_FLOWS,
        key_size: size_of::<ConntrackKey>(),
        value_size: size_of::<TransportAddr>(),
        max_entries: capacity::SERVICE_FLOWS,
    },
    KeptMap {
        name: map_names::SERVICE_HAIRPIN_PENDING,
        key_size: size_of::<HairpinKey>(),
        value_size: size_of::<u32>(),
        max_entries: capacity::SERVICE_HAIRPIN_PENDING,
    },
    KeptMap {
        name: map_names::SERVICE_HAIRPINS,
        key_size: size_of::<ConntrackKey>(),
        value_size: size_of::<TransportAddr>(),
        max_entries: capacity::SERVICE_HAIRPINS,
    },
];

struct KeptMap {
    name: &'static str,
    key_size: usize,
    value_size: usize,
    max_entries: u32,
}

/// Maps every agent builds afresh: its compiler numbers tables and identities from scratch,
/// so writing them into the previous agent's maps would briefly mix two numberings.
/// The flow-event ring and its budget go with them: the old programs write the old ring until
/// they are detached, and `policy-agent flows` reads whichever is pinned. So do the rule
/// counters, keyed by table numbers.
const POLICY_MAPS: [&str; 11] = [
    map_names::ENDPOINTS,
    map_names::IDENTITIES,
    map_names::ADDRESSES,
    map_names::RULES,
    map_names::RULES_EXACT,
    map_names::CONFIG,
    map_names::FLOWS,
    map_names::FLOW_BUDGET,
    map_names::RULE_HITS,
    map_names::SERVICES,
    map_names::SERVICE_BACKENDS,
];

impl Datapath {
    /// Loads the programs and their maps, pinned under `pin_dir` (one directory per agent
    /// instance).
    ///
    /// A restart is make-before-break. The kept maps (connections, fragments, counters) are
    /// reused when the pins of a previous agent have the same layout, and recreated when not
    /// (an upgrade that changed them). The policy maps are new: pinned under
    /// `pin_dir/staging` until [`Datapath::attach_interfaces`] has replaced every previous
    /// link, then renamed over the old pins, which frees the old maps. The generation
    /// continues past the previous agent's, so every connection it tracked is checked again
    /// against the new policy at its next packet.
    pub fn load(pin_dir: &Path) -> Result<Self, DataplaneError> {
        Self::load_with(pin_dir, Capacities::default())
    }

    /// [`Datapath::load`], with policy maps of these capacities.
    pub fn load_with(pin_dir: &Path, capacities: Capacities) -> Result<Self, DataplaneError> {
        if EBPF_OBJECT.is_empty() {
            return Err(DataplaneError::NoObject);
        }
        let staging = pin_dir.join(STAGING_DIR);
        for dir in [pin_dir, staging.as_path(), &pin_dir.join(LINKS_DIR)] {
            fs::create_dir_all(dir).map_err(|source| DataplaneError::PinDir {
                path: dir.to_owned(),
                source,
            })?;
        }
        clear_staging(&staging)?;
        let mut loader = EbpfLoader::new();
        loader
            .map_max_entries(map_names::RULES, capacities.rules)
            .map_max_entries(map_names::RULES_EXACT, capacities.rules)
            .map_max_entries(map_names::IDENTITIES, capacities.identities)
            .map_max_entries(map_names::ADDRESSES, capacities.identities);
        for map in &KEPT_MAPS {
            let path = pin_dir.join(map.name);
            discard_if_incompatible(&path, map)?;
            loader.map_pin_path(map.name, path);
        }
        let previous_generation = previous_generation(&pin_dir.join(map_names::CONFIG));
        let counter_slots = CounterSlots::taken_over(
            capacity::COUNTER_SLOTS,
            previous_counter_slots(&pin_dir.join(map_names::ENDPOINTS)),
        );
        let mut ebpf = loader.load(EBPF_OBJECT).map_err(DataplaneError::Load)?;
        // The host endpoints' programs are loaded when a host endpoint's interface is first
        // attached: most nodes have none, and each program costs the verifier seconds.
        let programs = [
            program_names::FROM_ENDPOINT,
            program_names::TO_ENDPOINT,
            program_names::AFTER_NAT,
        ]
        .into_iter()
        .map(|name| verifier::load_classifier(&mut ebpf, name))
        .collect::<Result<Vec<_>, _>>()?;

        // With no previous agent's policy maps there is nothing to replace: pin in place.
        let policy_maps_staged = POLICY_MAPS.iter().any(|name| pin_dir.join(name).exists());
        let pin_to = if policy_maps_staged {
            staging.as_path()
        } else {
            pin_dir
        };
        for name in POLICY_MAPS {
            let path = pin_to.join(name);
            remove_pin(&path)?;
            let map = ebpf
                .map(name)
                .ok_or(DataplaneError::Missing { kind: "map", name })?;
            map.pin(&path)
                .map_err(|source| DataplaneError::Pin { name, path, source })?;
        }

        let mut datapath = Self {
            capacities,
            endpoints: typed_map(&mut ebpf, map_names::ENDPOINTS)?,
            identities: SplitTable::new(
                (
                    typed_map(&mut ebpf, map_names::ADDRESSES)?,
                    map_names::ADDRESSES,
                ),
                (
                    typed_map(&mut ebpf, map_names::IDENTITIES)?,
                    map_names::IDENTITIES,
                ),
                IDENTITY_KEY_BITS,
            ),
            rules: SplitTable::new(
                (
                    typed_map(&mut ebpf, map_names::RULES_EXACT)?,
                    map_names::RULES_EXACT,
                ),
                (typed_map(&mut ebpf, map_names::RULES)?, map_names::RULES),
                PREFIX_FULL,
            ),
            conntrack: typed_map(&mut ebpf, map_names::CONNTRACK)?,
            fragments: typed_map(&mut ebpf, map_names::FRAGMENTS)?,
            counters: typed_map(&mut ebpf, map_names::COUNTERS)?,
            slot_counters: typed_map(&mut ebpf, map_names::COUNTER_SLOTS)?,
            counter_slots,
            rule_hits: typed_map(&mut ebpf, map_names::RULE_HITS)?,
            flow_budget: typed_map(&mut ebpf, map_names::FLOW_BUDGET)?,
            config: typed_map(&mut ebpf, map_names::CONFIG)?,
            services: ServiceMapHandles {
                frontends: typed_map(&mut ebpf, map_names::SERVICES)?,
                backends: typed_map(&mut ebpf, map_names::SERVICE_BACKENDS)?,
                held: Default::default(),
            },
            flows: Some(typed_map(&mut ebpf, map_names::FLOWS)?),
            ebpf,
            generation: previous_generation.unwrap_or(0),
            numbering: 0,
            switching: false,
            faults: Default::default(),
            fail_attach: None,
            attached: BTreeMap::new(),
            host_interfaces: Default::default(),
            policy_maps_staged,
            pin_dir: pin_dir.to_owned(),
            programs,
        };
        if let Some(generation) = previous_generation {
            datapath.bump_generation()?;
            info!(
                previous_generation = generation,
                "taking over from a previous agent: tracked connections kept, rechecked"
            );
        }
        info!(pin_dir = %pin_dir.display(), "datapath loaded, maps pinned");
        Ok(datapath)
    }

    /// Renames the staged policy maps over the previous agent's pins (once every interface
    /// runs the new programs): the old maps are freed with their last reference.
    pub(super) fn publish_policy_maps(&mut self) -> Result<(), DataplaneError> {
        if !self.policy_maps_staged {
            return Ok(());
        }
        for name in POLICY_MAPS {
            let from = self.pin_dir.join(STAGING_DIR).join(name);
            let to = self.pin_dir.join(name);
            fs::rename(&from, &to).map_err(|source| DataplaneError::PinDir { path: to, source })?;
        }
        self.policy_maps_staged = false;
        info!("policy maps published; the previous agent's are released");
        Ok(())
    }

    /// Loads a program into the kernel unless it already is.
    pub(super) fn ensure_loaded(&mut self, name: &'static str) -> Result<(), DataplaneError> {
        if classifier_mut(&mut self.ebpf, name)?.fd().is_err() {
            let load = verifier::load_classifier(&mut self.ebpf, name)?;
            self.programs.push(load);
        }
        Ok(())
    }

    /// The programs loaded so far, with what each cost the verifier.
    pub fn programs(&self) -> &[verifier::ProgramLoad] {
        &self.programs
    }

    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// The reader of this datapath's flow events (once; `policy-agent flows` opens the pin
    /// instead).
    pub fn take_flows(&mut self) -> Option<crate::flows::FlowReader> {
        self.flows.take().map(crate::flows::FlowReader::new)
    }

    /// Whether every denied packet policy decides writes a flow event, or only those of
    /// Calico `Log` rules.
    pub fn set_log_denies(&mut self, on: bool) -> Result<(), DataplaneError> {
        self.set_events(config::events::DENIES, on, "setting log-denies")
    }

    /// Whether every packet policy decides writes a flow event, allowed or not (for the
    /// agent's flow records).
    pub fn set_flow_events(&mut self, on: bool) -> Result<(), DataplaneError> {
        self.set_events(config::events::FLOWS, on, "setting flow events")
    }

    /// Sets or clears `bit` of the `EVENTS` slot, keeping the others.
    fn set_events(
        &mut self,
        bit: u32,
        on: bool,
        operation: &'static str,
    ) -> Result<(), DataplaneError> {
        let map_err = |source| DataplaneError::MapUpdate {
            operation,
            map: map_names::CONFIG,
            source,
        };
        let asked = self.config.get(&config::EVENTS, 0).map_err(map_err)?;
        let asked = if on { asked | bit } else { asked & !bit };
        self.config.set(config::EVENTS, asked, 0).map_err(map_err)
    }
}

/// Removes a pin if there is one.
/// Removes what a previous agent left in the staging directory. Anything there was staged by
/// an agent that died before renaming it into place: a link pinned there runs beside the link
/// it was to replace (still pinned under `links/`), a second program on the hook until
/// something removes its pin, and no later agent would, unless it happened to stage a link of
/// the same name; staged policy maps are used by no pin. Removing them detaches those links
/// (their hooks keep the links pinned under `links/`) and frees the maps no program holds.
fn clear_staging(staging: &Path) -> Result<(), DataplaneError> {
    let entries = fs::read_dir(staging).map_err(|source| DataplaneError::PinDir {
        path: staging.to_owned(),
        source,
    })?;
    for entry in entries.flatten() {
        warn!(pin = %entry.path().display(), "removing a pin a previous agent left staged");
        remove_pin(&entry.path())?;
    }
    Ok(())
}

/// Removes a kept map's pin when its layout is not the one this build expects (an upgrade
/// changed the key, the value or the size): the map is recreated empty rather than misread.
fn discard_if_incompatible(path: &Path, map: &KeptMap) -> Result<(), DataplaneError> {
    let Ok(info) = MapInfo::from_pin(path) else {
        // No pin (first start), or not a map: the loader creates and pins a new one.
        return Ok(());
    };
    let same = usize::try_from(info.key_size()).ok() == Some(map.key_size)
        && usize::try_from(info.value_size()).ok() == Some(map.value_size)
        && info.max_entries() == map.max_entries;
    if !same {
        warn!(
            map = map.name,
            "the pinned map has another layout (an upgrade): starting it empty"
        );
        remove_pin(path)?;
    }
    Ok(())
}

/// The generation a previous agent left in its pinned `PALISADE_CONFIG`, if there is one.
/// (ifindex, counter slot) of the previous agent's endpoint entries (none without its pin, or
/// with a layout this build does not read).
fn previous_counter_slots(path: &Path) -> Vec<(u32, u32)> {
    let Ok(data) = MapData::from_pin(path) else {
        return Vec::new();
    };
    let Ok(endpoints) =
        HashMap::<MapData, EndpointKey, EndpointPolicy>::try_from(aya::maps::Map::HashMap(data))
    else {
        return Vec::new();
    };
    endpoints
        .iter()
        .filter_map(Result::ok)
        .map(|(_, value)| (value.ifindex, value.counter_slot))
        .collect()
}

fn previous_generation(path: &Path) -> Option<u32> {
    let data = MapData::from_pin(path).ok()?;
    let config: Array<MapData, u32> = Array::try_from(aya::maps::Map::Array(data)).ok()?;
    config.get(&policy_common::config::GENERATION, 0).ok()
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
