//! Kubernetes Services in the lab: addresses assigned as the API server would (ClusterIPs from
//! `10.96.0.0/16` and `fd00:96::/108`, nodePorts from 30000-32767), EndpointSlices derived from
//! the pods a Service selects as the endpointslice controller does, and in every node namespace
//! the rules kube-proxy writes for them (see [`kube_proxy`]).
//!
//! The lab keeps the cluster's current objects ([`ServiceLab`]), so each step that changes a
//! pod's labels, deletes a pod, or adds, changes or deletes a Service or an EndpointSlice
//! rewrites the derived EndpointSlices in the datastore and the kube-proxy rules (one
//! `iptables-restore` or `nft -f` per family and node: atomic).
//!
//! [`addresses`]: what a Service is assigned; [`plan`]: the scenario's Services planned;
//! [`running`]: the running lab's Services, EndpointSlices and kube-proxy rules.

mod addresses;
pub mod dns;
pub mod kube_proxy;
mod plan;
mod running;

pub use addresses::*;
pub use dns::DnsTable;
pub use plan::*;
pub use running::*;

#[cfg(test)]
mod tests;
