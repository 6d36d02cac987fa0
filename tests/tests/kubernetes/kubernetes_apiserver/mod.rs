//! An in-process stand-in for the Kubernetes API server (not a real one: none can run on these
//! machines), for Namespaces, Pods, NetworkPolicies, Services and EndpointSlices
//! (`discovery.k8s.io/v1`), Calico's custom resources (`crd.projectcalico.org/v1`, its staged
//! policies among them) and
//! network-policy-api's (`policy.networking.k8s.io/v1alpha2` ClusterNetworkPolicy,
//! `policy.networking.k8s.io/v1alpha1` AdminNetworkPolicy and BaselineAdminNetworkPolicy):
//! enough of the real list/watch protocol for kube-rs's watcher to run against it unchanged.
//!
//! - `GET /apis/<group>/<version>` of a custom group version is its discovery document (an
//!   `APIResourceList`). [`ApiServer::serve_group_version`]`(v, false)` (or
//!   [`ApiServer::serve_calico`]`(false)`) makes the server one without those CRDs: discovery
//!   and the collections are 404s, as a real API server's are for a group it does not serve.
//! - `GET <collection>` lists every object with the current resource version in the list's
//!   metadata (one page: the server may ignore `limit`, and does).
//! - `GET <collection>?watch=true&resourceVersion=N` streams newline-separated JSON events
//!   (`ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`, `ERROR`): first every change after N from the
//!   history, then live ones, until `timeoutSeconds` or until the test drops the stream. A
//!   version older than the compaction point gets the API server's answer, an `ERROR` event
//!   with a 410 `Expired` status, on an otherwise successful (200) response.
//! - Resource versions are one global counter, like etcd's revision.
//!
//! The test drives it: change objects, send bookmarks, drop watches, expire them (410), stop
//! the server and start it again on the same port, or have it go away in the middle of a
//! relist ([`ApiServer::go_away_on_next_list`]).

// Some of the stand-in is kept for completeness rather than used by a test.
#![allow(dead_code)]

mod kind;
mod protocol;
mod server;
mod state;

pub use kind::{ANP_API_VERSION, CALICO_API_VERSION, CNP_API_VERSION, Kind};
pub use server::ApiServer;
pub use state::Change;
