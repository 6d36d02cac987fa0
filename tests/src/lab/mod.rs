//! The local lab: every pod is a network namespace wired to its "node" namespace, where that
//! node's real `policy-agent` runs (one node unless pods name others with `spec.nodeName`; the
//! nodes route each other's pods over a fabric, which a Calico `HostEndpoint`'s interface faces
//! on its node); a scenario's steps change the manifests the agents read, and probes make real
//! connections between pods (and host endpoints, `hep/<name>`) to check what is enforced.
//!
//! Nothing touches the machine's root namespace; everything the lab creates is removed on
//! return, error, panic and SIGINT/SIGTERM.

pub mod agent;
pub mod cleanup;
pub mod datastore;
pub mod netns;
pub mod probes;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod servers;
pub mod services;
pub mod topology;

pub use agent::agent_binary;
pub use report::{ErrorCheck, ProbeResult, Report, StepReport};
pub use runner::{Lab, LabOptions, run_scenario, run_scenario_with};
pub use scenario::{KubeProxyMode, Probe, Scenario, ScenarioError, Step};
