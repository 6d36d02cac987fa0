//! From the cluster model to the exact contents of the three policy maps, incrementally.
//!
//! The compiler keeps the cluster it last compiled and its compiled state; each compile
//! finds the objects that changed and updates only what they affect. See
//! docs/architecture.md for the map layouts and why they look like this.
//!
//! 1. [`relevance`]: what the policies can observe (label keys, named ports, `ipBlock`s).
//! 2. [`views`]: each pod address reduced to that: equal views share a pod identity.
//! 3. [`tables`]: each local endpoint's list of rule tables, one per selecting policy.
//! 4. [`engine`]: identities, tables and their rule entries, reference counted, so a change
//!    touches only the entries of what it created or retired ([`rules`] computes them).
//!
//! Each compile first chooses one [`plan`] from what changed (nothing, an update, new
//! network-set memberships, or a rebuild), then [`Compiler::compile`] carries it out.
//! [`ordered`] builds Calico's ordered tables; [`policy_name`] names the policies behind
//! every table, for explanations.

mod diff;
mod engine;
mod interner;
mod ordered;
mod plan;
mod policy_name;
mod ports;
mod relevance;
mod rules;
mod tables;
#[cfg(test)]
mod tests;
pub mod trace;
mod views;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    sync::Arc,
};

use ipnet::IpNet;
use policy_common::{
    IPV4_MAPPED_PREFIX_BITS,
    endpoint::{EndpointKey, EndpointPolicy, TableRef, lookup},
    identity::{IdentityKey, IdentityValue},
    ipv4_mapped,
    rule::{RuleKey, RuleValue},
};

use self::{
    diff::Changes,
    engine::{EndpointRef, Engine},
    plan::{CompilePlan, Observed},
    relevance::Relevance,
};
pub use self::{
    engine::{Counts, EndpointExplanation},
    ordered::{
        PROFILE_RULE_REF, TIER_DEFAULT_RULE, Verdict,
        cells::{PolicyTrace, RuleTrace, TierEnd, TierTrace},
    },
    policy_name::{PolicyDirection, PolicyKind, PolicyName},
    ports::port_prefixes,
    tables::Failsafe,
};
use crate::{
    calico::resources::HostEndpoint,
    model::{Cluster, Pod},
};

/// Which pods this agent enforces on, and what counts as its own node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Only pods scheduled to this node are local endpoints; `None` makes every pod local
    /// (a single-node lab, or a file datastore that describes only this host).
    pub node_name: Option<String>,
    /// The node's own addresses: traffic between an endpoint and its node is always allowed.
    pub host_addrs: Vec<IpAddr>,
}

impl Scope {
    /// Whether a host endpoint is this node's to enforce (every one when no node is named).
    /// A host endpoint naming every interface (`*`) is not supported and never local.
    pub fn is_local_host(&self, host: &HostEndpoint) -> bool {
        host.interface_name.as_deref() != Some("*") && self.is_host_node(host)
    }

    /// Whether a host endpoint names this node (every one when no node is named).
    pub fn is_host_node(&self, host: &HostEndpoint) -> bool {
        self.node_name
            .as_ref()
            .is_none_or(|node| *node == host.node)
    }

    pub fn is_local(&self, pod: &Pod) -> bool {
        match (&self.node_name, &pod.node_name) {
            (None, _) => true,
            (Some(node), Some(pod_node)) => node == pod_node,
            (Some(_), None) => false,
        }
    }
}

/// An LPM trie key as the kernel stores it: prefix length, then data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LpmKey<K> {
    pub prefix_len: u32,
    pub data: K,
}

/// The desired contents of every map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MapContents {
    pub endpoints: BTreeMap<EndpointKey, EndpointPolicy>,
    pub identities: BTreeMap<LpmKey<IdentityKey>, IdentityValue>,
    pub rules: BTreeMap<LpmKey<RuleKey>, RuleValue>,
}

impl MapContents {
    /// Every table reference of every endpoint, both directions.
    pub fn listed_tables(&self) -> impl Iterator<Item = TableRef> + '_ {
        self.endpoints
            .values()
            .flat_map(|e| [&e.ingress, &e.egress])
            .flat_map(|list| list.tables.iter().take(list.count as usize).copied())
    }

    /// The tables some endpoint lists that are ordered (Calico).
    pub fn ordered_tables(&self) -> BTreeSet<u32> {
        self.listed_tables()
            .filter(|t| t.lookups & lookup::ORDERED != 0)
            .map(|t| t.table)
            .collect()
    }
}

/// The keys of the entries a compile may have added, changed or removed: what the datapath
/// has to look at to follow it, so that a small change costs a small sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MapChanges {
    pub endpoints: BTreeSet<EndpointKey>,
    pub identities: BTreeSet<LpmKey<IdentityKey>>,
    pub rules: BTreeSet<LpmKey<RuleKey>>,
}

impl MapChanges {
    /// Every key of `maps`.
    pub fn all_of(maps: &MapContents) -> Self {
        let mut changes = Self::default();
        changes.include(maps);
        changes
    }

    /// Adds every key of `maps`.
    pub fn include(&mut self, maps: &MapContents) {
        self.endpoints.extend(maps.endpoints.keys().copied());
        self.identities.extend(maps.identities.keys().copied());
        self.rules.extend(maps.rules.keys().copied());
    }

    /// Adds another compile's changes.
    pub fn absorb(&mut self, other: MapChanges) {
        self.endpoints.extend(other.endpoints);
        self.identities.extend(other.identities);
        self.rules.extend(other.rules);
    }

    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty() && self.identities.is_empty() && self.rules.is_empty()
    }
}

/// What a compile produced: the maps, plus what explains their entries.
#[derive(Debug, Clone, Default)]
pub struct Compiled {
    /// Every entry. Shared with the compiler: drop it before the next compile, or that compile
    /// has to copy the maps to change them.
    pub maps: Arc<MapContents>,
    /// What changed since the previous compile (everything, for the first).
    pub changes: MapChanges,
    /// For each endpoint address, the policies behind each slot of its table lists; with a
    /// rule entry's `rule_ref` this names the policy rule that allowed a packet.
    pub explanations: Arc<BTreeMap<EndpointKey, EndpointExplanation>>,
    /// This node's host endpoints: the interfaces the agent attaches the host programs to, and
    /// the addresses bound to each.
    pub host_interfaces: Vec<HostInterface>,
    /// Whether this compile rebuilt everything with new identity and table numbers: the maps
    /// must then be switched over as a renumbering (see `dataplane::renumber`), since no
    /// order of single writes keeps every packet's verdict the old or the new one.
    pub renumbered: bool,
}

/// A host endpoint's interface and its expected addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInterface {
    /// The HostEndpoint's name.
    pub endpoint: String,
    pub interface: String,
    pub ips: Vec<IpAddr>,
}

impl Compiled {
    /// "NetworkPolicy ns/name ingress[i]" for a rule entry found in `slot` of the endpoint's
    /// list for `direction`.
    pub fn explain(
        &self,
        endpoint: IpAddr,
        direction: PolicyDirection,
        slot: usize,
        rule_ref: u32,
    ) -> Option<String> {
        let slots = self.explanations.get(&EndpointKey {
            addr: identity_addr(endpoint),
        })?;
        let slots = match direction {
            PolicyDirection::Ingress => &slots.ingress,
            PolicyDirection::Egress => &slots.egress,
        };
        let policy = slots.get(slot)?.get((rule_ref >> 16) as usize)?;
        Some(format!("{policy} {direction}[{}]", rule_ref & 0xffff))
    }
}

/// The compiler with the state it keeps between compiles.
pub struct Compiler {
    input: Cluster,
    scope: Option<Scope>,
    engine: Engine,
    contents: tables::ContentCache,
    failsafe: Failsafe,
    host_interfaces: Vec<HostInterface>,
}

impl Default for Compiler {
    fn default() -> Self {
        Self::new()
    }
}

impl Compiler {
    pub fn new() -> Self {
        Self {
            input: Cluster::default(),
            scope: None,
            engine: Engine::new(Relevance::default(), None, &[], None),
            contents: tables::ContentCache::default(),
            failsafe: Failsafe::default(),
            host_interfaces: Vec::new(),
        }
    }

    /// A compiler whose host endpoints accept these failsafe ports instead of Calico's.
    pub fn with_failsafe(failsafe: Failsafe) -> Self {
        Self {
            failsafe,
            ..Self::new()
        }
    }

    /// Brings the maps to `cluster`: observes what changed, chooses a [`CompilePlan`] from
    /// that alone, and carries it out.
    pub fn compile(&mut self, cluster: &Cluster, scope: &Scope) -> Compiled {
        let changes = Changes::between(&self.input, cluster);
        let calico_changed = cluster.calico != self.input.calico;
        let relevance = (!changes.policies.is_empty() || calico_changed)
            .then(|| Relevance::numbered_after(cluster, &self.engine.relevance))
            .filter(|relevance| *relevance != self.engine.relevance);
        let observed = Observed {
            scope_changed: self.scope.as_ref() != Some(scope),
            relevance_changed: relevance.is_some(),
            only_set_members_changed: relevance.as_ref().is_some_and(|relevance| {
                relevance.same_but_owned_blocks(&self.engine.relevance)
                    && self.only_set_nets_changed(cluster, &changes)
            }),
            matched_services_changed: self.matched_services_changed(cluster),
            calico_context_changed: self.calico_context_changed(cluster, &changes),
            calico_changed,
            objects_changed: !changes.is_empty(),
            has_calico_context: self.engine.calico.is_some(),
        };
        let plan = CompilePlan::choose(&observed);
        let renumbered = plan == CompilePlan::Rebuild;
        match (plan, relevance) {
            (CompilePlan::Rebuild, _) => {
                let previous = Arc::clone(&self.engine.output.maps);
                self.rebuild(cluster, scope);
                // The new numbering replaces every entry: what the old state held must go too.
                self.engine.output.changes.include(&previous);
                self.input = cluster.clone();
            }
            (CompilePlan::NewMemberships, Some(relevance)) => {
                self.follow_memberships(relevance, cluster, scope, &changes);
                self.follow_input(cluster, &changes, true);
            }
            (CompilePlan::Update { every_endpoint }, _) => {
                self.update(cluster, scope, &changes, every_endpoint);
                self.follow_input(cluster, &changes, calico_changed);
            }
            (CompilePlan::Nothing | CompilePlan::NewMemberships, _) => {
                // New memberships come with a new relevance: `choose` says so.
                self.follow_endpoint_slices(cluster);
            }
        }
        Compiled {
            maps: Arc::clone(&self.engine.output.maps),
            changes: std::mem::take(&mut self.engine.output.changes),
            explanations: Arc::clone(&self.engine.output.explanations),
            host_interfaces: self.host_interfaces.clone(),
            renumbered,
        }
    }

    /// Keeps the compiled copy of the cluster equal to `cluster` after a plan that followed
    /// `changes` (a rebuild copies it whole).
    fn follow_input(&mut self, cluster: &Cluster, changes: &Changes, calico_changed: bool) {
        changes.apply_to(&mut self.input, cluster);
        if calico_changed {
            self.input.calico = cluster.calico.clone();
        }
        self.follow_endpoint_slices(cluster);
    }

    /// [`CompilePlan::NewMemberships`], in one step: the blocks' and addresses' CIDR classes
    /// under `relevance`, then the pods' views (memberships are part of them), then every
    /// endpoint's tables, built afresh because their contents read the sets (an endpoint's
    /// own address may be in one).
    fn follow_memberships(
        &mut self,
        relevance: Relevance,
        cluster: &Cluster,
        scope: &Scope,
        changes: &Changes,
    ) {
        let context = Arc::new(ordered::CalicoContext::of(cluster, &relevance));
        self.engine.set_owned_blocks(relevance, context, cluster);
        self.contents = tables::ContentCache::default();
        self.update(cluster, scope, changes, true);
    }

    /// The maps as of the last compile.
    pub fn maps(&self) -> &MapContents {
        &self.engine.output.maps
    }

    /// Whether a change reaches what every ordered table is built on, so that only a rebuild
    /// follows it: the network sets (and the labels of their namespaces) make the Calico
    /// context and the blocks, and host endpoints are set up by rebuilds only. Policies and
    /// tiers are not in it: a change to those (whose label keys, nets and named ports the
    /// identities already observe) re-evaluates the endpoints' tables instead.
    fn calico_context_changed(&self, cluster: &Cluster, changes: &Changes) -> bool {
        let (old, new) = (&self.input.calico, &cluster.calico);
        old.network_sets != new.network_sets
            || old.host_endpoints != new.host_endpoints
            || self.set_namespace_relabelled(cluster, changes)
    }

    /// Whether the endpoints (addresses, ports) of a Service that a Calico rule now matches
    /// differ from what the last compile saw.
    fn matched_services_changed(&self, cluster: &Cluster) -> bool {
        if cluster.calico.policies.is_empty() {
            return false;
        }
        ordered::service_match::matched(cluster)
            .iter()
            .any(|(service, groups)| {
                ordered::service_match::endpoint_groups(&self.input, service) != *groups
            })
    }

    /// Keeps the compiled copy's EndpointSlices current when no rebuild took them, so that
    /// [`Compiler::matched_services_changed`] compares with what was compiled.
    fn follow_endpoint_slices(&mut self, cluster: &Cluster) {
        if self.input.endpoint_slices != cluster.endpoint_slices {
            self.input.endpoint_slices = cluster.endpoint_slices.clone();
        }
    }

    /// Whether a changed namespace holds (or held) a NetworkSet: its labels are the set's
    /// namespace labels for `namespaceSelector`s.
    fn set_namespace_relabelled(&self, cluster: &Cluster, changes: &Changes) -> bool {
        changes.namespaces.iter().any(|ns| {
            cluster
                .calico
                .network_sets
                .keys()
                .chain(self.input.calico.network_sets.keys())
                .any(|(set_ns, _)| set_ns == ns)
        })
    }

    /// Whether, of what [`Compiler::calico_context_changed`] watches, only the CIDRs of
    /// network sets changed: the same sets with the same labels, the same host endpoints, no
    /// relabelled namespace holding a set.
    fn only_set_nets_changed(&self, cluster: &Cluster, changes: &Changes) -> bool {
        let (old, new) = (&self.input.calico, &cluster.calico);
        old.host_endpoints == new.host_endpoints
            && !self.set_namespace_relabelled(cluster, changes)
            && old.network_sets.len() == new.network_sets.len()
            && old.network_sets.iter().zip(&new.network_sets).all(
                |((old_key, old_set), (new_key, new_set))| {
                    old_key == new_key
                        && old_set.labels == new_set.labels
                        && old_set.namespace == new_set.namespace
                },
            )
    }

    /// Sizes of the compiled state (identities, tables...).
    pub fn counts(&self) -> Counts {
        self.engine.counts()
    }

    /// Everything from scratch: the first compile, or what the policies observe changed.
    /// Numbers restart above the old ones (never reused), so the map diff is still safe.
    fn rebuild(&mut self, cluster: &Cluster, scope: &Scope) {
        let relevance = Relevance::numbered_after(cluster, &self.engine.relevance);
        let calico = relevance
            .calico
            .then(|| Arc::new(ordered::CalicoContext::of(cluster, &relevance)));
        let mut engine = Engine::new(relevance, calico, &scope.host_addrs, Some(&self.engine));
        engine.view_pods(cluster);
        self.contents = tables::ContentCache::default();
        for ((ns, name), pod) in &cluster.pods {
            if pod.is_endpoint() && scope.is_local(pod) {
                let spec = tables::endpoint_spec(
                    pod,
                    cluster,
                    &mut self.contents,
                    ordered_inputs(&engine),
                );
                engine.set_endpoint(&EndpointRef::Pod((ns.clone(), name.clone())), Some(spec));
            }
        }
        self.engine = engine;
        self.set_host_endpoints(cluster, scope);
        self.scope = Some(scope.clone());
    }

    /// This node's host endpoints' tables (every host endpoint is in a rebuild's new engine,
    /// and a policy change keeps their set as it is: see [`Compiler::calico_context_changed`]).
    fn set_host_endpoints(&mut self, cluster: &Cluster, scope: &Scope) {
        self.host_interfaces.clear();
        // Said, not silently skipped: an operator expecting this host protected is not.
        for host in cluster.calico.host_endpoints.values() {
            if scope.is_host_node(host) && host.interface_name.as_deref() == Some("*") {
                tracing::warn!(
                    host_endpoint = %host.name,
                    "spec.interfaceName '*' (all interfaces) is not enforced by Palisade: this \
                     host endpoint's traffic is not checked; its addresses are still matched as \
                     a peer"
                );
            }
        }
        let hosts: Vec<(tables::EndpointSpec, HostInterface)> = match ordered_inputs(&self.engine) {
            None => Vec::new(),
            Some(inputs) => cluster
                .calico
                .host_endpoints
                .values()
                .filter(|host| scope.is_local_host(host))
                .map(|host| {
                    let spec = tables::host_endpoint_spec(host, cluster, inputs, &self.failsafe);
                    let interface = HostInterface {
                        endpoint: host.name.clone(),
                        interface: host
                            .interface_name
                            .clone()
                            .unwrap_or_else(|| "eth0".to_owned()),
                        ips: host.expected_ips.clone(),
                    };
                    (spec, interface)
                })
                .collect(),
        };
        for (spec, interface) in hosts {
            let key = EndpointRef::Host(interface.endpoint.clone());
            self.engine.set_endpoint(&key, Some(spec));
            self.host_interfaces.push(interface);
        }
    }

    /// Follows changed objects ([`CompilePlan::Update`]). `every_endpoint`: Calico policies
    /// or tiers changed (nothing else of Calico's, see [`Compiler::calico_context_changed`]),
    /// so every local endpoint's tables are evaluated again; new ordered contents get their
    /// cells, unchanged ones keep their entries.
    fn update(
        &mut self,
        cluster: &Cluster,
        scope: &Scope,
        changes: &Changes,
        every_endpoint: bool,
    ) {
        let in_namespace = |ns: &String| -> Vec<(String, String)> {
            cluster
                .pods
                .range((ns.clone(), String::new())..)
                .take_while(|((pod_ns, _), _)| pod_ns == ns)
                .map(|(key, _)| key.clone())
                .collect()
        };
        // Addresses: changed pods, and every pod of a relabelled namespace.
        let mut viewed: Vec<(String, String)> = changes.pods.clone();
        for ns in &changes.namespaces {
            viewed.extend(in_namespace(ns));
        }
        viewed.sort();
        viewed.dedup();
        for key in &viewed {
            let views = cluster
                .pods
                .get(key)
                .map(|pod| {
                    views::pod_views(
                        pod,
                        &cluster.namespace_labels(&pod.namespace),
                        &self.engine.relevance,
                    )
                })
                .unwrap_or_default();
            self.engine.set_pod_views(key, views);
        }
        // Endpoints: changed pods, and every pod of a namespace whose policies changed.
        for policy in &changes.policies {
            self.contents.forget(policy);
        }
        let mut enforced: Vec<(String, String)> = changes.pods.clone();
        for (ns, _) in &changes.policies {
            enforced.extend(in_namespace(ns));
        }
        if every_endpoint {
            // Every local endpoint (a pod leaving this node is among the changed pods).
            enforced.extend(
                cluster
                    .pods
                    .iter()
                    .filter(|(_, pod)| scope.is_local(pod))
                    .map(|(key, _)| key.clone()),
            );
        } else if self.engine.relevance.calico {
            // Namespace labels decide which global policies select its pods.
            for ns in &changes.namespaces {
                enforced.extend(in_namespace(ns));
            }
        }
        enforced.sort();
        enforced.dedup();
        for key in &enforced {
            let spec = cluster
                .pods
                .get(key)
                .filter(|pod| pod.is_endpoint() && scope.is_local(pod))
                .map(|pod| {
                    tables::endpoint_spec(
                        pod,
                        cluster,
                        &mut self.contents,
                        ordered_inputs(&self.engine),
                    )
                });
            self.engine
                .set_endpoint(&EndpointRef::Pod(key.clone()), spec);
        }
        if every_endpoint {
            self.set_host_endpoints(cluster, scope);
        }
    }
}

/// What ordered tables are built from, when there are Calico resources.
fn ordered_inputs(engine: &Engine) -> Option<tables::OrderedInputs<'_>> {
    engine
        .calico
        .as_deref()
        .map(|context| tables::OrderedInputs {
            relevance: &engine.relevance,
            context,
        })
}

/// 16-byte map form of an address.
pub fn identity_addr(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => ipv4_mapped(v4.octets()),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Prefix length of `net` in the 16-byte form.
fn prefix16(net: &IpNet) -> u32 {
    match net {
        IpNet::V4(v4) => IPV4_MAPPED_PREFIX_BITS + u32::from(v4.prefix_len()),
        IpNet::V6(v6) => u32::from(v6.prefix_len()),
    }
}

/// The identity-trie key of a prefix.
fn identity_key(net: &IpNet) -> LpmKey<IdentityKey> {
    LpmKey {
        prefix_len: prefix16(net),
        data: IdentityKey {
            addr: identity_addr(net.network()),
        },
    }
}
