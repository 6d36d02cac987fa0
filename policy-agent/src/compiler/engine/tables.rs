//! Endpoints, their tables and the peers the tables name: an endpoint gets one table per
//! selecting policy; a new table gets rule entries for exactly the identities its peers match
//! (plus CIDR classes and `ANY`), a retired one loses its own; a peer is matched against the
//! identities once, when the first table naming it appears.

use std::{collections::BTreeSet, net::IpAddr, sync::Arc};

use policy_common::{
    endpoint::{
        EndpointKey, EndpointPolicy, IFINDEX_NONE, IFINDEX_UNBOUND, MAX_TABLES, NO_COUNTER_SLOT,
        PolicyList, TableRef, kind as endpoint_kind, lookup,
    },
    identity as reserved,
};

use super::{Endpoint, EndpointExplanation, EndpointRef, Engine, PeerInfo, TableInfo};
use crate::{
    compiler::{
        identity_addr,
        interner::Acquired,
        policy_name::PolicyName,
        rules::{self, ItemPeer, PeerId},
        tables::{DirectionSpec, EndpointSpec, PortSpec, TableContent},
        views::peer_matches,
    },
    model::Peer,
};

impl Engine {
    /// Sets the tables of a local endpoint (none: it is not, or no longer, a local endpoint).
    pub fn set_endpoint(&mut self, endpoint: &EndpointRef, spec: Option<EndpointSpec>) {
        if self.endpoints.by_ref.get(endpoint).map(|e| &e.spec) == spec.as_ref() {
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
                    counter_slot: NO_COUNTER_SLOT,
                },
                spec,
                tables,
            }
        });
        let mut touched: BTreeSet<IpAddr> = BTreeSet::new();
        if let Some(old) = self.endpoints.by_ref.remove(endpoint) {
            for ip in &old.spec.ips {
                if let Some(owners) = self.endpoints.owners.get_mut(ip) {
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
                self.endpoints
                    .owners
                    .entry(*ip)
                    .or_default()
                    .insert(endpoint.clone());
                touched.insert(*ip);
            }
            self.endpoints.by_ref.insert(endpoint.clone(), new);
        }
        for ip in touched {
            self.write_endpoint_entry(ip);
        }
    }

    pub(super) fn policy_list(
        &mut self,
        spec: &DirectionSpec,
        tables: &mut Vec<u32>,
    ) -> PolicyList {
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
    pub(super) fn write_endpoint_entry(&mut self, ip: IpAddr) {
        let key = EndpointKey {
            addr: identity_addr(ip),
        };
        let owner = self
            .endpoints
            .owners
            .get(&ip)
            .and_then(|owners| owners.first())
            .and_then(|endpoint| self.endpoints.by_ref.get(endpoint));
        let entry = owner.map(|endpoint| {
            let names = |spec: &DirectionSpec| -> Vec<Arc<Vec<PolicyName>>> {
                spec.slots.iter().map(|s| Arc::clone(&s.policies)).collect()
            };
            let explanation = EndpointExplanation {
                ingress: names(&endpoint.spec.ingress),
                egress: names(&endpoint.spec.egress),
            };
            (endpoint.value, explanation)
        });
        if entry.is_none() {
            self.endpoints.owners.remove(&ip);
        }
        self.output.write_endpoint(key, entry);
    }

    pub(super) fn acquire_table(&mut self, content: &Arc<TableContent>) -> u32 {
        match self.tables.acquire(content, &mut self.next_table, 1) {
            Acquired::Existing(id) => id,
            Acquired::Created(id) => {
                self.table_created(id, content);
                id
            }
        }
    }

    pub(super) fn release_table(&mut self, id: u32) {
        if self.tables.release(id).is_some() {
            self.table_retired(id);
        }
    }

    pub(super) fn table_created(&mut self, id: u32, content: &TableContent) {
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
            self.output.set_entries(id, reserved::ANY, entries);
        }
    }

    pub(super) fn table_retired(&mut self, id: u32) {
        self.output.clear_table(id);
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

    pub(super) fn acquire_peer(&mut self, peer: &Peer) -> PeerId {
        match self.peers.acquire(peer, &mut self.next_peer, 1) {
            Acquired::Existing(id) => id,
            Acquired::Created(id) => {
                self.peer_created(id, peer);
                id
            }
        }
    }

    pub(super) fn release_peer(&mut self, id: PeerId) {
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
    pub(super) fn peer_created(&mut self, id: PeerId, peer: &Peer) {
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
    pub(super) fn candidates(&self, peer: &Peer, block: Option<usize>) -> Vec<u32> {
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

    /// Tables that can have entries for an identity with these members.
    pub(super) fn tables_of(&self, members: &BTreeSet<PeerId>) -> BTreeSet<u32> {
        let mut tables: BTreeSet<u32> = members
            .iter()
            .filter_map(|p| self.peer_info.get(p))
            .flat_map(|info| info.tables.iter().copied())
            .collect();
        tables.extend(self.unpeered_named.iter().copied());
        tables
    }

    pub(super) fn refresh_pod_entries(&mut self, table: u32, identity: u32) {
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
        self.output.set_entries(table, identity, entries);
    }

    pub(super) fn refresh_cidr_entries(&mut self, table: u32, class: u32, blocks: &[usize]) {
        let (Some(info), Some(content)) = (self.table_info.get(&table), self.tables.get(table))
        else {
            return;
        };
        let entries = rules::cidr_entries(table, class, &content.items, &info.peers, blocks);
        self.output.set_entries(table, class, entries);
    }
}
