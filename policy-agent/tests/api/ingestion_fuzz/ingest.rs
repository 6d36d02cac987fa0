//! The real path under a time bound: a case's file written, loaded and compiled.

use std::{
    fs,
    path::Path,
    sync::mpsc,
    time::{Duration, Instant},
};

use policy_agent::{
    compiler::{Compiler, Scope},
    datastore::{Snapshot, file::FileDatastore},
};
use proptest::test_runner::TestCaseError;

/// The largest file a case writes.
pub(super) const MAX_INPUT: usize = 256 * 1024;
/// One file's load and compile, in a debug build on a loaded machine; far above the
/// milliseconds they take, far below a hang.
pub(super) const FILE_BUDGET: Duration = Duration::from_secs(10);

/// Loads `contents` as the only file of a fresh file datastore, in a thread bounded by
/// [`FILE_BUDGET`], and compiles what was accepted: the snapshot, or the failure.
pub(super) fn ingest(dir: &Path, file: &str, contents: Vec<u8>) -> Result<Snapshot, TestCaseError> {
    for entry in fs::read_dir(dir).expect("scratch directory") {
        fs::remove_file(entry.expect("entry").path()).expect("removing the previous case");
    }
    ingest_into(FileDatastore::new(dir), file, contents).map(|(_, snapshot)| snapshot)
}

/// Writes `contents` as `file` of `store`'s directory, then loads and compiles, in a thread
/// bounded by [`FILE_BUDGET`]; gives the store back for the next load.
pub(super) fn ingest_into(
    mut store: FileDatastore,
    file: &str,
    contents: Vec<u8>,
) -> Result<(FileDatastore, Snapshot), TestCaseError> {
    fs::write(store.dir().join(file), &contents).expect("writing the case");
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    // Detached on purpose: if it hangs, the test fails here rather than waiting forever.
    std::thread::Builder::new()
        .name("ingest".into())
        .spawn(move || {
            let outcome = std::panic::catch_unwind(move || {
                let snapshot = store.load().expect("reading the directory");
                let scope = Scope {
                    node_name: None,
                    host_addrs: Vec::new(),
                };
                let _compiled = Compiler::new().compile(&snapshot.cluster, &scope);
                (store, snapshot)
            });
            let _receiver_gone_after_a_timeout = tx.send(outcome.map_err(|panic| {
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "a panic".to_owned())
            }));
        })
        .expect("spawning the ingest thread");
    match rx.recv_timeout(FILE_BUDGET) {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(panic)) => Err(TestCaseError::fail(format!("panicked: {panic}"))),
        Err(_) => Err(TestCaseError::fail(format!(
            "no answer in {:?} (a hang?)",
            started.elapsed()
        ))),
    }
}

pub(super) fn bounded(file: &str, contents: &[u8]) -> Result<(), TestCaseError> {
    if contents.len() > MAX_INPUT {
        return Err(TestCaseError::reject(format!(
            "{file}: {} bytes, over the input bound",
            contents.len()
        )));
    }
    Ok(())
}
