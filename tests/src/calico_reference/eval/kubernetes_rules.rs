//! Kubernetes NetworkPolicy rules, placed by Calico in tier `default` and matched here by
//! [`crate::reference`]'s own functions, so that the two oracles cannot drift apart on
//! Kubernetes semantics. Separate because none of Calico's rule matching applies to them.

use k8s_openapi::api::networking::v1::NetworkPolicy;

use super::{Ctx, endpoints::protocol_name};
use crate::{
    calico_reference::{resources::Action, trace::Direction, world::Packet},
    reference,
};

impl<'a> Ctx<'a> {
    // ---- Kubernetes NetworkPolicy rules: matched by crate::reference itself ----

    pub(super) fn knp_rules(
        &self,
        np: &NetworkPolicy,
        direction: Direction,
    ) -> Vec<(usize, Action, Option<&'static str>)> {
        let p = self.packet;
        let spec = np.spec.as_ref();
        let dst_pod = self.live_pod(p.dst);
        match direction {
            Direction::Ingress => {
                let src_pod = self.live_pod(p.src);
                spec.and_then(|s| s.ingress.as_ref())
                    .into_iter()
                    .flatten()
                    .enumerate()
                    .map(|(i, rule)| {
                        let mismatch = if !reference::peers_match(
                            &self.world.namespaces,
                            rule.from.as_deref(),
                            np,
                            p.src,
                            src_pod,
                        ) {
                            Some("from")
                        } else if !reference::ports_match(
                            rule.ports.as_deref(),
                            &k8s_flow(p),
                            dst_pod,
                        ) {
                            Some("ports")
                        } else {
                            None
                        };
                        (i, Action::Allow, mismatch)
                    })
                    .collect()
            }
            Direction::Egress => spec
                .and_then(|s| s.egress.as_ref())
                .into_iter()
                .flatten()
                .enumerate()
                .map(|(i, rule)| {
                    let mismatch = if !reference::peers_match(
                        &self.world.namespaces,
                        rule.to.as_deref(),
                        np,
                        p.dst,
                        dst_pod,
                    ) {
                        Some("to")
                    } else if !reference::ports_match(rule.ports.as_deref(), &k8s_flow(p), dst_pod)
                    {
                        Some("ports")
                    } else {
                        None
                    };
                    (i, Action::Allow, mismatch)
                })
                .collect(),
        }
    }
}

/// The packet as the Kubernetes model sees it (a protocol without ports has no name there,
/// so no `ports` entry matches it).
fn k8s_flow(packet: &Packet) -> reference::Flow {
    reference::Flow {
        src: packet.src,
        dst: packet.dst,
        protocol: protocol_name(packet.protocol).unwrap_or(""),
        port: packet.dst_port,
    }
}
