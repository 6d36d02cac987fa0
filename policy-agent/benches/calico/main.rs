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

#[path = "../shared/cluster.rs"]
mod cluster;
mod resources;

use std::{
    hint::black_box,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use criterion::{Criterion, criterion_group, criterion_main};
use policy_agent::{
    compiler::{Compiler, MapContents, Scope},
    model::Cluster,
};

use self::cluster::{NODES, print_sizes, relabel, scopes, touched};
use self::resources::{cluster, extra_policy, network_sets_yaml, parse};

/// A scope whose one full compile takes longer is not run under criterion.
const SLOW: Duration = Duration::from_secs(60);

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
