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
                        cluster.namespaces.insert(ns.name.clone(), ns.clone());
                    }
                    Object::Pod(p) => {
                        cluster
                            .pods
                            .insert((p.namespace.clone(), p.name.clone()), p.clone());
                    }
                    Object::NetworkPolicy(np) => {
                        cluster
                            .policies
                            .insert((np.namespace.clone(), np.name.clone()), np.clone());
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
mod tests {
    use std::fs;

    use super::*;
    use crate::model::TargetPort;

    const POLICY: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: default}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - ports: [{protocol: TCP, port: 80}]
"#;

    fn scratch(test: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("palisade-datastore-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    #[test]
    fn an_invalid_object_is_reported_with_file_object_and_field_and_the_rest_loads() {
        let dir = scratch("invalid");
        fs::write(dir.join("good.yaml"), POLICY).expect("write");
        fs::write(
            dir.join("bad.yaml"),
            POLICY
                .replace("name: web", "name: bad")
                .replace("protocol: TCP", "protocol: ICMP"),
        )
        .expect("write");
        let snapshot = FileDatastore::new(&dir).load().expect("load");
        assert_eq!(snapshot.cluster.policies.len(), 1);
        assert!(
            snapshot
                .cluster
                .policies
                .contains_key(&("default".into(), "web".into()))
        );
        assert_eq!(snapshot.errors.len(), 1);
        let error = &snapshot.errors[0];
        assert_eq!(error.source, "bad.yaml");
        assert_eq!(error.object.as_deref(), Some("NetworkPolicy default/bad"));
        assert_eq!(
            error.field.as_deref(),
            Some("spec.ingress[0].ports[0].protocol")
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn type_errors_name_the_field() {
        let dir = scratch("types");
        fs::write(
            dir.join("bad.yaml"),
            POLICY.replace("port: 80", "port: [80]"),
        )
        .expect("write");
        let snapshot = FileDatastore::new(&dir).load().expect("load");
        assert!(snapshot.cluster.policies.is_empty());
        assert_eq!(
            snapshot.errors[0].field.as_deref(),
            Some("spec.ingress[0].ports[0].port")
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_broken_edit_keeps_the_previously_accepted_version() {
        let dir = scratch("keep");
        let mut store = FileDatastore::new(&dir);
        fs::write(dir.join("web.yaml"), POLICY).expect("write");
        let before = store.load().expect("load");
        assert_eq!(before.cluster.policies.len(), 1);

        // The object becomes invalid: the old version stays.
        fs::write(
            dir.join("web.yaml"),
            POLICY.replace("port: 80", "port: 70000"),
        )
        .expect("write");
        let invalid = store.load().expect("load");
        assert_eq!(invalid.cluster.policies, before.cluster.policies);
        assert!(invalid.errors[0].message.contains("previously accepted"));

        // The file stops being YAML: everything it held stays.
        fs::write(dir.join("web.yaml"), "spec: [").expect("write");
        let garbage = store.load().expect("load");
        assert_eq!(garbage.cluster.policies, before.cluster.policies);
        assert!(garbage.errors[0].message.contains("not valid YAML"));

        // Deleting the file deletes its objects.
        fs::remove_file(dir.join("web.yaml")).expect("remove");
        assert!(store.load().expect("load").cluster.policies.is_empty());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn duplicates_and_unknown_kinds_are_reported() {
        let dir = scratch("dupes");
        fs::write(dir.join("a.yaml"), POLICY).expect("write");
        fs::write(
            dir.join("b.yaml"),
            format!("{POLICY}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\n"),
        )
        .expect("write");
        fs::write(dir.join(".hidden.yaml"), "not: [even yaml").expect("write");
        let snapshot = FileDatastore::new(&dir).load().expect("load");
        assert_eq!(snapshot.cluster.policies.len(), 1);
        let messages: Vec<String> = snapshot.errors.iter().map(ToString::to_string).collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(
            messages
                .iter()
                .any(|m| m.contains("b.yaml") && m.contains("duplicate"))
        );
        assert!(messages.iter().any(|m| m.contains("ConfigMap")
            && m.contains("v1 Service")
            && m.contains("discovery.k8s.io/v1 EndpointSlice")));
        let _ = fs::remove_dir_all(&dir);
    }

    const SERVICES: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: shop
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
endpoints: [{addresses: [10.42.0.11], nodeName: node-a}]
ports: [{name: http, port: 8080}]
"#;

    #[test]
    fn services_and_endpoint_slices_load_and_a_broken_edit_keeps_the_accepted_version() {
        let dir = scratch("services");
        let mut store = FileDatastore::new(&dir);
        fs::write(dir.join("web.yaml"), SERVICES).expect("write");
        let before = store.load().expect("load");
        assert!(before.errors.is_empty(), "{:?}", before.errors);
        let key = ("shop".to_owned(), "web".to_owned());
        let service = &before.cluster.services[&key];
        assert_eq!(
            service.ports[0].target_port,
            TargetPort::Name("http".into())
        );
        let slice = &before.cluster.endpoint_slices[&("shop".to_owned(), "web-1".to_owned())];
        assert_eq!(slice.service.as_deref(), Some("web"));
        assert_eq!(slice.ports[0].port, 8080);

        fs::write(
            dir.join("web.yaml"),
            SERVICES
                .replace("targetPort: http}", "targetPort: http_x}")
                .replace("[10.42.0.11]", "[fd00::11]"),
        )
        .expect("write");
        let invalid = store.load().expect("load");
        assert_eq!(invalid.cluster.services, before.cluster.services);
        assert_eq!(
            invalid.cluster.endpoint_slices,
            before.cluster.endpoint_slices
        );
        let rejected: Vec<_> = invalid
            .errors
            .iter()
            .map(|e| (e.object.as_deref(), e.field.as_deref()))
            .collect();
        assert_eq!(
            rejected,
            [
                (Some("Service shop/web"), Some("spec.ports[0].targetPort")),
                (
                    Some("EndpointSlice shop/web-1"),
                    Some("endpoints[0].addresses[0]")
                ),
            ]
        );
        assert!(invalid.errors.iter().all(|e| {
            e.message
                .ends_with("the previously accepted version stays in force")
        }));
        let _ = fs::remove_dir_all(&dir);
    }

    const CALICO: &str = r#"
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: default-deny}
spec:
  selector: all()
  types: [Ingress]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: broken}
spec:
  selector: "app =="
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: web, namespace: default}
spec:
  selector: app == 'web'
  ingress:
  - action: Allow
    protocol: TCP
    source: {ports: [1024, client]}
---
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 100}
"#;

    #[test]
    fn calico_resources_load_beside_kubernetes_ones_and_errors_name_the_field() {
        let dir = scratch("calico");
        fs::write(dir.join("k8s.yaml"), POLICY).expect("write");
        fs::write(dir.join("calico.yaml"), CALICO).expect("write");
        let snapshot = FileDatastore::new(&dir).load().expect("load");
        // The Kubernetes NetworkPolicy default/web and nothing of Calico's by that key.
        assert_eq!(snapshot.cluster.policies.len(), 1);
        let calico = &snapshot.cluster.calico;
        assert_eq!(
            calico.policies.keys().collect::<Vec<_>>(),
            vec![&(String::new(), "default-deny".to_owned())]
        );
        assert!(calico.tiers.contains_key("security"));
        let messages: Vec<String> = snapshot.errors.iter().map(ToString::to_string).collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        let broken = &snapshot.errors[0];
        assert_eq!(
            broken.object.as_deref(),
            Some("GlobalNetworkPolicy (projectcalico.org/v3) broken")
        );
        assert_eq!(broken.field.as_deref(), Some("spec.selector"));
        assert!(broken.message.contains("(at "), "{}", broken.message);
        let unsupported = &snapshot.errors[1];
        assert_eq!(
            unsupported.object.as_deref(),
            Some("NetworkPolicy (projectcalico.org/v3) default/web")
        );
        assert_eq!(
            unsupported.field.as_deref(),
            Some("spec.ingress[0].source.ports[1]")
        );
        let _ = fs::remove_dir_all(&dir);
    }

    const CNP: &str = r#"
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: guard, namespace: ignored}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {}}
  egress: [{action: Deny, to: [{networks: [10.9.0.0/16]}]}]
"#;

    #[test]
    fn cluster_policies_are_cluster_scoped_and_a_broken_edit_keeps_the_accepted_one() {
        let dir = scratch("cnp");
        let mut store = FileDatastore::new(&dir);
        fs::write(dir.join("guard.yaml"), CNP).expect("write");
        let before = store.load().expect("load");
        assert!(before.errors.is_empty(), "{:?}", before.errors);
        let key = (ApiKind::ClusterNetworkPolicy, "guard".to_owned());
        assert!(before.cluster.cluster_policies.contains_key(&key));
        // Its translation is what the compiler reads.
        assert!(
            before
                .cluster
                .calico
                .policies
                .contains_key(&(String::new(), "kcnp.kube-admin.guard".to_owned()))
        );

        fs::write(
            dir.join("guard.yaml"),
            CNP.replace("priority: 10", "priority: 1001"),
        )
        .expect("write");
        let after = store.load().expect("load");
        assert_eq!(
            after.cluster.cluster_policies,
            before.cluster.cluster_policies
        );
        let error = &after.errors[0];
        assert_eq!(error.object.as_deref(), Some("ClusterNetworkPolicy guard"));
        assert_eq!(error.field.as_deref(), Some("spec.priority"));

        let states = crate::status::cluster_policy_states(&after.cluster, &after.errors);
        assert_eq!(states.len(), 1);
        assert!(!states[0].accepted && states[0].enforced);
        assert_eq!(states[0].priority, Some(10));
        assert!(
            states[0]
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with("field spec.priority"))
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_past_the_size_cap_keeps_what_it_held() {
        let dir = scratch("huge");
        let mut store = FileDatastore::new(&dir);
        let path = dir.join("web.yaml");
        fs::write(&path, POLICY).expect("write");
        let before = store.load().expect("load");
        assert_eq!(before.cluster.policies.len(), 1);
        // A runaway writer: the file grows past the cap (sparse, so the test writes nothing).
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(digest::MAX_FILE_BYTES + 1))
            .expect("grow");
        let after = store.load().expect("load");
        assert_eq!(after.cluster.policies, before.cluster.policies);
        assert_eq!(after.errors.len(), 1);
        assert_eq!(after.errors[0].source, "web.yaml");
        assert!(after.errors[0].message.starts_with("larger than 64 MiB"));
        let _ = fs::remove_dir_all(&dir);
    }
}
