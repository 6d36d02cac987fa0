//! Addresses and identities: each pod address gets the pod identity of its views and the
//! CIDR class of the blocks covering it, and each prefix its identity-map entry. A new
//! identity or class is given its rule entries in the tables that can match it (see
//! [`super::tables`] and [`super::ordered`]); a retired one loses them.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    sync::Arc,
};

use ipnet::IpNet;
use policy_common::identity::{self as reserved, IdentityValue};

use super::{Address, Engine, PodRef};
use crate::{
    compiler::{
        identity_key,
        interner::Acquired,
        ordered::{CalicoContext, cells::OwnerLabels},
        relevance::Relevance,
        rules::Entries,
        views::{self, IdentityViews, PodView, peer_matches},
    },
    model::Cluster,
};

impl Engine {
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
    pub(super) fn classify_blocks(&mut self) {
        let mut prefixes = self.relevance.block_prefixes();
        // A block that is exactly a node address (a Service endpoint of a host-network pod,
        // a network set listing a node) never decides: the address's entry is the host's.
        // A class for it would be carried by no identity entry, its rule entries by nobody.
        prefixes.retain(|prefix| {
            prefix.prefix_len() != prefix.max_prefix_len()
                || !self.addresses.host.contains(&prefix.addr())
        });
        let mut classes = BTreeMap::new();
        for prefix in &prefixes {
            let covering = self.relevance.covering(prefix);
            classes.insert(*prefix, self.acquire_cidr(&covering));
        }
        let old = std::mem::replace(&mut self.addresses.block_prefixes, classes);
        // Released after acquiring: a class still in use keeps its number.
        for class in old.values() {
            self.release_cidr(*class);
        }
        let touched: BTreeSet<IpNet> = old.keys().copied().chain(prefixes).collect();
        for prefix in touched {
            self.write_identity_entry(prefix);
        }
        let addresses: Vec<IpAddr> = self.addresses.by_ip.keys().copied().collect();
        for ip in addresses {
            let covering = self.relevance.covering(&IpNet::from(ip));
            let class = self.acquire_cidr(&covering);
            let old = match self.addresses.by_ip.get_mut(&ip) {
                Some(address) => std::mem::replace(&mut address.cidr, class),
                None => reserved::WORLD,
            };
            self.release_cidr(old);
            self.write_identity_entry(IpNet::from(ip));
        }
    }

    /// Sets the views of every address of a pod (none: the pod owns no address).
    pub fn set_pod_views(&mut self, pod: &PodRef, views: Vec<(IpAddr, Arc<PodView>)>) {
        let old = self.addresses.pod_views.remove(pod).unwrap_or_default();
        if old == views {
            if !views.is_empty() {
                self.addresses.pod_views.insert(pod.clone(), views);
            }
            return;
        }
        for (ip, view) in &views {
            let address = self.addresses.by_ip.entry(*ip).or_insert_with(|| Address {
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
            if let Some(address) = self.addresses.by_ip.get_mut(ip) {
                address.owners.remove(pod);
            }
            self.refresh_address(*ip);
        }
        if !views.is_empty() {
            self.addresses.pod_views.insert(pod.clone(), views);
        }
    }

    pub(super) fn refresh_address(&mut self, ip: IpAddr) {
        let Some(address) = self.addresses.by_ip.get(&ip) else {
            return;
        };
        let (old_identity, old_cidr) = (address.pod_identity, address.cidr);
        if address.owners.is_empty() {
            self.addresses.by_ip.remove(&ip);
            self.release_identity(old_identity);
            self.release_cidr(old_cidr);
        } else {
            let mut key: IdentityViews = address.owners.values().cloned().collect();
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
            if let Some(address) = self.addresses.by_ip.get_mut(&ip) {
                address.pod_identity = identity;
                address.cidr = cidr;
            }
            // Released after acquiring: an unchanged key keeps its number.
            self.release_identity(old_identity);
        }
        self.write_identity_entry(IpNet::from(ip));
    }

    pub(super) fn acquire_identity(&mut self, key: &IdentityViews) -> u32 {
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

    pub(super) fn release_identity(&mut self, id: u32) {
        if id < reserved::FIRST_ALLOCATED {
            return;
        }
        if let Some(key) = self.identities.release(id) {
            self.identity_retired(id, &key);
        }
    }

    pub(super) fn identity_created(&mut self, id: u32, key: &IdentityViews) {
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

    pub(super) fn identity_retired(&mut self, id: u32, key: &IdentityViews) {
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
            self.output.set_entries(table, id, Entries::new());
        }
        for table in self.ordered_tables.keys().copied().collect::<Vec<_>>() {
            self.output.set_entries(table, id, Entries::new());
        }
    }

    pub(super) fn acquire_cidr(&mut self, blocks: &Vec<usize>) -> u32 {
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

    pub(super) fn release_cidr(&mut self, id: u32) {
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
                self.output.set_entries(table, id, Entries::new());
            }
        }
    }

    /// Rewrites the identity-map entry of a prefix from what claims it: the node's own
    /// addresses first, then pod addresses, then `ipBlock` prefixes.
    pub(super) fn write_identity_entry(&mut self, net: IpNet) {
        let key = identity_key(&net);
        let single = net.prefix_len() == net.max_prefix_len();
        let value = if single && self.addresses.host.contains(&net.addr()) {
            Some(IdentityValue {
                pod_identity: reserved::HOST,
                cidr_identity: reserved::WORLD,
            })
        } else if let Some(address) = self.addresses.by_ip.get(&net.addr()).filter(|_| single) {
            Some(IdentityValue {
                pod_identity: address.pod_identity,
                cidr_identity: address.cidr,
            })
        } else {
            self.addresses
                .block_prefixes
                .get(&net)
                .map(|cidr| IdentityValue {
                    pod_identity: reserved::WORLD,
                    cidr_identity: *cidr,
                })
        };
        self.output.write_identity(key, value);
    }
}
