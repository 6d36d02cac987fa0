//! The incremental core: the compiled state, and the few operations that change it.
//!
//! Everything is reference counted and indexed both ways, so each change touches only what it
//! affects:
//!
//! * an address gets the identity of its [`PodView`]s; a new identity gets entries in exactly
//!   the tables whose peers match it, a retired one loses exactly those;
//! * an endpoint gets one table per selecting policy; a new table gets entries for exactly the
//!   identities its peers match (plus CIDR classes and ANY), a retired one loses its own;
//! * a peer is matched against identities once, when the first table naming it appears.
//!
//! New things are acquired before old ones are released, so an unchanged identity or table
//! keeps its number through a change and its entries are not rewritten.
//!
//! The state is one struct, since a change to one part reaches the others (a new identity
//! gets entries in existing tables, a new table entries for existing identities); its
//! operations are split by what they own:
//!
//! * [`addresses`]: addresses, pod identities and CIDR classes, and the identity map;
//! * [`tables`]: endpoints, their tables and the peers those name, and their rule entries;
//! * [`ordered`]: the entries of ordered (Calico) tables, refreshed per identity and class;
//! * [`output`]: the maps themselves and the keys each compile changed, written only there.

mod addresses;
mod ordered;
mod output;
mod tables;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::IpAddr,
    sync::Arc,
};

use ipnet::IpNet;
use policy_common::{endpoint::EndpointPolicy, identity as reserved};

pub use self::output::MapOutput;
use super::{
    interner::Interner,
    ordered::{
        CalicoContext,
        cells::{OwnerLabels, PeerVerdicts},
    },
    policy_name::PolicyName,
    relevance::Relevance,
    rules::{ItemPeer, PeerId},
    tables::{EndpointSpec, TableContent},
    views::{IdentityViews, PodView},
};
use crate::model::Peer;

/// A pod by (namespace, name).
pub type PodRef = (String, String);

/// A local endpoint the engine programs, by kind: the engine gives both kinds tables the same
/// way, and only their entries' binding differs (see [`EndpointSpec::host`]).
///
/// The order decides which endpoint's entry an address shared by several gets (the first):
/// host endpoints come before pods, as they always have.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EndpointRef {
    /// A Calico HostEndpoint of this node, by name.
    Host(String),
    /// A pod scheduled to this node.
    Pod(PodRef),
}

/// Which policies stand behind each slot of an endpoint's table lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointExplanation {
    pub ingress: Vec<Arc<Vec<PolicyName>>>,
    pub egress: Vec<Arc<Vec<PolicyName>>>,
}

struct PeerInfo {
    block: Option<usize>,
    tables: BTreeSet<u32>,
    /// Pod identities the peer matches.
    identities: BTreeSet<u32>,
}

struct TableInfo {
    peers: Vec<ItemPeer>,
    lookups: u32,
}

struct Address {
    owners: BTreeMap<PodRef, Arc<PodView>>,
    pod_identity: u32,
    /// CIDR class, or WORLD when no block covers the address.
    cidr: u32,
}

struct Endpoint {
    spec: EndpointSpec,
    tables: Vec<u32>,
    value: EndpointPolicy,
}

/// What the identity map is written from: every address and prefix something claims.
struct Addresses {
    /// Each block prefix's CIDR class.
    block_prefixes: BTreeMap<IpNet, u32>,
    /// The node's own addresses: their entries are the host's, whatever else claims them.
    host: BTreeSet<IpAddr>,
    /// Pod addresses, with the views of the pods claiming each.
    by_ip: BTreeMap<IpAddr, Address>,
    /// Each pod's addresses and their views, as last set.
    pod_views: HashMap<PodRef, Vec<(IpAddr, Arc<PodView>)>>,
}

/// What the endpoint map is written from: the local endpoints and the addresses they claim.
#[derive(Default)]
struct Endpoints {
    by_ref: BTreeMap<EndpointRef, Endpoint>,
    /// Who claims each address; the first decides its entry.
    owners: BTreeMap<IpAddr, BTreeSet<EndpointRef>>,
}

pub struct Engine {
    pub relevance: Relevance,
    next_identity: u32,
    next_table: u32,
    next_peer: u32,
    identities: Interner<IdentityViews>,
    members: HashMap<u32, BTreeSet<PeerId>>,
    by_namespace: BTreeMap<String, BTreeSet<u32>>,
    /// Identities by (label key, value): a new peer's `In` requirement narrows the
    /// identities it must be matched against (Cilium's selector cache does the same).
    by_label: HashMap<(String, String), BTreeSet<u32>>,
    cidr_classes: Interner<Vec<usize>>,
    peers: Interner<Peer>,
    peer_info: HashMap<PeerId, PeerInfo>,
    tables: Interner<Arc<TableContent>>,
    table_info: HashMap<u32, TableInfo>,
    /// Tables with CIDR lookups: they need entries for every CIDR class.
    block_tables: BTreeSet<u32>,
    /// Tables with egress named ports for every peer: they need entries for every identity.
    unpeered_named: BTreeSet<u32>,
    /// Ordered tables (Calico) and the verdicts of their `ANY` entries: they need entries for
    /// every pod identity and every CIDR class whose verdicts differ from those.
    ordered_tables: BTreeMap<u32, PeerVerdicts>,
    /// Network sets and the like, for ordered tables; `None` without Calico resources.
    pub calico: Option<Arc<CalicoContext>>,
    /// With Calico resources: each pod identity's labels as Calico selectors see them, made
    /// once rather than once per ordered table.
    owner_labels: HashMap<u32, OwnerLabels>,
    /// Pod addresses, node addresses and block prefixes: [`addresses`] alone keeps them.
    addresses: Addresses,
    /// Local endpoints and the addresses they claim: [`tables`] alone keeps them.
    endpoints: Endpoints,
    /// The maps, what changed in them, and the explanations of their endpoint entries.
    pub output: MapOutput,
}

impl Engine {
    /// An empty state. Its numbers start after `previous`'s (if any), so that none of the
    /// numbers the maps still hold changes meaning while they are replaced.
    pub fn new(
        relevance: Relevance,
        calico: Option<Arc<CalicoContext>>,
        host_addrs: &[IpAddr],
        previous: Option<&Engine>,
    ) -> Self {
        let mut engine = Self {
            relevance,
            next_identity: previous.map_or(reserved::FIRST_ALLOCATED, |p| p.next_identity),
            next_table: previous.map_or(1, |p| p.next_table),
            next_peer: previous.map_or(1, |p| p.next_peer),
            identities: Interner::default(),
            members: HashMap::new(),
            by_namespace: BTreeMap::new(),
            by_label: HashMap::new(),
            cidr_classes: Interner::default(),
            peers: Interner::default(),
            peer_info: HashMap::new(),
            tables: Interner::default(),
            table_info: HashMap::new(),
            block_tables: BTreeSet::new(),
            unpeered_named: BTreeSet::new(),
            ordered_tables: BTreeMap::new(),
            owner_labels: HashMap::new(),
            calico,
            addresses: Addresses {
                block_prefixes: BTreeMap::new(),
                host: host_addrs.iter().copied().collect(),
                by_ip: BTreeMap::new(),
                pod_views: HashMap::new(),
            },
            endpoints: Endpoints::default(),
            output: MapOutput::default(),
        };
        engine.classify_blocks();
        for ip in host_addrs {
            engine.write_identity_entry(IpNet::from(*ip));
        }
        engine
    }

    /// Sizes of the interned state, for the benchmark and logs.
    pub fn counts(&self) -> Counts {
        Counts {
            pod_identities: self.identities.len(),
            cidr_classes: self.cidr_classes.len(),
            peers: self.peers.len(),
            tables: self.tables.len(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub pod_identities: usize,
    pub cidr_classes: usize,
    pub peers: usize,
    pub tables: usize,
}
