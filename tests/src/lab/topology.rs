//! The lab's network: "node" namespaces that route between pod namespaces, each pod joined to
//! its node by a veth pair, like a CNI with per-pod routes; with more than one node, the nodes
//! are joined by a "fabric" namespace (a bridge) and route each other's pods through it, as a
//! routed cluster does.
//!
//! Nothing is ever added to the machine's root namespace: every veth is created inside a node
//! namespace with its peer placed straight into the pod (or fabric) namespace. Pods have /32
//! (/128) addresses and an on-link default route, so they ARP (or solicit) for every
//! destination; their node answers with proxy ARP (proxy NDP) and forwards by its per-pod
//! routes: to a local pod's veth, or to the pod's node over the fabric.
//!
//! A scenario with a Calico `HostEndpoint` always has the fabric (even with one node): the host
//! endpoint's node faces the fabric through an interface named as the host endpoint says
//! (`spec.interfaceName`, default `eth0`) instead of [`FABRIC_IF`], carrying the host endpoint's
//! `expectedIPs` beside the node's fabric addresses, and every other node routes those
//! addresses to it as it routes its pods, so traffic between a pod elsewhere and the host
//! endpoint crosses that interface, where the node's agent enforces host endpoint policy.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use anyhow::{Context as _, bail};

use super::{
    agent::IFACE_PREFIX,
    cleanup::Resources,
    netns::{self, Netns},
    scenario::{HostEndpointInfo, PodInfo, PodRef},
};

/// The node of every pod without `spec.nodeName`: the lab's only node unless a scenario names
/// others.
pub const DEFAULT_NODE: &str = "lab-node";

/// Node addresses on the fabric: node `i` (the default node is 0) has `.i+1` / `::i+1`. Taken
/// from ranges scenarios do not use for pods (198.18.0.0/15 is the benchmarking range); a pod
/// address inside them is refused.
const FABRIC_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);
const FABRIC_V4_LEN: u8 = 24;
const FABRIC_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xfab, 0, 0, 0, 0, 0, 0);
const FABRIC_V6_LEN: u8 = 64;
/// The node's interface on the fabric.
pub const FABRIC_IF: &str = "fabric0";
/// The bridge in the fabric namespace that every node's fabric interface is a port of.
const FABRIC_BRIDGE: &str = "br0";

/// First address the lab hands out: 10.42.0.10, .11, ...
const FIRST_ASSIGNED: Ipv4Addr = Ipv4Addr::new(10, 42, 0, 10);

/// One pod's place in the lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPlan {
    /// Position among the declared pods: names its namespace and host interface.
    pub index: usize,
    pub pod: PodRef,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    /// The node it runs on: its `spec.nodeName`, else [`DEFAULT_NODE`].
    pub node: String,
}

impl PodPlan {
    /// Host-side veth in the node namespace (the agent attaches to it).
    pub fn host_if(&self) -> String {
        format!("{IFACE_PREFIX}{}", self.index)
    }

    /// The pod's namespace name in lab `id`.
    pub fn netns(&self, id: &str) -> String {
        format!("pal-{id}-p{}", self.index)
    }

    /// Addresses, IPv4 first (the order of `status.podIPs`).
    pub fn ips(&self) -> Vec<IpAddr> {
        self.ipv4
            .map(IpAddr::V4)
            .into_iter()
            .chain(self.ipv6.map(IpAddr::V6))
            .collect()
    }
}

/// The node namespace's name in lab `id`.
pub fn node_netns(id: &str) -> String {
    format!("pal-{id}-node")
}

/// Addresses for every pod: those the manifests give, else the next free 10.42.0.X. A pod
/// gets IPv6 only from its manifest.
pub fn plan(pods: &[PodInfo]) -> anyhow::Result<Vec<PodPlan>> {
    let taken: BTreeSet<IpAddr> = pods.iter().flat_map(|p| p.ips.iter().copied()).collect();
    let mut next = u32::from(FIRST_ASSIGNED);
    let mut plans = Vec::with_capacity(pods.len());
    for (index, info) in pods.iter().enumerate() {
        let mut ipv4 = info.ips.iter().find_map(|ip| match ip {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(_) => None,
        });
        let ipv6 = info.ips.iter().find_map(|ip| match ip {
            IpAddr::V6(v6) => Some(*v6),
            IpAddr::V4(_) => None,
        });
        if info.ips.is_empty() {
            // Bounded: at most MAX_PODS addresses are taken, and a /24's worth is available.
            let free = (next..u32::from(Ipv4Addr::new(10, 42, 0, 255)))
                .map(Ipv4Addr::from)
                .find(|a| !taken.contains(&IpAddr::V4(*a)))
                .context("no free address left in 10.42.0.0/24")?;
            next = u32::from(free) + 1;
            ipv4 = Some(free);
        }
        plans.push(PodPlan {
            index,
            pod: info.pod.clone(),
            ipv4,
            ipv6,
            node: info.node.clone().unwrap_or_else(|| DEFAULT_NODE.to_owned()),
        });
    }
    Ok(plans)
}

/// One node's place in the lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePlan {
    /// 0 for the default node, then the named nodes in name order.
    pub index: usize,
    pub name: String,
    /// The node's own addresses on the fabric (none in a one-node lab, which has no fabric):
    /// what its agent sees as the host's addresses besides loopback.
    pub fabric_v4: Option<Ipv4Addr>,
    pub fabric_v6: Option<Ipv6Addr>,
    /// Its interface towards the fabric: [`FABRIC_IF`], or the interface its host endpoints
    /// name.
    pub fabric_if: String,
    /// Its host endpoints' expected addresses, on `fabric_if` beside the fabric addresses.
    pub host_endpoint_ips: Vec<IpAddr>,
}

impl NodePlan {
    /// The node's namespace in lab `id`: the default node keeps the one-node lab's name.
    pub fn netns(&self, id: &str) -> String {
        if self.index == 0 {
            node_netns(id)
        } else {
            format!("pal-{id}-node-{}", self.name)
        }
    }

    /// Whether this is the default node (pods without `spec.nodeName`).
    pub fn is_default(&self) -> bool {
        self.index == 0
    }
}

/// The fabric namespace's name in lab `id` (only a lab with several nodes has one).
pub fn fabric_netns(id: &str) -> String {
    format!("pal-{id}-fabric")
}

/// Whether the lab joins its nodes by a fabric: with several nodes, or with a host endpoint
/// (whose traffic must cross its interface, which faces the fabric).
pub fn has_fabric(nodes: &[NodePlan]) -> bool {
    nodes.iter().any(|n| n.fabric_v4.is_some())
}

/// Whether any pod or host endpoint has IPv6 (then every node forwards it).
fn any_ipv6(nodes: &[NodePlan], plans: &[PodPlan]) -> bool {
    plans.iter().any(|p| p.ipv6.is_some())
        || nodes
            .iter()
            .flat_map(|n| &n.host_endpoint_ips)
            .any(IpAddr::is_ipv6)
}

/// The default node, then every node `named` (pods' `spec.nodeName`, host endpoints' nodes) in
/// name order. With more than one node, or any host endpoint, each gets fabric addresses, IPv6
/// ones when some pod or host endpoint has IPv6; no pod may hold an address in the fabric's
/// ranges. A host endpoint's node faces the fabric through the host endpoint's interface.
pub fn plan_nodes(
    named: &BTreeSet<String>,
    pods: &[PodPlan],
    host_endpoints: &[HostEndpointInfo],
) -> anyhow::Result<Vec<NodePlan>> {
    let names = std::iter::once(DEFAULT_NODE).chain(
        named
            .iter()
            .map(String::as_str)
            .filter(|n| *n != DEFAULT_NODE),
    );
    let mut nodes: Vec<NodePlan> = names
        .enumerate()
        .map(|(index, name)| NodePlan {
            index,
            name: name.to_owned(),
            fabric_v4: None,
            fabric_v6: None,
            fabric_if: FABRIC_IF.to_owned(),
            host_endpoint_ips: Vec::new(),
        })
        .collect();
    for hep in host_endpoints {
        let node = nodes
            .iter_mut()
            .find(|n| n.name == hep.node)
            .with_context(|| {
                format!(
                    "HostEndpoint {} is on node {}, which the lab did not plan",
                    hep.name, hep.node
                )
            })?;
        // The scenario checked that one node's host endpoints agree on the interface.
        node.fabric_if.clone_from(&hep.interface);
        node.host_endpoint_ips.extend(&hep.ips);
    }
    if nodes.len() == 1 && host_endpoints.is_empty() {
        return Ok(nodes);
    }
    for pod in pods {
        if let Some(ip) = pod.ips().into_iter().find(|ip| in_fabric(*ip)) {
            bail!(
                "pod {} has address {ip}, inside the lab's node fabric ({FABRIC_V4}/{FABRIC_V4_LEN}, \
                 {FABRIC_V6}/{FABRIC_V6_LEN}); give it another",
                pod.pod
            );
        }
    }
    let any_v6 = any_ipv6(&nodes, pods);
    for node in &mut nodes {
        let host = u32::try_from(node.index + 1).context("too many nodes")?;
        node.fabric_v4 = Some(Ipv4Addr::from(u32::from(FABRIC_V4) + host));
        if any_v6 {
            node.fabric_v6 = Some(Ipv6Addr::from(u128::from(FABRIC_V6) + u128::from(host)));
        }
    }
    Ok(nodes)
}

fn in_fabric(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            u32::from(v4) >> (32 - FABRIC_V4_LEN) == u32::from(FABRIC_V4) >> (32 - FABRIC_V4_LEN)
        }
        IpAddr::V6(v6) => {
            u128::from(v6) >> (128 - FABRIC_V6_LEN)
                == u128::from(FABRIC_V6) >> (128 - FABRIC_V6_LEN)
        }
    }
}

/// Creates every node namespace, the fabric between them (several nodes only) and every pod
/// namespace, wired, addressed and routed. Every namespace is recorded in `resources` before
/// it is created.
pub fn build(
    id: &str,
    nodes: &[NodePlan],
    plans: &[PodPlan],
    resources: &Resources,
) -> anyhow::Result<()> {
    let any_v6 = any_ipv6(nodes, plans);
    let mut opened = Vec::with_capacity(nodes.len());
    for node in nodes {
        opened.push(
            create_node(id, node, any_v6, resources)
                .with_context(|| format!("setting up node {} ({})", node.name, node.netns(id)))?,
        );
    }
    if has_fabric(nodes) {
        build_fabric(id, nodes, resources).context("setting up the fabric between the nodes")?;
    }
    for plan in plans {
        let node = node_of(nodes, &opened, plan)?;
        wire_pod(id, plan, node, any_v6, resources)
            .with_context(|| format!("setting up pod {} ({})", plan.pod, plan.netns(id)))?;
    }
    for (node, netns) in nodes.iter().zip(&opened) {
        route_remote_pods(node, netns, nodes, plans)
            .with_context(|| format!("routing node {} to the other nodes' pods", node.name))?;
        route_remote_host_endpoints(node, netns, nodes).with_context(|| {
            format!(
                "routing node {} to the other nodes' host endpoints",
                node.name
            )
        })?;
        if any_v6 {
            proxy_ndp(node, netns, nodes, plans)?;
        }
    }
    Ok(())
}

/// The open namespace of the node `plan` runs on.
fn node_of<'a>(
    nodes: &[NodePlan],
    opened: &'a [Netns],
    plan: &PodPlan,
) -> anyhow::Result<&'a Netns> {
    nodes
        .iter()
        .position(|n| n.name == plan.node)
        .and_then(|i| opened.get(i))
        .with_context(|| {
            format!(
                "pod {} is on node {}, which the lab did not plan",
                plan.pod, plan.node
            )
        })
}

/// A node namespace: forwarding on, loopback up.
fn create_node(
    id: &str,
    node: &NodePlan,
    any_v6: bool,
    resources: &Resources,
) -> anyhow::Result<Netns> {
    let name = node.netns(id);
    resources.netns(&name, || netns::add(&name))?;
    let netns = Netns::open(&name)?;
    let mut settings = vec![("net.ipv4.ip_forward".to_owned(), "1")];
    if any_v6 {
        settings.extend([
            ("net.ipv6.conf.all.forwarding".to_owned(), "1"),
            // New veths copy `default`: no DAD, so addresses are usable at once.
            ("net.ipv6.conf.default.accept_dad".to_owned(), "0"),
        ]);
    }
    netns.sysctls(&settings)?;
    netns::ip_in(&name, &["link", "set", "lo", "up"])?;
    Ok(netns)
}

/// The fabric namespace: a bridge with one port per node, joined by a veth to the node's
/// fabric interface ([`FABRIC_IF`] or its host endpoint's), which carries the node's fabric
/// addresses and its host endpoints' addresses.
fn build_fabric(id: &str, nodes: &[NodePlan], resources: &Resources) -> anyhow::Result<()> {
    let fabric = fabric_netns(id);
    resources.netns(&fabric, || netns::add(&fabric))?;
    // No multicast snooping: with no MLD querier on the bridge, it could filter the
    // neighbour solicitations that IPv6 next hops need.
    netns::ip_in(
        &fabric,
        &[
            "link",
            "add",
            FABRIC_BRIDGE,
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ],
    )?;
    netns::ip_in(&fabric, &["link", "set", FABRIC_BRIDGE, "up"])?;
    for node in nodes {
        let node_ns = node.netns(id);
        let port = format!("n{}", node.index);
        let link = node.fabric_if.as_str();
        // `name` and `dev` spelled out: a host endpoint's interface name could otherwise be
        // read as one of ip's keywords.
        netns::ip_in(
            &node_ns,
            &[
                "link", "add", "name", link, "type", "veth", "peer", "name", &port, "netns",
                &fabric,
            ],
        )?;
        netns::ip_in(
            &fabric,
            &["link", "set", &port, "master", FABRIC_BRIDGE, "up"],
        )?;
        netns::ip_in(&node_ns, &["link", "set", "dev", link, "up"])?;
        if let Some(v4) = node.fabric_v4 {
            let cidr = format!("{v4}/{FABRIC_V4_LEN}");
            netns::ip_in(&node_ns, &["addr", "add", &cidr, "dev", link])?;
        }
        if let Some(v6) = node.fabric_v6 {
            let cidr = format!("{v6}/{FABRIC_V6_LEN}");
            netns::ip_in(
                &node_ns,
                &["-6", "addr", "add", &cidr, "dev", link, "nodad"],
            )?;
        }
        // Host addresses: the other nodes reach them by host routes, not on-link.
        for ip in &node.host_endpoint_ips {
            match ip {
                IpAddr::V4(v4) => {
                    let cidr = format!("{v4}/32");
                    netns::ip_in(&node_ns, &["addr", "add", &cidr, "dev", link])?;
                }
                IpAddr::V6(v6) => {
                    let cidr = format!("{v6}/128");
                    netns::ip_in(
                        &node_ns,
                        &["-6", "addr", "add", &cidr, "dev", link, "nodad"],
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// Host routes on `node` to every other node's host endpoint addresses, through that node's
/// fabric address, as to its pods: the traffic arrives on the host endpoint's interface.
fn route_remote_host_endpoints(
    node: &NodePlan,
    netns: &Netns,
    nodes: &[NodePlan],
) -> anyhow::Result<()> {
    for remote in nodes.iter().filter(|n| n.name != node.name) {
        for ip in &remote.host_endpoint_ips {
            route_via(netns, &node.fabric_if, *ip, remote)?;
        }
    }
    Ok(())
}

/// A host route on `netns` to `ip` through `remote`'s fabric address (of `ip`'s family; none
/// when the fabric has no address of that family).
fn route_via(netns: &Netns, dev: &str, ip: IpAddr, remote: &NodePlan) -> anyhow::Result<()> {
    match (ip, remote.fabric_v4, remote.fabric_v6) {
        (IpAddr::V4(ip), Some(via), _) => {
            let cidr = format!("{ip}/32");
            let via = via.to_string();
            netns::ip_in(
                netns.name(),
                &["route", "add", &cidr, "via", &via, "dev", dev],
            )?;
        }
        (IpAddr::V6(ip), _, Some(via)) => {
            let cidr = format!("{ip}/128");
            let via = via.to_string();
            netns::ip_in(
                netns.name(),
                &["-6", "route", "add", &cidr, "via", &via, "dev", dev],
            )?;
        }
        _ => {}
    }
    Ok(())
}

/// Host routes on `node` to every pod of another node, through that node's fabric address,
/// as a routed cluster's nodes learn each other's pods (Calico's BGP, a cloud's route table).
fn route_remote_pods(
    node: &NodePlan,
    netns: &Netns,
    nodes: &[NodePlan],
    plans: &[PodPlan],
) -> anyhow::Result<()> {
    for plan in plans.iter().filter(|p| p.node != node.name) {
        let remote = nodes
            .iter()
            .find(|n| n.name == plan.node)
            .with_context(|| {
                format!(
                    "pod {} is on node {}, which the lab did not plan",
                    plan.pod, plan.node
                )
            })?;
        for ip in plan.ips() {
            route_via(netns, &node.fabric_if, ip, remote)?;
        }
    }
    Ok(())
}

fn wire_pod(
    id: &str,
    plan: &PodPlan,
    node: &Netns,
    any_v6: bool,
    resources: &Resources,
) -> anyhow::Result<()> {
    let pod_name = plan.netns(id);
    let host_if = plan.host_if();
    resources.netns(&pod_name, || netns::add(&pod_name))?;
    let pod = Netns::open(&pod_name)?;
    if any_v6 {
        pod.sysctls(&[("net.ipv6.conf.default.accept_dad".to_owned(), "0")])?;
    }
    netns::ip_in(
        node.name(),
        &[
            "link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "netns", &pod_name,
        ],
    )?;

    netns::ip_in(&pod_name, &["link", "set", "lo", "up"])?;
    netns::ip_in(&pod_name, &["link", "set", "eth0", "up"])?;
    if let Some(v4) = plan.ipv4 {
        let cidr = format!("{v4}/32");
        netns::ip_in(&pod_name, &["addr", "add", &cidr, "dev", "eth0"])?;
        netns::ip_in(&pod_name, &["route", "add", "default", "dev", "eth0"])?;
    }
    if let Some(v6) = plan.ipv6 {
        let cidr = format!("{v6}/128");
        netns::ip_in(
            &pod_name,
            &["-6", "addr", "add", &cidr, "dev", "eth0", "nodad"],
        )?;
        netns::ip_in(&pod_name, &["-6", "route", "add", "default", "dev", "eth0"])?;
    }

    netns::ip_in(node.name(), &["link", "set", &host_if, "up"])?;
    let mut settings = vec![
        (format!("net.ipv4.conf.{host_if}.proxy_arp"), "1"),
        // Otherwise proxy ARP answers wait up to 0.8 s.
        (format!("net.ipv4.neigh.{host_if}.proxy_delay"), "0"),
    ];
    if let Some(v4) = plan.ipv4 {
        let cidr = format!("{v4}/32");
        netns::ip_in(node.name(), &["route", "add", &cidr, "dev", &host_if])?;
    }
    if let Some(v6) = plan.ipv6 {
        let cidr = format!("{v6}/128");
        netns::ip_in(node.name(), &["-6", "route", "add", &cidr, "dev", &host_if])?;
    }
    if any_v6 {
        settings.push((format!("net.ipv6.conf.{host_if}.proxy_ndp"), "1"));
        // Proxied neighbour advertisements wait a random 0 to 0.8 s by default too: under load
        // that pushed a pod's first IPv6 connection past a probe's 1.5 s timeout.
        settings.push((format!("net.ipv6.neigh.{host_if}.proxy_delay"), "0"));
    }
    node.sysctls(&settings)?;
    Ok(())
}

/// The node answers neighbour solicitations on each of its pods' interfaces for every *other*
/// pod's IPv6 address, on any node, and every host endpoint's (proxy NDP has no "answer for
/// whatever I route elsewhere" mode, and a node answers for its own addresses only on the
/// interface that has them).
fn proxy_ndp(
    node: &NodePlan,
    netns: &Netns,
    nodes: &[NodePlan],
    plans: &[PodPlan],
) -> anyhow::Result<()> {
    let host_endpoints = nodes.iter().flat_map(|n| &n.host_endpoint_ips).copied();
    for on in plans.iter().filter(|p| p.node == node.name) {
        let others = plans
            .iter()
            .filter(|p| p.index != on.index)
            .filter_map(|p| p.ipv6.map(IpAddr::V6));
        for ip in others.chain(host_endpoints.clone()).filter(IpAddr::is_ipv6) {
            let addr = ip.to_string();
            let host_if = on.host_if();
            netns::ip_in(
                netns.name(),
                &["-6", "neigh", "add", "proxy", &addr, "dev", &host_if],
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn info(name: &str, ips: &[&str]) -> anyhow::Result<PodInfo> {
        Ok(PodInfo {
            pod: name.parse()?,
            ips: ips.iter().map(|s| s.parse()).collect::<Result<_, _>>()?,
            ports: BTreeSet::new(),
            node: None,
        })
    }

    #[test]
    fn assigned_addresses_skip_given_ones() -> anyhow::Result<()> {
        let pods = [
            info("a", &[])?,
            info("b", &["10.42.0.11", "fd00:42::b"])?,
            info("c", &[])?,
            info("d", &["fd00:42::d"])?,
        ];
        let plans = plan(&pods)?;
        let v4: Vec<_> = plans
            .iter()
            .map(|p| p.ipv4.map(|a| a.to_string()))
            .collect();
        assert_eq!(
            v4,
            [
                Some("10.42.0.10".to_owned()),
                Some("10.42.0.11".to_owned()),
                Some("10.42.0.12".to_owned()),
                None
            ]
        );
        assert_eq!(plans[1].ipv6, Some("fd00:42::b".parse()?));
        assert_eq!(plans[0].ipv6, None);
        assert_eq!(plans[2].host_if(), "plh2");
        assert_eq!(plans[2].netns("7-1"), "pal-7-1-p2");
        assert_eq!(node_netns("7-1"), "pal-7-1-node");
        assert!(plans.iter().all(|p| p.node == DEFAULT_NODE));
        Ok(())
    }

    #[test]
    fn one_node_has_no_fabric() -> anyhow::Result<()> {
        let plans = plan(&[info("a", &["10.42.0.10", "fd00:42::a"])?])?;
        let nodes = plan_nodes(&BTreeSet::from([DEFAULT_NODE.to_owned()]), &plans, &[])?;
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].netns("7-1"), "pal-7-1-node");
        assert_eq!((nodes[0].fabric_v4, nodes[0].fabric_v6), (None, None));
        Ok(())
    }

    #[test]
    fn named_nodes_follow_the_default_one_with_fabric_addresses() -> anyhow::Result<()> {
        let mut b = info("b", &["10.42.0.11", "fd00:42::b"])?;
        b.node = Some("node-b".to_owned());
        let plans = plan(&[info("a", &[])?, b])?;
        assert_eq!(plans[1].node, "node-b");
        let named = BTreeSet::from(["node-b".to_owned(), "node-a".to_owned()]);
        let nodes = plan_nodes(&named, &plans, &[])?;
        let names: Vec<_> = nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, [DEFAULT_NODE, "node-a", "node-b"]);
        assert_eq!(nodes[2].netns("7-1"), "pal-7-1-node-node-b");
        assert_eq!(nodes[0].fabric_v4, Some("198.18.0.1".parse()?));
        assert_eq!(nodes[2].fabric_v4, Some("198.18.0.3".parse()?));
        assert_eq!(nodes[2].fabric_v6, Some("fd00:fab::3".parse()?));
        Ok(())
    }

    /// A host endpoint brings the fabric even to a one-node lab, names its node's interface
    /// towards it and puts its addresses there; its IPv6 address alone gives the fabric IPv6.
    #[test]
    fn a_host_endpoint_brings_the_fabric_and_names_the_interface() -> anyhow::Result<()> {
        let plans = plan(&[info("a", &[])?])?;
        let hep = HostEndpointInfo {
            name: "h".to_owned(),
            node: DEFAULT_NODE.to_owned(),
            interface: "ens3".to_owned(),
            ips: vec!["10.99.0.10".parse()?, "fd00:99::10".parse()?],
        };
        let named = BTreeSet::from([DEFAULT_NODE.to_owned()]);
        let nodes = plan_nodes(&named, &plans, std::slice::from_ref(&hep))?;
        assert_eq!(nodes.len(), 1);
        assert!(has_fabric(&nodes));
        assert_eq!(nodes[0].fabric_if, "ens3");
        assert_eq!(nodes[0].host_endpoint_ips, hep.ips);
        assert_eq!(nodes[0].fabric_v4, Some("198.18.0.1".parse()?));
        assert_eq!(nodes[0].fabric_v6, Some("fd00:fab::1".parse()?));

        let elsewhere = HostEndpointInfo {
            node: "bm1".to_owned(),
            ..hep
        };
        let named = BTreeSet::from(["bm1".to_owned()]);
        let nodes = plan_nodes(&named, &plans, &[elsewhere])?;
        let interfaces: Vec<_> = nodes.iter().map(|n| n.fabric_if.as_str()).collect();
        assert_eq!(interfaces, [FABRIC_IF, "ens3"]);
        assert!(nodes[0].host_endpoint_ips.is_empty());
        let without = plan_nodes(&BTreeSet::new(), &plans, &[])?;
        assert!(!has_fabric(&without));
        Ok(())
    }

    #[test]
    fn pod_addresses_in_the_fabric_are_refused() -> anyhow::Result<()> {
        let mut b = info("b", &["198.18.0.2"])?;
        b.node = Some("node-b".to_owned());
        let plans = plan(&[b])?;
        let named = BTreeSet::from(["node-b".to_owned()]);
        assert!(plan_nodes(&named, &plans, &[]).is_err());
        Ok(())
    }
}
