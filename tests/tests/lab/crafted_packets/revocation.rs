//! Class 3: the revoked tuples after the revocation, the victim speaking first.

use std::{
    collections::BTreeMap,
    io::Write as _,
    net::IpAddr,
    time::{Duration, Instant},
};

use palisade_tests::crafted::{self, Frame, IPPROTO_TCP, IPPROTO_UDP, TCP_ACK, TCP_PSH, TCP_SYN};

use super::ledger::{At, Expect, Ledger};
use super::world::{Connections, World};

/// How long the revoked tuples are watched after the revocation.
const REVOKED_WINDOW: Duration = Duration::from_millis(2500);

/// Frames received (not sent) with exactly this tuple.
fn tuple_frames(frames: &[Frame], src: (IpAddr, u16), dst: (IpAddr, u16), protocol: u8) -> usize {
    frames
        .iter()
        .filter(|f| !f.outgoing)
        .filter(|f| crafted::tuple(&f.data) == Some((src.0, dst.0, protocol, src.1, dst.1)))
        .count()
}

/// Class 3 after the revocation: the victim speaks first on the revoked tuples, the client
/// keeps sending; returns the failures of the tuple counts.
pub(super) fn speak_after_revocation(
    world: &World,
    ledger: &mut Ledger,
    connections: &mut [Connections; 2],
) -> anyhow::Result<Vec<String>> {
    const CLASS: &str = "3 revoked";
    let World { client, victim, .. } = world;
    // What the revocation step itself sent (its probes) is not counted.
    world.at_victim.drain()?;
    world.at_client.drain()?;
    let window = Instant::now();
    let mut victim_frames = Vec::new();
    let mut client_frames = Vec::new();
    let mut cases = BTreeMap::new();
    for family in [4u8, 6] {
        let fam = format!("IPv{family}");
        let mut add = |ledger: &mut Ledger, at, expect, what: String| {
            let id = ledger.case(CLASS, at, expect, format!("{fam} {what}"));
            cases.insert((family, what), id);
        };
        // The victim's packets are not the bypass: with its egress and the client's ingress
        // open, policy allows them one by one once the first has met the revoked entry and cut
        // it (that first one is dropped). What must not happen is what they used to cause: the
        // client's packets passing to the victim as their replies.
        for what in [
            "victim -> client TCP data (ACK|PSH) on the revoked connection",
            "victim -> client UDP on the revoked exchange",
        ] {
            add(ledger, At::Client, Expect::Shown, what.to_owned());
        }
        for what in [
            "client -> victim real TCP write on the revoked connection",
            "client -> victim real UDP send on the revoked exchange",
            "client -> victim crafted TCP ACK|PSH on the revoked tuple",
            "client -> victim crafted UDP on the revoked tuple",
        ] {
            add(ledger, At::Victim, Expect::Nothing, what.to_owned());
        }
        add(
            ledger,
            At::Victim,
            Expect::Delivered,
            "control: client -> victim UDP to 5354 (still allowed)".to_owned(),
        );
        add(
            ledger,
            At::Victim,
            Expect::Delivered,
            "control: client -> victim TCP SYN to 8001 (still allowed)".to_owned(),
        );
        add(
            ledger,
            At::Client,
            Expect::Delivered,
            "control: victim -> client UDP from 5355 (a new flow, victim's egress open)".to_owned(),
        );
    }
    let id = |family: u8, what: &str| cases.get(&(family, what.to_owned())).copied().unwrap_or(0);
    // Three rounds: the victim first, then the client, each time.
    for round in 0u32..3 {
        for (family, conns) in [4u8, 6].into_iter().zip(connections.iter_mut()) {
            let (c, v) = (client.ip(family), victim.ip(family));
            let seq = 0x4000_0000 + round * 1000;
            // The victim speaks first: data, a zero-window probe, a datagram.
            let case = id(
                family,
                "victim -> client TCP data (ACK|PSH) on the revoked connection",
            );
            victim.port.send(&crafted::ip(
                v,
                c,
                IPPROTO_TCP,
                64,
                1,
                &crafted::tcp(
                    v,
                    8000,
                    c,
                    conns.tcp_port,
                    seq,
                    1,
                    TCP_ACK | TCP_PSH,
                    502,
                    &crafted::marker(case),
                ),
            ))?;
            victim.port.send(&crafted::ip(
                v,
                c,
                IPPROTO_TCP,
                64,
                2,
                &crafted::tcp(
                    v,
                    8000,
                    c,
                    conns.tcp_port,
                    seq.wrapping_sub(1),
                    1,
                    TCP_ACK,
                    0,
                    &[],
                ),
            ))?;
            let case = id(family, "victim -> client UDP on the revoked exchange");
            victim.port.send(&crafted::ip(
                v,
                c,
                IPPROTO_UDP,
                64,
                3,
                &crafted::udp(v, 5353, c, conns.udp_port, &crafted::marker(case)),
            ))?;
            // Then the client keeps sending, through its real sockets and crafted.
            let case = id(
                family,
                "client -> victim real TCP write on the revoked connection",
            );
            // The real sockets may refuse (a pending error, a write timeout): the crafted
            // segments below carry the same tuple anyway.
            if let Err(e) = conns.tcp.write_all(&crafted::marker(case)) {
                eprintln!("note: IPv{family} real TCP write after the revocation: {e}");
            }
            let case = id(
                family,
                "client -> victim real UDP send on the revoked exchange",
            );
            if let Err(e) = conns.udp.send(&crafted::marker(case)) {
                eprintln!("note: IPv{family} real UDP send after the revocation: {e}");
            }
            let case = id(
                family,
                "client -> victim crafted TCP ACK|PSH on the revoked tuple",
            );
            client.port.send(&crafted::ip(
                c,
                v,
                IPPROTO_TCP,
                64,
                4,
                &crafted::tcp(
                    c,
                    conns.tcp_port,
                    v,
                    8000,
                    seq,
                    1,
                    TCP_ACK | TCP_PSH,
                    502,
                    &crafted::marker(case),
                ),
            ))?;
            let case = id(family, "client -> victim crafted UDP on the revoked tuple");
            client.port.send(&crafted::ip(
                c,
                v,
                IPPROTO_UDP,
                64,
                5,
                &crafted::udp(c, conns.udp_port, v, 5353, &crafted::marker(case)),
            ))?;
            // Controls.
            let case = id(
                family,
                "control: client -> victim UDP to 5354 (still allowed)",
            );
            client.port.send(&crafted::ip(
                c,
                v,
                IPPROTO_UDP,
                64,
                6,
                &crafted::udp(c, 45454, v, 5354, &crafted::marker(case)),
            ))?;
            let case = id(
                family,
                "control: client -> victim TCP SYN to 8001 (still allowed)",
            );
            client.port.send(&crafted::ip(
                c,
                v,
                IPPROTO_TCP,
                64,
                7,
                &crafted::tcp(
                    c,
                    45455,
                    v,
                    8001,
                    seq,
                    0,
                    TCP_SYN,
                    502,
                    &crafted::marker(case),
                ),
            ))?;
            let case = id(
                family,
                "control: victim -> client UDP from 5355 (a new flow, victim's egress open)",
            );
            victim.port.send(&crafted::ip(
                v,
                c,
                IPPROTO_UDP,
                64,
                8,
                &crafted::udp(v, 5355, c, 45456, &crafted::marker(case)),
            ))?;
        }
        std::thread::sleep(Duration::from_millis(400));
        victim_frames.extend(world.at_victim.drain()?);
        client_frames.extend(world.at_client.drain()?);
    }
    // Keep watching (retransmissions of the real writes) until the window closes.
    let rest = REVOKED_WINDOW.saturating_sub(window.elapsed());
    std::thread::sleep(rest);
    victim_frames.extend(world.at_victim.drain()?);
    client_frames.extend(world.at_client.drain()?);
    ledger.count(At::Victim, &victim_frames);
    ledger.count(At::Client, &client_frames);

    let mut failed = Vec::new();
    for (family, conns) in [4u8, 6].into_iter().zip(connections.iter()) {
        let (c, v) = (client.ip(family), victim.ip(family));
        for (protocol, name, cport, vport) in [
            (IPPROTO_TCP, "TCP", conns.tcp_port, 8000),
            (IPPROTO_UDP, "UDP", conns.udp_port, 5353),
        ] {
            let to_victim = tuple_frames(&victim_frames, (c, cport), (v, vport), protocol);
            let to_client = tuple_frames(&client_frames, (v, vport), (c, cport), protocol);
            let line = format!(
                "IPv{family} {name} {c}:{cport} -> {v}:{vport} in the {} ms after the revocation: {to_victim} frames reached the victim (expect 0); {to_client} of the reverse tuple reached the client (not checked: policy allows the victim's packets alone)",
                REVOKED_WINDOW.as_millis()
            );
            eprintln!(
                "{} 3 revoked: {line}",
                if to_victim == 0 { "ok  " } else { "FAIL" }
            );
            if to_victim != 0 {
                failed.push(line);
            }
        }
    }
    Ok(failed)
}
