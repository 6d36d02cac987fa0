//! Class 4: neighbour and router discovery and MLD, routed, as a covert channel.

use std::net::IpAddr;

use palisade_tests::crafted;

use super::ledger::{At, Expect, Ledger};
use super::packets::icmp_packet;
use super::world::World;

/// An address no pod owns (inside the pods' range).
const NOBODY_V6: &str = "fd00:42::99";

/// Class 4: neighbour and router discovery and MLD, routed, as a covert channel.
pub(super) fn covert_plumbing(world: &World, ledger: &mut Ledger) -> anyhow::Result<()> {
    const CLASS: &str = "4 ND/MLD";
    let World {
        client,
        victim,
        attacker,
        ..
    } = world;
    let nobody: IpAddr = NOBODY_V6.parse()?;
    let sources = [
        (attacker.v6, "attacker's own"),
        (client.v6, "client's (spoofed)"),
        (nobody, "nobody's"),
    ];
    let targets = [
        (victim.v6, At::Victim, "victim"),
        (client.v6, At::Client, "client"),
    ];
    for kind in [130u8, 131, 132, 133, 134, 135, 136, 137, 143] {
        for hop in [64u8, 254] {
            for (src, source) in sources {
                for (dst, at, target) in targets {
                    let case = ledger.case(
                        CLASS,
                        at,
                        Expect::Nothing,
                        format!("ICMPv6 type {kind} hop limit {hop} from {source} address to the {target}, 1,200 bytes"),
                    );
                    attacker.port.send(&icmp_packet(
                        src,
                        dst,
                        kind,
                        hop,
                        [0; 4],
                        &crafted::filler(case, 1200),
                    ))?;
                }
            }
        }
    }
    for kind in [130u8, 135] {
        let case = ledger.case(
            CLASS,
            At::Client,
            Expect::Delivered,
            format!("control: victim -> client ICMPv6 type {kind} hop limit 64, 1,200 bytes (neither side isolated)"),
        );
        victim.port.send(&icmp_packet(
            victim.v6,
            client.v6,
            kind,
            64,
            [0; 4],
            &crafted::filler(case, 1200),
        ))?;
    }
    Ok(())
}
