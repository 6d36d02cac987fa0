//! Random Calico resources on top of [`crate::generate`]'s clusters, for the property tests of
//! ordered tables: tiers with either default action, GlobalNetworkPolicies and namespaced
//! Calico NetworkPolicies at random orders in those tiers, rules with every action and the
//! entity fields Palisade enforces (nets, notNets, selector, notSelector, namespaceSelector
//! including `global()`, destination and source ports and notPorts with ranges and named
//! ports, serviceAccounts, protocol, notProtocol, ipVersion, icmp and notICMP types and
//! codes, `services` on the peer side), and network sets and host endpoints (as peers) that
//! rule selectors match by label, and EndpointSlices of the Services rules match, whose
//! endpoints are the world's addresses.
//!
//! Administrators' policy comes with them: network-policy-api ClusterNetworkPolicies in both
//! tiers (priorities from a small pool, so that they collide), AdminNetworkPolicies and the
//! BaselineAdminNetworkPolicy, with Accept/Allow, Deny and Pass, `namespaces`, `pods` and
//! `networks` peers, ports, ranges and named ports, and Calico policies placed in their tiers
//! `kube-admin` and `kube-baseline` too. A sixteenth of the cases have no Calico tiers or
//! policies, so that the translations alone make the tables ordered.
//!
//! A quarter of the cases ([`calico_case`]; every one of [`staged_calico_case`]) carry staged
//! policies too (StagedGlobalNetworkPolicy, StagedNetworkPolicy,
//! StagedKubernetesNetworkPolicy), as YAML beside the rest: `Set` ones copying one of the
//! case's policies with some of its fields changed, or adding a new one; `Delete` ones naming
//! one of the case's policies, or a kind, namespace and name that may name none. The agent
//! reads them with `policy_agent::model::staged::parse_value` ([`CalicoCase::agent_cluster`]
//! fills `Cluster::staged`), the model with its own reader.
//!
//! Resources are generated as v3 YAML and read with the agent's own parser, so only valid
//! resources reach the tests; what the datastore refuses (a peer's named source port in an
//! ingress rule) is never generated.

mod admin;
mod policies;
mod staged_policies;
mod world;

pub use self::{
    admin::cluster_policy,
    policies::{IcmpPick, icmp_picks},
};
use self::{
    admin::{cluster_policy_document, cluster_policy_of},
    policies::{SOURCE_PORTS, nets, policy, tier},
    staged_policies::{StagedPick, staged_documents, staged_picks},
    world::{endpoint_slice, host_endpoint, network_set, pick_addresses, slice_spec},
};

use proptest::prelude::*;
use serde_json::Value;

use crate::{
    calico_reference::CalicoWorld,
    generate::{agent_cluster, world},
};
use policy_agent::{
    calico::resources::{CalicoResource, parse_documents},
    cluster_policy::ClusterPolicy,
    model::{
        Cluster,
        staged::{self, StagedKind},
    },
};

/// A Kubernetes world with Calico resources, and their YAML (what a failure prints).
#[derive(Debug, Clone)]
pub struct CalicoCase {
    pub world: CalicoWorld,
    pub yaml: String,
    pub resources: Vec<CalicoResource>,
}

impl CalicoCase {
    /// The cluster as the agent sees it.
    pub fn agent_cluster(&self) -> Cluster {
        let mut cluster = agent_cluster(&self.kubernetes_world());
        for resource in &self.resources {
            cluster.calico.insert(resource.clone());
        }
        for policy in &self.world.cluster_policies {
            cluster.insert_cluster_policy(policy.clone());
        }
        for slice in &self.world.endpoint_slices {
            let slice = policy_agent::model::convert::endpoint_slice(slice)
                .expect("generated EndpointSlices are valid");
            cluster
                .endpoint_slices
                .insert((slice.namespace.clone(), slice.name.clone()), slice);
        }
        for policy in self.agent_staged() {
            let key = (policy.kind, policy.namespace.clone(), policy.name.clone());
            cluster.staged.insert(key, policy);
        }
        cluster
    }

    /// The staged policies among the case's YAML, read by the agent's own reader
    /// ([`staged::parse_value`], what its file datastore calls): one per kind, namespace and
    /// name, the last one.
    pub fn agent_staged(&self) -> Vec<staged::StagedPolicy> {
        if !self.yaml.contains("kind: Staged") {
            return Vec::new();
        }
        let mut out = Vec::new();
        for document in serde_yaml::Deserializer::from_str(&self.yaml) {
            let value = <serde_yaml::Value as serde::Deserialize>::deserialize(document)
                .unwrap_or_else(|e| panic!("the case's YAML: {e}\n{}", self.yaml));
            let kind = value
                .get("apiVersion")
                .and_then(serde_yaml::Value::as_str)
                .filter(|v| v.starts_with("projectcalico.org/"))
                .and_then(|_| value.get("kind"))
                .and_then(serde_yaml::Value::as_str)
                .and_then(StagedKind::from_name);
            if let Some(kind) = kind {
                out.push(staged::parse_value(kind, value).unwrap_or_else(|e| {
                    panic!("generated an invalid staged policy: {e:?}\n{}", self.yaml)
                }));
            }
        }
        out
    }
}

/// A random world with Calico resources (and Kubernetes NetworkPolicies among them), and
/// administrators' policy in most; a quarter of them carry staged policies.
pub fn calico_case() -> impl Strategy<Value = CalicoCase> {
    calico_case_with(prop_oneof![3 => Just(Vec::new()), 1 => staged_picks(1..4)])
}

/// A world of [`calico_case`]'s that carries one to four staged picks (a pick that would
/// change or delete one of the case's policies when it has none is dropped, so a few cases
/// have none staged).
pub fn staged_calico_case() -> impl Strategy<Value = CalicoCase> {
    calico_case_with(staged_picks(1..5))
}

fn calico_case_with(
    staged: impl Strategy<Value = Vec<StagedPick>>,
) -> impl Strategy<Value = CalicoCase> {
    let tiers = prop::collection::vec(tier(), 0..3);
    let policies = (1usize..5).prop_flat_map(|n| (0..n).map(policy).collect::<Vec<_>>());
    let sets = (0usize..3).prop_flat_map(|n| (0..n).map(network_set).collect::<Vec<_>>());
    let hosts = (0usize..3).prop_flat_map(|n| (0..n).map(host_endpoint).collect::<Vec<_>>());
    let sets = (sets, hosts)
        .prop_map(|(sets, hosts)| sets.into_iter().chain(hosts).collect::<Vec<Value>>());
    let slices = prop::collection::vec(slice_spec(), 0..6);
    // One or two administrators' policies in most worlds: each costs its translation's
    // compile, and the test's run time is to stay about what it was without them.
    let cluster = prop_oneof![1 => Just(0usize), 4 => 1usize..3]
        .prop_flat_map(|n| (0..n).map(cluster_policy_document).collect::<Vec<_>>());
    // A sixteenth of the worlds have no Calico tiers or policies: administrators' policy
    // (when there is some) and NetworkPolicies alone. Few, as they deny little (the kernel
    // test wants a tenth of its flows denied); elsewhere the endpoints no Calico policy
    // applies to already get ordered tables from the translations alone.
    let calico = prop_oneof![
        1 => Just((Vec::new(), Vec::new())),
        15 => (tiers, policies),
    ];
    (world(), calico, sets, slices, cluster, staged).prop_map(
        |(kubernetes, (tiers, policies), sets, slices, cluster, staged)| {
            let staged = staged_documents(&staged, &policies, &kubernetes.policies);
            let mut seen = std::collections::BTreeSet::new();
            let documents: Vec<Value> = tiers
                .into_iter()
                .flatten()
                // One declaration per tier name.
                .filter(|t| seen.insert(t["metadata"]["name"].to_string()))
                .chain(policies)
                .chain(sets)
                .collect();
            let to_yaml = |documents: &[Value]| {
                documents
                    .iter()
                    .map(|d| serde_yaml::to_string(d).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("---\n")
            };
            let mut yaml = to_yaml(&documents);
            let resources: Vec<CalicoResource> = parse_documents(&yaml)
                .into_iter()
                .map(|r| r.unwrap_or_else(|e| panic!("generated an invalid resource: {e}\n{yaml}")))
                .collect();
            // The staged policies follow the enforced resources, read by each side with its
            // own reader (the agent's in `CalicoCase::agent_cluster`).
            if !staged.is_empty() {
                yaml.push_str("---\n");
                yaml.push_str(&to_yaml(&staged));
            }
            // The model reads the resources from the YAML itself, applying Calico's defaults
            // on its own rather than taking the ones the agent checked.
            let mut world = CalicoWorld::read(&kubernetes, &yaml)
                .unwrap_or_else(|e| panic!("the model cannot read the case: {e}\n{yaml}"));
            // One object per kind and name, the last generated one: as the API server holds
            // them.
            let mut cluster_documents: Vec<Value> = Vec::new();
            for document in cluster.into_iter().rev() {
                let key = |d: &Value| (d["kind"].clone(), d["metadata"]["name"].clone());
                if !cluster_documents.iter().any(|d| key(d) == key(&document)) {
                    cluster_documents.push(document);
                }
            }
            cluster_documents.reverse();
            for document in &cluster_documents {
                world.cluster_policies.push(cluster_policy_of(document));
                yaml.push_str("---\n");
                yaml.push_str(&serde_yaml::to_string(document).unwrap_or_default());
            }
            let addrs = crate::generate::addresses(&kubernetes);
            world.endpoint_slices = slices
                .iter()
                .enumerate()
                .filter_map(|(index, spec)| endpoint_slice(index, spec, &addrs))
                .collect();
            for slice in &world.endpoint_slices {
                yaml.push_str("---\n");
                yaml.push_str(&serde_yaml::to_string(slice).unwrap_or_default());
            }
            CalicoCase {
                world,
                yaml,
                resources,
            }
        },
    )
}

/// A change to a case's Calico policies, for the incremental tests: what an operator's
/// `calicoctl apply` or `delete` of one policy does.
#[derive(Debug, Clone)]
pub enum CalicoEdit {
    /// Deletes one of the case's Calico policies (none when it has none).
    RemovePolicy(prop::sample::Index),
    /// Applies a generated policy, given as its v3 YAML: added, or replacing the one of the
    /// same name and namespace. The agent parses the YAML as it does a datastore's, the
    /// model reads it as written.
    PutPolicy(String),
    /// Replaces the CIDRs of one of the case's network sets (none when it has none), labels
    /// kept: the change a block list's updates make.
    SetNets(prop::sample::Index, Vec<ipnet::IpNet>),
    /// Replaces the endpoints of one of the case's EndpointSlices (none when it has none)
    /// with addresses of its family picked from the world's, or empties it: a Service's pods
    /// coming and going.
    SetEndpoints(prop::sample::Index, Vec<prop::sample::Index>),
    /// Deletes one of the case's administrators' policies (none when it has none).
    RemoveClusterPolicy(prop::sample::Index),
    /// Applies an administrators' policy (its YAML for the failure's listing): added, or
    /// replacing the one of the same kind and name.
    PutClusterPolicy(Box<ClusterPolicy>, String),
}

pub fn calico_edit() -> impl Strategy<Value = CalicoEdit> {
    prop_oneof![
        any::<prop::sample::Index>().prop_map(CalicoEdit::RemoveClusterPolicy),
        cluster_policy()
            .prop_map(|(policy, yaml)| CalicoEdit::PutClusterPolicy(Box::new(policy), yaml)),
        any::<prop::sample::Index>().prop_map(CalicoEdit::RemovePolicy),
        (0usize..5).prop_flat_map(policy).prop_map(|document| {
            let yaml = serde_yaml::to_string(&document).unwrap_or_default();
            agent_policy(&yaml);
            CalicoEdit::PutPolicy(yaml)
        }),
        (
            any::<prop::sample::Index>(),
            prop::collection::vec(any::<prop::sample::Index>(), 0..3)
        )
            .prop_map(|(index, picks)| CalicoEdit::SetEndpoints(index, picks)),
        (any::<prop::sample::Index>(), any::<bool>()).prop_flat_map(|(index, v6)| {
            nets(v6).prop_map(move |nets| {
                let nets = nets
                    .iter()
                    .map(|n| n.parse::<ipnet::IpNet>().map(|n| n.trunc()))
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap_or_default();
                CalicoEdit::SetNets(index, nets)
            })
        }),
    ]
}

/// The one policy of `yaml` as the agent parses it (every generated one is valid).
fn agent_policy(yaml: &str) -> CalicoResource {
    match parse_documents(yaml).pop() {
        Some(Ok(resource)) => resource,
        other => panic!("generated an invalid policy: {other:?}\n{yaml}"),
    }
}

/// A network set's key: namespace (none for global) and name.
fn set_key(resource: &CalicoResource) -> Option<(Option<String>, String)> {
    match resource {
        CalicoResource::GlobalNetworkSet(s) | CalicoResource::NetworkSet(s) => {
            Some((s.namespace.clone(), s.name.clone()))
        }
        _ => None,
    }
}

/// A Calico policy's key: namespace (empty for global) and name.
fn policy_key(resource: &CalicoResource) -> Option<(Option<String>, String)> {
    match resource {
        CalicoResource::GlobalNetworkPolicy(p) | CalicoResource::NetworkPolicy(p) => {
            Some((p.namespace.clone(), p.name.clone()))
        }
        _ => None,
    }
}

impl CalicoCase {
    /// Applies an edit to the resources, the model's world and the YAML a failure prints.
    pub fn apply(&mut self, edit: &CalicoEdit) {
        match edit {
            CalicoEdit::RemoveClusterPolicy(index) => {
                let count = self.world.cluster_policies.len();
                if count > 0 {
                    let removed = self.world.cluster_policies.remove(index.index(count));
                    self.yaml
                        .push_str(&format!("# then deleted: {}\n", removed.describe()));
                }
                return;
            }
            CalicoEdit::PutClusterPolicy(policy, yaml) => {
                let policies = &mut self.world.cluster_policies;
                policies.retain(|p| (p.kind, &p.name) != (policy.kind, &policy.name));
                policies.push(policy.as_ref().clone());
                // Commented out, as the other edits are: the listing stays the first world.
                self.yaml.push_str("# then applied:\n");
                for line in yaml.lines() {
                    self.yaml.push_str(&format!("#   {line}\n"));
                }
                return;
            }
            _ => {}
        }
        if let CalicoEdit::SetEndpoints(index, picks) = edit {
            let count = self.world.endpoint_slices.len();
            if count == 0 {
                return;
            }
            let addrs = crate::generate::addresses(&self.kubernetes_world());
            let slice = &mut self.world.endpoint_slices[index.index(count)];
            let v6 = slice.address_type == "IPv6";
            let addresses = pick_addresses(&addrs, v6, picks);
            slice.endpoints = addresses
                .iter()
                .map(|a| k8s_openapi::api::discovery::v1::Endpoint {
                    addresses: vec![a.clone()],
                    ..Default::default()
                })
                .collect();
            self.yaml.push_str(&format!(
                "# then set EndpointSlice {:?}/{:?}'s endpoints to {addresses:?}\n",
                slice.metadata.namespace, slice.metadata.name
            ));
            return;
        }
        if let CalicoEdit::SetNets(index, nets) = edit {
            let keys: Vec<_> = self.resources.iter().filter_map(set_key).collect();
            if keys.is_empty() {
                return;
            }
            let key = keys[index.index(keys.len())].clone();
            for resource in &mut self.resources {
                if set_key(resource).as_ref() == Some(&key)
                    && let CalicoResource::GlobalNetworkSet(set) | CalicoResource::NetworkSet(set) =
                        resource
                {
                    set.nets = nets.clone();
                }
            }
            for set in &mut self.world.network_sets {
                if (set.namespace.clone(), set.name.clone()) == key {
                    set.nets = nets.clone();
                }
            }
            self.yaml.push_str(&format!(
                "# then set {:?}/{}'s nets to {nets:?}\n",
                key.0, key.1
            ));
            return;
        }
        let put = match edit {
            CalicoEdit::PutPolicy(yaml) => Some(agent_policy(yaml)),
            _ => None,
        };
        let removed = match edit {
            CalicoEdit::RemovePolicy(index) => {
                let keys: Vec<_> = self.resources.iter().filter_map(policy_key).collect();
                if keys.is_empty() {
                    return;
                }
                keys[index.index(keys.len())].clone()
            }
            CalicoEdit::PutPolicy(_) => match put.as_ref().and_then(policy_key) {
                Some(key) => key,
                None => return,
            },
            CalicoEdit::SetNets(..)
            | CalicoEdit::SetEndpoints(..)
            | CalicoEdit::RemoveClusterPolicy(_)
            | CalicoEdit::PutClusterPolicy(..) => return,
        };
        self.resources
            .retain(|r| policy_key(r).as_ref() != Some(&removed));
        self.world
            .policies
            .retain(|p| (p.namespace.clone(), p.name.clone()) != removed);
        let (namespace, name) = &removed;
        let namespace = namespace.as_deref().unwrap_or("(global)");
        match edit {
            CalicoEdit::RemovePolicy(_) => {
                self.yaml
                    .push_str(&format!("# then deleted: {namespace}/{name}\n"));
            }
            CalicoEdit::PutPolicy(yaml) => {
                self.resources.extend(put);
                self.world
                    .extend_from_yaml(yaml)
                    .unwrap_or_else(|e| panic!("the model cannot read a policy: {e}\n{yaml}"));
                // Commented out, as the other edits are: the listing stays the first world.
                self.yaml
                    .push_str(&format!("# then applied {namespace}/{name}:\n"));
                for line in yaml.lines() {
                    self.yaml.push_str(&format!("#   {line}\n"));
                }
            }
            CalicoEdit::SetNets(..)
            | CalicoEdit::SetEndpoints(..)
            | CalicoEdit::RemoveClusterPolicy(_)
            | CalicoEdit::PutClusterPolicy(..) => {}
        }
    }
}

/// A flow of the Calico tests: the datapath's view (protocol, and the destination port or
/// ICMP type << 8 | code) and the model's packet.
#[derive(Debug, Clone, Copy)]
pub struct CalicoFlow {
    pub src: std::net::IpAddr,
    pub dst: std::net::IpAddr,
    pub protocol: u8,
    /// The source port (0 for ICMP).
    pub sport: u16,
    pub key_port: u16,
    pub model: crate::calico_reference::Packet,
}

impl CalicoCase {
    /// The Kubernetes part of the world, for the Kubernetes-side helpers.
    pub fn kubernetes_world(&self) -> crate::reference::World {
        crate::reference::World {
            namespaces: self.world.namespaces.clone(),
            pods: self.world.pods.clone(),
            policies: self.world.k8s_policies.clone(),
            node_addrs: self.world.node_addrs.clone(),
        }
    }

    /// The picked flows between this world's addresses (same family, not to itself).
    pub fn flows(&self, picks: &[crate::generate::FlowPick], icmp: &[IcmpPick]) -> Vec<CalicoFlow> {
        use crate::{calico_reference::Packet, generate::protocol_number};
        use policy_agent::calico::resources::Protocol;
        let addrs = crate::generate::addresses(&self.kubernetes_world());
        let usable = |src: std::net::IpAddr, dst: std::net::IpAddr| {
            src != dst && src.is_ipv4() == dst.is_ipv4()
        };
        let mut flows = Vec::new();
        for (i, (src, dst, protocol, port)) in picks.iter().enumerate() {
            let (src, dst) = (*src.get(&addrs), *dst.get(&addrs));
            if usable(src, dst) {
                let number = protocol_number(protocol);
                // The source ports the generated rules' `source.ports` cut at, and a client's
                // ephemeral port, spread over the picks.
                let sport = SOURCE_PORTS[(i + usize::from(*port)) % SOURCE_PORTS.len()];
                flows.push(CalicoFlow {
                    src,
                    dst,
                    protocol: number,
                    sport,
                    key_port: *port,
                    model: Packet::new(src, dst, Protocol(number), sport, *port),
                });
            }
        }
        // Flows to and from the Services' endpoints at their slices' ports (random pairs
        // rarely land on one with its port): what `services` matches decide.
        for (i, slice) in self.world.endpoint_slices.iter().enumerate() {
            let Some(endpoint) = slice
                .endpoints
                .first()
                .and_then(|e| e.addresses.first())
                .and_then(|a| a.parse::<std::net::IpAddr>().ok())
            else {
                continue;
            };
            let (number, port) = slice
                .ports
                .iter()
                .flatten()
                .find_map(|p| {
                    let number = match p.protocol.as_deref() {
                        Some("UDP") => 17,
                        Some("SCTP") => 132,
                        _ => 6,
                    };
                    p.port
                        .and_then(|n| u16::try_from(n).ok())
                        .map(|n| (number, n))
                })
                .unwrap_or((6, 80));
            let peers: Vec<_> = addrs
                .iter()
                .copied()
                .filter(|a| usable(*a, endpoint))
                .collect();
            if peers.is_empty() {
                continue;
            }
            let peer = peers[(i * 7 + usize::from(port)) % peers.len()];
            let sport = SOURCE_PORTS[i % SOURCE_PORTS.len()];
            for (src, dst) in [(peer, endpoint), (endpoint, peer)] {
                flows.push(CalicoFlow {
                    src,
                    dst,
                    protocol: number,
                    sport,
                    key_port: port,
                    model: Packet::new(src, dst, Protocol(number), sport, port),
                });
            }
        }
        for (src, dst, kind, code) in icmp {
            let (src, dst) = (*src.get(&addrs), *dst.get(&addrs));
            if usable(src, dst) {
                let model = Packet::icmp(src, dst, *kind, *code);
                flows.push(CalicoFlow {
                    src,
                    dst,
                    protocol: model.protocol,
                    sport: 0,
                    key_port: u16::from(*kind) << 8 | u16::from(*code),
                    model,
                });
            }
        }
        flows
    }
}
