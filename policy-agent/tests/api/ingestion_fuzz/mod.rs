//! Bad input at the edge: property tests of the manifest ingestion, driven through the real
//! path, the file datastore reading a directory (`FileDatastore::load`: YAML documents, the
//! Kubernetes and Calico types, `model::convert`, Calico's validation and selector parser),
//! then the compiler on whatever was accepted.
//!
//! Three generators:
//!
//! 1. structure-aware mutations of every valid object in `examples/` and
//!    `tests/data/calico/valid.yaml` (every kind the agent reads): wrong types, removed fields,
//!    huge and negative numbers, bad CIDRs, bad selectors, unicode, unknown keys, deep
//!    nesting, duplicate keys, truncation, YAML or JSON;
//! 2. arbitrary YAML documents (with a known `apiVersion`/`kind` or none), raw bytes, and
//!    flow collections nested up to the input bound;
//! 3. selector-like text, deeply nested included, for the selector parser alone.
//!
//! Properties: nothing panics; each file is processed within a time bound (a hang fails the
//! test instead of stalling it); every rejection names its file, and, unless the file is not
//! YAML at all, the object (`Kind namespace/name`, or `document N` when the document has no
//! readable kind and name) and the field; a mutated edit of valid objects that is rejected
//! leaves the version accepted before in force (the whole file's, when it is not YAML);
//! whatever was accepted compiles.
//!
//! Inputs are bounded ([`MAX_INPUT`] bytes per file). `cargo test` runs a short pass
//! ([`DEFAULT_CASES`] per generator, about 10 s in a debug build);
//! `PALISADE_INGEST_FUZZ_CASES=N` runs N per generator (20,000 took 9 minutes). Failures are
//! saved in `../ingestion_fuzz.proptest-regressions` and replayed first.

mod checks;
mod fixed_inputs;
mod generators;
mod ingest;
mod properties;
mod seeds;
