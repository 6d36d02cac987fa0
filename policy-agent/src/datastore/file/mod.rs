//! The file datastore: a directory of ordinary Kubernetes manifests (Namespace, Pod,
//! NetworkPolicy, Service, EndpointSlice) and Calico v3 resources as calicoctl users keep them (GlobalNetworkPolicy,
//! NetworkPolicy, Tier, GlobalNetworkSet, NetworkSet, HostEndpoint), several per file with
//! `---`, for labs, bare-metal hosts and VMs.
//!
//! Invalid input is handled as an API server would: an object that fails validation is
//! rejected, and the version accepted before (if any) stays in force, exactly as a failed
//! `kubectl apply` leaves the old object in place. A file that is not even YAML keeps all the
//! objects it held before. Either way the error names the file, the object and the field, and
//! every other object keeps being enforced.
//!
//! A file cut short is one of these cases when the cut leaves invalid YAML or an invalid
//! object; a cut that leaves valid YAML (at a document boundary, inside a value) cannot be told
//! from an edit by its contents. Watched through [`FileDatastore::watch`], a file still being
//! written keeps the objects it held before until its writer closes it (see [`super::watch`]).
//! Manifests may be symlinks, as a ConfigMap volume's are.

use std::{
    collections::BTreeMap,
    io,
    path::{Path, PathBuf},
    sync::Arc,
};

use k8s_openapi::api::{
    core::v1 as core, discovery::v1 as discovery, networking::v1 as networking,
};
use serde::Deserialize;
use tokio::sync::mpsc::UnboundedSender;
use tracing::warn;

use super::{
    Snapshot, digest,
    watch::{DirectoryWatcher, WatchError, Writing},
};
use crate::{
    calico::resources::{self as calico, CalicoResource},
    cluster_policy::{self, ApiKind, ClusterPolicy},
    model::{
        Cluster, EndpointSlice, Namespace, NetworkPolicy, Pod, Service, convert,
        staged::{self, StagedKind, StagedPolicy},
    },
    status::ObjectError,
};

/// A validated object and the file it came from.
#[derive(Debug, Clone)]
enum Object {
    Namespace(Namespace),
    Pod(Pod),
    NetworkPolicy(NetworkPolicy),
    Service(Service),
    EndpointSlice(EndpointSlice),
    Calico(CalicoResource),
    ClusterPolicy(ClusterPolicy),
    Staged(StagedPolicy),
}

/// (kind, namespace, name): how objects are identified, as on an API server.
type ObjectKey = (String, String, String);

impl Object {
    fn key(&self) -> ObjectKey {
        match self {
            Object::Namespace(ns) => ("Namespace".into(), String::new(), ns.name.clone()),
            Object::Pod(p) => ("Pod".into(), p.namespace.clone(), p.name.clone()),
            Object::NetworkPolicy(np) => (
                "NetworkPolicy".into(),
                np.namespace.clone(),
                np.name.clone(),
            ),
            Object::Service(s) => ("Service".into(), s.namespace.clone(), s.name.clone()),
            Object::EndpointSlice(s) => {
                ("EndpointSlice".into(), s.namespace.clone(), s.name.clone())
            }
            Object::Calico(resource) => (
                calico_kind(resource.kind().as_str()),
                resource.namespace().unwrap_or_default().to_owned(),
                resource.name().to_owned(),
            ),
            Object::ClusterPolicy(policy) => (
                policy.kind.as_str().to_owned(),
                String::new(),
                policy.name.clone(),
            ),
            Object::Staged(staged) => (
                calico_kind(staged.kind.as_str()),
                staged.namespace.clone(),
                staged.name.clone(),
            ),
        }
    }
}

/// How a Calico kind is named in keys and errors: Calico's `NetworkPolicy` is not the
/// Kubernetes one of the same namespace and name.
fn calico_kind(kind: &str) -> String {
    format!("{kind} ({})", calico::API_VERSION)
}

fn describe(key: &ObjectKey) -> String {
    let (kind, namespace, name) = key;
    if namespace.is_empty() {
        format!("{kind} {name}")
    } else {
        format!("{kind} {namespace}/{name}")
    }
}

pub struct FileDatastore {
    dir: PathBuf,
    /// Objects accepted from each file by the previous load, by file name.
    accepted: BTreeMap<String, Vec<Object>>,
    /// Files a writer has open and is writing (kept up to date by [`FileDatastore::watch`]).
    writing: Writing,
}

impl FileDatastore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            accepted: BTreeMap::new(),
            writing: Writing::default(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Watches the directory: `changes` gets a message whenever a load would see something
    /// new. From then on a file being written (modified and not yet closed) keeps the objects
    /// it held before until its writer closes it, so a load never takes in half a file; the
    /// watch also follows the directory when it is replaced (see [`super::watch`]).
    pub fn watch(&mut self, changes: UnboundedSender<()>) -> Result<DirectoryWatcher, WatchError> {
        DirectoryWatcher::start(&self.dir, self.writing.clone(), changes)
    }

    /// Reads every manifest file and returns the cluster they describe.
    pub fn load(&mut self) -> io::Result<Snapshot> {
        let files = digest::read_manifest_files(&self.dir)?;
        let digest = digest::digest_files(files.iter().map(|(n, c)| (n.as_str(), c.as_slice())));
        let mut errors = Vec::new();
        let mut accepted = BTreeMap::new();
        for (name, contents) in &files {
            let previous = self.accepted.remove(name).unwrap_or_default();
            let objects = if self.writing.contains(name) {
                errors.push(ObjectError {
                    source: name.clone(),
                    object: None,
                    field: None,
                    message: "being written (modified and not closed yet); keeping the objects it held before"
                        .to_owned(),
                });
                previous
            } else {
                parse_file(name, contents, previous, &mut errors)
            };
            accepted.insert(name.clone(), objects);
        }
        self.accepted = accepted;

        let mut cluster = Cluster::default();
        let mut origin: BTreeMap<ObjectKey, &str> = BTreeMap::new();
        for (file, objects) in &self.accepted {
            for object in objects {
                let key = object.key();
                if let Some(first) = origin.get(&key) {
                    errors.push(ObjectError {
                        source: file.clone(),
                        object: Some(describe(&key)),
                        field: None,
                        message: format!("duplicate of the object in {first}; that one is used"),
                    });
                    continue;
                }
                origin.insert(key, file);
                match object {
                    Object::Namespace(ns) => {
                        cluster
                            .namespaces
                            .insert(ns.name.clone(), Arc::new(ns.clone()));
                    }
                    Object::Pod(p) => {
                        cluster
                            .pods
                            .insert((p.namespace.clone(), p.name.clone()), Arc::new(p.clone()));
                    }
                    Object::NetworkPolicy(np) => {
                        cluster.policies.insert(
                            (np.namespace.clone(), np.name.clone()),
                            Arc::new(np.clone()),
                        );
                    }
                    Object::Service(s) => {
                        cluster
                            .services
                            .insert((s.namespace.clone(), s.name.clone()), s.clone());
                    }
                    Object::EndpointSlice(s) => {
                        cluster
                            .endpoint_slices
                            .insert((s.namespace.clone(), s.name.clone()), s.clone());
                    }
                    Object::Calico(resource) => cluster.calico.insert(resource.clone()),
                    Object::ClusterPolicy(policy) => {
                        cluster.insert_cluster_policy(policy.clone());
                    }
                    Object::Staged(staged) => {
                        let key = (staged.kind, staged.namespace.clone(), staged.name.clone());
                        cluster.staged.insert(key, staged.clone());
                    }
                }
            }
        }
        for error in &errors {
            warn!(%error, "rejected");
        }
        Ok(Snapshot {
            cluster,
            errors,
            digest,
        })
    }
}

/// Parses one file; on errors, falls back to what `previous` held for the same objects.
fn parse_file(
    file: &str,
    contents: &[u8],
    previous: Vec<Object>,
    errors: &mut Vec<ObjectError>,
) -> Vec<Object> {
    if contents.len() as u64 > digest::MAX_FILE_BYTES {
        errors.push(ObjectError {
            source: file.to_owned(),
            object: None,
            field: None,
            message: format!(
                "larger than {} MiB, the most a manifest file may hold; keeping the objects it \
                 held before",
                digest::MAX_FILE_BYTES >> 20
            ),
        });
        return previous;
    }
    if let Some((line, column)) = flow_nesting_past(contents, MAX_FLOW_NESTING) {
        errors.push(ObjectError {
            source: file.to_owned(),
            object: None,
            field: None,
            message: format!(
                "not valid YAML: '[' and '{{' nested more than {MAX_FLOW_NESTING} deep at line \
                 {line} column {column}; keeping the objects it held before"
            ),
        });
        return previous;
    }
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_slice(contents) {
        match serde_yaml::Value::deserialize(document) {
            Ok(serde_yaml::Value::Null) => {}
            Ok(value) => documents.push(value),
            Err(e) => {
                errors.push(ObjectError {
                    source: file.to_owned(),
                    object: None,
                    field: None,
                    message: format!("not valid YAML: {e}; keeping the objects it held before"),
                });
                return previous;
            }
        }
    }

    let mut previous: BTreeMap<ObjectKey, Object> =
        previous.into_iter().map(|o| (o.key(), o)).collect();
    let mut objects = Vec::new();
    for (index, document) in documents.into_iter().enumerate() {
        let key = document_key(&document);
        match parse_object(document) {
            Ok(object) => objects.push(object),
            Err((field, message)) => {
                let kept = key.as_ref().and_then(|k| previous.remove(k));
                let suffix = if kept.is_some() {
                    "; the previously accepted version stays in force"
                } else {
                    ""
                };
                errors.push(ObjectError {
                    source: file.to_owned(),
                    object: Some(
                        key.as_ref()
                            .map(describe)
                            .unwrap_or_else(|| format!("document {index}")),
                    ),
                    field,
                    message: format!("{message}{suffix}"),
                });
                objects.extend(kept);
            }
        }
    }
    objects
}

/// How deeply flow collections (`[...]`, `{...}`) may nest: serde_yaml's own recursion limit,
/// past which it refuses the document anyway. Checked first because the YAML scanner costs
/// time in proportion to the nesting for every token: 100,000 `[` (a 200 KB file) kept the
/// agent's loop busy for over a minute before serde_yaml gave up.
const MAX_FLOW_NESTING: usize = 128;

/// Where (line, column, from 1) the flow collections of `contents` first nest deeper than
/// `limit`, if they do. A quick scan, not a YAML parser: brackets in quoted scalars and
/// comments do not count, those in plain scalars do (more than `limit` unclosed ones in plain
/// text would be refused). The parser still has the last word on everything the scan lets
/// through; the scan only spares it the pathological inputs.
fn flow_nesting_past(contents: &[u8], limit: usize) -> Option<(usize, usize)> {
    #[derive(PartialEq)]
    enum In {
        Plain,
        Single,
        Double,
        Comment,
    }
    let mut state = In::Plain;
    let mut depth = 0usize;
    let (mut line, mut column) = (1, 0);
    let mut previous = b'\n';
    let mut escaped = false;
    for &byte in contents {
        column += 1;
        match state {
            In::Plain => match byte {
                b'[' | b'{' => {
                    depth += 1;
                    if depth > limit {
                        return Some((line, column));
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                // A quote opens a quoted scalar only where a scalar can start.
                b'\'' | b'"'
                    if matches!(
                        previous,
                        b' ' | b'\t' | b'\n' | b'[' | b'{' | b',' | b':' | b'-'
                    ) =>
                {
                    state = if byte == b'"' { In::Double } else { In::Single };
                }
                b'#' if matches!(previous, b' ' | b'\t' | b'\n') => state = In::Comment,
                _ => {}
            },
            In::Single => {
                // `''` inside is an escaped quote: closing and reopening reads the same.
                if byte == b'\'' {
                    state = In::Plain;
                }
            }
            In::Double => {
                if byte == b'"' && !escaped {
                    state = In::Plain;
                }
                escaped = byte == b'\\' && !escaped;
            }
            In::Comment => {
                if byte == b'\n' {
                    state = In::Plain;
                }
            }
        }
        if byte == b'\n' {
            line += 1;
            column = 0;
        }
        previous = byte;
    }
    None
}

/// (kind, namespace, name) read leniently from an unvalidated document.
fn document_key(document: &serde_yaml::Value) -> Option<ObjectKey> {
    let mut kind = document.get("kind")?.as_str()?.to_owned();
    let metadata = document.get("metadata")?;
    let name = metadata.get("name")?.as_str()?.to_owned();
    let api_version = document.get("apiVersion").and_then(|v| v.as_str());
    let calico_api = api_version == Some(calico::API_VERSION);
    let calico_kind = calico_api.then(|| calico::Kind::from_name(&kind)).flatten();
    let staged_kind = calico_api.then(|| StagedKind::from_name(&kind)).flatten();
    if calico_kind.is_some() || staged_kind.is_some() {
        kind = self::calico_kind(&kind);
    }
    let cluster_scoped = api_version.is_some_and(|v| ApiKind::from_api(v, &kind).is_some())
        || calico_kind.is_some_and(|k| !k.is_namespaced())
        || staged_kind.is_some_and(|k| !k.is_namespaced());
    let namespace = if kind == "Namespace" || cluster_scoped {
        String::new()
    } else {
        metadata
            .get("namespace")
            .and_then(|n| n.as_str())
            .filter(|n| !n.is_empty())
            .unwrap_or("default")
            .to_owned()
    };
    Some((kind, namespace, name))
}

/// Field path (if known) and message.
type ParseError = (Option<String>, String);

fn parse_object(document: serde_yaml::Value) -> Result<Object, ParseError> {
    let api_version = document
        .get("apiVersion")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned();
    let kind = document
        .get("kind")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned();
    match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace") => {
            let ns: core::Namespace = typed(document)?;
            convert::namespace(&ns)
                .map(Object::Namespace)
                .map_err(convert_error)
        }
        ("v1", "Pod") => {
            let pod: core::Pod = typed(document)?;
            convert::pod(&pod).map(Object::Pod).map_err(convert_error)
        }
        ("networking.k8s.io/v1", "NetworkPolicy") => {
            let np: networking::NetworkPolicy = typed(document)?;
            convert::network_policy(&np)
                .map(Object::NetworkPolicy)
                .map_err(convert_error)
        }
        ("v1", "Service") => {
            let svc: core::Service = typed(document)?;
            convert::service(&svc)
                .map(Object::Service)
                .map_err(convert_error)
        }
        ("discovery.k8s.io/v1", "EndpointSlice") => {
            let slice: discovery::EndpointSlice = typed(document)?;
            convert::endpoint_slice(&slice)
                .map(Object::EndpointSlice)
                .map_err(convert_error)
        }
        (calico::API_VERSION, kind) => match StagedKind::from_name(kind) {
            Some(kind) => staged::parse_value(kind, document).map(Object::Staged),
            None => calico::parse_value(document)
                .map(Object::Calico)
                .map_err(|e| e.field_and_message()),
        },
        (api_version, kind) => match ApiKind::from_api(api_version, kind) {
            Some(kind) => cluster_policy::parse_value(kind, document)
                .map(Object::ClusterPolicy)
                .map_err(|e| (Some(e.field).filter(|f| !f.is_empty()), e.message)),
            None => Err((
                Some("kind".to_owned()),
                format!(
                    "unsupported object {api_version:?} {kind:?}: expected v1 Namespace, v1 Pod, v1 Service, networking.k8s.io/v1 NetworkPolicy, discovery.k8s.io/v1 EndpointSlice, a {} resource, or policy.networking.k8s.io/v1alpha2 ClusterNetworkPolicy or v1alpha1 AdminNetworkPolicy or BaselineAdminNetworkPolicy",
                    calico::API_VERSION
                ),
            )),
        },
    }
}

fn typed<T: serde::de::DeserializeOwned>(document: serde_yaml::Value) -> Result<T, ParseError> {
    crate::serde_field::deserialize(document).map_err(|e| (Some(e.field), e.message))
}

fn convert_error(e: convert::ConvertError) -> ParseError {
    (Some(e.field), e.message)
}

/// `yaml` loaded as the one manifest file of a directory, as the agent reads it, for the unit
/// tests of modules that need a cluster of every kind; `test` names the scratch directory.
/// Panics on any error: a test's own manifest is valid.
#[cfg(test)]
pub(crate) fn load_for_test(test: &str, yaml: &str) -> Snapshot {
    let dir = std::env::temp_dir().join(format!("palisade-manifest-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    std::fs::write(dir.join("cluster.yaml"), yaml).expect("writing the manifest");
    let snapshot = FileDatastore::new(&dir)
        .load()
        .expect("loading the manifest");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    snapshot
}

#[cfg(test)]
mod tests;
