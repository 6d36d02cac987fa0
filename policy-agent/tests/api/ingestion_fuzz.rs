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
//! saved in `ingestion_fuzz.proptest-regressions` beside this file and replayed first.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
    sync::{OnceLock, mpsc},
    time::{Duration, Instant},
};

use crate::scratch_dir;
use policy_agent::{
    calico::selector::{MAX_NESTING, Selector},
    compiler::{Compiler, Scope},
    datastore::{Snapshot, file::FileDatastore},
    model::Cluster,
    status::ObjectError,
};
use proptest::{prelude::*, test_runner::TestCaseError};
use serde_yaml::{Mapping, Value};

/// Cases per generator in an ordinary `cargo test`.
const DEFAULT_CASES: u32 = 512;
/// The largest file a case writes.
const MAX_INPUT: usize = 256 * 1024;
/// One file's load and compile, in a debug build on a loaded machine; far above the
/// milliseconds they take, far below a hang.
const FILE_BUDGET: Duration = Duration::from_secs(10);

fn cases() -> u32 {
    std::env::var("PALISADE_INGEST_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        // Shrinking a slow input repeatedly would itself take minutes.
        max_shrink_iters: 256,
        ..ProptestConfig::default()
    }
}

/// Every valid object the repository ships: any mapping with `apiVersion`, `kind` and
/// `metadata`, wherever it sits in the example scenarios (resources and steps alike).
fn seeds() -> &'static [Value] {
    static SEEDS: OnceLock<Vec<Value>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec![root.join("tests/data/calico/valid.yaml")];
        collect_yaml_files(&root.join("../examples"), &mut files);
        let mut seen = BTreeSet::new();
        let mut seeds = Vec::new();
        for file in files {
            let text = fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
            for document in serde_yaml::Deserializer::from_str(&text) {
                let value = serde::Deserialize::deserialize(document)
                    .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                collect_objects(&value, &mut seeds, &mut seen);
            }
        }
        assert!(seeds.len() > 50, "only {} seed objects", seeds.len());
        seeds
    })
}

fn collect_yaml_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_yaml_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
}

fn collect_objects(value: &Value, out: &mut Vec<Value>, seen: &mut BTreeSet<String>) {
    match value {
        Value::Mapping(map) => {
            if ["apiVersion", "kind", "metadata"]
                .iter()
                .all(|k| map.contains_key(*k))
            {
                let text = serde_yaml::to_string(value).expect("seed as YAML");
                if seen.insert(text) {
                    out.push(value.clone());
                }
                return;
            }
            for v in map.values() {
                collect_objects(v, out, seen);
            }
        }
        Value::Sequence(items) => items.iter().for_each(|v| collect_objects(v, out, seen)),
        _ => {}
    }
}

/// The kinds of the seeds, as (apiVersion, kind): what the arbitrary documents claim to be.
fn known_kinds() -> Vec<(String, String)> {
    let kinds: BTreeSet<(String, String)> = seeds()
        .iter()
        .filter_map(|s| {
            Some((
                s.get("apiVersion")?.as_str()?.to_owned(),
                s.get("kind")?.as_str()?.to_owned(),
            ))
        })
        .collect();
    kinds.into_iter().collect()
}

/// How the file datastore names a document's object, read as leniently as it reads it:
/// `None` when the kind or the name is not a string.
fn object_name(document: &Value) -> Option<String> {
    let kind = document.get("kind")?.as_str()?;
    let metadata = document.get("metadata")?;
    let name = metadata.get("name")?.as_str()?;
    let calico = document.get("apiVersion").and_then(Value::as_str) == Some("projectcalico.org/v3")
        && [
            "GlobalNetworkPolicy",
            "NetworkPolicy",
            "Tier",
            "GlobalNetworkSet",
            "NetworkSet",
            "HostEndpoint",
            "StagedGlobalNetworkPolicy",
            "StagedNetworkPolicy",
            "StagedKubernetesNetworkPolicy",
        ]
        .contains(&kind);
    // network-policy-api's kinds are cluster-scoped (under their own API versions only).
    let cluster_scoped = document
        .get("apiVersion")
        .and_then(Value::as_str)
        .is_some_and(|v| policy_agent::cluster_policy::ApiKind::from_api(v, kind).is_some());
    let namespaced = if calico {
        matches!(
            kind,
            "NetworkPolicy"
                | "NetworkSet"
                | "StagedNetworkPolicy"
                | "StagedKubernetesNetworkPolicy"
        )
    } else {
        kind != "Namespace" && !cluster_scoped
    };
    let kind = if calico {
        format!("{kind} (projectcalico.org/v3)")
    } else {
        kind.to_owned()
    };
    Some(if namespaced {
        let namespace = metadata
            .get("namespace")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .unwrap_or("default");
        format!("{kind} {namespace}/{name}")
    } else {
        format!("{kind} {name}")
    })
}

/// Loads `contents` as the only file of a fresh file datastore, in a thread bounded by
/// [`FILE_BUDGET`], and compiles what was accepted: the snapshot, or the failure.
fn ingest(dir: &Path, file: &str, contents: Vec<u8>) -> Result<Snapshot, TestCaseError> {
    for entry in fs::read_dir(dir).expect("scratch directory") {
        fs::remove_file(entry.expect("entry").path()).expect("removing the previous case");
    }
    ingest_into(FileDatastore::new(dir), file, contents).map(|(_, snapshot)| snapshot)
}

/// Writes `contents` as `file` of `store`'s directory, then loads and compiles, in a thread
/// bounded by [`FILE_BUDGET`]; gives the store back for the next load.
fn ingest_into(
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

/// Every object of `cluster` by the name the file datastore gives it in errors, with its value
/// (debug-printed, for comparison).
fn named_objects(cluster: &Cluster) -> BTreeMap<String, String> {
    let mut named = BTreeMap::new();
    let calico = |kind: &str| format!("{kind} (projectcalico.org/v3)");
    for (name, ns) in &cluster.namespaces {
        named.insert(format!("Namespace {name}"), format!("{ns:?}"));
    }
    for ((ns, name), pod) in &cluster.pods {
        named.insert(format!("Pod {ns}/{name}"), format!("{pod:?}"));
    }
    for ((ns, name), policy) in &cluster.policies {
        named.insert(format!("NetworkPolicy {ns}/{name}"), format!("{policy:?}"));
    }
    for ((ns, name), service) in &cluster.services {
        named.insert(format!("Service {ns}/{name}"), format!("{service:?}"));
    }
    for ((ns, name), slice) in &cluster.endpoint_slices {
        named.insert(format!("EndpointSlice {ns}/{name}"), format!("{slice:?}"));
    }
    for ((ns, name), policy) in &cluster.calico.policies {
        let key = if ns.is_empty() {
            format!("{} {name}", calico("GlobalNetworkPolicy"))
        } else {
            format!("{} {ns}/{name}", calico("NetworkPolicy"))
        };
        named.insert(key, format!("{policy:?}"));
    }
    for (name, tier) in &cluster.calico.tiers {
        named.insert(format!("{} {name}", calico("Tier")), format!("{tier:?}"));
    }
    for ((ns, name), set) in &cluster.calico.network_sets {
        let key = if ns.is_empty() {
            format!("{} {name}", calico("GlobalNetworkSet"))
        } else {
            format!("{} {ns}/{name}", calico("NetworkSet"))
        };
        named.insert(key, format!("{set:?}"));
    }
    for (name, endpoint) in &cluster.calico.host_endpoints {
        named.insert(
            format!("{} {name}", calico("HostEndpoint")),
            format!("{endpoint:?}"),
        );
    }
    named
}

/// The property "a rejected edit keeps the version accepted before": `base` was loaded from
/// the unmutated documents, `edited` from the mutated ones in the same file. A file that is no
/// YAML keeps everything; an object rejected by name keeps its previous version.
fn check_kept(
    base: &Snapshot,
    base_documents: &[Value],
    edited: &Snapshot,
    edited_contents: &[u8],
) -> Result<(), TestCaseError> {
    let before = named_objects(&base.cluster);
    let after = named_objects(&edited.cluster);
    if edited
        .errors
        .iter()
        .any(|e| e.message.contains("not valid YAML"))
    {
        prop_assert_eq!(&after, &before, "a file that is not YAML changed the state");
        return Ok(());
    }
    let edited_documents: Vec<Value> = serde_yaml::Deserializer::from_slice(edited_contents)
        .filter_map(|d| serde::Deserialize::deserialize(d).ok())
        .filter(|d: &Value| !d.is_null())
        .collect();
    let unique = |documents: &[Value], name: &str| {
        documents
            .iter()
            .filter(|d| object_name(d).as_deref() == Some(name))
            .count()
            == 1
    };
    for error in &edited.errors {
        let Some(name) = &error.object else { continue };
        if error.message.starts_with("duplicate of the object in")
            || !unique(base_documents, name)
            || !unique(&edited_documents, name)
        {
            continue;
        }
        let Some(previous) = before.get(name) else {
            continue;
        };
        prop_assert_eq!(
            after.get(name),
            Some(previous),
            "{} was rejected, but its previous version is not what is in force",
            error
        );
        prop_assert!(
            error
                .message
                .ends_with("the previously accepted version stays in force"),
            "{}",
            error
        );
    }
    Ok(())
}

/// Checks every rejection in `snapshot` against the documents of `contents` (the property
/// "names the object and the field").
fn check_errors(file: &str, contents: &[u8], snapshot: &Snapshot) -> Result<(), TestCaseError> {
    // The documents as the datastore sees them (None: the file is not YAML). Not parsed again
    // when the datastore says it is not YAML: the inputs that make the YAML scanner slow are
    // among those.
    let not_yaml = snapshot
        .errors
        .iter()
        .any(|e| e.message.starts_with("not valid YAML"));
    let documents: Option<Vec<Value>> = if not_yaml {
        None
    } else {
        serde_yaml::Deserializer::from_slice(contents)
            .map(<Value as serde::Deserialize>::deserialize)
            .collect::<Result<Vec<Value>, _>>()
            .ok()
            .map(|docs| docs.into_iter().filter(|d| !d.is_null()).collect())
    };
    for error in &snapshot.errors {
        check_error(file, documents.as_deref(), error)?;
    }
    Ok(())
}

fn check_error(
    file: &str,
    documents: Option<&[Value]>,
    error: &ObjectError,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(&error.source, file);
    prop_assert!(!error.message.trim().is_empty(), "{}", error);
    let Some(documents) = documents else {
        if error.message.starts_with("duplicate of the object in") {
            // The objects the file held before, kept, and still duplicates.
            return Ok(());
        }
        // Not YAML: no object can be read; the message says where the syntax broke.
        prop_assert!(error.object.is_none(), "{}", error);
        prop_assert!(error.message.contains("not valid YAML"), "{}", error);
        return Ok(());
    };
    let Some(object) = &error.object else {
        return Err(TestCaseError::fail(format!("no object named: {error}")));
    };
    if let Some(index) = object.strip_prefix("document ") {
        let index: usize = index
            .parse()
            .map_err(|_| TestCaseError::fail(format!("bad document index: {error}")))?;
        let document = documents.get(index);
        prop_assert!(document.is_some(), "{}", error);
        prop_assert!(
            document.and_then(object_name).is_none(),
            "the document has a readable kind and name, but the error says {}",
            error
        );
    } else {
        let names: BTreeSet<String> = documents.iter().filter_map(object_name).collect();
        prop_assert!(
            names.contains(object),
            "{} names none of the file's objects {:?}",
            error,
            names
        );
    }
    if !error.message.starts_with("duplicate of the object in") {
        prop_assert!(
            error.field.as_deref().is_some_and(|f| !f.is_empty()),
            "no field named: {}",
            error
        );
    }
    Ok(())
}

/// One change to a document.
#[derive(Debug, Clone)]
enum Mutation {
    /// Replaces the node at `path` with `value`.
    Replace { path: Vec<u16>, value: Value },
    /// Removes the key (or item) at `path`.
    Remove { path: Vec<u16> },
    /// Adds (or overwrites) `key` in the mapping at `path`.
    AddKey {
        path: Vec<u16>,
        key: String,
        value: Value,
    },
    /// Wraps the node at `path` in `depth` sequences or mappings.
    Nest {
        path: Vec<u16>,
        depth: usize,
        mapping: bool,
    },
}

/// The replacement values: wrong types, extreme numbers, bad CIDRs, bad selectors, unicode.
fn nasty_value() -> impl Strategy<Value = Value> {
    let strings = prop::sample::select(vec![
        "",
        " ",
        "-1",
        "0",
        "65535",
        "65536",
        "99999999999999999999",
        "10.0.0.0/33",
        "10.0.0.1/8",
        "::/129",
        "fd00::/-1",
        "0.0.0.0/0",
        "::/0",
        "300.1.1.1",
        "1.2.3.4/24/8",
        "not-a-cidr",
        "app ==",
        "((((",
        "has(",
        "a in {'x'",
        "!",
        "all() && global() || !has(x)",
        "app == 'web' &&",
        "é == 'x'",
        "k8s.io/ == 'a'",
        "TCP",
        "ICMP",
        "SCTP",
        "Deny",
        "Pass",
        "Log",
        "Ingress",
        "Egress",
        "\u{202e}evil",
        "\u{0}",
        "🦀",
        "ǅ/Ⅻ",
        "a/b/c",
        "-leading",
        "kube-system",
    ])
    .prop_map(|s| Value::String(s.to_owned()));
    prop_oneof![
        strings,
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop::sample::select(vec![
            0i64,
            -1,
            -80,
            1,
            65535,
            65536,
            i64::from(u32::MAX),
            i64::MAX,
            i64::MIN
        ])
        .prop_map(|n| Value::Number(n.into())),
        Just(Value::Number(u64::MAX.into())),
        prop::sample::select(vec![0.5f64, -0.0, 1e308, f64::INFINITY, f64::NAN])
            .prop_map(|f| Value::Number(f.into())),
        Just(Value::Sequence(Vec::new())),
        Just(Value::Mapping(Mapping::new())),
        // Long strings and long selectors.
        (1usize..20_000).prop_map(|n| Value::String("a".repeat(n))),
        (1usize..20_000).prop_map(|n| Value::String("!".repeat(n) + "all()")),
        (1usize..20_000).prop_map(|n| Value::String("(".repeat(n) + &")".repeat(n))),
        (0usize..200).prop_map(|n| Value::String(format!("{}app == 'x'", "!(".repeat(n)))),
    ]
}

fn path() -> impl Strategy<Value = Vec<u16>> {
    prop::collection::vec(any::<u16>(), 0..7)
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (path(), nasty_value()).prop_map(|(path, value)| Mutation::Replace { path, value }),
        2 => path().prop_map(|path| Mutation::Remove { path }),
        2 => (
            path(),
            prop::sample::select(vec![
                "foo", "spec", "metadata", "apiVersion", "kind", "", "selector", "Selector",
                "ports", "namespace", "name", "order", "tier", "types", "ingress", "egress",
                "action", "protocol", "nets", "cidr", "except", "🦀", "policyTypes",
            ]),
            nasty_value(),
        )
            .prop_map(|(path, key, value)| Mutation::AddKey { path, key: key.to_owned(), value }),
        1 => (path(), 1usize..300, any::<bool>())
            .prop_map(|(path, depth, mapping)| Mutation::Nest { path, depth, mapping }),
    ]
}

/// The node at `path`, following it as far as the document goes.
fn node_at<'a>(node: &'a mut Value, path: &[u16]) -> &'a mut Value {
    let Some((&step, rest)) = path.split_first() else {
        return node;
    };
    let descends = match &*node {
        Value::Mapping(map) => !map.is_empty(),
        Value::Sequence(items) => !items.is_empty(),
        Value::Tagged(_) => true,
        _ => false,
    };
    if !descends {
        return node;
    }
    match node {
        Value::Mapping(map) => {
            let index = usize::from(step) % map.len();
            node_at(map.values_mut().nth(index).expect("index in range"), rest)
        }
        Value::Sequence(items) => {
            let index = usize::from(step) % items.len();
            node_at(&mut items[index], rest)
        }
        Value::Tagged(tagged) => node_at(&mut tagged.value, rest),
        other => other,
    }
}

fn apply(document: &mut Value, mutation: &Mutation) {
    match mutation {
        Mutation::Replace { path, value } => *node_at(document, path) = value.clone(),
        Mutation::Remove { path } => {
            let Some((last, parent)) = path.split_last() else {
                return;
            };
            match node_at(document, parent) {
                Value::Mapping(map) if !map.is_empty() => {
                    let index = usize::from(*last) % map.len();
                    let key = map.keys().nth(index).cloned().expect("index in range");
                    map.remove(&key);
                }
                Value::Sequence(items) if !items.is_empty() => {
                    items.remove(usize::from(*last) % items.len());
                }
                _ => {}
            }
        }
        Mutation::AddKey { path, key, value } => {
            if let Value::Mapping(map) = node_at(document, path) {
                map.insert(Value::String(key.clone()), value.clone());
            }
        }
        Mutation::Nest {
            path,
            depth,
            mapping,
        } => {
            let node = node_at(document, path);
            let mut value = std::mem::take(node);
            for _ in 0..*depth {
                value = if *mapping {
                    let mut map = Mapping::new();
                    map.insert(Value::String("a".into()), value);
                    Value::Mapping(map)
                } else {
                    Value::Sequence(vec![value])
                };
            }
            *node = value;
        }
    }
}

/// How a case's documents are written out.
#[derive(Debug, Clone, Copy)]
enum Encoding {
    Yaml,
    Json,
    /// YAML, with one `key: value` line repeated (a duplicate key).
    YamlDuplicateKey(usize),
    /// YAML, cut after this fraction (in thousandths) of its bytes.
    YamlTruncated(u16),
}

fn encoding() -> impl Strategy<Value = Encoding> {
    prop_oneof![
        4 => Just(Encoding::Yaml),
        2 => Just(Encoding::Json),
        1 => any::<usize>().prop_map(Encoding::YamlDuplicateKey),
        1 => (0u16..1000).prop_map(Encoding::YamlTruncated),
    ]
}

fn encode(documents: &[Value], encoding: Encoding) -> (String, Vec<u8>) {
    let yaml = || -> String {
        documents
            .iter()
            .map(|d| serde_yaml::to_string(d).expect("document as YAML"))
            .collect::<Vec<_>>()
            .join("---\n")
    };
    match encoding {
        Encoding::Yaml => ("case.yaml".into(), yaml().into_bytes()),
        Encoding::Json => {
            // One JSON document per file, as JSON manifests are; a document JSON cannot hold
            // (non-string keys) falls back to YAML.
            let json: Option<Vec<String>> = documents
                .iter()
                .map(|d| serde_json::to_string_pretty(d).ok())
                .collect();
            match json {
                Some(docs) if docs.len() == 1 => ("case.json".into(), docs.concat().into_bytes()),
                Some(docs) => ("case.yaml".into(), docs.join("\n---\n").into_bytes()),
                None => ("case.yaml".into(), yaml().into_bytes()),
            }
        }
        Encoding::YamlDuplicateKey(pick) => {
            let text = yaml();
            let mut lines: Vec<&str> = text.lines().collect();
            let candidates: Vec<usize> = lines
                .iter()
                .enumerate()
                .filter(|(_, l)| l.contains(": ") && !l.trim_start().starts_with('-'))
                .map(|(i, _)| i)
                .collect();
            if let Some(&index) = candidates.get(pick % candidates.len().max(1)) {
                lines.insert(index + 1, lines[index]);
            }
            ("case.yaml".into(), (lines.join("\n") + "\n").into_bytes())
        }
        Encoding::YamlTruncated(thousandths) => {
            let mut bytes = yaml().into_bytes();
            bytes.truncate(bytes.len() * usize::from(thousandths) / 1000);
            ("case.yaml".into(), bytes)
        }
    }
}

/// (the seeds as they are, the same seeds mutated, how to write them).
fn mutated_case() -> impl Strategy<Value = (Vec<Value>, Vec<Value>, Encoding)> {
    let count = seeds().len();
    let document =
        (0..count, prop::collection::vec(mutation(), 1..4)).prop_map(|(seed, mutations)| {
            let original = seeds()[seed].clone();
            let mut document = original.clone();
            for m in &mutations {
                apply(&mut document, m);
            }
            (original, document)
        });
    (prop::collection::vec(document, 1..5), encoding()).prop_map(|(pairs, encoding)| {
        let (originals, mutated) = pairs.into_iter().unzip();
        (originals, mutated, encoding)
    })
}

/// Any YAML value, bounded in size.
fn arbitrary_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        any::<f64>().prop_map(|f| Value::Number(f.into())),
        ".{0,12}".prop_map(Value::String),
        nasty_value(),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Sequence),
            prop::collection::vec((".{0,8}", inner), 0..6).prop_map(|pairs| {
                Value::Mapping(
                    pairs
                        .into_iter()
                        .map(|(k, v)| (Value::String(k), v))
                        .collect(),
                )
            }),
        ]
    })
}

/// A document that claims to be a known kind (or not), with arbitrary metadata and spec.
fn arbitrary_document() -> impl Strategy<Value = Value> {
    let kinds = known_kinds();
    (
        prop::option::of(prop::sample::select(kinds)),
        prop::option::of(("[a-z0-9.-]{0,12}", prop::option::of("[a-z0-9-]{0,8}"))),
        arbitrary_value(),
        arbitrary_value(),
    )
        .prop_map(|(kind, metadata, spec, extra)| {
            let mut map = Mapping::new();
            if let Some((api_version, kind)) = kind {
                map.insert("apiVersion".into(), api_version.into());
                map.insert("kind".into(), kind.into());
            }
            if let Some((name, namespace)) = metadata {
                let mut meta = Mapping::new();
                meta.insert("name".into(), name.into());
                if let Some(namespace) = namespace {
                    meta.insert("namespace".into(), namespace.into());
                }
                map.insert("metadata".into(), Value::Mapping(meta));
            }
            map.insert("spec".into(), spec);
            map.insert("status".into(), extra);
            Value::Mapping(map)
        })
}

fn bounded(file: &str, contents: &[u8]) -> Result<(), TestCaseError> {
    if contents.len() > MAX_INPUT {
        return Err(TestCaseError::reject(format!(
            "{file}: {} bytes, over the input bound",
            contents.len()
        )));
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Generator 1: valid objects of every kind, mutated.
    #[test]
    fn mutated_manifests_are_accepted_or_rejected_by_name_and_field(
        (originals, documents, encoding) in mutated_case()
    ) {
        let scratch = scratch_dir("ingest-fuzz-mutated");
        let (file, contents) = encode(&documents, encoding);
        bounded(&file, &contents)?;
        // The valid version first, in the same file: a rejected edit must leave it in force.
        let (_, original) = encode(&originals, Encoding::Yaml);
        let (store, base) = ingest_into(FileDatastore::new(scratch.path()), &file, original)?;
        let (_, snapshot) = ingest_into(store, &file, contents.clone())?;
        check_errors(&file, &contents, &snapshot)?;
        check_kept(&base, &originals, &snapshot, &contents)?;
    }

    /// Generator 2a: arbitrary documents, some claiming a known kind.
    #[test]
    fn arbitrary_documents_are_accepted_or_rejected_by_name_and_field(
        documents in prop::collection::vec(arbitrary_document(), 1..4),
        json in any::<bool>(),
    ) {
        let scratch = scratch_dir("ingest-fuzz-arbitrary");
        let encoding = if json { Encoding::Json } else { Encoding::Yaml };
        let (file, contents) = encode(&documents, encoding);
        bounded(&file, &contents)?;
        let snapshot = ingest(scratch.path(), &file, contents.clone())?;
        check_errors(&file, &contents, &snapshot)?;
    }

    /// Generator 2b: raw bytes, and YAML-looking text.
    #[test]
    fn raw_bytes_never_panic_or_hang(
        contents in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..4096),
            "(apiVersion: v1\n|kind: [A-Za-z]{0,12}\n|metadata: \\{name: [a-z]{0,5}\\}\n|---\n|spec:\n|  [a-z]{1,8}: [^\n]{0,10}\n|- |&a |\\*a |!!str |\\{|\\[|\\}|\\]|: |\n)*"
                .prop_map(String::into_bytes),
            // Nesting, as deep as the input bound allows.
            (
                prop::sample::select(vec!["[", "{a: ", "[{", "- [", "{\"a\": ["]),
                1usize..60_000,
                any::<bool>(),
            )
                .prop_map(|(open, depth, closed)| {
                    let mut text = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: n}}\nspec: {}", open.repeat(depth));
                    if closed {
                        text.push_str(&"]}".repeat(depth));
                    }
                    text.truncate(MAX_INPUT);
                    text.into_bytes()
                }),
        ],
    ) {
        let scratch = scratch_dir("ingest-fuzz-raw");
        bounded("case.yaml", &contents)?;
        let snapshot = ingest(scratch.path(), "case.yaml", contents.clone())?;
        check_errors("case.yaml", &contents, &snapshot)?;
    }

    /// Generator 3: the selector parser alone, on selector-like text nested at any depth.
    #[test]
    fn selectors_parse_or_fail_with_a_position_in_bounded_time(
        prefix in prop::collection::vec(
            prop::sample::select(vec!["!", "(", "!(", " ( ", "has(a) && ", "a == 'b' || "]),
            0..8,
        ),
        repeat in 0usize..20_000,
        body in "[a-z/.()!&|=' \"{},é-]{0,30}",
    ) {
        let text = prefix.concat().repeat(repeat.min(MAX_INPUT / 16)) + &body;
        let started = Instant::now();
        match Selector::parse(&text) {
            Ok(selector) => {
                // What parses prints and parses back to itself.
                prop_assert_eq!(Selector::parse(&selector.to_string()), Ok(selector));
            }
            Err(e) => prop_assert!(e.position <= text.len(), "{:?}", e),
        }
        prop_assert!(started.elapsed() < FILE_BUDGET, "{:?} for {} bytes", started.elapsed(), text.len());
    }
}

/// Every seed on its own is accepted (the mutations start from valid input), and all of them
/// together compile.
#[test]
fn every_seed_is_accepted() {
    let scratch = scratch_dir("ingest-fuzz-seeds");
    for (index, seed) in seeds().iter().enumerate() {
        let text = serde_yaml::to_string(seed).expect("seed as YAML");
        let snapshot = ingest(scratch.path(), "seed.yaml", text.into_bytes())
            .unwrap_or_else(|e| panic!("seed {index}: {e}"));
        assert!(
            snapshot.errors.is_empty(),
            "seed {index} rejected: {:?}\n{seed:?}",
            snapshot.errors
        );
    }
}

/// Regression: a selector of 100,000 `!` (or `(`) overflowed the parser's stack and aborted
/// the whole agent; it is now refused at the level past [`MAX_NESTING`].
#[test]
fn a_deeply_nested_selector_is_refused_not_a_stack_overflow() {
    for text in [
        "!".repeat(100_000) + "all()",
        "(".repeat(100_000) + "all()" + &")".repeat(100_000),
        "!(".repeat(50_000) + "a == 'b'" + &")".repeat(50_000),
    ] {
        let e = Selector::parse(&text).expect_err("nested too deep");
        assert!(e.message.contains("nested more than"), "{e}");
        assert!(e.position < 2 * (MAX_NESTING + 1), "{e}");
    }
    // At the limit it still parses.
    let deep = "!".repeat(MAX_NESTING) + "all()";
    assert!(Selector::parse(&deep).is_ok());
    let deep = "(".repeat(MAX_NESTING) + "all()" + &")".repeat(MAX_NESTING);
    assert!(Selector::parse(&deep).is_ok());

    // Through the file datastore: the policy is rejected by name and field.
    let scratch = scratch_dir("ingest-fuzz-deep-selector");
    let manifest = format!(
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {{name: deep}}\n\
         spec:\n  selector: \"{}all()\"\n",
        "!".repeat(100_000)
    );
    let snapshot = ingest(scratch.path(), "deep.yaml", manifest.into_bytes()).expect("ingest");
    let rejected: Vec<_> = snapshot
        .errors
        .iter()
        .map(|e| (e.object.as_deref(), e.field.as_deref()))
        .collect();
    assert_eq!(
        rejected,
        [(
            Some("GlobalNetworkPolicy (projectcalico.org/v3) deep"),
            Some("spec.selector")
        )]
    );
}

/// Regression: flow collections nested 100,000 deep (a 200 KB file) kept the YAML scanner
/// busy for over a minute (its work per token grows with the nesting) before serde_yaml's
/// recursion limit refused the file. A scan refuses them first, in milliseconds, with the
/// same outcome: not YAML, the file's previous objects kept.
#[test]
fn deeply_nested_flow_collections_are_refused_quickly() {
    let scratch = scratch_dir("ingest-fuzz-deep-flow");
    let header = "apiVersion: v1\nkind: Pod\nmetadata: {name: deep}\nspec: ";
    for (file, contents) in [
        (
            "brackets.yaml",
            format!("{header}{}{}\n", "[".repeat(100_000), "]".repeat(100_000)),
        ),
        (
            "braces.yaml",
            format!("{header}{}1{}\n", "{a: ".repeat(50_000), "}".repeat(50_000)),
        ),
        ("open.json", "[".repeat(200_000)),
    ] {
        let started = Instant::now();
        let snapshot = ingest(scratch.path(), file, contents.into_bytes()).expect("ingest");
        let took = started.elapsed();
        assert!(took < Duration::from_secs(2), "{file}: {took:?}");
        let messages: Vec<_> = snapshot.errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages.len(), 1, "{file}: {messages:?}");
        assert!(
            messages[0].starts_with("not valid YAML: '[' and '{' nested more than 128 deep"),
            "{file}: {messages:?}"
        );
    }

    // Brackets in quoted scalars and comments are not nesting: this file is valid.
    let quoted = format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
         metadata: {{name: quoted, namespace: default, annotations: {{a: \"{0}\", b: '{0}'}}}}\n\
         # {0}\nspec: {{podSelector: {{}}}}\n",
        "[{".repeat(200)
    );
    let snapshot = ingest(scratch.path(), "quoted.yaml", quoted.into_bytes()).expect("ingest");
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    assert_eq!(snapshot.cluster.policies.len(), 1);

    // At the limit, serde_yaml decides as before: nested 120 deep in a policy's spec, the
    // document parses and the error is the policy's own.
    let nested = format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
         metadata: {{name: nested, namespace: default}}\nspec: {{podSelector: {}{}}}\n",
        "[".repeat(120),
        "]".repeat(120)
    );
    let snapshot = ingest(scratch.path(), "nested.yaml", nested.into_bytes()).expect("ingest");
    let rejected: Vec<_> = snapshot
        .errors
        .iter()
        .map(|e| (e.object.as_deref(), e.field.as_deref()))
        .collect();
    assert_eq!(
        rejected,
        [(
            Some("NetworkPolicy default/nested"),
            Some("spec.podSelector")
        )]
    );
}

/// Regression (found by the long run): an unknown key `""` at a Calico resource's root was
/// reported with no field (serde_path_to_error gives no path for it); it is named `""` now,
/// and an unknown key anywhere names itself.
#[test]
fn an_unknown_empty_key_is_named_as_the_field() {
    let scratch = scratch_dir("ingest-fuzz-empty-key");
    let manifest = "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: security}\n\
                    spec: {order: 100}\n\"\": x\n---\n\
                    apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: other}\n\
                    spec: {order: 100, \"\": x}\n---\n\
                    apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\n\
                    metadata: {name: set}\nextra: 1\n---\n\
                    apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\n\
                    metadata: {name: admin}\nspec: {priority: 6, subject: {namespaces: {}}}\n\
                    \"\": x\n";
    let snapshot =
        ingest(scratch.path(), "keys.yaml", manifest.as_bytes().to_vec()).expect("ingest");
    let rejected: Vec<_> = snapshot
        .errors
        .iter()
        .map(|e| (e.object.as_deref(), e.field.as_deref()))
        .collect();
    assert_eq!(
        rejected,
        [
            (Some("Tier (projectcalico.org/v3) security"), Some("\"\"")),
            (Some("Tier (projectcalico.org/v3) other"), Some("spec.\"\"")),
            (
                Some("GlobalNetworkSet (projectcalico.org/v3) set"),
                Some("extra")
            ),
            (Some("AdminNetworkPolicy admin"), Some("\"\"")),
        ]
    );
}
