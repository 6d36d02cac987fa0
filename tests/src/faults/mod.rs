//! The lab half of issue 18's fault-injection suite: real traffic keeps asking "does this
//! pass?" while the agent is made to change policy, die and restart, run out of room, or see
//! interfaces come and go; every answer is judged against what the policy in force at its
//! instant allows (`tests/tests/fault_injection.rs`).

pub mod churn;
pub mod interfaces;
pub mod judge;
pub mod kill;
pub mod pinned;
pub mod prober;
pub mod respawn;
