//! The agent's status report: what it has programmed, and what it rejected.
//!
//! Written atomically (temporary file + rename) after every successful sync, so a reader never
//! sees half a report. The lab waits on `digest` to know that a step's manifests are in the
//! kernel; operators read `errors` to see which objects were rejected and why.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Digest of the datastore contents that are now programmed (see
    /// [`crate::datastore::digest`]).
    pub digest: String,
    /// Number of syncs since the agent started.
    pub generation: u64,
    /// Entries in each map after the sync.
    pub endpoints: usize,
    pub identities: usize,
    pub rules: usize,
    /// Interfaces the programs are attached to.
    pub interfaces: Vec<String>,
    /// Objects rejected by the last load; every other object is enforced.
    pub errors: Vec<ObjectError>,
    /// Milliseconds the last sync (read, compile, map update) took.
    pub sync_millis: u64,
    /// Connections tracked in `PALISADE_CONNTRACK` when the report was written (its capacity
    /// is `policy_common::capacity::CONNTRACK`; beyond it the oldest are evicted, and their
    /// later packets are checked against policy again).
    #[serde(default)]
    pub conntrack_entries: usize,
    /// Packets seen per endpoint interface since the datapath was loaded.
    #[serde(default)]
    pub packets: std::collections::BTreeMap<String, PacketCounts>,
    /// Packets and new flows each policy rule decided (see `crate::rule_hits`), for the rules
    /// that decided any.
    #[serde(default)]
    pub rule_hits: Vec<crate::rule_hits::RuleCount>,
    /// The policies each rule table stands for, so that `policy-agent flows` can name what
    /// decided a flow event (the tables' numbers are this agent's own).
    #[serde(default)]
    pub tables: std::collections::BTreeMap<u32, crate::flows::TableNames>,
    /// The last sync that failed, while nothing has been programmed since: the maps hold the
    /// state of `digest`, not of the contents refused here.
    #[serde(default)]
    pub refused: Option<Refusal>,
    /// Map entries the periodic resync found differing from the applied state (and
    /// repaired), since the agent started.
    #[serde(default)]
    pub drift_repaired: u64,
    /// Every administrators' policy (ClusterNetworkPolicy, AdminNetworkPolicy,
    /// BaselineAdminNetworkPolicy) the datastore holds, accepted or not. The agent does not
    /// write `status.conditions` back to the API server (that needs `update` on the status
    /// subresource, which its read-only RBAC leaves out): this is where acceptance is reported.
    #[serde(default)]
    pub cluster_policies: Vec<ClusterPolicyState>,
    /// Interfaces that should run the programs and do not (their endpoints are not enforced
    /// there): each is tried again at every interface scan.
    #[serde(default)]
    pub attach_failures: Vec<crate::dataplane::AttachFailure>,
    /// When the applied state (`digest`, `generation`) was written whole, in milliseconds
    /// since the Unix epoch: with `refused` set, how long the kernel has held the old state.
    #[serde(default)]
    pub applied_at_unix_ms: u64,
    /// The programs loaded, with what each cost the verifier and the headroom it left.
    #[serde(default)]
    pub programs: Vec<crate::dataplane::verifier::ProgramLoad>,
}

/// Whether one administrators' policy is enforced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterPolicyState {
    pub kind: String,
    pub name: String,
    /// The datastore's current version passed validation.
    pub accepted: bool,
    /// A version of it is in the kernel: the current one, or, when the current one was
    /// rejected, the last accepted one.
    pub enforced: bool,
    /// `Admin` or `Baseline`, and the priority, of the enforced version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// Why the current version was rejected: the field and the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The state of every administrators' policy: those `cluster` enforces, and those `errors`
/// names (rejected, with or without an older version in force).
pub fn cluster_policy_states(
    cluster: &crate::model::Cluster,
    errors: &[ObjectError],
) -> Vec<ClusterPolicyState> {
    use std::collections::BTreeMap;

    use crate::cluster_policy::{ApiKind, PolicyTier};

    let mut states: BTreeMap<(String, String), ClusterPolicyState> = BTreeMap::new();
    for ((kind, name), policy) in &cluster.cluster_policies {
        states.insert(
            (kind.as_str().to_owned(), name.clone()),
            ClusterPolicyState {
                kind: kind.as_str().to_owned(),
                name: name.clone(),
                accepted: true,
                enforced: true,
                tier: Some(
                    match policy.tier {
                        PolicyTier::Admin => "Admin",
                        PolicyTier::Baseline => "Baseline",
                    }
                    .to_owned(),
                ),
                priority: Some(policy.priority),
                error: None,
            },
        );
    }
    for error in errors {
        // Datastores name objects `Kind name` (cluster-scoped: no namespace).
        let Some((kind, name)) = error.object.as_deref().and_then(|o| o.split_once(' ')) else {
            continue;
        };
        if !ApiKind::ALL.iter().any(|k| k.as_str() == kind) {
            continue;
        }
        let message = match &error.field {
            Some(field) => format!("field {field}: {}", error.message),
            None => error.message.clone(),
        };
        let state = states
            .entry((kind.to_owned(), name.to_owned()))
            .or_insert_with(|| ClusterPolicyState {
                kind: kind.to_owned(),
                name: name.to_owned(),
                accepted: false,
                enforced: false,
                tier: None,
                priority: None,
                error: None,
            });
        state.accepted = false;
        state.error = Some(message);
    }
    states.into_values().collect()
}

/// A sync the agent could not program whole (so it programmed none of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Digest of the datastore contents it tried to program.
    pub digest: String,
    /// Why, with its causes.
    pub error: String,
    /// Failed syncs in a row; the agent retries with backoff.
    pub attempts: u32,
    /// When it retries, in milliseconds from this report.
    pub retry_in_ms: u64,
}

/// What the programs did with the packets of one interface (`PALISADE_COUNTERS`, summed over
/// CPUs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketCounts {
    pub allowed: u64,
    /// Every drop but the malformed ones.
    pub denied: u64,
    pub malformed: u64,
    /// Every drop by its reason's name (`policy_common::counters::drop_reason`), malformed
    /// among them; reasons that dropped nothing are left out.
    #[serde(default)]
    pub drops: std::collections::BTreeMap<String, u64>,
}

impl PacketCounts {
    /// The counts of the datapath's per-interface counters.
    pub fn of(counters: &policy_common::counters::Counters) -> Self {
        use policy_common::counters::drop_reason;
        Self {
            allowed: counters.allowed,
            denied: counters.denied(),
            malformed: counters.malformed(),
            drops: drop_reason::ALL
                .into_iter()
                .filter(|reason| counters.drops[usize::from(*reason)] > 0)
                .map(|reason| {
                    let count = counters.drops[usize::from(reason)];
                    (drop_reason::name(reason).to_string(), count)
                })
                .collect(),
        }
    }

    /// Adds `other`'s counts (another interface's).
    pub fn add(&mut self, other: &PacketCounts) {
        self.allowed += other.allowed;
        self.denied += other.denied;
        self.malformed += other.malformed;
        for (reason, count) in &other.drops {
            *self.drops.entry(reason.clone()).or_default() += count;
        }
    }
}

/// One rejected object (or file), with where and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectError {
    /// File the object came from.
    pub source: String,
    /// `Kind namespace/name` when known.
    pub object: Option<String>,
    /// Path of the offending field, e.g. `spec.ingress[0].ports[0].protocol`.
    pub field: Option<String>,
    pub message: String,
}

impl std::fmt::Display for ObjectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.source)?;
        if let Some(object) = &self.object {
            write!(f, ": {object}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

#[derive(Debug, Error)]
pub enum StatusError {
    #[error("writing status file {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading status file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("parsing status file {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl Status {
    pub fn write_atomic(&self, path: &Path) -> Result<(), StatusError> {
        let write_err = |source| StatusError::Write {
            path: path.to_owned(),
            source,
        };
        let body = serde_json::to_vec_pretty(self).map_err(|e| write_err(io::Error::other(e)))?;
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, body).map_err(write_err)?;
        fs::rename(&tmp, path).map_err(write_err)
    }

    /// Reads a status file; `Ok(None)` when it does not exist yet.
    pub fn read(path: &Path) -> Result<Option<Self>, StatusError> {
        let body = match fs::read(path) {
            Ok(body) => body,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StatusError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|source| StatusError::Parse {
                path: path.to_owned(),
                source,
            })
    }
}
