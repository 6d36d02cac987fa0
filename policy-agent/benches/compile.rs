//! Compiler at scale: a generated cluster of 10,000 pods in 100 namespaces with 1,000
//! policies using every construct. Prints map sizes, then criterion measures a full compile
//! and the two incremental changes (a pod's labels change; one policy is added), with the
//! number of map entries each change touches.
//!
//! Run: `cargo bench -p policy-agent --bench compile` (one core is what the compiler uses).

use std::{collections::BTreeMap, hint::black_box, net::IpAddr};

use criterion::{Criterion, criterion_group, criterion_main};
use ipnet::IpNet;
use policy_agent::{
    compiler::{Compiler, MapContents, Scope},
    model::{
        Cluster, ContainerPort, LabelSelector, Labels, Namespace, NamespaceMatch, NetworkPolicy,
        Peer, Pod, PortMatch, Protocol, Rule, selector::Requirement,
    },
};

const NAMESPACES: usize = 100;
const PODS_PER_NAMESPACE: usize = 100;
const POLICIES_PER_NAMESPACE: usize = 10;
const NODES: usize = 100;

fn labels(pairs: &[(&str, String)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn match_labels(pairs: &[(&str, String)]) -> LabelSelector {
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

fn pod(ns: usize, j: usize) -> Pod {
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
        service_account: "default".into(),
        // 100 nodes of 100 pods: a DaemonSet agent enforces only its node's pods.
        node_name: Some(format!("node-{}", index % NODES)),
        host_network: false,
        terminated: false,
    }
}

fn range(protocol: Protocol, first: u16, last: u16) -> PortMatch {
    PortMatch::Range {
        protocol,
        first,
        last,
    }
}

/// Ten policy kinds, one of each per namespace, together using every construct.
fn policy(ns: usize, k: usize) -> NetworkPolicy {
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

fn cluster() -> Cluster {
    let mut cluster = Cluster::default();
    for ns in 0..NAMESPACES {
        let name = format!("ns-{ns}");
        cluster.namespaces.insert(
            name.clone(),
            Namespace {
                name: name.clone(),
                labels: labels(&[
                    ("kubernetes.io/metadata.name", name.clone()),
                    ("team", format!("t{}", ns % 10)),
                    (
                        "env",
                        if ns.is_multiple_of(3) { "prod" } else { "dev" }.to_owned(),
                    ),
                ]),
            },
        );
        for j in 0..PODS_PER_NAMESPACE {
            let p = pod(ns, j);
            cluster
                .pods
                .insert((p.namespace.clone(), p.name.clone()), p);
        }
        for k in 0..POLICIES_PER_NAMESPACE {
            let np = policy(ns, k);
            cluster
                .policies
                .insert((np.namespace.clone(), np.name.clone()), np);
        }
    }
    cluster
}

fn touched(before: &MapContents, after: &MapContents) -> usize {
    fn diff<K: Ord, V: PartialEq>(a: &BTreeMap<K, V>, b: &BTreeMap<K, V>) -> usize {
        b.iter().filter(|(k, v)| a.get(k) != Some(v)).count()
            + a.keys().filter(|k| !b.contains_key(k)).count()
    }
    diff(&before.endpoints, &after.endpoints)
        + diff(&before.identities, &after.identities)
        + diff(&before.rules, &after.rules)
}

fn relabel(cluster: &mut Cluster) {
    let pod = cluster
        .pods
        .get_mut(&("ns-7".to_owned(), "pod-7".to_owned()))
        .expect("pod exists");
    // pod-7 of ns-7 runs on node-7; app-8 is what np-1 of ns-7 selects: the pod changes its
    // shape.
    pod.labels.insert("app".into(), "app-8".into());
}

fn add_policy(cluster: &mut Cluster) {
    // np-1 of ns-6 selects app-7, which pod-7 of ns-6 (on node-7) has; the copy opens another
    // port, so it is a new table for a local pod.
    let mut np = policy(6, 1);
    np.name = "np-extra".into();
    if let Some(rule) = np.ingress.as_mut().and_then(|rules| rules.first_mut()) {
        rule.ports = Some(vec![range(Protocol::Tcp, 8081, 8081)]);
    }
    cluster
        .policies
        .insert((np.namespace.clone(), np.name.clone()), np);
}

/// The two scopes worth knowing: one agent per node (what a DaemonSet runs: 100 local pods,
/// every cluster pod still in IDENTITIES) and every pod local (a single-node worst case).
fn scopes() -> [(&'static str, Scope); 2] {
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

fn report(base: &Cluster) {
    use std::mem::size_of;

    use policy_common::{endpoint::*, identity::*, rule::*};
    let bytes = |entries: usize, key: usize, value: usize| entries * (key + value);
    eprintln!(
        "cluster: {} namespaces, {} pods, {} policies, {NODES} nodes",
        base.namespaces.len(),
        base.pods.len(),
        base.policies.len()
    );
    for (name, scope) in scopes() {
        let started = std::time::Instant::now();
        let mut compiler = Compiler::new();
        let full = compiler.compile(base, &scope).maps;
        eprintln!("[{name}] full compile (one run): {:?}", started.elapsed());
        let counts = compiler.counts();
        eprintln!(
            "  {} pod identities, {} CIDR classes, {} peers, {} rule tables",
            counts.pod_identities, counts.cidr_classes, counts.peers, counts.tables
        );
        eprintln!(
            "  ENDPOINTS  {:>8} entries {:>10} bytes (key+value)",
            full.endpoints.len(),
            bytes(
                full.endpoints.len(),
                size_of::<EndpointKey>(),
                size_of::<EndpointPolicy>()
            )
        );
        eprintln!(
            "  IDENTITIES {:>8} entries {:>10} bytes",
            full.identities.len(),
            bytes(
                full.identities.len(),
                4 + size_of::<IdentityKey>(),
                size_of::<IdentityValue>()
            )
        );
        eprintln!(
            "  RULES      {:>8} entries {:>10} bytes",
            full.rules.len(),
            bytes(
                full.rules.len(),
                4 + size_of::<RuleKey>(),
                size_of::<RuleValue>()
            )
        );
        for (change, apply) in [
            ("pod label change", relabel as fn(&mut Cluster)),
            ("one policy added", add_policy),
        ] {
            let mut changed = base.clone();
            apply(&mut changed);
            let mut compiler = Compiler::new();
            let before = compiler.compile(base, &scope).maps;
            let started = std::time::Instant::now();
            let after = compiler.compile(&changed, &scope).maps;
            eprintln!(
                "  {change}: recompile {:?}, {} entries touched",
                started.elapsed(),
                touched(&before, &after)
            );
        }
    }
}

fn benches(c: &mut Criterion) {
    let base = cluster();
    report(&base);
    let mut relabelled = base.clone();
    relabel(&mut relabelled);
    let mut with_policy = base.clone();
    add_policy(&mut with_policy);
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    for (name, scope) in scopes() {
        group.bench_function(format!("full/{name}"), |b| {
            b.iter(|| Compiler::new().compile(black_box(&base), &scope))
        });
        // Each iteration is one change: to the changed cluster, then back.
        for (change, changed) in [
            ("pod-label-change", &relabelled),
            ("policy-added", &with_policy),
        ] {
            let mut compiler = Compiler::new();
            compiler.compile(&base, &scope);
            let mut flip = false;
            group.bench_function(format!("{change}/{name}"), |b| {
                b.iter(|| {
                    flip = !flip;
                    compiler.compile(black_box(if flip { changed } else { &base }), &scope)
                })
            });
        }
    }
    group.finish();
}

criterion_group!(compile, benches);
criterion_main!(compile);
