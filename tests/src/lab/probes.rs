//! Probes: a real TCP connection or UDP exchange from one pod to another, which counts as
//! `allow` only when the payload comes back unchanged within the timeout.
//!
//! The socket is created on a thread inside the source pod's namespace (so the traffic leaves
//! from that pod) and then driven by tokio, so all probes of a step run concurrently.

use std::{
    io,
    net::{IpAddr, SocketAddr, TcpStream, UdpSocket},
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
}

enum PreparedSocket {
    Tcp(TcpStream),
    Udp(UdpSocket),
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

/// Creates the probe's socket inside `source`.
pub fn prepare(
    source: &Netns,
    probe: &Probe,
    destination: IpAddr,
    payload: Vec<u8>,
) -> anyhow::Result<Prepared> {
    let destination = SocketAddr::new(destination, probe.port);
    let protocol = probe.protocol;
    if protocol == Protocol::Sctp {
        return Err(sctp_unsupported(probe));
    }
    let socket = source.run(move || -> io::Result<PreparedSocket> {
        let domain = Domain::for_address(destination);
        match protocol {
            Protocol::Tcp => {
                let socket = Socket::new(domain, Type::STREAM, Some(SockProtocol::TCP))?;
                socket.set_nonblocking(true)?;
                Ok(PreparedSocket::Tcp(socket.into()))
            }
            Protocol::Udp => {
                let socket = Socket::new(domain, Type::DGRAM, Some(SockProtocol::UDP))?;
                socket.set_nonblocking(true)?;
                let any: SocketAddr = if destination.is_ipv6() {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                } else {
                    ([0, 0, 0, 0], 0).into()
                };
                socket.bind(&any.into())?;
                Ok(PreparedSocket::Udp(socket.into()))
            }
            // Refused above.
            Protocol::Sctp => Err(io::ErrorKind::Unsupported.into()),
        }
    })??;
    Ok(Prepared {
        socket,
        destination,
        payload,
        timeout: Duration::from_millis(probe.timeout_ms()),
    })
}

impl Prepared {
    /// Runs the probe (inside a tokio runtime).
    pub async fn run(self) -> Observation {
        let start = Instant::now();
        let outcome = timeout(
            self.timeout,
            exchange(self.socket, self.destination, &self.payload),
        )
        .await;
        let (verdict, detail) = match outcome {
            Ok(Ok(())) => (Verdict::Allow, "echoed".to_owned()),
            Ok(Err(e)) => (Verdict::Deny, describe(&e)),
            Err(_) => (Verdict::Deny, "timeout".to_owned()),
        };
        Observation {
            verdict,
            detail,
            elapsed_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    }
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
) -> io::Result<()> {
    match socket {
        PreparedSocket::Tcp(stream) => {
            let socket = tokio::net::TcpSocket::from_std_stream(stream);
            let mut stream = socket.connect(destination).await?;
            stream.write_all(payload).await?;
            let mut echoed = vec![0u8; payload.len()];
            stream.read_exact(&mut echoed).await?;
            check(payload, &echoed)
        }
        PreparedSocket::Udp(socket) => {
            let socket = tokio::net::UdpSocket::from_std(socket)?;
            socket.connect(destination).await?;
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
