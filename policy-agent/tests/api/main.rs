//! The agent's own tests that need no privileges: the Calico resources, `policy-agent explain`
//! and the ingestion fuzz. One binary (modules below) instead of one per file, so the crate is
//! linked once. Privileged tests (BPF programs, the netns lab, the stand-in API server) live in
//! `palisade-tests` (`tests/tests/{kernel,lab,models,kubernetes}`), which depends on this crate
//! and not the other way round.

mod calico_resources;
mod explain_cli;
mod ingestion_fuzz;

/// A temporary directory for a test's manifests, removed when dropped (however the test ends).
fn scratch_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("palisade-{name}-"))
        .tempdir()
        .expect("creating a manifest directory")
}
