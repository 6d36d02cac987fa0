//! Calico at scale (the Calico issue's figures): the cluster of `benches/compile.rs` (10,000
//! pods in 100 namespaces, 100 nodes, its 1,000 Kubernetes NetworkPolicies) with service
//! accounts, plus 3 tiers, 1,000 GlobalNetworkPolicies, a few namespaced Calico
//! NetworkPolicies and two GlobalNetworkSets of 5,000 CIDRs each. Every Calico resource is
//! written as v3 YAML and read by `calico::resources::parse_documents`, as a datastore would.
//!
//! Prints, for one node of 100 pods, the full compile time, the map sizes, the compiler's
//! counts, how the ordered tables' peers share cells, and three incremental changes (a pod's
//! labels; one GlobalNetworkPolicy added; one CIDR added to a network set) with the entries
//! each touches; then criterion measures the same. What takes longer than `SLOW` in one run is
//! reported once and left out of criterion.
//!
//! Run: `cargo bench -p policy-agent --bench calico -- --warm-up-time 1 --measurement-time 3`.
//! In the environment, `CALICO_BENCH_PROFILE=1`: only the full compile (for `perf record`);
//! `CALICO_BENCH_PROGRAM=1` (root): first the full compile written into the real datapath, with
//! the time and the kernel memory of each map, then the rest as without it; `CALICO_BENCH_ALL_LOCAL=1`: also every pod an
//! endpoint (about 100 times the work and memory).

#[path = "shared/cluster.rs"]
mod cluster;

use std::{
    fmt::Write as _,
    hint::black_box,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use criterion::{Criterion, criterion_group, criterion_main};
use policy_agent::{
    calico::resources::{CalicoResource, parse_documents, unsupported},
    compiler::{Compiler, MapContents, Scope},
    model::Cluster,
};

use self::cluster::{NAMESPACES, NODES, kubernetes_cluster, print_sizes, relabel, scopes, touched};

/// GlobalNetworkPolicies per tier: security, platform, default (the last one of `default` is
/// the cluster-wide default deny).
const SECURITY_POLICIES: usize = 50;
const PLATFORM_POLICIES: usize = 250;
const DEFAULT_POLICIES: usize = 700;
/// CIDRs per GlobalNetworkSet (two sets).
const SET_SIZE: usize = 5_000;
/// A scope whose one full compile takes longer is not run under criterion.
const SLOW: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// Calico resources, as v3 YAML.

/// One policy document; `rules` are YAML flow mappings.
#[expect(
    clippy::too_many_arguments,
    reason = "one argument per field of the document"
)]
fn policy_yaml(
    kind: &str,
    name: &str,
    namespace: Option<&str>,
    order: f64,
    selector: &str,
    namespace_selector: Option<&str>,
    ingress: &[String],
    egress: &[String],
) -> String {
    let tier = name.split_once('.').map_or("default", |(tier, _)| tier);
    let mut doc =
        format!("apiVersion: projectcalico.org/v3\nkind: {kind}\nmetadata:\n  name: {name}\n");
    if let Some(ns) = namespace {
        writeln!(doc, "  namespace: {ns}").expect("write");
    }
    write!(
        doc,
        "spec:\n  tier: {tier}\n  order: {order}\n  selector: \"{selector}\"\n"
    )
    .expect("write");
    if let Some(ns_selector) = namespace_selector {
        writeln!(doc, "  namespaceSelector: \"{ns_selector}\"").expect("write");
    }
    let types: Vec<&str> = [("Ingress", ingress), ("Egress", egress)]
        .into_iter()
        .filter(|(_, rules)| !rules.is_empty())
        .map(|(t, _)| t)
        .collect();
    // A policy without rules (the default deny) names both directions.
    let types = if types.is_empty() {
        "Ingress, Egress".to_owned()
    } else {
        types.join(", ")
    };
    writeln!(doc, "  types: [{types}]").expect("write");
    for (field, rules) in [("ingress", ingress), ("egress", egress)] {
        if rules.is_empty() {
            continue;
        }
        writeln!(doc, "  {field}:").expect("write");
        for rule in rules {
            writeln!(doc, "    - {rule}").expect("write");
        }
    }
    doc
}

fn tiers_yaml() -> Vec<String> {
    [
        ("security", Some(100), "Pass"),
        ("platform", Some(200), "Pass"),
        // Calico's own default tier: last, Deny.
        ("default", Some(1_000_000), "Deny"),
    ]
    .into_iter()
    .map(|(name, order, action)| {
        let order = order.map_or(String::new(), |o| format!("  order: {o}\n"));
        format!(
            "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata:\n  name: {name}\nspec:\n{order}  defaultAction: {action}\n"
        )
    })
    .collect()
}

/// Two GlobalNetworkSets of `SET_SIZE` CIDRs: a threat feed of /32s (denied by the security
/// tier) and partners' /24s (allowed by the platform tier). `extra` CIDRs are appended to the
/// threat feed (the incremental change).
fn network_sets_yaml(extra: usize) -> Vec<String> {
    let mut feed = String::from(
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata:\n  name: threat-feed\n  labels:\n    feed: blocklist\nspec:\n  nets:\n",
    );
    for i in 0..SET_SIZE + extra {
        // 100.64.0.0/10 (shared address space), one /32 each.
        writeln!(
            feed,
            "    - 100.{}.{}.{}/32",
            64 + i / 65536,
            (i >> 8) & 255,
            i & 255
        )
        .expect("write");
    }
    let mut partners = String::from(
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata:\n  name: partners\n  labels:\n    feed: partners\nspec:\n  nets:\n",
    );
    for i in 0..SET_SIZE {
        // 11.0.0.0 upwards, one /24 each.
        writeln!(partners, "    - 11.{}.{}.0/24", i >> 8, i & 255).expect("write");
    }
    vec![feed, partners]
}

fn security_policy(k: usize) -> String {
    let name = format!("security.sec-{k}");
    let order = (k * 10) as f64;
    let gnp = |selector: &str, ns: Option<&str>, ingress: &[String], egress: &[String]| {
        policy_yaml(
            "GlobalNetworkPolicy",
            &name,
            None,
            order,
            selector,
            ns,
            ingress,
            egress,
        )
    };
    let s = |text: &str| text.to_owned();
    match k {
        // The threat feed: logged and denied both ways; the rest goes on (tier Passes).
        0 => gnp(
            "all()",
            None,
            &[
                s("{action: Log, source: {selector: \"feed == 'blocklist'\"}}"),
                s("{action: Deny, source: {selector: \"feed == 'blocklist'\"}}"),
            ],
            &[s(
                "{action: Deny, destination: {selector: \"feed == 'blocklist'\"}}",
            )],
        ),
        // Cloud metadata only for pods that say they need it.
        1 => gnp(
            "!has(metadata-access)",
            None,
            &[],
            &[s(
                "{action: Deny, protocol: TCP, destination: {nets: [169.254.169.254/32], ports: [80]}}",
            )],
        ),
        // Production namespaces of a team take no traffic from outside the cluster.
        _ if k.is_multiple_of(4) => gnp(
            "all()",
            Some(&format!("env == 'prod' && team == 't{}'", k % 10)),
            &[
                s("{action: Deny, ipVersion: 4, source: {notNets: [10.0.0.0/8]}}"),
                s("{action: Deny, ipVersion: 6, source: {notNets: [\"fd00::/16\"]}}"),
            ],
            &[],
        ),
        // Web never reaches databases directly.
        _ if k % 4 == 1 => gnp(
            &format!("tier == 'db' && app == 'app-{}'", k % 20),
            None,
            &[
                s("{action: Log, source: {selector: \"tier == 'web'\"}}"),
                s("{action: Deny, source: {selector: \"tier == 'web'\"}}"),
                s("{action: Pass}"),
            ],
            &[],
        ),
        // No UDP to a lab network; everything outside 192.168/16 goes on to the platform.
        _ if k % 4 == 2 => gnp(
            &format!("app in {{'app-{}', 'app-{}'}}", k % 20, (k + 7) % 20),
            None,
            &[],
            &[
                format!(
                    "{{action: Deny, protocol: UDP, destination: {{nets: [192.168.{k}.0/24], ports: [\"5000:5999\"]}}}}"
                ),
                s("{action: Pass, destination: {notNets: [192.168.0.0/16]}}"),
            ],
        ),
        // Monitoring scrapes metrics in production; prod APIs are left to the platform.
        _ => gnp(
            "has(version) && !has(canary)",
            Some("env == 'prod'"),
            &[s(
                "{action: Allow, protocol: TCP, source: {serviceAccounts: {names: [monitoring]}, namespaceSelector: \"projectcalico.org/name == 'ns-0'\"}, destination: {ports: [metrics]}}",
            )],
            &[s(
                "{action: Pass, protocol: TCP, destination: {selector: \"tier == 'api'\", namespaceSelector: \"env == 'prod'\", ports: [\"8000:8999\"]}}",
            )],
        ),
    }
}

fn platform_policy(k: usize) -> String {
    let name = format!("platform.plat-{k}");
    let ns = k % NAMESPACES;
    let x = (k * 7) % 20;
    let own_ns = format!("projectcalico.org/name == 'ns-{ns}'");
    let gnp = |selector: &str, ns: Option<&str>, ingress: &[String], egress: &[String]| {
        policy_yaml(
            "GlobalNetworkPolicy",
            &name,
            None,
            k as f64,
            selector,
            ns,
            ingress,
            egress,
        )
    };
    let s = |text: &str| text.to_owned();
    match k % 5 {
        // An app's front door, and its calls out to partners.
        0 => gnp(
            &format!("app == 'app-{x}'"),
            Some(&own_ns),
            &[s(
                "{action: Allow, protocol: TCP, source: {selector: \"tier in {'web', 'api'}\"}, destination: {ports: [http, \"9000:9100\"]}}",
            )],
            &[s(
                "{action: Allow, protocol: TCP, destination: {selector: \"feed == 'partners'\", ports: [443]}}",
            )],
        ),
        // Web tiers of a team: DNS by named port, HTTPS to the partners' range.
        1 => gnp(
            "tier == 'web'",
            Some(&format!("team == 't{}'", k % 10)),
            &[],
            &[
                s(
                    "{action: Allow, protocol: UDP, destination: {selector: \"app == 'app-0'\", namespaceSelector: all(), ports: [dns]}}",
                ),
                s(
                    "{action: Allow, protocol: TCP, destination: {nets: [11.0.0.0/12], ports: [443]}}",
                ),
            ],
        ),
        // IPv6 node ports, the rest left to the next tier.
        2 => gnp(
            &format!("app == 'app-{x}' && has(version)"),
            None,
            &[
                s(
                    "{action: Allow, ipVersion: 6, protocol: TCP, source: {nets: [\"fd00::/16\"]}, destination: {ports: [\"30000:32767\"]}}",
                ),
                s("{action: Pass}"),
            ],
            &[],
        ),
        // Dev APIs take frontend's service account on http, nothing else over TCP.
        3 => gnp(
            &format!("tier == 'api' && version == 'v{}'", k % 2),
            Some("env == 'dev'"),
            &[
                s(
                    "{action: Allow, protocol: TCP, source: {serviceAccounts: {names: [frontend]}}, destination: {ports: [8080]}}",
                ),
                s("{action: Deny, protocol: TCP, destination: {notPorts: [8080, \"9090:9091\"]}}"),
            ],
            &[],
        ),
        // Everything but databases: log, databases to the app owners, SCTP out.
        _ => gnp(
            "!(tier == 'db')",
            Some(&own_ns),
            &[],
            &[
                s("{action: Log}"),
                s("{action: Pass, destination: {selector: \"tier == 'db'\"}}"),
                s("{action: Allow, protocol: SCTP}"),
            ],
        ),
    }
}

fn default_policy(k: usize) -> String {
    if k == DEFAULT_POLICIES - 1 {
        // Cluster-wide default deny, after the Kubernetes policies (order 1000).
        return policy_yaml(
            "GlobalNetworkPolicy",
            "default.default-deny",
            None,
            10_000.0,
            "projectcalico.org/namespace != 'kube-system'",
            None,
            &[],
            &[],
        );
    }
    let name = format!("default.app-{k}");
    let ns = k % NAMESPACES;
    let x = (k * 3 + k / NAMESPACES) % 20;
    let y = (x + 1) % 20;
    let tier = ["web", "api", "db"][k % 3];
    let gnp = |selector: &str, ns: Option<&str>, ingress: &[String], egress: &[String]| {
        policy_yaml(
            "GlobalNetworkPolicy",
            &name,
            None,
            (100 + k) as f64,
            selector,
            ns,
            ingress,
            egress,
        )
    };
    let s = |text: &str| text.to_owned();
    let own_ns = format!("projectcalico.org/name == 'ns-{ns}'");
    match k % 4 {
        0 => gnp(
            &format!("app == 'app-{x}' && tier == '{tier}'"),
            Some(&own_ns),
            &[format!(
                "{{action: Allow, protocol: TCP, source: {{selector: \"app == 'app-{y}'\"}}, destination: {{ports: [8080]}}}}"
            )],
            &[],
        ),
        1 => gnp(
            &format!("app == 'app-{x}'"),
            Some(&format!("team == 't{}'", k % 10)),
            &[],
            &[format!(
                "{{action: Allow, protocol: TCP, destination: {{namespaceSelector: \"team == 't{}'\", selector: \"tier == 'api'\", ports: [metrics]}}}}",
                (k + 1) % 10
            )],
        ),
        2 => gnp(
            &format!("app in {{'app-{x}', 'app-{y}'}}"),
            None,
            &[s(
                "{action: Allow, protocol: TCP, source: {serviceAccounts: {selector: \"projectcalico.org/name in {'frontend', 'backend'}\"}}, destination: {ports: [\"8000:8100\"]}}",
            )],
            &[],
        ),
        _ => gnp(
            &format!("tier == 'db' && !has(canary) && app != 'app-{y}'"),
            Some("env == 'prod'"),
            &[
                s("{action: Deny, protocol: UDP}"),
                format!(
                    "{{action: Allow, protocol: TCP, source: {{selector: \"tier == 'api'\", namespaceSelector: \"{own_ns}\"}}, destination: {{ports: [5432]}}}}"
                ),
            ],
            &[],
        ),
    }
}

/// A few namespaced Calico NetworkPolicies (tier `default`), one in the local pods'
/// namespace ns-7.
fn namespaced_policies() -> Vec<String> {
    [7, 17, 27, 37, 47]
        .into_iter()
        .map(|ns| {
            policy_yaml(
                "NetworkPolicy",
                "default.same-namespace",
                Some(&format!("ns-{ns}")),
                500.0,
                "all()",
                None,
                &["{action: Allow, source: {selector: all()}}".to_owned()],
                &[
                    "{action: Allow, protocol: UDP, destination: {namespaceSelector: \"projectcalico.org/name == 'ns-0'\", selector: \"app == 'app-0'\", ports: [53]}}".to_owned(),
                ],
            )
        })
        .collect()
}

/// The extra GlobalNetworkPolicy of the incremental change: ns-7's app-7 (pod-7 of ns-7 is on
/// node-7) opens one more port.
fn extra_policy() -> String {
    policy_yaml(
        "GlobalNetworkPolicy",
        "platform.extra",
        None,
        5.0,
        "app == 'app-7'",
        Some("projectcalico.org/name == 'ns-7'"),
        &["{action: Allow, protocol: TCP, destination: {ports: [8081]}}".to_owned()],
        &[],
    )
}

/// Parses `documents` as one calicoctl file; panics on any resource that Calico would reject
/// or that Palisade cannot enforce.
fn parse(documents: &[String]) -> Vec<CalicoResource> {
    let text = documents.join("---\n");
    parse_documents(&text)
        .into_iter()
        .map(|result| {
            let resource = result.unwrap_or_else(|e| panic!("{e}"));
            let errors = unsupported(&resource);
            assert!(
                errors.is_empty(),
                "{} {}: {errors:?}",
                resource.kind(),
                resource.name()
            );
            resource
        })
        .collect()
}

fn calico_documents() -> Vec<String> {
    let mut documents = tiers_yaml();
    documents.extend(network_sets_yaml(0));
    documents.extend((0..SECURITY_POLICIES).map(security_policy));
    documents.extend((0..PLATFORM_POLICIES).map(platform_policy));
    documents.extend((0..DEFAULT_POLICIES).map(default_policy));
    documents.extend(namespaced_policies());
    documents
}

/// `shared/cluster.rs`'s cluster with the Calico resources.
fn cluster() -> Cluster {
    let mut cluster = kubernetes_cluster();
    let started = Instant::now();
    let resources = parse(&calico_documents());
    let parsed = resources.len();
    for resource in resources {
        cluster.calico.insert(resource);
    }
    eprintln!(
        "parsed {parsed} Calico resources in {:?}",
        started.elapsed()
    );
    cluster
}

// ---------------------------------------------------------------------------------------
// The three incremental changes.

fn add_policy(cluster: &mut Cluster) {
    for resource in parse(&[extra_policy()]) {
        cluster.calico.insert(resource);
    }
}

fn add_cidr(cluster: &mut Cluster) {
    // The threat feed again, with one more /32.
    let feed = parse(&network_sets_yaml(1)[..1]);
    for resource in feed {
        cluster.calico.insert(resource);
    }
}

type Change = (&'static str, fn(&mut Cluster));

const CHANGES: [Change; 3] = [
    ("pod-label-change", relabel),
    ("gnp-added", add_policy),
    ("cidr-added", add_cidr),
];

/// Peak resident memory of the process so far (`VmHWM`), for orientation.
fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l["VmHWM:".len()..].trim().to_owned())
        })
        .unwrap_or_else(|| "?".into())
}

/// Prints the full compile of one scope: time, counts, map sizes. Returns the compiler (its
/// state is the base cluster's) and how long the compile took.
fn full_compile(base: &Cluster, name: &str, scope: &Scope) -> (Compiler, MapContents, Duration) {
    let started = Instant::now();
    let mut compiler = Compiler::new();
    let compiled = compiler.compile(base, scope);
    let took = started.elapsed();
    // A copy of our own, so that the compiler updates its maps in place on the next compile.
    let full = MapContents::clone(&compiled.maps);
    drop(compiled);
    eprintln!(
        "[{name}] full compile (one run): {took:?} (peak RSS so far {})",
        peak_rss()
    );
    print_sizes(&compiler, &full);
    ordered_sharing(&full);
    (compiler, full, took)
}

/// Writes compiled maps into the real datapath (root), its policy maps created with the
/// capacities they need (`run --rule-capacity`, `--identity-capacity`), and prints how long
/// that took and the kernel memory each map holds (`memlock` of its fdinfo). The maps are
/// pinned under a directory of this process, removed afterwards or when interrupted.
fn program(maps: &MapContents) -> anyhow::Result<()> {
    let pins = PathBuf::from(format!(
        "/sys/fs/bpf/palisade-calico-bench-{}",
        std::process::id()
    ));
    // Interrupted (Ctrl-C, or xtask's time limit): remove the pinned maps before leaving.
    let on_signal = pins.clone();
    if let Err(e) = ctrlc::set_handler(move || {
        let _ = std::fs::remove_dir_all(&on_signal);
        std::process::exit(130);
    }) {
        eprintln!("  no Ctrl-C cleanup ({e})");
    }
    let result = program_pinned(maps, &pins);
    if let Err(e) = std::fs::remove_dir_all(&pins)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        eprintln!("  could not remove {}: {e}", pins.display());
    }
    result
}

/// [`program`], its maps pinned under `pins`.
fn program_pinned(maps: &MapContents, pins: &Path) -> anyhow::Result<()> {
    use std::os::fd::{AsFd as _, AsRawFd as _};

    use aya::maps::MapData;
    use policy_agent::dataplane::{Capacities, Datapath};
    use policy_common::{capacity, map_names, rule::PREFIX_FULL};

    let exact = maps
        .rules
        .keys()
        .filter(|k| k.prefix_len == PREFIX_FULL)
        .count();
    let rules = u32::try_from(exact.max(maps.rules.len() - exact))?.max(capacity::RULES);
    let identities = u32::try_from(maps.identities.len())?.max(capacity::IDENTITIES);
    let mut datapath = Datapath::load_with(pins, Capacities { rules, identities })?;
    let started = Instant::now();
    let stats = datapath.apply(&MapContents::default(), maps)?;
    eprintln!(
        "  programmed {} entries in {:?} (rule capacity {rules}, identity capacity {identities})",
        stats.written,
        started.elapsed()
    );
    for map in [
        map_names::RULES_EXACT,
        map_names::RULES,
        map_names::ADDRESSES,
        map_names::IDENTITIES,
        map_names::ENDPOINTS,
    ] {
        let data = MapData::from_pin(pins.join(map))?;
        let fdinfo = std::fs::read_to_string(format!(
            "/proc/self/fdinfo/{}",
            data.fd().as_fd().as_raw_fd()
        ))?;
        let memlock = fdinfo
            .lines()
            .find_map(|line| line.strip_prefix("memlock:"))
            .map_or("?".to_owned(), |v| v.trim().to_owned());
        eprintln!("    {map:<22} memlock {memlock} bytes");
    }
    Ok(())
}

/// How much an ordered table's peers share: per table, the peers (pod identities, CIDR
/// classes) with entries of their own, and how many distinct verdict functions (cells) they
/// hold between them. Read from the maps alone.
fn ordered_sharing(maps: &MapContents) {
    use std::collections::{BTreeMap, BTreeSet};

    use policy_common::identity::ANY;
    let ordered = maps.ordered_tables();
    // table -> peer -> its entries without the table and peer.
    // A peer's entries in one table, without the table and the peer: (prefix, protocol,
    // port, action, rule, flags).
    type PeerEntries = Vec<(u32, u8, u16, u32, u32, u32)>;
    let mut cells: BTreeMap<u32, BTreeMap<u32, PeerEntries>> = BTreeMap::new();
    for (key, value) in &maps.rules {
        let data = key.data;
        if !ordered.contains(&data.table) || data.peer_identity == ANY {
            continue;
        }
        cells
            .entry(data.table)
            .or_default()
            .entry(data.peer_identity)
            .or_default()
            .push((
                key.prefix_len,
                data.protocol,
                data.port_be,
                value.action,
                value.rule_ref,
                value.flags,
            ));
    }
    // Peers that every ordered table judges alike could share one identity on this node.
    let mut vectors: BTreeMap<u32, Vec<(u32, &PeerEntries)>> = BTreeMap::new();
    for (table, by_peer) in &cells {
        for (peer, entries) in by_peer {
            vectors.entry(*peer).or_default().push((*table, entries));
        }
    }
    let judged_alike: BTreeSet<_> = vectors.values().collect();
    eprintln!(
        "  peers with entries of their own in some ordered table: {}; distinct judgements across all tables: {}",
        vectors.len(),
        judged_alike.len()
    );
    let mut peers: Vec<usize> = cells.values().map(BTreeMap::len).collect();
    let mut distinct: Vec<usize> = cells
        .values()
        .map(|by_peer| by_peer.values().collect::<BTreeSet<_>>().len())
        .collect();
    let median_max = |v: &mut Vec<usize>| {
        v.sort_unstable();
        (
            v.get(v.len() / 2).copied().unwrap_or(0),
            v.last().copied().unwrap_or(0),
        )
    };
    let (peers_median, peers_max) = median_max(&mut peers);
    let (cells_median, cells_max) = median_max(&mut distinct);
    eprintln!(
        "  ordered tables: {} with peers of their own; per table, peers with own entries median {peers_median} (max {peers_max}), distinct cells among them median {cells_median} (max {cells_max})",
        cells.len()
    );
}

/// Prints the figures of every scope; returns the (scope, measurement) pairs fast enough for
/// criterion: those whose one run took at most `SLOW` (`full` or a change's name).
///
/// A scope whose full compile takes longer than `SLOW` still gets its three one-shot
/// incremental changes, and criterion only for the changes that are fast; the scopes after it
/// (every pod local: a superset of one node's local pods) are not compiled at all.
fn report(base: &Cluster) -> Vec<(&'static str, &'static str)> {
    let calico = &base.calico;
    eprintln!(
        "cluster: {} namespaces, {} pods, {} Kubernetes policies, {NODES} nodes; Calico: {} tiers, {} policies ({} global), {} network sets ({} CIDRs)",
        base.namespaces.len(),
        base.pods.len(),
        base.policies.len(),
        calico.tiers.len(),
        calico.policies.len(),
        calico
            .policies
            .keys()
            .filter(|(ns, _)| ns.is_empty())
            .count(),
        calico.network_sets.len(),
        calico
            .network_sets
            .values()
            .map(|s| s.nets.len())
            .sum::<usize>(),
    );
    let mut fast = Vec::new();
    let mut too_slow: Option<(&str, Duration)> = None;
    for (name, scope) in calico_scopes() {
        if let Some((slow, took)) = too_slow {
            eprintln!(
                "[{name}] not compiled: [{slow}] already took {took:?} (over {SLOW:?}) and this scope's local pods are a superset of its"
            );
            continue;
        }
        let (mut compiler, before, took) = full_compile(base, name, &scope);
        if took > SLOW {
            eprintln!("  full compile over {SLOW:?}: no criterion run of it");
            too_slow = Some((name, took));
        } else {
            fast.push((name, "full"));
        }
        for (i, (change, apply)) in CHANGES.into_iter().enumerate() {
            let mut changed = base.clone();
            apply(&mut changed);
            let started = Instant::now();
            let after = compiler.compile(&changed, &scope).maps;
            let took = started.elapsed();
            eprintln!(
                "  {change}: recompile {took:?}, {} entries touched",
                touched(&before, &after)
            );
            if took <= SLOW {
                fast.push((name, change));
            }
            if i + 1 < CHANGES.len() {
                // Back to the base for the next change.
                drop(after);
                let started = Instant::now();
                compiler.compile(base, &scope);
                eprintln!("    (back to the base: {:?})", started.elapsed());
            }
        }
        eprintln!("  peak RSS so far {}", peak_rss());
    }
    fast
}

/// The node of 100 pods; the all-local scope (every pod an endpoint, about 100 times the
/// work and memory) only with `CALICO_BENCH_ALL_LOCAL=1`.
fn calico_scopes() -> Vec<(&'static str, Scope)> {
    let all_local = std::env::var_os("CALICO_BENCH_ALL_LOCAL").is_some();
    scopes()
        .into_iter()
        .filter(|(name, _)| all_local || *name != "all-local")
        .collect()
}

fn benches(c: &mut Criterion) {
    let base = cluster();
    if std::env::var_os("CALICO_BENCH_PROFILE").is_some() {
        // For a profiler: the node scope's full compile alone.
        let (name, scope) = scopes()[0].clone();
        full_compile(&base, name, &scope);
        return;
    }
    if std::env::var_os("CALICO_BENCH_PROGRAM").is_some() {
        // The kernel's side first (each map's entries and memory), then the report and
        // criterion as without it.
        let (name, scope) = scopes()[0].clone();
        let (_, full, _) = full_compile(&base, name, &scope);
        if let Err(e) = program(&full) {
            eprintln!("  programming the datapath: {e:#}");
        }
    }
    let fast = report(&base);
    let changed: Vec<(&str, Cluster)> = CHANGES
        .iter()
        .map(|(name, apply)| {
            let mut cluster = base.clone();
            apply(&mut cluster);
            (*name, cluster)
        })
        .collect();
    let mut group = c.benchmark_group("calico");
    group.sample_size(10);
    for (name, scope) in calico_scopes() {
        if fast.contains(&(name, "full")) {
            group.bench_function(format!("full/{name}"), |b| {
                b.iter(|| Compiler::new().compile(black_box(&base), &scope))
            });
        }
        // Each iteration is one change: to the changed cluster, then back.
        for (change, cluster) in &changed {
            if !fast.contains(&(name, *change)) {
                continue;
            }
            let mut compiler = Compiler::new();
            compiler.compile(&base, &scope);
            let mut flip = false;
            group.bench_function(format!("{change}/{name}"), |b| {
                b.iter(|| {
                    flip = !flip;
                    compiler.compile(black_box(if flip { cluster } else { &base }), &scope)
                })
            });
        }
    }
    group.finish();
}

criterion_group!(calico, benches);
criterion_main!(calico);
