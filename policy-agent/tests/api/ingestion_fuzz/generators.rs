//! The generators: mutations of the seeds and their encodings, arbitrary values and documents.

use proptest::prelude::*;
use serde_yaml::{Mapping, Value};

use super::seeds::{known_kinds, seeds};

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
pub(super) enum Encoding {
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

pub(super) fn encode(documents: &[Value], encoding: Encoding) -> (String, Vec<u8>) {
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
pub(super) fn mutated_case() -> impl Strategy<Value = (Vec<Value>, Vec<Value>, Encoding)> {
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
pub(super) fn arbitrary_document() -> impl Strategy<Value = Value> {
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
