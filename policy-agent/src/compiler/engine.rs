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

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::IpAddr,
    sync::Arc,
};

use ipnet::IpNet;
use policy_common::{
    endpoint::{
        EndpointKey, EndpointPolicy, IFINDEX_NONE, IFINDEX_UNBOUND, MAX_TABLES, PolicyList,
        TableRef, kind as endpoint_kind, lookup,
    },
    identity::{self as reserved, IdentityValue},
    rule::RuleKey,
};

use super::{
    LpmKey, MapChanges, MapContents, identity_key,
    interner::{Acquired, Interner},
    ordered::{
        CalicoContext,
        cells::{self, Cell, CellMemo, OwnerLabels, Peer as OrderedPeer},
        source_ports,
    },
    policy_name::PolicyName,
    relevance::Relevance,
    rules::{self, Entries, ItemPeer, PeerId},
    tables::{DirectionSpec, EndpointSpec, PortSpec, TableContent},
    views::{self, IdentityKey, PodView, peer_matches},
};
use crate::model::{Cluster, Peer};

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

pub struct Engine {
    pub relevance: Relevance,
    next_identity: u32,
    next_table: u32,
    next_peer: u32,
    identities: Interner<IdentityKey>,
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
    ordered_tables: BTreeMap<u32, Cell>,
    /// Network sets and the like, for ordered tables; `None` without Calico resources.
    pub calico: Option<Arc<CalicoContext>>,
    /// With Calico resources: each pod identity's labels as Calico selectors see them, made
    /// once rather than once per ordered table.
    owner_labels: HashMap<u32, OwnerLabels>,
    /// The rule keys each (table, identity) pair owns.
    owners: BTreeMap<(u32, u32), Vec<LpmKey<RuleKey>>>,
    block_prefixes: BTreeMap<IpNet, u32>,
    host: BTreeSet<IpAddr>,
    addresses: BTreeMap<IpAddr, Address>,
    pod_views: HashMap<PodRef, Vec<(IpAddr, Arc<PodView>)>>,
    endpoints: BTreeMap<EndpointRef, Endpoint>,
    endpoint_owners: BTreeMap<IpAddr, BTreeSet<EndpointRef>>,
    /// The compiled maps, shared with the last `Compiled` handed out: updated in place once
    /// that is dropped (a copy is made only while someone still holds it).
    pub maps: Arc<MapContents>,
    /// The keys written or removed since the last compile handed its changes out.
    pub changes: MapChanges,
    pub explanations: Arc<BTreeMap<EndpointKey, EndpointExplanation>>,
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
            owners: BTreeMap::new(),
            block_prefixes: BTreeMap::new(),
            host: host_addrs.iter().copied().collect(),
            addresses: BTreeMap::new(),
            pod_views: HashMap::new(),
            endpoints: BTreeMap::new(),
            endpoint_owners: BTreeMap::new(),
            maps: Arc::default(),
            changes: MapChanges::default(),
            explanations: Arc::default(),
        };
        engine.classify_blocks();
        for ip in host_addrs {
            engine.write_identity_entry(IpNet::from(*ip));
        }
        engine
    }

    /// What network sets and host endpoints list changed, and nothing else the compile
    /// observes (their labels, the blocks policies name): `relevance` numbers every member as
    /// the old one did (see [`Relevance::numbered_after`]). Every block prefix and pod address
    /// gets the CIDR class of its new memberships: classes that already exist keep their
    /// number and their entries, new ones get entries in every table, unused ones are
    /// retired. Then every pod's views follow (memberships are part of them). The endpoints'
    /// tables are the caller's (their own side may be in a set): see
    /// `Compiler::follow_memberships`, the one caller.
    pub fn set_owned_blocks(
        &mut self,
        relevance: Relevance,
        calico: Arc<CalicoContext>,
        cluster: &Cluster,
    ) {
        self.relevance = relevance;
        self.calico = Some(calico);
        self.classify_blocks();
        self.view_pods(cluster);
    }

    /// Sets the views of every pod's addresses, from the engine's relevance.
    pub fn view_pods(&mut self, cluster: &Cluster) {
        for ((ns, name), pod) in &cluster.pods {
            let views = views::pod_views(
                pod,
                &cluster.namespace_labels(&pod.namespace),
                &self.relevance,
            );
            self.set_pod_views(&(ns.clone(), name.clone()), views);
        }
    }

    /// Gives every block prefix and pod address the CIDR class of its memberships under the
    /// current relevance, and rewrites their identity entries.
    fn classify_blocks(&mut self) {
        let mut prefixes = self.relevance.block_prefixes();
        // A block that is exactly a node address (a Service endpoint of a host-network pod,
        // a network set listing a node) never decides: the address's entry is the host's.
        // A class for it would be carried by no identity entry, its rule entries by nobody.
        prefixes.retain(|prefix| {
            prefix.prefix_len() != prefix.max_prefix_len() || !self.host.contains(&prefix.addr())
        });
        let mut classes = BTreeMap::new();
        for prefix in &prefixes {
            let covering = self.relevance.covering(prefix);
            classes.insert(*prefix, self.acquire_cidr(&covering));
        }
        let old = std::mem::replace(&mut self.block_prefixes, classes);
        // Released after acquiring: a class still in use keeps its number.
        for class in old.values() {
            self.release_cidr(*class);
        }
        let touched: BTreeSet<IpNet> = old.keys().copied().chain(prefixes).collect();
        for prefix in touched {
            self.write_identity_entry(prefix);
        }
        let addresses: Vec<IpAddr> = self.addresses.keys().copied().collect();
        for ip in addresses {
            let covering = self.relevance.covering(&IpNet::from(ip));
            let class = self.acquire_cidr(&covering);
            let old = match self.addresses.get_mut(&ip) {
                Some(address) => std::mem::replace(&mut address.cidr, class),
                None => reserved::WORLD,
            };
            self.release_cidr(old);
            self.write_identity_entry(IpNet::from(ip));
        }
    }

    // ---- addresses and identities ----

    /// Sets the views of every address of a pod (none: the pod owns no address).
    pub fn set_pod_views(&mut self, pod: &PodRef, views: Vec<(IpAddr, Arc<PodView>)>) {
        let old = self.pod_views.remove(pod).unwrap_or_default();
        if old == views {
            if !views.is_empty() {
                self.pod_views.insert(pod.clone(), views);
            }
            return;
        }
        for (ip, view) in &views {
            let address = self.addresses.entry(*ip).or_insert_with(|| Address {
                owners: BTreeMap::new(),
                pod_identity: reserved::WORLD,
                cidr: reserved::WORLD,
            });
            address.owners.insert(pod.clone(), Arc::clone(view));
            self.refresh_address(*ip);
        }
        for (ip, _) in &old {
            if views.iter().any(|(new_ip, _)| new_ip == ip) {
                continue;
            }
            if let Some(address) = self.addresses.get_mut(ip) {
                address.owners.remove(pod);
            }
            self.refresh_address(*ip);
        }
        if !views.is_empty() {
            self.pod_views.insert(pod.clone(), views);
        }
    }

    fn refresh_address(&mut self, ip: IpAddr) {
        let Some(address) = self.addresses.get(&ip) else {
            return;
        };
        let (old_identity, old_cidr) = (address.pod_identity, address.cidr);
        if address.owners.is_empty() {
            self.addresses.remove(&ip);
            self.release_identity(old_identity);
            self.release_cidr(old_cidr);
        } else {
            let mut key: IdentityKey = address.owners.values().cloned().collect();
            key.sort();
            key.dedup();
            let identity = self.acquire_identity(&key);
            let fresh = old_identity == reserved::WORLD;
            let cidr = if fresh {
                let covering = self.relevance.covering(&IpNet::from(ip));
                self.acquire_cidr(&covering)
            } else {
                old_cidr
            };
            if let Some(address) = self.addresses.get_mut(&ip) {
                address.pod_identity = identity;
                address.cidr = cidr;
            }
            // Released after acquiring: an unchanged key keeps its number.
            self.release_identity(old_identity);
        }
        self.write_identity_entry(IpNet::from(ip));
    }

    fn acquire_identity(&mut self, key: &IdentityKey) -> u32 {
        match self
            .identities
            .acquire(key, &mut self.next_identity, reserved::FIRST_ALLOCATED)
        {
            Acquired::Existing(id) => id,
            Acquired::Created(id) => {
                self.identity_created(id, key);
                id
            }
        }
    }

    fn release_identity(&mut self, id: u32) {
        if id < reserved::FIRST_ALLOCATED {
            return;
        }
        if let Some(key) = self.identities.release(id) {
            self.identity_retired(id, &key);
        }
    }

    fn identity_created(&mut self, id: u32, key: &IdentityKey) {
        if self.calico.is_some()
            && let Some(view) = key.first()
        {
            self.owner_labels.insert(id, OwnerLabels::of(view));
        }
        for view in key {
            self.by_namespace
                .entry(view.namespace.clone())
                .or_default()
                .insert(id);
            for (k, v) in &view.labels {
                self.by_label
                    .entry((k.clone(), v.clone()))
                    .or_default()
                    .insert(id);
            }
        }
        let mut members = BTreeSet::new();
        for (peer_id, peer) in self.peers.iter() {
            let block = self.peer_info.get(&peer_id).and_then(|p| p.block);
            if key.iter().any(|view| peer_matches(peer, block, view)) {
                members.insert(peer_id);
            }
        }
        for peer in &members {
            if let Some(info) = self.peer_info.get_mut(peer) {
                info.identities.insert(id);
            }
        }
        let tables = self.tables_of(&members);
        self.members.insert(id, members);
        for table in tables {
            self.refresh_pod_entries(table, id);
        }
        for table in self.ordered_tables.keys().copied().collect::<Vec<_>>() {
            self.refresh_ordered(table, id, Self::ordered_pod_cell);
        }
    }

    fn identity_retired(&mut self, id: u32, key: &IdentityKey) {
        self.owner_labels.remove(&id);
        for view in key {
            if let Some(ids) = self.by_namespace.get_mut(&view.namespace) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.by_namespace.remove(&view.namespace);
                }
            }
            for (k, v) in &view.labels {
                let label = (k.clone(), v.clone());
                if let Some(ids) = self.by_label.get_mut(&label) {
                    ids.remove(&id);
                    if ids.is_empty() {
                        self.by_label.remove(&label);
                    }
                }
            }
        }
        let members = self.members.remove(&id).unwrap_or_default();
        for peer in &members {
            if let Some(info) = self.peer_info.get_mut(peer) {
                info.identities.remove(&id);
            }
        }
        for table in self.tables_of(&members) {
            self.set_entries(table, id, Entries::new());
        }
        for table in self.ordered_tables.keys().copied().collect::<Vec<_>>() {
            self.set_entries(table, id, Entries::new());
        }
    }

    /// Tables that can have entries for an identity with these members.
    fn tables_of(&self, members: &BTreeSet<PeerId>) -> BTreeSet<u32> {
        let mut tables: BTreeSet<u32> = members
            .iter()
            .filter_map(|p| self.peer_info.get(p))
            .flat_map(|info| info.tables.iter().copied())
            .collect();
        tables.extend(self.unpeered_named.iter().copied());
        tables
    }

    fn acquire_cidr(&mut self, blocks: &Vec<usize>) -> u32 {
        if blocks.is_empty() {
            return reserved::WORLD;
        }
        match self
            .cidr_classes
            .acquire(blocks, &mut self.next_identity, reserved::FIRST_ALLOCATED)
        {
            Acquired::Existing(id) => id,
            Acquired::Created(id) => {
                for table in self.block_tables.clone() {
                    self.refresh_cidr_entries(table, id, blocks);
                }
                for table in self.ordered_tables.keys().copied().collect::<Vec<_>>() {
                    self.refresh_ordered(table, id, Self::ordered_cidr_cell);
                }
                id
            }
        }
    }

    fn release_cidr(&mut self, id: u32) {
        if id < reserved::FIRST_ALLOCATED {
            return;
        }
        if self.cidr_classes.release(id).is_some() {
            let tables: Vec<u32> = self
                .block_tables
                .iter()
                .chain(self.ordered_tables.keys())
                .copied()
                .collect();
            for table in tables {
                self.set_entries(table, id, Entries::new());
            }
        }
    }

    /// Rewrites the identity-map entry of a prefix from what claims it: the node's own
    /// addresses first, then pod addresses, then `ipBlock` prefixes.
    fn write_identity_entry(&mut self, net: IpNet) {
        let key = identity_key(&net);
        let single = net.prefix_len() == net.max_prefix_len();
        let value = if single && self.host.contains(&net.addr()) {
            Some(IdentityValue {
                pod_identity: reserved::HOST,
                cidr_identity: reserved::WORLD,
            })
        } else if let Some(address) = self.addresses.get(&net.addr()).filter(|_| single) {
            Some(IdentityValue {
                pod_identity: address.pod_identity,
                cidr_identity: address.cidr,
            })
        } else {
            self.block_prefixes.get(&net).map(|cidr| IdentityValue {
                pod_identity: reserved::WORLD,
                cidr_identity: *cidr,
            })
        };
        match value {
            Some(value) => {
                Arc::make_mut(&mut self.maps).identities.insert(key, value);
            }
            None => {
                Arc::make_mut(&mut self.maps).identities.remove(&key);
            }
        }
        self.changes.identities.insert(key);
    }

    // ---- endpoints and tables ----

    /// Sets the tables of a local endpoint (none: it is not, or no longer, a local endpoint).
    pub fn set_endpoint(&mut self, endpoint: &EndpointRef, spec: Option<EndpointSpec>) {
        if self.endpoints.get(endpoint).map(|e| &e.spec) == spec.as_ref() {
            return;
        }
        let new = spec.map(|spec| {
            let mut tables = Vec::new();
            let ingress = self.policy_list(&spec.ingress, &mut tables);
            let egress = self.policy_list(&spec.egress, &mut tables);
            Endpoint {
                value: EndpointPolicy {
                    ifindex: if spec.host {
                        IFINDEX_NONE
                    } else {
                        IFINDEX_UNBOUND
                    },
                    kind: if spec.host {
                        endpoint_kind::HOST
                    } else {
                        endpoint_kind::POD
                    },
                    ingress,
                    egress,
                },
                spec,
                tables,
            }
        });
        let mut touched: BTreeSet<IpAddr> = BTreeSet::new();
        if let Some(old) = self.endpoints.remove(endpoint) {
            for ip in &old.spec.ips {
                if let Some(owners) = self.endpoint_owners.get_mut(ip) {
                    owners.remove(endpoint);
                }
                touched.insert(*ip);
            }
            for table in old.tables {
                self.release_table(table);
            }
        }
        if let Some(new) = new {
            for ip in &new.spec.ips {
                self.endpoint_owners
                    .entry(*ip)
                    .or_default()
                    .insert(endpoint.clone());
                touched.insert(*ip);
            }
            self.endpoints.insert(endpoint.clone(), new);
        }
        for ip in touched {
            self.write_endpoint_entry(ip);
        }
    }

    fn policy_list(&mut self, spec: &DirectionSpec, tables: &mut Vec<u32>) -> PolicyList {
        let mut list = PolicyList {
            isolated: u32::from(spec.isolated),
            ..PolicyList::default()
        };
        for (slot, entry) in spec.slots.iter().take(MAX_TABLES).zip(&mut list.tables) {
            let table = self.acquire_table(&slot.content);
            tables.push(table);
            *entry = TableRef {
                table,
                lookups: self.table_info.get(&table).map_or(0, |t| t.lookups),
            };
            list.count += 1;
        }
        list
    }

    /// The first endpoint (by [`EndpointRef`] order) claiming an address decides its entry.
    fn write_endpoint_entry(&mut self, ip: IpAddr) {
        let key = EndpointKey {
            addr: super::identity_addr(ip),
        };
        let owner = self
            .endpoint_owners
            .get(&ip)
            .and_then(|owners| owners.first())
            .and_then(|endpoint| self.endpoints.get(endpoint));
        self.changes.endpoints.insert(key);
        let explanations = Arc::make_mut(&mut self.explanations);
        match owner {
            Some(endpoint) => {
                Arc::make_mut(&mut self.maps)
                    .endpoints
                    .insert(key, endpoint.value);
                let names = |spec: &DirectionSpec| -> Vec<Arc<Vec<PolicyName>>> {
                    spec.slots.iter().map(|s| Arc::clone(&s.policies)).collect()
                };
                explanations.insert(
                    key,
                    EndpointExplanation {
                        ingress: names(&endpoint.spec.ingress),
                        egress: names(&endpoint.spec.egress),
                    },
                );
            }
            None => {
                self.endpoint_owners.remove(&ip);
                Arc::make_mut(&mut self.maps).endpoints.remove(&key);
                explanations.remove(&key);
            }
        }
    }

    fn acquire_table(&mut self, content: &Arc<TableContent>) -> u32 {
        match self.tables.acquire(content, &mut self.next_table, 1) {
            Acquired::Existing(id) => id,
            Acquired::Created(id) => {
                self.table_created(id, content);
                id
            }
        }
    }

    fn release_table(&mut self, id: u32) {
        if self.tables.release(id).is_some() {
            self.table_retired(id);
        }
    }

    fn table_created(&mut self, id: u32, content: &TableContent) {
        if content.ordered.is_some() {
            self.ordered_table_created(id, content);
            return;
        }
        let mut peers = Vec::with_capacity(content.items.len());
        let mut lookups = 0;
        let mut unpeered_named = false;
        for item in &content.items {
            let named = matches!(item.port, PortSpec::EgressNamed { .. });
            let peer = match &item.peer {
                None => {
                    unpeered_named |= named;
                    lookups |= if named { lookup::POD } else { lookup::ANY };
                    ItemPeer::Any
                }
                Some(peer) => {
                    let peer_id = self.acquire_peer(peer);
                    if let Some(info) = self.peer_info.get_mut(&peer_id) {
                        info.tables.insert(id);
                    }
                    match peer {
                        Peer::Pods { .. } => {
                            lookups |= lookup::POD;
                            ItemPeer::Pods(peer_id)
                        }
                        Peer::IpBlock { cidr, except } => {
                            lookups |= if named { lookup::POD } else { lookup::CIDR };
                            match self.relevance.block_index(cidr, except) {
                                Some(block) => ItemPeer::Block {
                                    peer: peer_id,
                                    block,
                                },
                                // Not reachable: relevance lists every block of every
                                // policy. Were it, the rule would match nothing: fail closed.
                                None => {
                                    tracing::error!(
                                        %cidr,
                                        "an ipBlock missing from the relevance; its rule matches nothing"
                                    );
                                    ItemPeer::Nothing
                                }
                            }
                        }
                    }
                }
            };
            peers.push(peer);
        }
        if unpeered_named {
            self.unpeered_named.insert(id);
        }
        if lookups & lookup::CIDR != 0 {
            self.block_tables.insert(id);
        }
        self.table_info.insert(id, TableInfo { peers, lookups });

        let identities: BTreeSet<u32> = if unpeered_named {
            self.members.keys().copied().collect()
        } else {
            let peers = &self.table_info[&id].peers;
            peers
                .iter()
                .filter_map(|p| p.id())
                .filter_map(|p| self.peer_info.get(&p))
                .flat_map(|info| info.identities.iter().copied())
                .collect()
        };
        for identity in identities {
            self.refresh_pod_entries(id, identity);
        }
        if lookups & lookup::CIDR != 0 {
            let classes: Vec<(u32, Vec<usize>)> = self
                .cidr_classes
                .iter()
                .map(|(class, blocks)| (class, blocks.clone()))
                .collect();
            for (class, blocks) in classes {
                self.refresh_cidr_entries(id, class, &blocks);
            }
        }
        if lookups & lookup::ANY != 0 {
            let info = &self.table_info[&id];
            let entries = rules::any_entries(id, &content.items, &info.peers);
            self.set_entries(id, reserved::ANY, entries);
        }
    }

    fn table_retired(&mut self, id: u32) {
        let owned: Vec<(u32, u32)> = self
            .owners
            .range((id, 0)..=(id, u32::MAX))
            .map(|(k, _)| *k)
            .collect();
        for (table, identity) in owned {
            self.set_entries(table, identity, Entries::new());
        }
        self.unpeered_named.remove(&id);
        self.block_tables.remove(&id);
        self.ordered_tables.remove(&id);
        let Some(info) = self.table_info.remove(&id) else {
            return;
        };
        for peer in info.peers.iter().filter_map(|p| p.id()) {
            if let Some(info) = self.peer_info.get_mut(&peer) {
                info.tables.remove(&id);
            }
            self.release_peer(peer);
        }
    }

    fn acquire_peer(&mut self, peer: &Peer) -> PeerId {
        match self.peers.acquire(peer, &mut self.next_peer, 1) {
            Acquired::Existing(id) => id,
            Acquired::Created(id) => {
                self.peer_created(id, peer);
                id
            }
        }
    }

    fn release_peer(&mut self, id: PeerId) {
        if self.peers.release(id).is_some()
            && let Some(info) = self.peer_info.remove(&id)
        {
            for identity in info.identities {
                if let Some(members) = self.members.get_mut(&identity) {
                    members.remove(&id);
                }
            }
        }
    }

    /// Matches a new peer against the identities that can match it.
    fn peer_created(&mut self, id: PeerId, peer: &Peer) {
        let block = match peer {
            Peer::IpBlock { cidr, except } => self.relevance.block_index(cidr, except),
            Peer::Pods { .. } => None,
        };
        let candidates = self.candidates(peer, block);
        let mut identities = BTreeSet::new();
        for identity in candidates {
            let matches = self
                .identities
                .get(identity)
                .is_some_and(|key| key.iter().any(|view| peer_matches(peer, block, view)));
            if matches {
                identities.insert(identity);
                if let Some(members) = self.members.get_mut(&identity) {
                    members.insert(id);
                }
            }
        }
        self.peer_info.insert(
            id,
            PeerInfo {
                block,
                tables: BTreeSet::new(),
                identities,
            },
        );
    }

    /// The identities a new peer can match: a superset, each still checked in full. The
    /// smallest of its namespace's identities and, per `In` requirement, the identities with
    /// one of its values.
    fn candidates(&self, peer: &Peer, block: Option<usize>) -> Vec<u32> {
        let (namespaces, pods) = match peer {
            Peer::Pods { namespaces, pods } => (namespaces, pods),
            // Only named-port blocks are part of pod identities.
            Peer::IpBlock { .. } => {
                return if block.is_some_and(|b| self.relevance.named_port_blocks.contains(&b)) {
                    self.members.keys().copied().collect()
                } else {
                    Vec::new()
                };
            }
        };
        let empty = BTreeSet::new();
        let mut best: Option<BTreeSet<u32>> = None;
        if let crate::model::NamespaceMatch::Exactly(ns) = namespaces {
            best = Some(self.by_namespace.get(ns).unwrap_or(&empty).clone());
        }
        for requirement in &pods.requirements {
            if let crate::model::selector::Requirement::In { key, values } = requirement {
                let with_value: BTreeSet<u32> = values
                    .iter()
                    .filter_map(|v| self.by_label.get(&(key.clone(), v.clone())))
                    .flatten()
                    .copied()
                    .collect();
                if best.as_ref().is_none_or(|b| with_value.len() < b.len()) {
                    best = Some(with_value);
                }
            }
        }
        match best {
            Some(ids) => ids.into_iter().collect(),
            None => self.members.keys().copied().collect(),
        }
    }

    // ---- ordered tables ----

    /// An ordered table: its `ANY` entries hold the verdicts most peers share, and every pod
    /// identity and CIDR class judged differently gets complete entries of its own.
    ///
    /// Which verdicts `ANY` holds decides how many entries the table costs: with a default
    /// deny and a few allows, most pods are judged alike (denied by the same rule) while an
    /// address outside the cluster is often judged by a rule of its own (`notNets`), so the
    /// table takes the cell whose peers would otherwise need the most entries.
    fn ordered_table_created(&mut self, id: u32, content: &TableContent) {
        let (Some(ordered), Some(context)) = (content.ordered.clone(), self.calico.clone()) else {
            return;
        };
        let world: Vec<usize> = context.v4_world_block.into_iter().collect();
        let mut memo = CellMemo::new(&ordered);
        let mut lookups = lookup::ORDERED | lookup::ANY;
        if let Some(classes) = memo.source_classes() {
            lookups |= lookup::SOURCE_PORTS;
            let entries = source_ports::source_class_entries(id, classes);
            self.set_entries(id, reserved::SOURCE_PORTS, entries);
        }
        self.table_info.insert(
            id,
            TableInfo {
                peers: Vec::new(),
                lookups,
            },
        );
        // An address without any identity entry: judged as an IPv4 address outside every pod
        // and set (in Calico mode the `/0` blocks give every address a class, so this is a
        // safety net, not a path traffic takes).
        let unclassified = memo.number(
            &context,
            &OrderedPeer {
                view: None,
                owner_labels: None,
                blocks: &world,
                v6: Some(false),
            },
        );
        let mut peers: Vec<(u32, usize)> = Vec::new();
        let identities: Vec<u32> = self.members.keys().copied().collect();
        for identity in identities {
            if let Some(cell) = self.ordered_pod_cell(&mut memo, &context, identity) {
                peers.push((identity, cell));
            }
        }
        let classes: Vec<u32> = self.cidr_classes.iter().map(|(class, _)| class).collect();
        for class in classes {
            if let Some(cell) = self.ordered_cidr_cell(&mut memo, &context, class) {
                peers.push((class, cell));
            }
        }
        peers.push((reserved::WORLD, unclassified));
        let default = memo
            .get(most_entries_shared(&memo, &peers).unwrap_or(unclassified))
            .clone();
        self.set_entries(
            id,
            reserved::ANY,
            cells::entries(id, reserved::ANY, &default),
        );
        // Decided once per distinct cell, not per peer.
        let own_entries: Vec<bool> = (0..memo.len())
            .map(|number| !memo.get(number).same_as(&default))
            .collect();
        self.ordered_tables.insert(id, default);
        for (identity, number) in peers {
            let entries = if own_entries[number] {
                cells::entries(id, identity, memo.get(number))
            } else {
                Entries::new()
            };
            self.set_entries(id, identity, entries);
        }
    }

    /// Recomputes one peer's entries in an existing ordered table (`cell`:
    /// [`Engine::ordered_pod_cell`] or [`Engine::ordered_cidr_cell`]): none where the `ANY`
    /// entries already say the same.
    fn refresh_ordered(&mut self, table: u32, peer: u32, cell: OrderedCellOf) {
        let (Some(content), Some(context)) = (
            self.tables.get(table).and_then(|c| c.ordered.clone()),
            self.calico.clone(),
        ) else {
            return;
        };
        let mut memo = CellMemo::new(&content);
        let (Some(number), Some(default)) = (
            cell(self, &mut memo, &context, peer),
            self.ordered_tables.get(&table),
        ) else {
            return;
        };
        let cell = memo.get(number);
        let entries = if cell.same_as(default) {
            Entries::new()
        } else {
            cells::entries(table, peer, cell)
        };
        self.set_entries(table, peer, entries);
    }

    /// The verdicts of an ordered table for a pod identity (their number in `memo`).
    fn ordered_pod_cell(
        &self,
        memo: &mut CellMemo<'_>,
        context: &CalicoContext,
        identity: u32,
    ) -> Option<usize> {
        let view = self.identities.get(identity)?.first()?;
        let peer = OrderedPeer {
            view: Some(view),
            owner_labels: self.owner_labels.get(&identity),
            blocks: &view.blocks,
            v6: view.v6,
        };
        Some(memo.number(context, &peer))
    }

    /// The verdicts of an ordered table for a CIDR class (its family is that of the `/0`
    /// block it lies in).
    fn ordered_cidr_cell(
        &self,
        memo: &mut CellMemo<'_>,
        context: &CalicoContext,
        class: u32,
    ) -> Option<usize> {
        let blocks = self.cidr_classes.get(class)?;
        let v6_block = self
            .relevance
            .block_index(&IpNet::V6(ipnet::Ipv6Net::default()), &[]);
        let v4_block = self
            .relevance
            .block_index(&IpNet::V4(ipnet::Ipv4Net::default()), &[]);
        let family = |block: Option<usize>| block.is_some_and(|b| blocks.contains(&b));
        let v6 = if family(v6_block) {
            Some(true)
        } else if family(v4_block) {
            Some(false)
        } else {
            None
        };
        let peer = OrderedPeer {
            view: None,
            owner_labels: None,
            blocks,
            v6,
        };
        Some(memo.number(context, &peer))
    }

    // ---- rule entries ----

    fn refresh_pod_entries(&mut self, table: u32, identity: u32) {
        let (Some(info), Some(content), Some(key), Some(members)) = (
            self.table_info.get(&table),
            self.tables.get(table),
            self.identities.get(identity),
            self.members.get(&identity),
        ) else {
            return;
        };
        let entries =
            rules::pod_identity_entries(table, identity, &content.items, &info.peers, members, key);
        self.set_entries(table, identity, entries);
    }

    fn refresh_cidr_entries(&mut self, table: u32, class: u32, blocks: &[usize]) {
        let (Some(info), Some(content)) = (self.table_info.get(&table), self.tables.get(table))
        else {
            return;
        };
        let entries = rules::cidr_entries(table, class, &content.items, &info.peers, blocks);
        self.set_entries(table, class, entries);
    }

    /// Replaces the entries a (table, identity) pair owns.
    fn set_entries(&mut self, table: u32, identity: u32, entries: Entries) {
        if let Some(old) = self.owners.remove(&(table, identity)) {
            let maps = Arc::make_mut(&mut self.maps);
            for key in old {
                maps.rules.remove(&key);
                self.changes.rules.insert(key);
            }
        }
        if entries.is_empty() {
            return;
        }
        let keys = entries.keys().copied().collect();
        self.changes.rules.extend(entries.keys().copied());
        Arc::make_mut(&mut self.maps).rules.extend(entries);
        self.owners.insert((table, identity), keys);
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

/// Of the peers' cells (numbers in `memo`), the one whose entries, left to `ANY`, save the
/// most: cells with equal entries are one group, weighted by how many entries its peers would
/// otherwise need. Ties go to the group whose first peer comes first, so the choice is the
/// same on every compile of the same state.
fn most_entries_shared(memo: &CellMemo<'_>, peers: &[(u32, usize)]) -> Option<usize> {
    let mut count = vec![0usize; memo.len()];
    let mut first = vec![usize::MAX; memo.len()];
    for (index, (_, number)) in peers.iter().enumerate() {
        count[*number] += 1;
        first[*number] = first[*number].min(index);
    }
    // entries -> (first peer, its cell, weight)
    let mut groups: HashMap<Entries, (usize, usize, usize)> = HashMap::new();
    for number in (0..memo.len()).filter(|n| count[*n] > 0) {
        let entries = cells::entries(0, reserved::ANY, memo.get(number));
        let weight = count[number] * entries.len();
        let group = groups.entry(entries).or_insert((first[number], number, 0));
        if first[number] < group.0 {
            (group.0, group.1) = (first[number], number);
        }
        group.2 += weight;
    }
    groups
        .values()
        .max_by(|a, b| a.2.cmp(&b.2).then(b.0.cmp(&a.0)))
        .map(|(_, number, _)| *number)
}

/// How a peer's cell in an ordered table is found: by pod identity or by CIDR class.
type OrderedCellOf = fn(&Engine, &mut CellMemo<'_>, &CalicoContext, u32) -> Option<usize>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub pod_identities: usize,
    pub cidr_classes: usize,
    pub peers: usize,
    pub tables: usize,
}
