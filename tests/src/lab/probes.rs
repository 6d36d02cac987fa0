//! Probes: a real TCP connection, UDP exchange or ICMP echo from one pod to another, which
//! counts as `allow` only when the payload comes back unchanged within the timeout. A TCP or
//! UDP probe can keep its connection for a later step to exchange over again ([`Kept`]).
//!
//! The socket is created on a thread inside the source pod's namespace (so the traffic leaves
//! from that pod) and then driven by tokio, so all probes of a step run concurrently. A probe
//! from a host endpoint is made in its node's namespace with the socket bound to the host
//! endpoint's address, so its packets leave with that source address.

use std::{
    io,
    net::{IpAddr, SocketAddr, TcpStream, UdpSocket},
    sync::atomic::{AtomicU16, Ordering},
    time::{Duration, Instant},
};

use socket2::{Domain, Protocol as SockProtocol, Socket, Type};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    time::timeout,
};

use super::{
    netns::Netns,
    scenario::{Probe, Protocol, Verdict},
};

/// UDP has no retransmission of its own: resend this often until the deadline, in case the
/// first datagram was lost while a neighbour entry was being resolved.
const UDP_RESEND: Duration = Duration::from_millis(250);

/// What a probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub verdict: Verdict,
    /// Why: `echoed`, `timeout`, `refused`, ...
    pub detail: String,
    pub elapsed_ms: u64,
}

/// A probe whose socket exists (in the source namespace) but has sent nothing yet.
pub struct Prepared {
    socket: PreparedSocket,
    destination: SocketAddr,
    payload: Vec<u8>,
    timeout: Duration,
    /// A DNS query instead of an echo (`dnsQuery`).
    dns: Option<DnsQuery>,
}

/// What a `dnsQuery` probe asks.
struct DnsQuery {
    id: u16,
    name: String,
    v6: bool,
}

enum PreparedSocket {
    Tcp(TcpStream),
    Udp(UdpSocket),
    /// A raw ICMP (or ICMPv6) socket, driven as a datagram socket.
    Icmp(UdpSocket),
}

/// A connection a probe kept open (`keep`), for a later probe to exchange over (`over`).
pub enum Kept {
    Tcp(tokio::net::TcpStream),
    Udp(tokio::net::UdpSocket),
}

/// Why the lab refuses an SCTP probe, and where SCTP is tested instead.
pub fn sctp_unsupported(probe: &Probe) -> anyhow::Error {
    anyhow::anyhow!(
        "{} -> {}:{}/SCTP: the lab does not run SCTP probes (this kernel has no SCTP sockets); \
         `cargo test -p palisade-tests --test conformance_bpf` checks SCTP scenarios at the BPF \
         level",
        probe.from,
        probe.to,
        probe.port
    )
}

/// Creates the probe's socket inside `source`, bound to `bind` when given (a host endpoint's
/// address; otherwise the kernel picks the source address).
pub fn prepare(
    source: &Netns,
    probe: &Probe,
    destination: SocketAddr,
    bind: Option<IpAddr>,
    payload: Vec<u8>,
) -> anyhow::Result<Prepared> {
    let protocol = probe.protocol;
    let source_port = probe.source_port.unwrap_or(0);
    anyhow::ensure!(
        source_port == 0 || matches!(protocol, Protocol::Tcp | Protocol::Udp),
        "probe {} -> {}: sourcePort needs TCP or UDP",
        probe.from,
        probe.to
    );
    if protocol == Protocol::Sctp {
        return Err(sctp_unsupported(probe));
    }
    if let Some(bind) = bind {
        anyhow::ensure!(
            bind.is_ipv6() == destination.is_ipv6(),
            "probe {} -> {}: source address {bind} and destination {destination} are of different \
             families",
            probe.from,
            probe.to
        );
    }
    let socket = source.run(move || -> io::Result<PreparedSocket> {
        let domain = Domain::for_address(destination);
        let any: SocketAddr = if destination.is_ipv6() {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            ([0, 0, 0, 0], 0).into()
        };
        let bound = |socket: &Socket| -> io::Result<()> {
            if bind.is_some() || source_port != 0 {
                let local = SocketAddr::new(bind.unwrap_or(any.ip()), source_port);
                socket.bind(&local.into()).map_err(|e| {
                    io::Error::new(e.kind(), format!("binding the probe to {local}: {e}"))
                })?;
            }
            Ok(())
        };
        match protocol {
            Protocol::Tcp => {
                let socket = Socket::new(domain, Type::STREAM, Some(SockProtocol::TCP))?;
                socket.set_nonblocking(true)?;
                bound(&socket)?;
                Ok(PreparedSocket::Tcp(socket.into()))
            }
            Protocol::Udp => {
                let socket = Socket::new(domain, Type::DGRAM, Some(SockProtocol::UDP))?;
                socket.set_nonblocking(true)?;
                socket.bind(&SocketAddr::new(bind.unwrap_or(any.ip()), source_port).into())?;
                Ok(PreparedSocket::Udp(socket.into()))
            }
            Protocol::Icmp => {
                let protocol = if destination.is_ipv6() {
                    SockProtocol::ICMPV6
                } else {
                    SockProtocol::ICMPV4
                };
                let socket = Socket::new(domain, Type::RAW, Some(protocol))?;
                socket.set_nonblocking(true)?;
                bound(&socket)?;
                Ok(PreparedSocket::Icmp(UdpSocket::from(socket)))
            }
            // Refused above.
            Protocol::Sctp => Err(io::ErrorKind::Unsupported.into()),
        }
    })??;
    let dns = probe.dns_query.as_ref().map(|name| DnsQuery {
        id: DNS_ID.fetch_add(1, Ordering::Relaxed),
        name: name.clone(),
        v6: destination.is_ipv6(),
    });
    Ok(Prepared {
        socket,
        destination,
        payload,
        timeout: Duration::from_millis(probe.timeout_ms()),
        dns,
    })
}

impl Prepared {
    /// Runs the probe (inside a tokio runtime); the connection, if it was a TCP or UDP one
    /// that worked, for the caller to keep or drop.
    pub async fn run(self) -> (Observation, Option<Kept>) {
        let start = Instant::now();
        if let Some(dns) = self.dns {
            let outcome = timeout(
                self.timeout,
                dns_exchange(self.socket, self.destination, &dns),
            )
            .await;
            let (verdict, detail) = match outcome {
                Ok(Ok(addresses)) => (Verdict::Allow, format!("resolved {}", addresses.join(","))),
                Ok(Err(e)) => (Verdict::Deny, describe(&e)),
                Err(_) => (Verdict::Deny, "timeout".to_owned()),
            };
            return (observation(verdict, detail, start), None);
        }
        let outcome = timeout(
            self.timeout,
            exchange(self.socket, self.destination, &self.payload),
        )
        .await;
        let (verdict, detail, kept) = match outcome {
            Ok(Ok(kept)) => (Verdict::Allow, "echoed".to_owned(), kept),
            Ok(Err(e)) => (Verdict::Deny, describe(&e), None),
            Err(_) => (Verdict::Deny, "timeout".to_owned(), None),
        };
        (observation(verdict, detail, start), kept)
    }
}

fn observation(verdict: Verdict, detail: String, start: Instant) -> Observation {
    Observation {
        verdict,
        detail,
        elapsed_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

/// Exchanges `payload` over a kept connection: whether the established connection still
/// works. The connection comes back unless it failed.
pub async fn run_over(
    kept: Kept,
    payload: Vec<u8>,
    limit: Duration,
) -> (Observation, Option<Kept>) {
    let start = Instant::now();
    let outcome = timeout(limit, exchange_kept(kept, &payload)).await;
    match outcome {
        Ok(Ok(kept)) => (
            observation(Verdict::Allow, "echoed".to_owned(), start),
            Some(kept),
        ),
        Ok(Err(e)) => (observation(Verdict::Deny, describe(&e), start), None),
        Err(_) => (
            observation(Verdict::Deny, "timeout".to_owned(), start),
            None,
        ),
    }
}

async fn exchange_kept(kept: Kept, payload: &[u8]) -> io::Result<Kept> {
    match kept {
        Kept::Tcp(mut stream) => {
            stream.write_all(payload).await?;
            let mut echoed = vec![0u8; payload.len()];
            stream.read_exact(&mut echoed).await?;
            check(payload, &echoed)?;
            Ok(Kept::Tcp(stream))
        }
        Kept::Udp(socket) => {
            udp_exchange(&socket, payload).await?;
            Ok(Kept::Udp(socket))
        }
    }
}

async fn udp_exchange(socket: &tokio::net::UdpSocket, payload: &[u8]) -> io::Result<()> {
    let mut buf = vec![0u8; payload.len() + 1];
    // Bounded by the caller's timeout; the count bound is a backstop.
    for _ in 0..1000 {
        socket.send(payload).await?;
        match timeout(UDP_RESEND, socket.recv(&mut buf)).await {
            Ok(Ok(n)) => return check(payload, &buf[..n]),
            Ok(Err(e)) => return Err(e),
            Err(_) => {}
        }
    }
    Err(io::Error::new(io::ErrorKind::TimedOut, "no answer"))
}

/// Identifiers of the lab's DNS queries.
static DNS_ID: AtomicU16 = AtomicU16::new(0x1000);

/// Sends a DNS query over UDP (again every [`UDP_RESEND`]) until a valid answer comes back:
/// its addresses.
async fn dns_exchange(
    socket: PreparedSocket,
    destination: SocketAddr,
    dns: &DnsQuery,
) -> io::Result<Vec<String>> {
    let PreparedSocket::Udp(socket) = socket else {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "dnsQuery needs UDP",
        ));
    };
    let socket = tokio::net::UdpSocket::from_std(socket)?;
    socket.connect(destination).await?;
    let query = super::services::dns::query(dns.id, &dns.name, dns.v6)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let mut buf = vec![0u8; 1500];
    let mut last = String::from("no answer");
    for _ in 0..1000 {
        socket.send(&query).await?;
        let deadline = Instant::now() + UDP_RESEND;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(received) = timeout(left, socket.recv(&mut buf)).await else {
                break;
            };
            let n = received?;
            match super::services::dns::parse_answer(&buf[..n], dns.id, &dns.name, dns.v6) {
                Ok(addresses) => return Ok(addresses.iter().map(ToString::to_string).collect()),
                // A wrong answer is final: the responder answered.
                Err(e) if buf.get(..2) == Some(&dns.id.to_be_bytes()[..]) => {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
                Err(e) => last = e,
            }
        }
    }
    Err(io::Error::new(io::ErrorKind::TimedOut, last))
}

/// Identifiers of the lab's echo requests: a raw socket sees every ICMP message of its
/// namespace, so each probe matches the replies to its own.
static ECHO_ID: AtomicU16 = AtomicU16::new(0x5000);

async fn icmp_exchange(
    socket: UdpSocket,
    destination: SocketAddr,
    payload: &[u8],
) -> io::Result<()> {
    let v6 = destination.is_ipv6();
    let socket = tokio::net::UdpSocket::from_std(socket)?;
    socket.connect(SocketAddr::new(destination.ip(), 0)).await?;
    let id = ECHO_ID.fetch_add(1, Ordering::Relaxed);
    let (request, reply) = if v6 { (128u8, 129u8) } else { (8, 0) };
    let mut message = vec![request, 0, 0, 0];
    message.extend_from_slice(&id.to_be_bytes());
    message.extend_from_slice(&1u16.to_be_bytes());
    message.extend_from_slice(payload);
    if !v6 {
        // ICMPv6 checksums (over a pseudo-header) are filled in by the kernel; ICMP's are not.
        let sum = checksum(&message);
        message[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    let mut buf = vec![0u8; 2048];
    for _ in 0..1000 {
        socket.send(&message).await?;
        let deadline = Instant::now() + UDP_RESEND;
        // Other messages (other probes' replies) are skipped until this round's deadline.
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(received) = timeout(left, socket.recv(&mut buf)).await else {
                break;
            };
            let n = received?;
            // A raw IPv4 socket hands over the IP header too; an ICMPv6 one does not.
            let icmp = if v6 {
                &buf[..n]
            } else {
                let header = usize::from(buf.first().copied().unwrap_or(0) & 0x0f) * 4;
                buf.get(header..n).unwrap_or_default()
            };
            if icmp.len() >= 8
                && icmp[0] == reply
                && icmp[4..6] == id.to_be_bytes()
                && &icmp[8..] == payload
            {
                return Ok(());
            }
        }
    }
    Err(io::Error::new(io::ErrorKind::TimedOut, "no answer"))
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|pair| {
            u32::from(u16::from_be_bytes([
                pair[0],
                pair.get(1).copied().unwrap_or(0),
            ]))
        })
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    #[expect(clippy::cast_possible_truncation, reason = "folded to 16 bits above")]
    let folded = sum as u16;
    !folded
}

fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "refused".to_owned(),
        io::ErrorKind::ConnectionReset => "reset".to_owned(),
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            "unreachable".to_owned()
        }
        _ => e.to_string(),
    }
}

async fn exchange(
    socket: PreparedSocket,
    destination: SocketAddr,
    payload: &[u8],
) -> io::Result<Option<Kept>> {
    match socket {
        PreparedSocket::Tcp(stream) => {
            let socket = tokio::net::TcpSocket::from_std_stream(stream);
            let mut stream = socket.connect(destination).await?;
            stream.write_all(payload).await?;
            let mut echoed = vec![0u8; payload.len()];
            stream.read_exact(&mut echoed).await?;
            check(payload, &echoed)?;
            Ok(Some(Kept::Tcp(stream)))
        }
        PreparedSocket::Udp(socket) => {
            let socket = tokio::net::UdpSocket::from_std(socket)?;
            socket.connect(destination).await?;
            udp_exchange(&socket, payload).await?;
            Ok(Some(Kept::Udp(socket)))
        }
        PreparedSocket::Icmp(socket) => {
            icmp_exchange(socket, destination, payload).await?;
            Ok(None)
        }
    }
}

fn check(sent: &[u8], received: &[u8]) -> io::Result<()> {
    if sent == received {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "answer differs from the payload",
        ))
    }
}
