//! The reference models and what is held to them without the kernel: the Calico reference
//! model's own checks, the compiler against both models (generated worlds, incremental edits),
//! host endpoints as peers, pending verdicts (staged policies) against the model's pending
//! world, and the order of every sync's map writes. Needs no privileges.

mod calico_reference;
mod compiler_vs_calico_model;
mod compiler_vs_model;
mod deterministic_compile;
mod host_endpoint_peers;
mod staged_vs_model;
mod write_order;
