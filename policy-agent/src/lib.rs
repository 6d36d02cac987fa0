//! Palisade's node agent as a library: the datastore, the compiler from NetworkPolicy to BPF
//! map contents, and the dataplane that loads, pins, attaches and syncs.
//!
//! Data flows datastore → model → compiler → dataplane; `agent` runs the loop.
pub mod agent;
pub mod calico;
pub mod cluster_policy;
pub mod compiler;
pub mod dataplane;
pub mod datastore;
pub mod explain;
pub mod flow_records;
pub mod flows;
pub mod health;
pub mod http_server;
pub mod link_events;
pub mod model;
pub mod replay;
pub mod rule_hits;
pub mod serde_field;
pub mod services;
pub mod status;
pub mod web;
