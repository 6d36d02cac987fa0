//! Policy shapes: the rules that apply to one endpoint in one direction.
//!
//! An endpoint's shape is every rule of every policy that selects it in that direction, with
//! ingress named ports resolved against the endpoint's own container ports. Endpoints with
//! equal shapes share one policy id and therefore one set of rule entries.

use std::{fmt, net::IpAddr};

use super::{Scope, identity::named_port};
use crate::model::{Cluster, NetworkPolicy, Peer, Pod, PortMatch, Protocol, Rule};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    Ingress,
    Egress,
}

/// The policy rule an entry comes from, for explanations.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    pub namespace: String,
    pub name: String,
    pub direction: Direction,
    pub rule: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let direction = match self.direction {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        };
        write!(
            f,
            "NetworkPolicy {}/{} {direction}[{}]",
            self.namespace, self.name, self.rule
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ShapePort {
    /// The rule has no ports: every protocol and port.
    Any,
    AllPorts(Protocol),
    Range {
        protocol: Protocol,
        first: u16,
        last: u16,
    },
    /// An egress named port, resolved per peer identity when rules are expanded.
    EgressNamed {
        protocol: Protocol,
        name: String,
    },
}

/// One (peer, port) pair of a rule: the unit of allowing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShapeItem {
    /// `None`: every peer.
    pub peer: Option<Peer>,
    pub port: ShapePort,
    pub origin: Origin,
}

/// Sorted, deduplicated items; no items means "isolated, nothing allowed".
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shape {
    pub items: Vec<ShapeItem>,
}

pub struct EndpointShapes {
    pub ips: Vec<IpAddr>,
    /// `None`: no policy selects the endpoint for this direction (not isolated).
    pub ingress: Option<Shape>,
    pub egress: Option<Shape>,
}

pub fn endpoint_shapes(cluster: &Cluster, scope: &Scope) -> Vec<EndpointShapes> {
    cluster
        .pods
        .values()
        .filter(|pod| pod.is_endpoint() && is_local(pod, scope))
        .map(|pod| {
            // Policies are keyed by (namespace, name): only the pod's namespace can select it.
            let selecting: Vec<&NetworkPolicy> = cluster
                .policies
                .range((pod.namespace.clone(), String::new())..)
                .take_while(|((ns, _), _)| *ns == pod.namespace)
                .map(|(_, policy)| policy)
                .filter(|policy| policy.pod_selector.matches(&pod.labels))
                .collect();
            EndpointShapes {
                ips: pod.ips.iter().copied().collect(),
                ingress: shape(pod, &selecting, Direction::Ingress),
                egress: shape(pod, &selecting, Direction::Egress),
            }
        })
        .collect()
}

fn is_local(pod: &Pod, scope: &Scope) -> bool {
    match (&scope.node_name, &pod.node_name) {
        (None, _) => true,
        (Some(node), Some(pod_node)) => node == pod_node,
        (Some(_), None) => false,
    }
}

fn shape(pod: &Pod, selecting: &[&NetworkPolicy], direction: Direction) -> Option<Shape> {
    let mut isolated = false;
    let mut items = Vec::new();
    for policy in selecting {
        let rules = match direction {
            Direction::Ingress => policy.ingress.as_ref(),
            Direction::Egress => policy.egress.as_ref(),
        };
        let Some(rules) = rules else { continue };
        isolated = true;
        for (index, rule) in rules.iter().enumerate() {
            let origin = Origin {
                namespace: policy.namespace.clone(),
                name: policy.name.clone(),
                direction,
                rule: index,
            };
            expand_rule(pod, rule, direction, &origin, &mut items);
        }
    }
    isolated.then(|| {
        items.sort();
        items.dedup();
        Shape { items }
    })
}

fn expand_rule(
    pod: &Pod,
    rule: &Rule,
    direction: Direction,
    origin: &Origin,
    items: &mut Vec<ShapeItem>,
) {
    let ports: Vec<ShapePort> = match &rule.ports {
        None => vec![ShapePort::Any],
        Some(ports) => ports
            .iter()
            .filter_map(|port| match port {
                PortMatch::AllPorts(protocol) => Some(ShapePort::AllPorts(*protocol)),
                PortMatch::Range {
                    protocol,
                    first,
                    last,
                } => Some(ShapePort::Range {
                    protocol: *protocol,
                    first: *first,
                    last: *last,
                }),
                // Ingress: the destination is this pod, so the name resolves here, or the
                // port matches nothing.
                PortMatch::Named { protocol, name } => match direction {
                    Direction::Ingress => {
                        named_port(pod, *protocol, name).map(|port| ShapePort::Range {
                            protocol: *protocol,
                            first: port,
                            last: port,
                        })
                    }
                    Direction::Egress => Some(ShapePort::EgressNamed {
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
            items.push(ShapeItem {
                peer: peer.clone(),
                port: port.clone(),
                origin: origin.clone(),
            });
        }
    }
}
