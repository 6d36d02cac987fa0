//! Class 1: ICMP errors that must not pass as related to a flow.

use std::{
    net::{SocketAddr, UdpSocket},
    time::Duration,
};

use palisade_tests::crafted;

use super::ledger::{At, Expect, Ledger};
use super::packets::{
    error_kinds, fragmented_error, quoted_tcp, quoted_udp, sized_error, unreachable,
};
use super::world::{Connections, World};

/// Class 1: ICMP errors that must not pass as related.
pub(super) fn icmp_errors(
    world: &World,
    ledger: &mut Ledger,
    connections: &[Connections; 2],
) -> anyhow::Result<()> {
    const CLASS: &str = "1 errors";
    let World {
        client,
        victim,
        attacker,
        ..
    } = world;
    for (family, conns) in [4u8, 6].into_iter().zip(connections) {
        let (c, v, a) = (client.ip(family), victim.ip(family), attacker.ip(family));
        let fam = format!("IPv{family}");

        // (a) The attacker's own allowed flow, to the victim's port 53 (dropped there).
        let probe = ledger.case(
            CLASS,
            At::Victim,
            Expect::Nothing,
            format!("{fam} attacker's UDP to victim:53 (the flow the errors quote)"),
        );
        let to = SocketAddr::new(v, 53);
        let socket = attacker.port.netns.run(move || {
            let any: SocketAddr = if family == 4 {
                SocketAddr::from(([0, 0, 0, 0], 0))
            } else {
                SocketAddr::from(([0u16; 8], 0))
            };
            UdpSocket::bind(any)
        })??;
        socket.send_to(&crafted::filler(probe, 64), to)?;
        let sport = socket.local_addr()?.port();
        std::thread::sleep(Duration::from_millis(50));
        for (kind, code, rest, name) in error_kinds(family) {
            let case = ledger.case(
                CLASS,
                At::Victim,
                Expect::Nothing,
                format!("{fam} attacker -> victim {name} quoting victim:53 -> attacker:{sport} (its own UDP 53, reversed)"),
            );
            let quoted = quoted_udp(v, 53, a, sport, case, 64);
            attacker
                .port
                .send(&crafted::icmp_error(a, v, kind, code, rest, &quoted))?;
            for (proto, port, dport) in
                [("TCP", conns.tcp_port, 8000), ("UDP", conns.udp_port, 5353)]
            {
                let case = ledger.case(
                    CLASS,
                    At::Client,
                    Expect::Nothing,
                    format!("{fam} attacker -> client {name} quoting client:{port} -> victim:{dport} {proto} (the client's real flow)"),
                );
                let quoted = if proto == "TCP" {
                    quoted_tcp(c, port, v, dport, case, 64)
                } else {
                    quoted_udp(c, port, v, dport, case, 64)
                };
                attacker
                    .port
                    .send(&crafted::icmp_error(a, c, kind, code, rest, &quoted))?;
            }
        }
        // Controls: errors from the quoted packet's destination about a flow the receiver's
        // own check allowed.
        let (kind, code, rest) = unreachable(family);
        let case = ledger.case(
            CLASS,
            At::Client,
            Expect::Delivered,
            format!(
                "{fam} control: victim -> client unreachable quoting client:{} -> victim:8000 TCP",
                conns.tcp_port
            ),
        );
        let quoted = quoted_tcp(c, conns.tcp_port, v, 8000, case, 64);
        victim
            .port
            .send(&crafted::icmp_error(v, c, kind, code, rest, &quoted))?;
        let case = ledger.case(
            CLASS,
            At::Victim,
            Expect::Delivered,
            format!(
                "{fam} control: client -> victim unreachable quoting victim:5353 -> client:{} UDP",
                conns.udp_port
            ),
        );
        let quoted = quoted_udp(v, 5353, c, conns.udp_port, case, 64);
        client
            .port
            .send(&crafted::icmp_error(c, v, kind, code, rest, &quoted))?;

        // (b) Errors larger than a router may send, quoting the real, open TCP connection as
        // the victim's reply; from the attacker, and from the client (whose egress is open:
        // only the size keeps them out).
        let reply = (v, 8000, c, conns.tcp_port);
        let (limit, sizes) = if family == 4 {
            (576, [577, 1000])
        } else {
            (1280, [1281, 1400])
        };
        for (from, who) in [(attacker, "attacker"), (client, "client")] {
            for total in sizes {
                for (kind, code, rest, name) in &error_kinds(family)[..2] {
                    let case = ledger.case(
                        CLASS,
                        At::Victim,
                        Expect::Nothing,
                        format!("{fam} {who} -> victim {total}-byte {name} (over {limit}) quoting victim:8000 -> client:{} TCP (open, allowed)", conns.tcp_port),
                    );
                    let packet = sized_error(
                        from.ip(family),
                        v,
                        (*kind, *code, *rest),
                        reply,
                        case,
                        total,
                    );
                    from.port.send(&packet)?;
                }
            }
        }
        let total = limit - 16;
        let case = ledger.case(
            CLASS,
            At::Victim,
            Expect::Delivered,
            format!("{fam} control: client -> victim {total}-byte unreachable quoting victim:8000 -> client:{} TCP", conns.tcp_port),
        );
        client
            .port
            .send(&sized_error(c, v, unreachable(family), reply, case, total))?;

        // (c) Fragmented errors quoting the same connection (and the attacker's own flow).
        for (from, who) in [(attacker, "attacker"), (client, "client")] {
            let case = ledger.case(
                CLASS,
                At::Victim,
                Expect::Nothing,
                format!("{fam} {who} -> victim unreachable in 2 fragments quoting victim:8000 -> client:{} TCP", conns.tcp_port),
            );
            let total = if family == 4 { 500 } else { 1000 };
            let id = 0x7000 + case;
            from.port.send_all(&fragmented_error(
                from.ip(family),
                v,
                reply,
                case,
                total,
                id,
            ))?;
        }
        let case = ledger.case(
            CLASS,
            At::Victim,
            Expect::Nothing,
            format!("{fam} attacker -> victim unreachable in 2 fragments quoting victim:53 -> attacker:{sport} UDP (its own flow)"),
        );
        let total = if family == 4 { 500 } else { 1000 };
        attacker.port.send_all(&fragmented_error(
            a,
            v,
            (v, 53, a, sport),
            case,
            total,
            0x7000 + case,
        ))?;
    }
    Ok(())
}
