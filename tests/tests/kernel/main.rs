//! The BPF programs in the kernel, without the netns lab: each test loads the datapath into a
//! pin directory of its own ([`palisade_tests::scratch`]), runs packets through it with
//! `BPF_PROG_TEST_RUN` and holds the verdicts to the replay and the reference models. Needs
//! root (bpffs, BPF); each test starts with [`palisade_tests::require_root`], which fails it
//! under `CI=true` and skips it loudly elsewhere. The tests share nothing but the kernel, so
//! they run in parallel.

mod conformance_bpf;
mod connection_tracking;
mod conntrack_fuzz;
mod counter_slots;
mod drift_repair;
mod drop_reasons;
mod flow_events;
mod host_endpoints;
mod kernel_datapath;
mod kernel_vs_calico_model;
mod kernel_vs_model;
mod map_capacity;
mod neighbour_discovery;
mod packet_fuzz;
mod packet_shapes;
mod rule_hits;
mod service_datapath;
mod shop;
mod source_ports;

/// The agent binary, for the tests that run its commands (`flows`): see
/// [`palisade_tests::lab::agent::agent_binary`].
fn agent_binary() -> std::path::PathBuf {
    palisade_tests::lab::agent::agent_binary().expect("the policy-agent binary")
}
