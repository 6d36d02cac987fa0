//! Datastore faults (issue 18, fault case 5): the agent keeps the last good state and converges
//! when its datastore misbehaves.
//!
//! At the datastore level (fast, unprivileged):
//!
//! - a manifest written in pieces (the file truncated, then written in two writes, a reload
//!   happening in between): the file datastore, watching its directory, keeps the objects the
//!   file held until the writer closes it, then takes the new version whole;
//! - the directory replaced by a rename (as GitOps sync tools do), and a symlinked directory
//!   swapped: the watch follows the new directory and sees its later changes;
//! - a ConfigMap volume (`..data` swapped to a new timestamped directory, the manifests
//!   symlinks through it): read at all (it was not: symlinks were skipped), and followed
//!   through its swaps;
//! - 10,000 objects appearing at once: loaded and compiled in bounded time;
//! - the API server stand-in going away in the middle of a relist (after a 410 Gone) and coming
//!   back with its history compacted: the stores keep the last state meanwhile and converge.
//!
//! End to end, the real agent binary (privileged: loads BPF programs; needs root, a failure under
//! CI=true), attached to no interface:
//!
//! - against the stand-in API server: 10,000 objects appear behind expired watches, the server
//!   goes away during the relist and returns compacted; the agent's status converges to the
//!   server's state and its pinned endpoints map holds the new local pods;
//! - on a ConfigMap-shaped directory: its status follows two `..data` swaps.
//!
//! The agent binary watches its directory with `agent.rs`'s own watcher, which follows
//! neither a replaced directory nor a write in progress; the file cases above are checked on
//! the datastore and its [`FileDatastore::watch`], which the agent is meant to use instead.
//!
//! Every wait is bounded ([`WAIT`]); figures are printed (`--nocapture`).

use crate::kubernetes_apiserver;

use std::{
    collections::BTreeSet,
    fs,
    io::Write as _,
    net::{IpAddr, Ipv6Addr},
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use aya::maps::{HashMap, MapData};
use kubernetes_apiserver::{ApiServer, Change, Kind};
use palisade_tests::scratch::Scratch;
use policy_agent::{
    compiler::{Compiler, Scope},
    datastore::{
        Snapshot,
        digest::dir_digest,
        file::FileDatastore,
        kubernetes::{self, KubernetesDatastore, digest_versions},
    },
    model::Cluster,
    status::Status,
};
use policy_common::endpoint::{EndpointKey, EndpointPolicy};
use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

/// Every wait ends by this, loudly.
const WAIT: Duration = Duration::from_secs(60);
/// How many objects appear at once in the large cases.
const BURST: usize = 10_000;
/// Loading and compiling [`BURST`] objects, in a debug build on a shared 2-core machine.
const BURST_BUDGET: Duration = Duration::from_secs(120);
const NODE: &str = "node-a";

fn pod(namespace: &str, name: &str, app: &str, ip: &str, node: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": app}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Running", "podIP": ip},
    })
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"team": name}}})
}

/// Lets `from` (in any namespace) reach `app` on `port`.
fn policy(namespace: &str, name: &str, app: &str, from: &str, port: u16) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "podSelector": {"matchLabels": {"app": app}},
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": [{
                    "namespaceSelector": {},
                    "podSelector": {"matchLabels": {"app": from}},
                }],
                "ports": [{"protocol": "TCP", "port": port}],
            }],
        },
    })
}

fn yaml(objects: &[Value]) -> String {
    objects
        .iter()
        .map(|o| serde_yaml::to_string(o).expect("object as YAML"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// A small cluster in one file; `version` changes the policies' ports and adds a pod, so that
/// each version compiles differently.
fn small_cluster(version: u16) -> String {
    let mut objects = vec![
        namespace("shop"),
        pod("shop", "web", "web", "10.42.0.10", NODE),
        pod("shop", "db", "db", "10.42.0.11", NODE),
        policy("shop", "web-from-client", "web", "client", 8000 + version),
        policy("shop", "db-from-web", "db", "web", 5432 + version),
    ];
    objects.push(pod(
        "shop",
        &format!("client-{version}"),
        "client",
        &format!("10.42.0.{}", 20 + version),
        NODE,
    ));
    yaml(&objects)
}

fn load(store: &mut FileDatastore) -> Snapshot {
    store.load().expect("reading the manifest directory")
}

/// Waits for a change notification from the datastore's watch.
async fn changed(changes: &mut UnboundedReceiver<()>, what: &str) {
    match tokio::time::timeout(WAIT, changes.recv()).await {
        Ok(Some(())) => {}
        Ok(None) => panic!("the watch stopped, waiting for {what}"),
        Err(_) => panic!("no change seen in {WAIT:?}: {what}"),
    }
}

/// Waits until the watch has been quiet for a while (every event of the previous step
/// handled), then forgets its notifications.
async fn quiet(changes: &mut UnboundedReceiver<()>) {
    let deadline = Instant::now() + WAIT;
    while let Ok(Some(())) = tokio::time::timeout(Duration::from_millis(200), changes.recv()).await
    {
        assert!(Instant::now() < deadline, "the watch never went quiet");
    }
}

/// Reloads (on each change notification) until the snapshot's digest is the directory's: the
/// datastore converged to what is on disk.
async fn converged(
    store: &mut FileDatastore,
    changes: &mut UnboundedReceiver<()>,
    what: &str,
) -> Snapshot {
    let deadline = Instant::now() + WAIT;
    loop {
        let snapshot = load(store);
        if snapshot.digest == dir_digest(store.dir()).expect("directory digest")
            && snapshot.errors.is_empty()
        {
            return snapshot;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, changes.recv()).await {
            Ok(Some(())) => {}
            Ok(None) => panic!("the watch stopped, waiting for {what}"),
            Err(_) => panic!(
                "{what}: not converged in {WAIT:?}; last errors {:?}",
                snapshot.errors
            ),
        }
    }
}

fn fresh(dir: &Path) -> Cluster {
    let snapshot = FileDatastore::new(dir)
        .load()
        .expect("reading the directory");
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    snapshot.cluster
}

/// A file written in pieces, with reloads in between (another file changes meanwhile): each
/// reload sees the complete old version or the complete new one, never the piece. Cut points
/// run through the whole file: the empty file (the `O_TRUNC` moment), mid-line, exactly at a
/// document boundary (a valid YAML prefix that would drop objects), mid-value (`port: 80`
/// cut to `port: 8`, valid and wrong).
#[tokio::test]
async fn a_manifest_written_in_pieces_is_taken_whole_or_not_at_all() {
    let scratch = Scratch::new("datastore-faults", "pieces");
    let dir = &scratch.manifests;
    let path = dir.join("cluster.yaml");
    fs::write(&path, small_cluster(0)).expect("first version");
    let mut store = FileDatastore::new(dir);
    let (tx, mut changes) = unbounded_channel();
    let _watch = store.watch(tx).expect("watching the directory");
    let mut expected = load(&mut store).cluster;
    assert_eq!(expected.pods.len(), 3);

    const STEPS: u16 = 12;
    let started = Instant::now();
    for step in 1..=STEPS {
        quiet(&mut changes).await;
        let next = small_cluster(step);
        let bytes = next.as_bytes();
        // Spread over the file; step 1 is the empty file, step 2 a document boundary.
        let cut = match step {
            1 => 0,
            2 => next.find("---\n").expect("a document boundary") + 4,
            _ => bytes.len() * usize::from(step) / usize::from(STEPS + 1),
        };
        let mut file = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .expect("opening for the write");
        file.write_all(&bytes[..cut]).expect("first piece");
        file.flush().expect("flush");
        // Something else changes meanwhile: a reload happens with the file half written. The
        // other file is renamed into place, whole: written in place, the reload could come
        // between its own write and close, and it would be "being written" too.
        let staged = scratch.manifests.with_extension("other.staged");
        fs::write(&staged, format!("# step {step}\n")).expect("other file");
        fs::rename(&staged, dir.join("other.yaml")).expect("other file renamed into place");
        changed(&mut changes, "the other file").await;
        let meanwhile = load(&mut store);
        assert_eq!(
            meanwhile.cluster,
            expected,
            "step {step}: a reload took in {cut} of {} bytes",
            bytes.len()
        );
        let refusals: Vec<_> = meanwhile
            .errors
            .iter()
            .map(|e| (e.source.as_str(), e.message.contains("being written")))
            .collect();
        assert_eq!(refusals, [("cluster.yaml", true)], "step {step}");

        file.write_all(&bytes[cut..]).expect("second piece");
        drop(file);
        let whole = converged(&mut store, &mut changes, "the closed file").await;
        assert_eq!(whole.cluster, fresh(dir), "step {step}");
        assert_ne!(whole.cluster, expected, "step {step}: the version changed");
        assert!(
            whole
                .cluster
                .pods
                .contains_key(&("shop".into(), format!("client-{step}")))
        );
        expected = whole.cluster;
    }
    println!(
        "written in pieces: {STEPS} writes, every reload whole, {:?}",
        started.elapsed()
    );
}

/// What the file datastore does with a truncated file that its writer has closed (a writer
/// that died mid-write; no watch involved): a file that is not YAML any more keeps every object
/// it held (its error names the file), an object that fails validation keeps its previous
/// version (the error names it and the field); the other files are untouched either way. A
/// cut that leaves valid YAML is what the file says now: only the watch (above) can tell it from
/// an edit.
#[test]
fn a_closed_truncated_file_keeps_what_it_held_when_it_is_not_valid() {
    let scratch = Scratch::new("datastore-faults", "truncated");
    let dir = &scratch.manifests;
    let full = small_cluster(0);
    fs::write(dir.join("cluster.yaml"), &full).expect("write");
    fs::write(
        dir.join("extra.yaml"),
        yaml(&[pod("shop", "extra", "x", "10.42.0.99", NODE)]),
    )
    .expect("write");
    let mut store = FileDatastore::new(dir);
    let before = load(&mut store);
    assert!(before.errors.is_empty(), "{:?}", before.errors);

    let (mut invalid_yaml, mut invalid_objects, mut valid_prefixes) = (0, 0, 0);
    for cut in 0..full.len() {
        fs::write(dir.join("cluster.yaml"), &full.as_bytes()[..cut]).expect("truncate");
        let snapshot = load(&mut store);
        assert!(
            snapshot
                .cluster
                .pods
                .contains_key(&("shop".into(), "extra".into())),
            "cut {cut}: another file's object was dropped"
        );
        let not_yaml = snapshot
            .errors
            .iter()
            .any(|e| e.source == "cluster.yaml" && e.message.contains("not valid YAML"));
        if not_yaml {
            invalid_yaml += 1;
            assert_eq!(snapshot.cluster, before.cluster, "cut {cut}");
        } else if snapshot.errors.is_empty() {
            valid_prefixes += 1;
        } else {
            invalid_objects += 1;
            for error in &snapshot.errors {
                assert_eq!(error.source, "cluster.yaml", "cut {cut}");
                assert!(error.object.is_some(), "cut {cut}: {error}");
                assert!(error.field.is_some(), "cut {cut}: {error}");
            }
        }
        // Restore, so that every cut starts from the whole file's objects.
        fs::write(dir.join("cluster.yaml"), &full).expect("restore");
        assert_eq!(load(&mut store).cluster, before.cluster, "cut {cut}");
    }
    println!(
        "{} cuts: {invalid_yaml} not YAML (file kept whole), {invalid_objects} with an invalid \
         object (its previous version kept), {valid_prefixes} valid prefixes (taken as written)",
        full.len()
    );
    assert!(invalid_yaml > 0 && invalid_objects > 0 && valid_prefixes > 0);
}

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

/// A ConfigMap volume as the kubelet writes it: `..<timestamp>/` holds the files, `..data`
/// links to it, and each key is a link `name -> ..data/name`. An update writes a new
/// timestamped directory, points `..data_tmp` at it, renames that over `..data`, adds links
/// for new keys, removes those of deleted keys and the old directory.
struct ConfigMapVolume {
    dir: PathBuf,
    generation: u32,
    keys: BTreeSet<String>,
}

impl ConfigMapVolume {
    fn new(dir: PathBuf) -> ConfigMapVolume {
        fs::create_dir_all(&dir).expect("volume directory");
        ConfigMapVolume {
            dir,
            generation: 0,
            keys: BTreeSet::new(),
        }
    }

    fn update(&mut self, files: &[(&str, String)]) {
        self.generation += 1;
        let data = format!("..2026_12_07_00_00_00.{:04}", self.generation);
        let data_dir = self.dir.join(&data);
        fs::create_dir(&data_dir).expect("timestamped directory");
        for (name, contents) in files {
            fs::write(data_dir.join(name), contents).expect("key file");
        }
        let old = fs::read_link(self.dir.join("..data")).ok();
        symlink(&data, self.dir.join("..data_tmp")).expect("..data_tmp");
        fs::rename(self.dir.join("..data_tmp"), self.dir.join("..data")).expect("..data swap");
        let keys: BTreeSet<String> = files.iter().map(|(n, _)| (*n).to_owned()).collect();
        for key in keys.difference(&self.keys) {
            symlink(Path::new("..data").join(key), self.dir.join(key)).expect("key link");
        }
        for key in self.keys.difference(&keys) {
            fs::remove_file(self.dir.join(key)).expect("removing a key link");
        }
        if let Some(old) = old {
            fs::remove_dir_all(self.dir.join(old)).expect("removing the old directory");
        }
        self.keys = keys;
    }
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

/// The stand-in's objects at exactly their versions, as the Kubernetes datastore digests them.
fn server_digest(server: &ApiServer) -> String {
    let versions = server.versions();
    digest_versions(
        versions
            .iter()
            .map(|(k, ns, n, v)| (k.as_str(), ns.as_str(), n.as_str(), v.as_str())),
    )
}

/// The objects the API server scenarios start with (API-server form: no `apiVersion` needed).
fn seed_server(server: &ApiServer) {
    server.apply(namespace("shop"));
    server.apply(pod("shop", "web", "web", "10.42.0.10", NODE));
    server.apply(pod("shop", "db", "db", "10.42.0.11", NODE));
    server.apply(policy("shop", "db-from-web", "db", "web", 5432));
}

/// [`BURST`] changes made behind the watches' backs: new namespaces, pods (one in ten on this
/// node) and policies, and the seed's policy deleted.
fn burst_changes() -> Vec<Change> {
    let mut changes = vec![Change::Delete(Kind::NetworkPolicy, "shop", "db-from-web")];
    for n in 0..50 {
        changes.push(Change::Apply(namespace(&format!("burst-{n}"))));
    }
    let mut i = 0usize;
    while changes.len() < BURST {
        let ns = format!("burst-{}", i % 50);
        let ip = format!("10.{}.{}.{}", 64 + i / 65_536, (i / 256) % 256, i % 256);
        let node = if i.is_multiple_of(10) {
            NODE.to_owned()
        } else {
            format!("node-{}", i % 10)
        };
        changes.push(Change::Apply(pod(
            &ns,
            &format!("pod-{i}"),
            &format!("app-{}", i % 40),
            &ip,
            &node,
        )));
        if i.is_multiple_of(4) {
            changes.push(Change::Apply(policy(
                &ns,
                &format!("policy-{i}"),
                &format!("app-{}", i % 40),
                &format!("app-{}", (i + 1) % 40),
                8080,
            )));
        }
        i += 1;
    }
    changes
}

/// The burst's pods on this node: the endpoints the agent must end up with.
fn local_burst_ips(changes: &[Change]) -> BTreeSet<IpAddr> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Apply(o) if o["kind"] == "Pod" && o["spec"]["nodeName"] == NODE => {
                o["status"]["podIP"].as_str()?.parse().ok()
            }
            _ => None,
        })
        .collect()
}

/// Waits until the stand-in has gone away in the middle of a relist, then closes its port.
async fn gone_during_relist(server: &ApiServer) {
    let deadline = Instant::now() + WAIT;
    while !server.is_stopped() {
        assert!(Instant::now() < deadline, "no relist reached the server");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.stop();
}

/// The stand-in goes away while the watchers relist after a 410 Gone, changes land meanwhile
/// and its history is compacted; it comes back. Meanwhile the stores keep their last state;
/// afterwards they converge to the server's.
#[tokio::test]
async fn the_api_server_going_away_during_a_relist_and_returning_compacted() {
    let server = ApiServer::start().await;
    seed_server(&server);
    let (tx, mut changes) = unbounded_channel();
    let options = kubernetes::Options {
        retry_initial: Duration::from_millis(20),
        retry_max: Duration::from_millis(200),
        rediscover: Duration::from_millis(200),
    };
    let mut store = KubernetesDatastore::start(server.client(), options, tx);
    let deadline = Instant::now() + WAIT;
    let before = loop {
        let snapshot = store.snapshot();
        if store.is_synced() && snapshot.digest == server_digest(&server) {
            break snapshot;
        }
        assert!(Instant::now() < deadline, "the first list did not complete");
        let _ = tokio::time::timeout(Duration::from_millis(100), changes.recv()).await;
    };
    let deadline = Instant::now() + WAIT;
    while server.open_watches() < Kind::ALL.len() {
        assert!(Instant::now() < deadline, "the watches did not open");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The next list finds the server going away; then the watches expire with a change no
    // watch sees, so the relist is the only way to it, and it fails.
    server.go_away_on_next_list();
    server.expire_watches(vec![Change::Apply(pod(
        "shop",
        "late",
        "web",
        "10.42.0.12",
        NODE,
    ))]);
    gone_during_relist(&server).await;
    // Away: the burst lands, and etcd compacts.
    let burst = burst_changes();
    let local = local_burst_ips(&burst);
    server.expire_watches(burst);
    server.compact();
    // Meanwhile: the last state, whole.
    let lists_before = server.lists(Kind::Pod);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let meanwhile = store.snapshot();
    assert_eq!(
        meanwhile.cluster, before.cluster,
        "the state changed while the server was away"
    );
    assert!(store.is_synced());

    let started = Instant::now();
    server.restart().await;
    let expected = server_digest(&server);
    let deadline = Instant::now() + WAIT;
    let after = loop {
        let snapshot = store.snapshot();
        if snapshot.digest == expected {
            break snapshot;
        }
        assert!(
            Instant::now() < deadline,
            "not converged to the compacted server's state in {WAIT:?}"
        );
        let _ = tokio::time::timeout(Duration::from_millis(100), changes.recv()).await;
    };
    let converged = started.elapsed();
    assert!(
        server.lists(Kind::Pod) > lists_before,
        "the pods were relisted"
    );
    assert!(
        !after
            .cluster
            .policies
            .contains_key(&("shop".into(), "db-from-web".into()))
    );
    assert!(
        after
            .cluster
            .pods
            .contains_key(&("shop".into(), "late".into()))
    );
    let scope = Scope {
        node_name: Some(NODE.to_owned()),
        host_addrs: Vec::new(),
    };
    let maps = Compiler::new().compile(&after.cluster, &scope).maps;
    let endpoints: BTreeSet<IpAddr> = maps
        .endpoints
        .keys()
        .map(|k| {
            let v6 = Ipv6Addr::from(k.addr);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        })
        .collect();
    assert!(endpoints.is_superset(&local));
    println!(
        "API server away during a relist, back compacted with {} objects: converged {converged:?} \
         after its return, {} endpoints",
        server.versions().len(),
        endpoints.len()
    );
}

/// The real agent binary and its files; killed and removed on drop.
struct Agent {
    child: Child,
    dir: PathBuf,
    pins: PathBuf,
}

impl Agent {
    fn start(test: &str, datastore: &[&str]) -> Agent {
        let id = std::process::id();
        let dir = std::env::temp_dir().join(format!("palisade-faults-agent-{id}-{test}"));
        let pins = PathBuf::from(format!("/sys/fs/bpf/palisade-faults-{id}-{test}"));
        let _ = fs::remove_dir_all(&dir);
        let _ = fs::remove_dir_all(&pins);
        fs::create_dir_all(&dir).expect("agent directory");
        let log = fs::File::create(dir.join("agent.log")).expect("log file");
        let child = Command::new(crate::agent_binary())
            .arg("run")
            .args(datastore)
            .args(["--node-name", NODE])
            .arg("--bpffs")
            .arg(&pins)
            .args(["--interface-pattern", "palisade-test-no-such-interface"])
            // The machine's own namespace: leave its interfaces alone.
            .args(["--uplinks", ""])
            .arg("--status-file")
            .arg(dir.join("status.json"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting policy-agent");
        Agent { child, dir, pins }
    }

    fn status(&self) -> Option<Status> {
        Status::read(&self.dir.join("status.json")).expect("status file")
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// Waits until the status file's digest is `digest`; how long it took.
    async fn converged(&mut self, digest: &str, what: &str) -> Duration {
        let started = Instant::now();
        loop {
            if self.status().is_some_and(|s| s.digest == digest) {
                return started.elapsed();
            }
            if let Ok(Some(exit)) = self.child.try_wait() {
                panic!(
                    "the agent exited ({exit}) waiting for {what}:\n{}",
                    self.log()
                );
            }
            assert!(
                started.elapsed() < WAIT,
                "timed out waiting for {what}; agent log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The addresses in the pinned endpoints map.
    fn endpoints(&self) -> BTreeSet<IpAddr> {
        let map = MapData::from_pin(self.pins.join(policy_common::map_names::ENDPOINTS))
            .expect("opening the pinned endpoints map");
        let map: HashMap<MapData, EndpointKey, EndpointPolicy> =
            HashMap::try_from(aya::maps::Map::HashMap(map)).expect("endpoints map type");
        map.keys()
            .map(|k| {
                let v6 = Ipv6Addr::from(k.expect("reading a key").addr);
                v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
            })
            .collect()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
        let _ = fs::remove_dir_all(&self.pins);
    }
}

/// End to end: the real agent against the stand-in; 10,000 objects appear behind expired
/// watches, the server goes away during the relist and comes back compacted. The agent keeps
/// enforcing the last state meanwhile and converges: its status names the server's exact
/// state and its pinned endpoints are the new local pods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_converges_after_the_api_server_goes_away_during_a_relist() {
    let Some(_turn) =
        crate::agent_turn("the_agent_converges_after_the_api_server_goes_away_during_a_relist")
            .await
    else {
        return;
    };
    let server = ApiServer::start().await;
    seed_server(&server);
    let scratch = Scratch::new("datastore-faults", "agent-kubernetes");
    let kubeconfig = scratch.manifests.join("kubeconfig");
    fs::write(&kubeconfig, server.kubeconfig()).expect("kubeconfig");
    let kubeconfig = kubeconfig.to_str().expect("UTF-8 path").to_owned();
    let mut agent = Agent::start(
        "kubernetes",
        &["--datastore", "kubernetes", "--kubeconfig", &kubeconfig],
    );
    agent
        .converged(&server_digest(&server), "the first list")
        .await;
    let seeded: BTreeSet<IpAddr> = ["10.42.0.10", "10.42.0.11"]
        .iter()
        .map(|a| a.parse().expect("address"))
        .collect();
    assert_eq!(agent.endpoints(), seeded);
    let deadline = Instant::now() + WAIT;
    while server.open_watches() < Kind::ALL.len() {
        assert!(
            Instant::now() < deadline,
            "the agent's watches did not open"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    server.go_away_on_next_list();
    let burst = burst_changes();
    let local = local_burst_ips(&burst);
    server.expire_watches(burst);
    gone_during_relist(&server).await;
    server.compact();
    // Away: the agent keeps what it enforced.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        agent.endpoints(),
        seeded,
        "the maps changed while the server was away"
    );

    server.restart().await;
    let took = agent
        .converged(&server_digest(&server), "the compacted server's state")
        .await;
    let endpoints = agent.endpoints();
    assert_eq!(
        endpoints,
        seeded.union(&local).copied().collect::<BTreeSet<_>>()
    );
    let status = agent.status().expect("status");
    assert!(status.errors.is_empty(), "{:?}", status.errors);
    println!(
        "agent: {} objects after the API server came back compacted; converged in {took:?}, \
         {} endpoints, {} rules",
        server.versions().len(),
        endpoints.len(),
        status.rules
    );
}

/// End to end: the real agent on a ConfigMap-shaped directory, through two `..data` swaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_follows_a_configmap_volume() {
    let Some(_turn) = crate::agent_turn("the_agent_follows_a_configmap_volume").await else {
        return;
    };
    let scratch = Scratch::new("datastore-faults", "agent-configmap");
    let mut volume = ConfigMapVolume::new(scratch.manifests.join("policies"));
    volume.update(&[("cluster.yaml", small_cluster(0))]);
    let dir = volume.dir.to_str().expect("UTF-8 path").to_owned();
    let mut agent = Agent::start("configmap", &["--datastore", &dir]);
    let digest = dir_digest(&volume.dir).expect("digest");
    agent
        .converged(&digest, "the ConfigMap's first contents")
        .await;
    assert_eq!(
        agent.endpoints().len(),
        3,
        "the ConfigMap's pods are endpoints"
    );
    for generation in 1..=2u16 {
        volume.update(&[("cluster.yaml", small_cluster(generation))]);
        let digest = dir_digest(&volume.dir).expect("digest");
        let took = agent.converged(&digest, "the ConfigMap update").await;
        let expected: IpAddr = format!("10.42.0.{}", 20 + generation)
            .parse()
            .expect("address");
        assert!(
            agent.endpoints().contains(&expected),
            "generation {generation}"
        );
        assert!(agent.status().is_some_and(|s| s.errors.is_empty()));
        println!("agent: ConfigMap swap {generation} converged in {took:?}");
    }
}
