//! Calico's port lists (`ports`, `notPorts`, and their source-side twins), as both the
//! destination-port cells and the source-port classes match them.

use super::PortRule;
use crate::calico::resources::Protocol as CalicoProtocol;

/// Protocols whose packets carry ports.
pub(super) const PORT_PROTOCOLS: [CalicoProtocol; 4] = [
    CalicoProtocol::TCP,
    CalicoProtocol::UDP,
    CalicoProtocol::SCTP,
    CalicoProtocol::UDPLITE,
];

/// Calico's `ports` and `notPorts` of one side of a rule, for a packet's port on that side:
/// packets without ports satisfy neither list. `peer_named`: whether the peer's port of
/// that name is the packet's.
pub(super) fn port_lists_match(
    ports: Option<&[PortRule]>,
    not_ports: Option<&[PortRule]>,
    protocol: u8,
    port: u16,
    peer_named: impl Fn(&str) -> bool,
) -> bool {
    let has_ports = CalicoProtocol(protocol).has_ports();
    let any = |list: &[PortRule]| {
        list.iter().any(|entry| match entry {
            PortRule::Range { first, last } => (*first..=*last).contains(&port),
            PortRule::Exact {
                protocol: p,
                port: n,
            } => *p == protocol && *n == port,
            PortRule::PeerNamed(name) => peer_named(name),
        })
    };
    if let Some(ports) = ports
        && !(has_ports && any(ports))
    {
        return false;
    }
    if let Some(not_ports) = not_ports
        && (!has_ports || any(not_ports))
    {
        return false;
    }
    true
}
