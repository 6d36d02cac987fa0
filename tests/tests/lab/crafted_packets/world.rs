//! The three pods, the captures on their interfaces and the client's real connections.

use std::{
    io::{Read as _, Write as _},
    net::{IpAddr, SocketAddr, TcpStream, UdpSocket},
    time::Duration,
};

use anyhow::Context as _;
use palisade_tests::{
    crafted::{Capture, PodInterface},
    lab::Lab,
};

use super::ledger::{At, Ledger};

/// How long after a batch of frames the captures are read: forwarding between veths is
/// immediate, this is slack for a loaded machine.
const SETTLE: Duration = Duration::from_millis(300);

/// Timeouts of the real sockets.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(3);

/// A pod of the lab: its addresses and its interface.
pub(super) struct Pod {
    v4: IpAddr,
    pub(super) v6: IpAddr,
    pub(super) port: PodInterface,
}

impl Pod {
    pub(super) fn open(lab: &Lab, name: &str) -> anyhow::Result<Self> {
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

    pub(super) fn ip(&self, family: u8) -> IpAddr {
        if family == 4 { self.v4 } else { self.v6 }
    }
}

/// The three pods and a capture on each one's interface.
pub(super) struct World {
    pub(super) client: Pod,
    pub(super) victim: Pod,
    pub(super) attacker: Pod,
    pub(super) at_client: Capture,
    pub(super) at_victim: Capture,
    pub(super) at_attacker: Capture,
}

impl World {
    /// Waits for the frames in flight, then counts what each capture received.
    pub(super) fn settle(&self, ledger: &mut Ledger) -> anyhow::Result<()> {
        std::thread::sleep(SETTLE);
        ledger.count(At::Client, &self.at_client.drain()?);
        ledger.count(At::Victim, &self.at_victim.drain()?);
        ledger.count(At::Attacker, &self.at_attacker.drain()?);
        Ok(())
    }
}

/// The client's real connections to the victim, in one family.
pub(super) struct Connections {
    pub(super) tcp: TcpStream,
    /// The client's TCP port.
    pub(super) tcp_port: u16,
    pub(super) udp: UdpSocket,
    pub(super) udp_port: u16,
}

pub(super) fn connect(client: &Pod, victim: &Pod, family: u8) -> anyhow::Result<Connections> {
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
    pub(super) fn exchange(&mut self, payload: &[u8]) -> anyhow::Result<()> {
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
