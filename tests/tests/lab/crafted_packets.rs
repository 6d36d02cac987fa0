//! Issue 17's crafted-packet campaign on real traffic: examples/bypasses through the lab with
//! the real agent, and crafted frames sent from inside the pods' namespaces on their own
//! interfaces (`AF_PACKET`, correct checksums, the pods' real MACs), counted where they would
//! be delivered by a capture on the victim's (and the client's, and the attacker's) own `eth0`.
//! Every crafted packet carries a marker naming its case, so each case is counted on its own.
//!
//! The setup (the scenario's first step checks it with ordinary probes): client, victim (TCP
//! 8000, UDP 5353) and attacker in `default`, dual-stack; the victim's ingress admits only the
//! client on those ports; the attacker's egress admits only UDP 53.
//!
//! 1. ICMP errors as "related" abuse: (a) the attacker sends UDP to the victim's port 53 (its
//!    egress allows it, the victim's ingress drops it), then errors of every kind quoting that
//!    flow reversed, to the victim; and errors to the client quoting the client's real flows;
//!    (b) errors over 576 (IPv4) / 1280 (IPv6) bytes quoting a real, open, allowed client ↔
//!    victim TCP connection, from the attacker and from the client; (c) fragmented errors.
//! 2. ICMP(v6) tracking confusion: the victim sends an error to the attacker, then the attacker
//!    sends echo requests and replies with identifier 0, type 200 and errors quoting untracked
//!    flows to the victim.
//! 3. Revocation when the server speaks first: the client's real TCP connection and UDP
//!    exchange with the victim; a step revokes the allow; the victim sends first on those
//!    tuples (crafted data, zero-window probes, datagrams), then the client keeps sending (real
//!    writes and crafted segments): no frame of those tuples reaches the victim afterwards.
//!    (The victim's own packets reach the client and are shown, not checked: its egress and
//!    the client's ingress are open, so policy allows them judged alone.)
//! 4. ND, RD and MLD (ICMPv6 130-137, 143) as a covert channel: routed hop limits (64, 254),
//!    the attacker's own, the client's and an address no pod owns as source, 1,200-byte
//!    payloads, to the victim and to the client.
//!
//! Each denied case must be delivered 0 times. Each class has positive controls, packets of
//! the same shapes that policy allows and that must arrive, so a capture that sees nothing
//! cannot pass. Captures fail on any frame the kernel dropped for them.
//! Privileged: needs root (a failure under CI=true).

use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
    net::{IpAddr, SocketAddr, TcpStream, UdpSocket},
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use palisade_tests::{
    crafted::{
        self, Capture, Frame, IPPROTO_TCP, IPPROTO_UDP, PodInterface, TCP_ACK, TCP_PSH, TCP_SYN,
    },
    lab::{Lab, LabOptions, Scenario, StepReport},
};

/// How long after a batch of frames the captures are read: forwarding between veths is
/// immediate, this is slack for a loaded machine.
const SETTLE: Duration = Duration::from_millis(300);
/// How long the revoked tuples are watched after the revocation.
const REVOKED_WINDOW: Duration = Duration::from_millis(2500);
/// Timeouts of the real sockets.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(3);

/// An address no pod owns (inside the pods' range).
const NOBODY_V6: &str = "fd00:42::99";

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum At {
    Victim,
    Client,
    Attacker,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    /// A denied case: delivered 0 times.
    Nothing,
    /// A positive control: delivered at least once.
    Delivered,
    /// Shown, not checked: policy judges these packets alone and may allow them.
    Shown,
}

struct Case {
    id: u16,
    class: &'static str,
    what: String,
    at: At,
    expect: Expect,
}

/// Every case, and what each capture received of each.
#[derive(Default)]
struct Ledger {
    cases: Vec<Case>,
    received: BTreeMap<(At, u16), usize>,
}

impl Ledger {
    /// A new case; its id is its marker.
    fn case(&mut self, class: &'static str, at: At, expect: Expect, what: String) -> u16 {
        let id = u16::try_from(self.cases.len() + 1).unwrap_or(u16::MAX);
        self.cases.push(Case {
            id,
            class,
            what,
            at,
            expect,
        });
        id
    }

    fn count(&mut self, at: At, frames: &[Frame]) {
        for (case, n) in crafted::received_by_case(frames) {
            *self.received.entry((at, case)).or_insert(0) += n;
        }
    }

    /// Each case's line, and the lines of those that failed.
    fn judge(&self) -> (Vec<String>, Vec<String>) {
        let mut lines = Vec::new();
        let mut failed = Vec::new();
        for case in &self.cases {
            let got = self.received.get(&(case.at, case.id)).copied().unwrap_or(0);
            let ok = match case.expect {
                Expect::Nothing => got == 0,
                Expect::Delivered => got > 0,
                Expect::Shown => true,
            };
            let expect = match case.expect {
                Expect::Nothing => "0",
                Expect::Delivered => ">=1",
                Expect::Shown => "any",
            };
            let line = format!(
                "{} #{:<3} {:<8} expect {:<3} got {:<3} {}: {}",
                if ok { "ok  " } else { "FAIL" },
                case.id,
                format!("{:?}", case.at).to_lowercase(),
                expect,
                got,
                case.class,
                case.what
            );
            if !ok {
                failed.push(line.clone());
            }
            lines.push(line);
        }
        (lines, failed)
    }
}

/// A pod of the lab: its addresses and its interface.
struct Pod {
    v4: IpAddr,
    v6: IpAddr,
    port: PodInterface,
}

impl Pod {
    fn open(lab: &Lab, name: &str) -> anyhow::Result<Self> {
        let plan = lab
            .pods()
            .iter()
            .find(|p| p.pod.name == name)
            .with_context(|| format!("no pod {name}"))?;
        let node = lab.nodes().first().context("no node")?.netns(lab.id());
        Ok(Self {
            v4: IpAddr::V4(plan.ipv4.context("no IPv4 address")?),
            v6: IpAddr::V6(plan.ipv6.context("no IPv6 address")?),
            port: PodInterface::open(&plan.netns(lab.id()), "eth0", &node, &plan.host_if())?,
        })
    }

    fn ip(&self, family: u8) -> IpAddr {
        if family == 4 { self.v4 } else { self.v6 }
    }
}

/// The three pods and a capture on each one's interface.
struct World {
    client: Pod,
    victim: Pod,
    attacker: Pod,
    at_client: Capture,
    at_victim: Capture,
    at_attacker: Capture,
}

impl World {
    /// Waits for the frames in flight, then counts what each capture received.
    fn settle(&self, ledger: &mut Ledger) -> anyhow::Result<()> {
        std::thread::sleep(SETTLE);
        ledger.count(At::Client, &self.at_client.drain()?);
        ledger.count(At::Victim, &self.at_victim.drain()?);
        ledger.count(At::Attacker, &self.at_attacker.drain()?);
        Ok(())
    }
}

/// The client's real connections to the victim, in one family.
struct Connections {
    tcp: TcpStream,
    /// The client's TCP port.
    tcp_port: u16,
    udp: UdpSocket,
    udp_port: u16,
}

fn connect(client: &Pod, victim: &Pod, family: u8) -> anyhow::Result<Connections> {
    let tcp_to = SocketAddr::new(victim.ip(family), 8000);
    let udp_to = SocketAddr::new(victim.ip(family), 5353);
    let (tcp, udp) = client.port.netns.run(move || -> anyhow::Result<_> {
        let tcp = TcpStream::connect_timeout(&tcp_to, SOCKET_TIMEOUT)
            .with_context(|| format!("connecting to {tcp_to}"))?;
        let any: SocketAddr = if family == 4 {
            "0.0.0.0:0".parse()?
        } else {
            "[::]:0".parse()?
        };
        let udp = UdpSocket::bind(any)?;
        udp.connect(udp_to)?;
        Ok((tcp, udp))
    })??;
    for socket_timeout in [
        tcp.set_read_timeout(Some(SOCKET_TIMEOUT)),
        tcp.set_write_timeout(Some(SOCKET_TIMEOUT)),
        udp.set_read_timeout(Some(SOCKET_TIMEOUT)),
    ] {
        socket_timeout?;
    }
    let tcp_port = tcp.local_addr()?.port();
    let udp_port = udp.local_addr()?.port();
    Ok(Connections {
        tcp,
        tcp_port,
        udp,
        udp_port,
    })
}

impl Connections {
    /// Sends `payload` over both and reads the victim's echoes: the connections work.
    fn exchange(&mut self, payload: &[u8]) -> anyhow::Result<()> {
        self.tcp.write_all(payload)?;
        let mut echo = vec![0u8; payload.len()];
        self.tcp
            .read_exact(&mut echo)
            .context("reading the victim's TCP echo")?;
        anyhow::ensure!(echo == payload, "the TCP echo differs");
        self.udp.send(payload)?;
        let mut buffer = [0u8; 2048];
        let n = self
            .udp
            .recv(&mut buffer)
            .context("reading the victim's UDP echo")?;
        anyhow::ensure!(&buffer[..n] == payload, "the UDP echo differs");
        Ok(())
    }
}

/// ICMP errors of every kind in a family: type, code, the 4 bytes after the checksum, name.
fn error_kinds(family: u8) -> [(u8, u8, [u8; 4], &'static str); 4] {
    if family == 4 {
        [
            (3, 3, [0; 4], "destination unreachable"),
            (3, 4, [0, 0, 0x05, 0x78], "fragmentation needed"),
            (11, 0, [0; 4], "time exceeded"),
            (12, 0, [20, 0, 0, 0], "parameter problem"),
        ]
    } else {
        [
            (1, 4, [0; 4], "destination unreachable"),
            (2, 0, [0, 0, 0x05, 0x00], "packet too big"),
            (3, 0, [0; 4], "time exceeded"),
            (4, 0, [0, 0, 0, 8], "parameter problem"),
        ]
    }
}

/// The family's destination-unreachable error.
fn unreachable(family: u8) -> (u8, u8, [u8; 4]) {
    let (kind, code, rest, _) = error_kinds(family)[0];
    (kind, code, rest)
}

/// A quoted UDP packet `src:sport` → `dst:dport` of `len` payload bytes of `case`'s marker.
fn quoted_udp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, case: u16, len: usize) -> Vec<u8> {
    let datagram = crafted::udp(src, sport, dst, dport, &crafted::filler(case, len));
    crafted::ip(src, dst, IPPROTO_UDP, 64, 0x1234, &datagram)
}

/// A quoted TCP segment (ACK and data) `src:sport` → `dst:dport`.
fn quoted_tcp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, case: u16, len: usize) -> Vec<u8> {
    let segment = crafted::tcp(
        src,
        sport,
        dst,
        dport,
        0x0bad_5eed,
        1,
        TCP_ACK | TCP_PSH,
        502,
        &crafted::filler(case, len),
    );
    crafted::ip(src, dst, IPPROTO_TCP, 64, 0x1235, &segment)
}

/// An error of `total` bytes (IP header included) quoting a TCP segment whose payload fills it.
fn sized_error(
    src: IpAddr,
    dst: IpAddr,
    (kind, code, rest): (u8, u8, [u8; 4]),
    quote: (IpAddr, u16, IpAddr, u16),
    case: u16,
    total: usize,
) -> Vec<u8> {
    let headers = if src.is_ipv4() {
        20 + 8 + 20 + 20
    } else {
        40 + 8 + 40 + 20
    };
    let quoted = quoted_tcp(quote.0, quote.1, quote.2, quote.3, case, total - headers);
    let packet = crafted::icmp_error(src, dst, kind, code, rest, &quoted);
    debug_assert_eq!(packet.len(), total);
    packet
}

/// The same error of `total` bytes as two fragments.
fn fragmented_error(
    src: IpAddr,
    dst: IpAddr,
    quote: (IpAddr, u16, IpAddr, u16),
    case: u16,
    total: usize,
    id: u16,
) -> Vec<Vec<u8>> {
    let packet = sized_error(src, dst, unreachable(family_of(src)), quote, case, total);
    let header = if src.is_ipv4() { 20 } else { 40 };
    let message = &packet[header..];
    crafted::fragments(
        src,
        dst,
        crafted::icmp_protocol(src),
        64,
        id,
        message,
        message.len() / 2,
    )
}

fn family_of(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 4 } else { 6 }
}

/// An ICMP message that is not an error (echo, unknown type, ND/MLD): `rest` then `body`.
fn icmp_packet(src: IpAddr, dst: IpAddr, kind: u8, hop: u8, rest: [u8; 4], body: &[u8]) -> Vec<u8> {
    let message = crafted::icmp(src, dst, kind, 0, rest, body);
    crafted::ip(src, dst, crafted::icmp_protocol(src), hop, 0x2222, &message)
}

/// Class 1: ICMP errors that must not pass as related.
fn icmp_errors(
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

/// Class 2: ICMP(v6) tracking confusion after the victim sent an error.
fn tracking_confusion(world: &World, ledger: &mut Ledger) -> anyhow::Result<()> {
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

/// Class 4: neighbour and router discovery and MLD, routed, as a covert channel.
fn covert_plumbing(world: &World, ledger: &mut Ledger) -> anyhow::Result<()> {
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
fn speak_after_revocation(
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

fn check_step(report: &StepReport) -> anyhow::Result<()> {
    eprintln!("{}", report.render_table());
    anyhow::ensure!(
        report.programmed_ms.is_some(),
        "step {} not programmed",
        report.number
    );
    let wrong: Vec<String> = report
        .probes
        .iter()
        .filter(|p| !p.ok)
        .map(|p| {
            format!(
                "{} -> {}:{}/{} v{}: expected {:?}, observed {:?} ({})",
                p.from,
                p.to,
                p.port,
                p.protocol,
                p.family.number(),
                p.expect,
                p.observed,
                p.detail
            )
        })
        .collect();
    anyhow::ensure!(
        wrong.is_empty(),
        "step {}: the lab's own probes mismatched (the setup is wrong):\n{}",
        report.number,
        wrong.join("\n")
    );
    Ok(())
}

/// Everything between the lab's start and its finish.
fn campaign(lab: &mut Lab, scenario: &Scenario) -> anyhow::Result<()> {
    anyhow::ensure!(scenario.steps.len() == 2, "examples/bypasses has two steps");
    check_step(&lab.run_step(1, &scenario.steps[0])?)?;

    let client = Pod::open(lab, "client")?;
    let victim = Pod::open(lab, "victim")?;
    let attacker = Pod::open(lab, "attacker")?;
    let world = World {
        at_client: client.port.capture()?,
        at_victim: victim.port.capture()?,
        at_attacker: attacker.port.capture()?,
        client,
        victim,
        attacker,
    };
    let mut ledger = Ledger::default();
    let mut connections = [
        connect(&world.client, &world.victim, 4)?,
        connect(&world.client, &world.victim, 6)?,
    ];
    for (family, conns) in [4u8, 6].into_iter().zip(connections.iter_mut()) {
        let case = ledger.case(
            "3 revoked",
            At::Victim,
            Expect::Delivered,
            format!("IPv{family} control: the client's real TCP and UDP to the victim before the revocation"),
        );
        conns.exchange(&crafted::marker(case))?;
    }
    world.settle(&mut ledger)?;

    // ND/MLD first: it needs no flow, and on a datapath that still tracked ICMP errors the
    // errors of classes 1 and 2 would leave entries that pass its packets as replies, so a
    // parser fix could not be judged on its own.
    covert_plumbing(&world, &mut ledger)?;
    world.settle(&mut ledger)?;
    icmp_errors(&world, &mut ledger, &connections)?;
    world.settle(&mut ledger)?;
    tracking_confusion(&world, &mut ledger)?;
    world.settle(&mut ledger)?;

    // The connections are open and allowed: they still work after all this (an error that
    // reached the client's sockets would break them; the cases above say which).
    let mut failed = Vec::new();
    for (family, conns) in [4u8, 6].into_iter().zip(connections.iter_mut()) {
        if let Err(e) = conns.exchange(b"still open") {
            failed.push(format!(
                "IPv{family}: the client's real connections to the victim broke during classes 1, 2 and 4: {e:#}"
            ));
        }
    }

    check_step(&lab.run_step(2, &scenario.steps[1])?)?;
    failed.extend(speak_after_revocation(
        &world,
        &mut ledger,
        &mut connections,
    )?);

    let (lines, case_failures) = ledger.judge();
    eprintln!("{}", lines.join("\n"));
    failed.extend(case_failures);
    let of = |expect| ledger.cases.iter().filter(|c| c.expect == expect).count();
    eprintln!(
        "{} cases ({} denied, {} controls, {} shown), {} failed",
        ledger.cases.len(),
        of(Expect::Nothing),
        of(Expect::Delivered),
        of(Expect::Shown),
        failed.len()
    );
    anyhow::ensure!(
        failed.is_empty(),
        "crafted packets: {} failures (denied cases must be delivered 0 times, controls at least once):\n{}",
        failed.len(),
        failed.join("\n")
    );
    Ok(())
}

#[test]
fn crafted_packets_reach_nothing_they_are_denied() -> anyhow::Result<()> {
    let Some(_turn) = crate::lab_turn("crafted_packets_reach_nothing_they_are_denied") else {
        return Ok(());
    };
    let started = Instant::now();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/bypasses/scenario.yaml");
    let scenario = Scenario::from_file(&path)?;
    let mut lab = Lab::start(&scenario, &LabOptions::default())?;
    let outcome = campaign(&mut lab, &scenario);
    let tail = lab.agent_log_tail();
    let report = lab.finish();
    eprintln!("crafted packets: {:.1} s", started.elapsed().as_secs_f64());
    outcome.with_context(|| format!("agent log:\n{}", tail.join("\n")))?;
    report?;
    Ok(())
}
