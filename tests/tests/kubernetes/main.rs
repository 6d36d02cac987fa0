//! The Kubernetes datastore against an in-process stand-in API server
//! ([`kubernetes_apiserver`]): the datastore and Calico's and network-policy-api's resources
//! through it, its faults, the deploy manifests, and the agent run against it (privileged: its
//! maps, and the seed scenario in the netns lab).

mod datastore_faults;
mod deploy_manifests;
mod harness;
mod kubernetes_agent;
mod kubernetes_apiserver;
mod kubernetes_calico;
mod kubernetes_cluster_policy;
mod kubernetes_datastore;
mod kubernetes_lab;

/// The agent binary the tests run: see [`palisade_tests::lab::agent::agent_binary`].
fn agent_binary() -> std::path::PathBuf {
    palisade_tests::lab::agent::agent_binary().expect("the policy-agent binary")
}
