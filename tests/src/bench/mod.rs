//! Real-traffic and control-plane benchmarks for `cargo xtask bench` (run by the `netbench`
//! binary): the lab's namespaces, enforced by Palisade, by iptables or nftables rule sets, or
//! by nothing, driven by the `loadgen` binary. Results are JSON lines on stdout.
//!
//! Everything lives in namespaces the lab creates (rules included: they go into the lab's node
//! namespace and disappear with it); load generators are bounded in time and die with us.

pub mod control;
pub mod procs;
pub mod rules;
pub mod services;
pub mod traffic;

/// How much to measure.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Rule counts for the traffic runs.
    pub sizes: &'static [usize],
    /// Repetitions of each traffic measurement (medians are taken over these).
    pub reps: usize,
    /// Seconds per traffic measurement.
    pub seconds: f64,
    /// Policy changes whose latency is measured.
    pub changes: usize,
    /// Pod counts for the agent's memory and full-sync figures.
    pub pod_counts: &'static [usize],
}

pub const FULL: Budget = Budget {
    sizes: &[10, 100, 1_000, 10_000],
    reps: 3,
    seconds: 1.0,
    changes: 100,
    pod_counts: &[1_000, 10_000],
};

pub const QUICK: Budget = Budget {
    sizes: &[10, 100],
    reps: 1,
    seconds: 0.3,
    changes: 6,
    pod_counts: &[1_000],
};

/// Prints one result line for xtask.
pub fn emit(value: &serde_json::Value) {
    println!("{value}");
}
