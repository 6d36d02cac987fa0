//! Rule tables: what each policy allows, per direction, as the endpoints it selects see it.
//!
//! Each policy that selects an endpoint and applies in a direction gives a table content: the
//! policy's rules with ingress named ports resolved against the endpoint's own container
//! ports (built once per policy otherwise). The endpoint's list keeps [`SEPARATE_TABLES`] of
//! them apart and merges the rest into its last slot. Contents are interned by the engine, so
//! endpoints with the same tables share their entries: rule entries grow with distinct sets of
//! selecting policies, not with pods.

use std::{collections::HashMap, net::IpAddr, sync::Arc};

use policy_common::endpoint::MAX_TABLES;

/// How many tables an endpoint's direction lists before the rest are merged into its last
/// one. Every table costs the datapath up to three lookups on a new flow, so fewer is
/// faster; separate tables are shared by more endpoints (a policy's table serves every
/// endpoint it selects, a merged one only endpoints selected by the same policies), so more
/// is smaller and cheaper to update. Kubernetes policies only allow, so any split is exact.
pub(super) const SEPARATE_TABLES: usize = 1;
const _: () = assert!(SEPARATE_TABLES >= 1 && SEPARATE_TABLES <= MAX_TABLES);

use super::{
    ordered::{self, CalicoContext, OrderedContent},
    policy_name::{PolicyDirection, PolicyKind, PolicyName},
    relevance::Relevance,
    views::named_port,
};
use crate::{
    calico::resources::HostEndpoint,
    model::{Cluster, NetworkPolicy, Peer, Pod, PortMatch, Protocol, Rule},
};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PortSpec {
    /// The rule has no ports: every protocol and port.
    Any,
    AllPorts(Protocol),
    Range {
        protocol: Protocol,
        first: u16,
        last: u16,
    },
    /// An egress named port, resolved against each peer pod's identity.
    EgressNamed {
        protocol: Protocol,
        name: String,
    },
}

/// One (peer, port) pair of a rule: the unit of allowing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableItem {
    /// `None`: every peer.
    pub peer: Option<Peer>,
    pub port: PortSpec,
    /// See `policy_common::rule::RuleValue::rule_ref`.
    pub rule_ref: u32,
}

/// Items in rule order; where two cover the same key the first keeps its `rule_ref` (the
/// verdict is the same either way).
///
/// Tables are interned by content for every endpoint of every compile, so the content's hash
/// is computed once, when it is built, and equality compares it first.
#[derive(Debug, Clone)]
pub struct TableContent {
    pub items: Vec<TableItem>,
    /// An ordered table (Calico): `items` is empty, and this says everything.
    pub ordered: Option<Arc<OrderedContent>>,
    hash: u64,
}

impl TableContent {
    pub fn new(items: Vec<TableItem>) -> Self {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(&items);
        Self {
            items,
            ordered: None,
            hash,
        }
    }

    pub fn ordered(content: OrderedContent) -> Self {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(&content);
        Self {
            items: Vec::new(),
            ordered: Some(Arc::new(content)),
            hash,
        }
    }
}

impl PartialEq for TableContent {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.items == other.items && self.ordered == other.ordered
    }
}

impl Eq for TableContent {}

impl std::hash::Hash for TableContent {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// One entry of an endpoint's table list and the policies it stands for (one, or several for
/// the merged last slot; `rule_ref >> 16` indexes them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub content: Arc<TableContent>,
    pub policies: Arc<Vec<PolicyName>>,
}

/// Table contents per policy and direction, kept between compiles: a policy's content is the
/// same for every endpoint it selects (and built once) unless its ingress rules name ports,
/// which resolve per endpoint.
#[derive(Debug, Default)]
pub struct ContentCache {
    policies: HashMap<(String, String), CachedPolicy>,
}

#[derive(Debug)]
struct CachedPolicy {
    name: Arc<Vec<PolicyName>>,
    /// `None`: resolved per endpoint.
    ingress: Option<Arc<TableContent>>,
    egress: Option<Arc<TableContent>>,
}

impl ContentCache {
    /// Drops what was built from a policy that changed.
    pub fn forget(&mut self, policy: &(String, String)) {
        self.policies.remove(policy);
    }

    fn get(&mut self, pod: &Pod, policy: &NetworkPolicy) -> &CachedPolicy {
        self.policies
            .entry((policy.namespace.clone(), policy.name.clone()))
            .or_insert_with(|| {
                let named_ingress = policy.ingress.iter().flatten().any(|rule| {
                    rule.ports
                        .iter()
                        .flatten()
                        .any(|p| matches!(p, PortMatch::Named { .. }))
                });
                CachedPolicy {
                    name: Arc::new(vec![PolicyName {
                        kind: PolicyKind::Kubernetes,
                        namespace: policy.namespace.clone(),
                        name: policy.name.clone(),
                    }]),
                    ingress: (!named_ingress)
                        .then(|| Arc::new(content(pod, policy, PolicyDirection::Ingress))),
                    egress: Some(Arc::new(content(pod, policy, PolicyDirection::Egress))),
                }
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DirectionSpec {
    /// Some policy selecting the endpoint applies in this direction.
    pub isolated: bool,
    pub slots: Vec<Slot>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    pub ips: Vec<IpAddr>,
    /// A host endpoint: bound to its interface only (see `IFINDEX_NONE`).
    pub host: bool,
    pub ingress: DirectionSpec,
    pub egress: DirectionSpec,
}

/// With Calico resources: what ordered tables are built from.
#[derive(Clone, Copy)]
pub struct OrderedInputs<'a> {
    pub relevance: &'a Relevance,
    pub context: &'a CalicoContext,
}

/// The tables of a local endpoint.
pub fn endpoint_spec(
    pod: &Pod,
    cluster: &Cluster,
    cache: &mut ContentCache,
    ordered_inputs: Option<OrderedInputs<'_>>,
) -> EndpointSpec {
    let mut spec = kubernetes_spec(pod, cluster, cache);
    let Some(inputs) = ordered_inputs else {
        return spec;
    };
    for (direction, slot) in [
        (PolicyDirection::Ingress, &mut spec.ingress),
        (PolicyDirection::Egress, &mut spec.egress),
    ] {
        if let Some(content) =
            ordered::build(pod, cluster, inputs.relevance, inputs.context, direction)
        {
            let policies = Arc::new(content.policy_names());
            *slot = DirectionSpec {
                isolated: true,
                slots: vec![Slot {
                    content: Arc::new(TableContent::ordered(content)),
                    policies,
                }],
            };
        }
    }
    spec
}

/// The tables of a host endpoint: one ordered table per direction, failsafe ports first.
pub fn host_endpoint_spec(
    host: &HostEndpoint,
    cluster: &Cluster,
    inputs: OrderedInputs<'_>,
    failsafe: &Failsafe,
) -> EndpointSpec {
    let direction = |direction: PolicyDirection, ports: &[(u8, u16)]| {
        let content = ordered::build_host(
            host,
            cluster,
            inputs.relevance,
            inputs.context,
            direction,
            ports,
        );
        DirectionSpec {
            isolated: true,
            slots: vec![Slot {
                policies: Arc::new(content.policy_names()),
                content: Arc::new(TableContent::ordered(content)),
            }],
        }
    };
    EndpointSpec {
        ips: host.expected_ips.clone(),
        host: true,
        ingress: direction(PolicyDirection::Ingress, &failsafe.inbound),
        egress: direction(PolicyDirection::Egress, &failsafe.outbound),
    }
}

/// Calico's failsafe ports: (protocol, port)s a host endpoint always accepts (`inbound`, to
/// the host) and may always use (`outbound`), whatever policy says, so that an operator never
/// locks themselves out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failsafe {
    pub inbound: Vec<(u8, u16)>,
    pub outbound: Vec<(u8, u16)>,
}

impl Default for Failsafe {
    /// Felix's defaults (`FailsafeInboundHostPorts`, `FailsafeOutboundHostPorts`): SSH, DHCP,
    /// BGP, etcd, Typha and the API server.
    fn default() -> Self {
        const TCP: u8 = 6;
        const UDP: u8 = 17;
        let shared = [179, 2379, 2380, 5473, 6443, 6666, 6667].map(|port| (TCP, port));
        let mut inbound = vec![(TCP, 22), (UDP, 68)];
        inbound.extend(shared);
        let mut outbound = vec![(UDP, 53), (UDP, 67)];
        outbound.extend(shared);
        Failsafe { inbound, outbound }
    }
}

impl Failsafe {
    /// `tcp:22,udp:68,...` (Felix's notation); the empty string is none.
    pub fn parse_ports(list: &str) -> Result<Vec<(u8, u16)>, String> {
        list.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                let (protocol, port) = item
                    .split_once(':')
                    .ok_or_else(|| format!("{item:?}: expected protocol:port, e.g. tcp:22"))?;
                let protocol = match protocol.to_ascii_lowercase().as_str() {
                    "tcp" => 6,
                    "udp" => 17,
                    "sctp" => 132,
                    other => return Err(format!("{item:?}: unknown protocol {other:?}")),
                };
                let port = port
                    .parse::<u16>()
                    .map_err(|e| format!("{item:?}: port: {e}"))?;
                Ok((protocol, port))
            })
            .collect()
    }
}

/// The allow-only tables of Kubernetes policies alone.
fn kubernetes_spec(pod: &Pod, cluster: &Cluster, cache: &mut ContentCache) -> EndpointSpec {
    // Policies are keyed by (namespace, name): only the pod's namespace can select it, and
    // the map order is the policy order.
    let selecting: Vec<&NetworkPolicy> = cluster
        .policies
        .range((pod.namespace.clone(), String::new())..)
        .take_while(|((ns, _), _)| *ns == pod.namespace)
        .map(|(_, policy)| policy.as_ref())
        .filter(|policy| policy.pod_selector.matches(&pod.labels))
        .collect();
    EndpointSpec {
        ips: pod.ips.iter().copied().collect(),
        host: false,
        ingress: direction_spec(pod, &selecting, PolicyDirection::Ingress, cache),
        egress: direction_spec(pod, &selecting, PolicyDirection::Egress, cache),
    }
}

/// The table of one policy in one direction for `pod`.
fn content(pod: &Pod, policy: &NetworkPolicy, direction: PolicyDirection) -> TableContent {
    let rules = match direction {
        PolicyDirection::Ingress => policy.ingress.as_deref(),
        PolicyDirection::Egress => policy.egress.as_deref(),
    };
    let mut items = Vec::new();
    for (index, rule) in rules.unwrap_or_default().iter().enumerate() {
        let rule_ref = u32::try_from(index).unwrap_or(u32::MAX).min(0xffff);
        expand_rule(pod, rule, direction, rule_ref, &mut items);
    }
    TableContent::new(items)
}

fn direction_spec(
    pod: &Pod,
    selecting: &[&NetworkPolicy],
    direction: PolicyDirection,
    cache: &mut ContentCache,
) -> DirectionSpec {
    let mut spec = DirectionSpec::default();
    for policy in selecting {
        let applies = match direction {
            PolicyDirection::Ingress => policy.ingress.is_some(),
            PolicyDirection::Egress => policy.egress.is_some(),
        };
        if !applies {
            continue;
        }
        spec.isolated = true;
        let cached = cache.get(pod, policy);
        let cached_content = match direction {
            PolicyDirection::Ingress => cached.ingress.clone(),
            PolicyDirection::Egress => cached.egress.clone(),
        };
        let policies = Arc::clone(&cached.name);
        let content = cached_content.unwrap_or_else(|| Arc::new(content(pod, policy, direction)));
        // A policy that allows nothing isolates without needing a table.
        if !content.items.is_empty() {
            spec.slots.push(Slot { content, policies });
        }
    }
    if spec.slots.len() > SEPARATE_TABLES {
        // Kubernetes rules only allow, so merging the tail into one table keeps the verdict.
        let tail = spec.slots.split_off(SEPARATE_TABLES - 1);
        let mut items = Vec::new();
        let mut policies = Vec::new();
        for (member, slot) in tail.into_iter().enumerate() {
            let member = u32::try_from(member).unwrap_or(u32::MAX).min(0xffff);
            items.extend(slot.content.items.iter().map(|item| TableItem {
                rule_ref: item.rule_ref | (member << 16),
                ..item.clone()
            }));
            policies.extend(slot.policies.iter().cloned());
        }
        spec.slots.push(Slot {
            content: Arc::new(TableContent::new(items)),
            policies: Arc::new(policies),
        });
    }
    spec
}

fn expand_rule(
    pod: &Pod,
    rule: &Rule,
    direction: PolicyDirection,
    rule_ref: u32,
    items: &mut Vec<TableItem>,
) {
    let ports: Vec<PortSpec> = match &rule.ports {
        None => vec![PortSpec::Any],
        Some(ports) => ports
            .iter()
            .filter_map(|port| match port {
                PortMatch::AllPorts(protocol) => Some(PortSpec::AllPorts(*protocol)),
                PortMatch::Range {
                    protocol,
                    first,
                    last,
                } => Some(PortSpec::Range {
                    protocol: *protocol,
                    first: *first,
                    last: *last,
                }),
                // Ingress: the destination is this pod, so the name resolves here, or the
                // port matches nothing.
                PortMatch::Named { protocol, name } => match direction {
                    PolicyDirection::Ingress => {
                        named_port(pod, *protocol, name).map(|port| PortSpec::Range {
                            protocol: *protocol,
                            first: port,
                            last: port,
                        })
                    }
                    PolicyDirection::Egress => Some(PortSpec::EgressNamed {
                        protocol: *protocol,
                        name: name.clone(),
                    }),
                },
            })
            .collect(),
    };
    let peers: Vec<Option<Peer>> = match &rule.peers {
        None => vec![None],
        Some(peers) => peers.iter().cloned().map(Some).collect(),
    };
    for peer in &peers {
        for port in &ports {
            items.push(TableItem {
                peer: peer.clone(),
                port: port.clone(),
                rule_ref,
            });
        }
    }
}
