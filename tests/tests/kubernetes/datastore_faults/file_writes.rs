//! A manifest written in pieces, and a truncated file its writer has closed.

use std::{fs, io::Write as _, time::Instant};

use palisade_tests::scratch::Scratch;
use policy_agent::datastore::file::FileDatastore;
use tokio::sync::mpsc::unbounded_channel;

use super::fixtures::{NODE, changed, converged, fresh, load, pod, quiet, small_cluster, yaml};

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
