//! The kernel side: load the eBPF object, pin its maps, attach its programs to endpoint
//! interfaces, and keep the maps equal to the compiler's output.

mod attach;
pub mod counter_slots;
pub mod fault;
mod loader;
mod pins;
mod readback;
mod recorded;
pub mod renumber;
pub mod routes;
mod services;
mod split_table;
mod sync;
mod test_run;
pub mod verifier;

use std::{io, path::PathBuf};

use thiserror::Error;

pub use self::{
    attach::{AttachFailure, Attachment},
    loader::{Capacities, Datapath},
    readback::{Drift, DriftCounts},
    services::{FrontendSpec, ServiceMaps, service_maps},
    sync::{MapDelta, MapWrite, SyncStats},
    test_run::{KernelVerdict, TC_ACT_SHOT, TC_ACT_UNSPEC},
};

#[derive(Debug, Error)]
pub enum DataplaneError {
    #[error(
        "this policy-agent was built with AYA_BUILD_SKIP and carries no eBPF object; rebuild it without that variable"
    )]
    NoObject,
    #[error("loading the eBPF object")]
    Load(#[source] aya::EbpfError),
    #[error("the eBPF object has no {kind} named {name}")]
    Missing {
        kind: &'static str,
        name: &'static str,
    },
    #[error("map {name} has an unexpected type")]
    MapType {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("program {name}")]
    Program {
        name: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("preparing the pin directory {path}")]
    PinDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("pinning map {name} at {path}")]
    Pin {
        name: &'static str,
        path: PathBuf,
        #[source]
        source: aya::pin::PinError,
    },
    #[error("zeroing slot {slot} of {map} (one value per possible CPU)", map = policy_common::map_names::COUNTER_SLOTS)]
    ZeroCounterSlot {
        slot: u32,
        #[source]
        source: io::Error,
    },
    #[error("listing network interfaces")]
    Interfaces(#[source] nix::Error),
    #[error("attaching {program} to {interface}")]
    Attach {
        program: &'static str,
        interface: String,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("pinning the link on {interface}: {reason}")]
    PinLink { interface: String, reason: String },
    #[error("adding the clsact qdisc to {interface}")]
    Clsact {
        interface: String,
        #[source]
        source: aya::programs::tc::TcError,
    },
    #[error(
        "the compiled policy needs {needed} entries in map {map}, which holds {capacity}: start the agent with `{option}` of at least {needed}; the maps keep what they held"
    )]
    Capacity {
        map: &'static str,
        needed: usize,
        capacity: u32,
        option: &'static str,
    },
    #[error("a map write failed on purpose ({env} is set)", env = fault::FAIL_WRITES_ENV)]
    InjectedFault,
    #[error("attaching to {interface} failed on purpose ({env} is set)", env = fault::FAIL_ATTACH_ENV)]
    InjectedAttachFault { interface: String },
    #[error("{operation} in map {map}")]
    MapUpdate {
        operation: &'static str,
        map: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
}
