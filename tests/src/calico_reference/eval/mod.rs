//! The evaluation itself: which policies apply, tier by tier, rule by rule.
//!
//! One file per concern: `order.rs` finds the policies applying to an endpoint and walks
//! them tier by tier; `calico_rules.rs`, `kubernetes_rules.rs` and `cluster_policy.rs` tell
//! whether one rule of each kind of policy matches the packet; `endpoints.rs` says what an
//! address is (its live pod, its owners, their labels and named ports); `selector.rs` is the
//! model's own Calico selector evaluator. This file holds the entry point, [`verdict`], and
//! the context all of them read.

mod calico_rules;
mod cluster_policy;
mod endpoints;
mod kubernetes_rules;
mod order;
mod selector;

use std::{collections::BTreeMap, net::IpAddr};

pub use self::selector::selector_matches;
use crate::{
    calico_reference::{
        trace::{Decision, Direction, EndpointId, Side},
        world::{CalicoWorld, Packet},
    },
    reference,
};

type Labels = BTreeMap<String, String>;

/// The verdict on `packet` in `world`.
pub fn verdict(world: &CalicoWorld, packet: &Packet) -> Decision {
    let ctx = Ctx { world, packet };
    let egress = ctx.side(packet.src, packet.dst, Direction::Egress);
    let ingress = ctx.side(packet.dst, packet.src, Direction::Ingress);
    Decision {
        packet: *packet,
        allowed: egress.allowed() && ingress.allowed(),
        egress,
        ingress,
    }
}

struct Ctx<'a> {
    world: &'a CalicoWorld,
    packet: &'a Packet,
}

impl<'a> Ctx<'a> {
    /// One side: `own` is the endpoint's address, `peer` the other end.
    fn side(&self, own: IpAddr, peer: IpAddr, direction: Direction) -> Side {
        let Some(pod) = self.live_pod(own) else {
            return Side::NotAnEndpoint;
        };
        let endpoint = EndpointId {
            namespace: reference::namespace_of(&pod.metadata),
            name: pod.metadata.name.clone().unwrap_or_default(),
        };
        if self.world.node_addrs.contains(&peer) {
            return Side::NodeTraffic { endpoint };
        }
        Side::Evaluated(self.evaluate(pod, endpoint, direction))
    }
}
