//! Calico's v3 policy API (`projectcalico.org/v3`): its selector language and its resources.
//!
//! Calico policy is a superset of Kubernetes NetworkPolicy (tiers, ordering, deny and pass
//! actions, host endpoints, network sets), written with a selector expression language rather
//! than `matchLabels`. This module only reads and validates: [`selector`] parses and evaluates
//! selector expressions, [`resources`] turns calicoctl-style YAML into checked Rust values with
//! the path of every rejected field. Compiling them is the compiler's business.

pub mod resources;
pub mod selector;
