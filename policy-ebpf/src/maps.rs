//! Every map of the programs, in one place: the `#[btf_map]` statics the agent finds by name
//! (their names are the pinned maps' names, and the layouts of their keys and values are
//! `policy_common`'s). The modules that read and write them import them from here.

use aya_ebpf::{
    btf_maps::{Array, HashMap, LpmTrie, LruHashMap, LruPerCpuHashMap, PerCpuArray, RingBuf},
    macros::btf_map,
};
use policy_common::{
    capacity, config,
    conntrack::{ConntrackKey, ConntrackValue},
    counters::Counters,
    endpoint::{EndpointKey, EndpointPolicy},
    flow::{self as flow_event, FlowBudget, FlowEvent},
    fragment::{FragmentKey, FragmentValue},
    identity::{IdentityKey, IdentitySlots},
    rule::{RuleKey, RuleValue},
    rule_hits::{RuleHitKey, RuleHits},
    service::{BackendKey, FrontendValue, HairpinKey, TransportAddr},
};

use crate::{decision::Tuples, packet::Flow};

#[btf_map]
pub(crate) static PALISADE_ENDPOINTS: HashMap<
    EndpointKey,
    EndpointPolicy,
    { capacity::ENDPOINTS as usize },
> = HashMap::new();

#[btf_map]
pub(crate) static PALISADE_IDENTITIES: LpmTrie<
    IdentityKey,
    IdentitySlots,
    { capacity::IDENTITIES as usize },
> = LpmTrie::new();

/// The whole-address entries of the identity table (see `policy_common::identity`).
#[btf_map]
pub(crate) static PALISADE_ADDRESSES: HashMap<
    IdentityKey,
    IdentitySlots,
    { capacity::ADDRESSES as usize },
> = HashMap::new();

#[btf_map]
pub(crate) static PALISADE_RULES: LpmTrie<RuleKey, RuleValue, { capacity::RULES as usize }> =
    LpmTrie::new();

/// The fully specified entries of the rule table (see `policy_common::rule`).
#[btf_map]
pub(crate) static PALISADE_RULES_EXACT: HashMap<
    RuleKey,
    RuleValue,
    { capacity::RULES_EXACT as usize },
> = HashMap::new();

#[btf_map]
pub(crate) static PALISADE_CONNTRACK: LruHashMap<
    ConntrackKey,
    ConntrackValue,
    { capacity::CONNTRACK as usize },
> = LruHashMap::new();

#[btf_map]
pub(crate) static PALISADE_FRAGMENTS: LruHashMap<
    FragmentKey,
    FragmentValue,
    { capacity::FRAGMENTS as usize },
> = LruHashMap::new();

/// Per-interface counters by the slot the endpoint's entry names
/// (`EndpointPolicy::counter_slot`): an array lookup instead of `PALISADE_COUNTERS`' hash
/// lookup on every packet (about 1 ns against 32: `cargo bench -p policy-agent --bench
/// step_costs`).
#[btf_map]
pub(crate) static PALISADE_COUNTER_SLOTS: PerCpuArray<
    Counters,
    { capacity::COUNTER_SLOTS as usize },
> = PerCpuArray::new();

/// Per-interface counters by ifindex, for interfaces without a slot and packets of no
/// endpoint.
#[btf_map]
pub(crate) static PALISADE_COUNTERS: LruPerCpuHashMap<
    u32,
    Counters,
    { capacity::COUNTERS as usize },
> = LruPerCpuHashMap::new();

/// Where the parser writes the packet's description. A map value rather than the stack: it
/// keeps the stack small, and the verifier does not track the contents of map memory, so the
/// parser's many exit paths (each with its own constants) converge before the decision instead
/// of multiplying its paths.
#[btf_map]
pub(crate) static PALISADE_SCRATCH: PerCpuArray<Flow, 1> = PerCpuArray::new();

/// The tuple of the packet being decided and its reverse (see `decision::Tuples`): map memory
/// for the same reason as `PALISADE_SCRATCH`, and to keep them off the decision's stack.
#[btf_map]
pub(crate) static PALISADE_TUPLES: PerCpuArray<Tuples, 1> = PerCpuArray::new();

#[btf_map]
pub(crate) static PALISADE_CONFIG: Array<u32, { config::LEN as usize }> = Array::new();

/// Flow events for `policy-agent flows` (see `policy_common::flow`).
#[btf_map]
pub(crate) static PALISADE_FLOWS: RingBuf<FlowEvent, { flow_event::RING_BYTES as usize }> =
    RingBuf::new();

/// Each CPU's flow-event budget for the current second.
#[btf_map]
pub(crate) static PALISADE_FLOW_BUDGET: PerCpuArray<FlowBudget, 1> = PerCpuArray::new();

/// Packets decided per rule entry (see `policy_common::rule_hits`).
#[btf_map]
pub(crate) static PALISADE_RULE_HITS: LruPerCpuHashMap<
    RuleHitKey,
    RuleHits,
    { capacity::RULE_HITS as usize },
> = LruPerCpuHashMap::new();

/// Service frontends (see `policy_common::service`).
#[btf_map]
pub(crate) static PALISADE_SERVICES: HashMap<
    TransportAddr,
    FrontendValue,
    { capacity::SERVICES as usize },
> = HashMap::new();

/// (frontend, backend) pairs: the value is 1.
#[btf_map]
pub(crate) static PALISADE_SERVICE_BACKENDS: HashMap<
    BackendKey,
    u32,
    { capacity::SERVICE_BACKENDS as usize },
> = HashMap::new();

/// A pod socket's new flow to a frontend, until the translated flow is seen.
#[btf_map]
pub(crate) static PALISADE_SERVICE_PENDING: LruHashMap<
    TransportAddr,
    TransportAddr,
    { capacity::SERVICE_PENDING as usize },
> = LruHashMap::new();

/// The backend of each allowed flow to a frontend, keyed by the flow as the pod sent it.
#[btf_map]
pub(crate) static PALISADE_SERVICE_FLOWS: LruHashMap<
    ConntrackKey,
    TransportAddr,
    { capacity::SERVICE_FLOWS as usize },
> = LruHashMap::new();

/// A pod's new flow to a frontend that may send it back to the pod itself, by the packet's
/// fingerprint: the value is the pod's source port.
#[btf_map]
pub(crate) static PALISADE_SERVICE_HAIRPIN_PENDING: LruHashMap<
    HairpinKey,
    u32,
    { capacity::SERVICE_HAIRPIN_PENDING as usize },
> = LruHashMap::new();

/// The pod's own socket behind each masqueraded hairpin flow, keyed by the flow as delivered.
#[btf_map]
pub(crate) static PALISADE_SERVICE_HAIRPINS: LruHashMap<
    ConntrackKey,
    TransportAddr,
    { capacity::SERVICE_HAIRPINS as usize },
> = LruHashMap::new();
