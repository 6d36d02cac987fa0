//! Where the cluster state comes from. Each datastore produces a [`Snapshot`]: the validated
//! cluster, the objects it rejected (with file, object and field), and a digest of its input.

pub mod digest;
pub mod file;

use crate::{model::Cluster, status::ObjectError};

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub cluster: Cluster,
    pub errors: Vec<ObjectError>,
    /// Identifies the exact input this snapshot was built from (see [`digest`]).
    pub digest: String,
}
