//! The seeds: every valid object the repository ships, and the kinds they claim.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    sync::OnceLock,
};

use serde_yaml::Value;

/// Every valid object the repository ships: any mapping with `apiVersion`, `kind` and
/// `metadata`, wherever it sits in the example scenarios (resources and steps alike).
pub(super) fn seeds() -> &'static [Value] {
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
pub(super) fn known_kinds() -> Vec<(String, String)> {
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
