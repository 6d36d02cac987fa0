//! The real datapath as the kernel-vs-model tests drive it: programmed by the real compiler
//! and sync as the agent does (incrementally from the previous world's state, or as a
//! renumbering after a rebuild), and asked about one packet at a time as a new flow.

use std::path::Path;

use policy_agent::{
    compiler::{Compiler, MapContents, Scope},
    dataplane::{Datapath, MapDelta, routes::Binding},
    model::Cluster,
    replay::{self, Direction, Packet, Reason},
};

pub struct ProgrammedDatapath {
    datapath: Datapath,
    compiler: Compiler,
    programmed: MapContents,
}

impl ProgrammedDatapath {
    /// The datapath loaded and pinned under `pins`, with nothing programmed.
    pub fn load(pins: &Path) -> Self {
        Self {
            datapath: Datapath::load(pins).expect("loading the datapath"),
            compiler: Compiler::new(),
            programmed: MapContents::default(),
        }
    }

    /// Compiles `cluster` and writes what the compile reports changed, as the agent does.
    pub fn program(&mut self, cluster: &Cluster, scope: &Scope) -> Result<(), String> {
        let compiled = self.compiler.compile(cluster, scope);
        if compiled.renumbered {
            // New numbers for everything: the agent switches the kernel to them as a
            // renumbering (both identity slots, endpoints restamped).
            let desired = (*compiled.maps).clone();
            self.datapath
                .write_renumbering(&self.programmed, &desired)
                .map_err(|e| format!("renumbering: {e:#}"))?;
            self.programmed = desired;
            return Ok(());
        }
        let delta = MapDelta::between(
            &self.programmed,
            &compiled.maps,
            &compiled.changes,
            &Binding::default(),
        );
        self.datapath
            .write(&delta)
            .map_err(|e| format!("sync: {e:#}"))?;
        delta.apply_to(&mut self.programmed);
        Ok(())
    }

    /// Whether both programs let `packet` through as the first packet of a new flow; a side
    /// whose address is not an endpoint is not checked.
    pub fn allows(&mut self, packet: &Packet) -> Result<bool, String> {
        let frame = packet.to_frame();
        let mut allowed = true;
        for direction in [Direction::FromEndpoint, Direction::ToEndpoint] {
            let endpoint = replay::decide(&self.programmed, packet, direction).reason
                != Reason::UnknownEndpoint;
            if !endpoint {
                continue;
            }
            // Each flow is a new connection: no state from earlier flows.
            self.datapath
                .clear_conntrack()
                .map_err(|e| format!("conntrack: {e:#}"))?;
            let verdict = self
                .datapath
                .test_run(direction, &frame, 1)
                .map_err(|e| format!("test run: {e:#}"))?;
            allowed &= verdict.allowed();
        }
        Ok(allowed)
    }
}
