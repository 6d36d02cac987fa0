//! Kubernetes objects (k8s-openapi types) to the validated model.
//!
//! Every check the API server's validation would make on these fields is made here too, so a
//! hand-written manifest gets the same answer a cluster would give, with the path of the field
//! at fault (`spec.ingress[0].ports[1].endPort`).
//!
//! One module per kind: [`pods`] (Namespaces and Pods), [`network_policy`] (NetworkPolicies
//! and the label selectors they and ClusterNetworkPolicies use), [`services`], and
//! [`endpoint_slices`]; the error, and the checks of names, ports, protocols and addresses
//! they share, in [`fields`].

mod endpoint_slices;
mod fields;
mod network_policy;
mod pods;
mod services;

pub use endpoint_slices::endpoint_slice;
pub use fields::{ConvertError, object_namespace};
pub(crate) use network_policy::label_selector;
pub use network_policy::network_policy;
pub use pods::{namespace, pod};
pub use services::service;
