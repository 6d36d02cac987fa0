//! Class 2: ICMP(v6) tracking confusion after the victim sent an error.

use std::time::Duration;

use palisade_tests::crafted;

use super::ledger::{At, Expect, Ledger};
use super::packets::{error_kinds, icmp_packet, quoted_tcp, quoted_udp, unreachable};
use super::world::World;

/// Class 2: ICMP(v6) tracking confusion after the victim sent an error.
pub(super) fn tracking_confusion(world: &World, ledger: &mut Ledger) -> anyhow::Result<()> {
    const CLASS: &str = "2 tracking";
    let World {
        client,
        victim,
        attacker,
        ..
    } = world;
    for family in [4u8, 6] {
        let (c, v, a) = (client.ip(family), victim.ip(family), attacker.ip(family));
        let fam = format!("IPv{family}");
        let (kind, code, rest) = unreachable(family);
        let case = ledger.case(
            CLASS,
            At::Attacker,
            Expect::Delivered,
            format!("{fam} control: the victim's own error to the attacker (unreachable quoting attacker:40000 -> victim:7777 UDP)"),
        );
        let quoted = quoted_udp(a, 40000, v, 7777, case, 64);
        victim
            .port
            .send(&crafted::icmp_error(v, a, kind, code, rest, &quoted))?;
        std::thread::sleep(Duration::from_millis(50));

        let (request, reply) = if family == 4 { (8, 0) } else { (128, 129) };
        for (kind, name) in [
            (request, "echo request id 0"),
            (reply, "echo reply id 0"),
            (200, "type 200"),
        ] {
            let case = ledger.case(
                CLASS,
                At::Victim,
                Expect::Nothing,
                format!("{fam} attacker -> victim {name}, after the victim's error"),
            );
            attacker.port.send(&icmp_packet(
                a,
                v,
                kind,
                64,
                [0; 4],
                &crafted::filler(case, 64),
            ))?;
        }
        for (quote, name) in [
            (
                "UDP",
                "victim:7777 -> attacker:40000 UDP (the flow the victim's error was about, reversed)",
            ),
            ("TCP", "victim:8000 -> attacker:40001 TCP (never sent)"),
        ] {
            for (kind, code, rest, error) in error_kinds(family) {
                let case = ledger.case(
                    CLASS,
                    At::Victim,
                    Expect::Nothing,
                    format!("{fam} attacker -> victim {error} quoting {name}"),
                );
                let quoted = if quote == "UDP" {
                    quoted_udp(v, 7777, a, 40000, case, 64)
                } else {
                    quoted_tcp(v, 8000, a, 40001, case, 64)
                };
                attacker
                    .port
                    .send(&crafted::icmp_error(a, v, kind, code, rest, &quoted))?;
            }
        }
        for (kind, name) in [(request, "echo request id 0"), (200, "type 200")] {
            let case = ledger.case(
                CLASS,
                At::Client,
                Expect::Delivered,
                format!("{fam} control: victim -> client {name} (neither side isolated)"),
            );
            victim.port.send(&icmp_packet(
                v,
                c,
                kind,
                64,
                [0; 4],
                &crafted::filler(case, 64),
            ))?;
        }
    }
    Ok(())
}
