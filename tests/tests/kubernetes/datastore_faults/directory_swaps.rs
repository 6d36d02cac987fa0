//! A directory replaced by a rename, a swapped symlink, and a ConfigMap volume's swaps.

use std::{fs, os::unix::fs::symlink, time::Instant};

use palisade_tests::scratch::Scratch;
use policy_agent::datastore::file::FileDatastore;
use tokio::sync::mpsc::unbounded_channel;

use super::configmap_volume::ConfigMapVolume;
use super::fixtures::{converged, fresh, load, namespace, quiet, small_cluster, yaml};

/// The directory renamed away and a new one put in its place, three times; then a symlinked
/// directory swapped (`ln -sfn` is a rename of a new link over the old). After each swap the
/// datastore holds the new directory's contents, and a later edit in the new directory is seen.
#[tokio::test]
async fn a_replaced_directory_keeps_being_watched() {
    let scratch = Scratch::new("datastore-faults", "replaced");
    let dir = scratch.manifests.join("manifests");
    fs::create_dir(&dir).expect("directory");
    fs::write(dir.join("cluster.yaml"), small_cluster(0)).expect("write");
    let mut store = FileDatastore::new(&dir);
    let (tx, mut changes) = unbounded_channel();
    let _watch = store.watch(tx).expect("watching");
    load(&mut store);

    let started = Instant::now();
    for round in 1..=3u16 {
        quiet(&mut changes).await;
        // A GitOps tool's sync: build the new tree beside it, then swap.
        let staging = scratch.manifests.join(format!("staging-{round}"));
        fs::create_dir(&staging).expect("staging");
        fs::write(staging.join("cluster.yaml"), small_cluster(round * 10)).expect("write");
        let old = scratch.manifests.join(format!("old-{round}"));
        fs::rename(&dir, &old).expect("renaming the directory away");
        fs::rename(&staging, &dir).expect("putting the new one in place");
        fs::remove_dir_all(&old).expect("removing the old one");
        let snapshot = converged(&mut store, &mut changes, "the new directory").await;
        assert_eq!(snapshot.cluster, fresh(&dir), "round {round}");

        // An edit in the new directory is seen.
        quiet(&mut changes).await;
        fs::write(dir.join("cluster.yaml"), small_cluster(round * 10 + 1)).expect("edit");
        let snapshot = converged(&mut store, &mut changes, "an edit in the new directory").await;
        assert!(
            snapshot
                .cluster
                .pods
                .contains_key(&("shop".into(), format!("client-{}", round * 10 + 1))),
            "round {round}"
        );
    }

    // A symlinked directory, swapped.
    let link = scratch.manifests.join("current");
    let target = |n: u16| scratch.manifests.join(format!("release-{n}"));
    fs::create_dir(target(0)).expect("release");
    fs::write(target(0).join("cluster.yaml"), small_cluster(40)).expect("write");
    symlink(target(0), &link).expect("symlink");
    let mut linked = FileDatastore::new(&link);
    let (tx, mut link_changes) = unbounded_channel();
    let _link_watch = linked.watch(tx).expect("watching through the link");
    load(&mut linked);
    for n in 1..=2u16 {
        quiet(&mut link_changes).await;
        fs::create_dir(target(n)).expect("release");
        fs::write(target(n).join("cluster.yaml"), small_cluster(40 + n)).expect("write");
        let tmp = scratch.manifests.join("current.tmp");
        symlink(target(n), &tmp).expect("new link");
        fs::rename(&tmp, &link).expect("swapping the link");
        let snapshot = converged(&mut linked, &mut link_changes, "the swapped link").await;
        assert_eq!(snapshot.cluster, fresh(&link), "swap {n}");
        quiet(&mut link_changes).await;
        fs::write(target(n).join("late.yaml"), yaml(&[namespace("late")])).expect("edit");
        let snapshot = converged(&mut linked, &mut link_changes, "an edit after the swap").await;
        assert!(snapshot.cluster.namespaces.contains_key("late"), "swap {n}");
        fs::remove_file(target(n).join("late.yaml")).expect("remove");
    }
    println!(
        "directory replaced 3 times, link swapped twice: followed, {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_configmap_volume_is_read_and_followed_through_its_swaps() {
    let scratch = Scratch::new("datastore-faults", "configmap");
    let mut volume = ConfigMapVolume::new(scratch.manifests.join("policies"));
    volume.update(&[("cluster.yaml", small_cluster(0))]);
    let mut store = FileDatastore::new(&volume.dir);
    // Regression: the manifests are symlinks, which the datastore skipped: it read nothing.
    let first = load(&mut store);
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    assert_eq!(
        first.cluster.pods.len(),
        3,
        "the ConfigMap's objects were read"
    );
    assert_eq!(first.cluster.policies.len(), 2);

    let (tx, mut changes) = unbounded_channel();
    let _watch = store.watch(tx).expect("watching the volume");
    let started = Instant::now();
    for generation in 1..=4u16 {
        quiet(&mut changes).await;
        // Keys come and go as well as change.
        let mut files = vec![("cluster.yaml", small_cluster(generation))];
        if generation % 2 == 1 {
            files.push((
                "extra.yaml",
                yaml(&[namespace(&format!("extra-{generation}"))]),
            ));
        }
        volume.update(&files);
        let snapshot = converged(&mut store, &mut changes, "the ConfigMap update").await;
        assert_eq!(snapshot.cluster, fresh(&volume.dir));
        assert_eq!(
            snapshot
                .cluster
                .namespaces
                .contains_key(&format!("extra-{generation}")),
            generation % 2 == 1
        );
    }
    println!(
        "ConfigMap volume: 4 swaps followed, {:?}",
        started.elapsed()
    );
}
