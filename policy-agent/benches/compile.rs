//! Compiler at scale: a generated cluster of 10,000 pods in 100 namespaces with 1,000
//! policies using every construct. Prints map sizes, then criterion measures a full compile
//! and the two incremental changes (a pod's labels change; one policy is added), with the
//! number of map entries each change touches.
//!
//! Run: `cargo bench -p policy-agent --bench compile` (one core is what the compiler uses).

#[path = "shared/cluster.rs"]
mod cluster;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use policy_agent::{
    compiler::{Compiler, MapContents},
    model::{Cluster, Protocol},
};

use self::cluster::{
    NODES, kubernetes_cluster, kubernetes_policy, print_sizes, range, relabel, scopes, touched,
};

fn add_policy(cluster: &mut Cluster) {
    // np-1 of ns-6 selects app-7, which pod-7 of ns-6 (on node-7) has; the copy opens another
    // port, so it is a new table for a local pod.
    let mut np = kubernetes_policy(6, 1);
    np.name = "np-extra".into();
    if let Some(rule) = np.ingress.as_mut().and_then(|rules| rules.first_mut()) {
        rule.ports = Some(vec![range(Protocol::Tcp, 8081, 8081)]);
    }
    cluster
        .policies
        .insert((np.namespace.clone(), np.name.clone()), np.into());
}

fn report(base: &Cluster) {
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
        print_sizes(&compiler, &full);
        for (change, apply) in [
            ("pod label change", relabel as fn(&mut Cluster)),
            ("one policy added", add_policy),
        ] {
            let mut changed = base.clone();
            apply(&mut changed);
            let mut compiler = Compiler::new();
            // A copy of our own, so that the timed compile updates the maps in place.
            let before = MapContents::clone(&compiler.compile(base, &scope).maps);
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
    let base = kubernetes_cluster();
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
