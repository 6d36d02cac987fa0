//! The lab's network: a "node" namespace that routes between pod namespaces, each joined to it
//! by a veth pair, like a CNI with per-pod routes.
//!
//! Nothing is ever added to the machine's root namespace: the veth is created inside the node
//! namespace with its peer placed straight into the pod namespace. Pods have /32 (/128)
//! addresses and an on-link default route, so they ARP (or solicit) for every destination; the
//! node answers with proxy ARP (proxy NDP) and forwards by its per-pod routes.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use anyhow::Context as _;

use super::{
    agent::IFACE_PREFIX,
    cleanup::Resources,
    netns::{self, Netns},
    scenario::{PodInfo, PodRef},
};

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
        });
    }
    Ok(plans)
}

/// Creates the node namespace and every pod namespace, wired and addressed. Every namespace
/// is recorded in `resources` before it is created.
pub fn build(id: &str, plans: &[PodPlan], resources: &Resources) -> anyhow::Result<()> {
    let node_name = node_netns(id);
    resources.netns(&node_name, || netns::add(&node_name))?;
    let node = Netns::open(&node_name)?;
    let any_v6 = plans.iter().any(|p| p.ipv6.is_some());
    let mut node_settings = vec![("net.ipv4.ip_forward".to_owned(), "1")];
    if any_v6 {
        node_settings.extend([
            ("net.ipv6.conf.all.forwarding".to_owned(), "1"),
            // New veths copy `default`: no DAD, so addresses are usable at once.
            ("net.ipv6.conf.default.accept_dad".to_owned(), "0"),
        ]);
    }
    node.sysctls(&node_settings)?;
    node.run(|| netns::ip(&["link", "set", "lo", "up"]))??;

    for plan in plans {
        wire_pod(id, plan, &node, any_v6, resources)
            .with_context(|| format!("setting up pod {} ({})", plan.pod, plan.netns(id)))?;
    }
    if any_v6 {
        proxy_ndp(&node, plans)?;
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
    }
    node.sysctls(&settings)?;
    Ok(())
}

/// The node answers neighbour solicitations on each pod's interface for every *other* pod's
/// IPv6 address (proxy NDP has no "answer for whatever I route elsewhere" mode).
fn proxy_ndp(node: &Netns, plans: &[PodPlan]) -> anyhow::Result<()> {
    for on in plans {
        for other in plans.iter().filter(|p| p.index != on.index) {
            if let Some(v6) = other.ipv6 {
                let addr = v6.to_string();
                let host_if = on.host_if();
                netns::ip_in(
                    node.name(),
                    &["-6", "neigh", "add", "proxy", &addr, "dev", &host_if],
                )?;
            }
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
        Ok(())
    }
}
