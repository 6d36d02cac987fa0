//! Scenarios in the netns lab: pods as network namespaces, the real agent in a node namespace,
//! real connections between them (see [`palisade_tests::lab`]). Needs root.

mod attach_failure;
mod cnp_conformance;
mod conformance;
mod crafted_packets;
mod invalid_manifest;
mod lab_cleanup;
mod refused_policy;
mod resync;
mod seed;
mod services;
mod write_failure;
