//! The generated cluster both compiler benchmarks start from (`compile.rs`, and `calico.rs`
//! on top of it): 10,000 pods in 100 namespaces on 100 nodes, with 1,000 Kubernetes
//! NetworkPolicies using every construct; and what both measure with it.

use std::{collections::BTreeMap, net::IpAddr};

use ipnet::IpNet;
use policy_agent::{
    compiler::{Compiler, MapContents, Scope},
    model::{
        Cluster, ContainerPort, LabelSelector, Labels, Namespace, NamespaceMatch, NetworkPolicy,
        Peer, Pod, PortMatch, Protocol, Rule, selector::Requirement,
    },
};

pub const NAMESPACES: usize = 100;
pub const PODS_PER_NAMESPACE: usize = 100;
pub const POLICIES_PER_NAMESPACE: usize = 10;
pub const NODES: usize = 100;
/// Pods' service accounts (they matter only to Calico's `serviceAccounts` matches).
pub const SERVICE_ACCOUNTS: [&str; 4] = ["default", "frontend", "backend", "monitoring"];

pub fn labels(pairs: &[(&str, String)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

pub fn match_labels(pairs: &[(&str, String)]) -> LabelSelector {
    LabelSelector {
        requirements: pairs
            .iter()
            .map(|(k, v)| Requirement::In {
                key: (*k).to_owned(),
                values: [v.clone()].into(),
            })
            .collect(),
    }
}

pub fn pod(ns: usize, j: usize) -> Pod {
    let index = ns * PODS_PER_NAMESPACE + j;
    let mut ips = vec![IpAddr::from([
        10,
        (index >> 16) as u8,
        (index >> 8) as u8,
        index as u8,
    ])];
    if j.is_multiple_of(2) {
        ips.push(IpAddr::from([
            0xfd00,
            0,
            0,
            0,
            0,
            0,
            (index >> 16) as u16,
            index as u16,
        ]));
    }
    Pod {
        namespace: format!("ns-{ns}"),
        name: format!("pod-{j}"),
        labels: labels(&[
            ("app", format!("app-{}", j % 20)),
            ("tier", ["web", "api", "db"][j % 3].to_owned()),
            ("version", format!("v{}", j % 2)),
        ]),
        ips: ips.into_iter().collect(),
        container_ports: vec![
            ContainerPort {
                name: Some("http".into()),
                port: 8080,
                protocol: Protocol::Tcp,
            },
            ContainerPort {
                name: Some("metrics".into()),
                port: 9090 + (j % 2) as u16,
                protocol: Protocol::Tcp,
            },
            ContainerPort {
                name: Some("dns".into()),
                port: 53,
                protocol: Protocol::Udp,
            },
        ],
        service_account: SERVICE_ACCOUNTS[j % SERVICE_ACCOUNTS.len()].into(),
        // 100 nodes of 100 pods: a DaemonSet agent enforces only its node's pods.
        node_name: Some(format!("node-{}", index % NODES)),
        host_network: false,
        terminated: false,
    }
}

pub fn range(protocol: Protocol, first: u16, last: u16) -> PortMatch {
    PortMatch::Range {
        protocol,
        first,
        last,
    }
}

/// Ten policy kinds, one of each per namespace, together using every construct.
pub fn kubernetes_policy(ns: usize, k: usize) -> NetworkPolicy {
    let namespace = format!("ns-{ns}");
    let own = NamespaceMatch::Exactly(namespace.clone());
    let app = |n: usize| match_labels(&[("app", format!("app-{}", (ns + n) % 20))]);
    let (pod_selector, ingress, egress) = match k {
        // Default deny ingress for the namespace.
        0 => (LabelSelector::default(), Some(vec![]), None),
        // Same-namespace app to app on a port.
        1 => (
            app(1),
            Some(vec![Rule {
                peers: Some(vec![Peer::Pods {
                    namespaces: own.clone(),
                    pods: app(2),
                }]),
                ports: Some(vec![range(Protocol::Tcp, 8080, 8080)]),
            }]),
            None,
        ),
        // Other teams' web tier on a named port.
        2 => (
            match_labels(&[("tier", "api".into())]),
            Some(vec![Rule {
                peers: Some(vec![Peer::Pods {
                    namespaces: NamespaceMatch::Selector(match_labels(&[(
                        "team",
                        format!("t{}", ns % 10),
                    )])),
                    pods: match_labels(&[("tier", "web".into())]),
                }]),
                ports: Some(vec![PortMatch::Named {
                    protocol: Protocol::Tcp,
                    name: "http".into(),
                }]),
            }]),
            None,
        ),
        // Egress to an ipBlock with except, a port and a range.
        3 => (
            app(3),
            None,
            Some(vec![Rule {
                peers: Some(vec![Peer::IpBlock {
                    cidr: "10.0.0.0/8".parse::<IpNet>().expect("cidr"),
                    except: vec![format!("10.{}.0.0/16", ns % 50).parse().expect("cidr")],
                }]),
                ports: Some(vec![
                    range(Protocol::Tcp, 443, 443),
                    range(Protocol::Tcp, 1000, 2000),
                ]),
            }]),
        ),
        // Every selector operator.
        4 => (
            LabelSelector {
                requirements: vec![
                    Requirement::In {
                        key: "tier".into(),
                        values: ["web".into(), "api".into()].into(),
                    },
                    Requirement::NotIn {
                        key: "app".into(),
                        values: [format!("app-{}", ns % 20)].into(),
                    },
                    Requirement::Exists {
                        key: "version".into(),
                    },
                    Requirement::DoesNotExist {
                        key: "canary".into(),
                    },
                ],
            },
            Some(vec![Rule {
                peers: Some(vec![Peer::Pods {
                    namespaces: own.clone(),
                    pods: LabelSelector::default(),
                }]),
                ports: None,
            }]),
            None,
        ),
        // Egress named port to any namespace's api tier.
        5 => (
            app(5),
            None,
            Some(vec![Rule {
                peers: Some(vec![Peer::Pods {
                    namespaces: NamespaceMatch::Selector(LabelSelector::default()),
                    pods: match_labels(&[("tier", "api".into())]),
                }]),
                ports: Some(vec![PortMatch::Named {
                    protocol: Protocol::Tcp,
                    name: "metrics".into(),
                }]),
            }]),
        ),
        // DNS to every namespace.
        6 => (
            LabelSelector::default(),
            None,
            Some(vec![Rule {
                peers: Some(vec![Peer::Pods {
                    namespaces: NamespaceMatch::Selector(LabelSelector::default()),
                    pods: match_labels(&[("app", "app-0".into())]),
                }]),
                ports: Some(vec![
                    range(Protocol::Udp, 53, 53),
                    PortMatch::AllPorts(Protocol::Sctp),
                ]),
            }]),
        ),
        // Both directions, ranges.
        7 => (
            app(7),
            Some(vec![Rule {
                peers: Some(vec![Peer::Pods {
                    namespaces: NamespaceMatch::Selector(match_labels(&[("env", "prod".into())])),
                    pods: app(8),
                }]),
                ports: Some(vec![range(Protocol::Tcp, 30000, 32767)]),
            }]),
            Some(vec![Rule {
                peers: None,
                ports: Some(vec![range(Protocol::Udp, 5000, 5100)]),
            }]),
        ),
        // IPv6 block.
        8 => (
            app(9),
            Some(vec![Rule {
                peers: Some(vec![Peer::IpBlock {
                    cidr: "fd00::/16".parse().expect("cidr"),
                    except: vec!["fd00::/112".parse().expect("cidr")],
                }]),
                ports: None,
            }]),
            None,
        ),
        // Allow all from a labelled namespace.
        _ => (
            app(10),
            Some(vec![Rule {
                peers: Some(vec![Peer::Pods {
                    namespaces: NamespaceMatch::Selector(match_labels(&[(
                        "team",
                        format!("t{}", (ns + 1) % 10),
                    )])),
                    pods: LabelSelector::default(),
                }]),
                ports: None,
            }]),
            None,
        ),
    };
    NetworkPolicy {
        namespace,
        name: format!("np-{k}"),
        pod_selector,
        ingress,
        egress,
    }
}

/// The 10,000 pods, 100 namespaces and 1,000 Kubernetes NetworkPolicies.
pub fn kubernetes_cluster() -> Cluster {
    let mut cluster = Cluster::default();
    for ns in 0..NAMESPACES {
        let name = format!("ns-{ns}");
        cluster.namespaces.insert(
            name.clone(),
            (Namespace {
                name: name.clone(),
                labels: labels(&[
                    ("kubernetes.io/metadata.name", name.clone()),
                    ("team", format!("t{}", ns % 10)),
                    (
                        "env",
                        if ns.is_multiple_of(3) { "prod" } else { "dev" }.to_owned(),
                    ),
                ]),
            })
            .into(),
        );
        for j in 0..PODS_PER_NAMESPACE {
            let p = pod(ns, j);
            cluster
                .pods
                .insert((p.namespace.clone(), p.name.clone()), p.into());
        }
        for k in 0..POLICIES_PER_NAMESPACE {
            let np = kubernetes_policy(ns, k);
            cluster
                .policies
                .insert((np.namespace.clone(), np.name.clone()), np.into());
        }
    }
    cluster
}

/// Map entries written or removed between two compiles.
pub fn touched(before: &MapContents, after: &MapContents) -> usize {
    fn diff<K: Ord, V: PartialEq>(a: &BTreeMap<K, V>, b: &BTreeMap<K, V>) -> usize {
        b.iter().filter(|(k, v)| a.get(k) != Some(v)).count()
            + a.keys().filter(|k| !b.contains_key(k)).count()
    }
    diff(&before.endpoints, &after.endpoints)
        + diff(&before.identities, &after.identities)
        + diff(&before.rules, &after.rules)
}

/// One local pod's labels change.
pub fn relabel(cluster: &mut Cluster) {
    let pod = std::sync::Arc::make_mut(
        cluster
            .pods
            .get_mut(&("ns-7".to_owned(), "pod-7".to_owned()))
            .expect("pod exists"),
    );
    // pod-7 of ns-7 runs on node-7; app-8 is what np-1 of ns-7 selects: the pod changes its
    // shape.
    pod.labels.insert("app".into(), "app-8".into());
}

/// The two scopes worth knowing: one agent per node (what a DaemonSet runs: 100 local pods,
/// every cluster pod still in IDENTITIES) and every pod local (a single-node worst case).
pub fn scopes() -> [(&'static str, Scope); 2] {
    [
        (
            "node-of-100",
            Scope {
                node_name: Some("node-7".into()),
                host_addrs: Vec::new(),
            },
        ),
        ("all-local", Scope::default()),
    ]
}

/// Prints the compiler's counts and each policy map's entries and bytes (key and value; a
/// trie's key with its 4-byte prefix length).
pub fn print_sizes(compiler: &Compiler, maps: &MapContents) {
    use std::mem::size_of;

    use policy_common::{endpoint::*, identity::*, rule::*};
    let bytes = |entries: usize, key: usize, value: usize| entries * (key + value);
    let counts = compiler.counts();
    eprintln!(
        "  {} pod identities, {} CIDR classes, {} peers, {} rule tables",
        counts.pod_identities, counts.cidr_classes, counts.peers, counts.tables
    );
    eprintln!(
        "  ENDPOINTS  {:>8} entries {:>10} bytes (key+value)",
        maps.endpoints.len(),
        bytes(
            maps.endpoints.len(),
            size_of::<EndpointKey>(),
            size_of::<EndpointPolicy>()
        )
    );
    eprintln!(
        "  IDENTITIES {:>8} entries {:>10} bytes",
        maps.identities.len(),
        bytes(
            maps.identities.len(),
            4 + size_of::<IdentityKey>(),
            size_of::<IdentitySlots>()
        )
    );
    eprintln!(
        "  RULES      {:>8} entries {:>10} bytes",
        maps.rules.len(),
        bytes(
            maps.rules.len(),
            4 + size_of::<RuleKey>(),
            size_of::<RuleValue>()
        )
    );
}
