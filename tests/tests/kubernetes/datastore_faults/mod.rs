//! Datastore faults (issue 18, fault case 5): the agent keeps the last good state and converges
//! when its datastore misbehaves.
//!
//! At the datastore level (fast, unprivileged):
//!
//! - a manifest written in pieces (the file truncated, then written in two writes, a reload
//!   happening in between): the file datastore, watching its directory, keeps the objects the
//!   file held until the writer closes it, then takes the new version whole;
//! - the directory replaced by a rename (as GitOps sync tools do), and a symlinked directory
//!   swapped: the watch follows the new directory and sees its later changes;
//! - a ConfigMap volume (`..data` swapped to a new timestamped directory, the manifests
//!   symlinks through it): read at all (it was not: symlinks were skipped), and followed
//!   through its swaps;
//! - 10,000 objects appearing at once: loaded and compiled in bounded time;
//! - the API server stand-in going away in the middle of a relist (after a 410 Gone) and coming
//!   back with its history compacted: the stores keep the last state meanwhile and converge.
//!
//! End to end, the real agent binary (privileged: loads BPF programs; needs root, a failure under
//! CI=true), attached to no interface:
//!
//! - against the stand-in API server: 10,000 objects appear behind expired watches, the server
//!   goes away during the relist and returns compacted; the agent's status converges to the
//!   server's state and its pinned endpoints map holds the new local pods;
//! - on a ConfigMap-shaped directory: its status follows two `..data` swaps.
//!
//! The agent binary watches its directory with `agent.rs`'s own watcher, which follows
//! neither a replaced directory nor a write in progress; the file cases above are checked on
//! the datastore and its [`FileDatastore::watch`], which the agent is meant to use instead.
//!
//! Every wait is bounded ([`WAIT`]); figures are printed (`--nocapture`).

mod agent;
mod api_server_away;
mod burst;
mod configmap_volume;
mod directory_swaps;
mod file_writes;
mod fixtures;
mod server_scenario;
