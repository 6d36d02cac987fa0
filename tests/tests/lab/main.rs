//! Scenarios in the netns lab: pods as network namespaces, the real agent in a node namespace,
//! real connections between them (see [`palisade_tests::lab`]). Needs root.

mod attach_failure;
mod cnp_conformance;
mod conformance;
mod crafted_packets;
mod flow_records;
mod invalid_manifest;
mod lab_cleanup;
mod observability;
mod refused_policy;
mod resync;
mod seed;
mod services;
mod write_failure;

use std::sync::{Mutex, MutexGuard, PoisonError};

/// One lab at a time in this binary, explicitly: a lab runs an agent per node, servers, and
/// probes with a 1.5 s timeout, and several at once on two cores made first probes (IPv6
/// neighbour discovery across the fabric) miss it; and the agents' test-only seams
/// ([`AgentSeam`]) are environment variables every agent started meanwhile would inherit.
/// A test that wants labs side by side (`two_labs_run_at_once`) starts them itself.
static ONE_LAB_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The binary's root check and turn: `None` when the test cannot run (not root, outside CI:
/// see [`palisade_tests::require_root`]), else the turn, held until the test ends. A test
/// that panicked while holding it does not stop the others (the lock's poison is ignored).
fn lab_turn(test: &str) -> Option<MutexGuard<'static, ()>> {
    if !palisade_tests::require_root(test) {
        return None;
    }
    Some(
        ONE_LAB_AT_A_TIME
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    )
}

/// One of the agent's test-only seams (`policy_agent::dataplane::fault`), an environment
/// variable the agents started while it is set inherit; removed when dropped, however the
/// test ends, so the next lab's agents never see it. Set only under [`lab_turn`].
struct AgentSeam(&'static str);

impl AgentSeam {
    fn set(name: &'static str, value: &str) -> Self {
        // SAFETY: only under the lab turn, so no other lab is starting an agent; the other
        // tests of this binary read the environment through std, which serialises access.
        unsafe { std::env::set_var(name, value) };
        Self(name)
    }
}

impl Drop for AgentSeam {
    fn drop(&mut self) {
        // SAFETY: as in `set`.
        unsafe { std::env::remove_var(self.0) };
    }
}
