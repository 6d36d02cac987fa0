//! The world the model evaluates over, the packet it judges, and loading both from YAML.

use std::{fmt, net::IpAddr};

use k8s_openapi::api::{
    core::v1::{Namespace, Pod},
    discovery::v1::EndpointSlice,
    networking::v1::NetworkPolicy,
};
use policy_agent::{
    calico::resources::{Protocol, parse_documents},
    cluster_policy::{self, ApiKind, ClusterPolicy},
    model::staged as agent_staged,
};
use serde_yaml::Value;

use super::resources::{
    self, HostEndpoint, NetworkSet, Policy, Resource, StagedChange, StagedKind, StagedPolicy,
    StagedSet, Tier,
};
use crate::reference::{self, World};

/// The order of the `default` tier when no Tier resource declares it (libcalico-go's
/// `DefaultTierOrder`).
pub const DEFAULT_TIER_ORDER: f64 = 1_000_000.0;

/// Everything a Calico verdict depends on.
#[derive(Debug, Clone, Default)]
pub struct CalicoWorld {
    pub namespaces: Vec<Namespace>,
    pub pods: Vec<Pod>,
    /// Kubernetes NetworkPolicies (networking.k8s.io/v1).
    pub k8s_policies: Vec<NetworkPolicy>,
    /// GlobalNetworkPolicies (`namespace` None) and namespaced Calico NetworkPolicies.
    pub policies: Vec<Policy>,
    pub tiers: Vec<Tier>,
    /// GlobalNetworkSets (`namespace` None) and namespaced NetworkSets.
    pub network_sets: Vec<NetworkSet>,
    /// Host endpoints: peers that own their `expectedIPs` (never enforced on here).
    pub host_endpoints: Vec<HostEndpoint>,
    /// EndpointSlices (discovery.k8s.io/v1), as the API server holds them: what a rule's
    /// `services` match reads.
    pub endpoint_slices: Vec<EndpointSlice>,
    /// Administrators' policy (network-policy-api ClusterNetworkPolicy, AdminNetworkPolicy,
    /// BaselineAdminNetworkPolicy), validated but evaluated as written: placed in the tiers
    /// `kube-admin` and `kube-baseline` by the model itself.
    pub cluster_policies: Vec<ClusterPolicy>,
    /// The nodes' own addresses.
    pub node_addrs: Vec<IpAddr>,
    /// Staged policies (StagedGlobalNetworkPolicy, StagedNetworkPolicy,
    /// StagedKubernetesNetworkPolicy), one per kind, namespace and name: never part of the
    /// verdict, only of [`CalicoWorld::pending`]'s.
    pub staged: Vec<StagedPolicy>,
}

impl From<&World> for CalicoWorld {
    /// The same cluster, with its Kubernetes NetworkPolicies and no Calico resources.
    fn from(world: &World) -> Self {
        CalicoWorld {
            namespaces: world.namespaces.clone(),
            pods: world.pods.clone(),
            k8s_policies: world.policies.clone(),
            node_addrs: world.node_addrs.clone(),
            ..CalicoWorld::default()
        }
    }
}

impl CalicoWorld {
    /// Adds one Calico resource as the model reads it (a host endpoint only as a peer);
    /// returns whether the resource was taken (always, today).
    pub fn insert(&mut self, resource: Resource) -> bool {
        match resource {
            Resource::Policy(p) => self.policies.push(*p),
            Resource::Tier(t) => self.tiers.push(t),
            Resource::NetworkSet(s) => self.network_sets.push(s),
            Resource::HostEndpoint(h) => self.host_endpoints.push(h),
            Resource::Staged(s) => {
                // One staged object per kind, namespace and name, the last one applied (as the
                // API server holds them).
                self.staged.retain(|other| !other.same_object(&s));
                self.staged.push(*s);
            }
        }
        true
    }

    /// The world as it would be with every staged policy applied, and none staged: what
    /// pending verdicts are decided on. A staged `Set` takes the place of the enforced
    /// policy of its kind (Calico GlobalNetworkPolicy, Calico NetworkPolicy or Kubernetes
    /// NetworkPolicy), namespace and name, or is added when there is none; a `Delete` takes
    /// that policy away (nothing, when there is none). Kinds never meet: a staged Calico
    /// NetworkPolicy leaves a Kubernetes NetworkPolicy of the same name alone, and so on.
    pub fn pending(&self) -> CalicoWorld {
        let mut world = self.clone();
        world.staged.clear();
        for staged in &self.staged {
            let name = staged.name.as_str();
            match staged.kind {
                StagedKind::GlobalNetworkPolicy | StagedKind::NetworkPolicy => world
                    .policies
                    .retain(|p| !(p.namespace == staged.namespace && p.name == name)),
                StagedKind::KubernetesNetworkPolicy => world.k8s_policies.retain(|np| {
                    !(Some(reference::namespace_of(&np.metadata)) == staged.namespace
                        && np.metadata.name.as_deref() == Some(name))
                }),
            }
            match &staged.change {
                StagedChange::Delete => {}
                StagedChange::Set(StagedSet::Calico(policy)) => {
                    world.policies.push(policy.as_ref().clone());
                }
                StagedChange::Set(StagedSet::Kubernetes(np)) => {
                    world.k8s_policies.push(np.as_ref().clone());
                }
            }
        }
        world
    }

    /// Adds one Calico v3 resource (not a `List`) read from its YAML as written, with
    /// Calico's defaults applied by the model ([`resources`]); a staged policy is kept apart
    /// from the enforced ones ([`CalicoWorld::staged`]). The resource is assumed valid: check
    /// it with the agent's `parse_documents` (or, for a staged policy,
    /// `policy_agent::model::staged::parse_value`) first, as [`CalicoWorld::from_yaml`] does.
    pub fn add_document(&mut self, value: &Value) -> Result<(), String> {
        self.insert(resources::read(value)?);
        Ok(())
    }

    /// Reads a multi-document YAML file holding Calico v3 resources (through
    /// [`parse_documents`]; staged policies through `policy_agent::model::staged::parse_value`,
    /// kept apart in [`CalicoWorld::staged`]), network-policy-api objects (through the agent's validation,
    /// [`cluster_policy::parse_value`]: the model needs valid objects, not their meaning) and
    /// Kubernetes `Namespace`, `Pod`, `NetworkPolicy` and `EndpointSlice` objects.
    /// Node addresses are not part of the file: set [`CalicoWorld::node_addrs`].
    pub fn from_yaml(text: &str) -> Result<CalicoWorld, String> {
        let mut world = CalicoWorld::default();
        world.extend_from_yaml(text)?;
        Ok(world)
    }

    /// The Kubernetes world `kubernetes` plus every object of `yaml` ([`CalicoWorld::from_yaml`]):
    /// how a generated case's world is built from its YAML, so that the model reads the
    /// Calico resources as written rather than as the agent checked them.
    pub fn read(kubernetes: &World, yaml: &str) -> Result<CalicoWorld, String> {
        let mut world = CalicoWorld::from(kubernetes);
        world.extend_from_yaml(yaml)?;
        Ok(world)
    }

    /// Adds every object of a multi-document YAML file, as [`CalicoWorld::from_yaml`] reads
    /// them: Calico resources are checked by the agent's validation (which objects are valid
    /// is its question) and then read from the YAML as written by the model itself.
    pub fn extend_from_yaml(&mut self, text: &str) -> Result<(), String> {
        let world = self;
        for (index, document) in split_documents(text).into_iter().enumerate() {
            let value: Value = serde_yaml::from_str(document)
                .map_err(|e| format!("document {}: invalid YAML: {e}", index + 1))?;
            if value.is_null() {
                continue;
            }
            let field = |name: &str| {
                value
                    .get(name)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let (api_version, kind) = (field("apiVersion"), field("kind"));
            let context = |e: &dyn fmt::Display| format!("document {} ({kind}): {e}", index + 1);
            if api_version.starts_with("projectcalico.org/")
                && let Some(staged) = agent_staged::StagedKind::from_name(&kind)
            {
                // A staged policy: whether it is valid is the agent's validation's question
                // (`policy_agent::model::staged::parse_value`); what it means, the model's.
                agent_staged::parse_value(staged, value.clone()).map_err(|(field, message)| {
                    context(&format!("{}: {message}", field.unwrap_or_default()))
                })?;
                world.add_document(&value).map_err(|e| context(&e))?;
                continue;
            }
            if api_version.starts_with("projectcalico.org/") {
                for resource in parse_documents(document) {
                    resource.map_err(|e| context(&e))?;
                }
                match value.get("items") {
                    Some(Value::Sequence(items)) if kind.ends_with("List") => {
                        for item in items {
                            world.add_document(item).map_err(|e| context(&e))?;
                        }
                    }
                    _ => world.add_document(&value).map_err(|e| context(&e))?,
                }
                continue;
            }
            if let Some(kind) = ApiKind::from_api(&api_version, &kind) {
                world
                    .cluster_policies
                    .push(cluster_policy::parse_value(kind, value).map_err(|e| context(&e))?);
                continue;
            }
            match kind.as_str() {
                "Namespace" => world
                    .namespaces
                    .push(serde_yaml::from_value(value).map_err(|e| context(&e))?),
                "Pod" => world
                    .pods
                    .push(serde_yaml::from_value(value).map_err(|e| context(&e))?),
                "NetworkPolicy" => world
                    .k8s_policies
                    .push(serde_yaml::from_value(value).map_err(|e| context(&e))?),
                "EndpointSlice" => world
                    .endpoint_slices
                    .push(serde_yaml::from_value(value).map_err(|e| context(&e))?),
                _ => {
                    return Err(context(
                        &"only Calico resources, ClusterNetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy and Namespace, Pod, NetworkPolicy, EndpointSlice are read",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The verdict on `packet`; see [`crate::calico_reference`] for the semantics.
    pub fn verdict(&self, packet: &Packet) -> super::Decision {
        super::verdict(self, packet)
    }
}

/// Documents of a multi-document file, split at `---` lines.
fn split_documents(text: &str) -> Vec<&str> {
    let mut documents = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end();
        if bare == "---" || bare.starts_with("--- ") {
            documents.push(text.get(start..offset).unwrap_or_default());
            start = offset + line.len();
        }
        offset += line.len();
    }
    documents.push(text.get(start..).unwrap_or_default());
    documents
        .into_iter()
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .collect()
}

/// An ICMP type and code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IcmpHeader {
    pub icmp_type: u8,
    pub code: u8,
}

/// The first packet of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Packet {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, 132 SCTP, 136 UDPLite, ...).
    pub protocol: u8,
    /// Ports are only meaningful for TCP, UDP, SCTP and UDPLite.
    pub src_port: u16,
    pub dst_port: u16,
    /// Type and code of an ICMP/ICMPv6 packet.
    pub icmp: Option<IcmpHeader>,
}

impl Packet {
    pub fn new(src: IpAddr, dst: IpAddr, protocol: Protocol, src_port: u16, dst_port: u16) -> Self {
        Packet {
            src,
            dst,
            protocol: protocol.0,
            src_port,
            dst_port,
            icmp: None,
        }
    }

    pub fn tcp(src: IpAddr, dst: IpAddr, dst_port: u16) -> Self {
        Packet::new(src, dst, Protocol::TCP, 40_000, dst_port)
    }

    pub fn udp(src: IpAddr, dst: IpAddr, dst_port: u16) -> Self {
        Packet::new(src, dst, Protocol::UDP, 40_000, dst_port)
    }

    /// ICMP for IPv4 addresses, ICMPv6 for IPv6 ones.
    pub fn icmp(src: IpAddr, dst: IpAddr, icmp_type: u8, code: u8) -> Self {
        let protocol = if src.is_ipv4() {
            Protocol::ICMP
        } else {
            Protocol::ICMPV6
        };
        Packet {
            icmp: Some(IcmpHeader { icmp_type, code }),
            ..Packet::new(src, dst, protocol, 0, 0)
        }
    }

    /// The packet's own ICMP protocol: ICMP for IPv4, ICMPv6 for IPv6.
    pub fn is_icmp(&self) -> bool {
        let own = if self.src.is_ipv4() {
            Protocol::ICMP
        } else {
            Protocol::ICMPV6
        };
        self.protocol == own.0
    }

    pub fn has_ports(&self) -> bool {
        Protocol(self.protocol).has_ports()
    }
}

impl fmt::Display for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let protocol = Protocol(self.protocol);
        let addr = |f: &mut fmt::Formatter<'_>, ip: IpAddr, port: u16| -> fmt::Result {
            match (ip, self.has_ports()) {
                (IpAddr::V4(ip), true) => write!(f, "{ip}:{port}"),
                (IpAddr::V6(ip), true) => write!(f, "[{ip}]:{port}"),
                (ip, false) => write!(f, "{ip}"),
            }
        };
        write!(f, "{protocol} ")?;
        addr(f, self.src, self.src_port)?;
        f.write_str(" -> ")?;
        addr(f, self.dst, self.dst_port)?;
        if let Some(icmp) = self.icmp {
            write!(f, " type {} code {}", icmp.icmp_type, icmp.code)?;
        }
        Ok(())
    }
}
