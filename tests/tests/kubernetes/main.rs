//! The Kubernetes datastore against an in-process stand-in API server
//! ([`kubernetes_apiserver`]): the datastore and Calico's (staged policies included) and
//! network-policy-api's resources through it, its faults, the deploy manifests, and the agent
//! run against it (privileged: its maps, and the seed scenario in the netns lab).

mod datastore_faults;
mod deploy_manifests;
mod harness;
mod kubernetes_agent;
mod kubernetes_apiserver;
mod kubernetes_calico;
mod kubernetes_cluster_policy;
mod kubernetes_datastore;
mod kubernetes_lab;
mod kubernetes_staged;

/// The agent binary the tests run: see [`palisade_tests::lab::agent::agent_binary`].
fn agent_binary() -> std::path::PathBuf {
    palisade_tests::lab::agent::agent_binary().expect("the policy-agent binary")
}

use tokio::sync::{Mutex, MutexGuard};

/// One privileged test at a time in this binary, explicitly: each runs the real agent (in the
/// machine's own namespace, or in the lab), and two of them side by side on two cores missed
/// their readiness deadlines. The unprivileged tests, against the stand-in alone, run in
/// parallel as before. A tokio lock: most of these tests hold it across `.await`s.
static ONE_AGENT_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// The binary's root check and turn for an async test: `None` when the test cannot run (not
/// root, outside CI: see [`palisade_tests::require_root`]), else the turn, held until the
/// test ends.
async fn agent_turn(test: &str) -> Option<MutexGuard<'static, ()>> {
    if !palisade_tests::require_root(test) {
        return None;
    }
    Some(ONE_AGENT_AT_A_TIME.lock().await)
}

/// [`agent_turn`] for a test that runs outside any async runtime.
fn agent_turn_blocking(test: &str) -> Option<MutexGuard<'static, ()>> {
    if !palisade_tests::require_root(test) {
        return None;
    }
    Some(ONE_AGENT_AT_A_TIME.blocking_lock())
}
