//! Where the cluster state comes from. Each datastore produces a [`Snapshot`]: the validated
//! cluster, the objects it rejected (with source, object and field), and a digest of its input.
//!
//! Two datastores exist: [`file`] (a directory of manifests, watched with inotify) and
//! [`kubernetes`] (the API server, through kube-rs watchers and reflector stores). The agent
//! drives both through [`Datastore`].

pub mod digest;
pub mod file;
pub mod kubernetes;
pub mod watch;

use std::{io, path::PathBuf};

use thiserror::Error;

use crate::{model::Cluster, status::ObjectError};

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub cluster: Cluster,
    pub errors: Vec<ObjectError>,
    /// Identifies the exact input this snapshot was built from (see [`digest`] for files,
    /// [`kubernetes::digest_versions`] for the API server).
    pub digest: String,
}

#[derive(Debug, Error)]
pub enum DatastoreError {
    #[error("reading the manifest directory {path}")]
    ReadDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What the agent needs of a datastore: the current state, on demand. Change notifications
/// come separately (a channel the datastore's watcher feeds), so that a burst of changes
/// costs one load.
pub trait Datastore: Send {
    fn load(&mut self) -> Result<Snapshot, DatastoreError>;
    /// For logs: the directory, or "kubernetes".
    fn describe(&self) -> String;
}

impl Datastore for file::FileDatastore {
    fn load(&mut self) -> Result<Snapshot, DatastoreError> {
        file::FileDatastore::load(self).map_err(|source| DatastoreError::ReadDir {
            path: self.dir().to_owned(),
            source,
        })
    }

    fn describe(&self) -> String {
        self.dir().display().to_string()
    }
}
