//! Flow records: the datapath's flow events aggregated over a window, with both ends named as
//! workloads (issue 21).
//!
//! Events come one per decided flow from the ring buffer (`PALISADE_FLOWS`, see
//! [`crate::flows`]); a record is keyed by what a reader filters on (source and destination
//! workload, protocol, port, verdict, the hook that decided and the rule that did) and counts
//! the flows behind it. Memory is bounded whatever the traffic: see [`aggregate::Limits`].
//!
//! - [`workloads`]: an address as a workload (pod, host endpoint, network set, or the address
//!   itself), from the agent's view of the cluster.
//! - [`aggregate`]: the window, the bound, and what is lost when the bound is hit.
//! - [`connections`]: packets and bytes of the allowed connections, from the connection
//!   table, added to their records window by window.
//! - [`live`]: the agent's records while it runs, fed from the ring buffer.
//!
//! Served by [`crate::web`] (`GET /flows`, and the web view).
//! - [`client`]: `policy-agent flows --agent`: reads, filters and prints them.

pub mod aggregate;
pub mod client;
pub mod connections;
pub mod live;
pub mod workloads;

pub use aggregate::{Aggregator, Limits, Window};
pub use live::FlowRecords;
pub use workloads::{Directory, ServiceRef, Workload};
