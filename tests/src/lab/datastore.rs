//! The manifest directory the agent reads: one file per object, written atomically, completed
//! the way an API server would complete it (namespace labels, pod status).

use std::{
    ffi::OsString,
    fs::{self, File},
    io,
    net::IpAddr,
    path::{Path, PathBuf},
    sync::OnceLock,
};

use serde_json::{Map, Value, json};
use thiserror::Error;

use super::{
    scenario::{DEFAULT_NAMESPACE, Object, ObjectKey, PodRef, Scenario, Step},
    topology::PodPlan,
};

/// The label every namespace carries, as the API server adds it.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

#[derive(Debug, Error)]
pub enum DatastoreError {
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("removing {path}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("serialising {key}")]
    Serialise {
        key: ObjectKey,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("digest of {path}")]
    Digest {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{pod} has no plan (not declared in resources)")]
    UnplannedPod { pod: PodRef },
}

/// Where a lab's objects are published besides its directory, for an agent that reads them
/// from there instead: policy-agent's `kubernetes_lab` test publishes through its stand-in
/// Kubernetes API server. Set at most once per process, before the lab starts; without one the
/// agent reads the directory. Raw files (`writeFiles`, `removeFiles`) are not published.
pub trait Publisher: Send + Sync {
    /// An object was created or replaced; `manifest` is as the API server would store it.
    fn apply(&self, manifest: &Value);
    fn delete(&self, key: &ObjectKey);
    /// The digest the agent reports once it has programmed what was published.
    fn digest(&self) -> String;
    /// The agent's datastore arguments (instead of `--datastore DIR`) for an agent in the
    /// network namespace `node`.
    fn agent_args(&self, node: &File) -> anyhow::Result<Vec<OsString>>;
}

static PUBLISHER: OnceLock<Box<dyn Publisher>> = OnceLock::new();

/// Publishes every lab of this process through `publisher`; fails if one is set already.
pub fn publish_through(publisher: Box<dyn Publisher>) -> Result<(), Box<dyn Publisher>> {
    PUBLISHER.set(publisher)
}

pub fn publisher() -> Option<&'static dyn Publisher> {
    PUBLISHER.get().map(AsRef::as_ref)
}

/// A datastore directory owned by one lab.
#[derive(Debug, Clone)]
pub struct Datastore {
    dir: PathBuf,
}

impl Datastore {
    /// Uses `dir`, which must exist.
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes (or replaces) an object, completed for the API server's view.
    pub fn write_object(&self, object: &Object, pods: &[PodPlan]) -> Result<(), DatastoreError> {
        let manifest = complete(object, pods)?;
        if let Some(publisher) = publisher() {
            publisher.apply(&manifest);
        }
        let text =
            serde_yaml::to_string(&manifest).map_err(|source| DatastoreError::Serialise {
                key: object.key.clone(),
                source,
            })?;
        self.write_file(&object.key.file_name(), text.as_bytes())
    }

    /// Writes a scenario's initial resources, as the lab does before its agent starts: the
    /// `default` namespace unless the scenario declares it, then every resource.
    pub fn write_resources(
        &self,
        scenario: &Scenario,
        pods: &[PodPlan],
    ) -> Result<(), DatastoreError> {
        if !scenario.namespaces().contains(DEFAULT_NAMESPACE) {
            self.write_object(&default_namespace(), pods)?;
        }
        for object in &scenario.resources {
            self.write_object(object, pods)?;
        }
        Ok(())
    }

    /// Makes a step's changes, in the lab's order: `apply`, `delete`, `writeFiles`,
    /// `removeFiles`.
    pub fn write_step(&self, step: &Step, pods: &[PodPlan]) -> Result<(), DatastoreError> {
        for object in &step.apply {
            self.write_object(object, pods)?;
        }
        for reference in &step.delete {
            self.remove_object(&reference.key())?;
        }
        for file in &step.write_files {
            self.write_file(&file.name, file.content.as_bytes())?;
        }
        for name in &step.remove_files {
            self.remove_file(name)?;
        }
        Ok(())
    }

    /// Removes an object's file.
    pub fn remove_object(&self, key: &ObjectKey) -> Result<(), DatastoreError> {
        if let Some(publisher) = publisher() {
            publisher.delete(key);
        }
        self.remove_file(&key.file_name())
    }

    /// Writes a file atomically: `.<name>.tmp` (ignored by the agent), then rename.
    pub fn write_file(&self, name: &str, contents: &[u8]) -> Result<(), DatastoreError> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let write_err = |source| DatastoreError::Write {
            path: path.clone(),
            source,
        };
        fs::write(&tmp, contents).map_err(write_err)?;
        fs::rename(&tmp, &path).map_err(write_err)
    }

    /// Removes a file; one that is already gone is fine.
    pub fn remove_file(&self, name: &str) -> Result<(), DatastoreError> {
        let path = self.dir.join(name);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(DatastoreError::Remove { path, source: e })
            }
            _ => Ok(()),
        }
    }

    /// The digest the agent reports once it has programmed exactly these files.
    pub fn digest(&self) -> Result<String, DatastoreError> {
        if let Some(publisher) = publisher() {
            return Ok(publisher.digest());
        }
        policy_agent::datastore::digest::dir_digest(&self.dir).map_err(|source| {
            DatastoreError::Digest {
                path: self.dir.clone(),
                source,
            }
        })
    }
}

/// The manifest for the `default` namespace, which exists without being declared.
pub fn default_namespace() -> Object {
    Object {
        key: ObjectKey::new("Namespace", None, DEFAULT_NAMESPACE),
        manifest: json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": DEFAULT_NAMESPACE},
        }),
    }
}

/// The object as the API server would store it: namespaced objects carry their namespace,
/// namespaces their name label, pods their node (`spec.nodeName`, as the scheduler set it),
/// addresses and `phase: Running`.
pub fn complete(object: &Object, pods: &[PodPlan]) -> Result<Value, DatastoreError> {
    let mut manifest = object.manifest.clone();
    let Some(root) = manifest.as_object_mut() else {
        return Ok(manifest);
    };
    let key = &object.key;
    with_map(root, "metadata", |metadata| {
        if let Some(ns) = &key.namespace {
            metadata.insert("namespace".to_owned(), Value::String(ns.clone()));
        }
        if key.kind == "Namespace" {
            with_map(metadata, "labels", |labels| {
                labels.insert(
                    NAMESPACE_NAME_LABEL.to_owned(),
                    Value::String(key.name.clone()),
                );
            });
        }
    });
    if key.kind == "Pod" {
        let pod = PodRef {
            namespace: key.namespace.clone().unwrap_or_default(),
            name: key.name.clone(),
        };
        let plan = pods
            .iter()
            .find(|p| p.pod == pod)
            .ok_or(DatastoreError::UnplannedPod { pod })?;
        let ips = plan.ips();
        with_map(root, "spec", |spec| {
            spec.insert("nodeName".to_owned(), Value::String(plan.node.clone()));
        });
        with_map(root, "status", |status| {
            if let Some(first) = ips.first() {
                status.insert("podIP".to_owned(), Value::String(first.to_string()));
            }
            status.insert(
                "podIPs".to_owned(),
                Value::Array(ips.iter().map(|ip: &IpAddr| json!({"ip": ip})).collect()),
            );
            status.insert("phase".to_owned(), Value::String("Running".to_owned()));
        });
    }
    Ok(manifest)
}

/// Edits `map[key]` as a mapping; a missing, null or non-mapping value starts out empty.
fn with_map(map: &mut Map<String, Value>, key: &str, edit: impl FnOnce(&mut Map<String, Value>)) {
    let mut child = match map.remove(key) {
        Some(Value::Object(child)) => child,
        _ => Map::new(),
    };
    edit(&mut child);
    map.insert(key.to_owned(), Value::Object(child));
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn pods_get_status_and_namespace() -> anyhow::Result<()> {
        let object = Object::from_manifest(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "a", "labels": {"app": "a"}},
            "spec": {"containers": []},
        }))?;
        let plan = PodPlan {
            index: 0,
            pod: PodRef {
                namespace: "default".into(),
                name: "a".into(),
            },
            ipv4: Some(Ipv4Addr::new(10, 42, 0, 10)),
            ipv6: None,
            node: "node-a".into(),
        };
        let manifest = complete(&object, &[plan])?;
        assert_eq!(manifest["spec"]["nodeName"], "node-a");
        assert_eq!(manifest["metadata"]["namespace"], "default");
        assert_eq!(manifest["metadata"]["labels"]["app"], "a");
        assert_eq!(manifest["status"]["podIP"], "10.42.0.10");
        assert_eq!(manifest["status"]["podIPs"][0]["ip"], "10.42.0.10");
        assert_eq!(manifest["status"]["phase"], "Running");
        Ok(())
    }

    #[test]
    fn namespaces_get_their_name_label() -> anyhow::Result<()> {
        let manifest = complete(&default_namespace(), &[])?;
        assert_eq!(
            manifest["metadata"]["labels"][NAMESPACE_NAME_LABEL],
            "default"
        );
        assert!(manifest["metadata"].get("namespace").is_none());
        Ok(())
    }
}
