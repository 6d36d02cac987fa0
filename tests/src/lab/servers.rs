//! Echo servers in the pods: every served port answers on TCP (echoing the stream) and UDP
//! (returning each datagram), so a probe's payload round-trips exactly when policy allows it.
//!
//! Sockets are bound on a thread inside the pod's namespace and then served by the lab's tokio
//! runtime; the tasks are aborted when [`Servers`] is dropped, so nothing outlives the lab. A
//! host endpoint's servers run in its node's namespace, bound to the host endpoint's own
//! addresses (the node's other addresses are not the host endpoint's).

use std::{
    collections::BTreeSet,
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket},
    time::Duration,
};

use anyhow::Context as _;
use socket2::{Domain, Protocol as SockProtocol, Socket, Type};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    runtime::Handle,
    task::AbortHandle,
    time::timeout,
};

use super::{
    netns::Netns,
    scenario::HostEndpointInfo,
    services::{DnsTable, dns},
    topology::PodPlan,
};

/// Bounds on what one connection or one server handles. A connection a scenario keeps
/// (`keep`) must outlive the steps until its last `over`, agent restarts and probe timeouts
/// included: 10 s was once enough for `examples/restart/`, whose kept connection is used
/// again about 15 s later on this machine. The servers stop with the lab in any case.
const CONNECTION_TIME: Duration = Duration::from_secs(120);
const CONNECTION_BYTES: usize = 64 * 1024;
const MAX_CONNECTIONS: usize = 100_000;
const MAX_DATAGRAMS: usize = 100_000;

/// Running servers; dropping this stops them.
#[derive(Debug, Default)]
pub struct Servers {
    tasks: Vec<AbortHandle>,
}

impl Drop for Servers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Bound sockets of one pod, created inside its namespace.
struct Bound {
    tcp: Vec<TcpListener>,
    udp: Vec<UdpSocket>,
    /// UDP sockets answering DNS instead of echoing.
    dns: Vec<UdpSocket>,
}

impl Servers {
    /// Serves `ports` (TCP and UDP) in the pod's namespace, on IPv4 and, when the pod has an
    /// IPv6 address, IPv6; on the UDP ports in `dns`, a DNS responder answering from `table`
    /// instead of the echo.
    pub fn start(
        &mut self,
        runtime: &Handle,
        pod: &PodPlan,
        netns: &Netns,
        ports: &BTreeSet<u16>,
        dns: &BTreeSet<u16>,
        table: &DnsTable,
    ) -> anyhow::Result<()> {
        let mut addresses = vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)];
        if pod.ipv6.is_some() {
            addresses.push(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        }
        let all: BTreeSet<u16> = ports.union(dns).copied().collect();
        let bound = netns
            .run(|| bind_all(&all, &addresses, dns))?
            .with_context(|| format!("binding servers in pod {}", pod.pod))?;
        let _guard = runtime.enter();
        for socket in &bound.dns {
            let socket = tokio::net::UdpSocket::from_std(socket.try_clone()?)?;
            self.tasks.push(
                runtime
                    .spawn(dns::serve(socket, table.clone()))
                    .abort_handle(),
            );
        }
        self.serve(runtime, bound)?;
        tracing::debug!(pod = %pod.pod, ?ports, "servers started");
        Ok(())
    }

    /// Serves `ports` (TCP and UDP) on every expected address of host endpoint `hep`, in its
    /// node's namespace `netns`.
    pub fn start_host_endpoint(
        &mut self,
        runtime: &Handle,
        hep: &HostEndpointInfo,
        netns: &Netns,
        ports: &BTreeSet<u16>,
    ) -> anyhow::Result<()> {
        let bound = netns
            .run(|| bind_all(ports, &hep.ips, &BTreeSet::new()))?
            .with_context(|| {
                format!(
                    "binding servers of host endpoint {} in node {}",
                    hep.name, hep.node
                )
            })?;
        self.serve(runtime, bound)?;
        tracing::debug!(host_endpoint = %hep.name, ?ports, "servers started");
        Ok(())
    }

    /// Serves `ports` (TCP and UDP) on `ips` in `netns` (a node's own address).
    pub fn start_on(
        &mut self,
        runtime: &Handle,
        netns: &Netns,
        ips: &[IpAddr],
        ports: &BTreeSet<u16>,
    ) -> anyhow::Result<()> {
        let bound = netns
            .run(|| bind_all(ports, ips, &BTreeSet::new()))?
            .with_context(|| format!("binding servers on {ips:?} in {}", netns.name()))?;
        self.serve(runtime, bound)?;
        tracing::debug!(?ips, ?ports, "node servers started");
        Ok(())
    }

    fn serve(&mut self, runtime: &Handle, bound: Bound) -> anyhow::Result<()> {
        let _guard = runtime.enter();
        for listener in bound.tcp {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            self.tasks
                .push(runtime.spawn(serve_tcp(listener)).abort_handle());
        }
        for socket in bound.udp {
            let socket = tokio::net::UdpSocket::from_std(socket)?;
            self.tasks
                .push(runtime.spawn(serve_udp(socket)).abort_handle());
        }
        Ok(())
    }
}

/// TCP and UDP sockets for every port on every address (UDP ports in `dns` apart).
fn bind_all(ports: &BTreeSet<u16>, addresses: &[IpAddr], dns: &BTreeSet<u16>) -> io::Result<Bound> {
    let mut bound = Bound {
        tcp: Vec::new(),
        udp: Vec::new(),
        dns: Vec::new(),
    };
    for &port in ports {
        for addr in addresses.iter().map(|ip| SocketAddr::new(*ip, port)) {
            bound.tcp.push(bind(addr, Type::STREAM)?.into());
            let udp = bind(addr, Type::DGRAM)?.into();
            if dns.contains(&port) {
                bound.dns.push(udp);
            } else {
                bound.udp.push(udp);
            }
        }
    }
    Ok(bound)
}

/// A nonblocking socket bound to `addr` (listening, for TCP). IPv6 sockets are IPv6-only so
/// that they sit beside the IPv4 ones on the same port.
fn bind(addr: SocketAddr, kind: Type) -> io::Result<Socket> {
    let protocol = if kind == Type::STREAM {
        SockProtocol::TCP
    } else {
        SockProtocol::UDP
    };
    let socket = Socket::new(Domain::for_address(addr), kind, Some(protocol))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket
        .bind(&addr.into())
        .map_err(|e| io::Error::new(e.kind(), format!("binding {addr}: {e}")))?;
    if kind == Type::STREAM {
        socket.listen(128)?;
    }
    Ok(socket)
}

async fn serve_tcp(listener: tokio::net::TcpListener) {
    for _ in 0..MAX_CONNECTIONS {
        match listener.accept().await {
            Ok((stream, peer)) => {
                tokio::spawn(async move {
                    match timeout(CONNECTION_TIME, echo(stream)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "echo connection"),
                        Err(_) => tracing::debug!(%peer, "echo connection timed out"),
                    }
                });
            }
            Err(e) => {
                tracing::debug!(error = %e, "accept");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    tracing::warn!("TCP echo server reached {MAX_CONNECTIONS} connections; stopping");
}

/// Echoes until the peer closes, up to a byte budget.
async fn echo(mut stream: tokio::net::TcpStream) -> io::Result<()> {
    let mut buf = [0u8; 4096];
    let mut total = 0;
    while total < CONNECTION_BYTES {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        stream.write_all(&buf[..n]).await?;
        total += n;
    }
    stream.shutdown().await
}

async fn serve_udp(socket: tokio::net::UdpSocket) {
    let mut buf = [0u8; 2048];
    for _ in 0..MAX_DATAGRAMS {
        match socket.recv_from(&mut buf).await {
            Ok((n, peer)) => {
                if let Err(e) = socket.send_to(&buf[..n], peer).await {
                    tracing::debug!(%peer, error = %e, "UDP echo");
                }
            }
            Err(e) => {
                // ICMP errors from earlier replies surface here; keep serving.
                tracing::debug!(error = %e, "UDP receive");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    tracing::warn!("UDP echo server reached {MAX_DATAGRAMS} datagrams; stopping");
}
