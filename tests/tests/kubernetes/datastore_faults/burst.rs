//! 10,000 objects appearing at once in the file datastore, loaded and compiled in time.

use std::{fs, time::Instant};

use palisade_tests::scratch::Scratch;
use policy_agent::{
    compiler::{Compiler, Scope},
    datastore::file::FileDatastore,
    model::Cluster,
};
use tokio::sync::mpsc::unbounded_channel;

use super::fixtures::{
    BURST, BURST_BUDGET, NODE, converged, load, namespace, pod, policy, quiet, small_cluster, yaml,
};

/// [`BURST`] objects in several files: 100 namespaces, pods spread over 10 nodes, a policy
/// for every fifth pod.
fn burst_files() -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut objects = Vec::new();
    let mut total = 0;
    for n in 0..100 {
        objects.push(namespace(&format!("ns-{n}")));
        total += 1;
    }
    let mut i = 0usize;
    while total < BURST {
        let ns = format!("ns-{}", i % 100);
        let ip = format!("10.{}.{}.{}", 64 + i / 65_536, (i / 256) % 256, i % 256);
        let node = format!(
            "node-{}",
            if i.is_multiple_of(10) {
                "a".to_owned()
            } else {
                (i % 10).to_string()
            }
        );
        objects.push(pod(
            &ns,
            &format!("pod-{i}"),
            &format!("app-{}", i % 50),
            &ip,
            &node,
        ));
        total += 1;
        if i.is_multiple_of(5) && total < BURST {
            objects.push(policy(
                &ns,
                &format!("policy-{i}"),
                &format!("app-{}", i % 50),
                &format!("app-{}", (i + 1) % 50),
                u16::try_from(1000 + i % 5000).expect("port"),
            ));
            total += 1;
        }
        i += 1;
        if objects.len() == 1000 {
            files.push((format!("burst-{}.yaml", files.len()), yaml(&objects)));
            objects.clear();
        }
    }
    if !objects.is_empty() {
        files.push((format!("burst-{}.yaml", files.len()), yaml(&objects)));
    }
    files
}

fn object_count(cluster: &Cluster) -> usize {
    cluster.namespaces.len() + cluster.pods.len() + cluster.policies.len()
}

#[tokio::test]
async fn ten_thousand_objects_appearing_at_once_converge_in_bounded_time() {
    let scratch = Scratch::new("datastore-faults", "burst");
    let dir = scratch.manifests.join("manifests");
    fs::create_dir(&dir).expect("directory");
    fs::write(dir.join("cluster.yaml"), small_cluster(0)).expect("write");
    let mut store = FileDatastore::new(&dir);
    let (tx, mut changes) = unbounded_channel();
    let _watch = store.watch(tx).expect("watching");
    let before = load(&mut store);
    let scope = Scope {
        node_name: Some(NODE.to_owned()),
        host_addrs: Vec::new(),
    };
    let mut compiler = Compiler::new();
    compiler.compile(&before.cluster, &scope);
    quiet(&mut changes).await;

    // Written beside, then renamed in: they appear at once.
    let files = burst_files();
    let staging = scratch.manifests.join("staging");
    fs::create_dir(&staging).expect("staging");
    for (name, contents) in &files {
        fs::write(staging.join(name), contents).expect("write");
    }
    let started = Instant::now();
    for (name, _) in &files {
        fs::rename(staging.join(name), dir.join(name)).expect("rename in");
    }
    let snapshot = converged(&mut store, &mut changes, "10,000 objects").await;
    let loaded = started.elapsed();
    let compiled = compiler.compile(&snapshot.cluster, &scope);
    let total = started.elapsed();
    assert_eq!(
        object_count(&snapshot.cluster),
        BURST + object_count(&before.cluster)
    );
    // The pods of node-a are its endpoints: one in ten, plus the small cluster's three.
    assert_eq!(
        compiled.maps.endpoints.len(),
        snapshot
            .cluster
            .pods
            .values()
            .filter(|p| p.node_name.as_deref() == Some(NODE))
            .count()
    );
    assert!(
        total < BURST_BUDGET,
        "{BURST} objects took {total:?} (budget {BURST_BUDGET:?})"
    );
    println!(
        "{BURST} objects in {} files: loaded in {loaded:?}, loaded and compiled in {total:?}, \
         {} endpoints, {} rule entries",
        files.len(),
        compiled.maps.endpoints.len(),
        compiled.maps.rules.len()
    );
}
